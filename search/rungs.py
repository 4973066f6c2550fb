"""Successive halving over rungs of the training engine, shared by every worker of a study.

Rung 0 is the search itself: every evaluated architecture gets the evaluator's score there (the
trial's value, what the sampler learns from). A short training favours small models, so sizes
are not compared on it: once ``--trials`` are in, the top ``1/eta`` of the architectures within
budget by non-dominated sorting of (score, FLOPs) (``search.promotion``) are trained again at
rung 1 (``evaluator.at_rung(1, growth)``: ``growth`` times the training), the top ``1/eta`` of those
at rung 2, and so on. The pick, the front and the baseline verdict are made at the top rung,
where the baselines are scored too, so the verdict compares like with like.

Each score beyond rung 0 is a study attribute (``rung:<r>:<digest>``, a ``RungScore``), so a
finished study can be taken further (more trials, one more rung) and nothing is scored twice.
Jobs are claimed under the study's decision lock (``claim:<r>:<digest>``); a claim whose worker
died on this machine is taken over at once, one from another machine after ``CLAIM_EXPIRY``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from vitsearch.evaluators.base import BaseEvaluator, EvaluationFailed
from vitsearch.space import ArchConfig
from vitsearch.space.analytic import analytic_flops

from . import workers as shared_study
from .promotion import Candidate, promote, rung_sizes

if TYPE_CHECKING:
    from .plan import SearchConfig

SCORE_PREFIX = "rung:"
CLAIM_PREFIX = "claim:"
CLAIM_EXPIRY = 4 * 3600.0  # seconds before a claim from another machine is taken for dead
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class Fidelity:
    """What a score rests on: the rung, and the optimizer steps of the training behind it."""

    rung: int
    steps: int | None  # None: the score trains nothing (zero-cost, supernet)
    evaluator: str

    def label(self) -> str:
        steps = f", {self.steps} steps" if self.steps else ""
        return f"{self.evaluator} rung {self.rung}{steps}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fidelity:
        return cls(int(data["rung"]), None if data.get("steps") is None else int(data["steps"]), str(data["evaluator"]))


@dataclass(frozen=True)
class RungScore:
    """One architecture's score at one fidelity: the typed record every reader takes scores from."""

    digest: str
    fidelity: Fidelity
    state: str  # COMPLETE or FAIL
    score: float | None = None
    seconds: float = 0.0
    reason: str = ""
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RungScore:
        return cls(
            digest=data["digest"],
            fidelity=Fidelity.from_dict(data["fidelity"]),
            state=data["state"],
            score=data.get("score"),
            seconds=float(data.get("seconds", 0.0)),
            reason=data.get("reason", ""),
            settings=data.get("settings", {}),
        )

    @property
    def complete(self) -> bool:
        return self.state == "COMPLETE" and self.score is not None


def ladder(evaluator: BaseEvaluator, rungs: int, growth: int) -> list[BaseEvaluator]:
    """The evaluator of each rung: rung 0 is ``evaluator``; fewer when it has no higher fidelity."""
    out = [evaluator]
    for rung in range(1, rungs):
        higher = evaluator.at_rung(rung, growth)
        if higher is None:
            break
        out.append(higher)
    return out


def settings_of(evaluator: BaseEvaluator) -> dict[str, Any]:
    return json.loads(json.dumps(evaluator.settings(), default=str))


def run_scores(study: optuna.Study, attrs: dict[str, Any] | None = None) -> dict[str, dict[int, RungScore]]:
    """digest -> rung -> score, from the trials (rung 0) and the study's rung attributes (``attrs``: as read)."""
    attrs = study.user_attrs if attrs is None else attrs
    found: dict[str, dict[int, RungScore]] = {}
    for trial in study.get_trials(deepcopy=False):
        result = trial.user_attrs.get("result", {})
        if result.get("evaluated") and "fidelity" in result and trial.state.is_finished():
            digest = trial.user_attrs["record"]["digest"]
            complete = trial.state == optuna.trial.TrialState.COMPLETE
            found.setdefault(digest, {})[0] = RungScore(
                digest,
                Fidelity.from_dict(result["fidelity"]),
                "COMPLETE" if complete else "FAIL",
                trial.values[0] if complete else None,
                float(result.get("seconds", 0.0)),
                result.get("fail_reason", ""),
            )
    for key, value in attrs.items():
        if key.startswith(SCORE_PREFIX) and value is not None:
            score = RungScore.from_dict(value)
            found.setdefault(score.digest, {})[score.fidelity.rung] = score
    return found


@dataclass(frozen=True)
class Job:
    rung: int
    digest: str
    arch: ArchConfig
    name: str = ""  # a baseline's name; empty for a promoted architecture
    flops: int = 0  # the largest are taken first, so the last job of a rung is a short one

    @property
    def score_key(self) -> str:
        return f"{SCORE_PREFIX}{self.rung}:{self.digest}"

    @property
    def claim_key(self) -> str:
        return f"{CLAIM_PREFIX}{self.rung}:{self.digest}"


