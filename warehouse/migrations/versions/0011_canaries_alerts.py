"""operations: canary probes, alert state and history (placeholder reserved for the engineer building it; a no-op until then)

Revision ID: 0011
Revises: 0010
"""

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
