"""The seed papers' claims at small scale: each a pair at equal FLOPs, trained with the reference recipe.

Results: docs/results/paper-claims.md. The pairs are ``vitsearch.search.claims``: per claim, A is the
paper's design and B its control, identical in everything the claim does not name, at equal FLOPs (within ``TOLERANCE``
at the 224-px target profile; checked, and both printed, before anything trains):

- ``scheme`` (SCHEME): block-diagonal MLP r8/g4 against the dense MLP r2 of the same cost, CCA off;
- ``cca`` (SCHEME): that model with the channel-covariance attention branch on and off;
- ``vix`` (ViX): DeiT with ViX's conv stem and RoPE against the patch stem and learned positions.
  The conv stem costs about 1% more at 224 px, but about 26% more at the reference's proxy profile
  (its hidden channels are not width-scaled): the table's MFLOPs as trained column shows it, and a
  ``reproduced`` here is at that extra training cost;
- ``psvit`` (PSViT): token pooling with attention sharing against DeiT of the same width and heads;
  PSViT searches where to pool and share, A is one hand-picked point of that space, as the preset is;
- ``riformer`` (RIFormer): PoolFormer with the identity mixer in every block, trained with soft
  distillation from a teacher that has token mixers (A) and without (B). The teacher is the
  PoolFormer of the same shape, trained first with the same recipe at the same seed (its row is
  ``riformer/teacher``, its weights stay in ``<out>/teachers/``). RIFormer distils from a stronger
  pre-trained teacher and adds module imitation; here the teacher is no stronger than what the recipe
  gives, and module imitation is off by default (``--distill-set imitation_weight=W`` turns it on:
  this codebase scales its three terms with one weight, a documented deviation), so the row measures
  soft distillation from a mixer teacher.

The default budget, 1.3 GFLOPs, is DeiT-Tiny's class: there the ``psvit`` pair is exactly the
``psvit_tiny`` and ``deit_tiny`` presets (1.209 and 1.258 GFLOPs). Identical trainings are done once
per seed and their row copied: ``cca``'s B is ``scheme``'s A, and ``vix``'s B is ``psvit``'s B
(DeiT-Tiny) there.

**The recipe.** Every model trains with the reference recipe (``evaluators.reference``: all 4,500
mnist5k training images, 9 epochs, 1 warm-up epoch then cosine, AdamW 1e-3, x0.25 width, half the
target token grid, no cap) through ``ReferenceEvaluator(data, seed=seed, **--reference-set)``, except
the ``riformer`` pair: the reference evaluator has no teacher, so both its sides (and the teacher)
train through ``vitsearch.search.reference_train.ReferenceTrainer``: ``vitsearch.search.train`` with
the recipe matched field by field (its docstring lists what differs, equally on both sides; its test
checks the match).

**The verdict.** Per claim, the paired difference A - B at each seed, its mean and a 95% t-interval
over the seeds (``evaluators.paired``): ``reproduced`` if the interval lies above 0, ``not
reproduced`` below 0, ``inconclusive`` if it holds 0, ``n/a`` with fewer than 2 paired seeds.

Resumable and shareable (``evaluators.result_rows``, the fidelity study's rows): each training is
one row of ``<out>/results.csv``, written as it finishes, keyed by (architecture, evaluator settings,
claim, side); a rerun skips finished rows, retries a crash and keeps a deterministic failure
(``EvaluationFailed``). Seed-major, so a partial run has every pair at seed 0 first. ``--shard
claim`` lets any number of processes share the plan (each takes the next item no live process
holds); ``--shard K/N`` splits it in fixed turns. One ``--out`` per recipe (``--data``,
``--reference-set``): the table pairs rows by claim, budget and seed only. A process that runs out
of free items waits (polling) for those another live process still holds when it needs their rows
(a copy, a teacher), so when every process has exited the plan is done.

Cost at the default budget, from timed training steps on one thread (and DeiT-Tiny's 144 s in the
fidelity study): 9 distinct trainings per seed, about 2,000 CPU-seconds (CCA's MetaFormer the
longest, ~430 s; DeiT-Tiny ~130 s), so about 1.7 CPU-hours for 3 seeds, under an hour on two
free cores.

    OMP_NUM_THREADS=1 nice .venv/bin/python studies/paper_claims.py --shard claim &
    OMP_NUM_THREADS=1 nice .venv/bin/python studies/paper_claims.py --shard claim &
    .venv/bin/python studies/paper_claims.py --table     # the table from the cache, partial or not
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, NamedTuple

from vitsearch.evaluators.csv_cache import mine, parse_shard
from vitsearch.evaluators.paired import PairedVerdict, mean_sd
from vitsearch.evaluators.result_rows import ResultRows, now, result_row, timed_evaluate
from vitsearch.search.budget import parse_flops
from vitsearch.search.claims import CLAIMS, build_pairs
from vitsearch.search.cli.options import parse_settings
from vitsearch.search.reference_train import DISTILL, ReferenceTrainer

HERE = Path(__file__).resolve().parent
OUT = HERE / "paper_claims"
DEFAULT_BUDGET = 1.3e9  # DeiT-Tiny's class (1.258 GFLOPs)
POLL_SECONDS = 30.0  # how often a process waits for an item another live process holds
WORDS = {"beats": "reproduced", "loses": "not reproduced"}  # a paired verdict, as a claim's


# --- the plan and the runs ---------------------------------------------------------------------------


class Item(NamedTuple):
    seed: int
    claim: str
    side: str  # A, B or teacher
    arch: Any
    evaluator: Any
    budget: float
    needs: Item | None = None  # trained first (riformer A: its teacher)

    @property
    def label(self) -> str:
        return f"{self.claim}/{self.side}"

    @property
    def ev_key(self) -> str:
        return self.evaluator.cache_key(self.arch)

    @property
    def key(self) -> str:
        return f"{self.ev_key}:{self.claim}:{self.side}"

    def arch_id(self) -> str:
        from vitsearch.evaluators.complexity import analytic_flops

        ref = getattr(self.evaluator, "reference", self.evaluator)
        _, info = ref.tensors()
        proxy = analytic_flops(ref.proxy_arch(self.arch), info.img_size, info.in_chans, info.num_classes)
        return f"{self.claim}|{self.side}|{self.budget:g}|{analytic_flops(self.arch)}|{proxy}"


def plan(args: argparse.Namespace) -> list[Item]:
    """Every training, seed-major; per seed the claims in order, B before A where A waits on a teacher."""
    from vitsearch.evaluators.reference import ReferenceEvaluator

    pairs = build_pairs(args.claims, args.budget)
    overrides = parse_settings(args.reference_set)
    distill = {**DISTILL, **parse_settings(args.distill_set)}
    if set(distill) != set(DISTILL):
        raise ValueError(f"--distill-set: expected keys among {', '.join(DISTILL)}, got {', '.join(sorted(distill))}")
    items: list[Item] = []
    for seed in args.seeds:
        ref = ReferenceEvaluator(args.data, device=args.device, **{**overrides, "seed": seed})
        for pair in pairs:
            if pair.teacher is None:
                items += [
                    Item(seed, pair.claim, side, arch, ref, args.budget)
                    for side, arch in (("A", pair.a), ("B", pair.b))
                ]
                continue
            trainer = ReferenceTrainer(ref)
            key = trainer.cache_key(pair.teacher)  # settings do not name the folder
            trainer.keep = folder = args.out / "teachers" / key
            teacher = Item(seed, pair.claim, "teacher", pair.teacher, trainer, args.budget)
            student = ReferenceTrainer(ref, folder / "model.safetensors", key, distill)
            items += [
                teacher,
                Item(seed, pair.claim, "B", pair.b, ReferenceTrainer(ref), args.budget),
                Item(seed, pair.claim, "A", pair.a, student, args.budget, needs=teacher),
            ]
    return items


class Runner:
    """Train (or copy, or wait for) each item; rows go to ``<out>/results.csv``."""

    def __init__(self, args: argparse.Namespace):
        self.results = ResultRows(args.out / "results.csv")
        self.threads = args.threads
        self.crashed: set[str] = set()  # crashed in this process: retried by a rerun, not now

    def rows(self) -> dict[str, dict[str, str]]:
        return self.results.by_key()

    def ready(self, item: Item, rows: dict[str, dict[str, str]]) -> bool:
        row = rows.get(item.key)
        if row is None:
            return False
        if item.side == "teacher" and not row["error"]:  # its weights must be there too
            return (item.evaluator.keep / "model.safetensors").exists()
        return True

    def attempt(self, item: Item) -> str:
        """``done`` (a row exists now), ``blocked`` (another live process holds it) or ``crashed``."""
        if item.key in self.crashed:
            return "crashed"
        if self.ready(item, self.rows()):
            return "done"
        if item.needs is not None:
            state = self.attempt(item.needs)
            if state != "done":
                return state
            teacher = self.rows()[item.needs.key]
            if teacher["error"]:  # a deterministic failure of the teacher is A's too
                outcome = {"key": item.key, "error": f"teacher failed: {teacher['error']}", "seconds": 0.0}
                self.write(item, {**outcome, "cpu_seconds": 0.0})
                return "done"
        with self.results.claim(item.ev_key) as mine:  # by architecture and settings: one training each
            if not mine:
                return "blocked"
            rows = self.rows()
            if self.ready(item, rows):
                return "done"
            twin = self.results.twin(item.ev_key, rows)
            if twin is not None and item.side != "teacher":  # trained for another claim: the same experiment
                self.copy(item, twin)
                return "done"
            outcome = timed_evaluate(item.evaluator, item.arch, item.key)
            if outcome is None:  # an unexpected error is logged, not cached: a rerun retries it
                self.crashed.add(item.key)
                return "crashed"
            self.write(item, outcome)
        return "done"

    def write(self, item: Item, outcome: dict[str, Any]) -> None:
        record = result_row(item.evaluator, self._row(item), item.label, item.seed, self.threads, outcome)
        self.results.add(record)
        score = record["score"] if record["score"] != "" else record["error"]
        print(f"{item.label} seed {item.seed}: {score} in {outcome['seconds']:.0f} s", flush=True)

    def copy(self, item: Item, twin: dict[str, str]) -> None:
        row = {**twin, **self._row(item), "key": item.key, "label": item.label, "finished": now()}
        self.results.add(row)
        print(f"{item.label} seed {item.seed}: {row['score'] or row['error']} (row of {twin['label']})", flush=True)

    @staticmethod
    def _row(item: Item) -> dict[str, str]:
        return {"arch_id": item.arch_id(), "digest": item.arch.digest()}


def train(args: argparse.Namespace) -> None:
    """Every item of this shard; items another live process holds are waited for at the end."""
    import torch

    torch.set_num_threads(args.threads)
    items = [it for i, it in enumerate(plan(args)) if mine(i, args.shard)]
    runner = Runner(args)
    pending = items
    while pending:
        left = [item for item in pending if runner.attempt(item) == "blocked"]
        if len(left) == len(pending) and left:
            time.sleep(args.poll)  # everything left is another process's training, still running
        pending = left


# --- the table -----------------------------------------------------------------------------------------


def verdict(v: PairedVerdict) -> str:
    """``reproduced``, ``not reproduced``, ``inconclusive`` or ``n/a``: the claim's reading of A - B."""
    return WORDS.get(v.verdict, v.verdict)


