from __future__ import annotations

import pytest

from tests.support.targets import real_missing_reason, responder_for


@pytest.fixture(scope="session")
def responder():
    """simple-responder beside the real llama-swap (for tests that only make sense on the real binary)."""
    missing = real_missing_reason()
    if missing:
        pytest.skip(missing)
    return responder_for("real")
