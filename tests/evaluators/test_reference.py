"""The reference evaluator: registered, the long recipe by default, records a per-epoch curve."""

from __future__ import annotations

import optuna

from vitsearch.evaluators.base import get_evaluator, list_evaluators
from vitsearch.evaluators.proxy import ProxyEvaluator
from vitsearch.evaluators.reference import REFERENCE_PROFILE, ReferenceEvaluator, curve
from vitsearch.space import get_preset

TINY = dict(img_size=32, target_img_size=32, width_mult=1.0, epochs=2, train_subset=64, warmup_epochs=1)


def test_registered_by_name():
    assert "reference" in list_evaluators()
    assert isinstance(get_evaluator("reference", device="cpu"), ReferenceEvaluator)


def test_default_profile_is_the_long_recipe():
    ev = ReferenceEvaluator(device="cpu")
    proxy = ProxyEvaluator(device="cpu")
    p, q = ev.profile, proxy.profile
    assert p.train_subset is None and p.max_seconds is None and p.warmup_epochs > 0
    assert (p.grid_scale, p.grid) == (q.grid_scale, q.grid)  # the proxy's token grid
    assert p.width_mult == 2 * q.width_mult  # the study's base width; the default proxy ranks at half of it
    assert p.epochs * 4500 >= 20 * q.epochs * q.train_subset  # >= 20x the proxy's images seen
    assert ev.settings() != proxy.settings()
    assert ev.cache_key(get_preset("deit_tiny")) != proxy.cache_key(get_preset("deit_tiny"))
    assert ReferenceEvaluator(device="cpu", seed=1).profile == REFERENCE_PROFILE.replace(seed=1)


def test_trains_and_records_the_curve():
    ev = get_evaluator("reference", data="synthetic", device="cpu", **TINY)
    result = ev.evaluate(get_preset("test_vit"))
    accs = curve(result)
    assert len(accs) == 2 and result["epochs_done"] == 2
    assert result["score"] == accs[-1] and result["best_val_acc"] == max(accs)
    assert all(isinstance(v, float) for v in result.values())


def test_forwards_reports_to_a_real_trial():
    ev = ReferenceEvaluator("synthetic", device="cpu", **TINY)
    study = optuna.create_study(direction="maximize")
    study.optimize(lambda t: ev.evaluate(get_preset("test_vit"), t)["score"], n_trials=1)
    assert list(study.trials[0].intermediate_values) == [0, 1]
