"""Putting an action on a provider's queue.

`enqueue` validates the request and inserts a ``queued`` row; it never talks to the host. The executor
(`actions.executor`) runs queued rows one at a time per provider, in id order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from core.kinds import kinds_supporting_actions
from core.providers import Provider
from warehouse.queries.actions import insert_action


@dataclass(frozen=True)
class ActionSpec:
    name: str
    needs_target: bool
    destructive: bool  # the UI asks for confirmation
    mutates_host: bool  # goes through the per-host serialized queue
    label: str


ACTIONS: dict[str, ActionSpec] = {
    s.name: s
    for s in (
        ActionSpec("warm", True, False, True, "Warm (load) model"),
        ActionSpec("unload", True, True, True, "Unload model"),
        ActionSpec("unload_all", False, True, True, "Unload all models"),
        ActionSpec("cancel_inflight", True, True, True, "Cancel in-flight request"),
        ActionSpec("fetch_capture", True, False, False, "Fetch capture"),
    )
}
HOST_ACTIONS = tuple(n for n, s in ACTIONS.items() if s.mutates_host)


class InvalidAction(ValueError):
    pass


def kind_refusal(provider: Provider, action: str | None = None) -> str | None:
    """Why ``action`` (any action when None) cannot run on this provider's kind (`core.kinds`), or None."""
    if provider.spec.actions:
        return None
    what = f"no {action} action" if action else "no host actions"
    return (f"provider {provider.id} is of kind {provider.kind}, which has {what} (warm, unload, "
            f"cancel and capture need a provider of kind {' or '.join(kinds_supporting_actions())})")


def validate(action: str, target: str | None, params: Mapping[str, Any] | None) -> None:
    spec = ACTIONS.get(action)
    if spec is None:
        raise InvalidAction(f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
    if spec.needs_target and not (target and str(target).strip()):
        raise InvalidAction(f"action {action!r} needs a target")
    if not spec.needs_target and target:
        raise InvalidAction(f"action {action!r} takes no target")
    if action == "fetch_capture":
        if not str(target).isdigit():
            raise InvalidAction("fetch_capture's target is the activity id (an integer)")
        if not (params or {}).get("epoch"):
            raise InvalidAction("fetch_capture needs params['epoch'] (the activity row's epoch)")


def enqueue(
    engine: Engine,
    provider_id: str,
    action: str,
    target: str | None = None,
    params: Mapping[str, Any] | None = None,
    requested_by: str | None = None,
) -> int:
    """Queue one action for ``provider_id``; returns the audit row id. Raises `InvalidAction`."""
    validate(action, target, params)
    with engine.begin() as conn:
        return insert_action(conn, provider_id, action, target, params, requested_by)
