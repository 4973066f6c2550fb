"""The weight-sharing supernet: every architecture of a space is a path through one set of weights.

``Supernet(space, profile)`` holds, for every layer position, every candidate mixer of the
space at the largest width it can have, an elastic MLP, per-kind norms and downsamples, and
per-choice stems (``elastic.py`` says what is shared and how). A *path* is an architecture
of the space as ``profile`` builds it (``SupernetProfile.adapt``: the proxy evaluator's stem
and width rewrite). Running a path:

1. ``build_model`` makes the path's module on the meta device (no memory, no init): the
   *template*, cached per architecture;
2. ``path_state`` walks the template's parameter and buffer names and returns the supernet
   slice each one inherits;
3. ``torch.func.functional_call`` runs the template's own forward with those tensors.

So a path runs the very code of the model it stands for, and ``extract(arch)`` (a real
``build_model`` with the same tensors copied in) gives the same outputs. Gradients of a path
flow into the slices it used. Depth is elastic (a path uses the first ``depth`` blocks of a
stage); token pooling and attention sharing are path choices of the template.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call

from vitsearch.space import ArchConfig, MixerConfig, VitModel, build_model
from vitsearch.space.layers import Mixer
from vitsearch.space.search_space import SearchSpace
from vitsearch.space.stage_space import option_combos

from .dims import PathError, SpaceDims, StageDims, SupernetProfile, space_dims
from .elastic import (
    ElasticDownsample,
    ElasticMlp,
    ElasticNorm,
    State,
    candidate_key,
    init_linear,
    lead,
    leading_state,
    make_stem,
    mixer_state,
    mixer_weights,
    stem_key,
    tensors_of,
)

TEMPLATE_CACHE = 64  # meta-device path modules kept (one per architecture)


def _mixer_candidates(stage) -> list[MixerConfig]:
    """Mixer type + options of every block the stage's layer space can hold (heads are elastic)."""
    seen: dict[str, MixerConfig] = {}
    for mixer in stage.layer.mixer:
        for options in option_combos(stage.layer.options_for(mixer)):
            cfg = MixerConfig(mixer, options=options)
            seen.setdefault(candidate_key(cfg), cfg)
    return [seen[k] for k in sorted(seen)]


class SuperBlock(nn.Module):
    """One layer position: norms per kind, every candidate mixer, layer scales, the elastic MLP."""

    def __init__(self, stage_space, dims: StageDims, norms: Sequence[str], layer_scale_init: float | None, seed: str):
        super().__init__()
        width = dims.width
        self.norm1 = nn.ModuleDict({kind: ElasticNorm(width) for kind in norms})
        self.mixers = nn.ModuleDict()
        for cfg in _mixer_candidates(stage_space):
            key = candidate_key(cfg)
            self.mixers[key] = mixer_weights(cfg, dims, f"{seed}.{key}")
        self.ls1 = nn.Parameter(torch.full((width,), float(layer_scale_init))) if layer_scale_init else None
        self.norm2 = nn.ModuleDict({kind: ElasticNorm(width) for kind in norms})
        self.mlp = ElasticMlp(width, dims.hidden, cca=True in stage_space.layer.cca)
        self.ls2 = nn.Parameter(torch.full((width,), float(layer_scale_init))) if layer_scale_init else None

    def path_state(self, template: nn.Module, norm: str, width: int, where: str) -> State:
        out: State = {}
        key = candidate_key(template.cfg.mixer)
        if key not in self.mixers:
            raise PathError(f"{where}.mixer: {key!r} is not a candidate of this layer ({', '.join(self.mixers)})")
        if norm not in self.norm1:
            raise PathError(f"norm: {norm!r} is not a choice of this supernet ({', '.join(self.norm1)})")
        parts = {
            "norm1": leading_state(self.norm1[norm], template.norm1, f"{where}.norm1"),
            "mixer": mixer_state(self.mixers[key], template.mixer, f"{where}.mixer"),
            "norm2": leading_state(self.norm2[norm], template.norm2, f"{where}.norm2"),
            "mlp": self.mlp.path_state(template.mlp, f"{where}.mlp"),
        }
        for ls in ("ls1", "ls2"):
            mine = getattr(self, ls)
            if mine is not None:
                parts[ls] = {"gamma": lead(mine, (width,), f"{where}.{ls}")}
        for part, tensors in parts.items():
            out.update({f"{part}.{name}": t for name, t in tensors.items()})
        return out


