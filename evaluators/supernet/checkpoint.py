"""Supernet checkpoints: safetensors for tensors, one small JSON for everything else.

A checkpoint is a folder::

    supernet.safetensors   the supernet's state dict (parameters, BatchNorm statistics, Performer features)
    optimizer.safetensors  AdamW moments and step counts, by parameter name (training only)
    supernet.json          format, step, space (as a space file), profile, training settings, history

Each file is written to a temporary name and renamed; ``supernet.json`` goes last and names
the step, which both safetensors files also carry in their metadata, so a crash between two
writes is detected on load instead of pairing weights with the wrong optimizer state.
Nothing is unpickled: optimizer hyper-parameters are JSON, its tensors safetensors.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vitsearch.space.files import atomic_path, atomic_write_text
from vitsearch.space.search_space import SearchSpace

from .dims import SupernetProfile
from .model import Supernet

FORMAT = "vitsearch-supernet"
VERSION = 1
WEIGHTS, OPTIMIZER, META = "supernet.safetensors", "optimizer.safetensors", "supernet.json"


class CheckpointError(ValueError):
    """A missing, incomplete or foreign checkpoint (one line, naming the file)."""


def checkpoint_dir(path: str | Path) -> Path:
    """The checkpoint folder of ``path``: the folder itself, or the folder of one of its files."""
    path = Path(path).expanduser()
    folder = path.parent if path.name in (WEIGHTS, OPTIMIZER, META) else path
    if not (folder / META).is_file() or not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{path}: no supernet checkpoint here (expected {META} and {WEIGHTS})")
    return folder


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def param_names(optimizer: torch.optim.Optimizer, supernet: Supernet) -> list[str]:
    """The name of every parameter in ``optimizer``'s order (its state-dict indices)."""
    by_id = {id(p): n for n, p in supernet.named_parameters()}
    return [by_id[id(p)] for group in optimizer.param_groups for p in group["params"]]


def save_checkpoint(
    folder: str | Path, supernet: Supernet, meta: dict[str, Any], optimizer: torch.optim.Optimizer | None = None
) -> Path:
    """Write the checkpoint of ``supernet`` at ``meta["step"]`` into ``folder`` (created if needed)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    step = str(int(meta["step"]))
    _atomic_save(supernet.state_dict(), folder / WEIGHTS, {"format": FORMAT, "step": step})
    record = {
        "format": FORMAT,
        "version": VERSION,
        **meta,
        "space": supernet.space.to_dict(),
        "profile": supernet.profile.to_dict(),
        "seed": supernet.seed,
        "weights_sha1": _sha1(folder / WEIGHTS),
        "torch": torch.__version__,
    }
    if optimizer is not None:
        names = param_names(optimizer, supernet)
        state = optimizer.state_dict()
        tensors, scalars = {}, {}
        for index, values in state["state"].items():
            for key, value in values.items():
                if torch.is_tensor(value):
                    tensors[f"{names[index]}/{key}"] = value
                else:
                    scalars[f"{names[index]}/{key}"] = value
        _atomic_save(tensors, folder / OPTIMIZER, {"format": FORMAT, "step": step})
        record["optimizer"] = {
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in state["param_groups"]],
            "group_sizes": [len(g["params"]) for g in state["param_groups"]],
            "scalars": scalars,
        }
    atomic_write_text(folder / META, json.dumps(record, indent=1))
    return folder


def read_meta(path: str | Path) -> dict[str, Any]:
    folder = checkpoint_dir(path)
    try:
        meta = json.loads((folder / META).read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{folder / META}: not valid JSON ({err.msg})") from None
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{folder / META}: not a {FORMAT} v{VERSION} checkpoint")
    return meta


def read_tensors(path: Path, step: int, device: torch.device | str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            found = (handle.metadata() or {}).get("step")
            if found != str(step):
                raise CheckpointError(
                    f"{path}: holds step {found}, {META} says {step} (interrupted while saving? use the previous copy)"
                )
            return {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as err:  # truncated or overwritten: one line, not the Rust error chain
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CheckpointError(f"{path}: not a readable safetensors file ({first})") from None


def load_supernet(ckpt: str | Path, device: torch.device | str = "cpu") -> Supernet:
    """The trained supernet of a checkpoint, in eval mode on ``device``.

    ``load_supernet(ckpt).extract(arch)`` is the standalone model of ``arch`` with the weights
    it inherits (``Supernet.extract``). ``ckpt`` is the checkpoint folder or one of its files.
    The checkpoint's JSON is kept as ``supernet.meta``.
    """
    folder = checkpoint_dir(ckpt)
    meta = read_meta(folder)
    space = SearchSpace.from_dict(meta["space"], name=meta["space"].get("name", "space"))
    profile = SupernetProfile(**meta["profile"])
    with torch.device("meta"):
        supernet = Supernet(space, profile, seed=meta["seed"])
    state = read_tensors(folder / WEIGHTS, meta["step"], device)
    if meta.get("weights_sha1") not in (None, _sha1(folder / WEIGHTS)):  # bytes changed after saving
        raise CheckpointError(f"{folder / WEIGHTS}: does not match the checksum in {META} (corrupted?)")
    expected = set(supernet.state_dict())
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise CheckpointError(
            f"{folder / WEIGHTS}: does not match its space (missing {missing[:3]}, extra {extra[:3]})"
        )
    supernet.load_state_dict(state, strict=True, assign=True)
    supernet.meta = meta
    return supernet.eval()


def load_optimizer(ckpt: str | Path, optimizer: torch.optim.Optimizer, supernet: Supernet) -> None:
    """Restore ``optimizer`` (built over ``supernet`` the way the checkpoint's was) from ``ckpt``."""
    folder = checkpoint_dir(ckpt)
    meta = read_meta(folder)
    saved = meta.get("optimizer")
    if saved is None or not (folder / OPTIMIZER).is_file():
        raise CheckpointError(f"{folder}: holds no optimizer state (not a training checkpoint)")
    sizes = [len(g["params"]) for g in optimizer.param_groups]
    if sizes != saved["group_sizes"]:
        raise CheckpointError(f"{folder / META}: optimizer groups {saved['group_sizes']} differ from {sizes}")
    device = next(supernet.parameters()).device
    tensors = read_tensors(folder / OPTIMIZER, meta["step"], device)
    by_param: dict[str, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *saved["scalars"].items()]:
        name, _, field = key.rpartition("/")
        by_param.setdefault(name, {})[field] = value
    names = param_names(optimizer, supernet)
    unknown = set(by_param) - set(names)
    if unknown:
        raise CheckpointError(f"{folder / OPTIMIZER}: state for parameters the supernet lacks ({sorted(unknown)[:3]})")
    state = {index: by_param[name] for index, name in enumerate(names) if name in by_param}
    groups, start = [], 0
    for group, size in zip(saved["param_groups"], sizes, strict=True):
        restored = {k: tuple(v) if isinstance(v, list) else v for k, v in group.items()}  # JSON lists: betas
        groups.append({**restored, "params": list(range(start, start + size))})
        start += size
    optimizer.load_state_dict({"state": state, "param_groups": groups})
