"""One study shared by many processes: storages, the decision lock, heartbeats and stale trials.

Every worker runs the same loop (``driver.run_search``) on the same storage and study name,
whether the workers are ``--workers N`` processes on one machine or the same command on
several machines. Three things make that safe:

* **A decision lock per study.** Deciding that a sampled architecture is evaluated (not a
  duplicate, and a slot of ``--trials`` is still free) reads the study and marks the trial,
  under a lock that the storage's users share: ``flock`` on a file beside an SQLite or
  journal file, an advisory lock on PostgreSQL (``GET_LOCK`` on MySQL), a thread lock in
  memory. The lock is held for milliseconds and is released by the OS or the database when
  its holder dies, so a ``kill -9`` cannot leave it taken.
* **Heartbeats.** Each worker beats for the trials it holds, every ``interval`` seconds, in
  the trial's system attrs. Optuna's own heartbeat covers RDB storages only (Optuna 5.0's
  ``JournalStorage`` has none), so this one is written through the generic storage API.
* **Stale trials are failed and re-queued.** A RUNNING trial is stale when its worker ran on
  this host and its process is gone (seen at once), or when its beat has not changed for
  ``grace`` seconds of this process's own clock (no clock skew between machines matters).
  The reaper marks it FAIL with the reason and enqueues its parameters again, so the next
  ``ask`` anywhere evaluates the same architecture first.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from vitsearch.space import ConfigError

from . import optuna_private as private
from . import outage
from .outage import first_line

HEARTBEAT_INTERVAL = 10.0  # seconds between beats
GRACE_PERIOD = 60.0  # a beat unchanged this long (another machine's trial) means its worker is gone
SQLITE_BUSY_TIMEOUT = 120.0  # seconds SQLite waits for a writer before "database is locked"
MAX_RETRIES = 2  # re-queues of one architecture whose worker died; a third death fails it for good

BEAT_KEY = "vitsearch:beat"  # {"host", "pid", "n"} written by the holder's heartbeat thread
CLAIM_KEY = "vitsearch:claim"  # "evaluate", written under the decision lock
SHADOW_KEY = "vitsearch:shadow_trial_id"  # the pruning shadow trial to fail with its main trial
JOURNAL_PREFIX = "journal:"

HOST = socket.gethostname()


# --- storages -----------------------------------------------------------------------------------


def open_storage(url: str | None) -> optuna.storages.BaseStorage:
    """An Optuna storage for a URL: SQLAlchemy URLs, ``journal:PATH`` for a journal file, None = memory."""
    if url is None:
        return optuna.storages.InMemoryStorage()
    if url.startswith(JOURNAL_PREFIX):
        path = Path(url[len(JOURNAL_PREFIX) :])
        if not path.parent.is_dir():
            raise ConfigError("--storage", f"no folder {path.parent} for the journal file")
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite") and "timeout=" not in url:  # sqlite:///x.db?timeout=5 sets it explicitly
        # Python's default of 5 s gives "database is locked" under a few parallel writers
        # (studies/bench_workers.py measures it); a long busy timeout lets SQLite queue them.
        engine_kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT}
    else:  # a database server: a connection dropped by a restart is replaced, a lost call retried (search.outage)
        engine_kwargs["pool_pre_ping"] = True
    try:
        if QUIET_OUTAGES and not url.startswith("sqlite"):  # a worker of a run whose storage opened: ride it out
            return outage.Outage(_redacted(url), say=_say_outage).call(lambda: _rdb_storage(url, engine_kwargs))
        return _rdb_storage(url, engine_kwargs)  # a first open fails at once: a wrong URL is one line, not a wait
    except outage.StorageOutage:
        raise
    except ModuleNotFoundError as err:  # e.g. psycopg2 for PostgreSQL
        raise ConfigError("--storage", f"{url.split(':')[0]} needs the Python package {err.name!r}") from None
    except Exception as err:  # SQLAlchemy's URL and connection errors: one line, naming the URL's scheme
        raise ConfigError("--storage", f"cannot open {_redacted(url)}: {first_line(err)}") from None


SCHEMA_RACES = ("already exists", "UNIQUE constraint", "duplicate key")


SQLITE_MODE_ENV = "VITSEARCH_SQLITE_MODE"  # "off" (default) or "wal": see _sqlite_durability
SQLITE_MODES = {
    "wal": ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"),
    "off": ("PRAGMA synchronous=OFF",),
}


def sqlite_mode() -> str:
    mode = os.environ.get(SQLITE_MODE_ENV, "off")
    if mode not in SQLITE_MODES:
        raise ConfigError(SQLITE_MODE_ENV, f"unknown {mode!r} (choose from {', '.join(SQLITE_MODES)})")
    return mode


def _sqlite_durability(engine) -> None:
    """How an SQLite study commits, on every connection (``$VITSEARCH_SQLITE_MODE``).

    Through Optuna's public API every ``suggest_*`` and user attr is its own commit; with SQLite's
    default (a rollback journal and an fsync per commit) sampling the full space took 1.4 s per trial.

    * ``off`` (default): rollback journal, ``synchronous=OFF``: no fsync at all. A killed process
      loses nothing; an OS crash or power cut can lose recent commits and corrupt the file.
    * ``wal``: write-ahead log, ``synchronous=NORMAL``. A commit appends to the
      ``-wal`` file and fsyncs only at checkpoints: a killed process loses nothing it committed,
      and an OS crash or power cut loses at most the last commits since the last checkpoint,
      never the file. But it is a property of the file (a study opened once in WAL stays WAL)
      and it leaves ``-wal`` / ``-shm`` files beside it while any process has it open.

    ``studies/bench_driver.py --workers ... --sqlite-modes off wal`` measures both (docs/results/driver.md).
    """
    from sqlalchemy import event

    pragmas = SQLITE_MODES[sqlite_mode()]

    def on_connect(connection, _record) -> None:
        cursor = connection.cursor()
        for pragma in pragmas:
            cursor.execute(pragma)
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while the schema was created reconnect with the pragmas


def _rdb_storage(url: str, engine_kwargs: dict[str, Any], attempts: int = 5) -> optuna.storages.RDBStorage:
    # Workers starting together race to create the schema of a new database: SQLite files are
    # created under the file lock, and on a server the losers of the race retry.
    lock = decision_lock(url, "") if url.startswith("sqlite") else ThreadLock()
    for attempt in range(attempts):
        try:
            with lock():
                if url.startswith("sqlite"):
                    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
                    _sqlite_durability(storage.engine)
                else:
                    storage = outage.resilient_rdb_storage()(url, engine_kwargs=engine_kwargs)
                    storage.outage = outage.Outage(_redacted(url), say=_say_outage)
                return storage
        except Exception as err:
            if not any(s in str(err) for s in SCHEMA_RACES) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


QUIET_OUTAGES = False  # extra worker processes (live.worker_main) wait quietly: the main process says it once


def _say_outage(line: str) -> None:
    if not QUIET_OUTAGES:
        print(line, file=sys.stderr, flush=True)


def _redacted(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest


def is_out_of_memory(err: BaseException) -> bool:
    import torch

    return isinstance(err, (MemoryError, torch.OutOfMemoryError)) or (
        isinstance(err, RuntimeError) and ("out of memory" in str(err) or "can't allocate memory" in str(err))
    )


def error_reason(err: BaseException) -> str:
    """One line for a failed evaluation: the exception, or ``out of memory (...)`` (trials and rung jobs)."""
    if is_out_of_memory(err):
        return f"out of memory ({type(err).__name__}: {first_line(err, empty='(no message)')})"
    return f"{type(err).__name__}: {first_line(err, empty='(no message)')}"


# --- the decision lock --------------------------------------------------------------------------


class FileLock:
    """``flock`` on a file: exclusive between processes of one machine, released when its holder dies."""

    def __init__(self, path: Path):
        self.path = path

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        import fcntl

        with open(self.path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class DatabaseLock:
    """A named lock held by one database session; the server drops it when the session dies."""

    STATEMENTS = {
        "postgresql": ("SELECT pg_advisory_lock(:key)", "SELECT pg_advisory_unlock(:key)"),
        "mysql": ("SELECT GET_LOCK(:name, -1)", "SELECT RELEASE_LOCK(:name)"),
    }

    def __init__(self, url: str, dialect: str, study_name: str):
        import sqlalchemy

        self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
        self.acquire, self.release = (sqlalchemy.text(s) for s in self.STATEMENTS[dialect])
        digest = hashlib.sha256(f"vitsearch:{study_name}".encode()).digest()
        self.params = {"key": int.from_bytes(digest[:8], "big", signed=True), "name": f"vitsearch:{study_name}"[:64]}
        self.outage = outage.Outage(_redacted(url), say=_say_outage)

    def _connect(self):
        connection = self.engine.connect()
        try:
            connection.execute(self.acquire, self.params)
        except BaseException:
            connection.close()
            raise
        return connection

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        connection = self.outage.call(self._connect)  # a server restarting: wait for it (search.outage)
        try:
            yield
        finally:
            # A server restarted while the lock was held dropped the session, and the lock with it: the
            # release and the close's rollback then fail, harmlessly. Any other error still raises.
            try:
                with _lost_connection_ok():
                    connection.execute(self.release, self.params)
            finally:
                with _lost_connection_ok():
                    connection.close()


@contextlib.contextmanager
def _lost_connection_ok() -> Iterator[None]:
    """Let a lost-connection error pass (``outage.is_connection_lost``); any other error raises."""
    try:
        yield
    except Exception as err:
        if not outage.is_connection_lost(err):
            raise


class ThreadLock:
    """In-memory studies live in one process: a thread lock is enough."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            yield


