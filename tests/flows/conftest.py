"""Flow tests: point the tasks' settings at the test database and a temporary data dir."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import get_settings


@pytest.fixture()
def flow_env(db, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings for tasks: the test DB, ``tmp_path`` as data dir, retention long enough for 2026-03 data."""
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_DATA_DIR", str(tmp_path))
    for name in ("ACTIVITY_DAYS", "ROLLUP_DAYS"):
        monkeypatch.setenv(f"BOOCONTROL_RETENTION__{name}", "100000")
    monkeypatch.setenv("BOOCONTROL_RETENTION__RAW_PERF_HOURS", "10000000")
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()
