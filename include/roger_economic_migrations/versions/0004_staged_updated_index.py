"""staged bills found by agreement and Roger's updated_at (the extract's read of what a window already holds)

Revision ID: 0004_staged_updated
Revises: 0003_setup_audit
"""

from __future__ import annotations

from alembic import op

revision = "0004_staged_updated"
down_revision = "0003_setup_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("staged_bills") as batch:
        batch.create_index("ix_staged_updated", ["agreement_id", "updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("staged_bills") as batch:
        batch.drop_index("ix_staged_updated")
