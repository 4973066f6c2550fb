"""Complexity: FLOPs (fvcore with audited handles) and parameter counts.

Convention (DESIGN.md): one fused multiply-add is one FLOP, element-wise ops are free, and
the model is counted in eval mode. fvcore counts ``scaled_dot_product_attention``, FFTs and
other ops as zero out of the box; here every costly op the blocks use has a handle, and an
op that is neither handled nor on ``FREE_OPS`` raises ``UncountedOpError`` instead of
silently counting zero.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from fvcore.nn import FlopCountAnalysis
from fvcore.nn.jit_handles import get_shape
from torch import nn

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


def fft_flops(inputs: list[Any], outputs: list[Any]) -> int:
    """``N log2 N`` per transformed line for each transformed dimension (radix-2 butterflies).

    Applies to ``aten::fft_fft`` (one dim, given or the last), ``aten::fft_fft2`` and
    ``aten::fft_fftn`` (the given dims, default the last two / all).
    """
    shape = get_shape(inputs[0])
    numel = _prod(shape)
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


# Handles vitsearch adds on top of fvcore's defaults (matmul, linear, conv, einsum, norms...).
EXTRA_HANDLES: dict[str, Handle] = {
    "aten::scaled_dot_product_attention": sdpa_flops,
    "aten::fft_fft": fft_flops,
    "aten::fft_fft2": fft_flops,
    "aten::fft_fftn": fft_flops,
}

# Ops that cost nothing by the convention: element-wise arithmetic and activations, and
# pooling (PoolFormer's published 1.8226 GFLOPs counts its pooling mixers as zero).
FREE_OPS: frozenset[str] = frozenset(
    f"aten::{op}"
    for op in (
        "add add_ sub sub_ rsub mul mul_ div div_ neg exp log sqrt rsqrt pow reciprocal abs sign "
        "gelu relu relu_ relu6 hardtanh silu sigmoid tanh softmax log_softmax clamp clamp_ maximum minimum "
        "avg_pool2d max_pool2d real imag cos sin where masked_fill fill_ zero_ zeros_like ones_like "
        "sum mean amax max min square floor ceil round "
        "eye pad"  # identity, zero padding (Nystromformer's pseudo-inverse and landmark segments)
    ).split()
)


def _audited_analysis(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> FlopCountAnalysis:
    analysis = FlopCountAnalysis(model, inputs).set_op_handle(**EXTRA_HANDLES)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    analysis.tracer_warnings("none")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis.total()  # runs the trace
        uncounted = {op: n for op, n in analysis.unsupported_ops().items() if op not in FREE_OPS}
    if uncounted:
        names = ", ".join(f"{op} (x{n})" for op, n in sorted(uncounted.items()))
        raise UncountedOpError(f"no FLOP handle for {names}: add one to EXTRA_HANDLES or, if free, to FREE_OPS")
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


def analytic_flops(arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> int:
    """FLOPs from the architecture alone, no model built; equal to ``count_flops`` by construction.

    Every layer states its own formula next to its code (``Mixer.flops``, ``Block.flops``,
    ``Downsample.flops``, the stem's ``flops``); this walks the config and adds them up.
    """
    from vitsearch.space import TokenGrid, get_downsample, resolve_arch, validate
    from vitsearch.space.layers import Block, norm_flops
    from vitsearch.space.stems import stem_flops, stem_grid_size

    arch = validate(resolve_arch(arch))
    width = arch.stages[0].width
    total = stem_flops(arch.stem, in_chans, width, img_size)
    side = stem_grid_size(arch.stem, img_size)
    grid = TokenGrid(side, side, 1 if arch.head == "cls" else 0)
    for stage in arch.stages:
        downsample = get_downsample(stage.downsample)
        total += downsample.flops(width, stage.width, grid)
        grid, width = downsample.out_grid(grid), stage.width
        total += sum(Block.flops(width, block, grid) for block in stage.blocks)
    if arch.head == "cls":
        total += norm_flops(grid.tokens, width)  # timm ViT norms every token, then takes cls
    else:
        total += grid.spatial * width + norm_flops(1, width)  # adaptive_avg_pool2d, then norm
    return total + width * num_classes


def analytic_params(arch: Any, img_size: int = 224, in_chans: int = 3, num_classes: int = 1000) -> int:
    """Parameters of the deployed model, summed from its parts; equal to ``count_params`` of it.

    Walks the config as ``analytic_flops`` does. Norms, layer scales, tokens and the head are
    counted by formula; each distinct stem, downsampler, mixer and MLP (keyed by what shapes
    it: a mixer by its type, width, options, grid and sharing role; an MLP by width, ratio,
    groups and CCA) is built once on the meta device in its deployed form, counted and
    memoised. A search meets the same parts again and again, so an architecture soon costs
    lookups instead of a 40-110 ms model build (``studies/bench_driver.py``).
    """
    from vitsearch.space import TokenGrid, get_downsample, resolve_arch, validate
    from vitsearch.space.model import attention_sources
    from vitsearch.space.stems import stem_grid_size

    arch = validate(resolve_arch(arch))
    width = arch.stages[0].width
    side = stem_grid_size(arch.stem, img_size)
    grid = TokenGrid(side, side, 1 if arch.head == "cls" else 0)
    total = _part_params("stem", arch.stem, in_chans, width)
    total += width * (grid.prefix + (grid.tokens if arch.position == "learned" else 0))  # cls token, positions
    keep = attention_sources(arch)
    per_width = 4 + (2 if arch.layer_scale_init else 0)  # two norms' affines, two layer scales
    for si, stage in enumerate(arch.stages):
        downsample = get_downsample(stage.downsample)
        total += _part_params("downsample", stage.downsample, width, stage.width, grid)
        grid, width = downsample.out_grid(grid), stage.width
        for bi, block in enumerate(stage.blocks):
            sharing = (block.share_attention, (si, bi) in keep)
            total += per_width * width + _part_params("mixer", width, block.mixer, grid, *sharing)
            total += _part_params("mlp", width, block.mlp_ratio, block.mlp_groups, block.cca)
    return total + 2 * width + (width * num_classes + num_classes if num_classes > 0 else 0)  # norm, head


def _build_mixer(dim: int, cfg: Any, grid: Any, share: bool, keep: bool) -> nn.Module:
    from vitsearch.space import BlockConfig, get_mixer
    from vitsearch.space.layers import sharing_flags

    flags = sharing_flags(BlockConfig(mixer=cfg, share_attention=share), keep)
    mixer = get_mixer(cfg.type)(dim, cfg, grid, **flags)
    # A mixer that folds into its block's norm (RIFormer) leaves no parameters of its own deployed.
    return nn.Identity() if hasattr(mixer, "fold_into_norm") else mixer


def _build_mlp(dim: int, ratio: float, groups: int, cca: bool) -> nn.Module:
    from vitsearch.space import BlockConfig
    from vitsearch.space.layers import make_mlp

    return make_mlp(dim, BlockConfig(mlp_ratio=ratio, mlp_groups=groups, cca=cca))


@functools.lru_cache(maxsize=16384)
def _part_params(kind: str, *args: Any) -> int:
    from vitsearch.space import get_downsample
    from vitsearch.space.model import _reparameterize_children
    from vitsearch.space.stems import build_stem

    builders: dict[str, Callable[..., nn.Module]] = {
        "stem": build_stem,
        "downsample": lambda name, in_dim, out_dim, grid: get_downsample(name)(in_dim, out_dim, grid),
        "mixer": _build_mixer,
        "mlp": _build_mlp,
    }
    with torch.device("meta"):
        holder = nn.ModuleList([builders[kind](*args)])
        _reparameterize_children(holder)  # the deployed form, children before parents, as VitModel does
    return sum(p.numel() for p in holder.parameters())