class Rungs:
    """The promotion schedule of one run: which architectures each rung holds, and who trains them."""

    def __init__(self, config: SearchConfig, baselines: dict[str, ArchConfig]):
        self.config = config
        self.evaluators = ladder(config.evaluator, config.rungs, config.growth)
        self.baselines = baselines  # scored at the top rung, against the pick of that rung
        c = config
        self.baseline_flops = {
            name: analytic_flops(arch, c.img_size, c.in_chans, c.num_classes) for name, arch in baselines.items()
        }

    @property
    def top(self) -> int:
        return len(self.evaluators) - 1

    def jobs(
        self, study: optuna.Study, attrs: dict[str, Any]
    ) -> Iterator[tuple[list[Job], dict[str, dict[int, RungScore]]]]:
        """Each rung's jobs in order, from the study as read now; a rung's set is final once the rung below is."""
        scores = run_scores(study, attrs)
        archs = _evaluated_within_budget(study)
        entered = [d for d in archs if 0 in scores.get(d, {}) and scores[d][0].complete]
        sizes = rung_sizes(len(entered), self.config.eta, self.top + 1)
        alive = entered
        for rung in range(1, self.top + 1):
            candidates = [Candidate(d, scores[d][rung - 1].score, archs[d][1]) for d in alive]
            alive = [c.key for c in promote(candidates, sizes[rung])]
            jobs = [Job(rung, d, ArchConfig.from_dict(archs[d][0]), flops=archs[d][1]) for d in alive]
            if rung == self.top:
                jobs += self.baseline_jobs(rung)
            yield jobs, scores
            alive = [d for d in alive if rung in scores.get(d, {}) and scores[d][rung].complete]
        if self.top == 0:
            yield self.baseline_jobs(0), scores

    def baseline_jobs(self, rung: int) -> list[Job]:
        flops = self.baseline_flops
        return [Job(rung, arch.digest(), arch, name, flops[name]) for name, arch in self.baselines.items()]

    def next_job(self, study: optuna.Study) -> tuple[Job | None, bool]:
        """(a job to claim, or None; whether others are still working on the schedule)."""
        attrs = study.user_attrs
        for jobs, scores in self.jobs(study, attrs):
            open_jobs = [j for j in jobs if not self._scored(j, scores)]
            if not open_jobs:
                continue
            free = [j for j in open_jobs if not _claimed(attrs.get(j.claim_key))]
            return max(free, key=lambda j: j.flops, default=None), True
        return None, False

    def _scored(self, job: Job, scores: dict[str, dict[int, RungScore]]) -> bool:
        score = scores.get(job.digest, {}).get(job.rung)
        return score is not None and score.settings == settings_of(self.evaluators[job.rung])

    def score(self, job: Job) -> RungScore:
        evaluator = self.evaluators[job.rung]
        started = time.monotonic()
        state, value, reason, steps = "COMPLETE", None, "", None
        try:
            metrics = evaluator.evaluate(job.arch, None)
            value, steps = float(metrics["score"]), metrics.get("steps")
        except EvaluationFailed as err:
            state, reason = "FAIL", err.reason
        except Exception as err:  # noqa: BLE001 - one architecture the evaluator cannot score fails alone
            state, reason = "FAIL", shared_study.error_reason(err)
        fidelity = Fidelity(job.rung, None if steps is None else int(steps), evaluator.name)
        return RungScore(job.digest, fidelity, state, value, time.monotonic() - started, reason, settings_of(evaluator))


def run_rungs(
    rungs: Rungs,
    study: optuna.Study,
    lock: Callable[[], Any],
    on_job: Callable[[Job, RungScore], None] | None = None,
) -> None:
    """Take jobs until every rung is scored; wait while other workers hold the last ones."""
    while True:
        with lock():
            job, busy = rungs.next_job(study)
            if job is not None:
                study.set_user_attr(job.claim_key, {"host": shared_study.HOST, "pid": os.getpid(), "time": time.time()})
        if job is None:
            if not busy:
                return
            time.sleep(POLL_SECONDS)
            continue
        try:
            score = rungs.score(job)
            study.set_user_attr(job.score_key, score.to_dict())
        finally:
            study.set_user_attr(job.claim_key, None)
        if on_job is not None:
            on_job(job, score)


def _claimed(claim: dict[str, Any] | None) -> bool:
    """A claim holds while its worker lives (this machine) or until it expires (another machine)."""
    if not claim:
        return False
    if claim["host"] == shared_study.HOST:
        return claim["pid"] == os.getpid() or shared_study.process_alive(claim["pid"])
    return time.time() - claim["time"] < CLAIM_EXPIRY


def _evaluated_within_budget(study: optuna.Study) -> dict[str, tuple[dict[str, Any], int]]:
    """digest -> (architecture dict, FLOPs) of every evaluated trial within the run's caps, first trial first.

    Dicts, not ``ArchConfig``s: this runs at every poll, and only the promoted few are built (``jobs``).
    """
    found: dict[str, tuple[dict[str, Any], int]] = {}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        record = trial.user_attrs.get("record", {})
        if trial.user_attrs.get("result", {}).get("evaluated") and max(record["constraint"]) <= 0:
            found.setdefault(record["digest"], (trial.user_attrs["arch"], record["flops"]))
    return found
