"""studies/paper_claims.py: the pairs (equal FLOPs, one difference each), a tiny end-to-end run, the verdicts."""

from __future__ import annotations

import argparse
import hashlib
import os

import pytest
from study_scripts import load_study

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.evaluators.reference import ReferenceEvaluator, curve
from vitsearch.space import get_preset
from vitsearch.space.presets import vit

TINY = ["epochs=1", "train_subset=32", "val_subset=32"]


def load():
    return load_study("paper_claims.py")


study = load()


def blocks(arch):
    return [b for *_, b in arch.blocks()]


@pytest.mark.parametrize("budget", [5e8, 1e9, 1.3e9, 2e9])
def test_every_pair_is_at_equal_flops_and_differs_only_as_its_claim_says(budget):
    pairs = {p.claim: p for p in study.build_pairs(list(study.CLAIMS), budget, quiet=True)}
    assert list(pairs) == list(study.CLAIMS)
    for pair in pairs.values():
        fa, fb = analytic_flops(pair.a), analytic_flops(pair.b)
        assert abs(fa / fb - 1) <= study.TOLERANCE and max(fa, fb) <= budget * 1.05, pair.claim

    scheme = pairs["scheme"]
    assert all(b.mlp_groups == 4 and b.mlp_ratio == 8 and not b.cca for b in blocks(scheme.a))
    assert all(b.mlp_groups == 1 and b.mlp_ratio == 2 and not b.cca for b in blocks(scheme.b))
    assert study.with_blocks(scheme.a, mlp_ratio=2.0, mlp_groups=1) == scheme.b
    assert analytic_flops(scheme.a) == analytic_flops(scheme.b)

    cca = pairs["cca"]
    assert all(b.cca for b in blocks(cca.a)) and cca.b == study.with_blocks(cca.a, cca=False) == scheme.a

    vix = pairs["vix"]
    assert (vix.a.stem.type, vix.a.position, vix.b.stem.type, vix.b.position) == ("conv", "rope", "patch", "learned")
    assert vix.a.replace(stem=vix.b.stem, position="learned") == vix.b

    psvit = pairs["psvit"]
    assert any(b.share_attention for b in blocks(psvit.a)) and {s.downsample for s in psvit.a.stages[1:]} == {"mean"}
    assert len(psvit.b.stages) == 1 and not any(b.share_attention for b in blocks(psvit.b))
    assert psvit.a.stages[0].width == psvit.b.stages[0].width
    assert blocks(psvit.a)[0].mixer == blocks(psvit.b)[0].mixer  # same heads

    rif = pairs["riformer"]
    assert rif.a == rif.b and {b.mixer.type for b in blocks(rif.a)} == {"identity"}
    assert {b.mixer.type for b in blocks(rif.teacher)} == {"pool"}
    assert study.with_blocks(rif.teacher, mixer=blocks(rif.a)[0].mixer) == rif.a
    if budget == study.DEFAULT_BUDGET:  # DeiT-Tiny's class: the shipped presets
        assert psvit.a == get_preset("psvit_tiny") and psvit.b == get_preset("deit_tiny") == vix.b


def test_a_pair_beyond_the_tolerance_is_refused(monkeypatch):
    wide = study.Claim("x", "a", "b", lambda budget: study.Pair("wide", vit(192, 12, 3), vit(192, 10, 3)))
    monkeypatch.setitem(study.CLAIMS, "wide", wide)
    with pytest.raises(AssertionError, match="wide at 1.3G: A has 1258411200 FLOPs"):
        study.build_pairs(["wide"], 1.3e9, quiet=True)


def test_the_train_path_matches_the_reference_recipe():
    """One batch per epoch, so the data order cannot matter: the same per-epoch accuracies and losses.

    (A warm-up from another learning rate, or no label smoothing, moves the last loss by 4e-3 or more.)
    """
    ref = ReferenceEvaluator(
        "synthetic", device="cpu", epochs=6, train_subset=128, val_subset=64, batch_size=128, lr=1e-2
    )
    arch = vit(64, 2, 2)
    want = ref.evaluate(arch)
    got = study.TrainPath(ref).evaluate(arch)
    assert curve(got) == pytest.approx(curve(want), abs=1e-6) and len(curve(got)) == 6 and curve(got)[-1] > 0.25
    assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
    assert got["params"] == want["params"] and got["proxy_patch_size"] == want["proxy_patch_size"]
    p, recipe = ref.profile, study.TrainPath(ref).recipe()
    for name in ("epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "min_lr", "label_smoothing"):
        assert getattr(recipe, name) == getattr(p, name), name
    assert (recipe.grad_clip, recipe.train_subset, recipe.val_subset, recipe.seed) == (p.grad_clip, 128, 64, p.seed)
    assert (recipe.mixup, recipe.cutmix, recipe.ema_decay, recipe.augment) == (0.0, 0.0, None, False)
    with pytest.raises(ValueError, match="uncapped"):
        study.TrainPath(ReferenceEvaluator("synthetic", max_seconds=10.0))


def test_the_study_trains_pairs_per_seed_copies_twins_and_resumes(tmp_path, monkeypatch, capsys):
    out = tmp_path / "claims"
    argv = ["--claims", "cca", "riformer", "--seeds", "0", "1", "--budget", "500M", "--data", "synthetic"]
    argv += [*(f"--reference-set={s}" for s in TINY), "--out", str(out), "--poll", "0.01"]
    study.main(argv)
    rows = study.cache.read_rows(out / "results.csv")
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
    monkeypatch.setattr(study.TrainPath, "evaluate", counted)
    study.main(argv)  # everything cached: nothing trains again
    assert calls == []
    study.main([*argv[:1], "scheme", *argv[3:]])  # scheme's A is cca's B: copied; only B trains
    pairs = {p.claim: p for p in study.build_pairs(["scheme"], 5e8, quiet=True)}
    assert calls == [pairs["scheme"].b.digest()] * 2
    rows = {(r["label"], r["seed"]): r for r in study.cache.read_rows(out / "results.csv")}
    for seed in ("0", "1"):
        assert rows[("scheme/A", seed)]["score"] == rows[("cca/B", seed)]["score"]


def test_claim_mode_waits_for_an_item_another_live_process_holds(tmp_path, monkeypatch):
    trained = []

    def stub(self, arch, trial=None):
        trained.append(arch.digest())
        return {"score": 0.5}

    monkeypatch.setattr(ReferenceEvaluator, "evaluate", stub)
    out = tmp_path / "claims"
    pair = study.build_pairs(["scheme"], 5e8, quiet=True)[0]
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
    study.cache.write_rows(path, rows)


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
    assert study.verdict([0.01, 0.011])[0] == "reproduced" and study.verdict([0.0, 0.0])[0] == "inconclusive"
