"""The fidelity study's architecture list: ``studies/fidelity/archs.csv``.

36 architectures of the default search space (``full``) within the default budget (2 GFLOPs at
224 px, 1000 classes), drawn to span the FLOPs range: ``--pool`` architectures are drawn
uniformly (``SearchSpace.sample_random``, seeded), those within budget are binned by analytic
FLOPs into ``--n`` equal-width bins between the smallest and the largest found (every ``full``
architecture is within 2 GFLOPs: the largest drawn is about 1.6), and the first
drawn of each bin is taken (an empty bin takes the unused architecture nearest its centre).
The hand-designed presets that fit the budget follow, marked ``source = preset:<name>``.

Columns: ``arch_id, digest, flops, params, source, arch`` (the ArchConfig as compact JSON); flops
and params are the deployed model's at the target profile (``analytic_flops``, ``analytic_params``).
Deterministic: the same seed writes the same file.

Usage: ``.venv/bin/python studies/fidelity/make_archs.py [--n 36] [--pool 4000] [--seed 0]``
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

from vitsearch.evaluators.complexity import analytic_flops, analytic_params
from vitsearch.search.budget import parse_flops
from vitsearch.search.cli import DEFAULT_SPACE, resolve_space
from vitsearch.space import ArchConfig, get_preset

HERE = Path(__file__).resolve().parent
BUDGET = "2GFLOPs"  # the budget of ``make run``
PRESETS = ["deit_tiny", "psvit_tiny", "poolformer_s12", "schemeformer_ppaa_s12", "riformer_s12"]
COLUMNS = ["arch_id", "digest", "flops", "params", "source", "arch"]


def draw_spanning(pool: list[tuple[int, ArchConfig]], n: int) -> list[tuple[int, ArchConfig]]:
    """One architecture per equal-width FLOPs bin; ``pool`` is ``(flops, arch)`` in draw order."""
    low, high = min(f for f, _ in pool), max(f for f, _ in pool)
    width = (high - low) / n
    chosen: dict[int, tuple[int, ArchConfig]] = {}
    for flops, arch in pool:
        b = min(int((flops - low) / width), n - 1)
        chosen.setdefault(b, (flops, arch))
    used = {a.digest() for _, a in chosen.values()}
    for b in range(n):
        if b not in chosen:
            centre = low + (b + 0.5) * width
            flops, arch = min((x for x in pool if x[1].digest() not in used), key=lambda x: abs(x[0] - centre))
            chosen[b] = (flops, arch)
            used.add(arch.digest())
    return [chosen[b] for b in range(n)]


def make_rows(n: int, pool_size: int, seed: int, budget: int) -> list[dict[str, object]]:
    space = resolve_space(DEFAULT_SPACE)
    rng = random.Random(seed)
    pool: dict[str, tuple[int, ArchConfig]] = {}
    for _ in range(pool_size):
        arch = space.sample_random(rng)
        flops = analytic_flops(arch)
        if flops <= budget:
            pool.setdefault(arch.digest(), (flops, arch))
    if len(pool) < n:
        raise ValueError(f"--pool: only {len(pool)} distinct architectures within budget, need {n}")
    picked = [(f"a{i:02d}", "sampled", f, a) for i, (f, a) in enumerate(draw_spanning(list(pool.values()), n))]
    for name in PRESETS:
        arch = get_preset(name)
        flops = analytic_flops(arch)
        if flops <= budget:
            picked.append((f"p_{name}", f"preset:{name}", flops, arch))
    return [
        {
            "arch_id": arch_id,
            "digest": arch.digest(),
            "flops": flops,
            "params": analytic_params(arch),
            "source": source,
            "arch": json.dumps(arch.to_dict(), sort_keys=True, separators=(",", ":")),
        }
        for arch_id, source, flops, arch in picked
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=36)
    parser.add_argument("--pool", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", default=BUDGET)
    parser.add_argument("--out", type=Path, default=HERE / "archs.csv")
    args = parser.parse_args()
    rows = make_rows(args.n, args.pool, args.seed, parse_flops(args.budget))
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} architectures to {args.out}")


if __name__ == "__main__":
    main()
