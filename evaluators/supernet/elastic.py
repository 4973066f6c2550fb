"""Elastic layers: weights at the largest size, and the slices a smaller path inherits.

Weight entanglement (AutoFormer, Chen et al. 2021): a smaller choice uses the leading slice
of the larger choice's weight, ``W[:out, :in]``. Every holder here keeps the attribute names
of the module it stands for (``qkv``, ``proj``, ``fc1``...), and its ``path_state(template,
...)`` walks the *template* (the module ``build_model`` makes for the path, usually on the
meta device) and returns, for each of the template's parameter and buffer names, the tensor
the path uses. A mixer declares its own rule in its file (``Mixer.supernet_weights``, what a
layer holds for it; ``Mixer.supernet_sources``, where a path's tensors come from in that), and
``mixer_weights`` / ``mixer_state`` here apply it: nothing here names a mixer. The supernet
runs the template with these tensors (``torch.func.functional_call``) and ``extract`` copies
the same tensors into a real model, so a path and its extracted model are one function by
construction.

What is shared and how (the rest of the rule is the leading slice):

- **widths**: leading slices of every weight, bias, norm affine and BatchNorm statistic.
- **mixers**: as each mixer's file says (the q/k/v mixers' ``QkvMixer``: the leading ``(d, d)``
  of each of the q, k, v blocks; heads split the same slice; per-head tensors take their leading
  heads; Performer features per head dim; Linformer's projection per token count).
- **MLP ratio**: leading ``hidden`` rows of fc1 and columns of fc2.
- **MLP groups** (SCHEME): ``G = 1`` is the dense slice; ``G > 1`` takes the ``G`` diagonal
  blocks of the same dense slice (``diagonal_blocks``), the block-diagonal layer's layout.
- **Per-choice weight sets** (path choices, nothing shared): each mixer candidate (type and
  options) of a layer, each stem (type and stride), each downsample kind, each norm kind,
  and the learned position embedding per stem grid (the cls row is shared).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import torch
from torch import nn

from vitsearch.space import MixerConfig, get_mixer
from vitsearch.space.layers import Mixer, SupernetSizes
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
    holder: nn.Module, template: nn.Module, where: str, sources: dict[str, torch.Tensor] | None = None
) -> State:
    """For each tensor name of ``template``: the leading slice of ``sources[name]``, or of the
    holder's tensor of the same name."""
    sources = {**dict(tensors_of(holder)), **(sources or {})}
    out: State = {}
    for name, t in tensors_of(template):
        if name not in sources:
            raise PathError(f"{where}.{name}: the supernet holds no such tensor")
        out[name] = lead(sources[name], t.shape, f"{where}.{name}")
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


# --- mixers ----------------------------------------------------------------------------------


def mixer_weights(cfg: MixerConfig, dims: StageDims, seed: str) -> nn.Module:
    """What one layer holds for the mixer candidate ``cfg``, as the mixer declares it.

    Args:
        cfg: mixer type and options (heads are elastic, so ``cfg.heads`` is ignored).
        dims: the stage's sizes.
        seed: a string naming this layer and candidate (for seeded buffers).
    """
    sizes = SupernetSizes(
        width=dims.width, heads=dims.max_heads, head_dims=dims.head_dims(), grids=dims.grids, seed=seed
    )
    return get_mixer(cfg.type).supernet_weights(cfg, sizes)


def mixer_state(weights: nn.Module, template: Mixer, where: str) -> State:
    """The tensors of the path's mixer ``template``, by its names, taken from ``weights``."""
    try:
        sources = template.supernet_sources(weights)
    except LookupError as err:
        raise PathError(f"{where}: {err.args[0] if err.args else err}") from None
    return leading_state(weights, template, where, sources)


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
