"""Tables added by a later capability; imported by warehouse.schema so Alembic sees them."""

from __future__ import annotations

from warehouse.schema import metadata  # noqa: F401
