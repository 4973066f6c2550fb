"""The default space scaled to the budget: its draws cover [B/10, B], a quarter or more in [B/2, B]."""

from __future__ import annotations

import random

import pytest

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.search.spaces import resolve_space
from vitsearch.space import ConfigError
from vitsearch.space.budget_fit import fit_to_budget, scaled


@pytest.mark.parametrize("budget", [0.3e9, 2e9, 4.6e9, 17.6e9])
def test_fitted_draws_cover_the_budget(budget):
    space = fit_to_budget(resolve_space("full"), int(budget))
    rng = random.Random(7)  # not the fit's own seed
    flops = [analytic_flops(space.sample_random(rng)) / budget for _ in range(400)]
    within = [f for f in flops if f <= 1]
    assert len(within) >= 0.4 * len(flops)  # rejected draws cost nothing, but most should count
    assert sum(f >= 0.5 for f in within) >= 0.25 * len(within)
    assert min(within) <= 0.1 and max(within) >= 0.9


def test_the_shipped_space_alone_does_not_cover_2_gflops():
    """Why the fit exists: unscaled, under 10% of the draws fall in [1, 2] GFLOPs."""
    rng = random.Random(7)
    space = resolve_space("full")
    flops = [analytic_flops(space.sample_random(rng)) / 2e9 for _ in range(400)]
    assert sum(0.5 <= f <= 1 for f in flops) < 0.1 * len(flops)


def test_scaling_keeps_every_choice_valid_and_the_smallest_depth():
    space = scaled(resolve_space("full"), 1.5, 2.0)
    assert space.stages[0].width == (192, 256, 384, 576)  # x1.5, multiples of the 64 that heads and groups need
    assert space.stages[1].depth[0] == 1 and max(space.stages[1].depth) == 12
    assert "widths x1.5, depths x2" in space.description
    assert space.digest() != resolve_space("full").digest()


def test_a_budget_beyond_the_space_is_one_clear_error():
    with pytest.raises(ConfigError, match="beyond space 'full'.*largest architecture needs"):
        fit_to_budget(resolve_space("full"), int(500e9))
