"""Stream workers' checkpoints: engine state and last stream sequence per partition."""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_checkpoints",
        sa.Column("consumer", sa.String(128), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("stream", sa.String(128), nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("state", sa.LargeBinary, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("stream_checkpoints")
