"""The seed papers' claims at small scale: each a pair at equal FLOPs, trained with the reference recipe.

Issue 15, item 5. Each claim is a pair of architectures at equal FLOPs (within ``TOLERANCE`` at the
224-px target profile, ``analytic_flops``; checked, and both printed, before anything trains):
A is the paper's design, B its control, identical in everything the claim does not name.

- ``scheme`` (SCHEME): block-diagonal MLP (G=4 groups) with a larger expansion (E=8) against the
  dense MLP at the same cost (E/G=2), on the SCHEMEformer-style MetaFormer (pool-pool-attention-
  attention, ``search.baselines``' ``schemeformer`` family scaled to ``--budget``). CCA is off on both
  sides, so the pair isolates the MLP. FLOPs are exactly equal: ``2*E*d^2/G`` per token either way.
- ``cca`` (SCHEME): that model with the channel-covariance attention branch on (A, as SCHEMEformer
  trains) and off (B). CCA is dropped at inference, so FLOPs are exactly equal. B is the very
  architecture of ``scheme``'s A: with the same recipe and seed it is trained once and its row copied.
- ``vix`` (ViX): the DeiT body (``deit`` family scaled to ``--budget``) with ViX's conv stem (three
  convs) and RoPE on queries and keys (A), against the linear patch stem and learned positions (B).
  ViX reports these hybrids for its linear-attention models and for ViT; the attention body is the
  common one. The conv stem costs about 1% more at 224 px, but about 26% more at the reference's
  proxy profile (its 32 and 64 hidden channels are not width-scaled): the table's MFLOPs as trained
  column shows it, and a ``reproduced`` here is at that extra training cost.
- ``psvit`` (PSViT): token pooling (2x2, after the first layer and after half the depth, from a
  patch-8 stem) with attention sharing in every second layer after a pooling point (A, the
  ``psvit_tiny`` preset's pattern scaled to ``--budget``), against DeiT of the same width and heads
  with the depth that brings it nearest A's FLOPs (B). PSViT searches where to pool and share; A is
  one hand-picked point of that space, as the preset is.
- ``riformer`` (RIFormer): the PoolFormer body (``poolformer`` family scaled to ``--budget``) with
  RIFormer's identity (affine) token mixer in every block, trained with soft distillation from a
  teacher that has token mixers (A) and without (B): one architecture, so FLOPs are equal. The
  teacher is the PoolFormer of the same shape (pooling mixers), trained first with the same recipe
  at the same seed (its row is ``riformer/teacher``, its weights stay in ``<out>/teachers/``).
  RIFormer distils from a stronger pre-trained teacher and adds module imitation; here the teacher is
  no stronger than what the recipe gives, and module imitation is off by default
  (``--distill-set imitation_weight=W`` turns it on: this codebase scales its three terms with one
  weight, a documented deviation), so the row measures soft distillation from a mixer teacher.

The default budget, 1.3 GFLOPs, is DeiT-Tiny's class: there the ``vix`` pair is DeiT-Tiny with and
without the ViX stem and positions, and the ``psvit`` pair is exactly the ``psvit_tiny`` and
``deit_tiny`` presets (1.209 and 1.258 GFLOPs). Identical trainings are done once per seed and
their row copied: ``cca``'s B is ``scheme``'s A, and ``vix``'s B is ``psvit``'s B (DeiT-Tiny) there.

**The recipe.** Every model trains with the reference recipe (``evaluators.reference``: all 4,500
mnist5k training images, 9 epochs, 1 warm-up epoch then cosine, AdamW 1e-3, x0.25 width, half the
target token grid, no cap) through ``ReferenceEvaluator(data, seed=seed, **--reference-set)``, except
the ``riformer`` pair: the reference evaluator has no teacher, so both its sides (and the teacher) train
through ``vitsearch.search.train`` with the recipe matched field by field (``TrainPath``): the same
architecture as trained by the reference (``ReferenceEvaluator.proxy_arch``: adapted stem, scaled
widths), the same data, image size, subsets and seed (so the same initial weights), epochs, batch,
learning rate, weight decay, warm-up (from ``lr/100``, as the proxy), cosine floor, label smoothing
and grad clipping; mixup, cutmix, EMA and augmentation off, as the reference has none. What differs
from the reference evaluator, equally on both sides: each epoch's data order is drawn from another
seeded stream (same distribution, other draws), the loss-explosion check is the non-finite one only,
and the score is read from ``train``'s report (the last epoch's validation accuracy, as the
reference's). ``tests/studies/test_paper_claims.py`` checks the match: with one batch per epoch (so
the order cannot matter) the two paths give the same per-epoch accuracies.

**The verdict.** Per claim, the paired difference A - B at each seed, its mean and a 95% t-interval
over the seeds (n - 1 degrees of freedom): ``reproduced`` if the interval lies above 0, ``not
reproduced`` below 0, ``inconclusive`` if it holds 0, ``n/a`` with fewer than 2 paired seeds.

Resumable and shareable, as ``studies/fidelity/run_reference.py`` (whose CSV helpers it uses): each
training is one row of ``<out>/results.csv``, written as it finishes, keyed by (architecture,
evaluator settings, claim, side); a rerun skips finished rows, retries a crash and keeps a
deterministic failure (``EvaluationFailed``). Seed-major, so a partial run has every pair at seed 0
first. ``--shard claim`` lets any number of processes share the plan (each takes the next item no
live process holds); ``--shard K/N`` splits it in fixed turns. One ``--out`` per recipe
(``--data``, ``--reference-set``): the table pairs rows by claim, budget and seed only. A process
that runs out of free items waits (polling) for those another live process still holds when it needs
their rows (a copy, a teacher), so when every process has exited the plan is done.

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
import dataclasses
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

from vitsearch.evaluators.base import BaseEvaluator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "fidelity"))
import run_reference as cache  # noqa: E402  (the fidelity study's resumable CSV cache)

OUT = HERE / "paper_claims"
DEFAULT_BUDGET = 1.3e9  # DeiT-Tiny's class (1.258 GFLOPs)
TOLERANCE = 0.05  # |FLOPs(A) / FLOPs(B) - 1| at the target profile
DISTILL = {"distill_weight": 0.5, "distill_temperature": 1.0, "imitation_weight": 0.0}  # train.py's soft KD
POLL_SECONDS = 30.0  # how often a process waits for an item another live process holds


# --- the pairs ---------------------------------------------------------------------------------------


class Pair(NamedTuple):
    claim: str
    a: Any  # ArchConfig: the paper's design
    b: Any  # ArchConfig: its control
    teacher: Any = None  # riformer: the mixer teacher A distils from


class Claim(NamedTuple):
    paper: str
    a_words: str
    b_words: str
    build: Callable[[int], Pair]


def with_blocks(arch, **changes: Any):
    """``arch`` with every block's fields replaced (``mixer=``, ``cca=``...)."""
    stages = tuple(
        dataclasses.replace(s, blocks=tuple(dataclasses.replace(b, **changes) for b in s.blocks)) for s in arch.stages
    )
    return arch.replace(stages=stages)


