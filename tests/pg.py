"""A throwaway PostgreSQL server for the store tests: a fresh cluster in a temporary folder, reachable only on a
unix socket there (listen_addresses is empty: it never binds a network port), trust for local connections
except one password-checked role, stopped and deleted at the end.

initdb and postgres refuse to run as root, so as root the server runs as the unprivileged `nobody`
(setpriv, else runuser). One server per test process (`shared_server`), started on first use and stopped at
exit, so test modules in any folder share it; each test takes a fresh database on it (`fresh_database`).
The cluster's default collation is ICU en-US when the binaries have ICU, so a query that relies on byte order
without saying so (SQLite's default) shows up as a different order here.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

SEARCH = "/usr/lib/postgresql/*/bin"
PORT = 5432  # only names the socket file (.s.PGSQL.5432) in our own folder; no TCP port is opened
SUPERUSER = "postgres"
PASSWORD_ROLE = "secretive"
"""A role that must give a password (scram-sha-256), for the password-masking tests."""
PASSWORD = "s3cret-Pa55word"
START_TIMEOUT_S = 60


class Unavailable(Exception):
    """PostgreSQL cannot be run here; the message is the skip reason."""


def find_bin_dir() -> Path:
    """Return the folder holding initdb and pg_ctl: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).parent
    found = [Path(d) for d in glob.glob(SEARCH) if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists()]
    if not found:
        raise Unavailable(f"PostgreSQL server binaries (initdb, pg_ctl) not on PATH nor in {SEARCH}")
    return max(found, key=lambda d: [int(x) for x in re.findall(r"\d+", d.parent.name)] or [0])


def _unprivileged() -> tuple[list[str], int, int]:
    """Return the command prefix that drops root (empty when not root) and the uid/gid to own the files."""
    if os.geteuid() != 0:
        return [], os.geteuid(), os.getegid()
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        raise Unavailable("running as root and there is no 'nobody' user to run PostgreSQL as") from None
    if shutil.which("setpriv"):
        return (["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"],
                nobody.pw_uid, nobody.pw_gid)
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"], nobody.pw_uid, nobody.pw_gid
    raise Unavailable("running as root and neither setpriv nor runuser is there to run PostgreSQL unprivileged")


@dataclass
class PgServer:
    """A running throwaway cluster."""

    bin_dir: Path
    root: Path
    prefix: list[str]
    counter: itertools.count[int]

    @property
    def socket_dir(self) -> Path:
        return self.root

    def url(self, dbname: str = "postgres", user: str = SUPERUSER, password: str | None = None) -> str:
        """Return a postgresql:// URL for `dbname` on this server's socket."""
        auth = quote(user, safe="") + (f":{quote(password, safe='')}" if password is not None else "")
        return f"postgresql://{auth}@/{dbname}?host={self.socket_dir}&port={PORT}"

    def create_database(self, prefix: str = "t") -> str:
        """Create a new, empty database and return its URL."""
        import psycopg

        name = f"{prefix}_{next(self.counter)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')  # our own generated name
            admin.execute(f'GRANT ALL ON DATABASE "{name}" TO {PASSWORD_ROLE}')
        with psycopg.connect(self.url(name), autocommit=True) as db:
            db.execute(f"GRANT ALL ON SCHEMA public TO {PASSWORD_ROLE}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server at once and delete its files."""
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m",
                            "immediate", "-w", "stop"], capture_output=True, timeout=START_TIMEOUT_S)
        shutil.rmtree(self.root, ignore_errors=True)


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")


def start_server() -> PgServer:
    """Initialise and start a cluster and return it; Unavailable when it cannot run here (the skip reason),
    RuntimeError when the binaries are there but the server does not start (a real failure)."""
    try:
        import psycopg
    except ImportError:
        raise Unavailable("psycopg is not installed (pip install 'span-auditor[postgres]')") from None
    bin_dir = find_bin_dir()
    prefix, uid, gid = _unprivileged()
    # not under pytest's tmp_path: that folder is 0700 root, which `nobody` cannot enter
    root = Path(tempfile.mkdtemp(prefix="auditor-pg-"))
    os.chown(root, uid, gid)
    data = root / "data"
    server = PgServer(bin_dir, root, prefix, itertools.count(1))
    try:
        initdb = [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=trust", "-E", "UTF8",
                  "--no-sync"]
        try:
            _run([*initdb, "--locale=C.UTF-8", "--locale-provider=icu", "--icu-locale=en-US"], "initdb (ICU)")
        except RuntimeError:  # binaries built without ICU: byte order everywhere
            shutil.rmtree(data, ignore_errors=True)
            _run([*initdb, "--no-locale"], "initdb")
        hba = data / "pg_hba.conf"
        hba.write_text(f"local all {PASSWORD_ROLE} scram-sha-256\n" + hba.read_text())  # first match wins
        options = f"-c listen_addresses= -k {root} -p {PORT} -c fsync=off -c synchronous_commit=off " \
                  "-c full_page_writes=off"
        _run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-w", "-t",
              str(START_TIMEOUT_S), "-o", options, "start"], "pg_ctl start")
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
    except BaseException as exc:
        log = root / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        server.stop()
        if isinstance(exc, RuntimeError) and detail:
            raise RuntimeError(f"{exc}\n{detail}") from exc
        raise
    return server


_STARTED: list[PgServer] = []
_FAILED: list[BaseException] = []


def shared_server() -> PgServer:
    """Return this test process's server, starting it on first use (stopped at exit); pytest.skip with the
    reason when PostgreSQL cannot run here, the start-up error again when it failed to start."""
    if _FAILED:
        if isinstance(_FAILED[0], Unavailable):
            pytest.skip(str(_FAILED[0]))
        raise _FAILED[0]
    if not _STARTED:
        try:
            server = start_server()
        except Unavailable as exc:
            _FAILED.append(exc)
            pytest.skip(str(exc))
        except Exception as exc:
            _FAILED.append(exc)
            raise
        atexit.register(server.stop)
        _STARTED.append(server)
    return _STARTED[0]


def fresh_database() -> str:
    """Return the URL of a new, empty database on the shared server (skips when there is none)."""
    return shared_server().create_database()
