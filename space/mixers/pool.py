"""PoolFormer token mixer: ``avgpool(x) - x`` on the token grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import MixerConfig
from ..layers import ForwardContext, Mixer, TokenGrid, join_prefix, split_prefix
from ..registry import register_mixer


@register_mixer("pool")
class Pool(Mixer):
    """Average pooling with stride 1, padding excluded from the mean, minus the input (PoolFormer).

    The subtraction is there because the block adds the input back. A cls token has no grid
    neighbours: its mixer output is zero (pool of itself minus itself).
    """

    SUMMARY = "PoolFormer: average pooling minus the input"
    OPTIONS = {"pool_size": 3}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)
        self.pool_size = self.opts["pool_size"]

    @classmethod
    def validate(cls, cfg: MixerConfig, dim: int, path: str) -> None:
        super().validate(cfg, dim, path)
        cls.require_positive_odd(cfg, "pool_size", path)

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        return 0  # pooling and subtraction are free by the convention (see FREE_OPS)

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        prefix, spatial = split_prefix(x, ctx.grid)
        pooled = F.avg_pool2d(spatial, self.pool_size, 1, self.pool_size // 2, count_include_pad=False)
        return join_prefix(torch.zeros_like(prefix), pooled - spatial)
