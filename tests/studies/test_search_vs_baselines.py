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
