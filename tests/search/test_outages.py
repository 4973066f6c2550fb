"""A database outage under a running study: reconnect, wait and say so once, stop cleanly past the limit, resume.

The server cases run ``vitsearch run --workers 4`` against a PostgreSQL server of the test's own
(``own_postgres``), which the test restarts (``pg_ctl restart -m fast``) or stops, as an operator would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import TOY_SPACE

from vitsearch.search import workers
from vitsearch.search.outage import LIMIT_ENV, Outage, StorageOutage, is_connection_lost, outage_limit

TRIALS = 60


class Lost(Exception):
    """What psycopg2 says when a restart kills the session under a query."""

    def __init__(self):
        super().__init__("server closed the connection unexpectedly\n\tThis probably means the server terminated")


def test_a_lost_connection_is_told_from_a_bad_statement():
    assert is_connection_lost(Lost())
    wrapped = RuntimeError("An exception is raised during the commit.")
    wrapped.__cause__ = Lost()  # Optuna's StorageInternalError wraps the driver's error
    assert is_connection_lost(wrapped)
    assert not is_connection_lost(ValueError("value too long for type character varying(512)"))


def test_an_outage_is_said_once_waited_out_and_its_end_said(monkeypatch):
    monkeypatch.setattr(time, "sleep", lambda s: None)
    said, calls = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise Lost()
        return "done"

    outage = Outage("postgresql://***@db/x", limit=60, say=said.append)
    assert outage.call(flaky) == "done" and len(calls) == 4
    assert len(said) == 2
    assert said[0].startswith("storage: lost postgresql://***@db/x (server closed the connection unexpectedly)")
    assert "retrying for up to 60 s" in said[0] and "is back after" in said[1]
    with pytest.raises(ValueError, match="too long"):  # not a lost connection: at once, no retry
        outage.call(lambda: (_ for _ in ()).throw(ValueError("too long")))


def test_past_the_limit_it_is_one_line_naming_the_storage(monkeypatch):
    clock = iter(range(0, 1000, 7))
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(time, "sleep", lambda s: None)
    outage = Outage("postgresql://***@db/x", limit=30, say=lambda line: None)
    with pytest.raises(StorageOutage) as err:
        outage.call(lambda: (_ for _ in ()).throw(Lost()))
    assert str(err.value).startswith("--storage: postgresql://***@db/x unreachable for ")
    assert str(err.value).endswith("run the same command again to resume") and "\n" not in str(err.value)


def test_a_lock_released_after_a_restart_closes_quietly():
    """The server restarted while the lock was held: the session (and the lock) are gone, and so is the
    rollback that closing the connection makes. That must not end the trial; any other error must."""

    class Connection:
        def __init__(self, err: Exception):
            self.err = err

        def close(self):
            raise self.err

    with workers._lost_connection_ok():
        Connection(Lost()).close()
    with pytest.raises(RuntimeError), workers._lost_connection_ok():
        Connection(RuntimeError("syntax error")).close()


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(LIMIT_ENV, "12.5")
    assert outage_limit() == 12.5
    monkeypatch.setenv(LIMIT_ENV, "soon")
    with pytest.raises(ValueError, match=f"{LIMIT_ENV}: expected seconds"):
        outage_limit()


# --- a real server ---------------------------------------------------------------------------------


def _command(tmp_path: Path, url: str) -> list[str]:
    space = tmp_path / "toy.yaml"
    space.write_text(yaml.safe_dump(TOY_SPACE))
    return [
        *(sys.executable, "-m", "vitsearch.search.cli", "run", "--space", str(space), "--budget", "1000G"),
        *("--trials", str(TRIALS), "--workers", "4", "--evaluator", "synflow", "--set", "img_size=32"),
        *("--set", "batch_size=4", "--storage", url, "--study", "outage", "--out", str(tmp_path / "run")),
        *("--no-baselines", "--rungs", "1", "--seed", "0"),
    ]


def _evaluated(url: str) -> dict[int, tuple]:
    """Finished evaluated trials, number -> (state, values), read over a connection of its own."""
    try:
        study = optuna.load_study(study_name="outage", storage=workers.open_storage(url))
    except Exception:  # noqa: BLE001 - not created yet, or the server is down: nothing seen
        return {}
    return {
        t.number: (t.state, t.values)
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.user_attrs.get("result", {}).get("evaluated")
    }


def _wait_for(url: str, count: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while len(_evaluated(url)) < count:
        assert process.poll() is None, f"the run ended before {count} trials: {process.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline, f"fewer than {count} trials in {timeout} s"
        time.sleep(0.3)


def _assert_exact(url: str) -> None:
    study = optuna.load_study(study_name="outage", storage=workers.open_storage(url))
    done = [t for t in study.trials if t.user_attrs.get("result", {}).get("evaluated")]
    assert len(done) == TRIALS
    assert len({t.user_attrs["record"]["digest"] for t in done}) == TRIALS, "an architecture was evaluated twice"
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def _url(server) -> str:
    return server.url


@pytest.mark.slow
def test_workers_ride_out_a_restart_and_a_30_second_outage(own_postgres, tmp_path):
    url = _url(own_postgres)
    env = {**os.environ, "OMP_NUM_THREADS": "1", LIMIT_ENV: "120"}
    process = subprocess.Popen(
        _command(tmp_path, url), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(url, 5, process)
        own_postgres.ctl("-m", "fast", "restart")
        before = _evaluated(url)
        _wait_for(url, len(before) + 5, process)
        own_postgres.ctl("-m", "fast", "stop")
        time.sleep(30)
        own_postgres.ctl("start")
        _, stderr = process.communicate(timeout=600)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    after = _evaluated(url)
    assert all(after[n] == state for n, state in before.items()), "a finished trial changed or was lost"
    _assert_exact(url)
    lost = [line for line in stderr.splitlines() if line.startswith("storage: lost")]
    back = [line for line in stderr.splitlines() if "is back after" in line]
    assert 1 <= len(lost) <= 2 and len(back) == len(lost), stderr[-3000:]  # the restart may pass unseen
    assert "Traceback" not in stderr, stderr[-5000:]


@pytest.mark.slow
def test_an_outage_past_the_limit_stops_with_one_line_and_the_same_command_resumes(own_postgres, tmp_path):
    url = _url(own_postgres)
    command = _command(tmp_path, url)
    env = {**os.environ, "OMP_NUM_THREADS": "1", LIMIT_ENV: "5"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(url, 5, process)
        before = _evaluated(url)
        own_postgres.ctl("-m", "fast", "stop")
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 2, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--storage:" in errors[0] and "run the same command again" in errors[0], stderr
    assert "Traceback" not in stderr, stderr[-5000:]
    own_postgres.ctl("start")
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = _evaluated(url)
    assert all(after[n] == state for n, state in before.items()), "a finished trial changed or was lost"
    _assert_exact(url)
