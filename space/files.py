"""Atomic file writes: a reader, or a process killed mid-write, sees the old file or the new one, never half.

The one helper for every output of the tree (configs, weights, ONNX files, checkpoints, CSVs,
plots, cache records). The temporary file is created beside the target (a rename is atomic
only within one file system) with mode 0o666, so the kernel applies the process's umask and the
file gets the usual permissions without reading or changing the umask. No fsync: the writes
survive a killed process, not a power cut, as before this module existed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | Path, mode: int | None = None) -> Iterator[Path]:
    """A temporary path beside ``path`` to write by any means; renamed onto ``path`` when the block ends.

    Args:
        path: the file to replace (its folder is created if needed).
        mode: permissions to set before the rename; None = 0o666 less the umask.

    On an exception the temporary file is removed and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The target's suffix last: writers that choose a format by suffix (torch.onnx.export) see the right one.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{path.suffix}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # the umask applies here
    try:
        yield tmp
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as err:
        # A writer that does not say ENOSPC (torch's zip writer: "unexpected pos ...") on a disk with no room left.
        full = is_disk_full(err) or (isinstance(err, (OSError, RuntimeError)) and _no_room(tmp.parent))
        tmp.unlink(missing_ok=True)
        if full:  # name the file: "[Errno 28] No space left on device" alone does not say which
            message = "no space left on device (the previous file, if any, is unchanged)"
            raise OSError(errno.ENOSPC, message, str(path)) from err
        raise


def _no_room(folder: Path) -> bool:
    import shutil

    try:
        return shutil.disk_usage(folder).free < 1 << 20  # under 1 MiB left
    except OSError:
        return False


DISK_FULL_MARKERS = ("no space left on device", "disk quota exceeded", "file write failed", "database or disk is full")


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or its cause) is a full disk: ENOSPC/EDQUOT, or a writer's own words for it (torch, SQLite)."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(marker in str(current).lower() for marker in DISK_FULL_MARKERS):
            return True
        current = current.__cause__ or current.__context__
    return False


def atomic_write_bytes(path: str | Path, data: bytes, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` atomically; see ``atomic_path``."""
    with atomic_path(path, mode) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; see ``atomic_path``."""
    return atomic_write_bytes(path, text.encode(), mode)
