from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ops_config.sshd import Sshd, run_sshd


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with run_sshd(Path(tmp_path_factory.mktemp("sshd"))) as server:
        yield server
