"""FNet token mixing: the real part of a 2-D Fourier transform, no parameters."""

from __future__ import annotations

import functools
import math
from typing import Any

import torch

from ..config import MixerConfig
from ..layers import ForwardContext, Mixer, TokenGrid
from ..registry import register_mixer


@functools.lru_cache(maxsize=32)
def _dft_matrices(size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """``Cos`` and ``Sin``, ``(size, size)``: ``cos`` and ``sin`` of ``2 pi k n / size``.

    The angle is reduced exactly (``k n mod size``, in integers) and evaluated in float64, then
    rounded once to ``dtype``, so the matrices are as exact as ``dtype`` allows at any size.
    """
    k = torch.arange(size, dtype=torch.int64)
    angle = torch.outer(k, k).remainder(size).to(torch.float64) * (2 * math.pi / size)
    return torch.cos(angle).to(dtype), torch.sin(angle).to(dtype)


@functools.lru_cache(maxsize=32)
def _mirror_index(size: int) -> torch.Tensor:
    """For each of ``size`` frequencies, its row in ``[U; V]`` (``2h`` rows, ``h = size // 2 + 1``).

    Frequency ``k < h`` is row ``k`` of ``U``; frequency ``k >= h`` is ``size - k`` of ``V``, row ``h + size - k``.
    """
    half = size // 2 + 1
    return torch.tensor([k if k < half else half + size - k for k in range(size)], dtype=torch.int64)


def real_dft2_matmul(x: torch.Tensor) -> torch.Tensor:
    """``Re(F_N X F_C)`` of ``(B, N, C)`` by real matrix products: FNet's deployed (ONNX) form.

    With ``F = Cos - i Sin`` (symmetric DFT matrices), ``Re(F_N X F_C) = Cos_N X Cos_C -
    Sin_N X Sin_C``. ``Cos`` is even and ``Sin`` odd in the frequency ``k``, so only the first
    ``h = N // 2 + 1`` token frequencies are multiplied out: ``P = Cos_N[:h] (X Cos_C)``,
    ``Q = Sin_N[:h] (X Sin_C)``; frequency ``k < h`` is ``P - Q`` at ``k`` and ``k >= h`` is
    ``P + Q`` at ``N - k``, one row gather. ``2 N C^2 + 2 h N C`` multiply-adds (about
    ``2 N C^2 + N^2 C``); the same mirror on the channel axis would halve the first term but
    needs a gather along the last axis, which cost onnxruntime more than it saved at 197 tokens.
    """
    n, c = (int(size) for size in x.shape[-2:])  # Python ints: constant matrices in a traced graph
    half = n // 2 + 1
    cos_n, sin_n = (t[:half].to(x.device) for t in _dft_matrices(n, x.dtype))
    cos_c, sin_c = (t.to(x.device) for t in _dft_matrices(c, x.dtype))
    p = cos_n @ (x @ cos_c)  # (B, h, C)
    q = sin_n @ (x @ sin_c)
    return torch.cat([p - q, p + q], dim=-2).index_select(-2, _mirror_index(n).to(x.device))


def fft_flops(inputs: list[Any], outputs: list[Any]) -> int:
    """fvcore handle: ``N log2 N`` per transformed line for each transformed dimension (radix-2).

    Applies to ``aten::fft_fft`` (one dim, given or the last), ``aten::fft_fft2`` and
    ``aten::fft_fftn`` (the given dims, default the last two / all).
    """
    shape = inputs[0].type().sizes()
    numel = math.prod(int(size) for size in shape)
    dims = _fft_dims(inputs, len(shape))
    return int(sum(numel * math.log2(shape[d]) for d in dims if shape[d] > 1))


def _fft_dims(inputs: list[Any], rank: int) -> list[int]:
    # fft_fft(self, n, dim, norm); fft_fft2(self, s, dim, norm); fft_fftn(self, s, dim, norm)
    dim_arg = inputs[2].toIValue() if len(inputs) > 2 else None
    if dim_arg is None and len(inputs) > 2 and inputs[2].node().kind() == "prim::ListConstruct":
        # a traced dim list (fft2's default (-2, -1), or fftn's dim=...) is built, not a constant
        dim_arg = [v.toIValue() for v in inputs[2].node().inputs()]
    if dim_arg is None:
        return list(range(rank))
    if isinstance(dim_arg, int):
        return [dim_arg % rank]
    return [d % rank for d in dim_arg]


def _fft2_symbolic(g, x, s, dim, norm):
    """ONNX: ``aten::fft_fft2`` of a real tensor as one ``DFT`` per transformed axis, on a trailing
    (real, imag) axis. ``DFT``'s ``axis`` is an attribute up to opset 19 and an input from 20, so
    this serves opsets 17 to 19 (``onnx_export.OPSETS``)."""
    from torch.onnx import symbolic_helper

    dims = symbolic_helper._maybe_get_const(dim, "is")
    if not isinstance(dims, (list, tuple)):
        raise RuntimeError("fft2 export: the transformed dims must be constants")
    if not symbolic_helper._is_none(s):
        raise RuntimeError("fft2 export: an explicit output size s is not supported")
    if not symbolic_helper._is_none(norm):
        raise RuntimeError("fft2 export: only the default norm ('backward') is supported")
    out = g.op("Unsqueeze", x, g.op("Constant", value_t=torch.tensor([-1])))  # (..., 1): real signal
    for d in dims:
        # one more trailing axis than the torch tensor: count negative axes one further from the end
        out = g.op("DFT", out, axis_i=d - 1 if d < 0 else d, inverse_i=0, onesided_i=0)
    return out  # (..., 2): real and imaginary parts


def _real_symbolic(g, x):
    """ONNX has no complex tensors: ``aten::real`` takes element 0 of the trailing (real, imag) axis."""
    return g.op("Gather", x, g.op("Constant", value_t=torch.tensor(0)), axis_i=-1)


@register_mixer("fnet")
class FNet(Mixer):
    """FNet mixing (Lee-Thorp et al., "FNet: Mixing Tokens with Fourier Transforms", NAACL 2022).

    ``Re(FFT_seq(FFT_hidden(x)))`` on ``(B, N, C)``: one ``torch.fft.fft2`` over the token
    and channel axes (cls token included, as FNet transforms its whole sequence), then the
    real part. No parameters, no normalisation: the output grows like ``sqrt(N C)`` and the
    block's pre-norm of the next sublayer absorbs it, as in ViX's FNet.

    Kernels, one function (outputs equal within float32 rounding, tested): torch runs the FFT,
    which measured as fast as or faster than every real-matmul form on the CPU at every shape
    tried (``studies/flops_to_time.md``; 50 to 1,025 tokens); the ONNX export runs
    ``real_dft2_matmul`` (DFT matrices as constants, four ``MatMul``s), because onnxruntime's
    ``DFT`` op runs at 0.1 GFLOP/s (8.8 ms at 197 tokens, against under 1 ms for the matmuls).
    The FNet paper itself computes its DFT with matrices on TPUs for short sequences.

    FLOPs: counted as the transform, ``N log2 N`` per transformed line (``fft_flops``, this
    mixer's fvcore handle): ``C`` lines of length ``N`` and ``N`` lines of length ``C``,
    whichever kernel runs, not as the deployed matmuls (``2 N C^2 + N^2 C``, ~50x more at 197
    tokens). The count is what the budget check uses before any model exists, so it cannot
    depend on the backend a model is later deployed to (torch's FFT and the ONNX matmuls would
    give two counts for one architecture), and it keeps the convention every recorded FNet
    count (presets, studies) was made under. The price: FNet's FLOPs understate its time, the
    lowest FLOPs-to-time ratio in the table; a latency objective, not the FLOP count, ranks it.

    Half-precision inputs are transformed in float32 (CPU FFTs have no half kernels and cuFFT
    only power-of-two half sizes); deviation from the paper: none.
    """

    SUMMARY = "FNet: real part of a 2-D FFT, no parameters (ViX)"
    OPTIONS: dict = {}
    FLOP_HANDLES = {"aten::fft_fft": fft_flops, "aten::fft_fft2": fft_flops, "aten::fft_fftn": fft_flops}
    FREE_OPS = frozenset({"aten::real", "aten::imag"})
    # Any other torch.fft.fft2(...).real exports through these (FNet's own export form needs none).
    ONNX_SYMBOLICS = {"aten::fft_fft2": _fft2_symbolic, "aten::real": _real_symbolic}

    def __init__(self, dim: int, cfg: MixerConfig, grid: TokenGrid):
        super().__init__(dim, cfg, grid)

    @classmethod
    def flops(cls, dim: int, cfg: MixerConfig, grid: TokenGrid) -> int:
        n = grid.tokens
        # Same expression, in the same order, as fft_flops on aten::fft_fft2 over dims (-2, -1).
        return int(sum(n * dim * math.log2(size) for size in (n, dim) if size > 1))

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return real_dft2_matmul(x)
        if x.dtype in (torch.float16, torch.bfloat16):
            return torch.fft.fft2(x.float(), dim=(-2, -1)).real.to(x.dtype)
        return torch.fft.fft2(x, dim=(-2, -1)).real
