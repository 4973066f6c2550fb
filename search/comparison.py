"""The default search against other ways of choosing: what a comparison at equal compute needs.

``studies/search_vs_baselines.py`` pairs ``vitsearch run``'s pick with random search at the same
compute and with every hand-designed family scaled to the budget. The pieces it needs from the
package: the shipped space fitted to the budget (``fitted_space``), uniform draws from it in a fixed
order (``random_draws``: a rerun resumes at the same architectures), the evaluator of the default
search's top rung (``top_rung_evaluator``), a finished search's spend in optimizer steps and
evaluations per rung (``search_spend``), and the families scaled to the budget (``scaled_families``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vitsearch.evaluators.base import BaseEvaluator
    from vitsearch.search.rungs import RungScore
    from vitsearch.space import ArchConfig
    from vitsearch.space.search_space import SearchSpace


def fitted_space(space: str, budget: float) -> SearchSpace:
    """The shipped space (or space file) ``space`` fitted to ``budget`` FLOPs, as ``vitsearch run`` fits it."""
    from vitsearch.search.spaces import resolve_space
    from vitsearch.space.budget_fit import fit_to_budget

    return fit_to_budget(resolve_space(space), int(budget))


def random_draws(space: SearchSpace, budget: float, seed: int) -> Iterator[tuple[ArchConfig, int]]:
    """Distinct uniform draws within budget, ``(arch, analytic FLOPs)``, in a fixed order for ``seed``."""
    from vitsearch.space.analytic import analytic_flops

    rng, seen = random.Random(seed), set()
    while True:
        arch = space.sample_random(rng)
        digest = arch.digest()
        flops = analytic_flops(arch)
        if flops <= budget and digest not in seen:
            seen.add(digest)
            yield arch, flops


def top_rung_evaluator(data: str | None, proxy_settings: dict[str, Any]) -> BaseEvaluator:
    """The proxy at the default search's top rung (``vitsearch run``'s evaluator, rungs and eta)."""
    from dataclasses import fields

    from vitsearch.search.plan import SearchConfig, make_evaluator
    from vitsearch.search.rungs import ladder

    defaults = {f.name: f.default for f in fields(SearchConfig)}
    proxy = make_evaluator("proxy", data, proxy_settings)
    return ladder(proxy, defaults["rungs"], defaults["eta"])[-1]


def search_spend(scores: dict[str, dict[int, RungScore]]) -> tuple[int, list[int]]:
    """``(optimizer steps over every rung, evaluations at rung 0, 1, ... the top)`` of a search.

    Args:
        scores: digest -> rung -> score, as ``rungs.run_scores(study)`` reads them.
    """
    steps = sum(s.fidelity.steps or 0 for by_rung in scores.values() for s in by_rung.values())
    top = max(rung for by_rung in scores.values() for rung in by_rung)
    return steps, [sum(1 for by_rung in scores.values() if r in by_rung) for r in range(top + 1)]


def scaled_families(budget: float, img_size: int = 224, num_classes: int = 1000) -> dict[str, ArchConfig]:
    """Every hand-designed family (``baselines.FAMILIES``) scaled to the budget, by family name.

    Unlike ``budget_baselines``, which names a scaled member after the preset it equals and adds the
    presets, this keeps one member per family: equal FLOPs footing, under stable names.
    """
    from vitsearch.search.baselines import FAMILIES, scaled_to_budget

    out = {}
    for family, build in FAMILIES.items():
        arch = scaled_to_budget(build, int(budget), img_size=img_size, num_classes=num_classes)
        if arch is not None:
            out[family] = arch
    return out
