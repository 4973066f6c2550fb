"""validate_proxy on three tiny architectures: correlations, files, and the cache."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from vitsearch.evaluators.base import EvaluationFailed, get_evaluator
from vitsearch.evaluators.profile import ProxyProfile
from vitsearch.evaluators.proxy import ProxyEvaluator
from vitsearch.evaluators.validate import bootstrap_ci, kendall_tau, validate_proxy
from vitsearch.space import get_preset
from vitsearch.space.presets import vit

TINY = ProxyProfile(
    img_size=32, target_img_size=32, width_mult=1.0, epochs=2, train_subset=64, batch_size=32, max_seconds=None
)


def archs():
    return [get_preset("test_vit"), get_preset("test_metaformer"), vit(32, 1, 2, patch_size=8, mlp_ratio=2.0)]


def test_three_arch_toy_run_and_cache(tmp_path, monkeypatch):
    evaluator = get_evaluator("grad_norm", data="synthetic", img_size=32, target_img_size=32, batch_size=8)
    reference = ProxyEvaluator("synthetic", TINY)
    first = validate_proxy(archs(), evaluator, reference, tmp_path / "cache", out_dir=tmp_path / "out")
    assert first.n == 3 and len(first.frame) == 3
    assert -1 <= first.kendall_tau <= 1 and -1 <= first.spearman_rho <= 1
    assert first.kendall_ci[0] <= first.kendall_ci[1] or math.isnan(first.kendall_ci[0])
    assert not first.frame["evaluator_cached"].any()

    csv = pd.read_csv(first.csv_path)
    assert list(csv["digest"]) == [a.digest() for a in archs()]
    summary = json.loads(first.json_path.read_text())
    assert summary["reference"]["settings"]["epochs"] == 2 and summary["evaluator"]["name"] == "grad_norm"
    assert set(summary["baselines"]) == {"params", "flops"}  # the trivial baselines ride along
    from vitsearch.space.analytic import analytic_params

    assert list(csv["params"]) == [analytic_params(a) for a in archs()]
    sizes = csv["params"].to_numpy(float)
    assert summary["baselines"]["params"]["kendall_tau"] == pytest.approx(kendall_tau(sizes, csv["reference_score"]))
    html = first.html_path.read_text()
    assert '<script src="http' not in html and len(html) > 1_000_000  # plotly.js embedded, not linked

    def boom(self, arch, trial=None):
        raise AssertionError("evaluated again despite the cache")

    monkeypatch.setattr(type(evaluator), "evaluate", boom)
    monkeypatch.setattr(ProxyEvaluator, "evaluate", boom)
    second = validate_proxy(archs(), evaluator, reference, tmp_path / "cache", out_dir=tmp_path / "out")
    assert second.frame["evaluator_cached"].all() and second.frame["reference_cached"].all()
    assert second.kendall_tau == first.kendall_tau or (math.isnan(second.kendall_tau) and math.isnan(first.kendall_tau))
    assert np.array_equal(second.frame["reference_score"], first.frame["reference_score"])

    # Different settings are a different cache entry: this one must evaluate (and hits boom).
    with pytest.raises(AssertionError, match="despite the cache"):
        validate_proxy(archs(), evaluator, ProxyEvaluator("synthetic", TINY.replace(epochs=3)), tmp_path / "cache")


def test_failures_are_recorded_not_raised(tmp_path):
    class Failing(ProxyEvaluator):
        name = "failing"

        def evaluate(self, arch, trial=None):
            raise EvaluationFailed("diverged on purpose")

    evaluator = get_evaluator("naswot", data="synthetic", img_size=32, target_img_size=32, batch_size=8)
    result = validate_proxy(archs(), evaluator, Failing("synthetic", TINY), tmp_path)
    assert result.n == 0 and math.isnan(result.kendall_tau)
    assert set(result.frame["reference_error"]) == {"diverged on purpose"}


def test_bootstrap_ci_brackets_a_perfect_ranking():
    x = np.arange(10.0)
    assert kendall_tau(x, x) == pytest.approx(1.0)
    lo, hi = bootstrap_ci(x, x, kendall_tau, n_boot=200)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)
    lo, hi = bootstrap_ci(x, -x + np.sin(x), kendall_tau, n_boot=200)
    assert -1 <= lo <= hi <= 0
