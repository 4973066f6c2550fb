"""Running a checked plan: the baselines, then the search in ``config.workers`` processes sharing one study.

A notebook can call ``run_plan`` as the CLI does; ``vitsearch run`` adds the live view and writes
the outputs (``search/cli/run.py``).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import sys
from collections.abc import Callable

import optuna
import torch

from vitsearch.evaluators.latency import torch_threads
from vitsearch.evaluators.training.device import worker_gpus
from vitsearch.space import ConfigError

from . import workers as shared_study
from .baselines import record_baselines
from .driver import run_search
from .plan import OpenStudy, RunPlan
from .rungs import Job, RungScore
from .trial import TrialOutcome


def run_plan(
    plan: RunPlan,
    opened: OpenStudy,
    on_trial: Callable[[TrialOutcome, optuna.Study], None] | None = None,
    on_job: Callable[[Job, RungScore], None] | None = None,
    on_idle: Callable[[], None] | None = None,
) -> None:
    """Record the baselines, search and climb the rungs in every worker, then wait for the other workers.

    Args:
        plan: the checked run; each worker process receives it too.
        opened: this process's study, opened from ``plan`` once.
        on_trial, on_job: called after each trial or rung job (promotion, baseline) of this process.
        on_idle: called about every second while the other workers finish.
    """
    if plan.baselines:
        record_baselines(plan.config, opened.study, plan.baselines)
    with WorkerPool(plan) as pool:
        with torch_threads(pool.threads_per_worker):
            run_search(plan, on_trial=on_trial, opened=opened, on_job=on_job)
        pool.wait(on_idle or (lambda: None))


class WorkerPool:
    """``config.workers - 1`` extra processes running the same search loop; this process is the last.

    They share the study through its storage (``search/workers.py`` keeps them to exactly
    ``--trials`` evaluations). Each gets an equal share of the CPU cores for torch and, when the
    evaluator runs on ``cuda`` and several GPUs are visible, a GPU of its own (round robin).
    """

    def __init__(self, plan: RunPlan):
        self.plan, self.config = plan, plan.config
        config = plan.config
        self.threads_per_worker = max(1, (os.cpu_count() or 1) // config.workers) if config.workers > 1 else None
        device = torch.device(str(getattr(config.evaluator, "device", "cpu")))
        self.gpus = worker_gpus(device, config.workers)
        self.processes: list = []

    def __enter__(self) -> WorkerPool:
        if self.config.workers > 1:  # RunPlan.check made sure the storage is one processes share
            context = multiprocessing.get_context("spawn")  # no forked torch or SQLite state
            for index, gpu in enumerate(self.gpus[1:], start=1):
                args = (with_worker_seed(self.plan, index), self.threads_per_worker, gpu)
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


def with_worker_seed(plan: RunPlan, index: int) -> RunPlan:
    """The plan for extra worker ``index``: the sampler seeded ``seed + index``.

    With one seed, every worker's sampler draws the same architectures in the same order (a
    random sampler exactly so), and each waits for the other to finish the one it drew: two
    workers searched at the speed of one.
    """
    if plan.config.seed is None:
        return plan
    return dataclasses.replace(plan, config=dataclasses.replace(plan.config, seed=plan.config.seed + index))


def worker_main(plan: RunPlan, threads: int | None, gpu: str | None = None) -> None:
    """One extra worker process: the search loop and the rungs, quiet; SIGTERM fails and re-queues its trial.

    ``gpu`` becomes this process's only visible GPU (set before CUDA starts, so ``cuda`` is it).
    """
    import signal
    import warnings

    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    shared_study.QUIET_OUTAGES = True  # the main process says it once
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", module="optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with torch_threads(threads):
        try:
            run_search(plan)
        except ConfigError:
            sys.exit(2)  # a storage outage past the limit: the main process, waiting on it too, prints the one line
