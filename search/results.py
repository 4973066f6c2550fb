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
from .rungs import RungScore, run_scores

COLUMNS = [
    "trial", "state", "score", "rung", "fidelity", "gflops", "flops", "params", "within_budget", "digest",
    "architecture", "seconds",
]  # fmt: skip


def _highest(by_rung: dict[int, RungScore]) -> RungScore | None:
    """The score of the highest rung an architecture completed (None: none yet)."""
    done = [s for s in by_rung.values() if s.complete]
    return max(done, key=lambda s: s.fidelity.rung) if done else None


def trials_frame(study: optuna.Study, scores: dict[str, dict[int, RungScore]] | None = None) -> pd.DataFrame:
    """One row per trial: the architecture, its complexity, its score at the highest fidelity it reached.

    ``score`` is at ``rung`` (``fidelity`` says what that rests on); ``score_rung<r>`` has each rung's.
    """
    scores = run_scores(study) if scores is None else scores
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
        by_rung = scores.get(record["digest"], {}) if state == "COMPLETE" else {}
        top = _highest(by_rung)
        rows.append(
            {
                "trial": t.number,
                "state": state,
                "score": top.score if top is not None else result.get("score"),
                "rung": top.fidelity.rung if top is not None else None,
                "fidelity": top.fidelity.label() if top is not None else "",
                **{f"score_rung{r}": by_rung[r].score for r in sorted(by_rung)},
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


def top_rung(trials: pd.DataFrame) -> int | None:
    """The highest rung any evaluated trial within budget reached: where the front and the pick are made."""
    if trials.empty or "rung" not in trials:
        return None
    done = trials[(trials["state"] == "COMPLETE") & trials["within_budget"]]
    return None if done.empty or done["rung"].isna().all() else int(done["rung"].max())


def pareto_frame(trials: pd.DataFrame, objectives: tuple[str, ...] = ("flops",)) -> pd.DataFrame:
    """Non-dominated evaluated trials within budget at the top rung: higher score, lower ``objectives``."""
    done = trials[(trials["state"] == "COMPLETE") & trials["within_budget"]].copy()
    rung = top_rung(trials)
    if rung is not None:  # sizes are compared only at the top rung: lower rungs favour small models
        done = done[done["rung"] == rung].drop_duplicates("digest")
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


def best_trial(
    study: optuna.Study, scores: dict[str, dict[int, RungScore]] | None = None
) -> optuna.trial.FrozenTrial | None:
    """The most accurate evaluated trial within budget at the highest rung reached (ties: fewer FLOPs)."""
    scores = run_scores(study) if scores is None else scores
    candidates = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.user_attrs.get("result", {}).get("evaluated") and max(t.user_attrs["record"]["constraint"]) <= 0:
            top = _highest(scores.get(t.user_attrs["record"]["digest"], {}))
            if top is not None:
                candidates.append((top.fidelity.rung, top.score, -t.user_attrs["record"]["flops"], -t.number, t))
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[:4])[-1]


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
        scores = run_scores(study)
        trials = trials_frame(study, scores)
        front = pareto_frame(trials, objectives)
        budget = study.user_attrs["search"]["budget"]
        best = best_trial(study, scores)
        return cls(study, budget, objectives, trials, front, baselines_frame(study, scores), best)

    @property
    def best_row(self) -> pd.Series | None:
        """The best trial's row of the trials table: its score and fidelity at the top rung."""
        if self.best is None:
            return None
        return self.trials[self.trials["trial"] == self.best.number].iloc[0]

    @property
    def fidelity(self) -> str:
        """What the front's and the pick's scores rest on, e.g. ``proxy rung 2, 1125 steps``."""
        row = self.best_row
        return "" if row is None else str(row["fidelity"])

    @property
    def failures(self) -> pd.DataFrame:
        """The failed trials with their reasons (not the unused samples of parallel workers)."""
        if self.trials.empty or "fail_reason" not in self.trials:
            return self.trials.iloc[0:0]
        return self.trials[self.trials["state"] == "FAIL"]

    def baselines_at(self, rung) -> pd.DataFrame:
        """The baselines scored at ``rung``, the only ones comparable with trials there (all, without rungs)."""
        if rung is None or pd.isna(rung) or "rung" not in self.baselines:
            return self.baselines
        return self.baselines[self.baselines["rung"] == rung]

    def verdict_line(self) -> str | None:
        """How the best found architecture compares with the baselines; None when either is missing."""
        row = self.best_row
        if row is None or self.baselines.empty:
            return None
        return verdict(self.baselines, row["score"], row["flops"], row["fidelity"], row["rung"]).line()
