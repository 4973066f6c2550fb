"""Hand-designed baselines: fitted to the budget, scored once per settings, kept off the searched trials."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
from conftest import CountingEvaluator

from vitsearch.evaluators.base import EvaluationFailed
from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.search.baselines import (
    FAMILIES,
    baselines_frame,
    budget_baselines,
    record_baselines,
    scaled_to_budget,
    verdict,
)
from vitsearch.search.driver import RunPlan, SearchConfig, evaluated_count, run_search
from vitsearch.search.plots import _get_pareto_info, _get_pareto_plot
from vitsearch.search.results import RunResults, pareto_frame
from vitsearch.search.rungs import Rungs, run_rungs
from vitsearch.search.workers import decision_lock


@pytest.mark.parametrize("budget", [0.5e9, 2e9, 4e9])
def test_every_baseline_fits_the_budget_and_the_scaled_ones_fill_it(budget):
    found = budget_baselines(int(budget))
    flops = {name: analytic_flops(arch) for name, arch in found.items()}
    assert all(f <= budget for f in flops.values())
    assert len({arch.digest() for arch in found.values()}) == len(found)  # one entry per architecture
    scaled = [name for name in found if "@" in name]
    assert scaled and all(flops[name] > 0.75 * budget for name in scaled)


def test_presets_that_fit_are_baselines_unscaled():
    names = set(budget_baselines(int(2e9)))
    assert {"deit_tiny", "poolformer_s12", "schemeformer_ppaa_s12", "psvit_tiny"} <= names
    assert "deit_small" not in names  # 4.6 GFLOPs
    assert "poolformer@2G" not in names  # the scaled PoolFormer at 2 GFLOPs is PoolFormer-S12 itself


def test_a_family_that_cannot_fit_gives_nothing():
    assert scaled_to_budget(FAMILIES["deit"], 1_000, 224, 1000) is None


class FlakyEvaluator(CountingEvaluator):
    """Fails on attention-free architectures, as an evaluator that cannot score some designs would."""

    name = "flaky"

    def evaluate(self, arch, trial=None):
        if all(b.mixer.type == "pool" for _, _, _, b in arch.blocks()):
            raise EvaluationFailed("cannot score this one")
        return super().evaluate(arch, trial)


def _config(toy_space, evaluator, budget=int(2e9)) -> SearchConfig:
    return SearchConfig(space=toy_space, evaluator=evaluator, budget=budget, trials=4, sampler="random", seed=0)


def _score_baselines(config: SearchConfig, study: optuna.Study) -> list[str]:
    """What a run does with its baselines: record them, then score them as rung jobs; the digests scored."""
    plan = RunPlan.check(config)
    record_baselines(config, study, plan.baselines)
    seen: list[str] = []
    run_rungs(Rungs(config, plan.baselines), study, decision_lock(None, "b"), lambda job, _: seen.append(job.digest))
    return seen


def test_baselines_are_study_attrs_scored_once_and_never_trials(toy_space):
    evaluator = FlakyEvaluator()  # no higher fidelity: the baselines are scored at rung 0
    config = _config(toy_space, evaluator)
    study = optuna.create_study(directions=config.directions)
    seen = _score_baselines(config, study)
    found = budget_baselines(config.budget)
    assert sorted(seen) == sorted(arch.digest() for arch in found.values())
    assert study.get_trials() == []  # not trials: no --trials slot, nothing for the sampler
    frame = baselines_frame(study).set_index("baseline")
    assert set(frame.index) == set(found)
    assert frame.at["poolformer_s12", "state"] == "FAIL" and frame.at["poolformer_s12", "fail_reason"]
    assert frame.at["deit_tiny", "state"] == "COMPLETE" and frame.at["deit_tiny", "rung"] == 0
    calls = len(evaluator.seen)
    assert _score_baselines(config, study) == []  # a resumed run: nothing to score again
    assert len(evaluator.seen) == calls
    config.evaluator = FlakyEvaluator(budget=int(2e9))  # other settings: scored again
    assert len(_score_baselines(config, study)) == len(found)
    frame = baselines_frame(study)
    assert list(frame["flops"]) == sorted(frame["flops"])


def test_the_search_counts_only_its_own_trials(toy_space, tmp_path):
    config = _config(toy_space, CountingEvaluator(), budget=int(2e9))
    config.storage = f"sqlite:///{tmp_path / 'study.db'}"
    plan = RunPlan.check(config)
    record_baselines(config, plan.open().study, plan.baselines)
    result = run_search(plan)  # the baselines are scored as rung jobs after the search
    assert evaluated_count(result.study) == config.trials
    frame = baselines_frame(result.study)
    assert not frame.empty and (frame["state"] == "COMPLETE").all()


def _baselines(*rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["baseline", "state", "score", "flops", "params", "architecture"])
    frame["gflops"] = frame["flops"] / 1e9
    return frame


def test_verdict_names_the_baselines_beaten_at_equal_or_lower_flops():
    baselines = _baselines(
        ("small", "COMPLETE", 0.5, 1e9, 1, "a"),
        ("big", "COMPLETE", 0.7, 2e9, 1, "b"),
        ("broken", "FAIL", None, 1.5e9, 1, "c"),
    )
    line = verdict(baselines, 0.6, int(1.5e9)).line()
    assert "beats none" in line and "big" in line  # 'small' needs fewer FLOPs: not a fair win
    assert line.endswith("it also scores above the 1 that need fewer FLOPs")  # but it is more accurate
    result = verdict(baselines, 0.8, int(1e9))
    assert list(result.beaten["baseline"]) == ["small", "big"]
    assert result.line().startswith("best found (score 0.8000, 1.000 GFLOPs) beats 2 of 2 baselines")
    assert "fewer FLOPs" not in result.line()
    assert verdict(baselines, 0.8, int(1e9), "proxy").line().startswith("best found (proxy score 0.8000, 1.000")


def test_pareto_page_draws_the_baselines_as_labelled_markers():
    trials = pd.DataFrame(
        {
            "trial": [0],
            "state": ["COMPLETE"],
            "score": [0.5],
            "gflops": [1.0],
            "flops": [1e9],
            "params": [1e6],
            "within_budget": [True],
            "architecture": ["x"],
            "evaluator": ["proxy"],
        }
    )
    baselines = _baselines(("deit_tiny", "COMPLETE", 0.4, 1.26e9, 5.7e6, "w192"), ("gone", "FAIL", None, 1e9, 1, "z"))
    results = RunResults(None, int(2e9), ("flops",), trials, pareto_frame(trials), baselines, None)
    info = _get_pareto_info(results)
    assert list(info.baselines["baseline"]) == ["deit_tiny"]
    traces = {trace.name: trace for trace in _get_pareto_plot(info).data}
    assert list(traces["hand-designed baselines"].text) == ["deit_tiny"]
