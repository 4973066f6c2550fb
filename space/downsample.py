"""Stage-entry layers: how tokens enter a stage (grid reduction and/or width change)."""

from __future__ import annotations

import torch
from torch import nn

from .layers import Downsample, TokenGrid, join_prefix, split_prefix
from .registry import register_downsample


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


@register_downsample("none")
class NoDownsample(Downsample):
    """Tokens pass unchanged; the stage keeps the previous width."""

    def forward(self, x: torch.Tensor, grid: TokenGrid) -> tuple[torch.Tensor, TokenGrid]:
        return x, grid


@register_downsample("conv")
class ConvDownsample(Downsample):
    """PoolFormer / MetaFormer downsampling: 3x3 conv, stride 2, padding 1, any width change.

    A cls token, which has no place on the grid, goes through a linear map to the new width.
    """

    stride = 2
    changes_width = True

    def __init__(self, in_dim: int, out_dim: int, grid: TokenGrid):
        super().__init__(in_dim, out_dim, grid)
        self.proj = nn.Conv2d(in_dim, out_dim, kernel_size=3, stride=2, padding=1)
        self.prefix_proj = nn.Linear(in_dim, out_dim) if grid.prefix and in_dim != out_dim else nn.Identity()

    @classmethod
    def out_grid(cls, grid: TokenGrid) -> TokenGrid:
        return TokenGrid(conv_out(grid.height, 3, 2, 1), conv_out(grid.width, 3, 2, 1), grid.prefix)

    @classmethod
    def flops(cls, in_dim: int, out_dim: int, grid: TokenGrid) -> int:
        out = cls.out_grid(grid)
        prefix = grid.prefix * in_dim * out_dim if grid.prefix and in_dim != out_dim else 0
        return out.spatial * out_dim * in_dim * 9 + prefix

    def forward(self, x: torch.Tensor, grid: TokenGrid) -> tuple[torch.Tensor, TokenGrid]:
        prefix, spatial = split_prefix(x, grid)
        return join_prefix(self.prefix_proj(prefix), self.proj(spatial)), self.out_grid(grid)
