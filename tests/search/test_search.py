"""The search driver: budgets, constraints, dedup, resume, outputs."""

from __future__ import annotations

import optuna
import pandas as pd
import pytest
import yaml
from conftest import TOY_SPACE, CountingEvaluator

from vitsearch.evaluators.complexity import analytic_flops, count_flops
from vitsearch.search.budget import parse_flops, parse_params
from vitsearch.search.driver import SearchConfig, make_sampler, run_search
from vitsearch.search.outputs import write_outputs
from vitsearch.search.plots import _get_history_info, _get_pareto_info, hypervolume_2d
from vitsearch.search.results import RunResults, pareto_frame, trials_frame
from vitsearch.space import ArchConfig, ConfigError
from vitsearch.space.search_space import SearchSpace

BUDGET = 40_000_000  # splits the toy space: its FLOPs run from 13M to 117M at 224 px


@pytest.mark.parametrize(
    "text, value",
    [("2GFLOPs", 2e9), ("2G", 2e9), ("1.5e9", 1.5e9), ("750MFLOPs", 7.5e8), ("750M", 7.5e8), ("2 gflops", 2e9)],
)
def test_budget_forms(text, value):
    assert parse_flops(text) == int(value)


@pytest.mark.parametrize("text", ["", "abc", "2GB", "-1G", "0", "2 G G", "1e400"])
def test_bad_budgets_name_the_option(text):
    with pytest.raises(ValueError, match="--budget"):
        parse_flops(text)


def test_params_cap():
    assert parse_params("10M") == 10_000_000
    with pytest.raises(ValueError, match="--max-params"):
        parse_params("10 GFLOPs")


def enumerate_space(space: SearchSpace) -> set[ArchConfig]:
    """Every architecture, by depth-first search over the sequence of choices the sampler makes."""
    found, pending = set(), [()]
    while pending:
        prefix = pending.pop()
        taken: list[int] = []

        def pick(name, choices, prefix=prefix, taken=taken):
            i = prefix[len(taken)] if len(taken) < len(prefix) else 0
            if len(taken) >= len(prefix):
                pending.extend((*taken, j) for j in range(1, len(choices)))
            taken.append(i)
            return choices[i]

        found.add(space._build(pick))
    return found


def test_space_size_is_exact(toy_space):
    assert toy_space.size() == len(enumerate_space(toy_space)) == 200


def test_smallest_and_largest_bound_every_architecture(toy_space):
    flops = [analytic_flops(arch) for arch in enumerate_space(toy_space)]
    assert analytic_flops(toy_space.smallest()) == min(flops)
    assert analytic_flops(toy_space.largest()) == max(flops)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"stages": []}, "stages: a list of at least one stage"),
        ({"position": ["sine"]}, "position: unknown value 'sine'"),
        ({"stages": [{"width": [64], "depth": [1], "layer": {"mixer": ["nope"]}}]}, "stages[0].layer.mixer"),
        ({"stages": [{"width": [96], "depth": [1], "layer": {"head_dim": [64]}}]}, "64 does not divide width 96"),
        ({"stages": [{"width": [64], "depth": [1], "layer": {"mlp_groups": [3]}}]}, "mlp_groups: 3 does not divide"),
        ({"stages": [{"width": [64], "depth": [0]}]}, "stages[0].depth: depths must be at least 1"),
        ({"stages": [{"width": [64], "depth": [1], "layer": {"colour": 1}}]}, "stages[0].layer.colour: unknown"),
        (
            {"stages": [{"width": [64], "depth": [1]}, {"width": [128], "depth": [1]}]},
            "stages[1].width: downsample 'none' cannot change the width",
        ),
    ],
)
def test_space_validation_names_the_field(change, message):
    with pytest.raises(ConfigError) as info:
        SearchSpace.from_dict({**TOY_SPACE, **change})
    assert message in str(info.value)


def search(toy_space, evaluator, trials, storage=None, **kw) -> optuna.Study:
    config = SearchConfig(
        space=toy_space, evaluator=evaluator, budget=BUDGET, trials=trials, storage=storage, study_name="t", **kw
    )
    return run_search(config).study


def test_nothing_over_budget_is_evaluated_and_duplicates_are_skipped(toy_space):
    evaluator = CountingEvaluator(budget=BUDGET)
    study = search(toy_space, evaluator, trials=12, sampler="random")
    frame = trials_frame(study)
    assert (frame["state"] == "OVER_BUDGET").any(), "the toy budget should reject some samples"
    assert len(evaluator.seen) == 12 == len(set(evaluator.seen))
    evaluated = frame[frame["state"] == "COMPLETE"]
    assert (evaluated["flops"] <= BUDGET).all()
    for t in study.trials:
        assert set(t.user_attrs) >= {"arch", "record"}
        assert {"digest", "flops", "params", "evaluator_settings"} <= set(t.user_attrs["record"])


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random"])
def test_samplers_by_name(toy_space, sampler):
    study = search(toy_space, CountingEvaluator(BUDGET), trials=3, sampler=sampler)
    assert sum(t.user_attrs.get("result", {}).get("evaluated", False) for t in study.trials) == 3


