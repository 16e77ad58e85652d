from __future__ import annotations

import pytest

from tests.support.llamaswap import find_llama_swap, provenance, simple_responder_path


def pytest_report_header(config):  # noqa: ARG001
    from tests.support.llamaswap import PINNED

    return [f"llama-swap {name} ({rev}): {provenance(name)}" for name, (rev, _) in PINNED.items()]


@pytest.fixture(scope="session")
def responder():
    path = simple_responder_path("newest")
    if path is None or find_llama_swap("newest") is None:
        pytest.skip("REAL LLAMA-SWAP NOT INSTALLED: the Go module proxy did not deliver it (see .ci/run output); "
                    "the same contract runs against the demo fleet")
    return path
