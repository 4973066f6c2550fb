"""FNet token mixing: the real part of a 2-D Fourier transform, no parameters."""

from __future__ import annotations

import math

import torch

from ..config import MixerConfig
from ..layers import ForwardContext, Mixer, TokenGrid
from ..registry import register_mixer


@register_mixer("fnet")
class FNet(Mixer):
    """FNet mixing (Lee-Thorp et al., "FNet: Mixing Tokens with Fourier Transforms", NAACL 2022).

    ``Re(FFT_seq(FFT_hidden(x)))`` on ``(B, N, C)``: one ``torch.fft.fft2`` over the token
    and channel axes (cls token included, as FNet transforms its whole sequence), then the
    real part. No parameters, no normalisation: the output grows like ``sqrt(N C)`` and the
    block's pre-norm of the next sublayer absorbs it, as in ViX's FNet.

    Counted as ``N log2 N`` per transformed line (``fft_flops`` in
    ``evaluators/complexity.py``): ``C`` lines of length ``N`` and ``N`` lines of length ``C``.
    Half-precision inputs are transformed in float32 (CPU FFTs have no half kernels and cuFFT
    only power-of-two half sizes); deviation from the paper: none.
    """

    SUMMARY = "FNet: real part of a 2-D FFT, no parameters (ViX)"
    OPTIONS: dict = {}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        n = grid.tokens
        # Same expression, in the same order, as fft_flops on aten::fft_fft2 over dims (-2, -1).
        return int(sum(n * dim * math.log2(size) for size in (n, dim) if size > 1))

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        if x.dtype in (torch.float16, torch.bfloat16):
            return torch.fft.fft2(x.float(), dim=(-2, -1)).real.to(x.dtype)
        return torch.fft.fft2(x, dim=(-2, -1)).real