def test_resume_continues_without_repeating(toy_space, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    first = CountingEvaluator(BUDGET)
    search(toy_space, first, trials=3, storage=storage)
    second = CountingEvaluator(BUDGET)
    study = search(toy_space, second, trials=5, storage=storage)
    assert len(first.seen) == 3 and len(second.seen) == 2
    assert not set(first.seen) & set(second.seen)
    evaluated = [t for t in study.trials if t.user_attrs.get("result", {}).get("evaluated")]
    assert len(evaluated) == 5


def test_resume_refuses_a_changed_study(toy_space, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search(toy_space, CountingEvaluator(BUDGET), trials=1, storage=storage)
    with pytest.raises(ConfigError, match="different"):
        search(toy_space, CountingEvaluator(BUDGET + 1), trials=2, storage=storage)


def test_resume_refuses_an_edited_space_of_the_same_name(toy_space, tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    search(toy_space, CountingEvaluator(BUDGET), trials=1, storage=storage)
    edited = SearchSpace.from_dict({**TOY_SPACE, "head": "cls"})
    assert edited.name == toy_space.name and edited.digest() != toy_space.digest()
    with pytest.raises(ConfigError, match="different space_choices"):
        search(edited, CountingEvaluator(BUDGET), trials=2, storage=storage)
    # a study recorded before space_choices existed resumes as it did
    study = optuna.load_study(study_name="t", storage=storage)
    study.set_user_attr("search", {k: v for k, v in study.user_attrs["search"].items() if k != "space_choices"})
    assert len(search(toy_space, CountingEvaluator(BUDGET), trials=2, storage=storage).trials) >= 2


def test_budget_below_the_space_names_the_smallest(toy_space):
    with pytest.raises(ConfigError, match="smallest architecture .* needs 0.0130 GFLOPs"):
        run_search(SearchConfig(space=toy_space, evaluator=CountingEvaluator(), budget=1_000_000))


def test_outputs_exist_parse_and_best_rebuilds(toy_space, tmp_path):
    config = SearchConfig(space=toy_space, evaluator=CountingEvaluator(BUDGET), budget=BUDGET, trials=6)
    study = run_search(config).study
    write_outputs(RunResults.of(study), tmp_path)
    for name in ("trials.csv", "pareto.csv", "best.yaml", "pareto.html", "history.html", "importance.html"):
        assert (tmp_path / name).stat().st_size > 0
    front = pd.read_csv(tmp_path / "pareto.csv")
    assert len(front) >= 1 and (front["flops"] <= BUDGET).all()
    best = ArchConfig.from_dict(yaml.safe_load((tmp_path / "best.yaml").read_text()))
    assert count_flops(best) == front.loc[front["score"].idxmax(), "flops"]
    html = (tmp_path / "pareto.html").read_text()
    # plotly.js is embedded: no script is fetched (the bundle mentions a CDN only for geo maps' topojson).
    assert "<script src=" not in html.replace(" ", "") and "Plotly.newPlot" in html


def test_pareto_and_history_info(toy_space):
    config = SearchConfig(space=toy_space, evaluator=CountingEvaluator(BUDGET), budget=BUDGET, trials=6)
    results = RunResults.of(run_search(config).study)
    frame = results.trials
    info = _get_pareto_info(results)
    for _, row in info.front.iterrows():  # nothing on the front is dominated by anything evaluated
        better = info.others[(info.others["score"] > row["score"]) & (info.others["flops"] <= row["flops"])]
        assert better.empty
    history = _get_history_info(frame, BUDGET)
    assert history.hypervolume == sorted(history.hypervolume)  # never decreases


def test_hypervolume_by_hand():
    assert hypervolume_2d([(0.5, 0.5)], 1.0) == pytest.approx(0.25)
    assert hypervolume_2d([(0.5, 0.5), (0.8, 0.9), (0.3, 0.2)], 1.0) == pytest.approx(0.37)
    assert hypervolume_2d([(0.9, 2.0)], 1.0) == 0.0  # over budget adds nothing


class CurveEvaluator(CountingEvaluator):
    """Reports a 3-epoch curve that keeps the final ranking at every epoch, and obeys the pruner."""

    def evaluate(self, arch, trial=None):
        final = super().evaluate(arch)["score"]
        for epoch in range(3):
            trial.report(final * (epoch + 1) / 3, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return {"score": final}


def test_pareto_pruning_saves_trials_and_keeps_the_front(toy_space):
    def front(study):
        return set(map(tuple, pareto_frame(trials_frame(study))[["score", "flops"]].to_numpy().tolist()))

    pruned = search(toy_space, CurveEvaluator(BUDGET), trials=10, sampler="random", pruner="pareto")
    full = search(toy_space, CurveEvaluator(BUDGET), trials=10, sampler="random", pruner="none")
    states = trials_frame(pruned)["state"]
    assert (states == "PRUNED").any(), "some sampled trial should be dominated early"
    assert front(pruned) == front(full)


def test_a_shadow_trial_exists_only_for_an_evaluator_that_reports_under_a_pruner(toy_space, tmp_path):
    from vitsearch.evaluators.pruners import COST_ATTR
    from vitsearch.search import workers

    storage = f"sqlite:///{tmp_path / 's.db'}"
    search(toy_space, CountingEvaluator(budget=BUDGET), trials=4, storage=storage, sampler="random", pruner="median")
    assert optuna.load_study(study_name="t:pruning", storage=storage).trials == []

    storage = f"sqlite:///{tmp_path / 'none.db'}"  # no pruner: reports decide nothing, so none are stored
    search(toy_space, CurveEvaluator(BUDGET), trials=4, storage=storage, sampler="random", pruner="none")
    assert [s.study_name for s in optuna.get_all_study_summaries(storage)] == ["t"]

    storage = f"sqlite:///{tmp_path / 'curve.db'}"
    study = search(toy_space, CurveEvaluator(BUDGET), trials=4, storage=storage, sampler="random", pruner="median")
    shadows = {t._trial_id: t for t in optuna.load_study(study_name="t:pruning", storage=storage).trials}
    evaluated = [t for t in study.trials if t.user_attrs["result"].get("evaluated")]
    assert len(evaluated) == 4 == len(shadows)
    for trial in evaluated:
        shadow = shadows[trial.system_attrs[workers.SHADOW_KEY]]
        assert shadow.number == trial.user_attrs["result"]["shadow_trial"]
        assert shadow.user_attrs[COST_ATTR] == trial.user_attrs["record"]["flops"]
        assert shadow.values == [trial.values[0]] and len(shadow.intermediate_values) == 3


WIDE_SPACE = {
    "name": "wide",
    "stem": {"patch_size": 16},
    "stages": [
        {
            "width": [32, 64, 96, 128, 160, 192, 224, 256],
            "depth": [1, 2, 3, 4],
            "layer": {"mixer": ["attention"], "head_dim": [32], "mlp_ratio": [1, 2, 3, 4]},
        }
    ],
}


def test_samplers_are_built_without_deprecated_arguments():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # Optuna 5 deprecates constraints_func
        for name in ("tpe", "nsga2", "random"):
            make_sampler(name, 0)


def test_constraints_are_set_on_every_sampled_trial(toy_space):
    config = SearchConfig(space=toy_space, evaluator=CountingEvaluator(), budget=int(40e6), trials=4, sampler="random")
    study = run_search(config).study
    for trial in study.get_trials():
        over = trial.user_attrs["record"]["constraint"]
        assert trial.constraints == {"flops": over[0]}
        assert (over[0] > 0) == bool(trial.user_attrs["result"].get("over_budget"))


@pytest.mark.parametrize("seed", [0, 1])
def test_tpe_and_nsga2_learn_to_avoid_the_over_budget_region(seed):
    # Width x depth x MLP ratio, where about 60% of random samples exceed the budget: after the
    # start-up, both model-based samplers draw fewer over-budget candidates than random does.
    space = SearchSpace.from_dict(WIDE_SPACE)
    late_share = {}
    for sampler in ("random", "tpe", "nsga2"):
        config = SearchConfig(
            space=space, evaluator=CountingEvaluator(), budget=int(60e6), trials=40, sampler=sampler, seed=seed
        )
        over = ~trials_frame(run_search(config).study)["within_budget"]
        late_share[sampler] = over[len(over) // 2 :].mean()
    assert late_share["tpe"] < late_share["random"] - 0.1, late_share
    assert late_share["nsga2"] < late_share["random"] - 0.05, late_share


def test_auto_sampler_is_tpe_for_short_searches_and_nsga2_for_long_ones():
    from vitsearch.search.driver import AUTO_NSGA2_FROM_TRIALS, sampler_for

    assert sampler_for("auto", 6) == "tpe"
    assert sampler_for("auto", AUTO_NSGA2_FROM_TRIALS) == "nsga2"
    assert sampler_for("random", 5000) == "random"  # an explicit choice is kept
    assert isinstance(make_sampler("auto", 0, 1000), optuna.samplers.NSGAIISampler)
    assert isinstance(make_sampler("auto", 0, 10), optuna.samplers.TPESampler)
