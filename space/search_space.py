"""SearchSpace: the declared choices of a study, sampled into ``ArchConfig``s by Optuna.

A space file (``space/spaces/*.yaml``) mirrors ``ArchConfig``; wherever a value is a list it is a
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
import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Mapping, Sequence
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
from .registry import get_downsample, get_mixer
from .stage_space import (
    SAME,
    LayerSpace,
    StageSpace,
    choices,
    extreme_layers,
    heads_for,
    layer_candidates,
    layers_count,
    parse_stage,
    reject_unknown,
)
from .stems import stem_grid_size

if TYPE_CHECKING:
    import optuna


Picker = Callable[[str, Sequence[Any]], Any]  # (parameter name, choices) -> the chosen value


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
        reject_unknown(data, allowed, "")
        stem = data.get("stem", {})
        if not isinstance(stem, Mapping):
            raise ConfigError("stem", "expected a mapping")
        reject_unknown(stem, {"type", "patch_size", "kernel_size"}, "stem")
        raw_stages = data.get("stages")
        if not isinstance(raw_stages, list) or not raw_stages:
            raise ConfigError("stages", "a list of at least one stage is needed")
        lsi = data.get("layer_scale_init")
        if lsi is not None and (isinstance(lsi, bool) or not isinstance(lsi, (int, float))):
            raise ConfigError("layer_scale_init", f"expected a number or null, got {lsi!r}")
        space = cls(
            name=str(data.get("name", name)),
            description=str(data.get("description", "")),
            stem_type=choices(stem.get("type", "patch"), "stem.type", str, STEM_TYPES),
            patch_size=choices(stem.get("patch_size", 16), "stem.patch_size", int),
            kernel_size=stem.get("kernel_size"),
            position=choices(data.get("position", "learned"), "position", str, POSITION_TYPES),
            head=choices(data.get("head", "cls"), "head", str, HEAD_TYPES),
            norm=choices(data.get("norm", "layernorm"), "norm", str, NORM_TYPES),
            layer_scale_init=float(lsi) if lsi is not None else None,
            stages=tuple(parse_stage(s, f"stages[{i}]", i) for i, s in enumerate(raw_stages)),
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
                for block in layer_candidates(stage.layer, width):
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
            heads = heads_for(mixer, width, pick(f"{prefix}.head_dim", layer.head_dim)) if cls.USES_HEADS else None
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
                    layers = sum(layers_count(tied, width, d) for d in stage.depth for tied in layer.tied())
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
                    (extreme_layers(tied, width, better(stage.depth), grid, better) for tied in stage.layer.tied()),
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
