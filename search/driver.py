"""The Optuna driver: sample -> budget check -> evaluate -> record, with resume and dedup.

Objectives: accuracy (maximise) and FLOPs of the target profile (minimise), optionally
params. A candidate over budget is rejected by ``analytic_flops`` before anything is built;
its trial carries a positive constraint value so TPE / NSGA-II learn to avoid the region
(``Trial.set_constraint``, which Optuna 5 samplers read; it replaced ``constraints_func``).
``--trials`` counts evaluated architectures; rejected and duplicate samples are recorded but
cost nothing and do not count.

Optuna does not prune multi-objective trials, so a training evaluator reports its
per-epoch accuracy to a *shadow* single-objective study (``<study>:pruning``, same storage)
whose pruner decides; the decision ends the real trial as PRUNED.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from vitsearch.evaluators import latency as timing
from vitsearch.evaluators.base import BaseEvaluator, EvaluationFailed
from vitsearch.evaluators.complexity import analytic_flops, analytic_params
from vitsearch.evaluators.pruners import COST_ATTR, DEFAULT_PRUNER, make_pruner
from vitsearch.space import ArchConfig, ConfigError
from vitsearch.space.search_space import SearchSpace

from . import optuna_private as private
from . import workers as shared_study

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    # TPE: multivariate over the conditional per-layer choices, constant liar for parallel workers.
    "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True),
    "nsga2": lambda seed: optuna.samplers.NSGAIISampler(seed=seed),
    "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
}

MAX_REJECTED_PER_EVALUATION = 200  # give up when the sampler cannot find in-budget candidates


# `auto`: TPE for short searches, NSGA-II for long ones. studies/bench_samplers.md (full space,
# 2 GFLOPs, 5 seeds): TPE leads in hypervolume up to 100 trials (6.59 vs 6.05), NSGA-II at 200
# (10.33 vs 7.71); studies/bench_driver.py: TPE's sampling over ~100 choices costs 186 ms per trial
# at 100 trials and grows with the study, NSGA-II's 8 ms.
AUTO_NSGA2_FROM_TRIALS = 200


def sampler_for(name: str, trials: int) -> str:
    """The sampler a run uses: ``auto`` is tpe below ``AUTO_NSGA2_FROM_TRIALS`` trials, nsga2 from there."""
    if name != "auto":
        return name
    return "nsga2" if trials >= AUTO_NSGA2_FROM_TRIALS else "tpe"


def make_sampler(name: str, seed: int | None = None, trials: int = 0) -> optuna.samplers.BaseSampler:
    name = sampler_for(name, trials)
    try:
        factory = SAMPLERS[name]
    except KeyError:
        raise ValueError(f"--sampler: unknown {name!r} (choose from auto, {', '.join(SAMPLERS)})") from None
    return factory(seed)


def set_constraints(trial: optuna.Trial, over: list[float], config: SearchConfig) -> None:
    """Tell the sampler how far over each cap the trial is (relative; <= 0 is feasible)."""
    names = ["flops"] + (["params"] if config.max_params is not None else []) + ["latency"]
    for name, value in zip(names, over, strict=False):  # latency only when measured against a cap
        trial.set_constraint(name, value)


@dataclass
class SearchConfig:
    space: SearchSpace
    evaluator: BaseEvaluator
    budget: int  # FLOPs at the target profile
    trials: int = 20  # evaluated architectures, in total over resumes
    max_params: int | None = None
    img_size: int = 224
    in_chans: int = 3
    num_classes: int = 1000
    sampler: str = "auto"  # tpe below AUTO_NSGA2_FROM_TRIALS trials, nsga2 from there
    seed: int | None = 0
    storage: str | None = None  # any Optuna storage URL; None = in memory
    study_name: str = "vitsearch"
    pruner: str = DEFAULT_PRUNER  # measured best in evaluators/pruners.py
    params_objective: bool = False
    timeout: float | None = None  # seconds for this invocation
    max_latency_ms: float | None = None  # latency cap measured on this machine (see LatencyGate)
    latency_objective: bool = False  # also minimise the measured latency
    latency: timing.LatencySettings = field(default_factory=timing.LatencySettings)
    workers: int = 1  # processes on this machine (run_with_progress starts them; run_search is one)
    baselines: bool = True  # score the hand-designed baselines too (search.baselines; run_with_progress)
    heartbeat_interval: float = shared_study.HEARTBEAT_INTERVAL
    grace_period: float = shared_study.GRACE_PERIOD

    @property
    def directions(self) -> list[str]:
        extra = (["minimize"] if self.params_objective else []) + (["minimize"] if self.latency_objective else [])
        return ["maximize", "minimize"] + extra

    @property
    def measures_latency(self) -> bool:
        return self.max_latency_ms is not None or self.latency_objective


@dataclass
class TrialOutcome:
    number: int
    state: str
    arch: ArchConfig
    flops: int
    params: int
    score: float | None = None
    reason: str = ""
    seconds: float = 0.0
    unexpected_error: bool = False  # the evaluator raised something other than EvaluationFailed


class PhaseClock:
    """Seconds each driver phase took, per trial of this process (``studies/bench_driver.py``).

    Phases: ``loop`` (stale-trial reaping and slot counting before each trial), ``ask`` (a new
    trial), ``sample`` (the space's suggestions), ``budget`` (analytic FLOPs), ``params``,
    ``record`` (the trial's attrs and constraints), ``decide`` (dedup and the slot claim under the
    decision lock), ``evaluate`` and ``tell`` (result, shadow trial and tell).
    """

    def __init__(self) -> None:
        self.trials: list[dict[str, float]] = []
        self._current: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self._current[phase] = self._current.get(phase, 0.0) + time.perf_counter() - started

    def end_trial(self, state: str) -> None:
        self.trials.append({**self._current, "state": state})
        self._current = {}


def _phase(ctx: _Worker, name: str) -> contextlib.AbstractContextManager:
    return ctx.clock(name) if ctx.clock is not None else contextlib.nullcontext()


@dataclass
class SearchResult:
    study: optuna.Study
    config: SearchConfig
    outcomes: list[TrialOutcome] = field(default_factory=list)


def check_budget(config: SearchConfig) -> tuple[ArchConfig, int]:
    """Raise a clear error when even the smallest architecture of the space is over budget."""
    smallest = config.space.smallest(config.img_size, config.num_classes)
    flops = analytic_flops(smallest, config.img_size, config.in_chans, config.num_classes)
    if flops > config.budget:
        raise ConfigError(
            "--budget",
            f"{config.budget / 1e9:.3f} GFLOPs is below the smallest architecture of space "
            f"{config.space.name!r}, which needs {flops / 1e9:.4f} GFLOPs at {config.img_size}px",
        )
    return smallest, flops


def open_study(config: SearchConfig, storage: optuna.storages.BaseStorage | None = None) -> optuna.Study:
    study = optuna.create_study(
        study_name=config.study_name,
        storage=storage if storage is not None else shared_study.open_storage(config.storage),
        directions=config.directions,
        sampler=make_sampler(config.sampler, config.seed, config.trials),
        load_if_exists=True,
    )
    recorded = study.user_attrs.get("search")
    current = _study_signature(config)
    if recorded is None:
        study.set_user_attr("search", current)
    # Studies recorded before "space_choices" existed are taken to have the same choices.
    elif (recorded := {"space_choices": current["space_choices"], **recorded}) != current:
        changed = sorted(k for k in current if recorded.get(k) != current[k])
        raise ConfigError(
            "--study",
            f"study {config.study_name!r} was run with different {', '.join(changed)}; "
            "use another --study name or --out directory",
        )
    return study


def _study_signature(config: SearchConfig) -> dict[str, Any]:
    # What must not change when a study is resumed (the trial count may grow).
    return {
        "space": config.space.name,
        "space_choices": config.space.digest(),  # an edited space file keeps its name
        "budget": config.budget,
        "max_params": config.max_params,
        "img_size": config.img_size,
        "num_classes": config.num_classes,
        "evaluator": config.evaluator.name,
        "evaluator_settings": json.loads(json.dumps(config.evaluator.settings(), default=str)),
        "objectives": config.directions,
        # absent (None) when latency plays no part, so studies from before these keys resume as they were
        "max_latency_ms": config.max_latency_ms,
        "latency": config.latency.to_dict() if config.measures_latency else None,
    }


def evaluated_count(study: optuna.Study) -> int:
    return _slots(study.get_trials(deepcopy=False))[0]


class LatencyGate:
    """Latency of candidates that passed the FLOPs and params checks, measured once per architecture.

    Measured on the machine running the search, at the target profile, in the deployed form
    (``timing.arch_latency_ms``). The cache is keyed by architecture digest and filled from the
    study's earlier trials measured with the same settings, so a resumed study or a resampled
    architecture costs no second measurement.
    """

    def __init__(self, config: SearchConfig, study: optuna.Study):
        self.config = config
        self.settings = config.latency.to_dict()
        self.cache: dict[str, float] = {}
        for t in study.get_trials(deepcopy=False):
            record = t.user_attrs.get("record", {})
            if record.get("latency_ms") is not None and record.get("latency_settings") == self.settings:
                self.cache[record["digest"]] = float(record["latency_ms"])

    def measure(self, arch: ArchConfig) -> float:
        digest = arch.digest()
        if digest not in self.cache:
            c = self.config
            self.cache[digest] = timing.arch_latency_ms(arch, c.img_size, c.in_chans, c.num_classes, c.latency)
        return self.cache[digest]

    def apply(self, arch: ArchConfig, over: list[float]) -> float | None:
        """Measure when ``over`` (FLOPs, params) is feasible; append the latency constraint to it."""
        if max(over) > 0:
            return None  # never built: the cheap checks already rejected it
        latency = self.measure(arch)
        if self.config.max_latency_ms is not None:
            over.append((latency - self.config.max_latency_ms) / self.config.max_latency_ms)
        return latency


class _PruningTrial:
    """What a training evaluator sees as ``trial``: reports go to a shadow single-objective study."""

    def __init__(self, trial: optuna.Trial, shadow: optuna.Trial):
        self._trial, self._shadow = trial, shadow
        self.number = trial.number

    def report(self, value: float, step: int) -> None:
        self._shadow.report(value, step)

    def should_prune(self) -> bool:
        return self._shadow.should_prune()

    def set_user_attr(self, key: str, value: Any) -> None:
        self._trial.set_user_attr(key, value)


def run_search(
    config: SearchConfig,
    on_trial: Callable[[TrialOutcome, optuna.Study], None] | None = None,
    clock: PhaseClock | None = None,
):
    """Run (or resume) a study until ``config.trials`` architectures are evaluated.

    Any number of processes may run this on the same storage and study at once (see
    ``search.workers``): each evaluates only what the decision lock gives it, so the study ends with
    exactly ``config.trials`` evaluated architectures, none twice.

    Args:
        config: what to search and how.
        on_trial: called after every trial of this process (progress display).
        clock: times the driver's phases per trial (benchmarks); ``None`` = not timed.
    """
    check_budget(config)
    storage = shared_study.open_storage(config.storage)
    study = open_study(config, storage)
    shadow = optuna.create_study(
        study_name=f"{config.study_name}:pruning",
        storage=storage,
        direction="maximize",
        pruner=make_pruner(config.pruner),
        load_if_exists=True,
    )
    result = SearchResult(study=study, config=config)
    gate = LatencyGate(config, study) if config.measures_latency else None
    reaper = shared_study.Reaper(grace=config.grace_period)
    lock = shared_study.decision_lock(config.storage, config.study_name)
    rejected_in_a_row = errors_in_a_row = 0
    started = time.monotonic()
    with shared_study.Heartbeat(storage, config.heartbeat_interval) as heartbeat:
        ctx = _Worker(config, study, shadow, lock, heartbeat, reaper, gate, clock)
        while True:
            with _phase(ctx, "loop"):
                reaper.reap(study, shadow)
                done, in_flight = _slots(study.get_trials(deepcopy=False))
            if done >= config.trials:
                break
            if config.timeout is not None and time.monotonic() - started > config.timeout:
                break
            if done + in_flight >= config.trials:  # the last slots are being evaluated elsewhere
                time.sleep(POLL_SECONDS)
                continue
            outcome = _one_trial(ctx)
            if clock is not None:
                clock.end_trial(outcome.state)
            result.outcomes.append(outcome)
            rejected_in_a_row = rejected_in_a_row + 1 if outcome.state in ("REJECTED", "DUPLICATE") else 0
            errors_in_a_row = errors_in_a_row + 1 if outcome.unexpected_error else 0
            if on_trial is not None:
                on_trial(outcome, study)
            if rejected_in_a_row >= MAX_REJECTED_PER_EVALUATION:
                raise RuntimeError(
                    f"{rejected_in_a_row} samples in a row were over budget or already evaluated: "
                    "the space under this budget looks exhausted (raise --budget or widen the space)"
                )
            if errors_in_a_row >= MAX_ERRORS_IN_A_ROW:
                raise RuntimeError(
                    f"{errors_in_a_row} evaluations in a row failed with an unexpected error, the last: "
                    f"{outcome.reason} (see `vitsearch show` for every failure)"
                )
    return result


POLL_SECONDS = 0.5  # how often a waiting worker looks at the study again
MAX_ERRORS_IN_A_ROW = 10  # unexpected evaluator errors (not EvaluationFailed) before the search stops


def _is_evaluated(trial: optuna.trial.FrozenTrial) -> bool:
    # finished too: the result is written just before the trial is told, and until then it is in flight
    return trial.state.is_finished() and bool(trial.user_attrs.get("result", {}).get("evaluated"))


def _is_in_flight(trial: optuna.trial.FrozenTrial) -> bool:
    return (
        trial.state == optuna.trial.TrialState.RUNNING and trial.system_attrs.get(shared_study.CLAIM_KEY) == "evaluate"
    )


def _slots(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, int]:
    """(evaluated, being evaluated): the slots of ``--trials`` taken."""
    return sum(map(_is_evaluated, trials)), sum(map(_is_in_flight, trials))


@dataclass
class _Worker:
    """What one process needs to run trials on a shared study."""

    config: SearchConfig
    study: optuna.Study
    shadow: optuna.Study
    lock: Callable[[], Any]
    heartbeat: shared_study.Heartbeat
    reaper: shared_study.Reaper
    gate: LatencyGate | None
    clock: PhaseClock | None = None

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        return private.storage_of(self.study)


def _one_trial(ctx: _Worker) -> TrialOutcome:
    with _phase(ctx, "ask"):
        trial = shared_study.ask_held(ctx.study, ctx.heartbeat)
    try:
        return _run_trial(ctx, trial)
    except BaseException as err:  # interrupted, or a bug: never leave the trial RUNNING
        interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
        reason = "interrupted" if interrupted else f"{type(err).__name__}: {_first_line(err)}"
        _abandon(ctx, trial, reason, requeue=interrupted)
        raise
    finally:
        ctx.heartbeat.release(private.trial_id(trial))


def _abandon(ctx: _Worker, trial: optuna.Trial, reason: str, requeue: bool) -> None:
    """FAIL a trial this process holds (and its shadow); re-queue it when the search will go on."""
    try:
        ctx.storage.set_trial_user_attr(private.trial_id(trial), "result", {"fail_reason": reason})
        ctx.study.tell(trial, state=optuna.trial.TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
        return  # already finished (told before the interruption, or reaped)
    shared_study.fail_shadow_trial(ctx.shadow, ctx.storage.get_trial_system_attrs(private.trial_id(trial)))
    params = shared_study.sampled_params(trial)
    if requeue and params:
        shared_study.requeue_trial(ctx.study, params, trial.number, int(trial.user_attrs.get("retries", 0)))


def _run_trial(ctx: _Worker, trial: optuna.Trial) -> TrialOutcome:
    # Each user attr is a storage round trip (an fsync with SQLite): few per trial, not one per field.
    config, study = ctx.config, ctx.study
    try:
        with _phase(ctx, "sample"):
            arch = config.space.sample(trial)
    except ConfigError:  # SearchSpace.check should make this impossible: a bug, so stop loudly
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    with _phase(ctx, "budget"):
        flops = analytic_flops(arch, config.img_size, config.in_chans, config.num_classes)
    with _phase(ctx, "params"):
        params = analytic_params(arch, config.img_size, config.in_chans, config.num_classes)
    over = [(flops - config.budget) / config.budget]
    if config.max_params is not None:
        over.append((params - config.max_params) / config.max_params)
    within_flops = max(over) <= 0
    latency_ms = ctx.gate.apply(arch, over) if ctx.gate is not None else None
    with _phase(ctx, "record"):
        trial.set_user_attr("arch", arch.to_dict())
        trial.set_user_attr(
            "record",
            {
                "digest": arch.digest(),
                "flops": flops,
                "params": params,
                "constraint": over,
                "evaluator": config.evaluator.name,
                "evaluator_settings": json.loads(json.dumps(config.evaluator.settings(), default=str)),
                **_latency_record(ctx.gate, latency_ms),
            },
        )
        set_constraints(trial, over, config)
    objectives = [flops] + ([params] if config.params_objective else [])
    if config.latency_objective:  # unmeasured (rejected by FLOPs): worst possible, and infeasible anyway
        objectives.append(latency_ms if latency_ms is not None else math.inf)
    outcome = TrialOutcome(trial.number, "COMPLETE", arch, flops, params)

    if max(over) > 0:  # never built, never trained
        with _phase(ctx, "tell"):
            trial.set_user_attr("result", {"over_budget": True})
            study.tell(trial, [0.0, *objectives])
        outcome.state, outcome.reason = "REJECTED", "over budget" if not within_flops else "over latency"
        return outcome

    with _phase(ctx, "decide"):
        decision, other = _decide(ctx, trial, arch.digest())
    if decision == "duplicate":
        return _mirror(ctx, trial, other, objectives, outcome)
    if decision == "surplus":
        reason = "not evaluated: other workers took the last of --trials"
        trial.set_user_attr("result", {"unused": True, "fail_reason": reason})
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        outcome.state, outcome.reason = "UNUSED", reason
        return outcome
    return _evaluate(ctx, trial, arch, objectives, outcome)


def _decide(ctx: _Worker, trial: optuna.Trial, digest: str) -> tuple[str, optuna.trial.FrozenTrial | None]:
    """evaluate, duplicate (of an evaluated trial) or surplus; decided under the study's lock.

    The claim is written before the lock is released, so the next worker to decide counts it:
    that is what keeps N workers to exactly ``--trials`` evaluations and no architecture twice.
    A trial evaluating the same architecture elsewhere is waited for, then mirrored.
    """
    while True:
        with ctx.lock():
            trials = ctx.study.get_trials(deepcopy=False)
            for other in trials:
                if other.number != trial.number and _digest(other) == digest and _is_evaluated(other):
                    return "duplicate", other
            owner = next((t for t in trials if _is_in_flight(t) and _digest(t) == digest), None)
            if owner is None:
                if sum(_slots(trials)) >= ctx.config.trials:
                    return "surplus", None
                ctx.storage.set_trial_system_attr(private.trial_id(trial), shared_study.CLAIM_KEY, "evaluate")
                return "evaluate", None
        _wait_until_finished(ctx, owner.number)


def _digest(trial: optuna.trial.FrozenTrial) -> str | None:
    return trial.user_attrs.get("record", {}).get("digest")


def _wait_until_finished(ctx: _Worker, number: int) -> None:
    while True:
        ctx.reaper.reap(ctx.study, ctx.shadow)
        if ctx.study.get_trials(deepcopy=False)[number].state.is_finished():
            return
        time.sleep(POLL_SECONDS)


def _mirror(
    ctx: _Worker,
    trial: optuna.Trial,
    original: optuna.trial.FrozenTrial,
    objectives: list[float],
    outcome: TrialOutcome,
) -> TrialOutcome:
    """A duplicate takes its original's outcome: the same score, or the same pruning or failure."""
    result: dict[str, Any] = {"duplicate_of": original.number}
    outcome.state = "DUPLICATE"
    if original.state == optuna.trial.TrialState.COMPLETE:
        outcome.score = result["score"] = original.values[0]
        trial.set_user_attr("result", result)
        ctx.study.tell(trial, [outcome.score, *objectives])
        return outcome
    reason = original.user_attrs.get("result", {}).get("fail_reason")
    outcome.reason = result["fail_reason"] = f"duplicate of trial {original.number} ({original.state.name.lower()})"
    if reason:
        outcome.reason = result["fail_reason"] = f"{outcome.reason}: {reason}"
    trial.set_user_attr("result", result)
    ctx.study.tell(trial, state=original.state)
    return outcome


def _evaluate(
    ctx: _Worker, trial: optuna.Trial, arch: ArchConfig, objectives: list[float], outcome: TrialOutcome
) -> TrialOutcome:
    config, study, shadow = ctx.config, ctx.study, ctx.shadow
    shadow_trial = shadow.ask()
    ctx.heartbeat.hold(private.trial_id(shadow_trial))
    ctx.storage.set_trial_system_attr(private.trial_id(trial), shared_study.SHADOW_KEY, private.trial_id(shadow_trial))
    shadow_trial.set_user_attr(COST_ATTR, outcome.flops)  # what the default dominance pruner compares
    started = time.monotonic()
    result: dict[str, Any] = {"evaluated": True, "shadow_trial": shadow_trial.number}
    state = optuna.trial.TrialState.COMPLETE
    try:
        with _phase(ctx, "evaluate"):
            metrics = config.evaluator.evaluate(arch, _PruningTrial(trial, shadow_trial))
        score = float(metrics["score"])
        if not math.isfinite(score):
            raise EvaluationFailed(f"non-finite score {score}")
    except optuna.TrialPruned:
        state = optuna.trial.TrialState.PRUNED
    except EvaluationFailed as err:
        state, outcome.reason = optuna.trial.TrialState.FAIL, err.reason
        result["fail_reason"] = err.reason
    except Exception as err:  # a mixer raising, out of memory...: this trial fails, the study goes on
        state, outcome.reason = optuna.trial.TrialState.FAIL, _error_reason(err)
        outcome.unexpected_error = not _is_out_of_memory(err)
        result["fail_reason"] = outcome.reason
        result["traceback"] = traceback.format_exc(limit=-8)[-4000:]
        _release_memory()
    finally:
        ctx.heartbeat.release(private.trial_id(shadow_trial))
    outcome.seconds = result["seconds"] = time.monotonic() - started
    outcome.state = state.name
    if state == optuna.trial.TrialState.COMPLETE:
        outcome.score = result["score"] = score
        result["metrics"] = {
            k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)
        }
    try:
        with _phase(ctx, "tell"):
            trial.set_user_attr("result", result)
            if state == optuna.trial.TrialState.COMPLETE:
                study.tell(trial, [score, *objectives])
                shadow.tell(shadow_trial, score)
            else:
                study.tell(trial, state=state)
                shadow.tell(shadow_trial, state=state)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Another worker took this one for dead (no heartbeat for the grace period) and re-queued it.
        outcome.state, outcome.reason = "REAPED", "failed by another worker as stale; re-queued"
    return outcome


