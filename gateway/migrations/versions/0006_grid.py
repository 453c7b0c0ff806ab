"""grid: where a report lands in the grid units (网格), filled at triage

Revision ID: 0006_grid
Revises: 0005
Create Date: 2026-11-30 12:30:00

Hand-written; see gateway/core/placing.py and docs/grid.md.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_grid"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("grid_code", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("grid_level", sa.String(length=8), nullable=True))
        batch.add_column(
            sa.Column(
                "grid_path",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )
        batch.add_column(sa.Column("grid_method", sa.String(length=24), nullable=True))
        batch.add_column(sa.Column("grid_confidence", sa.Float(), nullable=True))
        batch.add_column(sa.Column("grid_version", sa.String(length=16), nullable=True))
    op.create_index(op.f("ix_reports_grid_code"), "reports", ["grid_code"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reports_grid_code"), table_name="reports")
    with op.batch_alter_table("reports") as batch:
        for column in ("grid_version", "grid_confidence", "grid_method", "grid_path", "grid_level", "grid_code"):
            batch.drop_column(column)
