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
        assert MigrationContext.configure(conn).get_current_revision() == "0004_staged_updated"


def test_bills_staged_before_0003_get_their_search_text(project_db):
    """The migration that adds the bill log's search column fills it for the bills already staged."""
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from roger_economic.db import MIGRATIONS, migrate

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", project_db.replace("%", "%%"))
    command.downgrade(cfg, "0002")
    with engine(project_db).begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO agreements (id, name, active, roger_company_id, roger_token_ref, economic_token_ref, "
                "invoice_journal, payment_journal, supplier_policy, closed_period_policy, book_without_attachment, "
                "updated_at) VALUES ('a1', 'A', true, 'c', 'env:R', 'env:E', 2, 3, 'create', 'quarantine', false, "
                "CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO staged_bills (agreement_id, bill_id, version, payload, updated_at, state, staged_at) "
                "VALUES ('a1', 'b1', 1, :payload, 'x', 'new', CURRENT_TIMESTAMP)"
            ),
            {"payload": '{"id": "b1", "vendor": {"name": "ÅRHUS Øl"}, "invoice_number": "F-1", "amount": "1234.5"}'},
        )
    migrate(project_db)
    with engine(project_db).connect() as conn:
        text = conn.execute(sa.text("SELECT search_text FROM staged_bills WHERE bill_id = 'b1'")).scalar_one()
    assert text == "b1 århus øl f-1 1234.50 1234,50 1.234,50"
