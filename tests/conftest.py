"""Fixtures for the whole suite: seeding, and storages for the search tests (PostgreSQL among them).

``postgres_url``: an empty database of its own for each test, on a PostgreSQL server that is

- the one ``VITSEARCH_TEST_POSTGRES_URL`` names (a SQLAlchemy URL, as ``.ci/run`` exports:
  ``postgresql+psycopg2://postgres@127.0.0.1:PORT/vitsearch_test``; its user needs CREATEDB), or else
- a throwaway cluster this session starts itself: ``initdb`` into a temporary folder, ``pg_ctl start``
  on a free 127.0.0.1 port (as the ``postgres`` user when running as root), stopped and removed at
  the end of the session (about 3 s, once per session), or else
- none: the test is skipped with one line saying why.

``storage_url``: the same test over every storage URL a study can live in (``sqlite``, ``postgres``).
Both are plain strings, so a test can hand them to ``SearchConfig(storage=...)``, to the CLI's
``--storage``, or to worker processes.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

POSTGRES_URL_ENV = "VITSEARCH_TEST_POSTGRES_URL"
POSTGRES_HINT = f"set {POSTGRES_URL_ENV} or install postgresql"


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


class _NoPostgres(Exception):
    """Why no server could be had, in a few words."""


def _postgres_bin() -> Path:
    """The folder with initdb and pg_ctl: Debian's per-version folders (newest first), then PATH."""
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True)
    on_path = shutil.which("pg_ctl")
    for folder in [*versions, *([str(Path(on_path).resolve().parent)] if on_path else [])]:
        if all(os.access(Path(folder) / tool, os.X_OK) for tool in ("initdb", "pg_ctl")):
            return Path(folder)
    raise _NoPostgres("no initdb/pg_ctl found (in PATH or /usr/lib/postgresql/*/bin)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Throwaway:
    """A PostgreSQL cluster in a temporary folder, trust auth, on 127.0.0.1 only."""

    def __init__(self):
        self.bin = _postgres_bin()
        self.as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            try:
                import pwd

                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise _NoPostgres("running as root and there is no 'postgres' user to run the server as") from None
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.folder = Path(tempfile.mkdtemp(prefix="vitsearch-pg."))
        if self.as_user:
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        self.data = self.folder / "data"
        self.port = _free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        # A test server: no durability, so no fsync.
        self.options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder}"
        self.options += " -c fsync=off -c synchronous_commit=off"

    def _run(self, what: str, *args: str) -> None:
        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120, cwd=self.folder)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise _NoPostgres(f"{what} failed ({last[0]})")

    def start(self) -> None:
        self._run(
            "initdb",
            *(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust"),
            *("-E", "UTF8", "--locale=C", "--no-sync"),
        )
        log = self.folder / "server.log"
        try:
            pg_ctl = str(self.bin / "pg_ctl")
            self._run("pg_ctl start", pg_ctl, "-D", str(self.data), "-l", str(log), "-w", "-o", self.options, "start")
        except _NoPostgres as err:
            found = re.search(r"(FATAL|ERROR|PANIC):.*", log.read_text()) if log.exists() else None
            raise _NoPostgres(f"pg_ctl start failed ({' '.join(found[0].split())})" if found else str(err)) from None

    def ctl(self, *args: str) -> None:
        """``pg_ctl ARGS`` on this cluster, e.g. ``ctl("-m", "fast", "restart")`` (what an operator does)."""
        log = ("-l", str(self.folder / "server.log"))  # else the server keeps our output pipe open
        options = ("-o", self.options) if args[-1] in ("start", "restart") else ()  # same port and folder
        self._run(f"pg_ctl {args[-1]}", str(self.bin / "pg_ctl"), "-D", str(self.data), *log, *options, "-w", *args)

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                cwd=self.folder,
            )
        shutil.rmtree(self.folder, ignore_errors=True)


def _admin_engine(url: str):
    import sqlalchemy

    return sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sqlalchemy.pool.NullPool)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """SQLAlchemy URL of a reachable PostgreSQL database to administer from (see the module docstring)."""
    try:
        import psycopg2  # noqa: F401  the driver the URLs name
    except ImportError:
        pytest.skip("PostgreSQL: the psycopg2 driver is not installed (pip install -e '.[postgres]')")
    import sqlalchemy

    given = os.environ.get(POSTGRES_URL_ENV)
    if given:  # asked for explicitly: unreachable is an error, not a skip
        with _admin_engine(given).connect() as conn:
            conn.execute(sqlalchemy.text("SELECT 1"))
        yield given
        return
    try:
        server = _Throwaway()
    except _NoPostgres as err:
        pytest.skip(f"PostgreSQL: {err}; {POSTGRES_HINT}")
    try:
        server.start()
    except (_NoPostgres, OSError, subprocess.TimeoutExpired) as err:
        server.stop()
        pytest.skip(f"PostgreSQL: could not start a throwaway server: {err}; {POSTGRES_HINT}")
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """URL of a new, empty database on ``postgres_server`` for this test only; dropped afterwards."""
    import sqlalchemy

    name = f"vitsearch_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine(postgres_server)
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sqlalchemy.make_url(postgres_server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:  # WITH (FORCE) (PostgreSQL 13+): Optuna's engines may still hold connections
            try:
                conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            except sqlalchemy.exc.DBAPIError:
                conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The test once per storage: a SQLite file in ``tmp_path``, and ``postgres_url`` (skipped without a server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'study.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def own_postgres() -> Iterator[_Throwaway]:
    """A PostgreSQL server of this test's own, to restart and stop (never the CI's shared one); else skip."""
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL: the psycopg2 driver is not installed (pip install -e '.[postgres]')")
    try:
        server = _Throwaway()
        server.start()
    except (_NoPostgres, OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"PostgreSQL: could not start a server of the test's own: {err}")
    try:
        yield server
    finally:
        server.stop()
