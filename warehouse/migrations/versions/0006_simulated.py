"""bench_runs.simulated: a run against a simulated host (the demo fleet), labelled wherever its numbers appear

The demo simulator says what it is in ``/api/version`` and ``/api/hardware`` (``"simulated": true``, a key real
llama-swap never sends); runs stored before this revision are labelled from the same keys.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("bench_runs", sa.Column("simulated", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE bench_runs SET simulated = true "
        "WHERE version_info->>'simulated' = 'true' OR hardware->>'simulated' = 'true'"
    )


def downgrade() -> None:
    op.drop_column("bench_runs", "simulated")
