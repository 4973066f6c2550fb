"""Checkpoints: safetensors round trip, resume equals an uninterrupted run, incomplete and foreign ones refused."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from supernet_helpers import PROFILE, one_mixer_space, random_archs, randomize, supernet

from vitsearch.evaluators.supernet import (
    CheckpointError,
    SupernetTrainConfig,
    SupernetTrainingError,
    load_supernet,
    read_meta,
    save_checkpoint,
    train_supernet,
)
from vitsearch.evaluators.supernet.checkpoint import META, OPTIMIZER, WEIGHTS, load_optimizer
from vitsearch.evaluators.training import make_optimizer

# 2 steps per epoch (64 images, batch 32), 2 epochs; the space has BatchNorm-free attention paths.
TINY = SupernetTrainConfig(
    data="synthetic",
    epochs=2,
    batch_size=32,
    train_subset=64,
    val_subset=64,
    bn_batches=1,
    random_paths=1,
    lr=2e-3,
    target_img_size=64,
    width_mult=0.5,
)
X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_round_trip_keeps_weights_statistics_features_and_outputs(tmp_path):
    sp = one_mixer_space("performer")
    net = supernet(sp)
    randomize(net)
    save_checkpoint(tmp_path, net, {"step": 7, "note": "kept"})
    for where in (tmp_path, tmp_path / META, tmp_path / WEIGHTS):
        loaded = load_supernet(where)
        assert loaded.meta["step"] == 7 and loaded.meta["note"] == "kept"
        assert loaded.profile == PROFILE and loaded.space == sp
        assert not loaded.training
        state = loaded.state_dict()
        for name, tensor in net.state_dict().items():
            assert torch.equal(state[name], tensor), name
    net.eval()
    for arch in random_archs(sp, 3):
        with torch.no_grad():
            assert torch.equal(loaded(X, arch), net(X, arch))
            assert torch.equal(loaded.extract(arch).eval()(X), net(X, arch))


def test_optimizer_state_round_trip(tmp_path):
    sp = one_mixer_space("attention")
    net = supernet(sp)
    opt = make_optimizer(net, TINY.lr, TINY.weight_decay)
    net(X, sp.largest(64)).sum().backward()
    opt.step()
    save_checkpoint(tmp_path, net, {"step": 1}, opt)
    fresh = make_optimizer(net, TINY.lr, TINY.weight_decay)
    load_optimizer(tmp_path, fresh, net)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"] and a["state"].keys() == b["state"].keys()
    for index, values in a["state"].items():
        for key, value in values.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(b["state"][index][key]))


def test_resume_continues_exactly_where_the_run_stopped(tmp_path):
    sp = one_mixer_space("attention")
    straight = train_supernet(sp, TINY, tmp_path / "straight", log=lambda line: None)
    assert straight["finished"] and straight["step"] == 4 and len(straight["history"]) == 2
    stopped = train_supernet(sp, TINY, tmp_path / "resumed", log=lambda line: None, max_steps=1)
    assert stopped["step"] == 1 and not stopped["finished"]
    lines: list[str] = []
    resumed = train_supernet(sp, TINY, tmp_path / "resumed", log=lines.append)
    assert any("resuming" in line and "step 1/4" in line for line in lines)
    assert resumed["step"] == 4 and resumed["history"] == [
        {**h, "seconds": r["seconds"]} for h, r in zip(straight["history"], resumed["history"], strict=True)
    ]
    a, b = load_supernet(tmp_path / "straight").state_dict(), load_supernet(tmp_path / "resumed").state_dict()
    for name, tensor in a.items():
        assert torch.equal(tensor, b[name]), name
    again: list[str] = []
    train_supernet(sp, TINY, tmp_path / "resumed", log=again.append)
    assert any("already trained" in line for line in again)


def test_ctrl_c_stops_after_the_step_and_leaves_a_checkpoint(tmp_path):
    sp = one_mixer_space("attention")

    class InterruptAtStep2:
        def start(self, total, done):
            pass

        def advance(self, step, loss):
            if step == 2:
                os.kill(os.getpid(), signal.SIGINT)

        def stop(self):
            pass

    lines: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        train_supernet(sp, TINY, tmp_path, log=lines.append, progress=InterruptAtStep2())
    assert read_meta(tmp_path)["step"] == 2
    assert any("stopped at step 2/4" in line for line in lines)
    assert signal.getsignal(signal.SIGINT) is not None  # the previous handler is back
    assert train_supernet(sp, TINY, tmp_path, log=lines.append)["step"] == 4


def test_incomplete_foreign_and_incompatible_checkpoints_are_refused(tmp_path):
    sp = one_mixer_space("attention")
    train_supernet(sp, TINY, tmp_path, log=lambda line: None, max_steps=1)
    with pytest.raises(SupernetTrainingError, match="different lr"):
        train_supernet(sp, TINY.__class__(**{**TINY.to_dict(), "lr": 1e-2}), tmp_path, log=lambda line: None)
    meta = json.loads((tmp_path / META).read_text())
    (tmp_path / META).write_text(json.dumps({**meta, "step": 2}))  # weights say step 1: a torn save
    with pytest.raises(CheckpointError, match="holds step 1"):
        load_supernet(tmp_path)
    (tmp_path / META).write_text(json.dumps({**meta, "format": "something else"}))
    with pytest.raises(CheckpointError, match="not a vitsearch-supernet"):
        load_supernet(tmp_path)
    (tmp_path / OPTIMIZER).unlink()
    with pytest.raises(CheckpointError, match="no supernet checkpoint"):
        load_supernet(tmp_path / "nowhere")


def test_distillation_is_a_real_switch(tmp_path):
    sp = one_mixer_space("attention")
    plain = train_supernet(sp, TINY, tmp_path / "plain", log=lambda line: None, max_steps=1)
    taught = TINY.__class__(**{**TINY.to_dict(), "distill": True})
    distilled = train_supernet(sp, taught, tmp_path / "distilled", log=lambda line: None, max_steps=1)
    assert plain["train"]["distill"] is False and distilled["train"]["distill"] is True
    a, b = load_supernet(tmp_path / "plain").state_dict(), load_supernet(tmp_path / "distilled").state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # same init, same batch and paths: only the targets differ


def test_a_budget_keeps_the_sandwich_and_random_paths_within_it():
    import random

    from vitsearch.evaluators.complexity import analytic_flops
    from vitsearch.evaluators.supernet.train import sample_path, sandwich_ends
    from vitsearch.space import ConfigError

    sp = one_mixer_space("attention")
    low, high = analytic_flops(sp.smallest(64), 64), analytic_flops(sp.largest(64), 64)
    budget = (low + high) // 2
    config = TINY.__class__(**{**TINY.to_dict(), "max_flops": budget})
    top, bottom = sandwich_ends(sp, config)
    assert analytic_flops(top, 64) <= budget and bottom == sp.smallest(64)
    rng = random.Random(0)
    flops = [analytic_flops(sample_path(sp, rng, config), 64) for _ in range(30)]
    assert max(flops) <= budget and analytic_flops(top, 64) >= max(flops)
    assert sandwich_ends(sp, TINY)[0] == sp.largest(64)  # no budget: the exact largest
    with pytest.raises(ConfigError, match="--budget"):
        sandwich_ends(sp, TINY.__class__(**{**TINY.to_dict(), "max_flops": low - 1}))


BEFORE_FIT = json.loads((Path(__file__).parent / "records_before_fit.json").read_text())


@pytest.mark.parametrize("name", ["plain", "distill"])
def test_training_records_equal_those_before_the_shared_epoch_loop(tmp_path, name):
    # Recorded with the supernet's own loop before it moved onto evaluators.training.fit (CPU, float32, one thread).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        config = TINY.__class__(**{**TINY.to_dict(), "distill": name == "distill"})
        meta = train_supernet(one_mixer_space("attention"), config, tmp_path, log=lambda line: None)
    finally:
        torch.set_num_threads(threads)
    got = [{k: v for k, v in row.items() if k != "seconds"} for row in meta["history"]]
    want = BEFORE_FIT[name]["history"]
    assert [{k: v for k, v in r.items() if k != "loss"} for r in got] == [
        {k: v for k, v in r.items() if k != "loss"} for r in want
    ]
    assert [r["loss"] for r in got] == pytest.approx([r["loss"] for r in want], rel=1e-6)
