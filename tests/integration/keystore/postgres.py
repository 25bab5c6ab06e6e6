"""A real, throw-away PostgreSQL cluster for integration tests.

``initdb`` and ``postgres`` refuse to run as root, and CI runs as root: then every server
command runs as the ``postgres`` system user through ``runuser``, in a directory that user
owns. Missing binaries fail the tests that need them; they are never skipped.
"""

import glob
import os
import pwd
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.e2e.server import free_port

SUPERUSER = "ctxfy"
SERVICE_ACCOUNT = "postgres"
COMMAND_TIMEOUT_S = 120
SERVER_WAIT_S = 60
# The server's own zone is not UTC, so tests prove the store converts instants to UTC.
SERVER_TIMEZONE = "Asia/Kolkata"


@dataclass(frozen=True, slots=True)
class PostgresCluster:
    """A running cluster that trusts local TCP connections from ``SUPERUSER``."""

    host: str
    port: int

    def url(self, database: str) -> str:
        """The plain ``postgresql://`` URL a ``SqlKeyStore`` is configured with."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def execute(self, statement: sql.Composed) -> None:
        """Run one statement outside a transaction, in the maintenance database."""
        conninfo = psycopg.conninfo.make_conninfo(
            host=self.host, port=self.port, user=SUPERUSER, dbname="postgres", connect_timeout=10
        )
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(statement)


def postgres_bin_dir() -> Path:
    """The directory holding ``initdb`` and ``pg_ctl``: from PATH, else Debian's newest."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = sorted(
        (Path(found).parent for found in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda bin_dir: int(bin_dir.parent.name) if bin_dir.parent.name.isdigit() else 0,
    )
    if not candidates:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in "
            "/usr/lib/postgresql/*/bin: install them (apt-get install postgresql) to run the "
            "key-store tests against PostgreSQL",
            pytrace=False,
        )
    return candidates[-1]


def _as_server_user(argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    if shutil.which("runuser") is None:
        pytest.fail("running as root, but runuser is missing to start PostgreSQL", pytrace=False)
    return ["runuser", "-u", SERVICE_ACCOUNT, "--", *argv]


def _give_to_server_user(*paths: Path) -> None:
    if os.geteuid() != 0:
        return
    try:
        account = pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        pytest.fail(
            f"running as root, but there is no {SERVICE_ACCOUNT!r} system user to run "
            "PostgreSQL as (the postgresql package creates it)",
            pytrace=False,
        )
    for path in paths:
        os.chown(path, account.pw_uid, account.pw_gid)


def _run(argv: list[str], *, cwd: Path, what: str, log: Path | None = None) -> None:
    try:
        done = subprocess.run(
            _as_server_user(argv),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} did not finish within {COMMAND_TIMEOUT_S} s", pytrace=False)
    if done.returncode != 0:
        server_log = log.read_text("utf-8", "replace") if log and log.exists() else ""
        pytest.fail(
            f"{what} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}{server_log}",
            pytrace=False,
        )


@contextmanager
def temporary_cluster() -> Iterator[PostgresCluster]:
    """Initialise and start a cluster in a fresh directory; stop and delete it afterwards."""
    bin_dir = postgres_bin_dir()
    # Not pytest's tmp_path: that is private to root, and the server user must traverse it.
    root = Path(tempfile.mkdtemp(prefix="ctxfy-postgres-"))
    root.chmod(0o755)
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir()
    _give_to_server_user(root, sockets)
    _run(
        [
            str(bin_dir / "initdb"),
            f"--pgdata={data}",
            f"--username={SUPERUSER}",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        cwd=root,
        what="initdb",
    )
    port = free_port()
    options = " ".join(
        [
            f"-k {shlex.quote(str(sockets))}",
            f"-p {port}",
            "-c listen_addresses=127.0.0.1",
            f"-c TimeZone={SERVER_TIMEZONE}",
            # Durability is worth nothing in a cluster deleted after the tests.
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
        ]
    )
    pg_ctl = str(bin_dir / "pg_ctl")
    wait = ["-w", "-t", str(SERVER_WAIT_S)]  # pg_ctl waits for the server itself, bounded
    try:
        _run(
            [pg_ctl, "start", "-D", str(data), "-l", str(log), "-o", options, *wait],
            cwd=root,
            what="pg_ctl start",
            log=log,
        )
        yield PostgresCluster(host="127.0.0.1", port=port)
    finally:
        if (data / "postmaster.pid").exists():
            _run(
                [pg_ctl, "stop", "-D", str(data), "-m", "fast", *wait],
                cwd=root,
                what="pg_ctl stop",
                log=log,
            )
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(cluster: PostgresCluster) -> Iterator[str]:
    """A new, empty database in ``cluster``; dropped (with its connections) afterwards."""
    name = f"keystore_{uuid.uuid4().hex[:12]}"
    cluster.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield cluster.url(name)
    finally:
        cluster.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
