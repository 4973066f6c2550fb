"""Rotary position embedding (RoPE) on the token grid, for the attention-family mixers.

ViX (Jeevan & Sethi 2022, "Vision Xformers") replaces the learned position embedding with
RoPE (Su et al. 2021, "RoFormer") applied to the queries and keys of every attention layer.
The model sets one ``AxialRoPE`` on ``ForwardContext.rope`` when ``position: rope``; mixers
call ``ctx.apply_rope(q, k)``, which calls ``rope(q, ctx.grid)`` and ``rope(k, ctx.grid)``.

1-D or 2-D: **2-D axial.** ViX's code rotates by the 1-D sequence index of the flattened
grid (``lucidrains``' ``FixedPositionalEmbedding``, cls token at index 0). On an image that
index makes horizontal neighbours 1 apart but vertical neighbours ``W`` apart, and the last
token of a row 1 apart from the first of the next; the relative-position property of RoPE
then encodes a raster-scan distance, not the 2-D offset. Axial RoPE rotates half of the
rotated pairs with the row index and half with the column index, so ``q_i . k_j`` depends
on ``(row_j - row_i, col_j - col_i)`` only: the image's own translation structure, valid
for any grid and after every token pooling (positions are the current grid's indices).
This is the one deviation from ViX's RoPE.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import TokenGrid


class AxialRoPE(nn.Module):
    """2-D axial rotary embedding of ``(..., N, d_h)`` queries or keys on a ``TokenGrid``.

    Channel ``c < P`` (``P = d_h // 2`` pairs) is rotated together with channel ``c + P``
    ("rotate half" layout). The first ``ceil(P / 2)`` pairs turn with the row index, the other
    ``floor(P / 2)`` with the column index; pair ``j`` of an axis with ``P_a`` pairs turns at
    frequency ``base ** (-j / P_a)`` as in RoFormer. An odd ``d_h`` leaves its last channel
    unrotated; ``d_h = 2`` rotates with the row only. Prefix tokens (cls) sit off the grid
    and are not rotated (cos 1, sin 0: returned bit-exactly).

    The module has no parameters or buffers; the cos/sin tables are computed per grid and
    head dim (element-wise and data-movement ops only, free by the FLOP convention) and
    memoised. The rotation itself is element-wise, so RoPE adds no FLOPs.

    Args:
        base: frequency base (RoFormer and ViX use 10000).
    """

    def __init__(self, base: float = 10000.0):
        super().__init__()
        self.base = float(base)
        self._tables: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def tables(
        self, grid: TokenGrid, head_dim: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(cos, sin)``, each ``(grid.tokens, head_dim)``, prefix rows first."""
        dtype = dtype or torch.get_default_dtype()
        key = (grid.height, grid.width, grid.prefix, head_dim, str(device), dtype)
        if key not in self._tables:
            self._tables[key] = self._make_tables(grid, head_dim, device, dtype)
        return self._tables[key]

    def _make_tables(
        self, grid: TokenGrid, head_dim: int, device: torch.device | None, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = head_dim // 2
        row_pairs = (pairs + 1) // 2
        col_pairs = pairs - row_pairs
        f64 = {"device": device, "dtype": torch.float64}
        shape = (grid.height, grid.width)
        rows = torch.arange(grid.height, **f64)[:, None].expand(shape).reshape(-1)  # row of each token
        cols = torch.arange(grid.width, **f64)[None, :].expand(shape).reshape(-1)  # column of each token
        angles = [rows[:, None] * self._inv_freq(row_pairs, f64)[None, :]]
        if col_pairs:
            angles.append(cols[:, None] * self._inv_freq(col_pairs, f64)[None, :])
        angle = torch.cat(angles, dim=1)  # (H*W, P)
        rest = head_dim - 2 * pairs  # 1 for an odd head dim: that channel is not rotated
        ones = torch.ones(grid.spatial, rest, **f64)
        zeros = torch.zeros(grid.spatial, rest, **f64)
        cos = torch.cat([angle.cos(), angle.cos(), ones], dim=1)
        sin = torch.cat([angle.sin(), angle.sin(), zeros], dim=1)
        # Prefix (cls) rows: identity rotation.
        cos = torch.cat([torch.ones(grid.prefix, head_dim, **f64), cos], dim=0)
        sin = torch.cat([torch.zeros(grid.prefix, head_dim, **f64), sin], dim=0)
        return cos.to(dtype), sin.to(dtype)

    def _inv_freq(self, n: int, f64: dict) -> torch.Tensor:
        return self.base ** (-torch.arange(n, **f64) / n)

    def forward(self, x: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
        """Rotate ``x`` of shape ``(..., grid.tokens, d_h)``; same shape out."""
        n, d = x.shape[-2], x.shape[-1]
        assert n == grid.tokens, f"RoPE got {n} tokens for a grid of {grid.tokens}"
        cos, sin = self.tables(grid, d, x.device, x.dtype)
        pairs = d // 2
        # "rotate half": (x1, x2) -> (-x2, x1) on the pairs (c, c + P); the odd channel has sin 0.
        rotated = torch.cat([-x[..., pairs : 2 * pairs], x[..., :pairs], x[..., 2 * pairs :]], dim=-1)
        return x * cos + rotated * sin

    def extra_repr(self) -> str:
        return f"axial 2-D, base={self.base:g}"
