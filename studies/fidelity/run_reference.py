"""Resumable fidelity runs: the reference (and cheaper evaluators) on every architecture of archs.csv.

Each finished (architecture, evaluator, settings) becomes one row of a CSV cache, written right
away (the file is rewritten through a temporary file and renamed, so a kill never leaves half a
row); a row already there is skipped, so killing and restarting resumes where it stopped.

Order, so that partial results are useful: architectures sorted by FLOPs are visited in a
van der Corput order (every prefix spreads over the FLOPs range); ``reference`` runs seed 0 on
the first ``--first`` of them, then seed 1 on the first ``--ceiling`` (the noise ceiling), then
seed 0 on the rest.

Two cores: run two processes with ``--shard 0/2`` and ``--shard 1/2``; each takes every other
item of the same plan and merges its rows into the shared CSV under a file lock. ``seconds`` is
wall time, ``cpu_seconds`` the process's CPU time (steadier on a shared machine; with one thread
the two agree on a quiet one).

Modes:
    ``run_reference.py``                                  the reference study -> reference.csv
    ``run_reference.py --evaluator proxy --set epochs=8``   one cheap evaluator -> cheap.csv
    ``run_reference.py --plan cheap``                     every profile of ``CHEAP`` -> cheap.csv

Run it with one thread (``--threads 1``, the default) and ``OMP_NUM_THREADS=1``; ``nice`` it.
``params`` and ``flops`` need no run: ``table.py`` reads them from archs.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from vitsearch.evaluators.csv_cache import mine, parse_shard
from vitsearch.evaluators.result_rows import ResultRows, result_row, timed_evaluate
from vitsearch.evaluators.validate import SHIPPED_PROXY_LABEL
from vitsearch.search.cli.options import parse_settings

HERE = Path(__file__).resolve().parent
ZERO_COST = ["synflow", "naswot", "snip", "grad_norm", "jacob_cov", "dss"]
# label -> (evaluator, settings), cheapest first so the table fills early: every zero-cost score, then the
# proxy varied one knob at a time from ``P500X4``, the default when the study began (pinned, so a label
# keeps its meaning when the shipped default moves), uncapped so a score does not depend on the machine.
UNCAPPED = {"max_seconds": None}
P500X4 = {"train_subset": 500, "epochs": 4, "batch_size": 32, "width_mult": 0.25, "lr": 1e-3, **UNCAPPED}


def _proxy(**overrides: Any) -> tuple[str, dict[str, Any]]:
    return "proxy", {**P500X4, **overrides}


# P500X4 is 1/20 of the reference's images seen; the variants keep about that cost (images x epochs = 2,000)
# or less, except 1000x4 and old, which show what more buys.
CHEAP: dict[str, tuple[str, dict[str, Any]]] = {
    **{name: (name, {}) for name in ZERO_COST},
    "proxy-500x1": _proxy(epochs=1),
    "proxy-500x2": _proxy(epochs=2),
    "proxy-500x4": _proxy(),
    "proxy-1000x2": _proxy(train_subset=1000, epochs=2),
    "proxy-2000x1": _proxy(train_subset=2000, epochs=1),
    "proxy-lr3e-3": _proxy(lr=3e-3),
    "proxy-warmup1": _proxy(warmup_epochs=1),
    "proxy-w0.125": _proxy(width_mult=0.125),
    "proxy-1000x4": _proxy(train_subset=1000),
    # lr 3e-3 ranked best of the profiles at the default's cost (8.6%); at 2 epochs it fits under 5%
    "proxy-lr3e-3-500x2": _proxy(lr=3e-3, epochs=2),
    # 1000 x 4 (128 optimizer steps) ranked far above every 64-step profile: is it the steps? Batch 16 gives
    # 128 steps on 500 x 4 images; at width x0.125 and over 2 epochs it may fit under 5%.
    "proxy-b16": _proxy(batch_size=16),
    "proxy-b16-w0.125": _proxy(batch_size=16, width_mult=0.125),
    "proxy-b16-500x2": _proxy(batch_size=16, epochs=2),
    # b16 and b16-w0.125 ranked as 1000 x 4 did, b16-500x2 (64 steps) as the 64-step profiles: the steps
    # decide. Batch 8 gives 128 steps on 500 x 2, the cost of b16-500x2. The second is the shipped default.
    "proxy-b8-500x2": _proxy(batch_size=8, epochs=2),
    "proxy-b8-500x2-w0.125": _proxy(batch_size=8, epochs=2, width_mult=0.125),
    # the grid side, at the chosen default: 4x4 tokens for a DeiT (patch 6 at 28 px) instead of 7x7
    "proxy-b8-500x2-w0.125-g0.375": _proxy(batch_size=8, epochs=2, width_mult=0.125, grid_scale=0.375),
    # the default before the study: 1,000 images x 4 at the full target grid, capped at 300 s
    "proxy-old": _proxy(train_subset=1000, grid_scale=1.0, max_seconds=300.0),
}
DEFAULT_LABEL = SHIPPED_PROXY_LABEL  # the profile ProxyProfile ships (checked by tests/studies)


def interleave(n: int) -> list[int]:
    """``0..n-1`` at the van der Corput points 0, 1/2, 1/4, 3/4, 1/8...: every prefix spreads over the range.

    The top end comes last, not second: there the architectures are the slowest to train.
    """
    order: list[int] = []
    seen: set[int] = set()
    k = 0
    while len(order) < n:
        x, denom, i = 0.0, 1.0, k
        while i:
            denom *= 2
            x += (i % 2) / denom
            i //= 2
        idx = round(x * (n - 1))
        if idx not in seen:
            seen.add(idx)
            order.append(idx)
        k += 1
    return order


def read_archs(path: Path) -> list[dict[str, str]]:
    """archs.csv rows sorted by FLOPs, then visited in ``interleave`` order."""
    with path.open(newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["flops"]))
    for field in ("arch_id", "digest", "flops", "arch"):
        if rows and field not in rows[0]:
            raise ValueError(f"{path}: no {field!r} column")
    return [rows[i] for i in interleave(len(rows))]


def plan(args: argparse.Namespace) -> list[tuple[str, str, dict[str, Any], slice]]:
    """``(label, evaluator, settings, which archs)`` in the order they run."""
    if args.plan == "cheap":
        return [(label, ev, {"seed": 0, **kw}, slice(None)) for label, (ev, kw) in CHEAP.items()]
    sets = parse_settings(args.set)
    label = args.label or "-".join([args.evaluator, *(f"{k}{v}" for k, v in sets.items())])
    seed0 = (label, args.evaluator, {"seed": 0, **sets})
    if args.evaluator != "reference":
        return [(*seed0, slice(None))]
    return [
        (*seed0, slice(None, args.first)),
        (label, args.evaluator, {**sets, "seed": 1}, slice(None, args.ceiling)),
        (*seed0, slice(args.first, None)),
    ]


def run(args: argparse.Namespace) -> int:
    """Evaluate every missing (architecture, evaluator, settings); returns how many were evaluated."""
    import torch

    from vitsearch.evaluators.base import get_evaluator
    from vitsearch.space import ArchConfig

    torch.set_num_threads(args.threads)
    archs = read_archs(args.archs)
    if args.only:
        wanted = set(args.only.split(","))
        archs = [a for a in archs if a["arch_id"] in wanted]
    results = ResultRows(args.out)
    done = set(results.by_key())
    fresh = item = 0
    for label, name, kwargs, which in plan(args):
        ev = get_evaluator(name, device=args.device, **kwargs)
        seed = kwargs["seed"]
        for arch_row in archs[which]:
            item += 1
            if not mine(item - 1, args.shard):
                continue
            arch = ArchConfig.from_dict(json.loads(arch_row["arch"]))
            if arch.digest() != arch_row["digest"]:
                raise ValueError(f"{args.archs}: {arch_row['arch_id']}: digest {arch_row['digest']} is not the arch's")
            key = ev.cache_key(arch)
            if key in done:
                continue
            if args.limit is not None and fresh >= args.limit:
                return fresh
            with results.claim(key) as taken:
                if not taken:  # --shard claim: another live process is on it
                    continue
                done = set(results.by_key())  # it may have finished while we looked
                if key in done:
                    continue
                outcome = timed_evaluate(ev, arch, key)
                if outcome is None:
                    continue  # an unexpected error is logged, not cached: a rerun retries it
                rows = results.add(result_row(ev, arch_row, label, seed, args.threads, outcome))
            done = {r["key"] for r in rows}
            fresh += 1
            score = outcome.get("result", {}).get("score", outcome.get("error"))
            print(f"{label} seed {seed} {arch_row['arch_id']}: {score} in {outcome['seconds']:.0f} s", flush=True)
    return fresh


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluator", default="reference", help="an evaluator name (default: reference)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="evaluator settings")
    parser.add_argument("--label", help="row label (default: evaluator and settings)")
    parser.add_argument("--plan", choices=["cheap"], help="run every profile of CHEAP instead of --evaluator")
    parser.add_argument("--first", type=int, default=30, help="reference: archs with seed 0 before the ceiling's")
    parser.add_argument("--ceiling", type=int, default=10, help="reference: archs that also get seed 1")
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="K/N",
        help="run every N-th item from K, or 'claim': the next item no other live process holds",
    )
    parser.add_argument("--archs", type=Path, default=HERE / "archs.csv")
    parser.add_argument("--out", type=Path, help="CSV cache (default: reference.csv or cheap.csv)")
    parser.add_argument("--only", help="comma-separated arch_ids")
    parser.add_argument("--limit", type=int, help="stop after this many fresh evaluations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = HERE / ("reference.csv" if args.evaluator == "reference" and not args.plan else "cheap.csv")
    try:
        fresh = run(args)
    except ValueError as err:
        sys.exit(f"error: {err}")
    print(f"{fresh} evaluated, results in {args.out}", flush=True)


if __name__ == "__main__":
    main()
