"""Hypervolume against trials for the tpe, nsga2 and random samplers on a cheap evaluator.

Each sampler runs the real driver (budget constraint, dedup) on the full space at 2 GFLOPs
with the synflow zero-cost score as the accuracy objective (memoised per architecture, so
the samplers, not the scoring, dominate the cost). Prints the normalised hypervolume at
25/50/100/200 evaluated trials, and how many trials each sampler needs to reach random's
200-trial hypervolume of the same seed (median over seeds).

Usage: ``.venv/bin/python studies/bench_samplers.py [--trials 200] [--seeds 0 1 2 3 4] [--out FILE]``
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
from vitsearch.search.spaces import resolve_space


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
    parser.add_argument("--space", default="full", help="a shipped space name or a space file")
    parser.add_argument("--budget", default="2G")
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", type=Path, help="Also write the table (markdown) here.")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space, budget = resolve_space(args.space), parse_flops(args.budget)
    # synflow is reported as its natural log (positive for these nets): the "accuracy" axis here.
    evaluator = Memoised(get_evaluator("synflow", data="synthetic", batch_size=8, width_mult=0.25))
    curves, seconds = {}, {}
    for sampler in ("random", "tpe", "nsga2"):
        started = time.perf_counter()
        curves[sampler] = [curve(space, evaluator, sampler, seed, args.trials, budget) for seed in args.seeds]
        seconds[sampler] = (time.perf_counter() - started) / len(args.seeds)
        print(f"{sampler}: {seconds[sampler]:.0f} s per seed (scores memoised across samplers)", flush=True)
    marks = [m for m in (25, 50, 100, 200) if m <= args.trials]
    lines = [
        f"Space `{space.name}`, budget {args.budget}FLOPs, accuracy axis: synflow (its natural log), "
        f"seeds {args.seeds}, {args.trials} evaluated trials per run. Hypervolume (HV) is normalised by "
        "the budget (reference: score 0, FLOPs = budget); medians over seeds. `trials to random's HV`: "
        f"per seed, the first trial at which the sampler's HV reaches the random sampler's {args.trials}-trial "
        "HV of the same seed (median over the seeds that reach it; per seed in brackets, - = not reached).",
        "",
        "| sampler | " + " | ".join(f"HV@{m}" for m in marks) + " | trials to random's HV | seconds / run |",
        "|---|" + "---:|" * (len(marks) + 2),
    ]
    for sampler, runs in curves.items():
        hv = [statistics.median(r[m - 1] for r in runs) for m in marks]
        reach = [
            next((i + 1 for i, v in enumerate(r) if v >= rand[-1]), None)
            for r, rand in zip(runs, curves["random"], strict=True)
        ]
        reached = [x for x in reach if x is not None]
        each = ", ".join("-" if x is None else str(x) for x in reach)
        needed = f"{statistics.median(reached):.0f} [{each}]" if reached else f"not reached [{each}]"
        cells = " | ".join(f"{v:.3f}" for v in hv)
        lines.append(f"| {sampler} | {cells} | {needed} | {seconds[sampler]:.0f} |")
    lines.append("")
    out = f" --out {args.out}" if args.out else ""
    lines.append(
        f"Command: `OMP_NUM_THREADS=1 .venv/bin/python studies/bench_samplers.py --trials {args.trials} "
        f"--seeds {' '.join(map(str, args.seeds))}{out}`. Seconds include scoring the first time an "
        "architecture is seen (random runs first, so it pays most of it)."
    )
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
