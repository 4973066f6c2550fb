"""One stage of a search space: its choices (``StageSpace``, ``LayerSpace``), how a space file
declares them (``parse_stage``), and what one stage's layers can be: counted (``layers_count``)
and at their extremes (``extreme_layers``). ``search_space.SearchSpace`` strings stages together.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import BlockConfig, ConfigError, MixerConfig
from .layers import Block, TokenGrid
from .registry import get_mixer, list_downsamples, list_mixers

SAME = "same"


ALL = "all"  # ``mixer: all``


LAYER_FIELDS = ("mixer", "head_dim", "mlp_ratio", "mlp_groups", "cca")


# Fields per_stage may name: each matters to every layer (head_dim does not: a pool layer ignores it,
# so tied head dims would count one stage of pool layers twice).
PER_STAGE_FIELDS = ("mixer", "mlp_ratio", "mlp_groups", "cca")


def choices(value: Any, path: str, kind: type | tuple[type, ...], allowed: Sequence[Any] | None = None) -> tuple:
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


def heads_for(mixer: str, width: int, head_dim: int) -> int | None:
    return max(1, width // head_dim) if get_mixer(mixer).USES_HEADS else None


def option_combos(options: tuple[tuple[str, tuple], ...]):
    keys = [k for k, _ in options]
    for values in itertools.product(*(v for _, v in options)):
        yield tuple(sorted(zip(keys, values, strict=True)))


def layers_count(layer: LayerSpace, width: int, depth: int) -> int:
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
                heads_choices = [heads_for(mixer, width, hd) for hd in layer.head_dim] if cls.USES_HEADS else [None]
                for heads in heads_choices:
                    key = heads if cls.SHARES_ATTENTION else None
                    nxt[key] = nxt.get(key, 0) + count * opts * rest
                if cls.SHARES_ATTENTION and state is not None and True in layer.share_attention:
                    nxt[state] = nxt.get(state, 0) + count * opts * rest
        states = nxt
    return sum(states.values())


def reject_unknown(data: Mapping[str, Any], allowed: set[str], path: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        where = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(where, f"unknown field (allowed: {', '.join(sorted(allowed))})")


def parse_stage(data: Any, path: str, index: int) -> StageSpace:
    if not isinstance(data, Mapping):
        raise ConfigError(path, "expected a mapping of stage choices")
    reject_unknown(data, {"width", "depth", "downsample", "layer", "mixer_options"}, path)
    width = data.get("width", SAME if index else None)
    if width is None:
        raise ConfigError(f"{path}.width", "missing")
    widths = None if width == SAME else choices(width, f"{path}.width", int)
    if widths is not None and min(widths) < 1:
        raise ConfigError(f"{path}.width", "widths must be positive")
    if "depth" not in data:
        raise ConfigError(f"{path}.depth", "missing")
    depths = choices(data["depth"], f"{path}.depth", int)
    if min(depths) < 1:
        raise ConfigError(f"{path}.depth", "depths must be at least 1")
    downsample = choices(data.get("downsample", "none"), f"{path}.downsample", str, list_downsamples())
    layer_data = data.get("layer", {})
    if not isinstance(layer_data, Mapping):
        raise ConfigError(f"{path}.layer", "expected a mapping of per-layer choices")
    lp = f"{path}.layer"
    reject_unknown(layer_data, {*LAYER_FIELDS, "share_attention", "per_stage"}, lp)
    mixer_choice = layer_data.get("mixer", "attention")
    # "all": every registered mixer, so a space that means all of them takes a new mixer file unedited
    mixers = tuple(list_mixers()) if mixer_choice == ALL else choices(mixer_choice, f"{lp}.mixer", str, list_mixers())
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
        options.append((mixer, tuple(sorted((k, choices(v, f"{op}.{k}", object)) for k, v in opts.items()))))
    layer = LayerSpace(
        mixer=mixers,
        head_dim=choices(layer_data.get("head_dim", 64), f"{lp}.head_dim", int),
        mlp_ratio=tuple(float(r) for r in choices(layer_data.get("mlp_ratio", 4.0), f"{lp}.mlp_ratio", (int, float))),
        mlp_groups=choices(layer_data.get("mlp_groups", 1), f"{lp}.mlp_groups", int),
        share_attention=choices(layer_data.get("share_attention", False), f"{lp}.share_attention", bool),
        cca=choices(layer_data.get("cca", False), f"{lp}.cca", bool),
        mixer_options=tuple(sorted(options)),
        per_stage=choices(layer_data.get("per_stage", []), f"{lp}.per_stage", str, PER_STAGE_FIELDS)
        if layer_data.get("per_stage")
        else (),
    )
    return StageSpace(width=widths, depth=depths, downsample=downsample, layer=layer)


def layer_candidates(layer: LayerSpace, width: int):
    """Every block one layer of the stage can be, without sharing."""
    for mixer in layer.mixer:
        head_dims = layer.head_dim if get_mixer(mixer).USES_HEADS else (None,)
        for hd, opts in itertools.product(head_dims, list(option_combos(layer.options_for(mixer)))):
            heads = heads_for(mixer, width, hd) if hd else None
            for ratio, groups, cca in itertools.product(layer.mlp_ratio, layer.mlp_groups, layer.cca):
                cfg = MixerConfig(mixer, heads=heads, options=opts)
                yield BlockConfig(mixer=cfg, mlp_ratio=ratio, mlp_groups=groups, cca=cca)


@functools.lru_cache(maxsize=4096)  # spaces repeat (layer, width, depth, grid) across global choices
def extreme_layers(layer: LayerSpace, width: int, depth: int, grid: TokenGrid, better) -> tuple[BlockConfig, ...]:
    """The cheapest (or dearest) sequence of ``depth`` layers: a DP over 'previous block shareable'."""
    candidates = list(layer_candidates(layer, width))
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
