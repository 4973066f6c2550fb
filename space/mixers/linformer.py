"""Linformer self-attention: keys and values projected along the sequence to ``k`` rows."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import MixerConfig
from ..layers import ForwardContext, SupernetSizes, TokenGrid
from ..registry import register_mixer
from .qkv import QkvMixer


def sequence_projection(k: int, tokens: int) -> nn.Parameter:
    """``E: N -> k``, initialised like fairseq's Linformer (Xavier uniform, gain ``1/sqrt(2)``)."""
    e = nn.Parameter(torch.empty(k, tokens))
    nn.init.xavier_uniform_(e, gain=1 / math.sqrt(2))
    return e


@register_mixer("linformer")
class Linformer(QkvMixer):
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

    Weight sharing: ``E`` is held per token count ``N`` (positions of different grids mean
    different things); a path takes the leading ``k`` rows of its grid's ``E``.
    """

    SUMMARY = "Linformer: keys/values projected along the sequence to k (ViX)"
    OPTIONS = {"k": 64, "qkv_bias": True}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)
        self.seq_len = grid.tokens
        self.k = self.resolve_k(cfg, grid)
        self.seq_proj = sequence_projection(self.k, self.seq_len)  # E, shared by keys and values
        self.proj = nn.Linear(dim, dim)

    @classmethod
    def resolve_k(cls, cfg: MixerConfig, grid: TokenGrid) -> int:
        return min(cfg.option("k", cls.OPTIONS["k"]), grid.tokens)

    @classmethod
    def validate(cls, cfg: MixerConfig, dim: int, path: str) -> None:
        super().validate(cfg, dim, path)
        cls.require_at_least(cfg, "k", path)

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        n, k = grid.tokens, cls.resolve_k(cfg, grid)
        # qkv and proj; E on keys and on values; q (Ek)^T and attn (Ev) inside SDPA
        return 4 * n * dim * dim + 2 * n * k * dim + 2 * n * k * dim

    @classmethod
    def supernet_weights(cls, cfg: MixerConfig, sizes: SupernetSizes) -> nn.Module:
        weights = cls.qkv_supernet_weights(cfg, sizes)
        weights.seq_proj = nn.ParameterDict()
        for n in sorted({grid.tokens for grid in sizes.grids}):
            weights.seq_proj[f"n{n}"] = sequence_projection(min(cls.option(cfg, "k"), n), n)
        return weights

    def supernet_sources(self, weights: nn.Module) -> dict[str, torch.Tensor]:
        key = f"n{self.seq_len}"
        if key not in weights.seq_proj:
            raise LookupError(f"no Linformer projection for {self.seq_len} tokens in the supernet")
        return {**super().supernet_sources(weights), "seq_proj": weights.seq_proj[key]}

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        n = x.shape[1]
        assert n == self.seq_len, f"Linformer was built for {self.seq_len} tokens, got {n}"
        q, k, v = self.project_qkv(x, ctx)  # each (B, H, N, d_h)
        k = F.linear(k.transpose(-2, -1), self.seq_proj).transpose(-2, -1)  # (B, H, k, d_h)
        v = F.linear(v.transpose(-2, -1), self.seq_proj).transpose(-2, -1)  # (B, H, k, d_h)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, H, N, d_h)
        return self.merge_heads(x)