class SuperStage(nn.Module):
    def __init__(self, stage_space, dims: StageDims, in_width: int, prefix: bool, norms, lsi, seed: str):
        super().__init__()
        self.downsample = nn.ModuleDict(
            {kind: ElasticDownsample(kind, in_width, dims.width, prefix) for kind in dims.downsamples}
        )
        self.blocks = nn.ModuleList(
            SuperBlock(stage_space, dims, norms, lsi, f"{seed}.b{bi}") for bi in range(dims.depth)
        )


class Supernet(nn.Module):
    """Weight-sharing supernet over a ``SearchSpace`` at a ``SupernetProfile``.

    Args:
        space: the search space; every architecture it can produce is a path.
        profile: input size, channels, classes and the proxy rewrite of the paths.
        seed: seeds the initial weights and the Performer feature draws.
    """

    def __init__(self, space: SearchSpace, profile: SupernetProfile, seed: int = 0):
        super().__init__()
        self.space, self.profile, self.seed = space, profile, seed
        self.dims: SpaceDims = space_dims(space, profile)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build()
        self._templates: OrderedDict[str, VitModel] = OrderedDict()

    def _build(self) -> None:
        space, dims, profile = self.space, self.dims, self.profile
        width0 = dims.stages[0].width
        cls = "cls" in space.head
        self.stems = nn.ModuleDict({stem_key(s): make_stem(s, profile.in_chans, width0) for s in dims.stems})
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width0)) if cls else None
        learned = "learned" in space.position
        self.pos_embed = nn.ParameterDict(
            {f"g{side}": nn.Parameter(torch.randn(1, side * side, width0) * 0.02) for side in set(dims.stem_sides)}
            if learned
            else {}
        )
        self.pos_embed_cls = nn.Parameter(torch.randn(1, 1, width0) * 0.02) if learned and cls else None
        self.stages = nn.ModuleList()
        in_width = width0
        for si, (stage_space, stage_dims) in enumerate(zip(space.stages, dims.stages, strict=True)):
            self.stages.append(
                SuperStage(
                    stage_space, stage_dims, in_width, cls, space.norm, space.layer_scale_init, f"{self.seed}.s{si}"
                )
            )
            in_width = stage_dims.width
        self.norm = ElasticNorm(in_width)
        self.head = nn.Linear(in_width, profile.num_classes)
        init_linear(self)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)

    # --- paths -----------------------------------------------------------------------------
    def adapt(self, arch: ArchConfig) -> ArchConfig:
        """The path of ``arch`` (an architecture of the space at the target profile)."""
        return self.profile.adapt(arch)

    def template(self, path: ArchConfig) -> VitModel:
        """The path's module on the meta device (cached): the code a path runs."""
        key = path.digest()
        model = self._templates.get(key)
        if model is None:
            self._check_path(path)
            with torch.device("meta"):
                model = build_model(
                    path,
                    img_size=self.profile.img_size,
                    in_chans=self.profile.in_chans,
                    num_classes=self.profile.num_classes,
                )
            for module in model.modules():
                if isinstance(module, Mixer):
                    module.for_supernet_path()  # its tensors are the supernet's
            self._templates[key] = model
            while len(self._templates) > TEMPLATE_CACHE:
                self._templates.popitem(last=False)
        else:
            self._templates.move_to_end(key)
        model.train(self.training)
        return model

    def _check_path(self, path: ArchConfig) -> None:
        """Choices the supernet does not hold, named by field (sizes are checked while slicing)."""
        space = self.space
        if len(path.stages) != len(self.stages):
            raise PathError(f"stages: the path has {len(path.stages)}, the supernet {len(self.stages)}")
        if stem_key(path.stem) not in self.stems:
            raise PathError(f"stem: {path.stem} is not a stem of this supernet ({', '.join(self.stems)})")
        for name, value, choices in (
            ("position", path.position, space.position),
            ("head", path.head, space.head),
            ("norm", path.norm, space.norm),
        ):
            if value not in choices:
                raise PathError(f"{name}: {value!r} is not a choice of this supernet ({', '.join(choices)})")
        if path.layer_scale_init != space.layer_scale_init:
            raise PathError(f"layer_scale_init: {path.layer_scale_init} differs from the space's")
        for si, (stage, superstage) in enumerate(zip(path.stages, self.stages, strict=True)):
            if stage.depth > len(superstage.blocks):
                raise PathError(f"stages[{si}].depth: {stage.depth} > {len(superstage.blocks)} blocks held")
            if stage.downsample not in superstage.downsample:
                raise PathError(f"stages[{si}].downsample: {stage.downsample!r} is not held")

    def path_state(self, path: ArchConfig, template: nn.Module | None = None) -> State:
        """Every tensor of the path's model, by its ``build_model`` name, as a supernet slice.

        Args:
            path: the architecture as the profile builds it (``adapt``).
            template: the path's module (default: the cached meta template).
        """
        template = template if template is not None else self.template(path)
        self._check_path(path)
        out: State = {}
        stem = path.stem
        width0 = path.stages[0].width
        out.update(_prefixed("stem", leading_state(self.stems[stem_key(stem)], template.stem, "stem")))
        if template.cls_token is not None:
            out["cls_token"] = lead(self.cls_token, (1, 1, width0), "cls_token")
        if template.pos_embed is not None:
            side = template.stages[0].grid_in.height
            if f"g{side}" not in self.pos_embed:
                raise PathError(f"pos_embed: no learned position embedding for a {side}x{side} grid in the supernet")
            spatial = lead(self.pos_embed[f"g{side}"], (1, side * side, width0), "pos_embed")
            if template.cls_token is not None:
                spatial = torch.cat([lead(self.pos_embed_cls, (1, 1, width0), "pos_embed"), spatial], dim=1)
            out["pos_embed"] = spatial
        for si, (stage, superstage, tstage) in enumerate(zip(path.stages, self.stages, template.stages, strict=True)):
            where = f"stages[{si}]"
            down = leading_state(superstage.downsample[stage.downsample], tstage.downsample, f"{where}.downsample")
            out.update(_prefixed(f"stages.{si}.downsample", down))
            for bi, tblock in enumerate(tstage.blocks):
                state = superstage.blocks[bi].path_state(tblock, path.norm, stage.width, f"{where}.blocks[{bi}]")
                out.update(_prefixed(f"stages.{si}.blocks.{bi}", state))
        out.update(_prefixed("norm", leading_state(self.norm, template.norm, "norm")))
        out.update(_prefixed("head", leading_state(self.head, template.head, "head")))
        names = {name for name, _ in tensors_of(template)}
        if set(out) != names:  # by name, not by luck
            raise PathError(f"path tensors do not match the model: {sorted(names ^ set(out))[:5]}")
        return out

    def forward(self, x: torch.Tensor, arch: ArchConfig, adapted: bool = False) -> torch.Tensor:
        """Logits of the path of ``arch`` (``adapted=True``: ``arch`` is already a path)."""
        path = arch if adapted else self.adapt(arch)
        template = self.template(path)
        return functional_call(template, self.path_state(path, template), (x,), tie_weights=False)

    # --- extraction ------------------------------------------------------------------------
    @torch.no_grad()
    def extract(self, arch: ArchConfig, adapted: bool = False) -> VitModel:
        """A standalone model of ``arch`` with the weights it inherits from the supernet.

        ``arch`` is described at the target profile, as a search reports it; the model is
        ``build_model(supernet.adapt(arch), img_size, in_chans, num_classes)`` of the
        supernet's profile, in training mode like any fresh ``build_model``, on the
        supernet's device. In eval mode its outputs equal ``supernet(x, arch)``.

        At the identity profile (``width_mult=1``, ``img_size == target_img_size``) the path is
        ``arch`` itself, so the state dict fits ``build_model(arch, img_size)`` as given (what
        ``vitsearch train --from-supernet`` loads). At a proxy profile the model is the
        narrowed path: its own ``arch`` and ``img_size`` say what it is.
        """
        path = arch if adapted else self.adapt(arch)
        self._check_path(path)
        device = next(self.parameters()).device
        model = build_model(
            path, img_size=self.profile.img_size, in_chans=self.profile.in_chans, num_classes=self.profile.num_classes
        ).to(device)
        state = self.path_state(path, template=model)
        for name, tensor in tensors_of(model):
            tensor.copy_(state[name])
        return model


def _prefixed(prefix: str, state: State) -> State:
    return {f"{prefix}.{name}": t for name, t in state.items()}
