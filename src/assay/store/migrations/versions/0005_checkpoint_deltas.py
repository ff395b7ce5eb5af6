"""Stream checkpoints as a full state plus the deltas written since (applied in order)."""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stream_checkpoint_deltas",
        sa.Column("consumer", sa.String(128), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("n", sa.Integer, primary_key=True),
        sa.Column("state", sa.LargeBinary, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE stream_checkpoint_deltas ALTER COLUMN state SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("stream_checkpoint_deltas")
