"""The Optuna driver: sample -> budget check -> evaluate -> record, with resume and dedup.

Objectives: accuracy (maximise) and FLOPs of the target profile (minimise), optionally
params. A candidate over budget is rejected by ``analytic_flops`` before anything is built;
its trial carries a positive constraint value so TPE / NSGA-II learn to avoid the region
(Optuna's ``constraints_func``). ``--trials`` counts evaluated architectures; rejected and
duplicate samples are recorded but cost nothing and do not count.

Optuna does not prune multi-objective trials, so a training evaluator reports its
per-epoch accuracy to a *shadow* single-objective study (``<study>:pruning``, same storage)
whose pruner decides; the decision ends the real trial as PRUNED.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from vitsearch.evaluators import latency as timing
from vitsearch.evaluators.base import BaseEvaluator, EvaluationFailed
from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.evaluators.pruners import COST_ATTR, DEFAULT_PRUNER, make_pruner
from vitsearch.space import ArchConfig, ConfigError
from vitsearch.space.search_space import SearchSpace

SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    # TPE: multivariate over the conditional per-layer choices, constant liar for parallel workers.
    "tpe": lambda seed, constraints: optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, constant_liar=True, constraints_func=constraints
    ),
    "nsga2": lambda seed, constraints: optuna.samplers.NSGAIISampler(seed=seed, constraints_func=constraints),
    "random": lambda seed, constraints: optuna.samplers.RandomSampler(seed=seed),
}

MAX_REJECTED_PER_EVALUATION = 200  # give up when the sampler cannot find in-budget candidates


def make_sampler(name: str, seed: int | None = None) -> optuna.samplers.BaseSampler:
    try:
        factory = SAMPLERS[name]
    except KeyError:
        raise ValueError(f"--sampler: unknown {name!r} (choose from {', '.join(SAMPLERS)})") from None
    return factory(seed, constraint_values)


def constraint_values(trial: optuna.trial.FrozenTrial) -> list[float]:
    """<= 0 means feasible: FLOPs over budget, params over the cap (relative)."""
    return list(trial.user_attrs.get("record", {}).get("constraint", [0.0]))


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
    sampler: str = "tpe"
    seed: int | None = 0
    storage: str | None = None  # any Optuna storage URL; None = in memory
    study_name: str = "vitsearch"
    pruner: str = DEFAULT_PRUNER  # measured best in evaluators/pruners.py
    params_objective: bool = False
    timeout: float | None = None  # seconds for this invocation
    max_latency_ms: float | None = None  # latency cap measured on this machine (see LatencyGate)
    latency_objective: bool = False  # also minimise the measured latency
    latency: timing.LatencySettings = field(default_factory=timing.LatencySettings)

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


@dataclass
class SearchResult:
    study: optuna.Study
    config: SearchConfig
    outcomes: list[TrialOutcome] = field(default_factory=list)


def count_params_fast(arch: ArchConfig, img_size: int, in_chans: int, num_classes: int) -> int:
    """Parameters of the deployed model, built on the meta device (no memory, no init)."""
    import torch

    from vitsearch.space import build_model

    with torch.device("meta"):
        model = build_model(arch, img_size=img_size, in_chans=in_chans, num_classes=num_classes)
        reparameterize = getattr(model, "reparameterize", None)
        if reparameterize is not None:
            model = reparameterize()
    return sum(p.numel() for p in model.parameters())


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


def open_study(config: SearchConfig) -> optuna.Study:
    study = optuna.create_study(
        study_name=config.study_name,
        storage=config.storage,
        directions=config.directions,
        sampler=make_sampler(config.sampler, config.seed),
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
    return sum(1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("result", {}).get("evaluated"))


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


def run_search(config: SearchConfig, on_trial: Callable[[TrialOutcome, optuna.Study], None] | None = None):
    """Run (or resume) a study until ``config.trials`` architectures are evaluated.

    Args:
        config: what to search and how.
        on_trial: called after every trial (progress display).
    """
    check_budget(config)
    pruner = make_pruner(config.pruner)
    study = open_study(config)
    shadow = optuna.create_study(
        study_name=f"{config.study_name}:pruning",
        storage=config.storage,
        direction="maximize",
        pruner=pruner,
        load_if_exists=True,
    )
    result = SearchResult(study=study, config=config)
    seen = _completed_by_digest(study)
    gate = LatencyGate(config, study) if config.measures_latency else None
    rejected_in_a_row = 0
    started = time.monotonic()
    while evaluated_count(study) < config.trials:
        if config.timeout is not None and time.monotonic() - started > config.timeout:
            break
        outcome = _one_trial(config, study, shadow, seen, gate)
        result.outcomes.append(outcome)
        rejected_in_a_row = rejected_in_a_row + 1 if outcome.state in ("REJECTED", "DUPLICATE") else 0
        if on_trial is not None:
            on_trial(outcome, study)
        if rejected_in_a_row >= MAX_REJECTED_PER_EVALUATION:
            raise RuntimeError(
                f"{rejected_in_a_row} samples in a row were over budget or already evaluated: "
                "the space under this budget looks exhausted (raise --budget or widen the space)"
            )
    return result


def _completed_by_digest(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {
        t.user_attrs["record"]["digest"]: t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.user_attrs.get("result", {}).get("evaluated")
    }


def _one_trial(
    config: SearchConfig,
    study: optuna.Study,
    shadow: optuna.Study,
    seen: dict[str, optuna.trial.FrozenTrial],
    gate: LatencyGate | None = None,
) -> TrialOutcome:
    # Each user attr is a storage round trip (an fsync with SQLite): three per trial, not one per field.
    trial = study.ask()
    try:
        arch = config.space.sample(trial)
    except ConfigError:  # SearchSpace.check should make this impossible: a bug, so stop loudly
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    flops = analytic_flops(arch, config.img_size, config.in_chans, config.num_classes)
    params = count_params_fast(arch, config.img_size, config.in_chans, config.num_classes)
    over = [(flops - config.budget) / config.budget]
    if config.max_params is not None:
        over.append((params - config.max_params) / config.max_params)
    within_flops = max(over) <= 0
    latency_ms = gate.apply(arch, over) if gate is not None else None
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
            **_latency_record(gate, latency_ms),
        },
    )
    objectives = [flops] + ([params] if config.params_objective else [])
    if config.latency_objective:  # unmeasured (rejected by FLOPs): worst possible, and infeasible anyway
        objectives.append(latency_ms if latency_ms is not None else math.inf)
    outcome = TrialOutcome(trial.number, "COMPLETE", arch, flops, params)

    if max(over) > 0:  # never built, never trained
        trial.set_user_attr("result", {"over_budget": True})
        study.tell(trial, [0.0, *objectives])
        outcome.state, outcome.reason = "REJECTED", "over budget" if not within_flops else "over latency"
        return outcome
    if arch.digest() in seen:
        previous = seen[arch.digest()]
        outcome.state, outcome.score = "DUPLICATE", previous.values[0]
        trial.set_user_attr("result", {"duplicate_of": previous.number, "score": outcome.score})
        study.tell(trial, [outcome.score, *objectives])
        return outcome

    shadow_trial = shadow.ask()
    shadow_trial.set_user_attr(COST_ATTR, flops)  # what the default dominance pruner compares
    started = time.monotonic()
    result: dict[str, Any] = {"evaluated": True, "shadow_trial": shadow_trial.number}
    state = optuna.trial.TrialState.COMPLETE
    try:
        metrics = config.evaluator.evaluate(arch, _PruningTrial(trial, shadow_trial))
        score = float(metrics["score"])
        if not math.isfinite(score):
            raise EvaluationFailed(f"non-finite score {score}")
    except optuna.TrialPruned:
        state = optuna.trial.TrialState.PRUNED
    except EvaluationFailed as err:
        state, outcome.reason = optuna.trial.TrialState.FAIL, err.reason
        result["fail_reason"] = err.reason
    outcome.seconds = result["seconds"] = time.monotonic() - started
    outcome.state = state.name
    if state == optuna.trial.TrialState.COMPLETE:
        outcome.score = result["score"] = score
        result["metrics"] = {
            k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)
        }
    trial.set_user_attr("result", result)
    if state == optuna.trial.TrialState.COMPLETE:
        study.tell(trial, [score, *objectives])
        shadow.tell(shadow_trial, score)
        seen[arch.digest()] = study.get_trials(deepcopy=False)[trial.number]
    else:
        study.tell(trial, state=state)
        shadow.tell(shadow_trial, state=state)
    return outcome


def _latency_record(gate: LatencyGate | None, latency_ms: float | None) -> dict[str, Any]:
    if gate is None or latency_ms is None:
        return {}
    return {"latency_ms": latency_ms, "latency_settings": gate.settings}


def load_study(out_or_storage: str | Path, study_name: str | None = None) -> optuna.Study:
    """Open a finished or running study from its run directory (``study.db``) or a storage URL."""
    target = str(out_or_storage)
    storage = target if "://" in target else f"sqlite:///{Path(target) / 'study.db'}"
    if "://" not in target and not (Path(target) / "study.db").exists():
        raise ConfigError(target, "no study.db here (is it a vitsearch run directory?)")
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
