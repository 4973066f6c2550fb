"""Does the search beat hand design once trained? Searched, random-searched and hand-designed, at the reference.

At each budget, and for each space (``full``, ``stage``: the granularity question), two searches
of ``--trials`` architectures run with the defaults (``vitsearch run``'s evaluator, pruner and
sampler) and with random sampling; each one's best architecture within budget (by its proxy
score) is trained with the reference recipe (``evaluators.reference``) at ``--seeds`` seeds,
beside the budget-scaled hand-designed baselines (``search.baselines``: DeiT-, PoolFormer- and
SCHEMEformer-style, scaled in width and depth to the budget). The table gives reference
accuracy mean +- sd over the seeds and the FLOPs of every row.

Resumable, as ``studies/fidelity/run_reference.py``: each search keeps its Optuna study in
``runs/search_vs_baselines/`` (a rerun continues it), each pick is a row of ``picks.csv``,
each reference training a row of ``results.csv``, written as it finishes; ``--shard K/N``
splits the trainings over processes (shards that meet in a search share its Optuna study, as
``vitsearch run --workers`` does, so the search still takes ``--trials`` architectures).

    OMP_NUM_THREADS=1 nice .venv/bin/python studies/search_vs_baselines.py --shard 0/2 &
    OMP_NUM_THREADS=1 nice .venv/bin/python studies/search_vs_baselines.py --shard 1/2 &
    .venv/bin/python studies/search_vs_baselines.py --table     # the table from the caches
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fidelity"))
import run_reference as cache  # noqa: E402  (the fidelity study's resumable CSV cache)

sys.path.insert(0, str(HERE))
from paper_claims import t_interval  # noqa: E402  (one paired t-interval for both studies)

OUT = HERE / "search_vs_baselines"
SAMPLERS = {"search": "auto", "random": "random"}


def picks(args: argparse.Namespace) -> list[dict[str, str]]:
    """Run (or resume) every search and return one row per searched pick; cached in picks.csv."""
    from vitsearch.evaluators.complexity import analytic_flops
    from vitsearch.search.driver import SearchConfig, run_search
    from vitsearch.search.plan import make_evaluator
    from vitsearch.search.results import arch_of
    from vitsearch.search.spaces import resolve_space

    path = args.out / "picks.csv"
    rows = {(r["space"], r["budget"], r["method"]): r for r in _read(path)}
    for space_name in args.spaces:
        for budget in args.budgets:
            for method, sampler in SAMPLERS.items():
                if (space_name, str(budget), method) in rows:
                    continue
                name = f"{space_name}-{budget / 1e9:g}G-{method}"
                (args.out / "runs").mkdir(parents=True, exist_ok=True)
                config = SearchConfig(
                    space=resolve_space(space_name),
                    evaluator=make_evaluator("proxy", args.data, cache.parse_sets(args.proxy_set)),
                    budget=int(budget),
                    trials=args.trials,
                    sampler=sampler,
                    seed=0,
                    storage=f"sqlite:///{args.out / 'runs' / name}.db",
                    study_name=name,
                )
                study = run_search(config).study
                arch, trial = arch_of(study)
                rows[(space_name, str(budget), method)] = {
                    "space": space_name,
                    "budget": str(budget),
                    "method": method,
                    "trial": str(trial.number),
                    "proxy_score": f"{trial.values[0]:.4f}",
                    "flops": str(analytic_flops(arch)),
                    "arch": json.dumps(arch.to_dict(), sort_keys=True),
                }
                _write(path, list(rows.values()))
                print(f"{name}: best trial {trial.number}, proxy {trial.values[0]:.3f}", flush=True)
    return list(rows.values())


def contenders(args: argparse.Namespace) -> list[tuple[str, float, str, Any]]:
    """``(row name, budget, space, arch)`` for every architecture to train: picks, then baselines."""
    from vitsearch.search.baselines import FAMILIES, scaled_to_budget

    out = []
    for row in picks(args):
        out.append((f"{row['method']} ({row['space']})", float(row["budget"]), row["space"], _arch(row["arch"])))
    for budget in args.budgets:
        # Every family scaled to the budget: equal FLOPs footing. Not via budget_baselines(), which names a
        # scaled member after the preset it equals (at 2G the scaled PoolFormer is poolformer_s12).
        for family, build in FAMILIES.items():
            arch = scaled_to_budget(build, int(budget), img_size=224, num_classes=1000)
            if arch is not None:
                out.append((family, budget, "-", arch))
    return out


def train(args: argparse.Namespace) -> None:
    """The reference recipe on every contender at every seed; one results.csv row each.

    One training per distinct architecture and seed: when two rows name the same architecture
    (both searches picked it: TPE's start-up draws are the random sampler's, seed for seed), the
    first is trained and the others get a copy of its row under their own names."""
    from vitsearch.evaluators.base import EvaluationFailed
    from vitsearch.evaluators.reference import ReferenceEvaluator

    path = args.out / "results.csv"
    done = {r["key"]: r for r in cache.read_rows(path)}
    shard, shards = args.shard
    item = 0
    rows = contenders(args)  # once: the searches and the budget scaling do not depend on the seed
    for seed in args.seeds:  # seed-major: a partial run has every row at one seed first
        overrides = cache.parse_sets(args.reference_set)
        evaluator = ReferenceEvaluator(args.data, device=args.device, **{**overrides, "seed": seed})
        twins: dict[str, list[tuple[str, float, str, Any]]] = {}
        for row in rows:
            twins.setdefault(evaluator.cache_key(row[3]), []).append(row)
        for arch_key, members in twins.items():
            item += 1
            if (item - 1) % shards == shard:  # twins share a turn, so one process trains them once
                done = _train_once(evaluator, arch_key, members, seed, path, done, EvaluationFailed)


def row_key(arch_key: str, name: str, budget: float) -> str:
    """One row per name and budget: a random search may pick the same architecture at two budgets."""
    return f"{arch_key}:{name}@{budget:g}"


def _train_once(evaluator, arch_key, members, seed, path, done, failed) -> dict[str, dict[str, str]]:
    """Train ``members``' one architecture (unless a row has it already); every member gets a row."""
    from vitsearch.evaluators.complexity import analytic_flops

    keys = [row_key(arch_key, name, budget) for name, budget, _, _ in members]
    trained = next((done[key] for key in keys if key in done), None)
    for key, (name, budget, space, arch) in zip(keys, members, strict=True):
        if key in done:
            continue
        row = {"arch_id": f"{name}|{budget:g}|{space}|{analytic_flops(arch)}", "digest": arch.digest()}
        if trained is None:
            outcome = cache.evaluate(evaluator, arch, key, failed)
            if outcome is None:  # a crash: retried by the next run
                return done
            record = trained = cache.record(evaluator, row, name, seed, 1, outcome)
            source = ""
        else:
            finished = datetime.now(timezone.utc).isoformat(timespec="seconds")
            record = {**trained, **row, "key": key, "label": name, "finished": finished}
            source = f" (row of {trained['label']})"
        done = {r["key"]: r for r in cache.add_row(path, record)}
        print(f"{name} at {budget / 1e9:g}G ({space}) seed {seed}: {record['score']}{source}", flush=True)
    return done


