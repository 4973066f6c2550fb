"""The CLI's one progress display, as a log file sees it (no terminal): plain lines, never a bar."""

from __future__ import annotations

from types import SimpleNamespace

from vitsearch.search.cli.progress import StepProgress


def test_supernet_steps_print_a_line_about_every_five_percent(capsys):
    with StepProgress("supernet") as progress:
        progress.start(total=100, done=0)
        for step in range(1, 101):
            progress.advance(step, loss=1.0 / step)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 20 and lines[0].startswith("step 5/100: loss 0.2000, ETA")


def test_training_prints_one_line_per_epoch_and_no_step_lines(capsys):
    record = SimpleNamespace(epoch=1, train_loss=0.5, val_acc=0.25, val_acc_ema=None, lr=1e-3, seconds=2.0)
    with StepProgress("train", epochs=2, plain_steps=False) as progress:
        for step in range(8):
            progress.step(0, step, 8, loss=0.5)
        progress.epoch(record)
    assert capsys.readouterr().out.splitlines() == ["epoch 1/2: loss 0.5000, val acc 0.2500, lr 1.00e-03, 2.0s"]
