"""An action for a provider nothing answers at is refused with a one-line reason (no llama-swap binary needed: it
was marked ``real_llamaswap`` in test_real_llamaswap.py, so the header counted it as a real-binary test)."""

from __future__ import annotations

from sqlalchemy import Engine

from actions import drain_once, enqueue
from tests.actions.test_real_llamaswap import audit, reg
from tests.support.llamaswap import free_port


def test_unreachable_provider_is_refused(db: Engine) -> None:
    port = free_port()  # nothing listens here
    enqueue(db, "ls", "warm", "fast-a")
    drain_once(db, reg(f"http://127.0.0.1:{port}"))
    (row,) = audit(db)
    assert row["status"] == "refused"
    assert str(row["error"]).startswith("provider ls is unreachable: ConnectError:")
