"""Stage-entry layers: how tokens enter a stage (grid reduction and/or width change)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class TokenPool(Downsample):
    """PSViT token pooling (Chen et al. 2021): the token grid is pooled 2x2 between layers.

    A stage with ``downsample: mean | max | dwconv`` is a pooling point, which is how
    "pooling at chosen layer indices" is written in an ``ArchConfig``. The grid is pooled
    with stride 2 and the cls token passes through unchanged. Odd sides round up
    (``ceil(n / 2)``: ceil-mode pooling, padding 1 for the conv), so no edge token is
    dropped and all three kinds give the same grid.

    The width may change at a pooling point: then one pointwise linear ``in_dim -> out_dim``,
    shared by all tokens (cls included), follows the pooling, so the cls token and the grid
    tokens stay in one embedding space. PSViT has published no code; PiT (Heo et al. 2021),
    whose pooling layer PSViT's resembles, widens with a depth-wise conv with a channel
    multiplier plus a separate linear for cls. Pooling first and projecting after is the
    cheaper order (the linear runs on a quarter of the tokens).
    """

    stride = 2
    changes_width = True

    def __init__(self, in_dim: int, out_dim: int, grid: TokenGrid):
        super().__init__(in_dim, out_dim, grid)
        self.proj = nn.Linear(in_dim, out_dim) if in_dim != out_dim else nn.Identity()

    @classmethod
    def out_grid(cls, grid: TokenGrid) -> TokenGrid:
        return TokenGrid(-(-grid.height // 2), -(-grid.width // 2), grid.prefix)

    @classmethod
    def pool_flops(cls, dim: int, grid: TokenGrid) -> int:
        return 0  # mean and max pooling are free by the convention (see FREE_OPS)

    @classmethod
    def flops(cls, in_dim: int, out_dim: int, grid: TokenGrid) -> int:
        proj = cls.out_grid(grid).tokens * in_dim * out_dim if in_dim != out_dim else 0
        return cls.pool_flops(in_dim, grid) + proj

    def pool(self, spatial: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, C, ceil(H/2), ceil(W/2))``."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, grid: TokenGrid) -> tuple[torch.Tensor, TokenGrid]:
        prefix, spatial = split_prefix(x, grid)
        return self.proj(join_prefix(prefix, self.pool(spatial))), self.out_grid(grid)


@register_downsample("mean")
class MeanTokenPool(TokenPool):
    """2x2 average pooling, stride 2; a window that overhangs an odd edge averages its valid tokens."""

    def pool(self, spatial: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(spatial, kernel_size=2, stride=2, ceil_mode=True)


@register_downsample("max")
class MaxTokenPool(TokenPool):
    """2x2 max pooling, stride 2, ceil mode."""

    def pool(self, spatial: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(spatial, kernel_size=2, stride=2, ceil_mode=True)


@register_downsample("dwconv")
class DWConvTokenPool(TokenPool):
    """Strided depth-wise conv: 3x3, stride 2, padding 1, one filter per channel, with bias.

    The kernel is stride + 1 with padding stride // 2, as PiT's ``conv_head_pooling``; the
    width change, if any, is the shared pointwise linear of ``TokenPool``.
    """

    def __init__(self, in_dim: int, out_dim: int, grid: TokenGrid):
        super().__init__(in_dim, out_dim, grid)
        self.conv = nn.Conv2d(in_dim, in_dim, kernel_size=3, stride=2, padding=1, groups=in_dim)

    @classmethod
    def out_grid(cls, grid: TokenGrid) -> TokenGrid:
        return TokenGrid(conv_out(grid.height, 3, 2, 1), conv_out(grid.width, 3, 2, 1), grid.prefix)

    @classmethod
    def pool_flops(cls, dim: int, grid: TokenGrid) -> int:
        return cls.out_grid(grid).spatial * dim * 9  # one 3x3 filter per channel

    def pool(self, spatial: torch.Tensor) -> torch.Tensor:
        return self.conv(spatial)
