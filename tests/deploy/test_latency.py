import math

import optuna
import pytest
from deploy_helpers import TINY_SPACE, WidthEvaluator

from vitsearch.evaluators.latency import LatencySettings, measure_latency
from vitsearch.search.budget import parse_latency_ms
from vitsearch.search.driver import LatencyGate, SearchConfig, run_search
from vitsearch.search.results import pareto_frame, trials_frame
from vitsearch.space import build_model
from vitsearch.space.search_space import SearchSpace


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_latency_medians_are_positive_and_ordered(backend):
    model = build_model("test_vit", img_size=32, num_classes=10)
    result = measure_latency(model, 32, batch=2, threads=1, backend=backend, warmup=2, repeats=7)
    assert 0 < result.min_ms <= result.q1_ms <= result.median_ms <= result.q3_ms
    assert result.median_ms < 1000  # a 0.002 GFLOPs model: anything near a second is a broken timer
    assert (result.backend, result.batch, result.threads, result.repeats) == (backend, 2, 1, 7)
    assert model.training  # the mode is restored


def test_bigger_models_take_longer_and_bad_settings_are_refused():
    small = measure_latency("test_vit", 32, repeats=9, num_classes=10).median_ms
    big = measure_latency("deit_tiny", 64, repeats=5, num_classes=10).median_ms  # ~45x the FLOPs
    assert big > small
    with pytest.raises(ValueError, match="latency backend"):
        measure_latency("test_vit", 32, backend="tensorrt")
    with pytest.raises(ValueError, match="threads"):
        measure_latency("test_vit", 32, threads=0)


def test_parse_latency():
    assert parse_latency_ms("15ms") == 15.0 and parse_latency_ms("15") == 15.0
    assert parse_latency_ms("0.02s") == 20.0 and parse_latency_ms("1500us") == 1.5
    for bad in ("fast", "-3ms", "0"):
        with pytest.raises(ValueError, match="--max-latency"):
            parse_latency_ms(bad)


def _config(**latency) -> SearchConfig:
    latency.setdefault("latency", LatencySettings(repeats=3, warmup=1))
    return SearchConfig(
        space=SearchSpace.from_dict(TINY_SPACE),
        evaluator=WidthEvaluator(),
        budget=10**9,
        trials=3,
        img_size=32,
        num_classes=10,
        **latency,
    )


def test_gate_measures_only_feasible_candidates_once_and_adds_the_constraint(monkeypatch):
    calls = []

    def fake(arch, img_size, in_chans, num_classes, settings):
        calls.append(arch.digest())
        return 20.0

    monkeypatch.setattr("vitsearch.evaluators.latency.arch_latency_ms", fake)
    config = _config(max_latency_ms=15.0)
    gate = LatencyGate(config, optuna.create_study())
    arch = SearchSpace.from_dict(TINY_SPACE).smallest(32, 10)
    over = [-0.5]
    assert gate.apply(arch, over) == 20.0 and over == [-0.5, pytest.approx(5 / 15)]
    assert gate.apply(arch, [-0.1]) == 20.0 and len(calls) == 1  # cached by digest
    assert gate.apply(arch, [0.2]) is None and len(calls) == 1  # over the FLOPs budget: never timed


def test_search_with_a_latency_objective_records_latency_and_puts_it_on_the_front():
    config = _config(max_latency_ms=1e4, latency_objective=True)
    result = run_search(config)
    assert [d.name for d in result.study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    trials = trials_frame(result.study)
    done = trials[trials["state"] == "COMPLETE"]
    assert len(done) >= 3 and (done["latency_ms"] > 0).all()
    for t in result.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert math.isclose(t.values[2], t.user_attrs["record"]["latency_ms"])
    front = pareto_frame(trials, ("flops", "latency_ms"))
    assert not front.empty and front["latency_ms"].notna().all()

    tight = _config(max_latency_ms=1e-6)
    gate = LatencyGate(tight, result.study)  # the study's measurements are reused: same settings
    assert len(gate.cache) >= 3
    over = [-1.0]
    gate.apply(SearchSpace.from_dict(TINY_SPACE).smallest(32, 10), over)
    assert over[-1] > 0


def test_search_with_the_latency_table_sums_parts_and_keeps_the_table(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    table_settings = LatencySettings(repeats=3, warmup=1, method="table")
    result = run_search(_config(max_latency_ms=1e4, latency_objective=True, latency=table_settings))
    done = trials_frame(result.study)
    done = done[done["state"] == "COMPLETE"]
    assert len(done) >= 3 and (done["latency_ms"] > 0).all()
    tables = list((tmp_path / "vitsearch").glob("latency-table-*.json"))
    assert len(tables) == 1
    table_settings = LatencySettings(repeats=3, warmup=1, method="table")
    gate = LatencyGate(_config(max_latency_ms=1.0, latency=table_settings), optuna.create_study())
    assert gate.table is not None and gate.table.entries and gate.table.measured == 0  # the machine's table, reused
    arch = SearchSpace.from_dict(TINY_SPACE).smallest(32, 10)
    assert gate.measure(arch) == pytest.approx(gate.table.predict_ms(arch))
    assert LatencySettings().to_dict() == {"backend": "torch", "threads": 1, "batch": 1, "warmup": 3, "repeats": 10}
