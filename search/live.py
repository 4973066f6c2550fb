"""Running a search from the CLI: progress display and the files of a run directory."""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import optuna
import pandas as pd
import torch
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from vitsearch.evaluators.latency import torch_threads
from vitsearch.evaluators.training.device import worker_gpus
from vitsearch.space import ConfigError
from vitsearch.space.files import atomic_write_text

from .baselines import baselines_frame, score_baselines, verdict
from .driver import SearchConfig, TrialOutcome, evaluated_count, run_search, sampler_for
from .plots import write_plots
from .results import arch_of, best_trial, pareto_frame, trials_frame


def front_objectives(config: SearchConfig) -> tuple[str, ...]:
    """The minimised columns of the front: FLOPs, plus params and latency when they are objectives."""
    return (
        ("flops",)
        + (("params",) if config.params_objective else ())
        + (("latency_ms",) if config.latency_objective else ())
    )


def pareto_table(front: pd.DataFrame, title: str = "Pareto front (within budget)") -> Table:
    table = Table(title=title)
    latency = "latency_ms" in front and front["latency_ms"].notna().any()
    columns = ("trial", "score", "GFLOPs", "params") + (("latency ms",) if latency else ()) + ("architecture",)
    for column in columns:
        table.add_column(column, justify="right" if column != "architecture" else "left")
    for row in front.itertuples():
        cells = [str(row.trial), f"{row.score:.4f}", f"{row.gflops:.3f}", f"{row.params / 1e6:.2f}M"]
        if latency:
            cells.append(f"{row.latency_ms:.2f}" if pd.notna(row.latency_ms) else "-")
        table.add_row(*cells, row.architecture)
    return table


def write_outputs(study: optuna.Study, config: SearchConfig, out: Path, plots: bool = True) -> list[Path]:
    """trials.csv, pareto.csv, baselines.csv, best.yaml and (optionally) the HTML pages, each atomically."""
    trials = trials_frame(study)
    front = pareto_frame(trials, front_objectives(config))
    baselines = baselines_frame(study)
    written = [out / "trials.csv", out / "pareto.csv"]
    atomic_write_text(written[0], trials.to_csv(index=False))
    atomic_write_text(written[1], front.to_csv(index=False))
    if not baselines.empty:
        atomic_write_text(out / "baselines.csv", baselines.to_csv(index=False))
        written.append(out / "baselines.csv")
    if best_trial(study) is not None:
        arch, _ = arch_of(study)
        atomic_write_text(out / "best.yaml", arch.to_yaml())
        written.append(out / "best.yaml")
    if plots:
        written += write_plots(study, trials, config.budget, out, baselines)
    return written


def baselines_table(baselines: pd.DataFrame) -> Table:
    table = Table(title="hand-designed baselines (same evaluator)")
    for column in ("baseline", "score", "GFLOPs", "params", "architecture"):
        table.add_column(column, justify="left" if column in ("baseline", "architecture") else "right")
    for row in baselines.itertuples():
        score = f"{row.score:.4f}" if row.state == "COMPLETE" else f"failed: {row.fail_reason}"
        table.add_row(row.baseline, score, f"{row.gflops:.3f}", f"{row.params / 1e6:.2f}M", row.architecture)
    return table


def verdict_line(study: optuna.Study, baselines: pd.DataFrame | None = None) -> str | None:
    """How the best found architecture compares with the baselines; None when either is missing."""
    baselines = baselines_frame(study) if baselines is None else baselines
    best = best_trial(study)
    if best is None or baselines.empty:
        return None
    return verdict(baselines, best.values[0], best.user_attrs["record"]["flops"]).line()


class _Progress:
    """Trial k/N, best within budget, ETA; a rich live view on a terminal, plain lines otherwise."""

    def __init__(self, config: SearchConfig, console: Console, already: int, study: optuna.Study):
        self.config, self.console, self.study = config, console, study
        self.already, self.started = already, time.monotonic()
        self.best: TrialOutcome | None = None
        self.counts: dict[str, int] = {}
        self.live: Live | None = Live(console=console, refresh_per_second=4) if console.is_terminal else None

    def __enter__(self) -> _Progress:
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
            self.live.update(self._view(evaluated_count(study)))
        elif outcome.state not in ("REJECTED",):
            score = f"score {outcome.score:.4f}" if outcome.score is not None else outcome.reason or outcome.state
            done = evaluated_count(study)
            self.console.print(
                f"trial {outcome.number} [{done}/{self.config.trials}] {outcome.state.lower()}: {score}, "
                f"{outcome.flops / 1e9:.3f} GFLOPs, {outcome.seconds:.1f}s{self._eta(done)}",
                highlight=False,
            )

    def baseline(self, name: str, record: dict) -> None:
        """A hand-designed baseline was scored (before the search's own trials)."""
        score = f"score {record['score']:.4f}" if record["state"] == "COMPLETE" else record["fail_reason"]
        line = f"baseline {name}: {score}, {record['flops'] / 1e9:.3f} GFLOPs, {record['seconds']:.1f}s"
        self.console.print(line, highlight=False)  # with a live view, rich prints it above the view

    def idle(self) -> None:
        """Refresh while other workers finish their trials."""
        if self.live is not None:
            self.live.update(self._view(evaluated_count(self.study)))

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


