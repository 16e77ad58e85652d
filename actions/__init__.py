"""Host actions (warm, unload, unload all, cancel an in-flight request, fetch a capture).

Domain logic only (no Streamlit). The UI calls `enqueue`; a long-lived process runs
`executor.run_forever`, which executes each provider's queue one action at a time, in order, under the
provider's host slot, and records everything in the ``actions`` audit table.
"""

from actions.executor import drain_once, drain_provider, run_direct, run_forever
from actions.perform import Outcome, default_client_factory
from actions.queue import ACTIONS, ActionSpec, InvalidAction, enqueue

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
