"""A real PostgreSQL server for tests: Debian's postgresql, initdb on a temporary directory,
loopback only, a free high port; always stopped at teardown. Skips with the reason when
the server binaries are not installed (CI installs them: .ci/install.d/labci.sh)."""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import contextlib

import pytest
import sqlalchemy as sa


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def _bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd):
    # initdb and postgres refuse to run as root: use the `postgres` account Debian creates
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


@pytest.fixture(scope="session")
def postgres_url():
    try:
        with postgres_server() as url:
            yield url
    except Unavailable as exc:
        pytest.skip(str(exc))


HARNESS_TABLES = ("comparisons", "measurements", "runs", "leases", "schema_version")


def empty_store_url(request, tmp_path) -> str:
    """A store URL with no harness tables yet, on the backend `request.param` names: a new
    SQLite file under tmp_path, or the session's shared server ("postgresql", the
    postgres_url fixture) with the harness's tables dropped, since earlier tests wrote there."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'h.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for table in HARNESS_TABLES:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table} CASCADE"))
    engine.dispose()
    return url


@contextlib.contextmanager
def postgres_server():
    """Start a throwaway server; yields its SQLAlchemy URL; stops and deletes it at exit."""
    bindir = _bindir()
    if bindir is None:
        raise Unavailable("PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin); "
                          "apt-get install postgresql (.ci/install.d/labci.sh)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise Unavailable("psycopg not installed: pip install 'psycopg[binary]'") from None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise Unavailable("running as root and there is no 'postgres' user to run the server") from None
    tmp = tempfile.mkdtemp(prefix="harness-pg-")
    if os.geteuid() == 0:
        shutil.chown(tmp, "postgres", "postgres")
    data, port = os.path.join(tmp, "data"), _free_port()
    run = lambda cmd, t=120: subprocess.run(_as_server_user(cmd), capture_output=True, text=True, timeout=t)
    started = False
    try:
        init = run([f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "harness", "--no-sync"])
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
        start = run([f"{bindir}/pg_ctl", "-D", data, "-l", os.path.join(tmp, "server.log"), "-w", "-t", "60",
                     "-o", f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])
        started = True
        if start.returncode != 0:
            log = open(os.path.join(tmp, "server.log")).read()[-2000:] if os.path.exists(
                os.path.join(tmp, "server.log")) else ""
            raise RuntimeError(f"pg_ctl start failed: {start.stderr[-1000:]}\n{log}")
        made = run([f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "harness", "harness"], 60)
        if made.returncode != 0:
            raise RuntimeError(f"createdb failed: {made.stderr[-1000:]}")
        yield f"postgresql+psycopg://harness@127.0.0.1:{port}/harness"
    finally:
        if started:
            run([f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "-t", "30", "stop"], 60)
        shutil.rmtree(tmp, ignore_errors=True)
