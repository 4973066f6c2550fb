"""From a study to tables, computed once: the trials table, the Pareto front within budget, the best trial.

``RunResults`` is what ``trials.csv``, ``pareto.csv``, the plots, ``vitsearch show`` and the
summary after a run all read, so the front the plot draws is the front the CSV lists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import optuna
import pandas as pd

from vitsearch.space import ArchConfig

from .baselines import baselines_frame, verdict
from .describe import describe

COLUMNS = ["trial", "state", "score", "gflops", "flops", "params", "within_budget", "digest", "architecture", "seconds"]


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


def objective_columns(study: optuna.Study) -> tuple[str, ...]:
    """The minimised columns of the front: the study's objectives after the score (``flops`` first).

    Studies record them as Optuna metric names; for one from before that, they are read off a
    trial's values (the third is ``params`` when it equals the recorded params, else latency).
    """
    if study.metric_names is not None:
        return tuple(study.metric_names[1:])
    count = len(study.directions)
    if count <= 3:
        extra: tuple[str, ...] = ()
        if count == 3:
            extra = ("params",)
            for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
                record = trial.user_attrs.get("record", {})
                if "params" in record:
                    extra = ("params",) if trial.values[2] == record["params"] else ("latency_ms",)
                    break
        return ("flops", *extra)
    return ("flops", "params", "latency_ms")


@dataclass(frozen=True)
class RunResults:
    """A study read once into the tables every output is made from."""

    study: optuna.Study
    budget: int  # FLOPs at the target profile
    objectives: tuple[str, ...]  # minimised columns of the front (besides the maximised score)
    trials: pd.DataFrame  # one row per sampled trial (results.trials_frame)
    front: pd.DataFrame  # non-dominated evaluated trials within budget, over ``objectives``
    baselines: pd.DataFrame  # hand-designed architectures scored in the study
    best: optuna.trial.FrozenTrial | None  # most accurate within budget

    @classmethod
    def of(cls, study: optuna.Study) -> RunResults:
        objectives = objective_columns(study)
        trials = trials_frame(study)
        front = pareto_frame(trials, objectives)
        budget = study.user_attrs["search"]["budget"]
        return cls(study, budget, objectives, trials, front, baselines_frame(study), best_trial(study))

    @property
    def failures(self) -> pd.DataFrame:
        """The failed trials with their reasons (not the unused samples of parallel workers)."""
        if self.trials.empty or "fail_reason" not in self.trials:
            return self.trials.iloc[0:0]
        return self.trials[self.trials["state"] == "FAIL"]

    def verdict_line(self) -> str | None:
        """How the best found architecture compares with the baselines; None when either is missing."""
        if self.best is None or self.baselines.empty:
            return None
        record = self.best.user_attrs["record"]
        return verdict(self.baselines, self.best.values[0], record["flops"], record.get("evaluator", "")).line()