def _is_out_of_memory(err: BaseException) -> bool:
    import torch

    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(err, RuntimeError) and ("out of memory" in str(err) or "can't allocate memory" in str(err))
    )


def _error_reason(err: BaseException) -> str:
    if _is_out_of_memory(err):
        return f"out of memory ({type(err).__name__}: {_first_line(err)})"
    return f"{type(err).__name__}: {_first_line(err)}"


def _first_line(err: BaseException) -> str:
    return shared_study.first_line(err, empty="(no message)")


def _release_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _latency_record(gate: LatencyGate | None, latency_ms: float | None) -> dict[str, Any]:
    if gate is None or latency_ms is None:
        return {}
    return {"latency_ms": latency_ms, "latency_settings": gate.settings}


def load_study(out_or_storage: str | Path, study_name: str | None = None) -> optuna.Study:
    """Open a finished or running study from its run directory (``study.db``) or a storage URL."""
    target = str(out_or_storage)
    is_url = "://" in target or target.startswith(shared_study.JOURNAL_PREFIX)
    if not is_url and not (Path(target) / "study.db").exists():
        raise ConfigError(target, "no study.db here (is it a vitsearch run directory?)")
    storage = shared_study.open_storage(target if is_url else f"sqlite:///{Path(target) / 'study.db'}")
    names = [s.study_name for s in optuna.get_all_study_summaries(storage) if not s.study_name.endswith(":pruning")]
    if study_name is None:
        if len(names) != 1:
            raise ConfigError("--study", f"choose one of the studies in {target}: {', '.join(names) or 'none'}")
        study_name = names[0]
    if study_name not in names:
        raise ConfigError("--study", f"no study {study_name!r} in {target} (found: {', '.join(names) or 'none'})")
    return optuna.load_study(study_name=study_name, storage=storage)


def sample_under_budget(
    space: SearchSpace, budget: int, n: int, seed: int = 0, img_size: int = 224, num_classes: int = 1000
) -> list[ArchConfig]:
    """``n`` distinct architectures drawn uniformly from the space among those within budget."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found: dict[str, ArchConfig] = {}
    for _ in range(n * MAX_REJECTED_PER_EVALUATION):
        trial = study.ask()
        arch = space.sample(trial)
        study.tell(trial, 0.0)
        if analytic_flops(arch, img_size, num_classes=num_classes) <= budget:
            found.setdefault(arch.digest(), arch)
            if len(found) == n:
                break
    if len(found) < n:
        raise ConfigError("--n", f"found only {len(found)} distinct architectures of {space.name!r} within budget")
    return list(found.values())
