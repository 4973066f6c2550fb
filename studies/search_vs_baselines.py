"""Does the default search beat hand design once trained? Independent searches against the best baseline.

At each budget, ``vitsearch run``'s default (the shipped space fitted to the budget, the proxy at
rung 0, successive halving to the top rung: exactly the command a user runs, started as a
subprocess with ``--no-baselines``) runs at ``--search-seeds`` independent seeds. Beside each
search, a random search gets the same compute: architectures drawn uniformly from the same
fitted space within budget, each trained at the top rung's fidelity, until their optimizer
steps reach the search's total. Each pick (the best within budget at the top rung) is trained
with the reference recipe (``evaluators.reference``) at ``--train-seeds``; so is every
hand-designed family scaled to the budget (``search.baselines``: DeiT, PoolFormer,
SCHEMEformer). The verdicts pair each pick with the best baseline of its budget (highest mean
reference accuracy) at the same training seed: search seeds x training seeds pairs, a 95%
t-interval of the mean difference (``evaluators.paired``), and ``beats`` / ``inconclusive`` /
``loses``. The search is also paired with the random search of the same seed.

Resumable and shareable (``evaluators.csv_cache``): each search keeps its Optuna journal in
``journals/`` (a rerun continues it), each random evaluation is a row of ``random.csv``, each
pick a row of ``picks.csv``, each reference training a row of ``results.csv``, written as it
finishes. The work is one item per (budget, search seed); processes started with
``--shard claim`` take the next free item, so two cores run two items.

    OMP_NUM_THREADS=1 nice .venv/bin/python studies/search_vs_baselines.py &
    OMP_NUM_THREADS=1 nice .venv/bin/python studies/search_vs_baselines.py &
    .venv/bin/python studies/search_vs_baselines.py --table   # verdicts.csv and the tables, from the caches
    .venv/bin/python studies/search_vs_baselines.py --table --train-seeds 0 1 --verdicts verdicts-2-seeds.csv
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vitsearch.evaluators.csv_cache import CsvCache, claim, mine, parse_shard
from vitsearch.evaluators.paired import PairedVerdict, mean_sd
from vitsearch.evaluators.result_rows import ResultRows, now, result_row, timed_evaluate
from vitsearch.search.budget import parse_flops
from vitsearch.search.cli.options import parse_settings
from vitsearch.search.comparison import fitted_space, random_draws, scaled_families, search_spend, top_rung_evaluator

HERE = Path(__file__).resolve().parent
OUT = HERE / "search_vs_baselines"
SPACE = "full"
# One reference training per row of results.csv: the package's ResultRows (the fidelity study's columns).
PICK_COLUMNS = [
    "key", "budget", "method", "search_seed", "digest", "flops", "score", "fidelity", "steps", "evaluations",
    "seconds", "arch", "finished",
]  # fmt: skip
RANDOM_COLUMNS = ["key", "budget", "search_seed", "index", "digest", "flops", "score", "steps", "seconds", "error"]
RANDOM_COLUMNS += ["arch", "finished"]
METHODS = ("search", "random")
VERDICT_COLUMNS = ["budget", "method", "baseline", "mean_diff", "low", "high", "n_pairs", "verdict"]


def gflops(budget: float) -> str:
    return f"{budget / 1e9:g}G"


# --- the default search, as a user runs it ------------------------------------------------------------------


def search_pick(args: argparse.Namespace, budget: float, seed: int) -> dict[str, str]:
    """Run (or resume) ``vitsearch run`` at ``budget`` and ``seed``; its pick and total optimizer steps."""
    picks = CsvCache(args.out / "picks.csv", PICK_COLUMNS)
    key = f"search:{gflops(budget)}:{seed}"
    if key in picks.by_key():
        return picks.by_key()[key]
    name = f"{SPACE}-{gflops(budget)}-s{seed}"
    journal = args.out / "journals" / f"{name}.journal"
    journal.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "vitsearch.search.cli", "run", "--budget", str(int(budget)), "--seed", str(seed),
        "--no-baselines", "--storage", f"journal:{journal}", "--study", name, "--out", str(args.out / "runs" / name),
        *(["--data", args.data] if args.data else []),
        *(["--trials", str(args.trials)] if args.trials else []),
        *(f"--set={pair}" for pair in args.proxy_set),
    ]  # fmt: skip
    print(f"search {name}: {' '.join(command[1:])}", flush=True)
    started = datetime.now(timezone.utc)
    subprocess.run(command, check=True)
    import optuna

    from vitsearch.search.results import RunResults
    from vitsearch.search.rungs import run_scores
    from vitsearch.search.workers import open_storage

    study = optuna.load_study(study_name=name, storage=open_storage(f"journal:{journal}"))
    results = RunResults.of(study)
    row = results.best_row
    if row is None:
        raise RuntimeError(f"{name}: no evaluated architecture within budget")
    steps, evaluations = search_spend(run_scores(study))
    arch = results.best.user_attrs["arch"]
    record = {
        "key": key, "budget": budget, "method": "search", "search_seed": seed, "digest": row["digest"],
        "flops": int(row["flops"]), "score": f"{row['score']:.4f}", "fidelity": row["fidelity"], "steps": steps,
        "evaluations": "/".join(map(str, evaluations)),
        "seconds": f"{(datetime.now(timezone.utc) - started).total_seconds():.0f}",
        "arch": json.dumps(arch, sort_keys=True), "finished": now(),
    }  # fmt: skip
    picks.add(record)
    print(f"search {name}: pick {row['digest']} {row['flops'] / 1e9:.3f} GFLOPs, {row['score']:.3f} "
          f"({row['fidelity']}); {steps} steps over evaluations {record['evaluations']}", flush=True)  # fmt: skip
    return {k: str(v) for k, v in record.items()}


# --- random search at the same compute ----------------------------------------------------------------------


def random_pick(args: argparse.Namespace, budget: float, seed: int, steps_allowed: int) -> dict[str, str]:
    """Random architectures at the top rung until their steps reach the search's; the best of them."""
    import time

    picks = CsvCache(args.out / "picks.csv", PICK_COLUMNS)
    key = f"random:{gflops(budget)}:{seed}"
    if key in picks.by_key():
        return picks.by_key()[key]
    cache = CsvCache(args.out / "random.csv", RANDOM_COLUMNS)
    evaluator = top_rung_evaluator(args.data, parse_settings(args.proxy_set))
    done, spent, index = cache.by_key(), 0, 0
    draws = random_draws(fitted_space(SPACE, budget), budget, seed)
    while spent < steps_allowed:
        arch, flops = next(draws)
        row_key = f"{gflops(budget)}:{seed}:{index}"
        if row_key not in done:
            started = time.monotonic()
            row = {"key": row_key, "budget": budget, "search_seed": seed, "index": index, "digest": arch.digest(),
                   "flops": flops, "score": "", "steps": 0, "error": "", "arch": json.dumps(arch.to_dict()),
                   "finished": ""}  # fmt: skip
            try:
                result = evaluator.evaluate(arch)
                row.update(score=f"{result['score']:.4f}", steps=int(result.get("steps", 0)))
            except Exception as err:  # noqa: BLE001 - a failed draw costs what it trained, as in the search
                row["error"] = str(err).splitlines()[0] if str(err) else type(err).__name__
            row.update(seconds=f"{time.monotonic() - started:.1f}", finished=now())
            cache.add(row)
            done[row_key] = {k: str(v) for k, v in row.items()}
            print(f"random {gflops(budget)} s{seed} #{index}: {row['score'] or row['error']} "
                  f"{flops / 1e9:.3f} GFLOPs, {row['steps']} steps", flush=True)  # fmt: skip
        spent += int(done[row_key]["steps"] or 0)
        index += 1
    rows = [done[f"{gflops(budget)}:{seed}:{i}"] for i in range(index)]
    scored = [r for r in rows if r["score"]]
    best = max(scored, key=lambda r: (float(r["score"]), -int(r["flops"])))
    record = {
        "key": key, "budget": budget, "method": "random", "search_seed": seed, "digest": best["digest"],
        "flops": best["flops"], "score": best["score"], "fidelity": f"{evaluator.name} top rung",
        "steps": spent, "evaluations": str(len(rows)),
        "seconds": f"{sum(float(r['seconds']) for r in rows):.0f}", "arch": best["arch"], "finished": now(),
    }  # fmt: skip
    picks.add(record)
    return {k: str(v) for k, v in record.items()}


