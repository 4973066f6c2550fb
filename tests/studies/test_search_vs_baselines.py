"""studies/search_vs_baselines.py at toy scale: searches, picks, reference trainings per seed, resumable, a table."""

from __future__ import annotations

import csv

from study_scripts import load_study

TINY = """name: tiny
stem: {patch_size: 16}
head: [cls, mean]
stages:
  - width: [64, 128]
    depth: [1, 2]
    layer: {mixer: [attention, pool], head_dim: [32, 64], mlp_ratio: [2, 4]}
"""
FAST = ["epochs=1", "train_subset=64", "img_size=32"]


def load():
    return load_study("search_vs_baselines.py")


def test_searches_train_the_picks_and_baselines_per_seed_and_resume(tmp_path, capsys):
    study = load()
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY)
    out = tmp_path / "svb"
    argv = ["--spaces", str(space), "--budgets", "300M", "--trials", "3", "--seeds", "0", "1", "--out", str(out)]
    argv += ["--data", "synthetic", *(f"--proxy-set={s}" for s in FAST)]
    argv += [*(f"--reference-set={s}" for s in FAST), "--reference-set=val_subset=64"]
    study.main(argv)
    with (out / "picks.csv").open() as f:
        picks = list(csv.DictReader(f))
    assert {p["method"] for p in picks} == {"search", "random"}
    rows = study.cache.read_rows(out / "results.csv")
    names = {r["label"] for r in rows}
    assert {f"search ({space})", f"random ({space})"} <= names and len(names) >= 3  # picks and baselines
    assert sorted({int(r["seed"]) for r in rows}) == [0, 1] and len(rows) == 2 * len(names)
    table = capsys.readouterr().out
    assert "| 0.3G | poolformer |" in table and "+-" in table
    study.main(argv)  # everything cached: nothing is searched or trained again
    assert len(study.cache.read_rows(out / "results.csv")) == len(rows)


def test_comparison_pairs_picks_with_the_best_baseline_by_seed():
    study = load()
    by_seed = {
        (5e8, "poolformer", "466"): {0: 0.95, 1: 0.96, 2: 0.94},
        (5e8, "deit", "460"): {0: 0.70, 1: 0.72, 2: 0.71},
        (5e8, "search (full)", "266"): {0: 0.97, 1: 0.98, 2: 0.97},  # +0.023 +- 0.006 over poolformer
        (5e8, "random (full)", "438"): {0: 0.90, 1: 0.99, 2: 0.95},  # +-0.05 around it: no verdict
        (5e8, "search (stage)", "198"): {0: 0.90, 1: 0.91, 2: 0.89},  # below it at every seed
        (1e9, "search (full)", "900"): {0: 0.9},  # no baseline at this budget: no row
    }
    lines = study.comparison(by_seed).splitlines()
    rows = {line.split(" | ")[1]: line for line in lines[2:]}
    assert set(rows) == {"search (full)", "random (full)", "search (stage)"}
    assert all("| poolformer |" in line for line in rows.values())
    assert rows["search (full)"].endswith("| 3 | beats it |")
    assert rows["random (full)"].endswith("| 3 | inconclusive |")
    assert rows["search (stage)"].endswith("| 3 | loses to it |")


def test_an_architecture_picked_twice_is_trained_once_per_seed(tmp_path, monkeypatch):
    from vitsearch.space.presets import vit

    study = load()
    twin, other = vit(64, 1, 2), vit(64, 2, 2)
    rows = [("search (x)", 3e8, "x", twin), ("deit", 3e8, "-", other), ("random (x)", 3e8, "x", twin)]
    rows.append(("random (x)", 6e8, "x", twin))  # the same pick at another budget: a row of its own
    monkeypatch.setattr(study, "contenders", lambda args: rows)
    trained = []
    evaluate = study.cache.evaluate
    monkeypatch.setattr(
        study.cache, "evaluate", lambda ev, arch, *a: trained.append(arch.digest()) or evaluate(ev, arch, *a)
    )
    out = tmp_path / "svb"
    argv = ["--seeds", "0", "1", "--out", str(out), "--data", "synthetic"]
    argv += [*(f"--reference-set={s}" for s in FAST), "--reference-set=val_subset=64"]
    for shard in ("0/2", "1/2"):  # the twins share a turn, so neither process trains the other's copy
        study.main([*argv, "--shard", shard])
    assert sorted(trained) == sorted([twin.digest(), other.digest()] * 2)
    results = study.cache.read_rows(out / "results.csv")
    assert len(results) == 8
    by = {(r["arch_id"].split("|")[0], float(r["arch_id"].split("|")[1]), r["seed"]): r for r in results}
    for seed in "01":
        score = by[("search (x)", 3e8, seed)]["score"]
        assert score != "" and by[("random (x)", 3e8, seed)]["score"] == by[("random (x)", 6e8, seed)]["score"] == score


def test_every_family_has_a_row_even_where_its_scaled_member_is_a_preset(monkeypatch):
    from argparse import Namespace

    from vitsearch.search.baselines import budget_baselines

    study = load()
    monkeypatch.setattr(study, "picks", lambda args: [])
    assert "poolformer@2G" not in budget_baselines(int(2e9))  # the run names it poolformer_s12
    rows = study.contenders(Namespace(budgets=[5e8, 2e9]))
    assert [(name, budget) for name, budget, _, _ in rows] == [
        (family, budget) for budget in (5e8, 2e9) for family in ("deit", "poolformer", "schemeformer")
    ]
