"""A delta checkpoint may be stored as several rows (pieces, each but the last with ``more``).

One INSERT of tens of megabytes kept PostgreSQL busy on one core for 0.2 s (writing the
value's TOAST chunks and their WAL): on a busy 2-core machine, the stream worker's
micro-batches of that moment took twice as long. Pieces are written with pauses between
them, in the checkpoint's one transaction.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("stream_checkpoint_deltas") as batch:
        batch.add_column(sa.Column("more", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("stream_checkpoint_deltas") as batch:
        batch.drop_column("more")