def decision_lock(url: str | None, study_name: str) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """The lock every worker of ``study_name`` on ``url`` takes to decide what to evaluate."""
    if url is None:
        return ThreadLock()
    if url.startswith(JOURNAL_PREFIX):
        return FileLock(Path(f"{url[len(JOURNAL_PREFIX) :]}.vitsearch.lock"))
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return ThreadLock()
        return FileLock(Path(f"{parsed.database}.vitsearch.lock"))
    if dialect in DatabaseLock.STATEMENTS:
        return DatabaseLock(url, dialect, study_name)
    raise ConfigError("--storage", f"{dialect} is not supported (use sqlite, postgresql, mysql or journal:PATH)")


# --- heartbeats ---------------------------------------------------------------------------------


class Heartbeat:
    """A daemon thread beating for the trials this process holds (main and pruning shadow)."""

    def __init__(self, storage: optuna.storages.BaseStorage, interval: float = HEARTBEAT_INTERVAL):
        self.storage, self.interval = storage, interval
        self.held: set[int] = set()
        self.count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vitsearch-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def hold(self, trial_id: int, beaten: bool = False) -> None:
        """Beat for ``trial_id`` from now on; the first beat is written before this returns (unless ``beaten``)."""
        with self._lock:
            self.held.add(trial_id)
            if not beaten:
                self._beat(trial_id)

    def release(self, trial_id: int) -> None:
        with self._lock:
            self.held.discard(trial_id)

    def next_beat(self) -> dict[str, Any]:
        self.count += 1
        return {"host": HOST, "pid": os.getpid(), "n": self.count}

    def _beat(self, trial_id: int) -> None:
        try:
            self.storage.set_trial_system_attr(trial_id, BEAT_KEY, self.next_beat())
        except optuna.exceptions.UpdateFinishedTrialError:
            self.held.discard(trial_id)  # finished meanwhile (told, or reaped by another worker)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                try:
                    for trial_id in list(self.held):
                        self._beat(trial_id)
                except outage.StorageOutage:
                    return  # the storage is gone past the limit: the worker's own next call says so, once


