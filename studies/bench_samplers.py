"""Hypervolume against trials for the tpe, nsga2 and random samplers on a cheap evaluator.

Each sampler runs the real driver (budget constraint, dedup) on the full space at 2 GFLOPs
with the synflow zero-cost score as the accuracy objective (memoised per architecture, so
the samplers, not the scoring, dominate the cost). Prints the normalised hypervolume at
25/50/100/200 evaluated trials, and how many trials tpe and nsga2 need to reach random's
200-trial hypervolume (median over seeds).

Usage: ``.venv/bin/python studies/bench_samplers.py [--trials 200] [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import optuna

from vitsearch.evaluators.base import BaseEvaluator, get_evaluator
from vitsearch.search.budget import parse_flops
from vitsearch.search.driver import SearchConfig, run_search
from vitsearch.search.plots import hypervolume_2d
from vitsearch.space.search_space import SearchSpace


class Memoised(BaseEvaluator):
    """Wraps an evaluator with an in-memory cache shared by every study of the benchmark."""

    name = "memoised"

    def __init__(self, inner: BaseEvaluator):
        self.inner, self.cache = inner, {}

    def evaluate(self, arch, trial=None):
        key = arch.digest()
        if key not in self.cache:
            self.cache[key] = self.inner.evaluate(arch)
        return self.cache[key]

    def settings(self):
        return {"inner": self.inner.name, **self.inner.settings()}


def curve(space, evaluator, sampler: str, seed: int, trials: int, budget: int) -> list[float]:
    config = SearchConfig(
        space=space, evaluator=evaluator, budget=budget, trials=trials, sampler=sampler, seed=seed, study_name="b"
    )
    study = run_search(config).study
    points, volumes = [], []
    for t in study.trials:
        result = t.user_attrs.get("result", {})
        if not result.get("evaluated"):
            continue
        if t.state == optuna.trial.TrialState.COMPLETE:
            points.append((t.values[0], t.user_attrs["record"]["flops"]))
        volumes.append(hypervolume_2d(points, budget))
    return volumes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=str(Path(__file__).with_name("full.yaml")))
    parser.add_argument("--budget", default="2G")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space, budget = SearchSpace.load(args.space), parse_flops(args.budget)
    # synflow is reported as its natural log (positive for these nets): the "accuracy" axis here.
    evaluator = Memoised(get_evaluator("synflow", data="synthetic", batch_size=8, width_mult=0.25))
    curves, seconds = {}, {}
    for sampler in ("random", "tpe", "nsga2"):
        started = time.perf_counter()
        curves[sampler] = [curve(space, evaluator, sampler, seed, args.trials, budget) for seed in args.seeds]
        seconds[sampler] = (time.perf_counter() - started) / len(args.seeds)
        print(f"{sampler}: {seconds[sampler]:.0f} s per seed (scores memoised across samplers)", flush=True)
    target = statistics.mean(c[-1] for c in curves["random"])
    marks = [m for m in (25, 50, 100, 200) if m <= args.trials]
    print(f"space {space.name}, budget {args.budget}FLOPs, synflow score, seeds {args.seeds}")
    print("| sampler | " + " | ".join(f"HV@{m}" for m in marks) + " | trials to random's final HV |")
    print("|---|" + "---|" * (len(marks) + 1))
    for sampler, runs in curves.items():
        hv = [statistics.mean(r[m - 1] for r in runs) for m in marks]
        reach = [next((i + 1 for i, v in enumerate(r) if v >= target), None) for r in runs]
        reached = [x for x in reach if x is not None]
        needed = f"{statistics.median(reached):.0f} ({len(reached)}/{len(runs)} seeds)" if reached else "not reached"
        print(f"| {sampler} | " + " | ".join(f"{v:.4f}" for v in hv) + f" | {needed} |")


if __name__ == "__main__":
    main()
