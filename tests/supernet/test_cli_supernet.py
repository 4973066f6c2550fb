"""End to end on synthetic data: `vitsearch supernet train`, `supernet eval`, `run --evaluator supernet`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import yaml
from supernet_helpers import random_archs
from typer.testing import CliRunner

from vitsearch.evaluators.base import EvaluationFailed, get_evaluator
from vitsearch.evaluators.supernet import load_supernet
from vitsearch.search.cli import app
from vitsearch.space import ArchConfig
from vitsearch.space.search_space import SearchSpace

runner = CliRunner()

SPACE = {
    "name": "mini",
    "stem": {"patch_size": [8, 16]},
    "head": ["cls", "mean"],
    "stages": [
        {
            "width": [32, 64],
            "depth": [1, 2],
            "layer": {
                "mixer": ["attention", "pool", "dwconv"],
                "head_dim": [16, 32],
                "mlp_ratio": [2, 4],
                "mlp_groups": [1, 2],
            },
        }
    ],
}
TRAIN = ["--data", "synthetic", "--epochs", 2, "--train-subset", 64, "--val-subset", 64, "--random-paths", 1]
TRAIN += ["--target-img-size", 64, "--width-mult", 0.5, "--lr", 2e-3]
TARGET = ["--img-size", 64, "--num-classes", 4]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A supernet trained by the CLI (shared by the tests of this module)."""
    root = tmp_path_factory.mktemp("supernet")
    space_file = root / "mini.yaml"
    space_file.write_text(yaml.safe_dump(SPACE))
    result = invoke("supernet", "train", "--space", space_file, "--out", root / "ckpt", *TRAIN)
    assert result.exit_code == 0, result.output
    return root, space_file, root / "ckpt"


def test_train_writes_a_checkpoint_and_reports_epochs(trained):
    root, _, ckpt = trained
    for name in ("supernet.safetensors", "optimizer.safetensors", "supernet.json"):
        assert (ckpt / name).is_file(), name
    meta = json.loads((ckpt / "supernet.json").read_text())
    assert meta["finished"] and meta["step"] == 4 and meta["data"] == "synthetic"
    assert [h["epoch"] for h in meta["history"]] == [1.0, 2.0]
    assert 0.0 <= meta["history"][-1]["val_acc_largest"] <= 1.0


def test_eval_scores_an_architecture_file(trained, tmp_path):
    _, space_file, ckpt = trained
    arch = SearchSpace.load(space_file).largest(64)
    arch.save(tmp_path / "arch.yaml")
    result = invoke("supernet", "eval", ckpt, tmp_path / "arch.yaml", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output.strip().splitlines()[-1])
    assert 0.0 <= record["score"] <= 1.0 and record["step"] == 4 and record["params"] > 0
    text = invoke("supernet", "eval", ckpt, tmp_path / "arch.yaml")
    assert text.exit_code == 0 and "val acc" in text.output and "path:" in text.output


