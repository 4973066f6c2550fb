"""Hand-designed baselines, scored in every run with the search's own evaluator.

The one question a user of a NAS tool asks is "is this better than what I would have built by
hand?". So every ``vitsearch run`` also scores:

- each family (DeiT, PoolFormer, SCHEMEformer) **scaled to the budget**: the member of a grid of
  width and depth multipliers with the most FLOPs within the budget (ties: the depth multiplier
  nearest 1), widths rounded to the family's head dimension or channel quantum;
- the **unscaled presets** that fit the budget (``deit_tiny``, ``poolformer_s12``,
  ``schemeformer_ppaa_s12``, ``psvit_tiny``, ``deit_small``).

Baselines are recorded in the study as study attributes (``baseline:<name>``), not as trials:
they do not count towards ``--trials``, do not teach the sampler and are not on the searched
front. They are scored at the top rung of the run (``search/rungs.py``), the fidelity of the
pick they are held against; a resumed run scores only what is missing or was scored with other
settings.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import pandas as pd

from vitsearch.evaluators.complexity import analytic_flops, analytic_params
from vitsearch.space import ArchConfig, MixerConfig, get_preset
from vitsearch.space.presets import POOL, metaformer, vit

from .describe import describe
from .rungs import RungScore, run_scores

if TYPE_CHECKING:
    import optuna

    from .plan import SearchConfig

ATTR_PREFIX = "baseline:"
PRESETS = ("deit_tiny", "deit_small", "poolformer_s12", "schemeformer_ppaa_s12", "psvit_tiny")
WIDTH_MULTS = (0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 1.75, 2.0)
DEPTH_MULTS = (0.5, 0.75, 1.0, 1.25, 1.5)
METAFORMER_DEPTHS, METAFORMER_WIDTHS = (2, 2, 6, 2), (64, 128, 320, 512)  # PoolFormer-S12's macro design


def _round(value: float, quantum: int) -> int:
    return max(quantum, round(value / quantum) * quantum)


def _deit(width_mult: float, depth_mult: float) -> ArchConfig:
    width = _round(192 * width_mult, 64)  # head dim 64, as DeiT
    return vit(width, max(1, round(12 * depth_mult)), width // 64)


def _metaformer_dims(width_mult: float, depth_mult: float, quantum: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    depths = tuple(max(1, round(d * depth_mult)) for d in METAFORMER_DEPTHS)
    return depths, tuple(_round(w * width_mult, quantum) for w in METAFORMER_WIDTHS)


def _poolformer(width_mult: float, depth_mult: float) -> ArchConfig:
    depths, widths = _metaformer_dims(width_mult, depth_mult, 16)
    return metaformer(depths, widths, (POOL,) * 4)


def _schemeformer(width_mult: float, depth_mult: float) -> ArchConfig:
    depths, widths = _metaformer_dims(width_mult, depth_mult, 32)  # attention head dim 32, as SCHEMEformer
    attention = tuple(MixerConfig(type="attention", heads=w // 32, options=(("qkv_bias", False),)) for w in widths[2:])
    return metaformer(depths, widths, (POOL, POOL, *attention), 8.0, mlp_groups=4, cca=True)


FAMILIES: dict[str, Callable[[float, float], ArchConfig]] = {
    "deit": _deit,
    "poolformer": _poolformer,
    "schemeformer": _schemeformer,
}


def scaled_to_budget(
    family: Callable[[float, float], ArchConfig], budget: int, img_size: int, num_classes: int
) -> ArchConfig | None:
    """The grid member with the most FLOPs within ``budget`` (ties: depth multiplier nearest 1)."""
    best: tuple[int, float] | None = None
    chosen = None
    for wm in WIDTH_MULTS:
        for dm in DEPTH_MULTS:
            arch = family(wm, dm)
            flops = analytic_flops(arch, img_size, num_classes=num_classes)
            key = (flops, -abs(math.log(dm)))
            if flops <= budget and (best is None or key > best):
                best, chosen = key, arch
    return chosen


def budget_baselines(budget: int, img_size: int = 224, num_classes: int = 1000) -> dict[str, ArchConfig]:
    """Name -> architecture of every baseline of a run (one entry per distinct architecture)."""
    found: dict[str, ArchConfig] = {}
    digests: set[str] = set()
    for name in PRESETS:
        arch = get_preset(name)
        if analytic_flops(arch, img_size, num_classes=num_classes) <= budget:
            found[name] = arch
            digests.add(arch.digest())
    for family, build in FAMILIES.items():
        arch = scaled_to_budget(build, budget, img_size, num_classes)
        if arch is not None and arch.digest() not in digests:
            found[f"{family}@{budget / 1e9:g}G"] = arch
            digests.add(arch.digest())
    return found


def record_baselines(config: SearchConfig, study: optuna.Study, found: dict[str, ArchConfig]) -> None:
    """Write each baseline's architecture and costs into ``study`` (no scoring).

    ``found``: name -> architecture, as ``RunPlan.check`` took them from ``budget_baselines``. They are
    scored by the rungs (``search/rungs.py``), at the top rung, like the pick they are held against;
    their scores are read back from there (``baselines_frame``).
    """
    for name, arch in found.items():
        record = {
            "arch": arch.to_dict(),
            "digest": arch.digest(),
            "flops": analytic_flops(arch, config.img_size, config.in_chans, config.num_classes),
            "params": analytic_params(arch, config.img_size, config.in_chans, config.num_classes),
        }
        if study.user_attrs.get(ATTR_PREFIX + name) != record:
            study.set_user_attr(ATTR_PREFIX + name, record)


def baselines_frame(study: optuna.Study, scores: dict[str, dict[int, RungScore]] | None = None) -> pd.DataFrame:
    """One row per baseline: name, state, score at the highest rung it has, FLOPs, params, architecture."""
    scores = run_scores(study) if scores is None else scores
    rows = []
    for key, record in sorted(study.user_attrs.items()):
        if not key.startswith(ATTR_PREFIX):
            continue
        by_rung = scores.get(record["digest"], {})
        score = by_rung[max(by_rung)] if by_rung else None
        rows.append(
            {
                "baseline": key[len(ATTR_PREFIX) :],
                "state": score.state if score else "WAITING",
                "score": score.score if score else None,
                "rung": score.fidelity.rung if score else None,
                "fidelity": score.fidelity.label() if score else "",
                "gflops": record["flops"] / 1e9,
                "flops": record["flops"],
                "params": record["params"],
                "architecture": describe(ArchConfig.from_dict(record["arch"])),
                "seconds": score.seconds if score else None,
                "fail_reason": score.reason if score and score.reason else None,
            }
        )
    columns = [
        "baseline", "state", "score", "rung", "fidelity", "gflops", "flops", "params", "architecture", "seconds",
        "fail_reason",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).sort_values("flops", ignore_index=True)


@dataclasses.dataclass(frozen=True)
class Verdict:
    """How the best found architecture compares with the baselines at equal or lower FLOPs."""

    score: float  # of the best found architecture
    flops: int
    beaten: pd.DataFrame  # baselines with at least its FLOPs and a lower score
    unbeaten: pd.DataFrame  # scored baselines it does not beat
    evaluator: str = ""  # whose scores: a proxy's verdict is not a trained model's

    def line(self) -> str:
        whose = f"{self.evaluator} score" if self.evaluator else "score"
        head = f"best found ({whose} {self.score:.4f}, {self.flops / 1e9:.3f} GFLOPs)"
        if self.beaten.empty and self.unbeaten.empty:
            return f"{head}: no baseline was scored"
        # Scoring above a baseline that needs fewer FLOPs is not a win on the front, but the user asked for the
        # best model within budget: say it, apart from the fair wins.
        outscored = self.unbeaten[self.unbeaten["score"] < self.score]
        also = f"; it also scores above the {len(outscored)} that need fewer FLOPs" if len(outscored) else ""
        if self.beaten.empty:
            top = self.unbeaten.sort_values("score", ascending=False).iloc[0]
            return (
                f"{head} beats none of the {len(self.unbeaten)} hand-designed baselines at equal or lower FLOPs; "
                f"the strongest, {top['baseline']}, scores {top['score']:.4f} at {top['gflops']:.3f} GFLOPs{also}"
            )
        names = ", ".join(f"{r.baseline} ({r.score:.4f} at {r.gflops:.3f} GFLOPs)" for r in self.beaten.itertuples())
        return f"{head} beats {len(self.beaten)} of {len(self.beaten) + len(self.unbeaten)} baselines: {names}{also}"


def verdict(baselines: pd.DataFrame, score: float, flops: int, evaluator: str = "", rung: int | None = None) -> Verdict:
    """Beaten: a baseline that needs at least ``flops`` and scores less than ``score``, at the same rung."""
    scored = baselines[baselines["state"] == "COMPLETE"]
    if rung is not None:
        scored = scored[scored["rung"] == rung]
    beaten = scored[(scored["flops"] >= flops) & (scored["score"] < score)]
    return Verdict(score, flops, beaten, scored.drop(index=beaten.index), evaluator)
