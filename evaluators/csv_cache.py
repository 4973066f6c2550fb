"""A resumable study's results: one CSV row per finished job, safe to share between processes.

Long studies (reference trainings, searches) write each result the moment it finishes, so a kill
loses at most the job in progress and a rerun skips what is done. Rows are keyed by ``key``; a
row without ``key`` or ``finished`` is not a result. The file is rewritten whole through a
temporary file and renamed under an exclusive lock, so a kill leaves the old file or the new one
and processes that share the file never lose each other's rows.

``claim`` lets any number of processes share one plan: each takes the next free item, and an
item whose process died is taken over.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any


class CsvCache:
    """Rows of ``columns`` in ``path``, keyed by the ``key`` column."""

    def __init__(self, path: str | Path, columns: Sequence[str]):
        if "key" not in columns or "finished" not in columns:
            raise ValueError("a CsvCache needs a 'key' and a 'finished' column")
        self.path = Path(path)
        self.columns = list(columns)

    def rows(self) -> list[dict[str, str]]:
        if not self.path.exists():
            return []
        with self.path.open(newline="") as f:
            return [r for r in csv.DictReader(f) if r.get("key") and r.get("finished")]

    def by_key(self) -> dict[str, dict[str, str]]:
        return {r["key"]: r for r in self.rows()}

    def add(self, row: dict[str, Any]) -> list[dict[str, str]]:
        """Merge ``row`` (replacing one with its key) under an exclusive lock; returns every row."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(f".{self.path.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            rows = [r for r in self.rows() if r["key"] != row["key"]] + [{k: str(v) for k, v in row.items()}]
            self.write(rows)
        return rows

    def write(self, rows: list[dict[str, Any]]) -> None:
        """Rewrite the whole file through a temporary one: a kill leaves the old file or the new one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp.{os.getpid()}")
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)


@contextlib.contextmanager
def claim(folder: str | Path, key: str) -> Iterator[bool]:
    """Take ``key`` for this process (a file in ``folder`` naming the pid); False while a live process holds it.

    A claim left by a dead process (or half written) is taken over.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / hashlib.sha1(key.encode()).hexdigest()[:16]
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                holder = int(path.read_text() or 0)
                os.kill(holder, 0)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                path.unlink(missing_ok=True)
                continue
            except PermissionError:
                pass  # alive, someone else's
            yield False
            return
        with os.fdopen(fd, "w") as f:
            f.write(str(os.getpid()))
        try:
            yield True
        finally:
            path.unlink(missing_ok=True)
        return
    yield False


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N``: every N-th item from K; ``claim``: ``(0, 0)``, every free item, claimed as it starts."""
    if text == "claim":
        return 0, 0
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        raise ValueError(f"expected K/N with 0 <= K < N, got {text!r}")
    return int(k), int(n)


def mine(item: int, shard: tuple[int, int]) -> bool:
    """Whether item ``item`` (0-based) of a plan belongs to ``shard`` (``(0, 0)``: every item, claimed)."""
    k, n = shard
    return n == 0 or item % n == k
