"""studies/fidelity: the runner's cache and resume logic and the table, on tiny fake CSVs (no training)."""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from vitsearch.evaluators.base import BaseEvaluator, EvaluationFailed, register_evaluator
from vitsearch.evaluators.result_rows import ResultRows
from vitsearch.space import get_preset
from vitsearch.space.presets import vit

STUDY = Path(__file__).resolve().parents[2] / "studies" / "fidelity"


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"fidelity_{name}", STUDY / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner, table = load("run_reference"), load("table")


def read_rows(path: Path) -> list[dict[str, str]]:
    return ResultRows(path).rows()


@register_evaluator("fake_fidelity")
class FakeEvaluator(BaseEvaluator):
    """Scores an arch by its depth; ``fail`` digests raise EvaluationFailed, ``crash`` digests a bug."""

    calls: list[str] = []
    fail: set[str] = set()
    crash: set[str] = set()

    def __init__(self, seed: int = 0, device: str = "cpu", offset: float = 0.0):
        self.seed, self.offset = seed, offset

    def settings(self):
        return {"seed": self.seed, "offset": self.offset}

    def evaluate(self, arch, trial=None):
        digest = arch.digest()
        FakeEvaluator.calls.append(digest)
        if digest in self.crash:
            raise RuntimeError("a bug")
        if digest in self.fail:
            raise EvaluationFailed("diverged")
        depth = sum(len(s.blocks) for s in arch.stages)
        return {"score": depth + self.offset, "val_acc_epoch_1": 0.5, "val_acc_epoch_2": depth / 10}


@pytest.fixture
def archs(tmp_path):
    FakeEvaluator.calls, FakeEvaluator.fail, FakeEvaluator.crash = [], set(), set()
    configs = [vit(64, depth, 2) for depth in (1, 2, 3, 4)] + [get_preset("test_metaformer")]
    path = tmp_path / "archs.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["arch_id", "digest", "flops", "params", "source", "arch"])
        writer.writeheader()
        for i, arch in enumerate(configs):
            writer.writerow(
                {
                    "arch_id": f"a{i}",
                    "digest": arch.digest(),
                    "flops": 100 * (i + 1),
                    "params": 10 * (i + 1),
                    "source": "sampled",
                    "arch": json.dumps(arch.to_dict()),
                }
            )
    return path, configs


def run(archs_path: Path, out: Path, *extra: str) -> None:
    runner.main(["--evaluator", "fake_fidelity", "--archs", str(archs_path), "--out", str(out), *extra])


def test_interleave_is_a_spreading_permutation():
    order = runner.interleave(41)
    assert sorted(order) == list(range(41))
    assert order[:4] == [0, 20, 10, 30]


def test_resumes_without_redoing_and_keys_by_settings(archs, tmp_path):
    path, configs = archs
    out = tmp_path / "cheap.csv"
    run(path, out, "--limit", "2")
    assert len(read_rows(out)) == 2 and len(FakeEvaluator.calls) == 2
    run(path, out)  # resumes: only the other three
    rows = read_rows(out)
    assert len(rows) == 5 and len(FakeEvaluator.calls) == 5 and len({r["key"] for r in rows}) == 5
    run(path, out)
    assert len(FakeEvaluator.calls) == 5  # everything cached
    run(path, out, "--set", "offset=1")  # other settings: other keys, evaluated again
    rows = read_rows(out)
    assert len(rows) == 10 and {r["label"] for r in rows} == {"fake_fidelity", "fake_fidelity-offset1"}
    first = next(r for r in rows if r["arch_id"] == "a1" and r["label"] == "fake_fidelity")
    assert float(first["score"]) == 2 and first["curve"] == "0.5000 0.2000" and first["error"] == ""
    assert json.loads(first["settings"]) == {"offset": 0.0, "seed": 0} and first["threads"] == "1"


