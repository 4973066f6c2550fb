"""One table and one front per study: the CSV, the plot and `vitsearch show` agree, whatever the objectives."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
from conftest import CountingEvaluator

from vitsearch.search import plan as plan_module
from vitsearch.search.driver import SearchConfig, run_search
from vitsearch.search.outputs import write_outputs
from vitsearch.search.plan import RunPlan
from vitsearch.search.plots import _get_pareto_info, _get_pareto_plot
from vitsearch.search.results import RunResults, objective_columns
from vitsearch.space.registry import Registry

BUDGET = 40_000_000


def test_the_plot_draws_the_front_of_pareto_csv_with_a_params_objective(toy_space, tmp_path):
    config = SearchConfig(
        space=toy_space, evaluator=CountingEvaluator(BUDGET), budget=BUDGET, trials=8, params_objective=True, seed=3
    )
    results = RunResults.of(run_search(config).study)
    assert results.objectives == ("flops", "params")
    write_outputs(results, tmp_path, plots=False)
    csv = pd.read_csv(tmp_path / "pareto.csv")
    info = _get_pareto_info(results)
    assert sorted(info.front["trial"]) == sorted(csv["trial"])
    front = next(trace for trace in _get_pareto_plot(info).data if trace.name.startswith("Pareto front"))
    assert front.mode == "markers" and front.name == "Pareto front (flops, params)"  # no FLOPs staircase


@pytest.mark.parametrize(
    ("params_objective", "latency_objective", "columns"),
    [(False, False, ("flops",)), (True, False, ("flops", "params")), (True, True, ("flops", "params", "latency_ms"))],
)
def test_objective_columns_are_recorded_as_metric_names(toy_space, params_objective, latency_objective, columns):
    config = SearchConfig(
        space=toy_space,
        evaluator=CountingEvaluator(),
        budget=BUDGET,
        params_objective=params_objective,
        latency_objective=latency_objective,
    )
    study = RunPlan.check(config).open().study
    assert study.metric_names == ["score", *columns] and objective_columns(study) == columns


def test_a_study_from_before_the_metric_names_reads_its_columns_off_the_values(toy_space):
    """Three objectives: the third is params when the values hold the recorded params, else latency."""
    for third, value in (("params", 1234), ("latency_ms", 5.0)):
        study = optuna.create_study(directions=["maximize", "minimize", "minimize"])
        trial = optuna.trial.create_trial(
            values=[0.5, 1e6, value], user_attrs={"record": {"params": 1234}}, distributions={}, params={}
        )
        study.add_trial(trial)
        assert objective_columns(study) == ("flops", third)


def test_run_search_given_a_plan_checks_and_opens_nothing_again(toy_space, monkeypatch):
    plan = RunPlan.check(SearchConfig(space=toy_space, evaluator=CountingEvaluator(), budget=BUDGET, trials=3))
    opened = plan.open()
    calls = []
    monkeypatch.setattr(plan_module, "check_budget", lambda config: calls.append("budget"))
    monkeypatch.setattr(RunPlan, "open", lambda self: calls.append("open"))
    monkeypatch.setattr(plan_module, "SAMPLERS", Registry("sampler"))  # building a sampler now would fail
    run_search(plan, opened=opened)
    assert calls == [] and len(opened.study.trials) >= 3


def test_a_plan_refuses_bad_names_and_a_private_storage_for_workers(toy_space):
    from vitsearch.space import ConfigError

    def config(**changes):
        return SearchConfig(space=toy_space, evaluator=CountingEvaluator(), budget=BUDGET, **changes)

    with pytest.raises(ConfigError, match="--sampler"):
        RunPlan.check(config(sampler="annealing"))
    with pytest.raises(ConfigError, match="--pruner"):
        RunPlan.check(config(pruner="never"))
    with pytest.raises(ConfigError, match="--workers"):
        RunPlan.check(config(workers=2))
    assert RunPlan.check(config(trials=500)).sampler == "nsga2"  # auto, resolved once


def test_baselines_compare_only_at_the_rung_asked_for():
    baselines = pd.DataFrame({"baseline": ["deit", "deit", "pool"], "rung": [0, 2, 2], "score": [0.2, 0.7, 0.8]})
    empty = pd.DataFrame()
    results = RunResults(None, BUDGET, ("flops",), empty, empty, baselines, None)
    assert list(results.baselines_at(2)["score"]) == [0.7, 0.8]
    assert list(results.baselines_at(0)["baseline"]) == ["deit"]
    assert len(results.baselines_at(None)) == len(results.baselines_at(float("nan"))) == 3  # a run without rungs
    without = RunResults(None, BUDGET, ("flops",), empty, empty, baselines.drop(columns="rung"), None)
    assert len(without.baselines_at(2)) == 3
