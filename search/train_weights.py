"""Weights ``vitsearch train`` starts from or keeps: a supernet's path, inherited tensors, the resumable checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitsearch.space import ArchConfig, ConfigError
from vitsearch.space.files import atomic_path
from vitsearch.space.weights import describe_load_error, load_state


def supernet_start(checkpoint: Path, arch: ArchConfig) -> tuple[ArchConfig, int, Mapping[str, torch.Tensor]]:
    """What ``--from-supernet`` trains: the path's own architecture, size and inherited weights.

    A supernet trained at a proxy profile (narrower widths, another stem stride and input
    size) holds the *adapted* architecture's tensors, not the target one's: building the
    target architecture and loading them would be a shape error. So training continues the
    path as the supernet built it: ``supernet.adapt(arch)`` at the supernet's input size.
    """
    from vitsearch.evaluators.supernet import load_supernet

    supernet = load_supernet(checkpoint)
    path = supernet.adapt(arch)
    extracted = supernet.extract(path, adapted=True)
    return path, supernet.profile.img_size, extracted.state_dict()


def load_inherited(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> list[str]:
    """Load inherited weights; a classifier of another class count is left at its init. Returns skipped keys."""
    own = model.state_dict()
    skipped = [k for k in ("head.weight", "head.bias") if k in state and k in own and state[k].shape != own[k].shape]
    kept = {k: v for k, v in state.items() if k not in skipped}
    kept.update({k: own[k] for k in skipped})
    load_state(model, kept, source)
    return skipped


def save_checkpoint(path: Path, blob: dict[str, Any]) -> None:
    """``torch.save`` through a temporary file and a rename: a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(blob, tmp)


def resume_checkpoint(path: Path, signature: dict[str, Any], model, ema, optimizer, scheduler) -> tuple[int, list]:
    """Load the training state of ``last.pt`` into the run; refuse one trained with another ``signature``.

    Returns the epoch to continue from and the history so far.
    """
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, not a zip, or pickled objects weights_only refuses
        raise ConfigError(str(path), f"cannot resume from this checkpoint ({describe_load_error(err)})") from None
    keys = ("model", "optimizer", "scheduler", "epoch", "meta")
    missing = [key for key in keys if key not in blob] if isinstance(blob, Mapping) else list(keys)
    if missing:
        raise ConfigError(str(path), f"not a checkpoint of vitsearch train (no {', '.join(missing)})")
    recorded = blob["meta"].get("signature", {}) if isinstance(blob["meta"], Mapping) else {}
    # Checkpoints from before the engine: float32, and augmentation settings that mnist5k never used.
    defaults = {"amp": "off", "augment": True, "auto_augment": "rand-m9-mstd0.5", "re_prob": 0.25}
    changed = sorted(k for k in signature if recorded.get(k, defaults.get(k)) != signature[k])
    if changed:
        raise ConfigError("--resume", f"{path} was trained with different {', '.join(changed)}; use another --out")
    load_state(model, blob["model"], str(path))  # loads onto the model's device
    if ema is not None and blob.get("ema") is not None:
        load_state(ema.module, blob["ema"], str(path))
    optimizer.load_state_dict(blob["optimizer"])
    scheduler.load_state_dict(blob["scheduler"])
    return int(blob["epoch"]), list(blob.get("history", []))
