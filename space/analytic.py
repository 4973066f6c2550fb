"""Analytic complexity: FLOPs and parameters from the architecture alone, no full model built.

Every layer states its own FLOPs formula next to its code (``Mixer.flops``, ``Block.flops``,
``Downsample.flops``, the stem's ``flops``); ``analytic_flops`` walks the config and adds them
up, equal to the fvcore count of the built model (``evaluators.complexity.count_flops``) by
construction and by test. ``analytic_params`` counts parameters the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .config import BlockConfig, validate
from .layers import Block, TokenGrid, make_mlp, norm_flops, sharing_flags
from .model import attention_sources, reparameterize_children
from .presets import resolve_arch
from .registry import get_downsample, get_mixer
from .stems import build_stem, stem_flops, stem_grid_size


def analytic_flops(arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> int:
    """FLOPs from the architecture alone, no model built; equal to ``count_flops`` by construction.

    Every layer states its own formula next to its code (``Mixer.flops``, ``Block.flops``,
    ``Downsample.flops``, the stem's ``flops``); this walks the config and adds them up.
    """
    arch = validate(resolve_arch(arch))
    width = arch.stages[0].width
    total = stem_flops(arch.stem, in_chans, width, img_size)
    side = stem_grid_size(arch.stem, img_size)
    grid = TokenGrid(side, side, 1 if arch.head == "cls" else 0)
    for stage in arch.stages:
        downsample = get_downsample(stage.downsample)
        total += downsample.flops(width, stage.width, grid)
        grid, width = downsample.out_grid(grid), stage.width
        total += sum(Block.flops(width, block, grid) for block in stage.blocks)
    if arch.head == "cls":
        total += norm_flops(grid.tokens, width)  # timm ViT norms every token, then takes cls
    else:
        total += grid.spatial * width + norm_flops(1, width)  # adaptive_avg_pool2d, then norm
    return total + width * num_classes


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
    width = arch.stages[0].width
    side = stem_grid_size(arch.stem, img_size)
    grid = TokenGrid(side, side, 1 if arch.head == "cls" else 0)
    total = _part_params("stem", arch.stem, in_chans, width)
    total += width * (grid.prefix + (grid.tokens if arch.position == "learned" else 0))  # cls token, positions
    keep = attention_sources(arch)
    per_width = 4 + (2 if arch.layer_scale_init else 0)  # two norms' affines, two layer scales
    for si, stage in enumerate(arch.stages):
        downsample = get_downsample(stage.downsample)
        total += _part_params("downsample", stage.downsample, width, stage.width, grid)
        grid, width = downsample.out_grid(grid), stage.width
        for bi, block in enumerate(stage.blocks):
            sharing = (block.share_attention, (si, bi) in keep)
            total += per_width * width + _part_params("mixer", width, block.mixer, grid, *sharing)
            total += _part_params("mlp", width, block.mlp_ratio, block.mlp_groups, block.cca)
    return total + 2 * width + (width * num_classes + num_classes if num_classes > 0 else 0)  # norm, head


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
