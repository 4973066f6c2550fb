"""PoolFormer token mixer: ``avgpool(x) - x`` on the token grid."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import MixerConfig
from ..layers import ForwardContext, Mixer, TokenGrid
from ..registry import register_mixer


@register_mixer("pool")
class Pool(Mixer):
    """Average pooling with stride 1, padding excluded from the mean, minus the input (PoolFormer).

    The subtraction is there because the block adds the input back. A cls token has no grid
    neighbours: its mixer output is zero (pool of itself minus itself).

    Layout: the grid's ``(B, N, C)`` tokens are viewed as ``(B, H, W, C)`` and permuted to a
    channels-last ``(B, C, H, W)`` (a view, no copy), pooled there, and permuted back. torch's CPU
    ``avg_pool2d`` picks its kernel from the input's suggested memory format: ``split_prefix``'s
    transpose-then-reshape view is channels-last for ``B > 1``, but at batch 1 the reshape gives
    it a batch stride for which torch suggests NCHW, copies the input to NCHW and runs its
    per-pixel NCHW loop, 14x slower than the channels-last kernel at 192 x 14 x 14 on one thread
    (0.58 against 0.04 ms). That was the whole of onnxruntime's 7x lead at batch 1 in
    ``studies/flops_to_time.md`` (its ``AveragePool`` is vectorised whatever the layout). Same
    numbers at every batch size: the same mean of the same neighbours (tested).
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
        grid = ctx.grid
        b, _, c = x.shape
        spatial = x[:, grid.prefix :].reshape(b, grid.height, grid.width, c).permute(0, 3, 1, 2)  # channels-last view
        pooled = F.avg_pool2d(spatial, self.pool_size, 1, self.pool_size // 2, count_include_pad=False)
        tokens = (pooled - spatial).permute(0, 2, 3, 1).reshape(b, grid.spatial, c)
        return F.pad(tokens, (0, 0, grid.prefix, 0)) if grid.prefix else tokens  # zeros for the prefix tokens
