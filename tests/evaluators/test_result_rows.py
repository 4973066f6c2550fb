"""vitsearch.evaluators.result_rows: the training rows the studies share, and mean_sd."""

from __future__ import annotations

import json

import pytest

from vitsearch.evaluators.base import BaseEvaluator, EvaluationFailed
from vitsearch.evaluators.paired import mean_sd
from vitsearch.evaluators.result_rows import (
    RESULT_COLUMNS,
    ResultRows,
    error_text,
    result_row,
    settings_hash,
    timed_evaluate,
)
from vitsearch.space.presets import vit


class Scripted(BaseEvaluator):
    """Returns ``outcome``, or raises it when it is an exception."""

    name = "scripted"

    def __init__(self, outcome):
        self.outcome = outcome

    def settings(self):
        return {"lr": 0.001}

    def evaluate(self, arch, trial=None):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


ARCH = vit(64, 1, 2)


def test_a_result_becomes_a_row_with_its_curve_and_settings():
    ev = Scripted({"score": 0.9, "best_val_acc": 0.95, "val_acc_epoch_1": 0.5, "val_acc_epoch_2": 0.9})
    outcome = timed_evaluate(ev, ARCH, "k1")
    assert outcome["key"] == "k1" and outcome["seconds"] >= 0 and outcome["cpu_seconds"] >= 0
    row = result_row(ev, {"arch_id": "a0", "digest": ARCH.digest()}, "proxy-x", 3, 1, outcome)
    assert set(row) == set(RESULT_COLUMNS)
    assert (row["score"], row["best_val_acc"], row["curve"], row["error"]) == (0.9, 0.95, "0.5000 0.9000", "")
    assert (row["label"], row["seed"], row["threads"], row["evaluator"]) == ("proxy-x", 3, 1, "scripted")
    assert row["settings_hash"] == settings_hash({"lr": 0.001}) and len(row["settings_hash"]) == 12
    assert json.loads(row["settings"]) == {"lr": 0.001} and json.loads(row["result"])["score"] == 0.9


def test_a_failure_is_recorded_and_an_unexpected_error_is_not(capsys):
    failed = timed_evaluate(Scripted(EvaluationFailed("diverged")), ARCH, "k")
    assert failed["error"] == "diverged" and "result" not in failed
    row = result_row(Scripted(None), {"arch_id": "a", "digest": "d"}, "x", 0, 1, failed)
    assert (row["score"], row["curve"], row["error"], row["result"]) == ("", "", "diverged", "{}")
    assert timed_evaluate(Scripted(RuntimeError("a bug")), ARCH, "k") is None
    assert "RuntimeError: a bug" in capsys.readouterr().err  # logged for the rerun that retries it
    recorded = timed_evaluate(Scripted(RuntimeError("out of memory\nmore")), ARCH, "k", (Exception,))
    assert recorded["error"] == "out of memory"
    assert error_text(KeyError()) == "KeyError"


def test_twins_are_found_by_evaluator_key_and_claims_sit_beside_the_file(tmp_path):
    rows = ResultRows(tmp_path / "results.csv")
    rows.add({"key": "ev1:scheme:A", "label": "scheme/A", "error": "diverged", "finished": "t"})
    assert rows.twin("ev1")["label"] == "scheme/A"
    assert rows.twin("ev1", succeeded=True) is None and rows.twin("ev") is None
    rows.add({"key": "ev1:cca:B", "label": "cca/B", "error": "", "score": 0.9, "finished": "t"})
    assert rows.twin("ev1", succeeded=True)["label"] == "cca/B"
    with rows.claim("ev1") as mine:
        assert mine and len(list((tmp_path / ".results.csv.claims").iterdir())) == 1
        with rows.claim("ev1") as again:
            assert not again


@pytest.mark.parametrize(
    ("values", "text"),
    [([], "—"), ([0.5], "0.500 +- — (n=1)"), ([0.9, 0.92, 0.94], "0.920 +- 0.020 (n=3)")],
)
def test_mean_sd(values, text):
    assert mean_sd(values) == text
