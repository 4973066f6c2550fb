"""Analytic complexity: FLOPs and parameters from the architecture alone, no full model built.

Every layer states its own FLOPs formula next to its code (``Mixer.flops``, ``Block.flops``,
``Downsample.flops``, the stem's ``flops``); ``analytic_flops`` walks the config and adds them
up, equal to the fvcore count of the built model (``evaluators.complexity.count_flops``) by
construction and by test. ``analytic_params`` counts parameters the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .config import ArchConfig, BlockConfig, StageConfig, validate
from .layers import Block, TokenGrid, make_mlp, norm_flops, sharing_flags
from .model import attention_sources, reparameterize_children
from .presets import resolve_arch
from .registry import get_downsample, get_mixer
from .stems import build_stem, stem_flops, stem_grid_size


@dataclass(frozen=True)
class StageStep:
    """One stage as the model runs it: the width and grid it is entered with, the grid its blocks see."""

    index: int
    stage: StageConfig
    in_width: int
    in_grid: TokenGrid  # before the stage's downsample
    grid: TokenGrid  # after it: what every block of the stage sees


@dataclass(frozen=True)
class PartCost:
    """FLOPs and deployed params of one part of the model: ``stem``, ``stages.<i>`` or ``head``."""

    name: str
    flops: int
    params: int


def stage_steps(arch: ArchConfig, img_size: int = 224) -> list[StageStep]:
    """The stages in order with their widths and token grids: the one walk the counts below share."""
    width = arch.stages[0].width
    side = stem_grid_size(arch.stem, img_size)
    grid = TokenGrid(side, side, 1 if arch.head == "cls" else 0)
    steps = []
    for index, stage in enumerate(arch.stages):
        after = get_downsample(stage.downsample).out_grid(grid)
        steps.append(StageStep(index, stage, width, grid, after))
        grid, width = after, stage.width
    return steps


def analytic_flops(arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> int:
    """FLOPs from the architecture alone, no model built; equal to ``count_flops`` by construction.

    Every layer states its own formula next to its code (``Mixer.flops``, ``Block.flops``,
    ``Downsample.flops``, the stem's ``flops``); this walks the config and adds them up.
    """
    arch = validate(resolve_arch(arch))
    steps = stage_steps(arch, img_size)
    total = stem_flops(arch.stem, in_chans, arch.stages[0].width, img_size)
    return total + sum(_stage_flops(step) for step in steps) + _head_flops(arch, steps[-1], num_classes)


def analytic_params(arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> int:
    """Parameters of the deployed model, summed from its parts; equal to ``count_params`` of it.

    Walks the config as ``analytic_flops`` does. Norms, layer scales, tokens and the head are
    counted by formula; each distinct stem, downsampler, mixer and MLP (keyed by what shapes
    it: a mixer by its type, width, options, grid and sharing role; an MLP by width, ratio,
    groups and CCA) is built once on the meta device in its deployed form, counted and
    memoised. A search meets the same parts again and again, so an architecture soon costs
    lookups instead of a 40-110 ms model build (``studies/bench_driver.py``).
    """
    arch = validate(resolve_arch(arch))
    steps = stage_steps(arch, img_size)
    keep = attention_sources(arch)
    total = _stem_params(arch, steps[0], in_chans)
    return total + sum(_stage_params(arch, step, keep) for step in steps) + _head_params(steps[-1], num_classes)


def analytic_parts(arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> list[PartCost]:
    """FLOPs and params per part (stem, each stage, head); they sum to ``analytic_flops`` and ``analytic_params``.

    The stem part holds the cls token and position embeddings; the head part the final norm and classifier.
    """
    arch = validate(resolve_arch(arch))
    steps = stage_steps(arch, img_size)
    keep = attention_sources(arch)
    stem = PartCost(
        "stem", stem_flops(arch.stem, in_chans, arch.stages[0].width, img_size), _stem_params(arch, steps[0], in_chans)
    )
    stages = [PartCost(f"stages.{s.index}", _stage_flops(s), _stage_params(arch, s, keep)) for s in steps]
    head = PartCost("head", _head_flops(arch, steps[-1], num_classes), _head_params(steps[-1], num_classes))
    return [stem, *stages, head]


def _stage_flops(step: StageStep) -> int:
    downsample = get_downsample(step.stage.downsample)
    width = step.stage.width
    return downsample.flops(step.in_width, width, step.in_grid) + sum(
        Block.flops(width, block, step.grid) for block in step.stage.blocks
    )


def _head_flops(arch: ArchConfig, last: StageStep, num_classes: int) -> int:
    width, grid = last.stage.width, last.grid
    if arch.head == "cls":
        pooled = norm_flops(grid.tokens, width)  # timm ViT norms every token, then takes cls
    else:
        pooled = grid.spatial * width + norm_flops(1, width)  # adaptive_avg_pool2d, then norm
    return pooled + width * num_classes


def _stem_params(arch: ArchConfig, first: StageStep, in_chans: int) -> int:
    width, grid = first.in_width, first.in_grid
    tokens = grid.prefix + (grid.tokens if arch.position == "learned" else 0)  # cls token, positions
    return _part_params("stem", arch.stem, in_chans, width) + width * tokens


def _stage_params(arch: ArchConfig, step: StageStep, keep: set[tuple[int, int]]) -> int:
    width = step.stage.width
    per_width = 4 + (2 if arch.layer_scale_init else 0)  # two norms' affines, two layer scales
    total = _part_params("downsample", step.stage.downsample, step.in_width, width, step.in_grid)
    for bi, block in enumerate(step.stage.blocks):
        sharing = (block.share_attention, (step.index, bi) in keep)
        total += per_width * width + _part_params("mixer", width, block.mixer, step.grid, *sharing)
        total += _part_params("mlp", width, block.mlp_ratio, block.mlp_groups, block.cca)
    return total


def _head_params(last: StageStep, num_classes: int) -> int:
    width = last.stage.width
    return 2 * width + (width * num_classes + num_classes if num_classes > 0 else 0)  # norm, head


def _build_mixer(dim: int, cfg: Any, grid: Any, share: bool, keep: bool) -> nn.Module:
    flags = sharing_flags(BlockConfig(mixer=cfg, share_attention=share), keep)
    mixer = get_mixer(cfg.type)(dim, cfg, grid, **flags)
    # A mixer that folds into its block's norm (RIFormer) leaves no parameters of its own deployed.
    return nn.Identity() if hasattr(mixer, "fold_into_norm") else mixer


def _build_mlp(dim: int, ratio: float, groups: int, cca: bool) -> nn.Module:
    return make_mlp(dim, BlockConfig(mlp_ratio=ratio, mlp_groups=groups, cca=cca))


@functools.lru_cache(maxsize=16384)
def _part_params(kind: str, *args: Any) -> int:
    builders: dict[str, Callable[..., nn.Module]] = {
        "stem": build_stem,
        "downsample": lambda name, in_dim, out_dim, grid: get_downsample(name)(in_dim, out_dim, grid),
        "mixer": _build_mixer,
        "mlp": _build_mlp,
    }
    with torch.device("meta"):
        holder = nn.ModuleList([builders[kind](*args)])
        reparameterize_children(holder)  # the deployed form, children before parents, as VitModel does
    return sum(p.numel() for p in holder.parameters())
