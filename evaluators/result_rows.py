"""One CSV row per training: the result cache the fidelity, paper-claims and search-vs-baselines studies share.

A study that trains many (architecture, evaluator, settings) keeps each finished training as one
row of a ``CsvCache`` with ``RESULT_COLUMNS``: what was trained (``arch_id``, ``digest``,
``label``, ``seed``), by what (``evaluator``, ``settings`` and their hash), the outcome
(``score``, ``best_val_acc``, the per-epoch ``curve``, or ``error``) and its cost (``seconds``
of wall time, ``cpu_seconds`` of the process). Keys start with the evaluator's
``cache_key(arch)``, so a row of the same experiment made under another name (its *twin*) is
found by prefix and copied instead of trained again.

``timed_evaluate`` runs one evaluation and says how it went: a result, a recorded failure (an
``EvaluationFailed``, deterministic, so cached) or ``None`` for an unexpected error (logged, not
cached, so a rerun retries it).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import csv_cache
from .base import EvaluationFailed
from .csv_cache import CsvCache

if TYPE_CHECKING:
    from vitsearch.space import ArchConfig

    from .base import BaseEvaluator

RESULT_COLUMNS = [
    "key", "arch_id", "digest", "evaluator", "label", "seed", "settings_hash", "score", "best_val_acc", "curve",
    "seconds", "cpu_seconds", "device", "amp", "epochs", "threads", "error", "result", "settings", "finished",
]  # fmt: skip


def now() -> str:
    """The UTC time to the second, as the ``finished`` column records it."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def settings_hash(settings: dict[str, Any]) -> str:
    """12 hex digits of the settings' JSON (keys sorted): rows of one recipe share it."""
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def error_text(err: BaseException) -> str:
    """An ``EvaluationFailed``'s reason, else the first line of the message (or the exception's type)."""
    reason = getattr(err, "reason", None)
    if reason:
        return str(reason)
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def timed_evaluate(
    evaluator: BaseEvaluator,
    arch: ArchConfig,
    key: str,
    failures: tuple[type[BaseException], ...] = (EvaluationFailed,),
) -> dict[str, Any] | None:
    """Evaluate ``arch``: ``{"key", "result" or "error", "seconds", "cpu_seconds"}``.

    Args:
        failures: exceptions recorded as a failed row (``error``); any other one prints its traceback and
            returns ``None`` (not cached: a rerun retries it). ``(Exception,)`` records every error.
    """
    start, cpu = time.perf_counter(), time.process_time()

    def timed(**out: Any) -> dict[str, Any]:
        return {"key": key, **out, "seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}

    try:
        result = evaluator.evaluate(arch)
    except failures as err:
        return timed(error=error_text(err))
    except Exception:
        traceback.print_exc()
        return None
    return timed(result=result)


def result_row(
    evaluator: BaseEvaluator,
    arch_row: dict[str, Any],
    label: str,
    seed: int,
    threads: int,
    outcome: dict[str, Any],
) -> dict[str, Any]:
    """The row of ``outcome`` (from ``timed_evaluate``).

    Args:
        arch_row: ``arch_id`` and ``digest`` of what was trained.
        label: the row's name in the study (a profile, a claim side, a baseline).
        threads: the torch threads it trained with.
    """
    from .reference import curve

    result = outcome.get("result", {})
    settings = evaluator.settings()
    profile = getattr(evaluator, "profile", None)
    precision = getattr(evaluator, "precision", None)
    return {
        "key": outcome["key"],
        "arch_id": arch_row["arch_id"],
        "digest": arch_row["digest"],
        "evaluator": evaluator.name,
        "label": label,
        "seed": seed,
        "settings_hash": settings_hash(settings),
        "score": result.get("score", ""),
        "best_val_acc": result.get("best_val_acc", ""),
        "curve": " ".join(f"{a:.4f}" for a in curve(result)),
        "seconds": f"{outcome['seconds']:.2f}",
        "cpu_seconds": f"{outcome['cpu_seconds']:.2f}",
        "device": str(getattr(evaluator, "device", "cpu")),
        "amp": precision.amp if precision is not None else "off",
        "epochs": profile.epochs if profile is not None else "",
        "threads": threads,
        "error": outcome.get("error", ""),
        "result": json.dumps(result, sort_keys=True, default=str),
        "settings": json.dumps(settings, sort_keys=True, default=str),
        "finished": now(),
    }


class ResultRows(CsvCache):
    """A ``CsvCache`` of ``RESULT_COLUMNS`` rows, with claims beside it and twin lookup."""

    def __init__(self, path: str | Path):
        super().__init__(path, RESULT_COLUMNS)

    def claim(self, key: str) -> contextlib.AbstractContextManager[bool]:
        """Take ``key`` for this process (``csv_cache.claim`` in ``.<file name>.claims/`` beside the file)."""
        return csv_cache.claim(self.path.with_name(f".{self.path.name}.claims"), key)

    def twin(
        self, evaluator_key: str, rows: dict[str, dict[str, str]] | None = None, succeeded: bool = False
    ) -> dict[str, str] | None:
        """A row of the same experiment (its key starts with ``evaluator_key:``), or None.

        Args:
            rows: the rows by key, if already read.
            succeeded: only a row without ``error``.
        """
        rows = self.by_key() if rows is None else rows
        prefix = f"{evaluator_key}:"
        return next((r for k, r in rows.items() if k.startswith(prefix) and not (succeeded and r["error"])), None)
