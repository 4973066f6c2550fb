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
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import optuna

from vitsearch.evaluators.base import BaseEvaluator
from vitsearch.search.driver import PhaseClock, SearchConfig, run_search
from vitsearch.space.search_space import SearchSpace

PHASES = ("loop", "ask", "sample", "budget", "params", "record", "decide", "tell")
SPACES = Path(__file__).resolve().parent


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="full")
    parser.add_argument("--budget", type=float, default=2e9)
    parser.add_argument("--trials", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--storages", nargs="+", default=["memory", "sqlite", "journal"])
    parser.add_argument("--samplers", nargs="+", default=["tpe", "nsga2", "random"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = SearchSpace.load(SPACES / f"{args.space}.yaml")
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
