"""Proxy training: learns, is deterministic, reports per epoch, gets pruned, fails cleanly on NaN."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from vitsearch.evaluators.base import DivergedError, EvaluationFailed, get_evaluator
from vitsearch.evaluators.profile import ProxyProfile
from vitsearch.evaluators.proxy import ProxyEvaluator
from vitsearch.evaluators.pruners import COST_ATTR, DEFAULT_PRUNER, DominancePruner, make_pruner
from vitsearch.space import get_preset

# 32 px synthetic data (4 classes); target_img_size = img_size keeps the presets' stems as declared.
TINY = ProxyProfile(
    img_size=32,
    target_img_size=32,
    width_mult=1.0,
    epochs=3,
    train_subset=128,
    batch_size=32,
    lr=3e-3,
    max_seconds=None,
)


def tiny(**changes) -> ProxyEvaluator:
    return ProxyEvaluator("synthetic", TINY.replace(**changes))


@pytest.mark.parametrize("preset", ["test_vit", "test_metaformer"])
def test_learns_and_is_deterministic(preset):
    ev = tiny()
    first = ev.evaluate(get_preset(preset))
    assert first["score"] > 0.5  # 4 classes: chance is 0.25
    assert first["epochs_done"] == 3 and first["capped"] == 0
    again = tiny().evaluate(get_preset(preset))  # a fresh evaluator, same seed
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"}


def test_seed_changes_the_run():
    a = tiny(epochs=1).evaluate(get_preset("test_metaformer"))
    b = tiny(epochs=1, seed=1).evaluate(get_preset("test_metaformer"))
    assert a["train_loss"] != b["train_loss"]


def test_reports_every_epoch_and_pruning_stops_the_trial():
    ev = tiny(epochs=3)
    # ThresholdPruner(lower=2) prunes any accuracy: the trial must stop after its first report.
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    study.optimize(lambda t: ev.evaluate(get_preset("test_metaformer"), t)["score"], n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert list(trial.intermediate_values) == [0]

    # the same pruner cannot stop a one-epoch trial: after the last epoch the training is already paid for
    last = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=2.0))
    last.optimize(lambda t: tiny(epochs=1).evaluate(get_preset("test_metaformer"), t)["score"], n_trials=1)
    assert last.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert list(last.trials[0].intermediate_values) == [0]

    free = optuna.create_study(direction="maximize", pruner=make_pruner("none"))
    free.optimize(lambda t: ev.evaluate(get_preset("test_metaformer"), t)["score"], n_trials=1)
    assert list(free.trials[0].intermediate_values) == [0, 1, 2]


def test_huge_lr_fails_the_trial_not_the_study():
    ev = tiny(lr=1e6, epochs=2)
    with pytest.raises(DivergedError, match="epoch 1"):
        ev.evaluate(get_preset("test_vit"))
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: ev.evaluate(get_preset("test_vit"), t)["score"], n_trials=2, catch=(EvaluationFailed,))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2


def test_injected_nan_is_reported_with_the_reason():
    ev = tiny(epochs=1)
    (tx, ty, vx, vy), info = ev.tensors()
    tx = tx.clone()
    tx[:] = float("nan")
    ev._tensors = (tx, ty, vx, vy)
    with pytest.raises(DivergedError, match=r"non-finite training loss \(nan\) at epoch 1 step 1") as err:
        ev.evaluate(get_preset("test_metaformer"))
    assert err.value.partial["epochs_done"] == 0


def test_wall_clock_cap_stops_and_records():
    result = tiny(epochs=50, max_seconds=0.01).evaluate(get_preset("test_metaformer"))
    assert result["capped"] == 1 and result["epochs_done"] < 1
    assert 0 <= result["score"] <= 1


def test_settings_record_the_profile_and_data():
    ev = get_evaluator("proxy", data="synthetic", epochs=3)  # not the default (2)
    s = ev.settings()
    assert s["data"] == "synthetic" and s["epochs"] == 3 and "threads" not in s
    assert ev.cache_key(get_preset("test_vit")) != get_evaluator("proxy", data="synthetic").cache_key(
        get_preset("test_vit")
    )


def test_make_pruner_names():
    assert isinstance(make_pruner("median"), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("successive-halving"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner("hyperband", max_resource=5), optuna.pruners.HyperbandPruner)
    with pytest.raises(ValueError, match="unknown pruner 'nope'"):
        make_pruner("nope")


def test_global_rng_is_left_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    tiny(epochs=1, train_subset=32).evaluate(get_preset("test_metaformer"))
    assert torch.equal(torch.rand(1), expected)
    assert not math.isnan(expected.item())


def _shadow_with(curves: list[tuple[float, list[float]]]) -> optuna.Study:
    """A single-objective study holding finished trials with a cost and per-epoch values."""
    study = optuna.create_study(direction="maximize", pruner=make_pruner("pareto"))
    for cost, values in curves:
        trial = study.ask()
        trial.set_user_attr(COST_ATTR, cost)
        for step, value in enumerate(values):
            trial.report(value, step)
        study.tell(trial, values[-1])
    return study


@pytest.mark.parametrize(
    "cost, values, pruned",
    [
        (200.0, [0.9, 0.5], True),  # a cheaper trial was more accurate at epoch 1
        (200.0, [0.1, 0.7], False),  # beats the cheaper trial at epoch 1
        (50.0, [0.1, 0.1], False),  # cheaper than everything: a front point whatever its accuracy
        (200.0, [0.1], False),  # epoch 0 is warm-up
        (200.0, [0.3, 0.6], False),  # a tie (both at chance, say) is no evidence
    ],
)
def test_pareto_pruner_stops_only_trials_a_cheaper_trial_beats(cost, values, pruned):
    study = _shadow_with([(100.0, [0.3, 0.6, 0.8])])
    trial = study.ask()
    trial.set_user_attr(COST_ATTR, cost)
    for step, value in enumerate(values):
        trial.report(value, step)
    assert trial.should_prune() is pruned


def test_pareto_pruner_is_the_default_pruner_and_a_run_prunes_nothing_by_default():
    from vitsearch.search import cli

    assert isinstance(make_pruner(), DominancePruner)
    assert DEFAULT_PRUNER == "pareto" and cli.DEFAULT_PRUNER == "none"  # a run's rungs replace pruning