def test_failures_are_cached_and_crashes_retried(archs, tmp_path):
    path, configs = archs
    FakeEvaluator.fail = {configs[0].digest()}
    FakeEvaluator.crash = {configs[1].digest()}
    out = tmp_path / "cheap.csv"
    run(path, out)
    rows = {r["arch_id"]: r for r in read_rows(out)}
    assert rows["a0"]["error"] == "diverged" and rows["a0"]["score"] == ""
    assert "a1" not in rows and len(rows) == 4
    FakeEvaluator.crash = set()
    run(path, out)
    assert FakeEvaluator.calls.count(configs[0].digest()) == 1  # the deterministic failure is not retried
    assert FakeEvaluator.calls.count(configs[1].digest()) == 2 and len(read_rows(out)) == 5


def test_shards_split_the_plan_and_share_one_csv(archs, tmp_path):
    path, configs = archs
    out = tmp_path / "cheap.csv"
    run(path, out, "--shard", "1/2")
    assert len(read_rows(out)) == 2  # items 2 and 4 of 5
    run(path, out, "--shard", "0/2")
    rows = read_rows(out)
    assert len(rows) == 5 and len(FakeEvaluator.calls) == 5  # merged, nothing done twice
    assert all(float(r["cpu_seconds"]) >= 0 for r in rows)
    with pytest.raises(SystemExit):
        run(path, out, "--shard", "2/2")


def test_claim_mode_skips_what_a_live_process_holds_and_takes_over_from_a_dead_one(archs, tmp_path):
    import os
    import subprocess

    path, configs = archs
    out = tmp_path / "cheap.csv"
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid now names no process (reuse within the test is vanishingly unlikely)
    with ResultRows(out).claim("held") as mine:  # this (live) process holds "held"
        assert mine
        with ResultRows(out).claim("held") as again:
            assert not again
    folder = out.with_name(f".{out.name}.claims")
    assert list(folder.iterdir()) == []  # released
    # a live holder (this pid) on one arch, a dead one on another: the first is skipped, the second taken
    keys = {}
    for i in (0, 1):
        ev = FakeEvaluator()
        keys[i] = ev.cache_key(configs[i])
    held = folder / hashlib.sha1(keys[0].encode()).hexdigest()[:16]
    held.write_text(str(os.getpid()))
    (folder / hashlib.sha1(keys[1].encode()).hexdigest()[:16]).write_text(str(dead.pid))
    run(path, out, "--shard", "claim")
    assert {r["arch_id"] for r in read_rows(out)} == {"a1", "a2", "a3", "a4"}
    held.unlink()
    run(path, out, "--shard", "claim")
    assert len(read_rows(out)) == 5 and len(FakeEvaluator.calls) == 5


def test_reference_plan_adds_the_second_seed_on_the_first_archs():
    args = argparse.Namespace(plan=None, set=["epochs=2"], label=None, evaluator="reference", ceiling=12, first=30)
    assert runner.plan(args) == [
        ("reference-epochs2", "reference", {"seed": 0, "epochs": 2}, slice(None, 30)),
        ("reference-epochs2", "reference", {"epochs": 2, "seed": 1}, slice(None, 12)),
        ("reference-epochs2", "reference", {"seed": 0, "epochs": 2}, slice(30, None)),
    ]
    cheap = runner.plan(argparse.Namespace(plan="cheap"))
    assert sum(1 for _, name, _, _ in cheap if name == "proxy") >= 6
    assert {name for _, name, _, _ in cheap} >= set(runner.ZERO_COST)


def test_the_default_label_is_the_profile_proxyprofile_ships():
    from vitsearch.evaluators.base import get_evaluator

    name, settings = runner.CHEAP[runner.DEFAULT_LABEL]
    studied = get_evaluator(name, **{**settings, "seed": 0}).settings()
    shipped = get_evaluator("proxy").settings()
    # the study runs uncapped; the shipped cap only binds on slow machines
    studied.pop("max_seconds"), shipped.pop("max_seconds")
    assert studied == shipped


def test_pinned_profiles_do_not_follow_the_shipped_default():
    assert runner.CHEAP["proxy-500x4"][1]["batch_size"] == 32
    assert runner.CHEAP["proxy-500x4"][1]["epochs"] == 4
    assert runner.CHEAP["proxy-500x4"][1]["width_mult"] == 0.25


