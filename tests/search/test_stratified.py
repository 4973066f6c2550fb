"""The stratified start: one draw per FLOPs stratum of the budget, enqueued as a new study's first trials."""

from __future__ import annotations

import optuna
import pytest
from test_rungs import BiasedLadder

from vitsearch.search.driver import RunPlan, SearchConfig, run_search
from vitsearch.search.spaces import resolve_space
from vitsearch.search.stratified import STRATA, TOLERANCE, stratified_start
from vitsearch.space.analytic import analytic_flops
from vitsearch.space.budget_fit import fit_to_budget


@pytest.mark.parametrize("budget", [2e9, 4.6e9, 17.6e9])
def test_every_stratum_of_the_fitted_default_space_is_filled(budget):
    space = fit_to_budget(resolve_space("full"), int(budget))
    found = stratified_start(space, int(budget), seed=0)
    assert len(found) == len(STRATA)
    flops = [analytic_flops(space.sample(optuna.trial.FixedTrial(params))) / budget for params in found]
    for fraction, share in zip(STRATA[:-1], flops[:-1], strict=True):
        assert abs(share - fraction) <= fraction * TOLERANCE + 1e-9
    assert 1 - TOLERANCE <= flops[-1] <= 1.0  # within 10% of the budget


def test_a_default_run_starts_with_the_strata_and_reaches_the_budget(tmp_path):
    space = fit_to_budget(resolve_space("full"), int(2e9))
    config = SearchConfig(space=space, evaluator=BiasedLadder(top=2), budget=int(2e9), trials=12, seed=0,
                          storage=f"sqlite:///{tmp_path / 'study.db'}", rungs=3, baselines=False)  # fmt: skip
    plan = RunPlan.check(config)
    assert plan.sampler == "random" and plan.stratified  # auto, under rungs
    study = run_search(plan).study
    evaluated = [t for t in study.trials if t.user_attrs.get("result", {}).get("evaluated")]
    first = sorted(evaluated, key=lambda t: t.number)[: len(STRATA)]
    assert all(t.user_attrs.get("stratified") for t in first)
    flops = [t.user_attrs["record"]["flops"] for t in evaluated]
    assert max(flops) >= 0.9 * 2e9 and min(flops) <= 0.11 * 2e9  # the span [B/10, 0.9 B]
    assert len(evaluated) == 12


def test_an_explicit_sampler_is_left_alone(tmp_path):
    space = fit_to_budget(resolve_space("full"), int(2e9))
    config = SearchConfig(space=space, evaluator=BiasedLadder(top=2), budget=int(2e9), trials=2, sampler="random",
                          storage=f"sqlite:///{tmp_path / 'study.db'}", rungs=3, baselines=False)  # fmt: skip
    assert not RunPlan.check(config).stratified
