from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.llamaswap import find_llama_swap, simple_responder_path
from tests.support.targets import real_missing_reason


@pytest.fixture(scope="session")
def ls_bins() -> tuple[Path, Path]:
    """(simple-responder, fake-model) next to the pinned real llama-swap, or a loud skip."""
    responder = simple_responder_path("newest")
    binary = find_llama_swap("newest")
    if responder is None or binary is None:
        pytest.skip(real_missing_reason() or "simple-responder not found")
    fake_model = responder.parent / "fake-model"
    if not fake_model.exists():
        pytest.skip("fake-model test upstream not installed next to llama-swap")
    return responder, fake_model
