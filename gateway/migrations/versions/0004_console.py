"""moderator console: users, sessions, API keys, labeled examples, notes, PII view audit

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 12:00:00

Hand-written (only these tables); see gateway/console/ and gateway/core/reviews.py.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import gateway.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, gateway.db.UTCDateTime(timezone=True), nullable=nullable)


def _id() -> sa.Column:
    return sa.Column("id", ID, autoincrement=True, nullable=False)


def _report_fk(table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["report_id"], ["reports.id"], name=op.f(f"fk_{table}_report_id_reports"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "console_users",
        _id(),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        _time("created_at"),
        _time("last_login_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_users")),
        sa.UniqueConstraint("username", name=op.f("uq_console_users_username")),
    )
    op.create_table(
        "console_sessions",
        _id(),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", ID, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        _time("last_seen_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["console_users.id"],
            name=op.f("fk_console_sessions_user_id_console_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_sessions_token_hash")),
    )
    op.create_index(op.f("ix_console_sessions_user_id"), "console_sessions", ["user_id"], unique=False)
    op.create_table(
        "api_keys",
        _id(),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        _time("created_at"),
        _time("last_used_at", nullable=True),
        _time("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
        sa.UniqueConstraint("key_id", name=op.f("uq_api_keys_key_id")),
    )
    op.create_table(
        "labeled_examples",
        _id(),
        sa.Column("report_id", ID, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("model_label", sa.String(length=16), nullable=True),
        sa.Column("model_version", sa.String(length=100), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("moderator", sa.String(length=64), nullable=False),
        _time("created_at"),
        _report_fk("labeled_examples", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_labeled_examples")),
        sa.UniqueConstraint("report_id", name=op.f("uq_labeled_examples_report_id")),
    )
    op.create_table(
        "moderator_notes",
        _id(),
        sa.Column("report_id", ID, nullable=False),
        sa.Column("author", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        _time("created_at"),
        _report_fk("moderator_notes", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderator_notes")),
    )
    op.create_index(op.f("ix_moderator_notes_report_id"), "moderator_notes", ["report_id"], unique=False)
    op.create_table(
        "pii_views",
        _id(),
        _time("at"),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("report_id", ID, nullable=True),
        sa.Column("field", sa.String(length=32), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        _report_fk("pii_views", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pii_views")),
    )
    op.create_index(op.f("ix_pii_views_at"), "pii_views", ["at"], unique=False)
    op.create_index(op.f("ix_pii_views_report_id"), "pii_views", ["report_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_pii_views_report_id"), table_name="pii_views")
    op.drop_index(op.f("ix_pii_views_at"), table_name="pii_views")
    op.drop_table("pii_views")
    op.drop_index(op.f("ix_moderator_notes_report_id"), table_name="moderator_notes")
    op.drop_table("moderator_notes")
    op.drop_table("labeled_examples")
    op.drop_table("api_keys")
    op.drop_index(op.f("ix_console_sessions_user_id"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_users")
