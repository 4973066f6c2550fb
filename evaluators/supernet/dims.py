"""What a space can produce at a profile: the sizes a supernet must hold, stage by stage.

A path is an architecture of the space *as the profile builds it*: ``adapt_arch`` (see
``evaluators/profile.py``) rewrites the stem stride for the profile's resolution and scales
the widths by ``width_mult``, rounding each stage group to a multiple of the least common
multiple ``m`` of its head counts and MLP groups (stepping up by ``m`` while validation
fails). The supernet's tensors must be as large as the largest width any path can have, and
some per-size tensors (Performer features per head dim, Linformer projections per token
count, learned position embeddings per grid) must exist for every size a path can use.

``space_dims`` enumerates supersets of those sizes without sampling: every subset of the
head counts and groups a stage can hold gives one possible ``m``; every rounding and step-up
chain of it gives a candidate width. A path outside these sets is refused by the supernet
with a ``PathError`` naming the field, never run on a wrong slice.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

from vitsearch.evaluators.profile import adapt_arch, adapt_stem
from vitsearch.space import (
    ArchConfig,
    BlockConfig,
    ConfigError,
    MixerConfig,
    StageConfig,
    StemConfig,
    TokenGrid,
    get_downsample,
    get_mixer,
)
from vitsearch.space.search_space import SearchSpace
from vitsearch.space.stage_space import StageSpace
from vitsearch.space.stems import stem_grid_size


class PathError(ValueError):
    """An architecture that is not a path of this supernet (a choice or size it does not hold)."""


@dataclass(frozen=True)
class SupernetProfile:
    """Where a supernet's paths run: input, classes, and the proxy rewrite of each architecture.

    The defaults of ``target_img_size``, ``grid`` and ``width_mult`` are the reference evaluator's
    (``REFERENCE_PROFILE``: the proxy's grid at x0.25 width), so a supernet path is the very model
    the fidelity study's reference trains; the default proxy trains the same design at x0.125.
    """

    img_size: int  # input side the paths run at (mnist5k: 28)
    in_chans: int
    num_classes: int
    target_img_size: int = 224  # resolution architectures are described at
    grid: int | None = None  # stem grid side; None = the architecture's grid at target_img_size x grid_scale
    width_mult: float = 0.25  # stage widths x this, heads and groups kept valid (the reference's width)
    # 1 here, so a checkpoint saved before this field loads as it was trained (the target grid);
    # `supernet train` passes the proxy's 0.5 (SupernetTrainConfig.grid_scale).
    grid_scale: float = 1.0

    def adapt(self, arch: ArchConfig) -> ArchConfig:
        """The architecture as this profile builds it (stem stride, widths)."""
        return adapt_arch(arch, self.img_size, self.target_img_size, self.grid, self.width_mult, self.grid_scale)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.grid_scale == 1.0:  # as saved before the field existed, so older checkpoints compare equal
            out.pop("grid_scale")
        return out


@dataclass(frozen=True)
class StageDims:
    """The sizes one stage of a supernet holds (all at the profile)."""

    widths: tuple[int, ...]  # every width a path can give this stage, ascending
    heads: tuple[int, ...]  # every head count of an attention-family mixer, ascending
    grids: tuple[TokenGrid, ...]  # every token grid the stage's blocks can see
    depth: int  # most blocks
    hidden: int  # widest MLP hidden layer
    downsamples: tuple[str, ...]

    @property
    def width(self) -> int:
        return self.widths[-1]

    @property
    def max_heads(self) -> int:
        return self.heads[-1] if self.heads else 1

    @property
    def tokens(self) -> tuple[int, ...]:
        return tuple(sorted({g.tokens for g in self.grids}))

    def head_dims(self) -> tuple[int, ...]:
        """Every ``width / heads`` a path of this stage can have."""
        return tuple(sorted({w // h for w in self.widths for h in self.heads if w % h == 0}))


@dataclass(frozen=True)
class SpaceDims:
    stems: tuple[StemConfig, ...]  # the stems of every path, as adapted to the profile
    stem_sides: tuple[int, ...]  # the stem grid side of each of ``stems``
    stages: tuple[StageDims, ...]
    heads_kinds: tuple[str, ...]  # the space's classifier heads (cls / mean)


def _target_widths(space: SearchSpace) -> list[tuple[int, ...]]:
    out: list[tuple[int, ...]] = []
    for stage in space.stages:
        out.append(tuple(stage.width) if stage.width is not None else out[-1])
    return out


def _head_counts(layer_space, width: int) -> set[int]:
    """Head counts the space writes into a block of this width (``SearchSpace._layer``)."""
    if not any(get_mixer(m).USES_HEADS for m in layer_space.mixer):
        return set()
    return {max(1, width // hd) for hd in layer_space.head_dim}


def _multiples(values: set[int]) -> set[int]:
    """lcm of every subset of ``values`` (the empty subset gives 1)."""
    out = {1}
    items = sorted(values)
    for r in range(1, len(items) + 1):
        for subset in itertools.combinations(items, r):
            out.add(math.lcm(*subset))
    return out


def _mlp_ok(width: int, stages: list[StageSpace]) -> bool:
    """Every MLP ratio / group combination of these stages is valid at ``width`` (``_validate_mlp``)."""
    for stage in stages:
        for ratio, groups in itertools.product(stage.layer.mlp_ratio, stage.layer.mlp_groups):
            hidden = int(width * ratio)
            if hidden < 1 or width % groups or hidden % groups:
                return False
    return True


def _scaled_widths(width: int, width_mult: float, stages: list[StageSpace], max_steps: int = 64) -> set[int]:
    """Every width ``scale_widths`` can give a stage group of target width ``width`` (a superset)."""
    if width_mult == 1.0:
        return {width}
    values: set[int] = set()
    for stage in stages:
        values |= _head_counts(stage.layer, width) | set(stage.layer.mlp_groups)
    out: set[int] = set()
    for m in _multiples(values):
        w = max(m, round(width * width_mult / m) * m)
        for _ in range(max_steps):  # the step-up chain, up to where every combination is valid
            out.add(w)
            if _mlp_ok(w, stages):
                break
            w += m
    return out


def space_dims(space: SearchSpace, profile: SupernetProfile) -> SpaceDims:
    """The sizes a supernet over ``space`` at ``profile`` must hold (see the module docstring)."""
    targets = _target_widths(space)
    # Stages that may share a target width may be rounded together (a width-keeping downsample).
    stems, sides = [], []
    for stem_type, patch in itertools.product(space.stem_type, space.patch_size):
        stem = StemConfig(type=stem_type, patch_size=patch, kernel_size=space.kernel_size)
        probe = ArchConfig(stages=(StageConfig(width=8, blocks=(BlockConfig(MixerConfig("pool")),)),), stem=stem)
        adapted = adapt_stem(probe, profile.img_size, profile.target_img_size, profile.grid, profile.grid_scale).stem
        side = stem_grid_size(adapted, profile.img_size)
        if side < 1:
            raise ConfigError("stem", f"{stem_type} stem with patch {patch} leaves no tokens at {profile.img_size}px")
        if adapted not in stems:
            stems.append(adapted)
            sides.append(side)
    grids = {TokenGrid(side, side, 1 if head == "cls" else 0) for side in sides for head in space.head}
    stages = []
    for si, stage in enumerate(space.stages):
        grids = {get_downsample(d).out_grid(g) for g in grids for d in stage.downsample}
        grids = {g for g in grids if g.height >= 1 and g.width >= 1}
        joined = [s for s, t in zip(space.stages, targets, strict=True) if set(t) & set(targets[si])]
        widths: set[int] = set()
        heads: set[int] = set()
        for width in targets[si]:
            widths |= _scaled_widths(width, profile.width_mult, joined)
            heads |= _head_counts(stage.layer, width)
        hidden = max(int(w * r) for w in widths for r in stage.layer.mlp_ratio)
        stages.append(
            StageDims(
                widths=tuple(sorted(widths)),
                heads=tuple(sorted(heads)),
                grids=tuple(sorted(grids, key=lambda g: (g.height, g.width, g.prefix))),
                depth=max(stage.depth),
                hidden=hidden,
                downsamples=stage.downsample,
            )
        )
    return SpaceDims(stems=tuple(stems), stem_sides=tuple(sides), stages=tuple(stages), heads_kinds=space.head)
