"""What ``GET /v1/models`` lists: favourites first, then every model by provider, then the ``auto:*`` models.

Models of a provider that is offline (inactive in the registry, or its connector not connected) are hidden, not
deleted: they come back when the provider does. Models llama-swap marks ``unlisted`` are hidden too (they still
answer when asked by id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def model_entries(catalog: Iterable[Mapping[str, Any]], policies: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """OpenAI model objects from catalog rows (`warehouse.queries.models.model_catalog`) and (name, description)
    of the routing policies."""
    rows = [r for r in catalog if r.get("provider_online") and not r.get("unlisted")]
    rows.sort(key=lambda r: (not r.get("favorite"), str(r["provider_id"]), str(r["model_id"])))
    out: list[dict[str, Any]] = []
    for r in rows:
        entry: dict[str, Any] = {"id": f"{r['provider_id']}/{r['model_id']}", "object": "model", "created": 0,
                                 "owned_by": str(r["provider_id"])}
        if r.get("favorite"):
            entry["favorite"] = True
        if r.get("state"):
            entry["state"] = r["state"]
        if r.get("context_length"):
            entry["context_length"] = int(r["context_length"])
        out.append(entry)
    for name, description in policies:
        out.append({"id": name, "object": "model", "created": 0, "owned_by": "boocontrol",
                    "description": description})
    return out
