"""The Alembic migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from roger_economic.db import engine
from roger_economic.db.models import Base


def test_migrations_match_the_models(project_db):
    with engine(project_db).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrating_twice_changes_nothing(project_db):
    from roger_economic.db import migrate

    migrate(project_db)
    with engine(project_db).connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() == "0003_setup_audit"
