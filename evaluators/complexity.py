"""Complexity: FLOPs (fvcore with audited handles) and parameter counts.

Convention (docs/design.md, "Complexity conventions"): one fused multiply-add is one FLOP,
element-wise ops are free, and the model is counted in eval mode. fvcore counts
``scaled_dot_product_attention``, FFTs and other ops as zero out of the box; here every costly
op the blocks use has a handle, and an op that is neither handled nor on ``FREE_OPS`` raises
``UncountedOpError`` instead of silently counting zero.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch

with warnings.catch_warnings():  # fvcore's import scripts a function; torch deprecates torch.jit.script
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    from fvcore.nn import FlopCountAnalysis
    from fvcore.nn.jit_handles import get_shape
from torch import nn

from vitsearch.space.analytic import analytic_flops, analytic_params  # noqa: F401 (re-exported)

Handle = Callable[[list[Any], list[Any]], int]


class UncountedOpError(RuntimeError):
    """The traced model ran an op that has neither a FLOP handle nor a place on the free list."""


def _prod(values: Iterable[int]) -> int:
    return math.prod(int(v) for v in values)


def sdpa_flops(inputs: list[Any], outputs: list[Any]) -> int:
    """``softmax(q k^T) v``: ``B*H * N*M*d`` for the scores plus ``B*H * N*M*d_v`` for the values."""
    q, k, v = (get_shape(t) for t in inputs[:3])
    batch = _prod(q[:-2])
    n, d, m, dv = q[-2], q[-1], k[-2], v[-1]
    return batch * n * m * (d + dv)


# Handles vitsearch adds on top of fvcore's defaults (matmul, linear, conv, einsum, norms...), for
# ops any block may use; a mixer declares those only it uses (``Mixer.FLOP_HANDLES``).
EXTRA_HANDLES: dict[str, Handle] = {
    "aten::scaled_dot_product_attention": sdpa_flops,
}

# Ops that cost nothing by the convention: element-wise arithmetic and activations, and
# pooling (PoolFormer's published 1.8226 GFLOPs counts its pooling mixers as zero).
FREE_OPS: frozenset[str] = frozenset(
    f"aten::{op}"
    for op in (
        "add add_ sub sub_ rsub mul mul_ div div_ neg exp log sqrt rsqrt pow reciprocal abs sign "
        "gelu relu relu_ relu6 hardtanh silu sigmoid tanh softmax log_softmax clamp clamp_ maximum minimum "
        "avg_pool2d max_pool2d cos sin where masked_fill fill_ zero_ zeros_like ones_like "
        "sum mean amax max min square floor ceil round pad"
    ).split()
)


@functools.cache
def _declared_by_mixers() -> tuple[dict[str, Handle], frozenset[str]]:
    """Handles and free ops the registered mixers declare (``Mixer.FLOP_HANDLES``, ``Mixer.FREE_OPS``)."""
    from vitsearch.space import get_mixer, list_mixers

    handles: dict[str, Handle] = {}
    free: set[str] = set()
    for name in list_mixers():
        mixer = get_mixer(name)
        for op, handle in mixer.FLOP_HANDLES.items():
            if handles.setdefault(op, handle) is not handle:
                raise ValueError(f"mixer {name!r} declares a second FLOP handle for {op}")
        free |= mixer.FREE_OPS
    return {**handles, **EXTRA_HANDLES}, FREE_OPS | free


def _audited_analysis(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> FlopCountAnalysis:
    handles, free_ops = _declared_by_mixers()
    analysis = FlopCountAnalysis(model, inputs).set_op_handle(**handles)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis.total()  # runs the trace
        uncounted = {op: n for op, n in analysis.unsupported_ops().items() if op not in free_ops}
    if uncounted:
        names = ", ".join(f"{op} (x{n})" for op, n in sorted(uncounted.items()))
        raise UncountedOpError(
            f"no FLOP handle for {names}: declare one in the mixer's FLOP_HANDLES or, if free, its FREE_OPS"
        )
    return analysis


def trace_flops(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> int:
    """Audited FLOPs of ``module(*inputs)`` for arbitrary inputs (hand-count tests, single layers)."""
    with torch.no_grad():
        return int(_audited_analysis(module, inputs).total())


def flop_analysis(
    model_or_arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000
) -> FlopCountAnalysis:
    """The audited fvcore analysis of one forward pass of a single image, in eval mode.

    Args:
        model_or_arch: an ``nn.Module``, or anything ``build_model`` accepts (then built here).
        img_size: square input resolution.
        in_chans: input channels.
        num_classes: classifier outputs (only used when building from an architecture).
    """
    model = _as_model(model_or_arch, img_size, in_chans, num_classes)
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        x = torch.zeros(1, in_chans, img_size, img_size, device=device, dtype=dtype)
        with torch.no_grad():
            return _audited_analysis(model, (x,))
    finally:
        model.train(was_training)


def count_flops(model_or_arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> int:
    """FLOPs (fused multiply-adds) of one image through the model, by fvcore with audited handles."""
    return int(flop_analysis(model_or_arch, img_size, in_chans, num_classes).total())


def count_params(model_or_arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> int:
    model = _as_model(model_or_arch, img_size, in_chans, num_classes)
    return sum(p.numel() for p in model.parameters())


def _as_model(model_or_arch: Any, img_size: int, in_chans: int, num_classes: int) -> nn.Module:
    if isinstance(model_or_arch, nn.Module):
        return model_or_arch
    from vitsearch.space import build_model

    return build_model(model_or_arch, img_size=img_size, in_chans=in_chans, num_classes=num_classes)