def table(args: argparse.Namespace) -> str:
    """Markdown: reference accuracy mean +- sd over seeds and FLOPs, per budget and row; then each searched
    row against the best hand-designed baseline of its budget, paired by seed (95% t-interval)."""
    by_seed: dict[tuple[float, str, str], dict[int, float]] = {}
    for r in cache.read_rows(args.out / "results.csv"):
        if not r["error"]:
            name, budget, _, flops = r["arch_id"].split("|")
            by_seed.setdefault((float(budget), name, flops), {})[int(r["seed"])] = float(r["score"])
    lines = ["| budget | architecture | reference accuracy, mean +- sd | seeds | GFLOPs |", "|---|---|---|---|---|"]
    for (budget, name, flops), seeds in sorted(by_seed.items()):
        scores = list(seeds.values())
        sd = f"{statistics.stdev(scores):.3f}" if len(scores) > 1 else "—"
        mean = statistics.mean(scores)
        lines.append(f"| {budget / 1e9:g}G | {name} | {mean:.3f} +- {sd} | {len(scores)} | {int(flops) / 1e9:.3f} |")
    return "\n".join(lines) + "\n\n" + comparison(by_seed)


def comparison(by_seed: dict[tuple[float, str, str], dict[int, float]]) -> str:
    """Each searched or random pick minus the best baseline (highest mean) of its budget, paired by seed."""
    from vitsearch.search.baselines import FAMILIES  # contenders() names the baseline rows by family

    lines = [
        "| budget | pick | best baseline | difference, mean [95% t-interval] | seeds | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for budget in sorted({b for b, _, _ in by_seed}):
        rows = {name: seeds for (b, name, _), seeds in by_seed.items() if b == budget}
        baselines = {n: s for n, s in rows.items() if n in FAMILIES}
        if not baselines:
            continue
        best = max(baselines, key=lambda n: statistics.mean(baselines[n].values()))
        for name, seeds in sorted(rows.items()):
            if name in FAMILIES:
                continue
            diffs = [seeds[k] - baselines[best][k] for k in sorted(seeds.keys() & baselines[best].keys())]
            if len(diffs) < 2:
                lines.append(f"| {budget / 1e9:g}G | {name} | {best} | — | {len(diffs)} | n/a |")
                continue
            low, high = t_interval(diffs)
            word = "beats it" if low > 0 else "loses to it" if high < 0 else "inconclusive"
            interval = f"{statistics.mean(diffs):+.3f} [{low:+.3f}, {high:+.3f}]"
            lines.append(f"| {budget / 1e9:g}G | {name} | {best} | {interval} | {len(diffs)} | {word} |")
    return "\n".join(lines)


def _arch(text: str):
    from vitsearch.space import ArchConfig

    return ArchConfig.from_dict(json.loads(text))


def _read(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _write(path: Path, rows: list[dict[str, str]]) -> None:
    from vitsearch.space.files import atomic_write_text

    text = io.StringIO()
    writer = csv.DictWriter(text, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


def parse_budget(text: str) -> float:
    from vitsearch.search.budget import parse_flops

    return float(parse_flops(text))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", nargs="+", type=parse_budget, default=[5e8, 1e9, 2e9])
    parser.add_argument("--spaces", nargs="+", default=["full", "stage"])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--shard", type=cache.parse_shard, default=(0, 1), metavar="K/N")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--proxy-set", action="append", default=[], metavar="KEY=VALUE", help="proxy settings")
    parser.add_argument("--reference-set", action="append", default=[], metavar="KEY=VALUE", help="reference settings")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="print the table from the caches and stop")
    args = parser.parse_args(argv)
    if not args.table:
        train(args)
    print(table(args))


if __name__ == "__main__":
    main()
