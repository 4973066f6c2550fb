"""One trial of a shared study: sample, check the caps, decide (under the lock), evaluate, tell.

The decision lock keeps any number of workers to exactly ``--trials`` evaluations and no
architecture twice (``_decide``); a trial this process holds is never left RUNNING, whatever
happens to it (``one_trial``).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import optuna

from vitsearch.evaluators.base import EvaluationFailed
from vitsearch.evaluators.complexity import analytic_flops, analytic_params
from vitsearch.evaluators.pruners import COST_ATTR
from vitsearch.space import ArchConfig

from . import optuna_private as private
from . import workers as shared_study
from .latency_gate import LatencyGate
from .plan import SearchConfig
from .rungs import Fidelity

POLL_SECONDS = 0.5  # how often a waiting worker looks at the study again


def set_constraints(trial: optuna.Trial, over: list[float], config: SearchConfig) -> None:
    """Tell the sampler how far over each cap the trial is (relative; <= 0 is feasible)."""
    names = ["flops"] + (["params"] if config.max_params is not None else []) + ["latency"]
    for name, value in zip(names, over, strict=False):  # latency only when measured against a cap
        trial.set_constraint(name, value)


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
    decision lock), ``evaluate`` (with the pruning study's trial, if the evaluator reports) and
    ``tell`` (the result, and the tells).
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


def phase(ctx: TrialContext, name: str) -> contextlib.AbstractContextManager:
    """Time ``name`` on the context's clock, when it has one."""
    return ctx.clock(name) if ctx.clock is not None else contextlib.nullcontext()


class _PruningTrial:
    """What a training evaluator sees as ``trial``: reports go to a shadow single-objective study.

    The shadow trial is created at the first report or pruning question, so an evaluator that
    never asks (zero-cost scores, the supernet) costs no shadow trial: ~8 ms of storage writes
    per trial on SQLite (``studies/bench_driver.py``). Without a pruner there is no shadow study:
    reports are dropped and nothing is pruned.
    """

    def __init__(self, ctx: TrialContext, trial: optuna.Trial, cost: int):
        self._ctx, self._trial, self._cost = ctx, trial, cost
        self.number = trial.number
        self.shadow: optuna.Trial | None = None

    def _shadow(self) -> optuna.Trial:
        assert self._ctx.shadow is not None, "no shadow study without a pruner"
        if self.shadow is None:
            ctx = self._ctx  # COST_ATTR: what the default dominance pruner compares
            self.shadow = shared_study.new_held_trial(ctx.shadow, ctx.heartbeat, {COST_ATTR: self._cost})
            ctx.storage.set_trial_system_attr(
                private.trial_id(self._trial), shared_study.SHADOW_KEY, private.trial_id(self.shadow)
            )
        return self.shadow

    def report(self, value: float, step: int) -> None:
        if self._ctx.shadow is not None:
            self._shadow().report(value, step)

    def should_prune(self) -> bool:
        return self._ctx.shadow is not None and self._shadow().should_prune()

    def set_user_attr(self, key: str, value: Any) -> None:
        self._trial.set_user_attr(key, value)


def is_evaluated(trial: optuna.trial.FrozenTrial) -> bool:
    # finished too: the result is written just before the trial is told, and until then it is in flight
    return trial.state.is_finished() and bool(trial.user_attrs.get("result", {}).get("evaluated"))


def is_in_flight(trial: optuna.trial.FrozenTrial) -> bool:
    return (
        trial.state == optuna.trial.TrialState.RUNNING and trial.system_attrs.get(shared_study.CLAIM_KEY) == "evaluate"
    )


def slots(trials: list[optuna.trial.FrozenTrial]) -> tuple[int, int]:
    """(evaluated, being evaluated): the slots of ``--trials`` taken."""
    return sum(map(is_evaluated, trials)), sum(map(is_in_flight, trials))


@dataclass
class TrialContext:
    """What one process needs to run trials on a shared study."""

    config: SearchConfig
    study: optuna.Study
    shadow: optuna.Study | None  # None without a pruner
    lock: Callable[[], Any]
    heartbeat: shared_study.Heartbeat
    reaper: shared_study.Reaper
    gate: LatencyGate | None
    clock: PhaseClock | None = None

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        return private.storage_of(self.study)


def one_trial(ctx: TrialContext) -> TrialOutcome:
    with phase(ctx, "ask"):
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


def _abandon(ctx: TrialContext, trial: optuna.Trial, reason: str, requeue: bool) -> None:
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


