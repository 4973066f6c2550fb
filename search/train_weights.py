"""Weights ``vitsearch train`` starts from or keeps: a supernet's path, inherited tensors, the resumable checkpoint."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitsearch.space import ArchConfig
from vitsearch.space.files import atomic_path
from vitsearch.space.weights import load_state


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
