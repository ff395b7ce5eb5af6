"""Checkpoint states are stored as they are on PostgreSQL, without TOAST compression.

pglz compressing a state of tens of megabytes, every few seconds per partition, cost
the database more CPU than the stream worker spent evaluating the events.
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE stream_checkpoints ALTER COLUMN state SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE stream_checkpoints ALTER COLUMN state SET STORAGE EXTENDED")
