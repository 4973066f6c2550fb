"""The one epoch loop: hooks in order, stops, resuming mid-epoch, and unchanged ``train`` records.

The supernet's records before the loop are pinned in ``tests/supernet/test_checkpoint.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from vitsearch.evaluators.training import Engine, make_optimizer, make_scheduler, resolve_precision
from vitsearch.evaluators.training.fit import FitState, Hook, fit

BEFORE = json.loads((Path(__file__).parent / "training_records_before_fit.json").read_text())
X, Y = torch.randn(24, 5, generator=torch.Generator().manual_seed(0)), torch.arange(24) % 3
STEPS, EPOCHS = 3, 2  # batches of 8


def setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 16), nn.GELU(), nn.Linear(16, 3))
    optimizer = make_optimizer(model, 1e-2, 0.05)
    scheduler = make_scheduler(optimizer, EPOCHS, STEPS, 1, 1e-4, 1e-5)
    engine = Engine(model, optimizer, scheduler, resolve_precision("off", torch.device("cpu")), grad_clip=1.0)
    return model, engine


def batches(epoch: int):
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(epoch))
    for step in range(STEPS):
        idx = order[step * 8 : (step + 1) * 8]
        yield X[idx], Y[idx]


class Log(Hook):
    """Records every call, and stops the run after ``stop_at`` updates."""

    def __init__(self, stop_at: int | None = None):
        self.calls: list[tuple] = []
        self.stop_at = stop_at

    def epoch_start(self, state):
        self.calls.append(("epoch_start", state.epoch, state.within))

    def step_end(self, state, loss):
        self.calls.append(("step_end", state.step))
        if state.step == self.stop_at:
            state.stop = True

    def epoch_end(self, state):
        self.calls.append(("epoch_end", state.step, state.stop))

    def stopped(self, state):
        self.calls.append(("stopped", state.step))


def test_hooks_run_in_order_and_the_epoch_loss_is_the_mean_of_its_updates():
    model, engine = setup()
    losses: list[float] = []

    class Losses(Hook):
        def step_end(self, state, loss):
            losses.append(loss)

        def epoch_end(self, state):
            assert state.epoch_loss == pytest.approx(sum(losses[-STEPS:]) / STEPS)

    log = Log()
    state = fit(engine, model, nn.functional.cross_entropy, batches, FitState(EPOCHS, STEPS), [log, Losses()])
    assert state.step == EPOCHS * STEPS == engine.updates and state.epochs_done == EPOCHS
    assert log.calls == [
        ("epoch_start", 0, 0),
        ("step_end", 1),
        ("step_end", 2),
        ("step_end", 3),
        ("epoch_end", 3, False),
        ("epoch_start", 1, 0),
        ("step_end", 4),
        ("step_end", 5),
        ("step_end", 6),
        ("epoch_end", 6, False),
    ]


def test_a_stop_mid_epoch_skips_the_epoch_end_and_a_stop_on_its_last_step_finishes_it():
    model, engine = setup()
    mid = Log(stop_at=2)
    state = fit(engine, model, nn.functional.cross_entropy, batches, FitState(EPOCHS, STEPS), [mid])
    assert mid.calls == [("epoch_start", 0, 0), ("step_end", 1), ("step_end", 2), ("stopped", 2)]
    assert state.epochs_done == pytest.approx(2 / 3)
    model, engine = setup()
    last = Log(stop_at=3)
    fit(engine, model, nn.functional.cross_entropy, batches, FitState(EPOCHS, STEPS), [last])
    assert last.calls[-2:] == [("epoch_end", 3, True), ("stopped", 3)]


def test_resuming_mid_epoch_takes_the_same_updates_as_an_uninterrupted_run():
    straight, engine = setup()
    fit(engine, straight, nn.functional.cross_entropy, batches, FitState(EPOCHS, STEPS))
    cut, engine = setup()
    state = fit(engine, cut, nn.functional.cross_entropy, batches, FitState(EPOCHS, STEPS), [Log(stop_at=4)])
    assert state.epoch == 1 and state.within == 1
    state.stop = False
    log = Log()
    fit(engine, cut, nn.functional.cross_entropy, batches, state, [log])
    assert log.calls[0] == ("epoch_start", 1, 1) and log.calls[1] == ("step_end", 5)
    for a, b in zip(straight.parameters(), cut.parameters(), strict=True):
        assert torch.equal(a, b)


def test_batch_and_loss_hooks_change_what_is_trained():
    seen = []

    class Double(Hook):
        def batch(self, state, x, target):
            return 2 * x, target

        def loss(self, state, x, output, loss):
            seen.append(float(x.abs().max()))
            return loss * 0 + 7.0

    model, engine = setup()
    state = fit(engine, model, nn.functional.cross_entropy, batches, FitState(1, STEPS), [Double()])
    assert state.epoch_loss == 7.0
    assert seen[0] == pytest.approx(2 * float(next(batches(0))[0].abs().max()))


def test_a_short_epoch_is_an_error_not_an_endless_loop():
    model, engine = setup()

    def two_batches(epoch):
        yield from list(batches(epoch))[:2]

    with pytest.raises(RuntimeError, match=r"batches\(0\) ended after 2 of 3 steps"):
        fit(engine, model, nn.functional.cross_entropy, two_batches, FitState(EPOCHS, STEPS))
    with pytest.raises(RuntimeError, match=r"ended after 0 of 3"):
        fit(engine, model, nn.functional.cross_entropy, lambda epoch: iter(()), FitState(EPOCHS, STEPS))


def history(rows):
    return [[r["train_loss"], r["val_acc"], r["val_acc_ema"]] for r in rows]


def test_train_records_equal_the_pre_fit_values(tmp_path):
    # Recorded with train's own epoch loop before it moved onto fit (CPU, float32, one thread: TrainJob.threads).
    from vitsearch.search.train import TrainJob, TrainRecipe, train
    from vitsearch.space import get_preset

    base = {"epochs": 2, "batch_size": 32, "lr": 1e-3, "warmup_epochs": 1, "ema_decay": 0.99}

    def run(name, recipe, arch="test_vit", **changes):
        job = TrainJob(arch, tmp_path / name, data="synthetic", img_size=32, recipe=recipe, threads=1, **changes)
        return history(train(job)["history"])

    plain = run("plain", TrainRecipe(**base, mixup=0, cutmix=0))
    mixed = run("mix", TrainRecipe(**base))  # mixup and cutmix on
    student = get_preset("test_vit")
    identity = student.stages[0].blocks[0].mixer.__class__(type="identity")
    blocks = tuple(b.__class__(mixer=identity, mlp_ratio=b.mlp_ratio) for b in student.stages[0].blocks)
    student = student.replace(stages=(student.stages[0].__class__(width=64, blocks=blocks),))
    taught = run(  # distillation with module imitation
        "taught",
        TrainRecipe(**base, imitation_weight=1.0),
        arch=student,
        teacher_weights=tmp_path / "plain" / "model.safetensors",
    )
    for got, name in ((plain, "train_plain"), (mixed, "train_mix"), (taught, "train_taught")):
        want = BEFORE[name]["history"]
        assert [row[1:] for row in got] == [row[1:] for row in want], name
        assert [row[0] for row in got] == pytest.approx([row[0] for row in want], rel=1e-6), name
