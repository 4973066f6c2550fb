"""Which candidates go on to the next rung: non-dominated sorting of (score, FLOPs), crowding to break ties.

A short training favours small models (``studies/fidelity``: the default proxy's mean score rises
about half as steeply with FLOPs as the reference's), so promoting the top scores of a rung would
promote small models only. Multi-objective successive halving (SMAC3's and Archai's successive
halving, Syne Tune's MO-ASHA) promotes by Pareto rank instead: every FLOPs region keeps its best,
and sizes are compared on score alone only at the top rung. Within the last front that does not
fit whole, NSGA-II's crowding distance keeps the spread-out points (the extremes first).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    key: str  # what identifies it (an architecture digest)
    score: float  # maximised
    flops: float  # minimised


def dominates(a: Candidate, b: Candidate) -> bool:
    return a.score >= b.score and a.flops <= b.flops and (a.score > b.score or a.flops < b.flops)


def non_dominated_fronts(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Fronts F1, F2, ...: F1 is dominated by none, F2 only by members of F1, and so on."""
    remaining = sorted(candidates, key=lambda c: (c.flops, -c.score, c.key))
    fronts: list[list[Candidate]] = []
    while remaining:
        front = [c for c in remaining if not any(dominates(o, c) for o in remaining)]
        fronts.append(front)
        keys = {c.key for c in front}
        remaining = [c for c in remaining if c.key not in keys]
    return fronts


def crowding_distance(front: Sequence[Candidate]) -> dict[str, float]:
    """NSGA-II's crowding distance in (score, log FLOPs); the two extremes are infinite."""
    distance = dict.fromkeys((c.key for c in front), 0.0)
    if len(front) <= 2:
        return dict.fromkeys(distance, math.inf)
    for value in (lambda c: c.score, lambda c: math.log(max(c.flops, 1.0))):
        ordered = sorted(front, key=lambda c: (value(c), c.key))
        span = value(ordered[-1]) - value(ordered[0])
        distance[ordered[0].key] = distance[ordered[-1].key] = math.inf
        if span <= 0:
            continue
        for prev, cur, nxt in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[cur.key] += (value(nxt) - value(prev)) / span
    return distance


def promote(candidates: Sequence[Candidate], k: int) -> list[Candidate]:
    """The ``k`` candidates to take to the next rung: whole fronts first, then the most crowding-distant."""
    chosen: list[Candidate] = []
    for front in non_dominated_fronts(candidates):
        if len(chosen) + len(front) <= k:
            chosen.extend(front)
            continue
        distance = crowding_distance(front)
        rest = sorted(front, key=lambda c: (-distance[c.key], -c.score, c.key))
        chosen.extend(rest[: k - len(chosen)])
        break
    return chosen


def rung_sizes(n: int, eta: int, rungs: int) -> list[int]:
    """How many candidates each rung holds when ``n`` enter the first: ``ceil(n / eta**r)``, at least 1."""
    return [max(1, math.ceil(n / eta**r)) for r in range(rungs)] if n else [0] * rungs