def dense(arch):
    """Every block-diagonal MLP (``E``, ``G``) as the dense MLP of the same cost: ratio ``E / G``, one group."""
    stages = []
    for stage in arch.stages:
        blocks = []
        for b in stage.blocks:
            ratio = b.mlp_ratio / b.mlp_groups
            if int(stage.width * b.mlp_ratio) != int(stage.width * ratio) * b.mlp_groups:
                raise ValueError(f"width {stage.width}: r{b.mlp_ratio:g}/g{b.mlp_groups} has no dense twin")
            blocks.append(dataclasses.replace(b, mlp_ratio=ratio, mlp_groups=1))
        stages.append(dataclasses.replace(stage, blocks=tuple(blocks)))
    return arch.replace(stages=tuple(stages))


def scaled(family: Callable[[float, float], Any], budget: int):
    from vitsearch.search.baselines import scaled_to_budget

    arch = scaled_to_budget(family, budget, 224, 1000)
    if arch is None:
        raise ValueError(f"budget {budget / 1e9:g} GFLOPs: no member of the family fits; raise --budget")
    return arch


def psvit(width_mult: float, depth_mult: float):
    """The ``psvit_tiny`` pattern at other sizes: patch 8, 2x2 mean pooling after the first layer and after
    ``1 + 5 d`` layers (depths 1, 5d, 6d), sharing in every second layer after a pooling point; head dim 64."""
    from vitsearch.space import BlockConfig, MixerConfig, StageConfig, StemConfig
    from vitsearch.space.config import ArchConfig

    width = max(64, round(192 * width_mult / 64) * 64)
    attn = MixerConfig(type="attention", heads=width // 64)
    depths = (1, max(1, round(5 * depth_mult)), max(1, round(6 * depth_mult)))
    stages = tuple(
        StageConfig(
            width=width,
            blocks=tuple(BlockConfig(mixer=attn, share_attention=si > 0 and bi % 2 == 1) for bi in range(depth)),
            downsample="none" if si == 0 else "mean",
        )
        for si, depth in enumerate(depths)
    )
    return ArchConfig(stages=stages, stem=StemConfig(type="patch", patch_size=8))


def deit_near(width: int, heads: int, flops: int):
    """DeiT of this width and heads with the depth whose FLOPs are nearest ``flops``."""
    from vitsearch.evaluators.complexity import analytic_flops
    from vitsearch.space.presets import vit

    return min((vit(width, depth, heads) for depth in range(1, 49)), key=lambda a: abs(analytic_flops(a) - flops))


def scheme_base(budget: int):
    from vitsearch.search.baselines import FAMILIES

    return scaled(FAMILIES["schemeformer"], budget)  # E=8, G=4, CCA on: SCHEMEformer as trained


def scheme_pair(budget: int) -> Pair:
    a = with_blocks(scheme_base(budget), cca=False)
    return Pair("scheme", a, dense(a))


def cca_pair(budget: int) -> Pair:
    a = scheme_base(budget)
    return Pair("cca", a, with_blocks(a, cca=False))


def vix_pair(budget: int) -> Pair:
    from vitsearch.search.baselines import FAMILIES

    def vix(width_mult: float, depth_mult: float):
        arch = FAMILIES["deit"](width_mult, depth_mult)
        return arch.replace(stem=dataclasses.replace(arch.stem, type="conv"), position="rope")

    a = scaled(vix, budget)
    return Pair("vix", a, a.replace(stem=dataclasses.replace(a.stem, type="patch"), position="learned"))


def psvit_pair(budget: int) -> Pair:
    a = scaled(psvit, budget)
    width, heads = a.stages[0].width, a.stages[0].blocks[0].mixer.heads
    from vitsearch.evaluators.complexity import analytic_flops

    return Pair("psvit", a, deit_near(width, heads, analytic_flops(a)))


def riformer_pair(budget: int) -> Pair:
    from vitsearch.search.baselines import FAMILIES
    from vitsearch.space import MixerConfig

    teacher = scaled(FAMILIES["poolformer"], budget)
    student = with_blocks(teacher, mixer=MixerConfig(type="identity"))
    return Pair("riformer", student, student, teacher)


CLAIMS: dict[str, Claim] = {
    "scheme": Claim("SCHEME", "block-diagonal MLP r8/g4", "dense MLP r2", scheme_pair),
    "cca": Claim("SCHEME", "BD-MLP + CCA", "BD-MLP, no CCA", cca_pair),
    "vix": Claim("ViX", "conv stem + RoPE", "patch stem + learned positions", vix_pair),
    "psvit": Claim("PSViT", "token pooling + attention sharing", "DeiT", psvit_pair),
    "riformer": Claim(
        "RIFormer", "identity mixer, distilled from a pool-mixer teacher", "same, no teacher", riformer_pair
    ),
}


def build_pairs(claims: list[str], budget: int, quiet: bool = False) -> list[Pair]:
    """The pairs of ``claims`` at ``budget``; raises ``AssertionError`` if a pair is not at equal FLOPs."""
    from vitsearch.evaluators.complexity import analytic_flops
    from vitsearch.search.describe import describe

    out = []
    for name in claims:
        try:
            pair = CLAIMS[name].build(int(budget))
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
        fa, fb = analytic_flops(pair.a), analytic_flops(pair.b)
        if not quiet:
            print(f"{name}: A {fa / 1e9:.4f} GFLOPs  {describe(pair.a)}", flush=True)
            print(f"{name}: B {fb / 1e9:.4f} GFLOPs  {describe(pair.b)}", flush=True)
            if pair.teacher is not None:
                ft = analytic_flops(pair.teacher)
                print(f"{name}: teacher {ft / 1e9:.4f} GFLOPs  {describe(pair.teacher)}", flush=True)
        if abs(fa / fb - 1) > TOLERANCE:
            raise AssertionError(
                f"{name} at {budget / 1e9:g}G: A has {fa} FLOPs, B {fb}: more than {TOLERANCE:.0%} apart"
            )
        out.append(pair)
    return out


# --- the riformer pair's trainer: the reference recipe through vitsearch.search.train -----------------


class TrainPath(BaseEvaluator):
    """The reference recipe of ``reference`` run through ``vitsearch.search.train`` (which has a teacher).

    Args:
        reference: the ``ReferenceEvaluator`` whose recipe, data, seed and device to match.
        teacher_weights: the teacher's ``model.safetensors``; ``None`` trains without one.
        teacher_key: what identifies the teacher (its row's evaluator key), recorded in ``settings``.
        distill: ``TrainRecipe``'s distillation fields, used with a teacher.
        keep: a folder to train in and keep (the teacher's); default a temporary one.
    """

    name: ClassVar[str] = "reference-train"

    def __init__(
        self,
        reference: Any,
        teacher_weights: Path | None = None,
        teacher_key: str | None = None,
        distill: dict[str, Any] | None = None,
        keep: Path | None = None,
    ):
        if reference.profile.max_seconds is not None:
            raise ValueError("riformer: vitsearch train has no wall-clock cap; the reference recipe must be uncapped")
        self.reference, self.teacher_weights, self.teacher_key = reference, teacher_weights, teacher_key
        self.distill = dict(distill or DISTILL) if teacher_weights is not None else None
        self.keep = keep
        self.profile, self.precision, self.device = reference.profile, reference.precision, reference.device

    def settings(self) -> dict[str, Any]:
        out = {**self.reference.settings(), "trainer": "vitsearch.search.train"}
        if self.distill is not None:
            out.update(teacher=self.teacher_key, distill=self.distill)
        return out

    def recipe(self):
        from vitsearch.search.train import TrainRecipe

        p = self.profile
        return TrainRecipe(
            epochs=p.epochs,
            batch_size=p.batch_size,
            lr=p.lr,
            weight_decay=p.weight_decay,
            warmup_epochs=p.warmup_epochs,
            warmup_lr=p.lr * 0.01,  # the proxy's warm-up start
            min_lr=p.min_lr,
            label_smoothing=p.label_smoothing,
            mixup=0.0,
            cutmix=0.0,
            ema_decay=None,
            grad_clip=p.grad_clip,
            train_subset=p.train_subset,
            val_subset=p.val_subset,
            augment=False,
            auto_augment=None,
            re_prob=0.0,
            seed=p.seed,
            **(self.distill or {"distill_weight": 0.0}),
        )

    def evaluate(self, arch: Any, trial: Any = None) -> dict[str, float]:
        from vitsearch.evaluators.reference import EPOCH_KEY
        from vitsearch.search.train import TrainJob, train

        proxy = self.reference.proxy_arch(arch)  # the architecture the reference trains
        _, info = self.reference.tensors()
        with tempfile.TemporaryDirectory(prefix="paper-claims-") as tmp:
            job = TrainJob(
                arch=proxy,
                out=self.keep or Path(tmp),
                data=self.reference.data,
                img_size=self.profile.img_size or info.img_size,
                recipe=self.recipe(),
                teacher_weights=self.teacher_weights,
                resume=True,  # a kept folder (the teacher's) continues a killed run
                threads=self.profile.threads,
                device=str(self.device),
                amp=self.precision.amp,
                workers=0,
            )
            report = train(job)
        history = report["history"]
        return {
            "score": report["val_acc"],
            "val_acc": report["val_acc"],
            "best_val_acc": max(h["val_acc"] for h in history),
            "train_loss": history[-1]["train_loss"],
            "epochs_done": float(len(history)),
            "capped": 0.0,
            "params": float(report["params"]),
            "proxy_patch_size": float(proxy.stem.patch_size),
            "proxy_width0": float(proxy.stages[0].width),
            "seconds": report["seconds"],
            **{f"{EPOCH_KEY}{k}": h["val_acc"] for k, h in enumerate(history, start=1)},
        }


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
    overrides = cache.parse_sets(args.reference_set)
    distill = {**DISTILL, **cache.parse_sets(args.distill_set)}
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
            trainer = TrainPath(ref)
            key = trainer.cache_key(pair.teacher)  # settings do not name the folder
            trainer.keep = folder = args.out / "teachers" / key
            teacher = Item(seed, pair.claim, "teacher", pair.teacher, trainer, args.budget)
            student = TrainPath(ref, folder / "model.safetensors", key, distill)
            items += [
                teacher,
                Item(seed, pair.claim, "B", pair.b, TrainPath(ref), args.budget),
                Item(seed, pair.claim, "A", pair.a, student, args.budget, needs=teacher),
            ]
    return items


class Runner:
    """Train (or copy, or wait for) each item; rows go to ``<out>/results.csv``."""

    def __init__(self, args: argparse.Namespace):
        self.path = args.out / "results.csv"
        self.threads = args.threads
        self.crashed: set[str] = set()  # crashed in this process: retried by a rerun, not now

    def rows(self) -> dict[str, dict[str, str]]:
        return {r["key"]: r for r in cache.read_rows(self.path)}

    def ready(self, item: Item, rows: dict[str, dict[str, str]]) -> bool:
        row = rows.get(item.key)
        if row is None:
            return False
        if item.side == "teacher" and not row["error"]:  # its weights must be there too
            return (item.evaluator.keep / "model.safetensors").exists()
        return True

    def attempt(self, item: Item) -> str:
        """``done`` (a row exists now), ``blocked`` (another live process holds it) or ``crashed``."""
        from vitsearch.evaluators.base import EvaluationFailed

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
        with cache.claim(self.path, item.ev_key) as mine:  # by architecture and settings: one training each
            if not mine:
                return "blocked"
            rows = self.rows()
            if self.ready(item, rows):
                return "done"
            twin = next((r for k, r in rows.items() if k.startswith(f"{item.ev_key}:")), None)
            if twin is not None and item.side != "teacher":  # trained for another claim: the same experiment
                self.copy(item, twin)
                return "done"
            outcome = cache.evaluate(item.evaluator, item.arch, item.key, EvaluationFailed)
            if outcome is None:  # an unexpected error is logged, not cached: a rerun retries it
                self.crashed.add(item.key)
                return "crashed"
            self.write(item, outcome)
        return "done"

    def write(self, item: Item, outcome: dict[str, Any]) -> None:
        record = cache.record(item.evaluator, self._row(item), item.label, item.seed, self.threads, outcome)
        cache.add_row(self.path, record)
        score = record["score"] if record["score"] != "" else record["error"]
        print(f"{item.label} seed {item.seed}: {score} in {outcome['seconds']:.0f} s", flush=True)

    def copy(self, item: Item, twin: dict[str, str]) -> None:
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        row = {**twin, **self._row(item), "key": item.key, "label": item.label, "finished": now}
        cache.add_row(self.path, row)
        print(f"{item.label} seed {item.seed}: {row['score'] or row['error']} (row of {twin['label']})", flush=True)

    @staticmethod
    def _row(item: Item) -> dict[str, str]:
        return {"arch_id": item.arch_id(), "digest": item.arch.digest()}


def train(args: argparse.Namespace) -> None:
    """Every item of this shard; items another live process holds are waited for at the end."""
    import torch

    torch.set_num_threads(args.threads)
    shard, shards = args.shard
    items = [it for i, it in enumerate(plan(args)) if not shards or i % shards == shard]
    runner = Runner(args)
    pending = items
    while pending:
        left = [item for item in pending if runner.attempt(item) == "blocked"]
        if len(left) == len(pending) and left:
            time.sleep(args.poll)  # everything left is another process's training, still running
        pending = left


# --- the table -----------------------------------------------------------------------------------------


def t_quantile(df: int) -> float:
    """The two-sided 95% quantile of Student's t with ``df`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(0.975, df))


def t_interval(diffs: list[float]) -> tuple[float, float]:
    """``(low, high)``: the 95% t-interval of the mean of paired differences (at least 2)."""
    mean = statistics.mean(diffs)
    half = t_quantile(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return mean - half, mean + half


def verdict(diffs: list[float]) -> tuple[str, float | None, float | None]:
    """``(verdict, low, high)`` of the 95% t-interval of the mean paired difference A - B."""
    if len(diffs) < 2:
        return "n/a", None, None
    low, high = t_interval(diffs)
    if low > 0:
        return "reproduced", low, high
    if high < 0:
        return "not reproduced", low, high
    return "inconclusive", low, high


def _mean_sd(values: list[float]) -> str:
    if not values:
        return "—"
    sd = f"{statistics.stdev(values):.3f}" if len(values) > 1 else "—"
    return f"{statistics.mean(values):.3f} +- {sd} (n={len(values)})"


def table(args: argparse.Namespace) -> str:
    """Markdown: per claim and budget, A and B over seeds, their FLOPs, the paired differences, the verdict."""
    cells: dict[tuple[float, str], dict[str, Any]] = {}
    notes = []
    for r in cache.read_rows(args.out / "results.csv"):
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
        word, low, high = verdict(diffs)
        mean = f"{statistics.mean(diffs):+.3f}" if diffs else "—"
        interval = f" [{low:+.3f}, {high:+.3f}]" if low is not None else ""
        per_seed = ", ".join(f"{s}: {d:+.3f}" for s, d in zip(seeds, diffs, strict=True)) or "—"
        fa, fb = cell["flops"].get("A"), cell["flops"].get("B")
        gflops = f"{fa[0] / 1e9:.3f} / {fb[0] / 1e9:.3f}" if fa and fb else "—"
        mflops = f"{fa[1] / 1e6:.1f} / {fb[1] / 1e6:.1f}" if fa and fb else "—"
        name = f"{claim} ({info.paper}, {budget / 1e9:g}G)" if info else f"{claim} ({budget / 1e9:g}G)"
        words = (info.a_words, info.b_words) if info else ("A", "B")
        lines.append(
            f"| {name} | {words[0]} | {words[1]} | {gflops} | {mflops} | {_mean_sd(list(a.values()))} "
            f"| {_mean_sd(list(b.values()))} | {per_seed} | {mean}{interval} | {word} |"
        )
        teacher = cell["scores"].get("teacher")
        if teacher:
            notes.insert(0, f"- {claim} teacher at {budget / 1e9:g}G: {_mean_sd(list(teacher.values()))}")
    return "\n".join(lines + ([""] + notes if notes else []))


# --- the command line ----------------------------------------------------------------------------------


def parse_budget(text: str) -> float:
    from vitsearch.search.budget import parse_flops

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
        type=cache.parse_shard,
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