def table(args: argparse.Namespace) -> str:
    """Markdown: per claim and budget, A and B over seeds, their FLOPs, the paired differences, the verdict."""
    cells: dict[tuple[float, str], dict[str, Any]] = {}
    notes = []
    for r in ResultRows(args.out / "results.csv").rows():
        claim, side, budget, flops, proxy = r["arch_id"].split("|")
        cell = cells.setdefault((float(budget), claim), {"flops": {}, "scores": {}})
        cell["flops"][side] = (int(flops), int(proxy))
        if r["error"]:
            notes.append(f"- {claim} {side} at {float(budget) / 1e9:g}G, seed {r['seed']}: failed: {r['error']}")
        else:
            cell["scores"].setdefault(side, {})[int(r["seed"])] = float(r["score"])
    order = {name: i for i, name in enumerate(CLAIMS)}
    head = "| claim | A: the paper's design | B: the control | GFLOPs A / B | MFLOPs as trained A / B "
    head += "| A accuracy | B accuracy | A - B per seed | A - B mean [95% CI] | verdict |"
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    for (budget, claim), cell in sorted(cells.items(), key=lambda kv: (kv[0][0], order.get(kv[0][1], 99))):
        info = CLAIMS.get(claim)
        a, b = cell["scores"].get("A", {}), cell["scores"].get("B", {})
        seeds = sorted(set(a) & set(b))
        diffs = [a[s] - b[s] for s in seeds]
        v = PairedVerdict.of(diffs)
        shown = v.interval() if v.low is not None else f"{v.mean_diff:+.3f}" if diffs else "—"
        per_seed = ", ".join(f"{s}: {d:+.3f}" for s, d in zip(seeds, diffs, strict=True)) or "—"
        fa, fb = cell["flops"].get("A"), cell["flops"].get("B")
        gflops = f"{fa[0] / 1e9:.3f} / {fb[0] / 1e9:.3f}" if fa and fb else "—"
        mflops = f"{fa[1] / 1e6:.1f} / {fb[1] / 1e6:.1f}" if fa and fb else "—"
        name = f"{claim} ({info.paper}, {budget / 1e9:g}G)" if info else f"{claim} ({budget / 1e9:g}G)"
        words = (info.a_words, info.b_words) if info else ("A", "B")
        lines.append(
            f"| {name} | {words[0]} | {words[1]} | {gflops} | {mflops} | {mean_sd(list(a.values()))} "
            f"| {mean_sd(list(b.values()))} | {per_seed} | {shown} | {verdict(v)} |"
        )
        teacher = cell["scores"].get("teacher")
        if teacher:
            notes.insert(0, f"- {claim} teacher at {budget / 1e9:g}G: {mean_sd(list(teacher.values()))}")
    return "\n".join(lines + ([""] + notes if notes else []))


# --- the command line ----------------------------------------------------------------------------------


def parse_budget(text: str) -> float:
    return float(parse_flops(text))


def parse_claims(text: str) -> str:
    if text not in CLAIMS:
        raise argparse.ArgumentTypeError(f"unknown claim {text!r} (choose from {', '.join(CLAIMS)})")
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", nargs="+", type=parse_claims, default=list(CLAIMS), metavar="CLAIM")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budget", type=parse_budget, default=DEFAULT_BUDGET, help="target FLOPs (default 1.3G)")
    parser.add_argument(
        "--shard",
        type=parse_shard,
        default=(0, 1),
        metavar="K/N",
        help="every N-th item from K, or 'claim': any number of processes share the plan",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", default="mnist5k")
    parser.add_argument("--reference-set", action="append", default=[], metavar="KEY=VALUE", help="reference settings")
    parser.add_argument(
        "--distill-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="riformer A: distill_weight, distill_temperature, imitation_weight",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--poll", type=float, default=POLL_SECONDS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--table", action="store_true", help="print the table from the cache and stop")
    args = parser.parse_args(argv)
    if not args.table:
        train(args)
    print(table(args))


if __name__ == "__main__":
    main()
