"""studies/search_vs_baselines.py at toy scale: the default search, random search at its compute, the verdicts."""

from __future__ import annotations

import csv
from argparse import Namespace

import pytest
from study_scripts import load_study

from vitsearch.evaluators.csv_cache import CsvCache
from vitsearch.evaluators.result_rows import ResultRows

FAST = ["epochs=1", "train_subset=48", "val_subset=48", "img_size=32"]


def load():
    return load_study("search_vs_baselines.py")


@pytest.mark.slow
def test_search_random_at_the_same_compute_references_and_verdicts_resume(tmp_path, capsys):
    study = load()
    out = tmp_path / "svb"
    argv = ["--budgets", "300M", "--search-seeds", "0", "--train-seeds", "0", "1", "--trials", "4"]
    argv += ["--out", str(out), "--data", "synthetic", *(f"--proxy-set={s}" for s in FAST)]
    argv += [f"--reference-set={s}" for s in FAST]
    study.main(argv)
    picks = {p["method"]: p for p in CsvCache(out / "picks.csv", study.PICK_COLUMNS).rows()}
    assert set(picks) == {"search", "random"}
    search, randomised = picks["search"], picks["random"]
    assert "rung 2" in search["fidelity"] and int(search["flops"]) <= 3e8
    assert int(randomised["steps"]) >= int(search["steps"]) > 0  # the same compute, in optimizer steps
    draws = CsvCache(out / "random.csv", study.RANDOM_COLUMNS).rows()
    assert len(draws) == int(randomised["evaluations"]) and all(int(d["flops"]) <= 3e8 for d in draws)
    spent_before_last = sum(int(d["steps"]) for d in draws[:-1])
    assert spent_before_last < int(search["steps"])  # it stopped as soon as the steps were reached
    results = ResultRows(out / "results.csv").rows()
    names = {r["label"] for r in results}
    assert {"search s0", "random s0", "poolformer", "schemeformer"} <= names  # DeiT has no member at 0.3G
    assert len(results) == 2 * len(names)  # every row at both training seeds
    with (out / "verdicts.csv").open() as f:
        verdicts = list(csv.DictReader(f))
    assert list(verdicts[0]) == study.VERDICT_COLUMNS
    assert {(v["method"], v["n_pairs"]) for v in verdicts} == {("search", "2"), ("random", "2")}
    assert all(v["verdict"] in ("beats", "inconclusive", "loses") for v in verdicts)
    assert "| 0.3G | search s0 |" in capsys.readouterr().out
    study.main(argv)  # everything cached: nothing is searched, drawn or trained again
    assert len(ResultRows(out / "results.csv").rows()) == len(results)
    assert len(CsvCache(out / "random.csv", study.RANDOM_COLUMNS).rows()) == len(draws)


def test_verdicts_pair_each_pick_with_the_best_baseline_by_training_seed(tmp_path):
    study = load()
    rows = [
        ("poolformer", 0, 0.95), ("poolformer", 1, 0.96),
        ("deit", 0, 0.70), ("deit", 1, 0.72),
        ("search s0", 0, 0.97), ("search s0", 1, 0.98),
        ("search s1", 0, 0.975), ("search s1", 1, 0.981),
        ("random s0", 0, 0.93), ("random s0", 1, 0.945),
        ("random s1", 0, 0.94), ("random s1", 1, 0.95),
    ]  # fmt: skip
    cache = ResultRows(tmp_path / "results.csv")
    for name, seed, score in rows:
        cache.add({"key": f"{name}{seed}", "arch_id": f"{name}|5e+08|x|1", "seed": seed, "score": score,
                   "error": "", "finished": "t"})  # fmt: skip
    args = Namespace(out=tmp_path, budgets=[5e8], search_seeds=[0, 1], train_seeds=[0, 1])
    found = {(v["method"], v["baseline"]): v for v in study.verdicts(args)}
    assert set(found) == {("search", "poolformer"), ("random", "poolformer"), ("search", "random")}
    assert found["search", "poolformer"]["verdict"] == "beats" and found["search", "poolformer"]["n_pairs"] == 4
    assert float(found["search", "poolformer"]["mean_diff"]) == 0.0215
    assert found["random", "poolformer"]["verdict"] == "loses"
    assert found["search", "random"]["verdict"] == "beats"


def test_curves_average_each_rows_accuracy_by_epoch_over_its_seeds(tmp_path):
    study = load()
    cache = ResultRows(tmp_path / "results.csv")
    for name, seed, curve in [
        ("poolformer", 0, "0.1 0.5 0.7 0.8"), ("poolformer", 1, "0.3 0.7 0.9 1.0"),
        ("search s0", 0, "0.6 0.8 0.9 0.95"), ("uniform search s0", 0, "0 0 0 0"), ("search (full)", 0, "0 0 0 0"),
    ]:  # fmt: skip
        cache.add({"key": f"{name}{seed}", "arch_id": f"{name}|5e+08|x|1", "seed": seed, "curve": curve,
                   "error": "", "finished": "t"})  # fmt: skip
    table = study.curves(Namespace(out=tmp_path), epochs=(2, 4))
    assert "| 0.5G | poolformer | 2 | 0.600 | 0.900 |" in table
    assert "| 0.5G | search s0 | 1 | 0.800 | 0.950 |" in table
    assert "uniform" not in table and "(full)" not in table  # older defaults' rows stay out
