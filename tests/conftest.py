"""Shared fixtures: an Airflow home per test session, the project DB on SQLite and PostgreSQL.

The environment is set here, at import time, before anything imports Airflow.
PostgreSQL tests run when 127.0.0.1:5432 answers; with
``ROGER_ECONOMIC_REQUIRE_POSTGRES=1`` (as in CI) they fail instead of skipping.
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from devkit import local

SESSION_HOME = Path(tempfile.mkdtemp(prefix="roger-economic-tests-"))
local.configure(SESSION_HOME / "airflow", db_url=f"sqlite:///{SESSION_HOME / 'project.db'}")

PG_HOST, PG_PORT = "127.0.0.1", 5432
REQUIRE_PG = os.environ.get("ROGER_ECONOMIC_REQUIRE_POSTGRES") == "1"


def postgres_up() -> bool:
    try:
        with socket.create_connection((PG_HOST, PG_PORT), timeout=1):
            return True
    except OSError:
        return False


def _fresh_postgres_db() -> str:
    import sqlalchemy as sa

    name = f"roger_economic_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(
        f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name


def _drop_postgres_db(name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(
        f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/postgres", isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def project_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated project database (SQLite file, or a new PostgreSQL database)."""
    from roger_economic.db import dispose_engines, migrate

    previous = os.environ.get("ROGER_ECONOMIC_DB_URL")
    pg_name = None
    if request.param == "postgres":
        if not postgres_up():
            if REQUIRE_PG:
                pytest.fail("PostgreSQL is required (ROGER_ECONOMIC_REQUIRE_POSTGRES=1) but 127.0.0.1:5432 is down")
            pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
        pg_name = _fresh_postgres_db()
        url = f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/{pg_name}"
    else:
        url = f"sqlite:///{tmp_path / 'project.db'}"
    os.environ["ROGER_ECONOMIC_DB_URL"] = url
    migrate(url)
    try:
        yield url
    finally:
        dispose_engines()
        if previous is not None:
            os.environ["ROGER_ECONOMIC_DB_URL"] = previous
        if pg_name:
            _drop_postgres_db(pg_name)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Airflow's own metadata DB, migrated once per test session."""
    local.migrate_airflow()
    local.ensure_pool()
    return SESSION_HOME


@pytest.fixture()
def sandboxes() -> Iterator[tuple]:
    """Both sandboxes with the three demo agreements (30 bills each)."""
    roger, economic = local.start_sandboxes(agreements=3, bills=30)
    try:
        yield roger, economic
    finally:
        roger.stop()
        economic.stop()