def _run_trial(ctx: TrialContext, trial: optuna.Trial) -> TrialOutcome:
    # The ~100 choices and the record are written as they are made (Optuna's public API, one
    # commit each); the claim is written under the decision lock.
    config, study = ctx.config, ctx.study
    with phase(ctx, "sample"):  # a ConfigError is a bug (SearchSpace.check): one_trial fails the trial
        arch = config.space.sample(trial)
    with phase(ctx, "budget"):
        flops = analytic_flops(arch, config.img_size, config.in_chans, config.num_classes)
    with phase(ctx, "params"):
        params = analytic_params(arch, config.img_size, config.in_chans, config.num_classes)
    over = [(flops - config.budget) / config.budget]
    if config.max_params is not None:
        over.append((params - config.max_params) / config.max_params)
    within_flops = max(over) <= 0
    latency_ms = ctx.gate.apply(arch, over) if ctx.gate is not None else None
    with phase(ctx, "record"):
        _record(ctx, trial, arch, flops, params, over, latency_ms)
    objectives = [flops] + ([params] if config.params_objective else [])
    if config.latency_objective:  # unmeasured (rejected by FLOPs): worst possible, and infeasible anyway
        objectives.append(latency_ms if latency_ms is not None else math.inf)
    outcome = TrialOutcome(trial.number, "COMPLETE", arch, flops, params)

    if max(over) > 0:  # never built, never trained
        with phase(ctx, "tell"):
            trial.set_user_attr("result", {"over_budget": True})
            study.tell(trial, [0.0, *objectives])
        outcome.state, outcome.reason = "REJECTED", "over budget" if not within_flops else "over latency"
        return outcome

    with phase(ctx, "decide"):
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


def _record(
    ctx: TrialContext,
    trial: optuna.Trial,
    arch: ArchConfig,
    flops: int,
    params: int,
    over: list[float],
    latency_ms: float | None,
) -> None:
    """What the results table reads back: the architecture, its costs, the constraints."""
    config = ctx.config
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


def _decide(ctx: TrialContext, trial: optuna.Trial, digest: str) -> tuple[str, optuna.trial.FrozenTrial | None]:
    """evaluate, duplicate (of an evaluated trial) or surplus; decided under the study's lock.

    The trial's claim is written before the lock is released, so the next worker to decide sees
    its digest claimed and counts its slot: that is what keeps N workers to exactly
    ``--trials`` evaluations and no architecture twice. A trial evaluating the same architecture
    elsewhere is waited for, then mirrored.
    """
    while True:
        with ctx.lock():
            trials = ctx.study.get_trials(deepcopy=False)
            for other in trials:
                if other.number != trial.number and _digest(other) == digest and is_evaluated(other):
                    return "duplicate", other
            owner = next((t for t in trials if is_in_flight(t) and _digest(t) == digest), None)
            if owner is None:
                if sum(slots(trials)) >= ctx.config.trials:
                    return "surplus", None
                ctx.storage.set_trial_system_attr(private.trial_id(trial), shared_study.CLAIM_KEY, "evaluate")
                return "evaluate", None
        _wait_until_finished(ctx, owner.number)


def _digest(trial: optuna.trial.FrozenTrial) -> str | None:
    return trial.user_attrs.get("record", {}).get("digest")


def _wait_until_finished(ctx: TrialContext, number: int) -> None:
    while True:
        ctx.reaper.reap(ctx.study, ctx.shadow)
        if ctx.study.get_trials(deepcopy=False)[number].state.is_finished():
            return
        time.sleep(POLL_SECONDS)


def _mirror(
    ctx: TrialContext,
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
    ctx: TrialContext, trial: optuna.Trial, arch: ArchConfig, objectives: list[float], outcome: TrialOutcome
) -> TrialOutcome:
    config, study = ctx.config, ctx.study
    pruning = _PruningTrial(ctx, trial, outcome.flops)
    started = time.monotonic()
    result: dict[str, Any] = {"evaluated": True}
    state = optuna.trial.TrialState.COMPLETE
    try:
        with phase(ctx, "evaluate"):
            metrics = config.evaluator.evaluate(arch, pruning)
        score = float(metrics["score"])
        if not math.isfinite(score):
            raise EvaluationFailed(f"non-finite score {score}")
    except optuna.TrialPruned:
        state = optuna.trial.TrialState.PRUNED
    except EvaluationFailed as err:
        state, outcome.reason = optuna.trial.TrialState.FAIL, err.reason
        result["fail_reason"] = err.reason
    except Exception as err:  # a mixer raising, out of memory...: this trial fails, the study goes on
        state, outcome.reason = optuna.trial.TrialState.FAIL, shared_study.error_reason(err)
        outcome.unexpected_error = not shared_study.is_out_of_memory(err)
        result["fail_reason"] = outcome.reason
        result["traceback"] = traceback.format_exc(limit=-8)[-4000:]
        _release_memory()
    finally:
        if pruning.shadow is not None:
            ctx.heartbeat.release(private.trial_id(pruning.shadow))
            result["shadow_trial"] = pruning.shadow.number
    outcome.seconds = result["seconds"] = time.monotonic() - started
    outcome.state = state.name
    steps = metrics.get("steps") if state == optuna.trial.TrialState.COMPLETE else None
    result["fidelity"] = asdict(Fidelity(0, None if steps is None else int(steps), config.evaluator.name))
    if state == optuna.trial.TrialState.COMPLETE:
        outcome.score = result["score"] = score
        result["metrics"] = {
            k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)
        }
    try:
        with phase(ctx, "tell"):
            trial.set_user_attr("result", result)
            complete = state == optuna.trial.TrialState.COMPLETE
            study.tell(trial, [score, *objectives] if complete else None, None if complete else state)
            if pruning.shadow is not None:
                ctx.shadow.tell(pruning.shadow, score if complete else None, None if complete else state)
    except optuna.exceptions.UpdateFinishedTrialError:
        # Another worker took this one for dead (no heartbeat for the grace period) and re-queued it.
        outcome.state, outcome.reason = "REAPED", "failed by another worker as stale; re-queued"
    return outcome


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
