"""From a study to tables: trials, the Pareto front within budget, the best architecture."""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd

from vitsearch.space import ArchConfig

COLUMNS = ["trial", "state", "score", "gflops", "flops", "params", "within_budget", "digest", "architecture", "seconds"]


def describe(arch: ArchConfig) -> str:
    """The architecture in words: ``4x192 attention(3h) r4 | 2x384 pool r4 ... [patch16, cls, learned]``."""
    parts = []
    for stage in arch.stages:
        runs: list[tuple[str, int]] = []
        for block in stage.blocks:
            word = block.mixer.type
            if block.mixer.heads:
                word += f"({block.mixer.heads}h{'/shared' if block.share_attention else ''})"
            word += f" r{block.mlp_ratio:g}" + (f"/g{block.mlp_groups}" if block.mlp_groups > 1 else "")
            word += " +cca" if block.cca else ""
            if runs and runs[-1][0] == word:
                runs[-1] = (word, runs[-1][1] + 1)
            else:
                runs.append((word, 1))
        entry = "" if stage.downsample == "none" else f"{stage.downsample}-> "
        parts.append(entry + f"w{stage.width}: " + ", ".join(f"{n}x {w}" for w, n in runs))
    return " | ".join(parts) + f" [{arch.stem.type}{arch.stem.patch_size}, {arch.head}, {arch.position}]"


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial with the architecture, its complexity and its score."""
    rows: list[dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        record, result = t.user_attrs.get("record"), t.user_attrs.get("result", {})
        if record is None:
            continue
        arch = ArchConfig.from_dict(t.user_attrs["arch"])
        state = t.state.name
        if result.get("over_budget"):
            state = "OVER_BUDGET"
        elif "duplicate_of" in result:
            state = "DUPLICATE"
        elif result.get("unused"):
            state = "UNUSED"  # sampled by a parallel worker after the last slot was taken
        rows.append(
            {
                "trial": t.number,
                "state": state,
                "score": result.get("score"),
                "gflops": record["flops"] / 1e9,
                "flops": record["flops"],
                "params": record["params"],
                "within_budget": max(record["constraint"]) <= 0,
                "digest": record["digest"],
                "architecture": describe(arch),
                "seconds": result.get("seconds"),
                "duplicate_of": result.get("duplicate_of"),
                "fail_reason": result.get("fail_reason"),
                "evaluator": record["evaluator"],
                "latency_ms": record.get("latency_ms"),  # measured only by searches with a latency setting
            }
        )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    return frame


def pareto_frame(trials: pd.DataFrame, objectives: tuple[str, ...] = ("flops",)) -> pd.DataFrame:
    """Non-dominated evaluated trials within budget: higher score, lower ``objectives``."""
    done = trials[(trials["state"] == "COMPLETE") & trials["within_budget"]].copy()
    if done.empty:
        return done
    keep = []
    for i, row in done.iterrows():
        dominated = (
            (done["score"] >= row["score"])
            & (done[list(objectives)] <= row[list(objectives)]).all(axis=1)
            & ((done["score"] > row["score"]) | (done[list(objectives)] < row[list(objectives)]).any(axis=1))
        ).any()
        if not dominated:
            keep.append(i)
    return done.loc[keep].sort_values("flops")


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The most accurate evaluated trial within budget (ties: fewer FLOPs)."""
    candidates = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.user_attrs.get("result", {}).get("evaluated") and max(t.user_attrs["record"]["constraint"]) <= 0
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda t: (t.values[0], -t.user_attrs["record"]["flops"]))


def arch_of(study: optuna.Study, number: int | None = None) -> tuple[ArchConfig, optuna.trial.FrozenTrial]:
    """The architecture of trial ``number`` (default: the best within budget)."""
    from vitsearch.space import ConfigError

    if number is None:
        trial = best_trial(study)
        if trial is None:
            raise ConfigError("--trial", "no evaluated trial within budget yet")
    else:
        trials = [t for t in study.get_trials(deepcopy=False) if t.number == number]
        if not trials or "arch" not in trials[0].user_attrs:
            raise ConfigError("--trial", f"no trial {number} with an architecture in study {study.study_name!r}")
        trial = trials[0]
    return ArchConfig.from_dict(trial.user_attrs["arch"]), trial
