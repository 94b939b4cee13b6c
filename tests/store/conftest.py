"""Store fixtures: a real throwaway PostgreSQL server (tests/pg.py, one per test process), a fresh database on
it per test, and `target`, which runs a test once on SQLite and once on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pg import PgServer, fresh_database, shared_server


@pytest.fixture(scope="session")
def pg_server() -> PgServer:
    """The PostgreSQL server; skips when the binaries or psycopg are absent."""
    return shared_server()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a new, empty database on the server."""
    return fresh_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty store: a SQLite path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "store.sqlite")
    return str(request.getfixturevalue("pg_url"))
