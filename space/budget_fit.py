"""A space's widths and depths scaled to the budget, so a search spreads over it (AutoFormer's T/S/B spaces).

A space's prior is what a uniform draw of its choices gives: ``full`` as shipped has a median of
0.46 GFLOPs and nothing above 3.8, so a 2 GFLOPs search would evaluate small models only and a
17.6 GFLOPs one could not run. ``fit_to_budget`` multiplies every stage's widths (rounded to a
quantum that keeps heads and MLP groups valid) and stretches its depths, choosing from a grid of
multipliers the pair whose median draw is nearest ``MEDIAN_SHARE`` of the budget: about half of
the draws then fall within budget, a good share of them in its upper half, and the rest spread
down to a tenth of it. Seeded draws, so the scaled space, and the digest a study is signed with,
are the same every time.
"""

from __future__ import annotations

import dataclasses
import math
import random
import statistics

from .config import ConfigError
from .search_space import SearchSpace

WIDTH_MULTS = (0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
DEPTH_MULTS = (1.0, 1.5, 2.0, 3.0)
MEDIAN_SHARE = 0.5  # the scaled space's median draw, as a share of the budget
DRAWS = 100  # seeded uniform draws per candidate scaling
REACH_SHARE = 0.9  # a budget is reachable when the scaled space's largest architecture gets this near


def scaled(space: SearchSpace, width_mult: float, depth_mult: float) -> SearchSpace:
    """Every stage width x ``width_mult`` (rounded to the space's quantum) and depth choice x ``depth_mult``.

    The smallest depth is kept, so stretching the depths widens the range instead of moving it.
    """
    quantum = _width_quantum(space)
    stages = []
    for stage in space.stages:
        width = None
        if stage.width is not None:
            width = tuple(sorted({max(quantum, round(w * width_mult / quantum) * quantum) for w in stage.width}))
        depth = tuple(sorted({min(stage.depth)} | {max(1, round(d * depth_mult)) for d in stage.depth}))
        stages.append(dataclasses.replace(stage, width=width, depth=depth))
    note = f"widths x{width_mult:g}, depths x{depth_mult:g}"
    out = dataclasses.replace(space, stages=tuple(stages), description=f"{space.description} ({note})".strip())
    out.check()
    return out


def fit_to_budget(space: SearchSpace, budget: int, img_size: int = 224, num_classes: int = 1000) -> SearchSpace:
    """The scaling of ``space`` whose median draw is nearest ``MEDIAN_SHARE * budget``; ConfigError if unreachable."""
    from .analytic import analytic_flops

    def flops(arch) -> int:
        return analytic_flops(arch, img_size, num_classes=num_classes)

    best: tuple[float, float, SearchSpace] | None = None
    for depth_mult in DEPTH_MULTS:
        for width_mult in WIDTH_MULTS:
            try:
                candidate = scaled(space, width_mult, depth_mult)
            except ConfigError:
                continue  # a multiplier the space's choices cannot take (heads, groups)
            rng = random.Random(0)
            median = statistics.median(flops(candidate.sample_random(rng)) for _ in range(DRAWS))
            key = (abs(math.log(median / (MEDIAN_SHARE * budget))), abs(math.log(depth_mult)))
            if best is None or key < best[:2]:
                best = (*key, candidate)
    if best is None:
        raise ConfigError(space.name, "no width or depth multiplier keeps this space valid")
    fitted = best[2]
    largest = flops(fitted.largest(img_size, num_classes))
    if largest < REACH_SHARE * budget:
        raise ConfigError(
            "--budget",
            f"{budget / 1e9:g} GFLOPs is beyond space {space.name!r}: scaled as far as it goes "
            f"({fitted.description.rsplit('(', 1)[-1].rstrip(')')}) its largest architecture needs "
            f"{largest / 1e9:.2f} GFLOPs",
        )
    return fitted


def _width_quantum(space: SearchSpace) -> int:
    """The least common multiple of every head dim and MLP group count, at least 16."""
    quantum = 16
    for stage in space.stages:
        for value in (*stage.layer.head_dim, *stage.layer.mlp_groups):
            quantum = math.lcm(quantum, int(value))
    return quantum
