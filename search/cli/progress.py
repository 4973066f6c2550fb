"""The CLI's progress display: a bar over the steps of a training job, a live view over the trials of a search.

Rich views only when stdout is a terminal; otherwise plain lines a log file can keep.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from .console import console

if TYPE_CHECKING:
    import optuna

    from vitsearch.search.driver import TrialOutcome
    from vitsearch.search.plan import SearchConfig

PLAIN_LINES = 20  # without a terminal, a step line about every 5% of the steps


class StepProgress:
    """Steps of a training job (``vitsearch train``, ``vitsearch supernet train``) with the running loss.

    On a terminal a rich bar; otherwise, when ``plain_steps``, a line about every 5% of the steps
    with an ETA. ``start`` / ``advance`` / ``stop`` are what ``train_supernet`` calls; ``step`` and
    ``epoch`` are the hooks of ``search.train.train``.
    """

    def __init__(self, label: str, epochs: int | None = None, plain_steps: bool = True):
        self.label, self.epochs, self.plain_steps = label, epochs, plain_steps
        self.bar: Progress | None = None
        self.task = None
        self.total, self.done0, self.every, self.started = 0, 0, 1, 0.0

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, total: int, done: int = 0) -> None:
        """(Re)start at ``done`` of ``total`` steps."""
        self.total, self.done0, self.started = total, done, time.monotonic()
        self.every = max(1, total // PLAIN_LINES)
        if not console.is_terminal:
            return
        if self.bar is None:
            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]:.4f}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total, completed=done, loss=math.nan)
        else:
            self.bar.reset(self.task, total=total, completed=done)

    def advance(self, step: int, loss: float, description: str | None = None) -> None:
        """``step`` of the total done, with this loss."""
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=loss, description=description or self.label)
        elif self.plain_steps and step % self.every == 0:
            rate = (step - self.done0) / max(1e-9, time.monotonic() - self.started)
            left = (self.total - step) / rate / 60 if rate else math.nan
            console.print(f"step {step}/{self.total}: loss {loss:.4f}, ETA {left:.1f} min", highlight=False)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        """A step of epoch ``epoch`` (0-based) of a job whose epochs restart the bar."""
        if step == 0:
            self.start(steps)
        self.advance(step + 1, loss, f"epoch {epoch + 1}/{self.epochs}")

    def epoch(self, record) -> None:
        """One line per finished epoch, on a terminal too."""
        ema = f", EMA {record.val_acc_ema:.4f}" if record.val_acc_ema is not None else ""
        console.print(
            f"epoch {record.epoch}/{self.epochs}: loss {record.train_loss:.4f}, val acc {record.val_acc:.4f}{ema}, "
            f"lr {record.lr:.2e}, {record.seconds:.1f}s",
            highlight=False,
        )


class SearchProgress:
    """Trial k/N, best within budget, ETA; a rich live view on a terminal, plain lines otherwise."""

    def __init__(self, config: SearchConfig, already: int, study: optuna.Study):
        from vitsearch.search.driver import evaluated_count  # here: `vitsearch --help` must not load torch

        self.config, self.console, self.study = config, console, study
        self.evaluated = evaluated_count
        self.already, self.started = already, time.monotonic()
        self.best: TrialOutcome | None = None
        self.counts: dict[str, int] = {}
        self.live: Live | None = Live(console=console, refresh_per_second=4) if console.is_terminal else None

    def __enter__(self) -> SearchProgress:
        if self.live is not None:
            self.live.__enter__()
            self.live.update(self._view())
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def __call__(self, outcome: TrialOutcome, study: optuna.Study) -> None:
        self.counts[outcome.state] = self.counts.get(outcome.state, 0) + 1
        if outcome.state == "COMPLETE" and (self.best is None or outcome.score > self.best.score):
            self.best = outcome
        if self.live is not None:
            self.live.update(self._view(self.evaluated(study)))
        elif outcome.state not in ("REJECTED",):
            score = f"score {outcome.score:.4f}" if outcome.score is not None else outcome.reason or outcome.state
            done = self.evaluated(study)
            self.console.print(
                f"trial {outcome.number} [{done}/{self.config.trials}] {outcome.state.lower()}: {score}, "
                f"{outcome.flops / 1e9:.3f} GFLOPs, {outcome.seconds:.1f}s{self._eta(done)}",
                highlight=False,
            )

    def job(self, job, score) -> None:
        """A rung job (a promoted architecture or a baseline, ``search.rungs``) was scored."""
        what = f"score {score.score:.4f}" if score.complete else score.reason
        who = f"baseline {job.name}" if job.name else f"promoted {job.digest}"
        line = f"{who} ({score.fidelity.label()}): {what}, {score.seconds:.1f}s"
        self.console.print(line, highlight=False)  # with a live view, rich prints it above the view

    def idle(self) -> None:
        """Refresh while other workers finish their trials."""
        if self.live is not None:
            self.live.update(self._view(self.evaluated(self.study)))

    def _eta(self, done: int) -> str:
        new = done - self.already
        if new <= 0:
            return ""
        left = (time.monotonic() - self.started) / new * (self.config.trials - done)
        return f", ETA {left / 60:.1f} min"

    def _view(self, done: int | None = None) -> Group:
        done = self.already if done is None else done
        head = Text(
            f"{self.config.study_name}: {done}/{self.config.trials} evaluated{self._eta(done)}  "
            + "  ".join(f"{k.lower()} {v}" for k, v in sorted(self.counts.items()))
        )
        if self.best is None:
            return Group(head, Text("no architecture within budget evaluated yet"))
        best = Text(
            f"best within budget: score {self.best.score:.4f} at {self.best.flops / 1e9:.3f} GFLOPs "
            f"(trial {self.best.number})"
        )
        return Group(head, best)
