"""The Optuna driver: sample -> budget check -> evaluate -> record, with resume and dedup.

Objectives: accuracy (maximise) and FLOPs of the target profile (minimise), optionally
params. A candidate over budget is rejected by ``analytic_flops`` before anything is built;
its trial carries a positive constraint value so TPE / NSGA-II learn to avoid the region
(``Trial.set_constraint``, which Optuna 5 samplers read; it replaced ``constraints_func``).
``--trials`` counts evaluated architectures; rejected and duplicate samples are recorded but
cost nothing and do not count.

Once ``--trials`` are in, the best of each FLOPs region go up the rungs of successive halving
(``search.rungs``), where the baselines are scored too; the pick is made at the top rung.

Optuna does not prune multi-objective trials, so a training evaluator reports its
per-epoch accuracy to a *shadow* single-objective study (``<study>:pruning``, same storage)
whose pruner decides (``--pruner``); the decision ends the real trial as PRUNED. By default there is
no pruner and so no shadow study: the rungs stop the weak.

The run plan (``search.plan``) is checked once; one trial's steps are ``search.trial``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from vitsearch.space import ConfigError

from . import workers as shared_study
from .latency_gate import LatencyGate
from .plan import (
    AUTO_NSGA2_FROM_TRIALS,
    MAX_REJECTED_PER_EVALUATION,
    OpenStudy,
    RunPlan,
    SearchConfig,
    check_budget,
    make_sampler,
    sample_under_budget,
    sampler_for,
)
from .rungs import Job, Rungs, RungScore, run_rungs
from .trial import POLL_SECONDS, PhaseClock, TrialContext, TrialOutcome, one_trial, phase, slots

# Re-exported: notebooks, benchmarks (studies/bench_*.py) and tests import these from the driver.
__all__ = [
    "AUTO_NSGA2_FROM_TRIALS",
    "LatencyGate",
    "PhaseClock",
    "RunPlan",
    "SearchConfig",
    "SearchResult",
    "TrialOutcome",
    "check_budget",
    "evaluated_count",
    "load_study",
    "make_sampler",
    "run_search",
    "sample_under_budget",
    "sampler_for",
]

MAX_ERRORS_IN_A_ROW = 10  # unexpected evaluator errors (not EvaluationFailed) before the search stops


@dataclass
class SearchResult:
    study: optuna.Study
    config: SearchConfig
    outcomes: list[TrialOutcome] = field(default_factory=list)


def evaluated_count(study: optuna.Study) -> int:
    return slots(study.get_trials(deepcopy=False))[0]


def run_search(
    plan: RunPlan | SearchConfig,
    on_trial: Callable[[TrialOutcome, optuna.Study], None] | None = None,
    clock: PhaseClock | None = None,
    opened: OpenStudy | None = None,
    on_job: Callable[[Job, RungScore], None] | None = None,
) -> SearchResult:
    """Run (or resume) a study until ``config.trials`` architectures are evaluated.

    Any number of processes may run this on the same storage and study at once (see
    ``search.workers``): each evaluates only what the decision lock gives it, so the study ends with
    exactly ``config.trials`` evaluated architectures, none twice.

    Args:
        plan: what to search and how, checked (a ``SearchConfig`` is checked here).
        on_trial: called after every trial of this process (progress display).
        clock: times the driver's phases per trial (benchmarks); ``None`` = not timed.
        opened: the study this process already opened from ``plan`` (default: opened here).
        on_job: called after every rung job of this process (``search.rungs``: promotions, baselines).
    """
    plan = plan if isinstance(plan, RunPlan) else RunPlan.check(plan)
    config = plan.config
    opened = opened or plan.open()
    storage, study, shadow = opened.storage, opened.study, opened.shadow
    result = SearchResult(study=study, config=config)
    gate = LatencyGate(config, study) if config.measures_latency else None
    reaper = shared_study.Reaper(grace=config.grace_period)
    lock = shared_study.decision_lock(config.storage, config.study_name)
    if plan.stratified:
        _enqueue_stratified_start(config, study, lock)
    rejected_in_a_row = errors_in_a_row = 0
    started = time.monotonic()
    with shared_study.Heartbeat(storage, config.heartbeat_interval) as heartbeat:
        ctx = TrialContext(config, study, shadow, lock, heartbeat, reaper, gate, clock)
        while True:
            with phase(ctx, "loop"):
                trials = study.get_trials(deepcopy=False)
                if reaper.reap(study, shadow, trials):
                    trials = study.get_trials(deepcopy=False)
                done, in_flight = slots(trials)
            if done >= config.trials:
                break
            if config.timeout is not None and time.monotonic() - started > config.timeout:
                break
            if done + in_flight >= config.trials:  # the last slots are being evaluated elsewhere
                time.sleep(POLL_SECONDS)
                continue
            outcome = one_trial(ctx)
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
        if config.timeout is None or time.monotonic() - started <= config.timeout:
            run_rungs(Rungs(config, plan.baselines), study, lock, on_job)
    return result


def _enqueue_stratified_start(config: SearchConfig, study: optuna.Study, lock) -> None:
    """A new study's first trials: one architecture per FLOPs stratum of the budget (``search.stratified``)."""
    from .stratified import stratified_start

    with lock():  # one worker enqueues, once: the others find the study started
        if study.get_trials(deepcopy=False):
            return
        for params in stratified_start(config.space, config.budget, config.seed, config.img_size, config.num_classes):
            study.enqueue_trial(params, user_attrs={"stratified": True}, skip_if_exists=True)


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