def run_with_progress(config: SearchConfig, out: Path, console: Console) -> None:
    """Run or resume the study (with ``config.workers`` processes), then write every output file into ``out``."""
    from vitsearch.search.driver import check_budget, open_study

    smallest, smallest_flops = check_budget(config)
    study = open_study(config)
    already = evaluated_count(study)
    console.print(
        f"space {config.space.name!r} ({config.space.size():.3g} architectures, smallest "
        f"{smallest_flops / 1e9:.3f} GFLOPs), budget {config.budget / 1e9:g} GFLOPs at {config.img_size}px, "
        f"evaluator {config.evaluator.name}, sampler {sampler_for(config.sampler, config.trials)}; "
        + (f"resuming at {already}/{config.trials}" if already else f"{config.trials} trials")
        + (f"; {config.workers} workers" if config.workers > 1 else ""),
        highlight=False,
    )
    try:
        with _Progress(config, console, already, study) as progress, WorkerPool(config) as pool:
            with torch_threads(pool.threads_per_worker):
                if config.baselines:  # the other workers search meanwhile
                    score_baselines(config, study, progress.baseline)
                run_search(config, on_trial=progress)
            pool.wait(progress.idle)
    finally:  # an interrupted run still leaves consistent files for what it finished
        study = open_study(config)
        written = write_outputs(study, config, out)
        trials = trials_frame(study)
        front = pareto_frame(trials, front_objectives(config))
        if not front.empty:
            console.print(pareto_table(front))
        failed = failures_frame(trials)
        if not failed.empty:
            console.print(f"{len(failed)} failed trials (reasons: `vitsearch show {out}`)", highlight=False)
        line = verdict_line(study)
        if line is not None:
            console.print(line, highlight=False)
        console.print("wrote " + ", ".join(p.name for p in written) + f" in {out}")


class WorkerPool:
    """``config.workers - 1`` extra processes running the same search loop; this process is the last.

    They share the study through its storage (``search/workers.py`` keeps them to exactly
    ``--trials`` evaluations). Each gets an equal share of the CPU cores for torch and, when the
    evaluator runs on ``cuda`` and several GPUs are visible, a GPU of its own (round robin).
    """

    def __init__(self, config: SearchConfig):
        self.config = config
        self.threads_per_worker = max(1, (os.cpu_count() or 1) // config.workers) if config.workers > 1 else None
        device = torch.device(str(getattr(config.evaluator, "device", "cpu")))
        self.gpus = worker_gpus(device, config.workers)
        self.processes: list = []

    def __enter__(self) -> WorkerPool:
        if self.config.workers > 1:
            if self.config.storage is None:
                raise ConfigError("--workers", "needs a storage that processes share (not in-memory)")
            context = multiprocessing.get_context("spawn")  # no forked torch or SQLite state
            for gpu in self.gpus[1:]:
                args = (self.config, self.threads_per_worker, gpu)
                process = context.Process(target=worker_main, args=args, daemon=True)
                process.start()
                self.processes.append(process)
        return self

    def wait(self, tick: Callable[[], None]) -> None:
        """Wait for the other workers to finish their last trials."""
        while any(p.is_alive() for p in self.processes):
            tick()
            for process in self.processes:
                process.join(timeout=1.0)
        failed = [p.exitcode for p in self.processes if p.exitcode not in (0, None)]
        if failed:
            raise RuntimeError(f"{len(failed)} worker processes exited with codes {failed}; the study is resumable")

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:  # interrupted: their trials are failed and re-queued on SIGTERM
            if process.is_alive():
                process.terminate()
        for process in self.processes:
            process.join(timeout=30)


def worker_main(config: SearchConfig, threads: int | None, gpu: str | None = None) -> None:
    """One extra worker process: the search loop, quiet; SIGTERM fails and re-queues its trial.

    ``gpu`` becomes this process's only visible GPU (set before CUDA starts, so ``cuda`` is it).
    """
    import signal
    import warnings

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", module="optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with torch_threads(threads):
        run_search(config)


def failures_frame(trials: pd.DataFrame) -> pd.DataFrame:
    """The failed trials with their reasons (not the unused samples of parallel workers)."""
    if trials.empty or "fail_reason" not in trials:
        return trials.iloc[0:0]
    return trials[trials["state"] == "FAIL"]


def failures_table(failed: pd.DataFrame, title: str = "failed trials") -> Table:
    table = Table(title=title)
    for column in ("trial", "GFLOPs", "reason"):
        table.add_column(column, justify="right" if column != "reason" else "left")
    for row in failed.itertuples():
        table.add_row(str(row.trial), f"{row.gflops:.3f}", str(row.fail_reason or "no reason recorded"))
    return table
