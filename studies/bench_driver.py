"""Driver overhead of the search loop: milliseconds per trial by phase, evaluator excluded.

The real driver (``run_search``: ask, sample, budget check, params, records, decision lock,
tell) runs on the default space and budget with a constant-time stand-in evaluator (this
script's ``ConstantEvaluator``: a benchmark-only object, never registered, never a default),
per storage and sampler, at each trial count. ``PhaseClock`` times every phase of every
trial; the table gives medians over the last half of the trials (the loop's cost grows with
the study), all sampled trials counted (rejected, duplicate and evaluated), and what share
of the wall time the driver would be with a 0.2 s evaluator:
``driver ms per evaluated trial / (that + 200 ms)``, where the driver's time is the run's wall
time less the evaluator's (so work outside the named phases counts too).

    OMP_NUM_THREADS=1 .venv/bin/python studies/bench_driver.py --trials 100 1000 \\
        --storages memory sqlite journal --samplers tpe nsga2 random

``--workers 1 2 4 8``: that many processes share one study (``run_search`` each, as ``vitsearch run
--workers`` starts them, with the first of ``--samplers``); the table gives the wall time, the
non-scoring worker-seconds per evaluated trial and their split by phase, per storage and SQLite
durability mode (``--sqlite-modes off wal``):

    OMP_NUM_THREADS=1 .venv/bin/python studies/bench_driver.py --workers 1 2 4 8 --trials 200 \\
        --storages sqlite --sqlite-modes off wal
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from vitsearch.evaluators.base import BaseEvaluator
from vitsearch.search.driver import PhaseClock, SearchConfig, run_search
from vitsearch.search.spaces import resolve_space
from vitsearch.search.workers import SQLITE_MODE_ENV, open_storage
from vitsearch.space.search_space import SearchSpace

PHASES = ("loop", "ask", "sample", "budget", "params", "record", "decide", "tell")


class ConstantEvaluator(BaseEvaluator):
    """Benchmark stand-in: sleeps ``seconds`` and returns a score derived from the digest."""

    name = "constant"

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds

    def evaluate(self, arch, trial=None):
        if self.seconds:
            time.sleep(self.seconds)
        return {"score": int(hashlib.sha1(arch.digest().encode()).hexdigest()[:6], 16) / 0xFFFFFF}

    def settings(self):
        return {"seconds": self.seconds}


def storage_url(kind: str, folder: Path) -> str | None:
    return {"memory": None, "sqlite": f"sqlite:///{folder / 'study.db'}", "journal": f"journal:{folder / 'j.log'}"}[
        kind
    ]


def measure(space: SearchSpace, budget: int, trials: int, storage: str, sampler: str, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        config = SearchConfig(
            space=space,
            evaluator=ConstantEvaluator(),
            budget=budget,
            trials=trials,
            sampler=sampler,
            seed=seed,
            storage=storage_url(storage, Path(folder)),
            study_name="bench",
        )
        clock = PhaseClock()
        started = time.perf_counter()
        run_search(config, clock=clock)
        wall = time.perf_counter() - started
    late = clock.trials[len(clock.trials) // 2 :]
    row = {p: 1000 * statistics.median(t.get(p, 0.0) for t in late) for p in PHASES}
    # Everything but the evaluator's own time, phases or not (study creation, the last poll...).
    driver_ms = 1000 * (wall - sum(t.get("evaluate", 0.0) for t in clock.trials))
    row.update(
        sampled=len(clock.trials),
        wall_s=wall,
        driver_ms_per_evaluated=driver_ms / trials,
    )
    row["share_at_0.2s"] = row["driver_ms_per_evaluated"] / (row["driver_ms_per_evaluated"] + 200)
    return row


def _worker(config: SearchConfig, phases_file: str) -> None:
    """One worker process: the search, then its seconds per phase summed over its trials, as JSON."""
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    clock = PhaseClock()
    run_search(config, clock=clock)
    totals = {p: sum(t.get(p, 0.0) for t in clock.trials) for p in (*PHASES, "evaluate")}
    Path(phases_file).write_text(json.dumps({"sampled": len(clock.trials), **totals}))


def measure_workers(
    space: SearchSpace,
    budget: int,
    trials: int,
    url: str,
    workers: int,
    seconds: float,
    sampler: str = "tpe",
) -> dict:
    """``workers`` processes on one study at ``url``: wall time, and the non-scoring worker-seconds per trial.

    Each process runs ``run_search`` (what ``--workers`` starts) with its own sampler seed; the
    evaluator sleeps ``seconds``, so the overhead per evaluated trial is
    ``workers * search seconds / trials - seconds`` (first trial's start to last trial's end): what the
    driver, the storage and waiting on each other cost. ``phase_ms``: each phase's worker-milliseconds
    per evaluated trial, summed over the workers (where that overhead goes).
    """
    import multiprocessing

    config = SearchConfig(
        space=space, evaluator=ConstantEvaluator(seconds), budget=budget, trials=trials, sampler=sampler, seed=None,
        storage=url, study_name="bench", pruner="none", baselines=False, rungs=1,
    )  # fmt: skip
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        files = [str(Path(folder) / f"phases{i}.json") for i in range(workers)]
        processes = [context.Process(target=_worker, args=(config, f)) for f in files]
        started = time.perf_counter()
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        wall = time.perf_counter() - started
        clocks = [json.loads(Path(f).read_text()) for f in files if Path(f).exists()]
    study = optuna.load_study(study_name="bench", storage=open_storage(url))
    evaluated = sum(1 for t in study.trials if t.user_attrs.get("result", {}).get("evaluated"))
    # The search itself, first trial to last: process start-up (torch imports) is not the driver's cost.
    starts = [t.datetime_start for t in study.trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in study.trials if t.datetime_complete is not None]
    searching = (max(ends) - min(starts)).total_seconds() if starts and ends else wall
    return {
        "wall_s": wall,
        "search_s": searching,
        "evaluated": evaluated,
        "exit_codes": [p.exitcode for p in processes],
        "overhead_ms": 1000 * (workers * searching / max(evaluated, 1) - seconds),
        "sampled": sum(c["sampled"] for c in clocks),
        "phase_ms": {p: 1000 * sum(c[p] for c in clocks) / max(evaluated, 1) for p in PHASES},
    }


def workers_table(args: argparse.Namespace, space: SearchSpace) -> None:
    sampler = args.samplers[0]
    print(f"space {args.space}, {args.trials[0]} trials, sampler {sampler}, evaluator sleeping {args.seconds} s")
    print("| storage | SQLite mode | workers | evaluated (sampled) | wall s (with start-up) | search s | "
          "non-scoring worker-ms per evaluated trial | " + " | ".join(PHASES) + " |")  # fmt: skip
    print("|---|---|---|---|---|---|---|" + "---|" * len(PHASES))
    for storage in args.storages:
        modes = args.sqlite_modes if storage == "sqlite" else ["-"]
        for mode in modes:
            for workers in args.workers:
                with tempfile.TemporaryDirectory() as folder:
                    url = args.postgres if storage == "postgres" else storage_url(storage, Path(folder))
                    if mode != "-":
                        os.environ[SQLITE_MODE_ENV] = mode  # the spawned workers read it when they open the file
                    r = measure_workers(space, int(args.budget), args.trials[0], url, workers, args.seconds, sampler)
                    if storage == "postgres":
                        optuna.delete_study(study_name="bench", storage=url)
                bad = "" if set(r["exit_codes"]) == {0} else f" (exit codes {r['exit_codes']})"
                phases = " | ".join(f"{r['phase_ms'][p]:.0f}" for p in PHASES)
                counts = f"{r['evaluated']} ({r['sampled']}){bad}"
                print(f"| {storage} | {mode} | {workers} | {counts} | {r['wall_s']:.1f} | "
                      f"{r['search_s']:.1f} | {r['overhead_ms']:.0f} | {phases} |", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="full")
    parser.add_argument("--budget", type=float, default=2e9)
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--storages", nargs="+", default=["memory", "sqlite", "journal"])
    parser.add_argument("--samplers", nargs="+", default=["tpe", "nsga2", "random"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, nargs="+", help="processes sharing one study (the workers mode)")
    parser.add_argument("--seconds", type=float, default=0.0, help="the stand-in evaluator's sleep, workers mode")
    parser.add_argument("--sqlite-modes", nargs="+", default=["off"], help="SQLite durability modes to compare")
    parser.add_argument("--postgres", help="a PostgreSQL URL, for --storages postgres in the workers mode")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = resolve_space(args.space)
    if args.workers:
        workers_table(args, space)
        return
    head = " | ".join(PHASES)
    print(f"space {args.space}, budget {args.budget / 1e9:g} GFLOPs; median ms per sampled trial (last half)")
    print(f"| trials | storage | sampler | sampled | {head} | driver ms / evaluated | share at 0.2 s | wall s |")
    print("|" + "---|" * (len(PHASES) + 7))
    for trials in args.trials:
        for storage in args.storages:
            for sampler in args.samplers:
                r = measure(space, int(args.budget), trials, storage, sampler, args.seed)
                cells = " | ".join(f"{r[p]:.1f}" for p in PHASES)
                print(
                    f"| {trials} | {storage} | {sampler} | {r['sampled']} | {cells} | "
                    f"{r['driver_ms_per_evaluated']:.0f} | {r['share_at_0.2s']:.0%} | {r['wall_s']:.0f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
