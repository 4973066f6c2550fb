"""Local-window self-attention: softmax attention inside non-overlapping w x w windows (Swin, no shift)."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MixerConfig
from ..layers import ForwardContext, TokenGrid
from ..registry import register_mixer
from .qkv import QkvMixer


@functools.lru_cache(maxsize=64)
def window_layout(height: int, width: int, window: int) -> tuple[int, int, int, int]:
    """``(wh, ww, padded_height, padded_width)``: the window sides and the grid padded to their multiples.

    A side longer than the grid is clipped to it (Swin does the same when the resolution is not
    larger than the window), so a small grid is one window rather than mostly padding.
    """
    wh, ww = min(window, height), min(window, width)
    return wh, ww, math.ceil(height / wh) * wh, math.ceil(width / ww) * ww


@functools.lru_cache(maxsize=64)
def padding_mask(height: int, width: int, window: int) -> torch.Tensor | None:
    """Additive key mask ``(windows, 1, 1, wh*ww)``: 0 on grid tokens, -inf on padding; None without padding."""
    wh, ww, hp, wp = window_layout(height, width, window)
    if (hp, wp) == (height, width):
        return None
    real = torch.zeros(hp, wp, dtype=torch.bool)
    real[:height, :width] = True
    keys = real.reshape(hp // wh, wh, wp // ww, ww).permute(0, 2, 1, 3).reshape(-1, 1, 1, wh * ww)
    return torch.zeros(keys.shape).masked_fill(~keys, float("-inf"))


@register_mixer("window")
class WindowAttention(QkvMixer):
    """Window self-attention, Swin's W-MSA without the shift (Liu et al., ICCV 2021), the local
    attention that DWNet (Han et al., ICLR 2022) compares its depth-wise convolution against.

    The token grid is cut into non-overlapping ``w x w`` windows (``window`` option, default 7 as
    Swin and DWNet); each grid token attends, per head, only to the tokens of its own window:
    ``softmax(q k^T / sqrt(d_h)) v`` over ``w^2`` keys, fused SDPA. Where the grid side is not a
    multiple of ``w``, q, k and v are zero-padded at the bottom and right to the next multiple
    and the padded keys are masked out (Swin pads the input and lets the padding be attended);
    a side shorter than ``w`` uses a window of that side (as Swin). Every window keeps at least
    one real key, so no softmax row is empty.

    The cls token (where the head is ``cls``) attends globally: its query takes all ``N``
    tokens, itself included, while grid tokens do not see it. Swin and DWNet have no cls token
    (they pool the grid); here the ``cls`` head reads only the cls token, so it must be able to
    gather the grid, or a stack of window layers would classify from a token that never saw the
    image. One global query costs ``2 N d``, linear in ``N``, so the mixer stays local in cost;
    keeping grid tokens blind to it keeps the windows exactly Swin's.

    FLOPs of one image (``n`` tokens, ``P`` prefix tokens, grid padded to ``Hp x Wp``, windows of
    ``T = wh*ww`` tokens, width ``d``): ``4*n*d*d`` (qkv, proj) ``+ 2*Hp*Wp*T*d`` (``q k^T`` and
    ``A v`` in every window, padding included, as it is computed) ``+ 2*P*n*d`` (the cls query).

    Deviations from Swin: no shifted windows (the DWNet comparison is the plain local window),
    no relative position bias (positions come from the model's ``position`` choice, RoPE
    included, applied before the windows are cut), padding masked. Weight sharing: the q/k/v
    rule of ``QkvMixer``; the windows hold no tensors.
    """

    SUMMARY = "Swin-style window attention in w x w windows, no shift (DWNet's baseline)"
    OPTIONS = {"window": 7, "qkv_bias": True}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)
        self.window = self.opts["window"]
        self.proj = nn.Linear(dim, dim)

    @classmethod
    def validate(cls, cfg: MixerConfig, dim: int, path: str) -> None:
        super().validate(cfg, dim, path)
        cls.require_at_least(cfg, "window", path)

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        wh, ww, hp, wp = window_layout(grid.height, grid.width, cls.option(cfg, "window"))
        n = grid.tokens
        return 4 * n * dim * dim + 2 * hp * wp * wh * ww * dim + 2 * grid.prefix * n * dim

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        grid, p = ctx.grid, ctx.grid.prefix
        q, k, v = self.project_qkv(x, ctx)  # each (B, H, N, d_h)
        wh, ww, hp, wp = window_layout(grid.height, grid.width, self.window)
        mask = padding_mask(grid.height, grid.width, self.window)
        if mask is not None:
            mask = mask.to(device=x.device, dtype=q.dtype)
        qw, kw, vw = (self.to_windows(t[:, :, p:], grid, wh, ww, hp, wp) for t in (q, k, v))
        out = F.scaled_dot_product_attention(qw, kw, vw, attn_mask=mask)  # (B, windows, H, T, d_h)
        out = self.from_windows(out, grid, wh, ww, hp, wp)  # (B, H, H*W, d_h)
        if p:
            out = torch.cat([F.scaled_dot_product_attention(q[:, :, :p], k, v), out], dim=2)  # global cls query
        return self.merge_heads(out)

    @staticmethod
    def to_windows(t: torch.Tensor, grid: TokenGrid, wh: int, ww: int, hp: int, wp: int) -> torch.Tensor:
        """Grid tokens ``(B, H, h*w, d_h)`` -> windows ``(B, windows, H, wh*ww, d_h)``, zero-padded."""
        b, heads, _, d = t.shape
        t = t.reshape(b, heads, grid.height, grid.width, d)
        if (hp, wp) != (grid.height, grid.width):
            t = F.pad(t, (0, 0, 0, wp - grid.width, 0, hp - grid.height))
        t = t.reshape(b, heads, hp // wh, wh, wp // ww, ww, d).permute(0, 2, 4, 1, 3, 5, 6)
        return t.reshape(b, (hp // wh) * (wp // ww), heads, wh * ww, d)

    @staticmethod
    def from_windows(t: torch.Tensor, grid: TokenGrid, wh: int, ww: int, hp: int, wp: int) -> torch.Tensor:
        """Inverse of ``to_windows``, padding dropped: ``(B, windows, H, wh*ww, d_h)`` -> ``(B, H, h*w, d_h)``."""
        b, _, heads, _, d = t.shape
        t = t.reshape(b, hp // wh, wp // ww, heads, wh, ww, d).permute(0, 3, 1, 4, 2, 5, 6)
        t = t.reshape(b, heads, hp, wp, d)[:, :, : grid.height, : grid.width]
        return t.reshape(b, heads, grid.spatial, d)
