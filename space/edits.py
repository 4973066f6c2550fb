"""Whole-architecture edits: one change made to every block, as an ablation's control needs it."""

from __future__ import annotations

import dataclasses
from typing import Any

from .config import ArchConfig


def with_blocks(arch: ArchConfig, **changes: Any) -> ArchConfig:
    """``arch`` with the same fields of every block replaced (``mixer=``, ``cca=``, ``mlp_ratio=``...)."""
    stages = tuple(
        dataclasses.replace(s, blocks=tuple(dataclasses.replace(b, **changes) for b in s.blocks)) for s in arch.stages
    )
    return arch.replace(stages=stages)


def dense_twin(arch: ArchConfig) -> ArchConfig:
    """Every block-diagonal MLP (ratio ``E``, ``G`` groups) as the dense MLP of the same cost: ratio ``E / G``.

    Both cost ``2 * E * d^2 / G`` multiply-adds per token, so the twin has exactly the FLOPs of ``arch``.

    Raises:
        ValueError: a hidden width that does not split into whole groups of the dense ratio.
    """
    stages = []
    for stage in arch.stages:
        blocks = []
        for b in stage.blocks:
            ratio = b.mlp_ratio / b.mlp_groups
            if int(stage.width * b.mlp_ratio) != int(stage.width * ratio) * b.mlp_groups:
                raise ValueError(f"width {stage.width}: r{b.mlp_ratio:g}/g{b.mlp_groups} has no dense twin")
            blocks.append(dataclasses.replace(b, mlp_ratio=ratio, mlp_groups=1))
        stages.append(dataclasses.replace(stage, blocks=tuple(blocks)))
    return arch.replace(stages=tuple(stages))
