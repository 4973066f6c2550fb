"""studies/paper_claims.py: a tiny end-to-end run, the wait for another process, the verdicts.

(The pairs are tested in tests/search/test_claims.py, the riformer trainer in tests/search/test_reference_train.py.)"""

from __future__ import annotations

import argparse
import hashlib
import os

from study_scripts import load_study

from vitsearch.evaluators.paired import PairedVerdict
from vitsearch.evaluators.reference import ReferenceEvaluator
from vitsearch.evaluators.result_rows import ResultRows
from vitsearch.search.claims import build_pairs
from vitsearch.search.reference_train import ReferenceTrainer

TINY = ["epochs=1", "train_subset=32", "val_subset=32"]


def load():
    return load_study("paper_claims.py")


study = load()


def test_the_study_trains_pairs_per_seed_copies_twins_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "claims"
    argv = ["--claims", "cca", "riformer", "--seeds", "0", "1", "--budget", "500M", "--data", "synthetic"]
    argv += [*(f"--reference-set={s}" for s in TINY), "--out", str(out), "--poll", "0.01"]
    study.main(argv)
    rows = ResultRows(out / "results.csv").rows()
    labels = sorted((r["label"], int(r["seed"])) for r in rows)
    expected = ["cca/A", "cca/B", "riformer/A", "riformer/B", "riformer/teacher"]
    assert labels == sorted((label, seed) for label in expected for seed in (0, 1))
    assert all(r["score"] and not r["error"] for r in rows)
    assert len(list((out / "teachers").glob("*/model.safetensors"))) == 2  # one teacher per seed
    distilled = next(r for r in rows if r["label"] == "riformer/A")
    assert '"distill"' in distilled["settings"] and '"trainer": "vitsearch.search.train"' in distilled["settings"]
    printed = capsys.readouterr().out
    assert "cca: A 0.4906 GFLOPs" in printed and "| cca (SCHEME, 0.5G) |" in printed
    assert "- riformer teacher at 0.5G:" in printed

    calls = []

    def counted(self, arch, trial=None):
        calls.append(arch.digest())
        return {"score": 0.5}

    monkeypatch.setattr(ReferenceEvaluator, "evaluate", counted)
    monkeypatch.setattr(ReferenceTrainer, "evaluate", counted)
    study.main(argv)  # everything cached: nothing trains again
    assert calls == []
    study.main([*argv[:1], "scheme", *argv[3:]])  # scheme's A is cca's B: copied; only B trains
    pairs = {p.claim: p for p in build_pairs(["scheme"], 5e8, quiet=True)}
    assert calls == [pairs["scheme"].b.digest()] * 2
    rows = {(r["label"], r["seed"]): r for r in ResultRows(out / "results.csv").rows()}
    for seed in ("0", "1"):
        assert rows[("scheme/A", seed)]["score"] == rows[("cca/B", seed)]["score"]


def test_claim_mode_waits_for_an_item_another_live_process_holds(tmp_path, monkeypatch):
    trained = []

    def stub(self, arch, trial=None):
        trained.append(arch.digest())
        return {"score": 0.5}

    monkeypatch.setattr(ReferenceEvaluator, "evaluate", stub)
    out = tmp_path / "claims"
    pair = build_pairs(["scheme"], 5e8, quiet=True)[0]
    key = ReferenceEvaluator("synthetic", device="cpu", seed=0).cache_key(pair.a)
    held = out / ".results.csv.claims" / hashlib.sha1(key.encode()).hexdigest()[:16]
    held.parent.mkdir(parents=True)
    held.write_text(str(os.getpid()))  # a live process holds A: the runner trains B, then waits
    waits = []

    def sleep(seconds):
        waits.append(trained[:])
        held.unlink()  # that process is gone: its claim is free again

    monkeypatch.setattr(study.time, "sleep", sleep)
    study.main(
        ["--claims", "scheme", "--seeds", "0", "--data", "synthetic", "--budget", "500M"]
        + ["--shard", "claim", "--out", str(out)]
    )
    assert waits == [[pair.b.digest()]] and trained == [pair.b.digest(), pair.a.digest()]


def write(path, cells):
    """``cells``: ``(claim, side, seed, score or error text)``."""
    rows = []
    for claim, side, seed, value in cells:
        failed = isinstance(value, str)
        rows.append(
            {
                "key": f"{claim}:{side}:{seed}",
                "arch_id": f"{claim}|{side}|1.3e+09|1200000000|20000000",
                "label": f"{claim}/{side}",
                "seed": seed,
                "score": "" if failed else value,
                "error": value if failed else "",
                "finished": "now",
            }
        )
    ResultRows(path).write(rows)


def verdicts(table: str) -> dict[str, str]:
    out = {}
    for line in table.splitlines()[2:]:
        if line.startswith("| "):
            cells = [c.strip() for c in line.strip("|").split("|")]
            out[cells[0].split()[0]] = cells[-1]
    return out


def test_the_verdict_reads_the_paired_interval(tmp_path):
    a_better = [("scheme", "A", s, 0.90 + 0.01 * s) for s in range(3)] + [("scheme", "B", s, 0.85) for s in range(3)]
    equal = [("cca", side, s, 0.8 + 0.05 * s) for side in "AB" for s in range(3)]
    b_better = [("vix", "A", s, 0.7 + 0.002 * s) for s in range(3)] + [("vix", "B", s, 0.8) for s in range(3)]
    noisy = [("psvit", "A", s, v) for s, v in enumerate([0.9, 0.7, 0.85])] + [("psvit", "B", s, 0.8) for s in range(3)]
    one_seed = [("riformer", "A", 0, 0.9), ("riformer", "B", 0, 0.8), ("riformer", "B", 1, "diverged")]
    write(tmp_path / "results.csv", a_better + equal + b_better + noisy + one_seed)
    table = study.table(argparse.Namespace(out=tmp_path))
    assert verdicts(table) == {
        "scheme": "reproduced",
        "cca": "inconclusive",
        "vix": "not reproduced",
        "psvit": "inconclusive",
        "riformer": "n/a",
    }
    assert "0: +0.050, 1: +0.060, 2: +0.070" in table and "+0.060 [+0.035, +0.085]" in table
    assert "1.200 / 1.200" in table and "- riformer B at 1.3G, seed 1: failed: diverged" in table
    assert study.verdict(PairedVerdict.of([0.01, 0.011])) == "reproduced"
    assert study.verdict(PairedVerdict.of([0.0, 0.0])) == "inconclusive"
