"""Linformer self-attention: keys and values projected along the sequence to ``k`` rows."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, MixerConfig
from ..layers import ForwardContext, Mixer, TokenGrid
from ..registry import register_mixer


@register_mixer("linformer")
class Linformer(Mixer):
    """Linformer attention (Wang et al., "Linformer: Self-Attention with Linear Complexity", 2020).

    Keys and values ``(B, H, N, d_h)`` are mapped along the sequence by one learned
    ``E: N -> k`` (the paper's key-value sharing, ``E = F``, shared by all heads), then
    ``softmax(q (E k)^T / sqrt(d_h)) (E v)`` runs as fused SDPA over ``k`` projected tokens:
    ``O(N k)`` instead of ``O(N^2)``. ``N = grid.tokens`` (cls token included) is fixed when
    the mixer is built, as in the paper, so a model only runs at the token grid it was built for.

    Options:
        k: projected length (the paper's and ViX's code use 64). When ``k >= N`` it is clipped
            to ``N`` (a square learned token mix): validation cannot see ``N`` (it depends on the
            image size) and a longer projection would only add cost.
        qkv_bias: bias in the fused qkv projection.

    Deviations: ``W_K`` and ``W_V`` stay separate (ViX's code also shares ``W_K = W_V`` and uses
    one kv head); ``E`` is initialised like fairseq's Linformer (Xavier uniform, gain
    ``1/sqrt(2)``) and is a parameter, not an ``nn.Linear``, so the ViT init does not rescale it.
    RoPE, when used, rotates keys before the sequence projection.
    """

    SUMMARY = "Linformer: keys/values projected along the sequence to k (ViX)"
    OPTIONS = {"k": 64, "qkv_bias": True}
    USES_HEADS = True

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)
        self.heads = self.resolve_heads(cfg, dim)
        self.head_dim = dim // self.heads
        self.seq_len = grid.tokens
        self.k = self.resolve_k(cfg, grid)
        self.qkv = nn.Linear(dim, dim * 3, bias=self.opts["qkv_bias"])
        self.seq_proj = nn.Parameter(torch.empty(self.k, self.seq_len))  # E, shared by keys and values
        nn.init.xavier_uniform_(self.seq_proj, gain=1 / math.sqrt(2))
        self.proj = nn.Linear(dim, dim)

    @classmethod
    def resolve_k(cls, cfg: MixerConfig, grid: TokenGrid) -> int:
        return min(cfg.option("k", cls.OPTIONS["k"]), grid.tokens)

    @classmethod
    def validate(cls, cfg: MixerConfig, dim: int, path: str) -> None:
        super().validate(cfg, dim, path)
        k = cfg.option("k", cls.OPTIONS["k"])
        if k < 1:
            raise ConfigError(f"{path}.k", f"must be at least 1, got {k}")

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        n, k = grid.tokens, cls.resolve_k(cfg, grid)
        # qkv and proj; E on keys and on values; q (Ek)^T and attn (Ev) inside SDPA
        return 4 * n * dim * dim + 2 * n * k * dim + 2 * n * k * dim

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        b, n, c = x.shape
        assert n == self.seq_len, f"Linformer was built for {self.seq_len} tokens, got {n}"
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, N, d_h)
        q, k = ctx.apply_rope(q, k)
        k = F.linear(k.transpose(-2, -1), self.seq_proj).transpose(-2, -1)  # (B, H, k, d_h)
        v = F.linear(v.transpose(-2, -1), self.seq_proj).transpose(-2, -1)  # (B, H, k, d_h)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, d_h)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))
