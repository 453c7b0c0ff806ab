"""process leases and claims: fast recovery after a crash; dispatch retried for a period

Revision ID: 0008_process_leases
Revises: 0007_account_audit
Create Date: 2026-12-01 10:00:00

Hand-written; see gateway/core/leases.py and gateway/dispatch/outbox.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import gateway.db

revision: str = "0008_process_leases"
down_revision: str | None = "0007_account_audit"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "process_leases",
        sa.Column("boot_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", gateway.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", gateway.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", gateway.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("boot_id", name=op.f("pk_process_leases")),
    )
    op.create_index(op.f("ix_process_leases_heartbeat_at"), "process_leases", ["heartbeat_at"], unique=False)
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("failing_since", gateway.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=32), nullable=True))
    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("claimed_by")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("claimed_by")
        batch.drop_column("failing_since")
    op.drop_index(op.f("ix_process_leases_heartbeat_at"), table_name="process_leases")
    op.drop_table("process_leases")