# --- reference trainings ------------------------------------------------------------------------------------


def train(args: argparse.Namespace, name: str, budget: float, space: str, arch, seed: int) -> dict[str, str] | None:
    """The reference recipe on ``arch`` at ``seed`` (cached in results.csv; rows of the same architecture and
    seed under another name are copied, not retrained)."""
    from vitsearch.evaluators.complexity import analytic_flops
    from vitsearch.evaluators.reference import ReferenceEvaluator

    results = ResultRows(args.out / "results.csv")
    settings = {**parse_settings(args.reference_set), "seed": seed}
    evaluator = ReferenceEvaluator(args.data or "mnist5k", device=args.device, **settings)
    arch_key = evaluator.cache_key(arch)
    key = f"{arch_key}:{name}@{budget:g}"
    done = results.by_key()
    if key in done:
        return done[key]
    flops = analytic_flops(arch)
    row = {"key": key, "arch_id": f"{name}|{budget:g}|{space}|{flops}", "digest": arch.digest(), "label": name}
    twin = results.twin(arch_key, done, succeeded=True)
    if twin is not None:
        record = {**twin, **row, "finished": now()}
    else:  # every error is recorded (one thread, as OMP_NUM_THREADS): the verdict skips it
        record = result_row(evaluator, row, name, seed, 1, timed_evaluate(evaluator, arch, key, (Exception,)))
    results.add(record)
    source = f" (row of {twin['label']})" if twin is not None else f" in {float(record['seconds']):.0f} s"
    print(f"reference {name} at {gflops(budget)} seed {seed}: {record['score'] or record['error']}{source}", flush=True)
    return {k: str(v) for k, v in record.items()}