def test_run_searches_with_the_supernet_evaluator(trained, tmp_path):
    _, space_file, ckpt = trained
    out = tmp_path / "run"
    result = invoke(
        "run", "--space", space_file, "--budget", "1G", "--trials", 6, "--out", out, "--evaluator", "supernet",
        "--supernet", ckpt, "--sampler", "random", *TARGET,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    trials = pd.read_csv(out / "trials.csv")
    done = trials[trials["state"] == "COMPLETE"]
    assert len(done) == 6 and (done["evaluator"] == "supernet").all()
    assert done["score"].between(0, 1).all()
    assert ArchConfig.load(out / "best.yaml")


def test_run_searches_the_space_the_supernet_was_trained_over(trained, tmp_path):
    # Without --space the run does not fall back on the (budget-fitted) shipped default, whose
    # deeper stages are no paths of this supernet: every draw is a path, so none fails.
    _, _, ckpt = trained
    out = tmp_path / "run"
    result = invoke(
        "run", "--budget", "1G", "--trials", 6, "--out", out, "--evaluator", "supernet", "--supernet", ckpt,
        "--sampler", "random", "--no-baselines", *TARGET,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    trials = pd.read_csv(out / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 6 and not (trials["state"] == "FAIL").any()
    best = ArchConfig.load(out / "best.yaml")  # one stage of width 32 or 64: the mini space's
    assert len(best.stages) == 1 and best.stages[0].width in (32, 64) and best.stages[0].depth <= 2
    other = invoke(
        "run", "--space", "full", "--budget", "1G", "--trials", 1, "--out", tmp_path / "other",
        "--evaluator", "supernet", "--supernet", ckpt, *TARGET,
    )  # fmt: skip
    assert other.exit_code == 2 and "'full' is not the space the supernet" in other.output
    assert "Traceback" not in other.output and not (tmp_path / "other").exists()


def test_validate_proxy_takes_the_supernet_through_set(trained, tmp_path):
    _, space_file, ckpt = trained
    result = invoke(
        "validate-proxy", "--space", space_file, "--budget", "1G", "--evaluator", "supernet",
        "--set", f"supernet={ckpt}", "--reference", "synflow", "--ref-set", "width_mult=0.5", "--n", 3,
        "--out", tmp_path, *TARGET,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Kendall tau" in result.output
    assert len(pd.read_csv(tmp_path / "validate_supernet_vs_synflow.csv")) == 3


def test_user_errors_are_one_line_and_exit_2(trained, tmp_path):
    _, space_file, ckpt = trained
    common = ["run", "--space", space_file, "--budget", "1G", "--trials", 1, "--out", tmp_path / "r", *TARGET]
    missing = invoke(*common, "--evaluator", "supernet")
    assert missing.exit_code == 2 and "--supernet CKPT" in missing.output
    wrong = invoke(*common, "--evaluator", "synflow", "--supernet", ckpt)
    assert wrong.exit_code == 2 and "--supernet" in wrong.output
    nowhere = invoke("supernet", "eval", tmp_path / "nowhere", "deit_tiny")
    assert nowhere.exit_code == 2 and "no supernet checkpoint" in nowhere.output
    outside = invoke("supernet", "eval", ckpt, "deit_tiny")  # not an architecture of the mini space
    assert outside.exit_code == 2 and "not a path of the supernet" in outside.output
    changed = invoke("supernet", "train", "--space", space_file, "--out", ckpt, *TRAIN[:-2], "--lr", 5e-3)
    assert changed.exit_code == 2 and "different lr" in changed.output
    for result in (missing, wrong, nowhere, outside, changed):
        assert "Traceback" not in result.output


def test_evaluator_caches_by_digest_and_keeps_shared_statistics(trained, monkeypatch):
    _, space_file, ckpt = trained
    from vitsearch.evaluators.supernet import evaluator as module

    ev = get_evaluator("supernet", supernet=str(ckpt))
    sp = SearchSpace.load(space_file)
    arch = next(a for a in random_archs(sp, 30) if any(b.mixer.type == "dwconv" for b in a.stages[0].blocks))
    before = {k: v.clone() for k, v in ev.supernet.state_dict().items()}
    calls = []
    real = module.path_accuracy
    monkeypatch.setattr(module, "path_accuracy", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = ev.evaluate(arch)
    assert ev.evaluate(arch) == first and len(calls) == 1  # cached by architecture digest
    for name, tensor in ev.supernet.state_dict().items():  # BatchNorm recalibration works on copies
        assert torch.equal(tensor, before[name]), name
    shared = get_evaluator("supernet", supernet=str(ckpt), bn_batches=0).evaluate(arch)
    assert 0.0 <= shared["score"] <= 1.0
    assert ev.settings()["checkpoint_sha1"] == load_supernet(ckpt).meta["weights_sha1"]
    with pytest.raises(EvaluationFailed, match="not a path"):
        ev.evaluate(ArchConfig.from_dict({"stages": [{"width": 512, "depth": 1, "block": {"mixer": "pool"}}]}))


@pytest.mark.slow
def test_torchrun_trains_with_two_processes_on_cpu(tmp_path):
    """DDP through torchrun on CPU (gloo): the same code path a multi-GPU run takes, with NCCL there."""
    import os
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun, "torchrun ships with torch"
    space_file = tmp_path / "mini.yaml"
    space_file.write_text(yaml.safe_dump(SPACE))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "vitsearch.search.cli", "supernet", "train"]
    cmd += ["--space", str(space_file), "--out", str(tmp_path / "ckpt"), *map(str, TRAIN), "--device", "cpu"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("trained 4 steps") == 1  # rank 0 speaks
    meta = json.loads((tmp_path / "ckpt" / "supernet.json").read_text())
    assert meta["world_size"] == 2 and meta["finished"] and meta["step"] == 4
    assert load_supernet(tmp_path / "ckpt").extract(SearchSpace.from_dict(SPACE).largest(64)) is not None


def _supernet_then_train(tmp_path, profile: list, img_size: int) -> tuple[ArchConfig, dict]:
    """Train a one-epoch supernet at ``profile``, then `vitsearch train --from-supernet` its smallest
    path at ``lr ~ 0``; returns the path's architecture and the trained weights."""
    from safetensors.torch import load_file

    space_file = tmp_path / "mini.yaml"
    space_file.write_text(yaml.safe_dump(SPACE))
    result = invoke(
        "supernet", "train", "--space", space_file, "--out", tmp_path / "ckpt", "--data", "synthetic",
        "--epochs", 1, "--train-subset", 32, "--val-subset", 32, "--random-paths", 0, *profile,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    arch = SearchSpace.load(space_file).smallest(img_size)
    arch.save(tmp_path / "arch.yaml")
    sizes = ["--img-size", img_size] if img_size != 224 else []
    result = invoke(
        "train", tmp_path / "arch.yaml", "--from-supernet", tmp_path / "ckpt", "--data", "synthetic", *sizes,
        "--epochs", 1, "--train-subset", 32, "--val-subset", 32, "--batch-size", 16,
        "--lr", 1e-12, "--ema-decay", 0.0, "--out", tmp_path / "train",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "train" / "report.json").read_text())["arch"] == str(tmp_path / "arch.yaml")
    trained = load_file(tmp_path / "train" / "model.safetensors")
    assert trained
    return arch, trained


def _assert_inherited(trained: dict, inherited: dict) -> None:
    assert set(trained) <= set(inherited)
    for key, value in trained.items():  # learning rate ~0: the weights stay what the supernet gave
        torch.testing.assert_close(value, inherited[key], msg=key)


def test_train_from_supernet_starts_from_the_inherited_weights(tmp_path):
    """`vitsearch train --from-supernet` with a supernet trained at the identity profile (full widths)."""
    identity = ["--width-mult", 1, "--target-img-size", 32, "--input-size", 32]
    arch, trained = _supernet_then_train(tmp_path, identity, 32)
    _assert_inherited(trained, load_supernet(tmp_path / "ckpt").extract(arch).state_dict())


def test_train_from_supernet_at_a_proxy_profile(tmp_path):
    """A supernet at the default proxy profile (x0.25 widths, 224 px target, 32 px input) trains its path."""
    arch, trained = _supernet_then_train(tmp_path, [], 224)
    supernet = load_supernet(tmp_path / "ckpt")
    path = supernet.adapt(arch)
    assert ArchConfig.load(tmp_path / "train" / "arch.yaml") == path
    _assert_inherited(trained, supernet.extract(path, adapted=True).state_dict())