def test_bad_set_is_one_line_naming_the_field(archs, tmp_path):
    with pytest.raises(SystemExit, match="--set: expected KEY=VALUE"):
        run(archs[0], tmp_path / "x.csv", "--set", "epochs")


def test_table_on_partial_data(archs, tmp_path, capsys):
    path, _ = archs
    ref, cheap = tmp_path / "reference.csv", tmp_path / "cheap.csv"
    run(path, ref, "--label", "reference")  # the fake stands in for the reference: depth is the truth
    run(path, ref, "--label", "reference", "--set", "seed=1", "--only", "a0,a1,a2,a3")
    run(path, cheap, "--label", "good", "--set", "offset=5")
    out = tmp_path / "table.md"
    capsys.readouterr()
    table.main(
        ["--archs", str(path), "--reference", str(ref), "--cheap", str(cheap), "--n-boot", "50", "--out", str(out)]
    )
    text = capsys.readouterr().out
    assert out.read_text().strip() == text.strip()
    lines = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "1.000 [" in lines["good"] and lines["good"].split(" | ")[3] == "5"
    assert "| 4 |" in lines["*noise ceiling* (seed 0 vs 1)"]
    assert {"params", "flops"} <= lines.keys()
    assert "| 2 | 0.2400 |" in text  # mean epoch-2 accuracy of depths 1, 2, 3, 4 and 2 (test_metaformer)

    table.main(["--archs", str(path), "--reference", str(ref), "--cheap", str(cheap), "--last", "2", "--n-boot", "50"])
    assert "mean of the last 2 epochs" in capsys.readouterr().out
    assert table.scores(read_rows(ref), "reference", 0, last=2)["a3"] == pytest.approx(0.45)  # (0.5 + 0.4) / 2

    table.main(["--archs", str(path), "--reference", str(tmp_path / "none.csv"), "--cheap", str(cheap)])
    assert "No reference curves yet." in capsys.readouterr().out


def test_choose_default_applies_the_rule_and_compares_with_params_and_flops(archs, tmp_path):
    path, _ = archs
    ref, cheap = tmp_path / "reference.csv", tmp_path / "cheap.csv"
    run(path, ref, "--label", "reference")
    run(path, cheap, "--label", "good", "--set", "offset=5")
    rows = (table.read_csv(path), read_rows(ref), read_rows(cheap))
    assert "No estimate has n >= 30" in table.choose_default(*rows, n_boot=20)
    text = table.choose_default(*rows, n_boot=20, min_n=3, share=10.0)
    assert "**good**, tau 1.000" in text and "Against `params`" in text and "Against `flops`" in text
    up, down = {"a": 1, "b": 2, "c": 3}, {"a": 3, "b": 2, "c": 1}
    diff, ci, n = table.paired_difference(up, down, up, 20)
    assert diff == pytest.approx(2.0) and n == 3 and ci[0] <= ci[1]


def test_flops_bands_show_a_proxy_that_under_rates_large_models():
    def rows(label, values):
        return [
            {"arch_id": f"a{i}", "label": label, "seed": "0", "error": "", "score": str(v), "curve": ""}
            for i, v in enumerate(values)
        ]

    archs = [{"arch_id": f"a{i}", "flops": str((i + 1) * 1e8)} for i in range(9)]
    truth = [0.1 * (i + 1) for i in range(9)]  # accuracy rises with size
    proxy = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.3, 0.2, 0.1]  # agrees on small models, reversed on the large
    text = table.flops_bands(archs, rows("reference", truth), rows("cheap", proxy), default="cheap")
    lines = [line for line in text.splitlines() if line.startswith("| 0.")]
    assert lines == [
        "| 0.10-0.30 | 3 | 0.200 | 0.200 | 1.00 |",
        "| 0.40-0.60 | 3 | 0.500 | 0.500 | 1.00 |",
        "| 0.70-0.90 | 3 | 0.800 | 0.200 | -1.00 |",
    ]
    assert "Too few" in table.flops_bands(archs[:8], rows("reference", truth), rows("cheap", proxy), default="cheap")