def pick_name(method: str, seed: int) -> str:
    return f"{method} s{seed}"


def run_item(args: argparse.Namespace, budget: float, seed: int) -> None:
    """One (budget, search seed): the search, the random search at its compute, both picks at every seed."""
    from vitsearch.space import ArchConfig

    searched = search_pick(args, budget, seed)
    randomised = random_pick(args, budget, seed, int(searched["steps"]))
    for train_seed in args.train_seeds:
        for pick in (searched, randomised):
            arch = ArchConfig.from_dict(json.loads(pick["arch"]))
            train(args, pick_name(pick["method"], seed), budget, SPACE, arch, train_seed)


def run_baselines(args: argparse.Namespace, budget: float) -> None:
    for train_seed in args.train_seeds:
        for family, arch in scaled_families(budget).items():
            train(args, family, budget, "-", arch, train_seed)


def run(args: argparse.Namespace) -> None:
    items = [("baselines", b, None) for b in args.budgets]
    items += [("pair", b, s) for b in args.budgets for s in args.search_seeds]
    for index, (kind, budget, seed) in enumerate(items):
        if not mine(index, args.shard):
            continue
        with claim(args.out / ".claims", f"{kind}:{budget:g}:{seed}") as taken:
            if not taken:
                continue
            if kind == "baselines":
                run_baselines(args, budget)
            else:
                run_item(args, budget, seed)


# --- verdicts -----------------------------------------------------------------------------------------------


def finished_trainings(args: argparse.Namespace) -> Iterator[tuple[float, str, dict[str, str]]]:
    """``(budget, row name, row)`` of every reference training in ``results.csv`` that did not fail."""
    for r in ResultRows(args.out / "results.csv").rows():
        if not r["error"]:
            name, budget, _, _ = r["arch_id"].split("|")
            yield float(budget), name, r


def reference_scores(args: argparse.Namespace) -> dict[tuple[float, str], dict[int, float]]:
    """(budget, row name) -> training seed -> reference accuracy."""
    out: dict[tuple[float, str], dict[int, float]] = {}
    for budget, name, r in finished_trainings(args):
        if r["score"]:
            out.setdefault((budget, name), {})[int(r["seed"])] = float(r["score"])
    return out


def curves(args: argparse.Namespace, epochs: tuple[int, ...] = (2, 4, 9)) -> str:
    """Markdown: each row's mean reference accuracy after ``epochs`` (over its cached training seeds)."""
    by: dict[tuple[float, str], list[list[float]]] = {}
    for budget, name, r in finished_trainings(args):
        current = " (" not in name and not name.startswith("uniform")  # the current default's rows, the baselines
        if r["curve"] and current:
            by.setdefault((budget, name), []).append([float(v) for v in r["curve"].split()])
    lines = ["| budget | row | seeds | " + " | ".join(f"epoch {e}" for e in epochs) + " |"]
    lines.append("|---|---|---|" + "---|" * len(epochs))
    for (budget, name), runs in sorted(by.items(), key=lambda item: (-item[0][0], item[0][1])):
        means = " | ".join(f"{statistics.mean(c[e - 1] for c in runs):.3f}" for e in epochs)
        lines.append(f"| {gflops(budget)} | {name} | {len(runs)} | {means} |")
    return "\n".join(lines)


def paired_diffs(
    args: argparse.Namespace, mine: dict[int, dict[int, float]], other: dict[int, dict[int, float]]
) -> list[float]:
    """``mine[s][t] - other[s][t]`` over search seeds ``s`` and training seeds ``t`` where both exist."""
    out = []
    for s in args.search_seeds:
        a, b = mine.get(s, {}), other.get(s, {})
        out += [a[t] - b[t] for t in args.train_seeds if t in a and t in b]
    return out


