"""Host actions (warm, unload, unload all, cancel an in-flight request, fetch a capture).

Domain logic only (no Streamlit). The UI calls `enqueue`; a long-lived process runs
`executor.run_forever`, which executes each provider's queue one action at a time, in order, under the
provider's host lease (`warehouse.lease`), and records everything in the ``actions`` audit table.

Exports resolve lazily (PEP 562), so importing `actions.queue` for `enqueue` does not pull in the HTTP
client stack the executor needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from actions.executor import drain_once, drain_provider, run_direct, run_forever
    from actions.perform import Outcome, default_client_factory
    from actions.queue import ACTIONS, ActionSpec, InvalidAction, enqueue

_EXPORTS = {
    "ACTIONS": "actions.queue",
    "ActionSpec": "actions.queue",
    "InvalidAction": "actions.queue",
    "enqueue": "actions.queue",
    "Outcome": "actions.perform",
    "default_client_factory": "actions.perform",
    "drain_once": "actions.executor",
    "drain_provider": "actions.executor",
    "run_direct": "actions.executor",
    "run_forever": "actions.executor",
}

__all__ = [
    "ACTIONS",
    "ActionSpec",
    "InvalidAction",
    "Outcome",
    "default_client_factory",
    "drain_once",
    "drain_provider",
    "enqueue",
    "run_direct",
    "run_forever",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'actions' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