def ask_held(study: optuna.Study, heartbeat: Heartbeat) -> optuna.Trial:
    """``study.ask()``, but a new trial is created with its worker's first beat in the same write.

    After a plain ``ask``, a kill before the first beat leaves a RUNNING trial that names no
    worker, which only the grace period can reap (the kill test hit that window). A re-queued
    (WAITING) trial is popped as ``ask`` pops it and beaten at once; should a kill fall between
    the two, its parameters are still in its ``fixed_params`` for the reaper to re-queue.
    """
    private.forget_cached_trials(study)  # what Study.ask does: samplers read the study afresh
    trial_id = private.pop_waiting_trial_id(study)
    if trial_id is None:
        return new_held_trial(study, heartbeat)
    heartbeat.hold(trial_id)
    return optuna.Trial(study, trial_id)


def new_held_trial(study: optuna.Study, heartbeat: Heartbeat, user_attrs: dict[str, Any] | None = None) -> optuna.Trial:
    """A new RUNNING trial written with its first beat and ``user_attrs`` in one storage call (no queue read)."""
    template = optuna.trial.create_trial(
        state=TrialState.RUNNING, system_attrs={BEAT_KEY: heartbeat.next_beat()}, user_attrs=user_attrs or {}
    )
    trial_id = private.create_running_trial(study, template)
    heartbeat.hold(trial_id, beaten=True)
    return optuna.Trial(study, trial_id)


