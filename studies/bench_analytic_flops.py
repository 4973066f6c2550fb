"""How much faster is ``analytic_flops`` (config only) than build-and-trace ``count_flops``?

Draws architectures from a search space (default the full space) at the target profile
(224 px, 1000 classes), times both on each, checks they agree, and prints medians and the
ratio. Usage: ``.venv/bin/python studies/bench_analytic_flops.py [--n 30] [--space full]``
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import optuna

from vitsearch.evaluators.complexity import analytic_flops, count_flops
from vitsearch.search.spaces import resolve_space


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="full", help="a shipped space name or a space file")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--img-size", type=int, default=224)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    space = resolve_space(args.space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    analytic_s, traced_s, worst = [], [], 0.0
    for _ in range(args.n):
        trial = study.ask()
        arch = space.sample(trial)
        study.tell(trial, 0.0)
        analytic_flops(arch, args.img_size)  # warm the registry imports once per arch shape
        t0 = time.perf_counter()
        a = analytic_flops(arch, args.img_size)
        t1 = time.perf_counter()
        c = count_flops(arch, args.img_size)
        t2 = time.perf_counter()
        analytic_s.append(t1 - t0)
        traced_s.append(t2 - t1)
        worst = max(worst, abs(a - c) / c)
    ma, mt = statistics.median(analytic_s), statistics.median(traced_s)
    print(f"space {space.name}, {args.n} architectures at {args.img_size}px")
    print(f"analytic_flops   median {ma * 1e3:8.2f} ms")
    print(f"build + fvcore   median {mt * 1e3:8.2f} ms")
    print(f"ratio (median)   {mt / ma:8.0f}x   largest relative difference {worst:.2e}")


if __name__ == "__main__":
    main()
