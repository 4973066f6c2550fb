"""A search checked once: the run plan that the driver, the baselines and every worker process receive.

``RunPlan.check`` validates what a run needs before anything is written: the budget against the
space's smallest architecture, the sampler and pruner names, a storage that worker processes can
share. ``RunPlan.open`` then opens the storage, the study (building its sampler) and the pruning
shadow study, once per process. ``vitsearch run`` checks one plan and hands it to
``live.run_plan``, which gives it to ``driver.run_search`` and to every worker process.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from vitsearch.evaluators import latency as timing
from vitsearch.evaluators.base import BaseEvaluator
from vitsearch.evaluators.complexity import analytic_flops
from vitsearch.evaluators.pruners import make_pruner
from vitsearch.space import ArchConfig, ConfigError
from vitsearch.space.registry import Registry, UnknownNameError
from vitsearch.space.search_space import SearchSpace

from . import workers as shared_study

SAMPLERS: Registry[Callable[..., optuna.samplers.BaseSampler]] = Registry("sampler")
# TPE: multivariate over the conditional per-layer choices, constant liar for parallel workers.
SAMPLERS.register("tpe")(
    lambda seed: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True)
)
SAMPLERS.register("nsga2")(lambda seed: optuna.samplers.NSGAIISampler(seed=seed))
SAMPLERS.register("random")(lambda seed: optuna.samplers.RandomSampler(seed=seed))

# `auto`: TPE for short searches, NSGA-II for long ones. studies/bench_samplers.md (full space,
# 2 GFLOPs, 5 seeds): TPE leads in hypervolume up to 100 trials (6.59 vs 6.05), NSGA-II at 200
# (10.33 vs 7.71); studies/bench_driver.py: TPE's sampling over ~100 choices costs 186 ms per trial
# at 100 trials and grows with the study, NSGA-II's 8 ms.
AUTO_NSGA2_FROM_TRIALS = 200
MAX_REJECTED_PER_EVALUATION = 200  # give up when the sampler cannot find in-budget candidates


def sampler_for(name: str, trials: int, promotes: bool = False) -> str:
    """The sampler a run uses. ``auto``: random when rungs promote, else tpe below ``AUTO_NSGA2_FROM_TRIALS``
    trials and nsga2 from there.

    Why random under rungs: rung 0's short training under-rates large models, and a model-based
    sampler learning from it drifts to small ones (a default 2 GFLOPs run with TPE evaluated 10% of
    its architectures in [1, 2] GFLOPs). Uniform draws from the budget-fitted space keep every
    FLOPs region covered, and the rungs decide between them (successive halving over random
    draws, as ASHA and Hyperband do).
    """
    if name != "auto":
        return name
    if promotes:
        return "random"
    return "nsga2" if trials >= AUTO_NSGA2_FROM_TRIALS else "tpe"


def make_sampler(name: str, seed: int | None = None, trials: int = 0, promotes: bool = False):
    """The named Optuna sampler (``auto`` resolved by ``sampler_for``)."""
    name = sampler_for(name, trials, promotes)
    try:
        factory = SAMPLERS.get(name)
    except UnknownNameError as err:
        raise ValueError(f"--sampler: unknown {name!r} (choose from auto, {', '.join(err.choices)})") from None
    return factory(seed)


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
    pruner: str = "none"  # the rungs stop the weak; DEFAULT_PRUNER (pareto) is the best pruner when one is wanted
    params_objective: bool = False
    timeout: float | None = None  # seconds for this invocation
    max_latency_ms: float | None = None  # latency cap measured on this machine (see LatencyGate)
    latency_objective: bool = False  # also minimise the measured latency
    latency: timing.LatencySettings = field(default_factory=timing.LatencySettings)
    workers: int = 1  # processes on this machine (run_with_progress starts them; run_search is one)
    baselines: bool = True  # score the hand-designed baselines too, at the top rung (search.baselines)
    rungs: int = 3  # successive halving (search.rungs); 1 = no promotion
    eta: int = 3  # each rung keeps 1/eta of the rung below
    growth: int = 2  # rung r trains growth**r times as long as rung 0 (studies/fidelity/replay.md: 2 is enough)
    heartbeat_interval: float = shared_study.HEARTBEAT_INTERVAL
    grace_period: float = shared_study.GRACE_PERIOD

    @property
    def directions(self) -> list[str]:
        extra = (["minimize"] if self.params_objective else []) + (["minimize"] if self.latency_objective else [])
        return ["maximize", "minimize"] + extra

    @property
    def measures_latency(self) -> bool:
        return self.max_latency_ms is not None or self.latency_objective

    @property
    def objective_columns(self) -> list[str]:
        """What each objective is, as a column of the trials table (recorded as the study's metric names)."""
        extra = (["params"] if self.params_objective else []) + (["latency_ms"] if self.latency_objective else [])
        return ["score", "flops", *extra]


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


def make_evaluator(name: str, data: str | None, options: dict[str, Any]) -> BaseEvaluator:
    """The evaluator ``name`` with ``data`` and its settings; a bad name or setting is a ConfigError."""
    from vitsearch.evaluators.base import get_evaluator_class

    kwargs = dict(options)
    if data is not None:
        kwargs["data"] = data
    try:
        cls = get_evaluator_class(name)
    except ValueError as err:
        raise ConfigError("--evaluator", str(err)) from None
    try:  # the evaluators' own ValueErrors (bad data, a bad checkpoint) are one line naming the problem
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError("--set", f"evaluator {name!r} does not take these settings ({err})") from None


def study_signature(config: SearchConfig) -> dict[str, Any]:
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


@dataclass
class OpenStudy:
    """The storage, study and pruning shadow study of one process, opened once."""

    storage: optuna.storages.BaseStorage
    study: optuna.Study
    # ``<study>:pruning``: single-objective, so Optuna's pruners can decide; None without a pruner,
    # so a default run writes no shadow trials that decide nothing
    shadow: optuna.Study | None


@dataclass(frozen=True)
class RunPlan:
    """A ``SearchConfig`` whose budget, sampler, pruner and storage were checked, once."""

    config: SearchConfig
    sampler: str  # tpe, nsga2 or random (``auto`` resolved by the trial count)
    smallest_flops: int  # of the space's smallest architecture, within the budget
    baselines: dict[str, ArchConfig] = field(default_factory=dict)  # name -> architecture, scored at the top rung
    rung_count: int = 1  # rungs the evaluator has (a zero-cost score has one, whatever --rungs says)

    @property
    def stratified(self) -> bool:
        """Whether a new study starts with one draw per FLOPs stratum (``search.stratified``): the auto sampler's
        uniform draws under rungs."""
        return self.config.sampler == "auto" and self.sampler == "random"

    @classmethod
    def check(cls, config: SearchConfig) -> RunPlan:
        """Refuse what would fail later: one ConfigError naming the option."""
        _, smallest_flops = check_budget(config)
        from .rungs import ladder

        rung_count = len(ladder(config.evaluator, config.rungs, config.growth))
        sampler = sampler_for(config.sampler, config.trials, rung_count > 1)
        if sampler not in SAMPLERS:
            raise ConfigError("--sampler", f"unknown {config.sampler!r} (choose from auto, {', '.join(SAMPLERS)})")
        try:
            make_pruner(config.pruner)
        except ValueError as err:
            raise ConfigError("--pruner", str(err)) from None
        if config.workers > 1 and config.storage is None:
            raise ConfigError("--workers", "needs a storage that processes share (not in-memory)")
        for flag, value, least in (
            ("--rungs", config.rungs, 1),
            ("--eta", config.eta, 2),
            ("--rung-growth", config.growth, 2),
        ):
            if value < least:
                raise ConfigError(flag, f"must be >= {least}, got {value}")
        from .baselines import budget_baselines

        found = budget_baselines(config.budget, config.img_size, config.num_classes) if config.baselines else {}
        return cls(config, sampler, smallest_flops, found, rung_count)

    def open(self) -> OpenStudy:
        """Open (or create) the study and its shadow; refuse a study recorded with other settings."""
        config = self.config
        storage = shared_study.open_storage(config.storage)
        study = optuna.create_study(
            study_name=config.study_name,
            storage=storage,
            directions=config.directions,
            sampler=SAMPLERS[self.sampler](config.seed),
            load_if_exists=True,
        )
        _check_signature(study, config)
        if study.metric_names is None:  # results read the front's columns from them (results.objective_columns)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(config.objective_columns)
        pruner = make_pruner(config.pruner)
        shadow = None
        if not isinstance(pruner, optuna.pruners.NopPruner):
            shadow = optuna.create_study(
                study_name=f"{config.study_name}:pruning",
                storage=storage,
                direction="maximize",
                pruner=pruner,
                load_if_exists=True,
            )
        return OpenStudy(storage, study, shadow)


def _check_signature(study: optuna.Study, config: SearchConfig) -> None:
    recorded = study.user_attrs.get("search")
    current = study_signature(config)
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
