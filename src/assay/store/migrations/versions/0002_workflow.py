"""Case workflow: notes, pending dispositions (four-eyes), API tokens."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("pending_disposition", sa.String(32)))
        batch.add_column(sa.Column("pending_by", sa.String(128)))
    op.create_table(
        "case_notes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.id"), nullable=False, index=True),
        sa.Column("author", sa.String(128), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("purposes", sa.JSON, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("case_notes")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("pending_by")
        batch.drop_column("pending_disposition")