def verdicts(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each method's picks against the best baseline of the budget (and the search against random), by seed."""
    scores = reference_scores(args)
    rows = []
    for budget in args.budgets:
        families = {n: s for (b, n), s in scores.items() if b == budget and n in scaled_families(budget)}
        if not families:
            continue
        best = max(families, key=lambda n: statistics.mean(families[n].values()))
        picks = {m: {s: scores.get((budget, pick_name(m, s)), {}) for s in args.search_seeds} for m in METHODS}
        baseline = {s: families[best] for s in args.search_seeds}  # one training per seed, paired with every pick
        comparisons = [(m, best, paired_diffs(args, picks[m], baseline)) for m in METHODS]
        comparisons.append(("search", "random", paired_diffs(args, picks["search"], picks["random"])))
        for method, against, found in comparisons:
            v = PairedVerdict.of(found)
            rows.append({"budget": gflops(budget), "method": method, "baseline": against,
                         "mean_diff": _fmt(v.mean_diff), "low": _fmt(v.low), "high": _fmt(v.high),
                         "n_pairs": v.n_pairs, "verdict": v.verdict})  # fmt: skip
    return rows


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def write_verdicts(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    import csv
    import io

    from vitsearch.space.files import atomic_write_text

    text = io.StringIO()
    writer = csv.DictWriter(text, VERDICT_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(args.out / args.verdicts, text.getvalue())


def table(args: argparse.Namespace) -> str:
    """Markdown: the picks (FLOPs, top-rung score, reference accuracy), the baselines, then the verdicts."""
    scores = reference_scores(args)
    picks = CsvCache(args.out / "picks.csv", PICK_COLUMNS).rows()
    lines = [
        "| budget | row | GFLOPs | search score (fidelity) | steps | reference accuracy, mean +- sd (seeds) |",
        "|---|---|---|---|---|---|",
    ]
    for budget in args.budgets:
        for p in sorted((p for p in picks if float(p["budget"]) == budget), key=lambda p: p["key"]):
            name = pick_name(p["method"], int(p["search_seed"]))
            reference = mean_sd(list(scores.get((budget, name), {}).values()))
            lines.append(f"| {gflops(budget)} | {name} | {int(p['flops']) / 1e9:.3f} | {float(p['score']):.3f} "
                         f"({p['fidelity']}) | {p['steps']} | {reference} |")  # fmt: skip
        for family, arch in scaled_families(budget).items():
            from vitsearch.evaluators.complexity import analytic_flops

            lines.append(f"| {gflops(budget)} | {family} | {analytic_flops(arch) / 1e9:.3f} | — | — | "
                         f"{mean_sd(list(scores.get((budget, family), {}).values()))} |")  # fmt: skip
    rows = verdicts(args)
    lines += ["", "| budget | method | against | difference, mean [95% t-interval] | pairs | verdict |"]
    lines.append("|---|---|---|---|---|---|")
    for r in rows:
        v = PairedVerdict(*(float(r[c]) if r[c] else None for c in ("mean_diff", "low", "high")), r["n_pairs"], "")
        lines.append(f"| {r['budget']} | {r['method']} | {r['baseline']} | {v.interval()} | {r['n_pairs']} "
                     f"| {r['verdict']} |")  # fmt: skip
    return "\n".join(lines)


def parse_budget(text: str) -> float:
    return float(parse_flops(text))  # a float, as the caches' budget columns hold it


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", nargs="+", type=parse_budget, default=[2e9, 1e9, 5e8])
    parser.add_argument("--search-seeds", nargs="+", type=int, default=[0, 1, 2])
    # 4 training seeds: 12 pairs resolve about 0.005 (6 pairs, seeds 0 1, about 0.01; docs/results)
    parser.add_argument("--train-seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--shard", type=parse_shard, default=(0, 0), metavar="K/N|claim")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default=None, help="the search's and the reference's data (default mnist5k)")
    parser.add_argument("--trials", type=int, default=None, help="the search's --trials (default: vitsearch run's)")
    parser.add_argument("--proxy-set", action="append", default=[], metavar="KEY=VALUE", help="proxy settings")
    parser.add_argument("--reference-set", action="append", default=[], metavar="KEY=VALUE", help="reference settings")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="write the verdicts, print the tables, and stop")
    parser.add_argument("--verdicts", default="verdicts.csv", help="the verdicts' file name in --out")
    parser.add_argument("--curves", action="store_true", help="print the rows' accuracy after 2, 4, 9 epochs, and stop")
    args = parser.parse_args(argv)
    if args.curves:
        print(curves(args))
        return
    if not args.table:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        run(args)
    write_verdicts(args, verdicts(args))
    print(table(args))


if __name__ == "__main__":
    main()
