"""extraction watermark and judged fingerprint per agreement

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agreement_status") as batch:
        batch.add_column(sa.Column("extracted_until", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("judged_fingerprint", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agreement_status") as batch:
        batch.drop_column("judged_fingerprint")
        batch.drop_column("extracted_until")
