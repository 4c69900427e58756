"""setup audit trail of the UI page; a normalised search text per staged bill

Revision ID: 0003_setup_audit
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_setup_audit"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "setup_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agreement_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=True),
        sa.Column("before", sa.JSON(), nullable=False),
        sa.Column("after", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("setup_audit") as batch:
        batch.create_index("ix_setup_audit_agreement", ["agreement_id", "at"], unique=False)
    with op.batch_alter_table("staged_bills") as batch:
        batch.add_column(sa.Column("search_text", sa.Text(), nullable=True))
    _fill_search_text()


def _fill_search_text() -> None:
    """Bills staged before this revision get their search text (computed in Python: see models.fold)."""
    from roger_economic.db.models import bill_search_text

    bind = op.get_bind()
    bills = sa.table(
        "staged_bills",
        sa.column("agreement_id"),
        sa.column("bill_id"),
        sa.column("payload", sa.JSON()),
        sa.column("search_text"),
    )
    rows = bind.execute(sa.select(bills.c.agreement_id, bills.c.bill_id, bills.c.payload)).all()
    update = sa.update(bills).where(bills.c.agreement_id == sa.bindparam("aid"), bills.c.bill_id == sa.bindparam("bid"))
    for start in range(0, len(rows), 1000):
        chunk = [
            {"aid": aid, "bid": bid, "search_text": bill_search_text(payload)}
            for aid, bid, payload in rows[start : start + 1000]
        ]
        bind.execute(update.values(search_text=sa.bindparam("search_text")), chunk)


def downgrade() -> None:
    with op.batch_alter_table("staged_bills") as batch:
        batch.drop_column("search_text")
    with op.batch_alter_table("setup_audit") as batch:
        batch.drop_index("ix_setup_audit_agreement")
    op.drop_table("setup_audit")
