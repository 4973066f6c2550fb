"""Riding out a database outage: reconnect, wait with back-off, say so once, and stop cleanly past a limit.

A PostgreSQL server restarted under a running study (``pg_ctl restart -m fast``) drops every
connection: each pooled connection is dead, and a query in flight fails. Three things keep a
worker going:

* **Pre-ping.** The connection pool tests a connection when it is checked out and replaces a
  dead one (SQLAlchemy's ``pool_pre_ping``), so a restart long finished costs nothing.
* **A bounded retry with back-off on storage calls.** A storage call that fails because the
  connection was lost (not because of what it wrote) is retried, waiting 0.5, 1, 2 ... 5 s
  between tries. The first failure prints one line on stderr; the first success after it
  prints how long the storage was gone. Retried calls are idempotent by key (attributes,
  states, values), except ``create_new_trial``; the decision lock and the exact-count check
  after it keep a repeated creation from becoming a second evaluation.
* **A limit.** Past ``limit`` seconds of the same outage, the call raises ``StorageOutage``:
  one line naming the storage, exit 2. Nothing finished is lost (every result is committed as
  it finishes), and the same command resumes the study.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from vitsearch.space import ConfigError

T = TypeVar("T")

OUTAGE_LIMIT = 300.0  # seconds a worker waits for its storage before it stops (resumable)
LIMIT_ENV = "VITSEARCH_STORAGE_WAIT"  # overrides OUTAGE_LIMIT, in seconds
BACKOFF = (0.5, 1.0, 2.0, 4.0, 5.0)  # seconds between tries; the last repeats

# Substrings of the driver's message when the connection, not the statement, failed.
CONNECTION_LOST = (
    "server closed the connection",
    "connection refused",
    "could not connect",
    "terminating connection",
    "connection already closed",
    "ssl syscall error",
    "the database system is shutting down",
    "the database system is starting up",
    "connection to server",
    "no connection to the server",
    "lost connection",
    "connection reset",
    "broken pipe",
    "can't reconnect until invalid transaction is rolled back",
    "this connection is closed",
)


def outage_limit() -> float:
    """Seconds to wait for a lost storage: ``$VITSEARCH_STORAGE_WAIT`` or ``OUTAGE_LIMIT``."""
    import os

    text = os.environ.get(LIMIT_ENV)
    if text is None:
        return OUTAGE_LIMIT
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(LIMIT_ENV, f"expected seconds, got {text!r}") from None
    if value < 0:
        raise ConfigError(LIMIT_ENV, f"must be >= 0, got {text!r}")
    return value


class StorageOutage(ConfigError):
    """The storage stayed unreachable past the limit: one line, and the study resumes with the same command."""


def is_connection_lost(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) says the database connection was lost, not that a statement was wrong."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if getattr(current, "connection_invalidated", False):
            return True
        text = str(current).lower()
        if any(marker in text for marker in CONNECTION_LOST):
            return True
        current = current.__cause__ or current.__context__
    return False


def first_line(err: BaseException, empty: str | None = None) -> str:
    """An error as one line (SQLAlchemy's wrapped DB error unwrapped); ``empty`` (default: its type) if blank."""
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0][:300] if text else (empty or type(err).__name__)


def root_cause(err: BaseException) -> BaseException:
    """The innermost cause: the driver's own words, under Optuna's and SQLAlchemy's wrappers."""
    seen = {id(err)}
    while (inner := err.__cause__ or err.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        err = inner
    return err


class Outage:
    """The retry policy of one storage: how long to wait, and whether this process has said so yet."""

    active: set[int] = set()  # the Outage objects of this process now waiting (ids)

    def __init__(self, where: str, limit: float | None = None, say: Callable[[str], None] | None = None):
        self.where = where  # the storage, as it may be printed (password redacted)
        self.limit = limit if limit is not None else outage_limit()
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.since: float | None = None  # when the current outage began (monotonic)

    def call(self, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                result = fn()
            except Exception as err:
                if not is_connection_lost(err):
                    raise
                self._wait(err, attempt)
                attempt += 1
                continue
            if self.since is not None:
                Outage.active.discard(id(self))
                if not Outage.active:  # the last of this process's waits on the storage
                    self.say(f"storage: {self.where} is back after {time.monotonic() - self.since:.0f} s; going on")
                self.since = None
            return result

    def _wait(self, err: BaseException, attempt: int) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            if not Outage.active:  # said once per process, however many storage objects wait
                self.say(
                    f"storage: lost {self.where} ({first_line(root_cause(err))}); retrying for up to "
                    f"{self.limit:.0f} s (finished trials are safe)"
                )
            Outage.active.add(id(self))
        if now - self.since > self.limit:
            waited = now - self.since
            self.since = None
            Outage.active.discard(id(self))
            raise StorageOutage(
                "--storage",
                f"{self.where} unreachable for {waited:.0f} s ({first_line(root_cause(err))}); "
                "nothing finished is lost: run the same command again to resume",
            ) from None
        time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])


def retrying(method: Callable[..., T]) -> Callable[..., T]:
    """A storage method run through its storage's ``outage`` policy."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> T:
        return self.outage.call(lambda: method(self, *args, **kwargs))

    return wrapper


# Not retried: schema and version management (run once at open, where a failure is a clear error) and the
# heartbeat settings (plain reads of the constructor's arguments).
NOT_RETRIED = frozenset(
    {
        "remove_session", "upgrade", "get_current_version", "get_head_version", "get_all_versions",
        "check_table_schema_compatibility", "get_heartbeat_interval", "get_heartbeat_stale_trial_callback",
        "is_heartbeat_enabled",
    }
)  # fmt: skip


# Optuna's _CachedStorage (every study's storage wraps its RDBStorage in one) calls these private methods of it.
CACHED_STORAGE_CALLS = (
    "_create_new_trial", "_set_trial_param", "_get_best_trial_id", "_get_trials", "_get_stale_trial_ids",
)  # fmt: skip


def _resilient_class() -> type:
    from optuna.storages import RDBStorage

    namespace: dict[str, Any] = {
        "__doc__": "Optuna's RDBStorage with every storage call retried through ``self.outage`` (search.outage).",
        "outage": Outage("the storage"),
    }
    for name in [*dir(RDBStorage), *CACHED_STORAGE_CALLS]:
        method = getattr(RDBStorage, name)
        if (not name.startswith("_") or name in CACHED_STORAGE_CALLS) and name not in NOT_RETRIED and callable(method):
            namespace[name] = retrying(method)
    return type("ResilientRDBStorage", (RDBStorage,), namespace)


@functools.cache
def resilient_rdb_storage() -> type:
    """The RDBStorage subclass a database server's studies are opened with (built once, on first use)."""
    return _resilient_class()
