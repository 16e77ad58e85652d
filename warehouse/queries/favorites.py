"""The one write the UI makes to the warehouse directly: marking a model as a favourite.

Favourites are shared by every user (one row per provider/model). Removing a provider or taking it
offline never deletes its favourites; `warehouse.queries.models` hides them instead.
"""

from __future__ import annotations

from sqlalchemy import Connection, delete
from sqlalchemy.dialects.postgresql import insert

from warehouse.schema import favorites


def set_favorite(conn: Connection, provider_id: str, model_id: str, on: bool) -> None:
    if on:
        conn.execute(
            insert(favorites)
            .values(provider_id=provider_id, model_id=model_id)
            .on_conflict_do_nothing(index_elements=["provider_id", "model_id"])
        )
    else:
        conn.execute(
            delete(favorites).where(favorites.c.provider_id == provider_id, favorites.c.model_id == model_id)
        )
