"""operations: effective host configs seen, config edits (placeholder reserved for the engineer building it; a no-op until then)

Revision ID: 0010
Revises: 0009
"""

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
