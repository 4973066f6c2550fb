"""How well a per-part latency table predicts whole-model latency (``evaluators.latency_table``).

Draws ``--n`` architectures of a space within a FLOPs budget (seeded), times each deployed
model whole (``measure_latency``, the search's ``--latency-objective`` path) and predicts it
from the table (parts timed once, summed), then prints: Spearman rho and Kendall tau of
predicted against measured with bootstrap 95% intervals, the median and 90th-percentile
relative error, the FLOPs baseline's rank correlation with measured latency, and the seconds
each way (table: parts timed plus lookups; measured: a build and the timed passes per model).
Rows go to a CSV so a rerun can re-read them (``--from-csv``).

    OMP_NUM_THREADS=1 .venv/bin/python studies/bench_latency_table.py --n 30 --budget 2G
"""

from __future__ import annotations

import argparse
import csv
import random
import statistics
import time
from pathlib import Path

import numpy as np
import optuna

from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.evaluators.latency import LatencySettings, arch_latency_ms
from vitsearch.evaluators.latency_table import LatencyTable
from vitsearch.evaluators.validate import bootstrap_ci, kendall_tau, spearman_rho
from vitsearch.search.spaces import resolve_space
from vitsearch.space.search_space import SearchSpace

HERE = Path(__file__).resolve().parent


def draw(space: SearchSpace, n: int, budget: float, seed: int) -> list:
    rng, archs, seen = random.Random(seed), [], set()
    while len(archs) < n:
        arch = space.sample_random(rng)
        if arch.digest() not in seen and analytic_flops(arch) <= budget:
            seen.add(arch.digest())
            archs.append(arch)
    return archs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="full", help="a shipped space name or a space file")
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--budget", type=float, default=2e9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--calibrate", type=int, default=10, help="architectures timed whole to set the scale")
    parser.add_argument("--out", type=Path, default=HERE / "latency_table.csv")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    settings = LatencySettings(backend=args.backend, repeats=args.repeats)
    archs = draw(resolve_space(args.space), args.n + args.calibrate, args.budget, args.seed)
    table = LatencyTable(settings)
    if args.calibrate:  # on architectures of their own, so the errors below are out of sample
        start = time.perf_counter()
        scale = table.calibrate(archs[args.n :])
        print(f"calibrated on {args.calibrate} architectures in {time.perf_counter() - start:.1f} s: scale {scale:.3f}")
        archs = archs[: args.n]
    rows, table_each = [], []
    table_s = measured_s = 0.0
    for i, arch in enumerate(archs):
        start = time.perf_counter()
        predicted = table.predict_ms(arch)
        table_s += time.perf_counter() - start
        table_each.append(time.perf_counter() - start)
        start = time.perf_counter()
        measured = arch_latency_ms(arch, 224, 3, 1000, settings)
        measured_s += time.perf_counter() - start
        rows.append(
            {"digest": arch.digest(), "flops": analytic_flops(arch), "predicted_ms": predicted, "measured_ms": measured}
        )
        print(
            f"{i + 1}/{len(archs)} {arch.digest()} predicted {predicted:.1f} ms measured {measured:.1f} ms", flush=True
        )
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report(rows, table_s, measured_s, len(table.entries), args)
    last = table_each[-max(1, len(table_each) // 4) :]
    print(
        f"The table fills as it goes: its last {len(last)} architectures took {statistics.median(last):.3f} s each "
        f"(median), timing whole models {measured_s / len(rows):.2f} s each."
    )


def report(rows: list[dict], table_s: float, measured_s: float, parts: int, args: argparse.Namespace) -> None:
    pred = np.array([r["predicted_ms"] for r in rows])
    meas = np.array([r["measured_ms"] for r in rows])
    flops = np.array([r["flops"] for r in rows], dtype=float)
    rel = np.abs(pred - meas) / meas
    print(
        f"\nLatency table vs whole-model latency: n={len(rows)} of {args.space} within {args.budget:.3g} FLOPs, "
        f"seed {args.seed}, backend {args.backend}, batch 1, 1 thread, median of {args.repeats} passes; "
        f"table calibrated on {args.calibrate} other architectures.\n"
    )
    print("| predictor of measured latency | Spearman rho [95% CI] | Kendall tau [95% CI] |")
    print("|---|---|---|")
    for name, x in (("latency table (sum of parts)", pred), ("FLOPs", flops)):
        rho, tau = spearman_rho(x, meas), kendall_tau(x, meas)
        rci, tci = bootstrap_ci(x, meas, spearman_rho, 1000), bootstrap_ci(x, meas, kendall_tau, 1000)
        print(f"| {name} | {rho:.3f} [{rci[0]:.3f}, {rci[1]:.3f}] | {tau:.3f} [{tci[0]:.3f}, {tci[1]:.3f}] |")
    print(
        f"\nRelative error |predicted - measured| / measured: median {statistics.median(rel):.1%}, "
        f"90th percentile {np.quantile(rel, 0.9):.1%}; "
        f"predicted / measured median {statistics.median(pred / meas):.3f}."
    )
    print(
        f"Seconds: table {table_s:.1f} s for {len(rows)} architectures ({parts} parts timed, then lookups), "
        f"measured {measured_s:.1f} s ({measured_s / len(rows):.2f} s per architecture)."
    )


if __name__ == "__main__":
    main()
