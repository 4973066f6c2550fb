"""Elastic layers: weights at the largest size, and the slices a smaller path inherits.

Weight entanglement (AutoFormer, Chen et al. 2021): a smaller choice uses the leading slice
of the larger choice's weight, ``W[:out, :in]``. Every holder here keeps the attribute names
of the module it stands for (``qkv``, ``proj``, ``fc1``, ``conv_exp``...), and its
``path_state(template, ...)`` walks the *template* (the module ``build_model`` makes for the
path, usually on the meta device) and returns, for each of the template's parameter and
buffer names, the tensor the path uses. The supernet runs the template with these tensors
(``torch.func.functional_call``) and ``extract`` copies the same tensors into a real model, so
a path and its extracted model are one function by construction.

What is shared and how (the rest of the rule is the leading slice):

- **widths**: leading slices of every weight, bias, norm affine and BatchNorm statistic.
- **q, k, v**: the fused ``qkv`` weight ``(3D, D)`` is three ``(D, D)`` blocks; width ``d`` takes
  the leading ``(d, d)`` of each block. A PSViT sharing block (no queries or keys) takes the
  ``v`` block of the same weight.
- **heads**: the ``d`` query channels are split into ``h`` heads as the model splits them, so
  any head count runs on the same slice; per-head tensors (Nystrom's value conv, Refiner's
  head convolutions and their BatchNorms) take their leading ``h`` (or ``r*h``) channels.
- **MLP ratio**: leading ``hidden`` rows of fc1 and columns of fc2.
- **MLP groups** (SCHEME): ``G = 1`` is the dense slice; ``G > 1`` takes the ``G`` diagonal
  blocks of the same dense slice (``diagonal_blocks``), the block-diagonal layer's layout.
- **Performer**: random features are not sliceable (a slice of an orthogonal draw is not an
  orthogonal draw of the smaller head dim), so each layer holds one fixed draw per possible
  head dim (``features_<d_h>_<m>``, seeded, saved with the weights, never redrawn).
- **Linformer**: the sequence projection ``E: N -> k`` is per token count ``N`` (a path
  choice: positions of different grids mean different things); ``k`` is its leading rows.
- **Per-choice weight sets** (path choices, nothing shared): each mixer candidate (type and
  options) of a layer, each stem (type and stride), each downsample kind, each norm kind,
  and the learned position embedding per stem grid (the cls row is shared).
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from vitsearch.space import MixerConfig, get_mixer
from vitsearch.space.mixers.performer import default_features, orthogonal_gaussian
from vitsearch.space.scheme import BlockDiagonalMlp, CcaMlp
from vitsearch.space.stems import build_stem

from .dims import PathError, StageDims

State = dict[str, torch.Tensor]


# --- slicing ---------------------------------------------------------------------------------


def lead(tensor: torch.Tensor, shape: torch.Size | tuple[int, ...], what: str = "") -> torch.Tensor:
    """The leading slice ``tensor[:shape[0], :shape[1], ...]``; a view, gradients flow back."""
    if tensor.dim() != len(shape) or any(s > t for s, t in zip(shape, tensor.shape, strict=True)):
        raise PathError(f"{what}: the path needs {tuple(shape)}, the supernet holds {tuple(tensor.shape)}")
    if tuple(shape) == tuple(tensor.shape):
        return tensor
    return tensor[tuple(slice(0, s) for s in shape)]


def qkv_weight(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """``(3D, D)`` fused q/k/v weight -> ``(3d, d)``: the leading ``(d, d)`` of each block."""
    big = weight.shape[1]
    return weight.view(3, big, big)[:, :dim, :dim].reshape(3 * dim, dim)


def qkv_bias(bias: torch.Tensor, dim: int) -> torch.Tensor:
    big = bias.shape[0] // 3
    return bias.view(3, big)[:, :dim].reshape(3 * dim)


def v_weight(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """The value block of a fused ``(3D, D)`` weight, sliced to ``(d, d)`` (PSViT sharing blocks)."""
    big = weight.shape[1]
    return weight[2 * big : 2 * big + dim, :dim]


def v_bias(bias: torch.Tensor, dim: int) -> torch.Tensor:
    big = bias.shape[0] // 3
    return bias[2 * big : 2 * big + dim]


def diagonal_blocks(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """Dense ``(out, in)`` -> the block-diagonal layer's ``(out, in / G)`` weight.

    Block ``g`` is ``weight[g*out/G:(g+1)*out/G, g*in/G:(g+1)*in/G]``, stacked along the rows:
    the layout of ``BlockDiagonalLinear.weight`` (rows of group ``g`` read inputs of group ``g``).
    """
    out, inp = weight.shape
    blocks = weight.reshape(groups, out // groups, groups, inp // groups).diagonal(dim1=0, dim2=2)  # (o/G, i/G, G)
    return blocks.permute(2, 0, 1).reshape(out, inp // groups)


def tensors_of(module: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    """Every parameter and buffer (persistent or not) of ``module`` by its state-dict name."""
    yield from module.named_parameters()
    yield from module.named_buffers()


def leading_state(
    holder: nn.Module, template: nn.Module, where: str, special: dict[str, Callable] | None = None
) -> State:
    """For each tensor name of ``template``: ``special[name](template_tensor)`` or the leading slice of
    the holder's tensor of the same name."""
    special = special or {}
    sources = dict(tensors_of(holder))
    out: State = {}
    for name, t in tensors_of(template):
        if name in special:
            out[name] = special[name](t)
        elif name in sources:
            out[name] = lead(sources[name], t.shape, f"{where}.{name}")
        else:
            raise PathError(f"{where}.{name}: the supernet holds no such tensor")
    return out


