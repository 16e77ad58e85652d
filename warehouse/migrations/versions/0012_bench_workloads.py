"""benchmarks: exact-length workloads, per-request lengths, SLO searches (placeholder reserved for the engineer building it; a no-op until then)

Revision ID: 0012
Revises: 0011
"""

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
