"""account audit: who created, disabled, enabled, reset or re-roled a console account

Revision ID: 0007_account_audit
Revises: 0006_grid
Create Date: 2026-11-30 12:40:00

Hand-written (only this table); see gateway/console/users.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import gateway.db

revision: str = "0007_account_audit"
down_revision: str | None = "0006_grid"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("at", gateway.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_audit")),
    )
    op.create_index(op.f("ix_account_audit_at"), "account_audit", ["at"], unique=False)
    op.create_index(op.f("ix_account_audit_username"), "account_audit", ["username"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_account_audit_username"), table_name="account_audit")
    op.drop_index(op.f("ix_account_audit_at"), table_name="account_audit")
    op.drop_table("account_audit")
