"""Multi-head softmax self-attention (ViT / DeiT), fused SDPA with an explicit-math path."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MixerConfig
from ..layers import ForwardContext, TokenGrid
from ..registry import register_mixer
from .qkv import QkvMixer


@register_mixer("attention")
class Attention(QkvMixer):
    """timm's ``Attention``: ``proj(softmax(q k^T / sqrt(d_h)) v)`` with one fused qkv linear.

    ``fused=True`` runs ``F.scaled_dot_product_attention``; ``fused=False`` writes the same
    math out, which tests use to check the fused kernel and FLOP handles.

    PSViT attention sharing (Chen et al. 2021; protocol on ``ForwardContext``):
    ``keep_attention=True`` makes this block take the explicit path and store its
    post-softmax map in ``ctx.attn``; ``share_attention=True`` builds a block without query
    and key weights (a ``v`` linear instead of ``qkv``) that applies the kept map to its own
    values: ``proj(A_prev v)``. Deviation: none; PSViT reuses the previous layer's map as is.
    """

    SUMMARY = "softmax self-attention (ViT/DeiT), fused SDPA"
    OPTIONS = {"qkv_bias": True}
    SHARES_ATTENTION = True

    def __init__(
        self,
        dim: int,
        cfg: MixerConfig,
        grid: TokenGrid,
        *,
        share_attention: bool = False,
        keep_attention: bool = False,
    ):
        super().__init__(dim, cfg, grid, values_only=share_attention)
        self.share_attention = share_attention
        self.keep_attention = keep_attention
        self.proj = nn.Linear(dim, dim)
        self.fused = True

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid, *, share_attention: bool = False) -> int:
        n = grid.tokens
        if share_attention:
            return n * dim * dim + n * n * dim + n * dim * dim  # v, (shared attn) v, proj
        return n * dim * 3 * dim + 2 * n * n * dim + n * dim * dim  # qkv, q k^T and attn v, proj

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        b, n, _ = x.shape
        if self.share_attention:
            attn = ctx.shared_attention(b, self.heads, n)  # (B, H, N, N), kept by an earlier block
            return self.merge_heads(attn @ self.project_v(x))
        q, k, v = self.project_qkv(x, ctx)  # each (B, H, N, d_h)
        if self.fused and not self.keep_attention:
            x = F.scaled_dot_product_attention(q, k, v)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, N)
            if self.keep_attention:
                ctx.attn = attn
            x = attn @ v
        return self.merge_heads(x)