# --- stale trials -------------------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


@dataclass
class Reaper:
    """Finds the RUNNING trials whose worker is gone, fails them with a reason and re-queues them."""

    grace: float = GRACE_PERIOD
    seen: dict[int, tuple[Any, float]] = field(default_factory=dict)  # trial id -> (beat, first seen then)

    def stale_reason(self, trial: optuna.trial.FrozenTrial, now: float) -> str | None:
        beat = trial.system_attrs.get(BEAT_KEY)
        if beat and beat["host"] == HOST and beat["pid"] != os.getpid() and not process_alive(beat["pid"]):
            return f"its worker (pid {beat['pid']} on {HOST}) died"
        key = (beat or {}).get("n"), (beat or {}).get("pid"), (beat or {}).get("host")
        last, since = self.seen.get(private.trial_id(trial), (None, now))
        if last != key:
            self.seen[private.trial_id(trial)] = (key, now)
            return None
        if now - since > self.grace:
            where = f"pid {beat['pid']} on {beat['host']}" if beat else "a worker that never beat"
            return f"no heartbeat from its worker ({where}) for {now - since:.0f} s"
        return None

    def reap(
        self,
        study: optuna.Study,
        shadow: optuna.Study | None = None,
        trials: list[optuna.trial.FrozenTrial] | None = None,
    ) -> list[int]:
        """Fail and re-queue the stale trials of ``study``; the numbers of those this call failed.

        ``trials``: the study's trials as just read by the caller (saves reading them again).
        """
        now = time.monotonic()
        if trials is None:
            trials = study.get_trials(deepcopy=False)
        running = [t for t in trials if t.state == TrialState.RUNNING]
        reaped = []
        for trial in running:
            reason = self.stale_reason(trial, now)
            if reason is not None and _fail_stale(study, trial, reason):
                reaped.append(trial.number)
                self.seen.pop(private.trial_id(trial), None)
                if shadow is not None:
                    fail_shadow_trial(shadow, trial.system_attrs)
        alive = {private.trial_id(t) for t in running}
        self.seen = {k: v for k, v in self.seen.items() if k in alive}
        return reaped


def fail_shadow_trial(shadow: optuna.Study | None, main_system_attrs: dict[str, Any]) -> None:
    """FAIL the pruning shadow trial recorded on a main trial (if any, and not finished already)."""
    shadow_id = main_system_attrs.get(SHADOW_KEY)
    if shadow is not None and shadow_id is not None:
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            private.storage_of(shadow).set_trial_state_values(shadow_id, TrialState.FAIL)


def _fail_stale(study: optuna.Study, trial: optuna.trial.FrozenTrial, reason: str) -> bool:
    """FAIL ``trial`` unless another worker got there first; re-queue its parameters (bounded)."""
    storage, stored_id = private.storage_of(study), private.trial_id(trial)
    retries = int(trial.user_attrs.get("retries", 0))
    params = sampled_params(trial)
    requeue = retries < MAX_RETRIES and bool(params)
    if not params:
        reason += "; nothing was sampled yet"
    else:
        reason += "; re-queued" if requeue else f"; not re-queued after {retries} retries"
    try:
        storage.set_trial_user_attr(stored_id, "result", {"fail_reason": reason})
        storage.set_trial_state_values(stored_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # its worker told it, or another reaper failed it
    if requeue:
        requeue_trial(study, params, trial.number, retries + 1)
    return True


def sampled_params(trial: optuna.trial.FrozenTrial | optuna.Trial) -> dict[str, Any]:
    """What re-queuing a trial must keep: its parameters, or a re-queued trial's own before it sampled."""
    return trial.params or trial.system_attrs.get("fixed_params", {})


def requeue_trial(study: optuna.Study, params: dict[str, Any], number: int, retries: int) -> None:
    """Queue trial ``number``'s parameters again: the next ``ask`` of any worker samples this architecture."""
    study.enqueue_trial(params, user_attrs={"retry_of": number, "retries": retries}, skip_if_exists=False)
