"""The evaluator contract: ``BaseEvaluator``, the name-keyed registry and the failure type.

An evaluator turns an ``ArchConfig`` into numbers (``evaluate(arch, trial=None) ->
dict[str, float]``); every result dict carries ``"score"``, the value a search maximises,
plus whatever else the evaluator measured. ``settings()`` is a JSON-able dict of
everything that changes the numbers (data, profile, seed...): it is recorded next to every
result and, with the architecture digest, keys the on-disk cache (``cache_key``).

Evaluators register with ``@register_evaluator("name")``, one module per evaluator, and
are built by name with ``get_evaluator("proxy", epochs=3)``.
"""

from __future__ import annotations

import abc
import hashlib
import json
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from vitsearch.space.registry import Registry

if TYPE_CHECKING:
    import optuna

    from vitsearch.space import ArchConfig

# Every module of this package is imported on the first lookup, so a new evaluator is one file.
EVALUATORS: Registry[type[BaseEvaluator]] = Registry("evaluator", discover=("vitsearch.evaluators",), tag="name")

E = TypeVar("E")


class EvaluationFailed(RuntimeError):
    """The architecture could not be scored (divergence, NaN, overflow...).

    The search driver turns this into a failed Optuna trial (``reason`` goes into the trial's
    user attrs); it must never stop the study. ``partial`` holds what was measured before
    the failure (e.g. the epochs reached).
    """

    def __init__(self, reason: str, partial: dict[str, float] | None = None):
        self.reason = reason
        self.partial = dict(partial or {})
        super().__init__(reason)


class DivergedError(EvaluationFailed):
    """Training produced a NaN / infinite loss or parameters."""


class BaseEvaluator(abc.ABC):
    """An accuracy estimate for an architecture.

    Subclasses set ``name`` through ``@register_evaluator`` and implement ``evaluate`` and
    ``settings``.
    """

    name: ClassVar[str] = ""

    @abc.abstractmethod
    def evaluate(self, arch: ArchConfig, trial: optuna.Trial | None = None) -> dict[str, float]:
        """Score one architecture.

        Args:
            arch: the architecture, as it is described at the target profile.
            trial: the Optuna trial to report intermediate values to (training evaluators);
                ``None`` outside a study.

        Returns:
            A dict with at least ``"score"`` (higher is better).

        Raises:
            EvaluationFailed: the architecture cannot be scored; the trial should fail.
            optuna.TrialPruned: the trial's pruner stopped it.
        """

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Everything that changes this evaluator's numbers, as plain JSON-able values."""

    def at_rung(self, rung: int, growth: int) -> BaseEvaluator | None:
        """This estimate at a higher fidelity, ``growth**rung`` times the training; ``None`` when it has no ladder.

        Successive halving (``search/rungs.py``) takes the best of each FLOPs region up the
        rungs. Scores that do not train (zero-cost, supernet) have a single fidelity.
        """
        return None

    def cache_key(self, arch: ArchConfig) -> str:
        """A stable key for (architecture, evaluator name, settings)."""
        blob = json.dumps(
            {"arch": arch.digest(), "evaluator": self.name, "settings": self.settings()},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:20]

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return f"{type(self).__name__}({args})"


def register_evaluator(name: str):
    """Class decorator: make a ``BaseEvaluator`` subclass selectable by ``name``."""
    return EVALUATORS.register(name)


def list_evaluators() -> list[str]:
    return EVALUATORS.names()


def get_evaluator_class(name: str) -> type[BaseEvaluator]:
    return EVALUATORS.get(name)


def get_evaluator(name: str, **kwargs: Any) -> BaseEvaluator:
    """Build the evaluator registered as ``name`` with its keyword settings."""
    return get_evaluator_class(name)(**kwargs)
