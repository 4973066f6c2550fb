"""vitsearch.search.comparison: the pieces of a comparison at equal compute."""

from __future__ import annotations

from itertools import islice

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.search.baselines import FAMILIES
from vitsearch.search.comparison import fitted_space, random_draws, scaled_families, search_spend
from vitsearch.search.rungs import Fidelity, RungScore


def test_random_draws_are_distinct_within_budget_and_repeatable():
    space = fitted_space("full", 5e8)
    first = list(islice(random_draws(space, 5e8, 3), 30))
    again = list(islice(random_draws(space, 5e8, 3), 30))
    assert [a.digest() for a, _ in first] == [a.digest() for a, _ in again]
    assert len({a.digest() for a, _ in first}) == 30
    assert all(f <= 5e8 and analytic_flops(a) == f for a, f in first)
    other = list(islice(random_draws(space, 5e8, 4), 30))
    assert [a.digest() for a, _ in other] != [a.digest() for a, _ in first]


def test_search_spend_sums_steps_over_rungs_and_counts_evaluations_per_rung():
    def score(digest, rung, steps):
        return RungScore(digest, Fidelity(rung, steps, "proxy"), "COMPLETE", 0.5)

    scores = {
        "a": {0: score("a", 0, 100), 1: score("a", 1, 200), 2: score("a", 2, 400)},
        "b": {0: score("b", 0, 100), 1: score("b", 1, 200)},
        "c": {0: score("c", 0, 100)},
        "d": {0: score("d", 0, None)},  # no step count recorded: counts as an evaluation, no steps
    }
    assert search_spend(scores) == (1100, [4, 2, 1])


def test_scaled_families_keep_one_member_per_family_within_budget():
    found = scaled_families(1.3e9)
    assert set(found) == set(FAMILIES)
    assert all(analytic_flops(arch) <= 1.3e9 for arch in found.values())
    assert "deit" not in scaled_families(3e8)  # DeiT has no member at 0.3 GFLOPs
