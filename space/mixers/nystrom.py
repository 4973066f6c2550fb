"""Nystromformer self-attention: segment-mean landmarks and an iterative pseudo-inverse."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConfigError, MixerConfig
from ..layers import ForwardContext, SupernetSizes, TokenGrid
from ..registry import register_mixer
from .qkv import QkvMixer


def landmark_layout(tokens: int, landmarks: int) -> tuple[int, int, int]:
    """``(m, segment, pad)``: landmarks actually used, tokens per segment, zeros padded in front.

    Segments have equal length ``ceil(N / min(landmarks, N))``; the sequence is padded in
    front to ``m * segment`` tokens (lucidrains' nystrom-attention, which ViX uses, pads the
    same way). ``m`` is reduced so that no segment is pure padding: with padding up to
    ``m - 1`` tokens, that code's extra segments hold only padding and are masked out, so
    the landmarks that carry tokens are exactly these ``m``.
    """
    segment = math.ceil(tokens / min(landmarks, tokens))
    m = math.ceil(tokens / segment)
    return m, segment, m * segment - tokens


def landmark_counts(tokens: int, landmarks: int, device: torch.device | None = None) -> torch.Tensor:
    """``(m, 1)``: real tokens in each landmark segment (the first one holds the padding)."""
    m, segment, pad = landmark_layout(tokens, landmarks)
    counts = torch.full((m, 1), float(segment), device=device)
    counts[0] -= pad
    return counts


def value_conv(heads: int, kernel: int) -> nn.Conv2d | None:
    """The depth-wise convolution along the sequence over each head's values (``None`` for kernel 0)."""
    if not kernel:
        return None
    return nn.Conv2d(heads, heads, (kernel, 1), padding=(kernel // 2, 0), groups=heads, bias=False)


def iterative_pinv(a: torch.Tensor, iters: int) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse of ``(..., m, m)`` matrices (Nystromformer eq. 16).

    ``Z_0 = A^T / (||A||_1 ||A||_inf)`` per matrix, then
    ``Z <- Z (13 I - A Z (15 I - A Z (7 I - A Z))) / 4``. ``A`` is a softmax output, so its
    entries are positive and the norms are the largest column and row sums.
    """
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    norm_1 = a.sum(dim=-2).amax(dim=-1)  # largest column sum
    norm_inf = a.sum(dim=-1).amax(dim=-1)  # largest row sum (1 for a softmax)
    z = a.transpose(-2, -1) / (norm_1 * norm_inf)[..., None, None]
    for _ in range(iters):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


@register_mixer("nystrom")
class Nystrom(QkvMixer):
    """Nystromformer attention (Xiong et al., "Nystromformer: A Nystrom-Based Algorithm for
    Approximating Self-Attention", AAAI 2021).

    With landmark queries and keys ``q~, k~`` (means of ``m`` contiguous segments of the
    sequence, cls token included) the attention is
    ``softmax(q k~^T) pinv(softmax(q~ k~^T)) softmax(q~ k^T) v``, with ``q, k`` each scaled
    by ``d_h^(-1/4)`` and the pseudo-inverse from 6 iterations of the paper's cubic iteration;
    a depth-wise convolution along the sequence over each head's values (kernel 33, the
    official code's ``Conv2d(heads, heads, (33, 1), groups=heads)``) is added as a residual.
    Cost ``O(N m d_h + m^3)`` per head instead of ``O(N^2 d_h)``.

    Options:
        landmarks: at most this many landmarks (paper and ViX: 64); fewer when ``N`` is smaller,
            or when ``N`` is not a multiple, see ``landmark_layout``.
        pinv_iters: iterations of the pseudo-inverse (paper: 6).
        conv_kernel: odd kernel of the depth-wise value convolution; 0 = no convolution.
        qkv_bias: bias in the fused qkv projection.

    Deviations: when ``N`` is not a multiple of the segment length, only the landmark means
    see padding (front zeros, divided by the count of real tokens), so queries, keys and
    values are never padded and there is nothing to drop afterwards; the output on real
    tokens is the padded-and-masked computation's. ``Z_0`` uses each matrix's own norms (the
    paper's formula, the official code's exact-coefficient option) rather than the maximum
    over the batch, so an image's output does not depend on the rest of the batch. The
    product is evaluated as ``k1 (Z (k3 v))``, the same value in fewer FLOPs than
    ``(k1 Z)(k3 v)`` when ``N > d_h``.

    Weight sharing: the value convolution is per head, so a supernet layer holds it at the most
    heads and a path takes its leading heads.
    """

    SUMMARY = "Nystromformer: landmark approximation of softmax attention (ViX)"
    OPTIONS = {"landmarks": 64, "pinv_iters": 6, "conv_kernel": 33, "qkv_bias": True}
    FREE_OPS = frozenset({"aten::eye"})  # the pseudo-inverse's identity matrices

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)
        self.tokens = grid.tokens
        self.landmarks, self.segment, self.pad = landmark_layout(grid.tokens, self.opts["landmarks"])
        self.pinv_iters = self.opts["pinv_iters"]
        self.register_buffer("counts", landmark_counts(grid.tokens, self.opts["landmarks"]), persistent=False)
        self.conv = value_conv(self.heads, self.opts["conv_kernel"])
        self.proj = nn.Linear(dim, dim)

    @classmethod
    def validate(cls, cfg: MixerConfig, dim: int, path: str) -> None:
        super().validate(cfg, dim, path)
        for key in ("landmarks", "pinv_iters"):
            cls.require_at_least(cfg, key, path)
        kernel = cfg.option("conv_kernel", cls.OPTIONS["conv_kernel"])
        if kernel < 0 or (kernel and kernel % 2 == 0):
            raise ConfigError(f"{path}.conv_kernel", f"must be 0 (no conv) or a positive odd number, got {kernel}")

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        n, h = grid.tokens, cls.resolve_heads(cfg, dim)
        m, _, _ = landmark_layout(n, cfg.option("landmarks", cls.OPTIONS["landmarks"]))
        iters = cfg.option("pinv_iters", cls.OPTIONS["pinv_iters"])
        kernel = cfg.option("conv_kernel", cls.OPTIONS["conv_kernel"])
        return (
            4 * n * dim * dim  # qkv and proj
            + 4 * n * m * dim  # q k~^T, q~ k^T, k3 v, k1 (.)
            + 2 * m * m * dim  # q~ k~^T, Z (.)
            + 4 * iters * h * m**3  # four m x m x m products per iteration
            + n * dim * kernel  # depth-wise value convolution
        )

    @classmethod
    def supernet_weights(cls, cfg: MixerConfig, sizes: SupernetSizes) -> nn.Module:
        weights = cls.qkv_supernet_weights(cfg, sizes)
        weights.conv = value_conv(sizes.heads, cls.option(cfg, "conv_kernel"))
        return weights

    def supernet_sources(self, weights: nn.Module) -> dict[str, torch.Tensor]:
        # counts is derived from the grid and not saved: computed afresh where the weights live
        counts = landmark_counts(self.tokens, self.opts["landmarks"], device=weights.proj.weight.device)
        return {**super().supernet_sources(weights), "counts": counts}

    def segment_means(self, t: torch.Tensor) -> torch.Tensor:
        """``(B, H, N, d_h)`` -> landmarks ``(B, H, m, d_h)``, the means of contiguous segments."""
        b, h, _, d = t.shape
        if self.pad:
            t = F.pad(t, (0, 0, self.pad, 0))
        return t.reshape(b, h, self.landmarks, self.segment, d).sum(dim=-2) / self.counts

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        q, k, v = self.project_qkv(x, ctx)  # each (B, H, N, d_h)
        scale = self.head_dim**-0.25
        q, k = q * scale, k * scale
        q_land, k_land = self.segment_means(q), self.segment_means(k)  # (B, H, m, d_h)
        kernel_1 = (q @ k_land.transpose(-2, -1)).softmax(dim=-1)  # (B, H, N, m)
        kernel_2 = (q_land @ k_land.transpose(-2, -1)).softmax(dim=-1)  # (B, H, m, m)
        kernel_3 = (q_land @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, H, m, N)
        z = iterative_pinv(kernel_2, self.pinv_iters)  # (B, H, m, m)
        out = kernel_1 @ (z @ (kernel_3 @ v))  # (B, H, N, d_h)
        if self.conv is not None:
            out = out + self.conv(v)
        return self.merge_heads(out)