def init_linear(module: nn.Module) -> None:
    """timm's ViT init, as ``VitModel._init_weights``: truncated-normal weights, zero biases."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def candidate_key(cfg: MixerConfig) -> str:
    """A ``ModuleDict`` key for a mixer candidate: type plus the options that differ from the defaults."""
    defaults = get_mixer(cfg.type).OPTIONS
    opts = [(k, v) for k, v in sorted(cfg.options) if defaults.get(k, object()) != v]
    text = cfg.type + "".join(f"-{k}{v}" for k, v in opts)
    return re.sub(r"[^0-9A-Za-z_-]", "_", text)


def stable_seed(*parts: Any) -> int:
    return zlib.crc32(":".join(map(str, parts)).encode())


# --- mixers ----------------------------------------------------------------------------------

ELASTIC_MIXERS: dict[str, type[ElasticMixer]] = {}


def elastic_mixer(name: str):
    """Class decorator: the elastic form of the registered mixer ``name``."""

    def wrap(cls):
        assert name not in ELASTIC_MIXERS, f"elastic mixer {name!r} is registered twice"
        ELASTIC_MIXERS[name] = cls
        return cls

    return wrap


def make_elastic_mixer(cfg: MixerConfig, dims: StageDims, seed: str) -> ElasticMixer:
    try:
        cls = ELASTIC_MIXERS[cfg.type]
    except KeyError:
        raise PathError(
            f"mixer {cfg.type!r} has no elastic form in the supernet (evaluators/supernet/elastic.py)"
        ) from None
    return cls(cfg, dims, seed)


class ElasticMixer(nn.Module):
    """One candidate mixer of one layer at the stage's largest width and head count.

    Args:
        cfg: mixer type and options (heads are elastic, so ``cfg.heads`` is ignored).
        dims: the stage's sizes.
        seed: a string naming this layer and candidate (for seeded buffers).
    """

    def __init__(self, cfg: MixerConfig, dims: StageDims, seed: str):
        super().__init__()
        self.cfg = cfg
        self.opts = {**get_mixer(cfg.type).OPTIONS, **dict(cfg.options)}

    def path_state(self, template: nn.Module, dim: int, where: str) -> State:
        """The tensors of the path's mixer ``template`` (at width ``dim``), by the template's names."""
        return leading_state(self, template, where)


class _QkvMixer(ElasticMixer):
    """Fused ``qkv`` and output ``proj`` at the largest width, sliced per q/k/v block."""

    def __init__(self, cfg: MixerConfig, dims: StageDims, seed: str):
        super().__init__(cfg, dims, seed)
        width = dims.width
        self.qkv = nn.Linear(width, 3 * width, bias=self.opts["qkv_bias"])
        self.proj = nn.Linear(width, width)

    def special(self, template: nn.Module, dim: int) -> dict[str, Callable]:
        out: dict[str, Callable] = {
            "qkv.weight": lambda t: qkv_weight(self.qkv.weight, dim),
            "v.weight": lambda t: v_weight(self.qkv.weight, dim),
        }
        if self.qkv.bias is not None:
            out["qkv.bias"] = lambda t: qkv_bias(self.qkv.bias, dim)
            out["v.bias"] = lambda t: v_bias(self.qkv.bias, dim)
        return out

    def path_state(self, template: nn.Module, dim: int, where: str) -> State:
        return leading_state(self, template, where, self.special(template, dim))


@elastic_mixer("attention")
class ElasticAttention(_QkvMixer):
    pass


@elastic_mixer("performer")
class ElasticPerformer(_QkvMixer):
    """qkv / proj as attention, plus one fixed feature draw per possible head dim."""

    def __init__(self, cfg: MixerConfig, dims: StageDims, seed: str):
        super().__init__(cfg, dims, seed)
        for head_dim in dims.head_dims():
            m = self.opts["features"] or default_features(head_dim)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(stable_seed(seed, head_dim, m))
                self.register_buffer(f"features_{head_dim}_{m}", orthogonal_gaussian(m, head_dim))

    def path_state(self, template: nn.Module, dim: int, where: str) -> State:
        special = self.special(template, dim)
        name = f"features_{template.head_dim}_{template.num_features}"

        def features(t: torch.Tensor) -> torch.Tensor:
            if not hasattr(self, name):
                raise PathError(f"{where}: no Performer features for head dim {template.head_dim} in the supernet")
            return getattr(self, name)

        special["features"] = features
        return leading_state(self, template, where, special)


@elastic_mixer("linformer")
class ElasticLinformer(_QkvMixer):
    """qkv / proj as attention; one sequence projection per token count the stage can see."""

    def __init__(self, cfg: MixerConfig, dims: StageDims, seed: str):
        super().__init__(cfg, dims, seed)
        self.seq_proj = nn.ParameterDict()
        for n in dims.tokens:
            e = nn.Parameter(torch.empty(min(self.opts["k"], n), n))
            nn.init.xavier_uniform_(e, gain=1 / math.sqrt(2))  # as Linformer.__init__
            self.seq_proj[f"n{n}"] = e

    def path_state(self, template: nn.Module, dim: int, where: str) -> State:
        special = self.special(template, dim)
        key = f"n{template.seq_len}"
        if key not in self.seq_proj:
            raise PathError(f"{where}: no Linformer projection for {template.seq_len} tokens in the supernet")
        special["seq_proj"] = lambda t: lead(self.seq_proj[key], t.shape, f"{where}.seq_proj")
        return leading_state(self, template, where, special)


@elastic_mixer("nystrom")
class ElasticNystrom(_QkvMixer):
    """qkv / proj as attention; the per-head value convolution at the largest head count."""

    def __init__(self, cfg: MixerConfig, dims: StageDims, seed: str):
        super().__init__(cfg, dims, seed)
        heads, kernel = dims.max_heads, self.opts["conv_kernel"]
        self.conv = (
            nn.Conv2d(heads, heads, (kernel, 1), padding=(kernel // 2, 0), groups=heads, bias=False) if kernel else None
        )

    def path_state(self, template: nn.Module, dim: int, where: str) -> State:
        special = self.special(template, dim)

        def counts(t: torch.Tensor) -> torch.Tensor:
            # Nystrom.__init__'s landmark sizes (a non-persistent buffer, so not in any state dict).
            out = torch.full((template.landmarks, 1), float(template.segment), device=self.proj.weight.device)
            out[0] -= template.pad
            return out

        special["counts"] = counts
        return leading_state(self, template, where, special)


@elastic_mixer("refined")
class ElasticRefined(_QkvMixer):
    """qkv / proj as attention; Refiner's head convolutions and BatchNorms at the largest head count."""

    def __init__(self, cfg: MixerConfig, dims: StageDims, seed: str):
        super().__init__(cfg, dims, seed)
        h, r, k = dims.max_heads, self.opts["expand"], self.opts["kernel_size"]
        self.conv_exp = nn.Conv2d(h, r * h, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(r * h)
        self.depth_sep_conv = nn.Conv2d(r * h, r * h, k, padding=k // 2, groups=r * h, bias=False)
        self.bn2 = nn.BatchNorm2d(r * h)
        self.conv_pro = nn.Conv2d(r * h, h, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(h)
        self.adapt_bn = nn.BatchNorm2d(h)


@elastic_mixer("dwconv")
class ElasticDepthwiseConv(ElasticMixer):
    def __init__(self, cfg: MixerConfig, dims: StageDims, seed: str):
        super().__init__(cfg, dims, seed)
        d, k = dims.width, self.opts["kernel_size"]
        self.conv0 = nn.Conv2d(d, d, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(d)
        self.conv = nn.Conv2d(d, d, k, padding=k // 2, groups=d)
        self.bn = nn.BatchNorm2d(d)
        self.conv2 = nn.Conv2d(d, d, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(d)


@elastic_mixer("identity")
class ElasticIdentity(ElasticMixer):
    def __init__(self, cfg: MixerConfig, dims: StageDims, seed: str):
        super().__init__(cfg, dims, seed)
        self.scale = nn.Parameter(torch.empty(dims.width).uniform_(-1.0, 1.0))  # as IdentityAffine
        self.shift = nn.Parameter(torch.empty(dims.width).uniform_(-1.0, 1.0))


@elastic_mixer("pool")
class ElasticPool(ElasticMixer):
    """No weights: every path shares it for free."""


@elastic_mixer("fnet")
class ElasticFNet(ElasticMixer):
    """No weights: every path shares it for free."""


# --- block parts, stems, downsamples -----------------------------------------------------------


class ElasticMlp(nn.Module):
    """fc1 ``D -> hidden_max``, fc2 ``hidden_max -> D``; ratios slice, groups take diagonal blocks.

    ``theta`` (two numbers) is SCHEME's CCA mixing weight, used by paths with ``cca: true``.
    """

    def __init__(self, width: int, hidden: int, cca: bool):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        self.theta = nn.Parameter(torch.zeros(2)) if cca else None

    def path_state(self, template: nn.Module, where: str) -> State:
        out: State = {}
        mlp, prefix = template, ""
        if isinstance(template, CcaMlp):
            if self.theta is None:
                raise PathError(f"{where}.cca: the supernet holds no CCA branch here")
            out["theta"] = self.theta
            mlp, prefix = template.mlp, "mlp."
        groups = mlp.groups if isinstance(mlp, BlockDiagonalMlp) else 1
        for fc in ("fc1", "fc2"):
            t = getattr(mlp, fc)
            out_f, in_f = (t.out_features, t.in_features)
            weight = lead(getattr(self, fc).weight, (out_f, in_f), f"{where}.{fc}")
            out[f"{prefix}{fc}.weight"] = diagonal_blocks(weight, groups) if groups > 1 else weight
            out[f"{prefix}{fc}.bias"] = lead(getattr(self, fc).bias, (out_f,), f"{where}.{fc}")
        names = {n for n, _ in tensors_of(template)}
        if set(out) != names:
            raise PathError(f"{where}: unexpected MLP tensors {sorted(names ^ set(out))}")
        return out


class ElasticNorm(nn.Module):
    """The affine of a LayerNorm or GroupNorm1 (the same names, ``weight`` and ``bias``)."""

    def __init__(self, width: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))


class ElasticDownsample(nn.Module):
    """Every tensor a downsample kind can hold at ``in_max -> out_max`` (used where the path's has it)."""

    def __init__(self, kind: str, in_width: int, out_width: int, prefix: bool):
        super().__init__()
        if kind == "conv":
            self.proj = nn.Conv2d(in_width, out_width, kernel_size=3, stride=2, padding=1)
            if prefix:
                self.prefix_proj = nn.Linear(in_width, out_width)
        elif kind in ("mean", "max", "dwconv"):
            self.proj = nn.Linear(in_width, out_width)
            if kind == "dwconv":
                self.conv = nn.Conv2d(in_width, in_width, kernel_size=3, stride=2, padding=1, groups=in_width)
        elif kind != "none":
            raise PathError(f"downsample {kind!r} has no elastic form in the supernet")


def stem_key(stem) -> str:
    return f"{stem.type}_p{stem.patch_size}_k{stem.kernel_size or 0}"


def make_stem(stem, in_chans: int, width: int) -> nn.Module:
    """The real stem at the largest stage-0 width; its output channels are sliced."""
    return build_stem(stem, in_chans, width)
