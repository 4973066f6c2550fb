"""SearchSpace: the declared choices of a study, sampled into ``ArchConfig``s by Optuna.

A space file (``studies/*.yaml``) mirrors ``ArchConfig``; wherever a value is a list it is a
choice, wherever it is a scalar it is fixed::

    name: psvit
    stem: {type: patch, patch_size: 16}
    position: [learned, rope]
    head: cls
    stages:
      - width: [192, 256]
        depth: [2, 3, 4]
        layer:                      # each layer of the stage samples these independently
          mixer: [attention, performer]   # or `all`: every registered mixer
          head_dim: [32, 64]        # heads = width / head_dim (attention-family mixers)
          mlp_ratio: [2, 4]
          mlp_groups: [1, 2]
          share_attention: [false, true]
          cca: false
        mixer_options: {performer: {features: [64, 128]}}
      - width: same                 # keep the previous stage's width
        depth: [2, 3]
        downsample: [mean, max]     # a token-pooling point (PSViT)

Parameter names are stable (``s1.b3.mixer``) so studies resume and importances read well.
Only real choices (two or more values) become Optuna parameters.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from .config import (
    HEAD_TYPES,
    NORM_TYPES,
    POSITION_TYPES,
    STEM_TYPES,
    ArchConfig,
    BlockConfig,
    ConfigError,
    MixerConfig,
    StageConfig,
    StemConfig,
    validate,
    validate_mlp,
    yaml_problem,
)
from .layers import Block, TokenGrid
from .registry import get_downsample, get_mixer, list_downsamples, list_mixers
from .stems import stem_grid_size

if TYPE_CHECKING:
    import optuna

SAME = "same"
ALL = "all"  # ``mixer: all``
LAYER_FIELDS = ("mixer", "head_dim", "mlp_ratio", "mlp_groups", "cca")
# Fields per_stage may name: each matters to every layer (head_dim does not: a pool layer ignores it,
# so tied head dims would count one stage of pool layers twice).
PER_STAGE_FIELDS = ("mixer", "mlp_ratio", "mlp_groups", "cca")

Picker = Callable[[str, Sequence[Any]], Any]  # (parameter name, choices) -> the chosen value


def _choices(value: Any, path: str, kind: type | tuple[type, ...], allowed: Sequence[Any] | None = None) -> tuple:
    """A scalar or list in a space file -> tuple of choices, type- and value-checked."""
    values = tuple(value) if isinstance(value, list) else (value,)
    if not values:
        raise ConfigError(path, "an empty list offers no choice")
    for v in values:
        ok = isinstance(v, kind) and not (isinstance(v, bool) and kind in (int, float, (int, float)))
        if not ok and v is not None:
            raise ConfigError(path, f"expected {getattr(kind, '__name__', 'number')} values, got {v!r}")
        if allowed is not None and v not in allowed:
            raise ConfigError(path, f"unknown value {v!r} (choose from {', '.join(map(str, allowed))})")
    if len(set(values)) != len(values):
        raise ConfigError(path, f"repeated values in {list(values)}")
    return values


@dataclass(frozen=True)
class LayerSpace:
    mixer: tuple[str, ...] = ("attention",)
    head_dim: tuple[int, ...] = (64,)
    mlp_ratio: tuple[float, ...] = (4.0,)
    mlp_groups: tuple[int, ...] = (1,)
    share_attention: tuple[bool, ...] = (False,)
    cca: tuple[bool, ...] = (False,)
    mixer_options: tuple[tuple[str, tuple[tuple[str, tuple], ...]], ...] = ()  # mixer -> option -> choices
    per_stage: tuple[str, ...] = ()  # fields drawn once per stage and shared by its layers (granularity)

    def options_for(self, mixer: str) -> tuple[tuple[str, tuple], ...]:
        return dict(self.mixer_options).get(mixer, ())

    def tied(self) -> Iterator[LayerSpace]:
        """One per-layer space for each combination of the per-stage fields (itself if none)."""
        for values in itertools.product(*(getattr(self, f) for f in self.per_stage)):
            yield self.fix(dict(zip(self.per_stage, values, strict=True)))

    def fix(self, values: Mapping[str, Any]) -> LayerSpace:
        """This space with ``values`` as the only choice of their fields, none per stage left."""
        return dataclasses.replace(self, per_stage=(), **{f: (v,) for f, v in values.items()})


@dataclass(frozen=True)
class StageSpace:
    width: tuple[int, ...] | None  # None: the previous stage's width
    depth: tuple[int, ...]
    downsample: tuple[str, ...]
    layer: LayerSpace


@dataclass(frozen=True)
class SearchSpace:
    name: str
    stages: tuple[StageSpace, ...]
    stem_type: tuple[str, ...] = ("patch",)
    patch_size: tuple[int, ...] = (16,)
    kernel_size: int | None = None
    position: tuple[str, ...] = ("learned",)
    head: tuple[str, ...] = ("cls",)
    norm: tuple[str, ...] = ("layernorm",)
    layer_scale_init: float | None = None
    description: str = ""
    source: str | None = field(default=None, compare=False)

    # --- loading -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str = "space") -> SearchSpace:
        if not isinstance(data, Mapping):
            raise ConfigError("", "a search space is a mapping of fields")
        allowed = {"name", "description", "stem", "position", "head", "norm", "layer_scale_init", "stages"}
        _reject_unknown(data, allowed, "")
        stem = data.get("stem", {})
        if not isinstance(stem, Mapping):
            raise ConfigError("stem", "expected a mapping")
        _reject_unknown(stem, {"type", "patch_size", "kernel_size"}, "stem")
        raw_stages = data.get("stages")
        if not isinstance(raw_stages, list) or not raw_stages:
            raise ConfigError("stages", "a list of at least one stage is needed")
        lsi = data.get("layer_scale_init")
        if lsi is not None and (isinstance(lsi, bool) or not isinstance(lsi, (int, float))):
            raise ConfigError("layer_scale_init", f"expected a number or null, got {lsi!r}")
        space = cls(
            name=str(data.get("name", name)),
            description=str(data.get("description", "")),
            stem_type=_choices(stem.get("type", "patch"), "stem.type", str, STEM_TYPES),
            patch_size=_choices(stem.get("patch_size", 16), "stem.patch_size", int),
            kernel_size=stem.get("kernel_size"),
            position=_choices(data.get("position", "learned"), "position", str, POSITION_TYPES),
            head=_choices(data.get("head", "cls"), "head", str, HEAD_TYPES),
            norm=_choices(data.get("norm", "layernorm"), "norm", str, NORM_TYPES),
            layer_scale_init=float(lsi) if lsi is not None else None,
            stages=tuple(_stage_space(s, f"stages[{i}]", i) for i, s in enumerate(raw_stages)),
        )
        space.check()
        return space

    @classmethod
    def load(cls, path: str | Path) -> SearchSpace:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text())
        except OSError as err:
            raise ConfigError(str(path), f"cannot read file ({err.strerror})") from None
        except yaml.YAMLError as err:
            raise ConfigError(str(path), f"not valid YAML ({yaml_problem(err)})") from None
        try:
            space = cls.from_dict(data, name=path.stem)
        except ConfigError as err:
            raise ConfigError(f"{path.name}: {err.path}" if err.path else path.name, err.problem) from None
        object.__setattr__(space, "source", str(path))
        return space

    def check(self) -> None:
        """Every combination the space can produce must be a valid ArchConfig."""
        prev_widths: tuple[int, ...] | None = None
        for si, stage in enumerate(self.stages):
            path = f"stages[{si}]"
            widths = stage.width if stage.width is not None else prev_widths
            if widths is None:
                raise ConfigError(f"{path}.width", "the first stage needs a width")
            if si == 0 and stage.downsample != ("none",):
                raise ConfigError(f"{path}.downsample", "the first stage is entered from the stem; use none")
            if si > 0 and stage.width is not None and not (len(widths) == 1 and prev_widths == widths):
                keepers = [d for d in stage.downsample if not get_downsample(d).changes_width]
                if keepers:
                    raise ConfigError(
                        f"{path}.width",
                        f"downsample {keepers[0]!r} cannot change the width: use `width: same` or drop it",
                    )
            for width in widths:
                if any(get_mixer(m).USES_HEADS for m in stage.layer.mixer):
                    for hd in stage.layer.head_dim:
                        if width % hd:
                            raise ConfigError(f"{path}.layer.head_dim", f"{hd} does not divide width {width}")
                for block in _layer_candidates(stage.layer, width):
                    try:
                        get_mixer(block.mixer.type).validate(block.mixer, width, f"{path}.layer")
                        validate_mlp(block, width, f"{path}.layer")
                    except ConfigError as err:
                        raise ConfigError(err.path, f"{err.problem} (at width {width})") from None
            prev_widths = widths

    def to_dict(self) -> dict[str, Any]:
        """The space as a space-file mapping: ``SearchSpace.from_dict(space.to_dict()) == space``."""

        def one(values: tuple) -> Any:
            return values[0] if len(values) == 1 else list(values)

        stem: dict[str, Any] = {"type": one(self.stem_type), "patch_size": one(self.patch_size)}
        if self.kernel_size is not None:
            stem["kernel_size"] = self.kernel_size
        stages = []
        for stage in self.stages:
            layer = stage.layer
            entry: dict[str, Any] = {
                "width": SAME if stage.width is None else one(stage.width),
                "depth": one(stage.depth),
                "downsample": one(stage.downsample),
                "layer": {
                    "mixer": one(layer.mixer),
                    "head_dim": one(layer.head_dim),
                    "mlp_ratio": one(layer.mlp_ratio),
                    "mlp_groups": one(layer.mlp_groups),
                    "share_attention": one(layer.share_attention),
                    "cca": one(layer.cca),
                },
            }
            if layer.per_stage:  # only when set, so the digests of spaces without it stay as they were
                entry["layer"]["per_stage"] = list(layer.per_stage)
            if layer.mixer_options:
                entry["mixer_options"] = {
                    mixer: {key: list(values) for key, values in opts} for mixer, opts in layer.mixer_options
                }
            stages.append(entry)
        return {
            "name": self.name,
            "description": self.description,
            "stem": stem,
            "position": one(self.position),
            "head": one(self.head),
            "norm": one(self.norm),
            "layer_scale_init": self.layer_scale_init,
            "stages": stages,
        }

    def digest(self) -> str:
        """Stable hash of the choices (name and description left out): two spaces with equal digests sample alike."""
        choices = {k: v for k, v in self.to_dict().items() if k not in ("name", "description")}
        canonical = json.dumps(choices, sort_keys=True, separators=(",", ":"))
        return hashlib.sha1(canonical.encode()).hexdigest()[:16]

    # --- sampling ------------------------------------------------------------------------
    def sample(self, trial: optuna.Trial) -> ArchConfig:
        """Suggest one value per choice through ``trial`` and return the validated ArchConfig."""

        def pick(name: str, choices: Sequence[Any]) -> Any:
            return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, list(choices))

        return self._build(pick)

    def sample_random(self, rng: random.Random) -> ArchConfig:
        """One architecture with every choice drawn uniformly by ``rng`` (no Optuna; supernet paths)."""
        return self._build(lambda name, choices: choices[0] if len(choices) == 1 else rng.choice(list(choices)))

    def _build(self, pick: Picker) -> ArchConfig:
        stem = StemConfig(
            type=pick("stem.type", self.stem_type),
            patch_size=pick("stem.patch_size", self.patch_size),
            kernel_size=self.kernel_size,
        )
        stages = []
        width = None
        for si, stage in enumerate(self.stages):
            width = pick(f"s{si}.width", stage.width) if stage.width is not None else width
            downsample = pick(f"s{si}.downsample", stage.downsample)
            depth = pick(f"s{si}.depth", stage.depth)
            per_stage = {f: pick(f"s{si}.{f}", getattr(stage.layer, f)) for f in stage.layer.per_stage}
            layer = stage.layer.fix(per_stage)
            blocks: list[BlockConfig] = []
            for bi in range(depth):
                blocks.append(self._layer(pick, f"s{si}.b{bi}", layer, width, blocks[-1] if blocks else None))
            stages.append(StageConfig(width=width, blocks=tuple(blocks), downsample=downsample))
        position = _effective_position(pick("position", self.position), stages)
        arch = ArchConfig(
            stages=tuple(stages),
            stem=stem,
            position=position,
            head=pick("head", self.head),
            norm=pick("norm", self.norm),
            layer_scale_init=self.layer_scale_init,
        )
        return validate(arch)

    @staticmethod
    def _layer(pick: Picker, prefix: str, layer: LayerSpace, width: int, prev: BlockConfig | None) -> BlockConfig:
        mixer = pick(f"{prefix}.mixer", layer.mixer)
        cls = get_mixer(mixer)
        share = False
        if cls.SHARES_ATTENTION and prev is not None and get_mixer(prev.mixer.type).SHARES_ATTENTION:
            share = pick(f"{prefix}.share_attention", layer.share_attention)
        if share:
            heads = prev.mixer.heads  # a sharer must match the map it reuses
        else:
            heads = _heads(mixer, width, pick(f"{prefix}.head_dim", layer.head_dim)) if cls.USES_HEADS else None
        options = tuple((key, pick(f"{prefix}.{mixer}.{key}", values)) for key, values in layer.options_for(mixer))
        return BlockConfig(
            mixer=MixerConfig(mixer, heads=heads, options=tuple(sorted(options))),
            mlp_ratio=float(pick(f"{prefix}.mlp_ratio", layer.mlp_ratio)),
            mlp_groups=pick(f"{prefix}.mlp_groups", layer.mlp_groups),
            share_attention=share,
            cca=pick(f"{prefix}.cca", layer.cca),
        )

    # --- size and extremes ---------------------------------------------------------------
    def size(self) -> int:
        """Number of distinct architectures the space can produce (exact, sharing included).

        ``rope`` over layers with no query/key mixer is sampled as ``none`` (``_build``), so it
        adds nothing where ``none`` is on offer too.
        """
        others = math.prod(len(c) for c in (self.stem_type, self.patch_size, self.head, self.norm))
        every = self._stage_sequences()
        per_position = [every] * len(self.position)
        if "rope" in self.position and "none" in self.position:
            unrotated = self._stage_sequences(lambda m: not get_mixer(m).ROTATES_QK)
            per_position[self.position.index("rope")] = every - unrotated
        return others * sum(per_position)

    def _stage_sequences(self, keep_mixer: Callable[[str], bool] = lambda m: True) -> int:
        """Distinct stage sequences (widths, downsamples, layers) using only mixers ``keep_mixer`` accepts."""
        by_width: dict[int | None, int] = {None: 1}  # prefixes of stages, keyed by the last stage's width
        for stage in self.stages:
            mixers = tuple(m for m in stage.layer.mixer if keep_mixer(m))
            if not mixers:
                return 0
            layer = dataclasses.replace(stage.layer, mixer=mixers)
            nxt: dict[int | None, int] = {}
            for prev_width, count in by_width.items():
                for width in stage.width if stage.width is not None else (prev_width,):
                    layers = sum(_layers_count(tied, width, d) for d in stage.depth for tied in layer.tied())
                    nxt[width] = nxt.get(width, 0) + count * len(stage.downsample) * layers
            by_width = nxt
        return sum(by_width.values())

    def smallest(self, img_size: int = 224, num_classes: int = 1000) -> ArchConfig:
        """The architecture of least FLOPs at the given profile (exact, see ``_extreme``)."""
        return self._extreme(min, img_size, num_classes)

    def largest(self, img_size: int = 224, num_classes: int = 1000) -> ArchConfig:
        """The architecture of most FLOPs at the given profile."""
        return self._extreme(max, img_size, num_classes)

    def _extreme(self, better, img_size: int, num_classes: int) -> ArchConfig:
        """Exhaustive over global and downsample choices, a per-stage DP over layers.

        FLOPs grow with width and depth, so those take their extreme; block costs are
        independent given the grid except for attention sharing, which the DP tracks.
        """
        from .analytic import analytic_flops  # imports the layers, which a space file need not

        candidates = []
        globals_ = itertools.product(self.stem_type, self.patch_size, self.position, self.head, self.norm)
        downsamples = itertools.product(*(stage.downsample for stage in self.stages))
        for (stem_type, patch, position, head, norm), downs in itertools.product(list(globals_), list(downsamples)):
            stem = StemConfig(type=stem_type, patch_size=patch, kernel_size=self.kernel_size)
            side = stem_grid_size(stem, img_size)
            if side < 1:
                continue
            grid = TokenGrid(side, side, 1 if head == "cls" else 0)
            stages, width = [], None
            for stage, down in zip(self.stages, downs, strict=True):
                width = better(stage.width) if stage.width is not None else width
                grid = get_downsample(down).out_grid(grid)
                if grid.height < 1 or grid.width < 1:
                    break
                blocks = better(
                    (_extreme_layers(tied, width, better(stage.depth), grid, better) for tied in stage.layer.tied()),
                    key=lambda seq, width=width, grid=grid: sum(Block.flops(width, b, grid) for b in seq),
                )
                stages.append(StageConfig(width=width, blocks=blocks, downsample=down))
            else:
                arch = ArchConfig(
                    stages=tuple(stages),
                    stem=stem,
                    position=_effective_position(position, stages),
                    head=head,
                    norm=norm,
                    layer_scale_init=self.layer_scale_init,
                )
                candidates.append(validate(arch))
        if not candidates:
            raise ConfigError(self.name, f"no architecture of this space fits a {img_size}x{img_size} input")
        return better(candidates, key=lambda a: analytic_flops(a, img_size, num_classes=num_classes))


def _effective_position(position: str, stages: Sequence[StageConfig]) -> str:
    """``rope`` acts on queries and keys only: over layers with none to rotate it is ``none``."""
    if position == "rope" and not any(get_mixer(b.mixer.type).ROTATES_QK for st in stages for b in st.blocks):
        return "none"
    return position


def _heads(mixer: str, width: int, head_dim: int) -> int | None:
    return max(1, width // head_dim) if get_mixer(mixer).USES_HEADS else None


def option_combos(options: tuple[tuple[str, tuple], ...]):
    keys = [k for k, _ in options]
    for values in itertools.product(*(v for _, v in options)):
        yield tuple(sorted(zip(keys, values, strict=True)))


def _layers_count(layer: LayerSpace, width: int, depth: int) -> int:
    """Distinct layer sequences of one stage, with PSViT sharing counted exactly (a small DP).

    State: the head count of the previous block if it has a shareable attention map, else None.
    """
    states: dict[int | None, int] = {None: 1}
    rest = len(layer.mlp_ratio) * len(layer.mlp_groups) * len(layer.cca)
    for _ in range(depth):
        nxt: dict[int | None, int] = {}
        for state, count in states.items():
            for mixer in layer.mixer:
                cls = get_mixer(mixer)
                opts = math.prod(len(v) for _, v in layer.options_for(mixer))
                heads_choices = [_heads(mixer, width, hd) for hd in layer.head_dim] if cls.USES_HEADS else [None]
                for heads in heads_choices:
                    key = heads if cls.SHARES_ATTENTION else None
                    nxt[key] = nxt.get(key, 0) + count * opts * rest
                if cls.SHARES_ATTENTION and state is not None and True in layer.share_attention:
                    nxt[state] = nxt.get(state, 0) + count * opts * rest
        states = nxt
    return sum(states.values())


def _reject_unknown(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(where, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _stage_space(data: Any, path: str, index: int) -> StageSpace:
    if not isinstance(data, Mapping):
        raise ConfigError(path, "expected a mapping of stage choices")
    _reject_unknown(data, {"width", "depth", "downsample", "layer", "mixer_options"}, path)
    width = data.get("width", SAME if index else None)
    if width is None:
        raise ConfigError(f"{path}.width", "missing")
    widths = None if width == SAME else _choices(width, f"{path}.width", int)
    if widths is not None and min(widths) < 1:
        raise ConfigError(f"{path}.width", "widths must be positive")
    if "depth" not in data:
        raise ConfigError(f"{path}.depth", "missing")
    depths = _choices(data["depth"], f"{path}.depth", int)
    if min(depths) < 1:
        raise ConfigError(f"{path}.depth", "depths must be at least 1")
    downsample = _choices(data.get("downsample", "none"), f"{path}.downsample", str, list_downsamples())
    layer_data = data.get("layer", {})
    if not isinstance(layer_data, Mapping):
        raise ConfigError(f"{path}.layer", "expected a mapping of per-layer choices")
    lp = f"{path}.layer"
    _reject_unknown(layer_data, {*LAYER_FIELDS, "share_attention", "per_stage"}, lp)
    mixer_choice = layer_data.get("mixer", "attention")
    # "all": every registered mixer, so a space that means all of them takes a new mixer file unedited
    mixers = tuple(list_mixers()) if mixer_choice == ALL else _choices(mixer_choice, f"{lp}.mixer", str, list_mixers())
    raw_options = data.get("mixer_options", {})
    if not isinstance(raw_options, Mapping):
        raise ConfigError(f"{path}.mixer_options", "expected mixer name -> option -> choices")
    options = []
    for mixer, opts in raw_options.items():
        op = f"{path}.mixer_options.{mixer}"
        if mixer not in mixers:
            raise ConfigError(op, f"{mixer!r} is not among this stage's mixers ({', '.join(mixers)})")
        if not isinstance(opts, Mapping):
            raise ConfigError(op, "expected option -> choices")
        known = get_mixer(mixer).OPTIONS
        for key in opts:
            if key not in known:
                raise ConfigError(f"{op}.{key}", f"unknown option (allowed: {', '.join(sorted(known)) or 'none'})")
        options.append((mixer, tuple(sorted((k, _choices(v, f"{op}.{k}", object)) for k, v in opts.items()))))
    layer = LayerSpace(
        mixer=mixers,
        head_dim=_choices(layer_data.get("head_dim", 64), f"{lp}.head_dim", int),
        mlp_ratio=tuple(float(r) for r in _choices(layer_data.get("mlp_ratio", 4.0), f"{lp}.mlp_ratio", (int, float))),
        mlp_groups=_choices(layer_data.get("mlp_groups", 1), f"{lp}.mlp_groups", int),
        share_attention=_choices(layer_data.get("share_attention", False), f"{lp}.share_attention", bool),
        cca=_choices(layer_data.get("cca", False), f"{lp}.cca", bool),
        mixer_options=tuple(sorted(options)),
        per_stage=_choices(layer_data.get("per_stage", []), f"{lp}.per_stage", str, PER_STAGE_FIELDS)
        if layer_data.get("per_stage")
        else (),
    )
    return StageSpace(width=widths, depth=depths, downsample=downsample, layer=layer)


def _layer_candidates(layer: LayerSpace, width: int):
    """Every block one layer of the stage can be, without sharing."""
    for mixer in layer.mixer:
        head_dims = layer.head_dim if get_mixer(mixer).USES_HEADS else (None,)
        for hd, opts in itertools.product(head_dims, list(option_combos(layer.options_for(mixer)))):
            heads = _heads(mixer, width, hd) if hd else None
            for ratio, groups, cca in itertools.product(layer.mlp_ratio, layer.mlp_groups, layer.cca):
                cfg = MixerConfig(mixer, heads=heads, options=opts)
                yield BlockConfig(mixer=cfg, mlp_ratio=ratio, mlp_groups=groups, cca=cca)


@functools.lru_cache(maxsize=4096)  # spaces repeat (layer, width, depth, grid) across global choices
def _extreme_layers(layer: LayerSpace, width: int, depth: int, grid: TokenGrid, better) -> tuple[BlockConfig, ...]:
    """The cheapest (or dearest) sequence of ``depth`` layers: a DP over 'previous block shareable'."""
    candidates = list(_layer_candidates(layer, width))
    cost = {c: Block.flops(width, c, grid) for c in candidates}
    can_share = True in layer.share_attention
    # state -> (total flops, blocks); state = the previous block's heads if its map can be shared
    states: dict[int | None, tuple[int, tuple[BlockConfig, ...]]] = {None: (0, ())}
    for _ in range(depth):
        nxt: dict[int | None, tuple[int, tuple[BlockConfig, ...]]] = {}
        for state, (total, blocks) in states.items():
            options = list(candidates)
            if can_share and state is not None:
                options += [
                    BlockConfig(c.mixer, c.mlp_ratio, c.mlp_groups, share_attention=True, cca=c.cca)
                    for c in candidates
                    if get_mixer(c.mixer.type).SHARES_ATTENTION and c.mixer.heads == state
                ]
            for block in options:
                flops = cost.get(block) if block in cost else Block.flops(width, block, grid)
                key = block.mixer.heads if get_mixer(block.mixer.type).SHARES_ATTENTION else None
                entry = (total + flops, (*blocks, block))
                if key not in nxt or better(entry[0], nxt[key][0]) != nxt[key][0]:
                    nxt[key] = entry
        states = nxt
    return better(states.values(), key=lambda e: e[0])[1]
