"""Page tests: AppTest against the real test Postgres, seeded with rows relative to now."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import Engine
from streamlit.testing.v1 import AppTest

from core.settings import get_settings
from tests.ui import seed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def app_env(db: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Engine]:
    """Point the UI at the test database (the UI reads settings at its entry point) with empty caches."""
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(tmp_path / "no-fleet.yaml"))
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()
    yield db
    get_settings.cache_clear()
    st.cache_data.clear()
    st.cache_resource.clear()


def run_page(rel: str, timeout: float = 60) -> AppTest:
    at = AppTest.from_file(str(ROOT / rel), default_timeout=timeout)
    at.run()
    return at


@pytest.fixture()
def live_fleet(app_env: Engine) -> datetime:
    """Three providers: alpha (connected, 1 GPU, 2 models, traffic), beta (offline), gamma (connected, idle)."""
    now = datetime.now(UTC).replace(microsecond=0)
    with app_env.begin() as c:
        seed.provider(c, "alpha", label="Alpha box", base_url="http://127.0.0.1:9")
        seed.provider(c, "beta", status="disconnected", last_error="connect: connection refused")
        seed.provider(c, "gamma")
        seed.boot(c, "alpha", (now - timedelta(hours=5)).isoformat(), first_seen=now - timedelta(hours=5))
        seed.boot(c, "gamma", "m1", first_seen=now - timedelta(minutes=30))
        seed.epoch(c, "alpha", "ep1", now - timedelta(hours=5))
        for i in range(60):
            t = now - timedelta(minutes=60 - i)
            seed.perf(c, "alpha", t, cpu=float(i % 10 * 10), mem_used=16000)
            seed.gpu(c, "alpha", t, temp=60 + i % 5, util=80, used=12000, total=24000, power=250)
            seed.perf(c, "gamma", t, cpu=5.0)
        seed.model(c, "alpha", "qwen", state="ready")
        seed.model(c, "alpha", "llama", state="stopped")
        seed.model(c, "beta", "qwen", state="stopped")
        seed.model(c, "gamma", "embed", state="stopped")
        seed.transition(c, "alpha", "qwen", now - timedelta(hours=2), "starting", "stopped")
        seed.transition(
            c, "alpha", "qwen", now - timedelta(hours=2) + timedelta(seconds=3), "ready", "starting"
        )
        seed.inflight(
            c,
            "alpha",
            now - timedelta(seconds=3),
            [
                {
                    "id": "11",
                    "model": "qwen",
                    "req_path": "/v1/chat/completions",
                    "method": "POST",
                    "elapsed_ms": 1500,
                }
            ],
        )
        for i in range(1, 61):
            seed.activity(
                c,
                "alpha",
                "ep1",
                i,
                now - timedelta(minutes=61 - i),
                model_id="qwen",
                pps=float(100 * i),
                tps=float(i),
                has_capture=i == 60,
                status=200 if i % 10 else 500,
                error=None if i % 10 else "500 Internal Server Error",
            )
        seed.log(
            c,
            "alpha",
            "proxy",
            now - timedelta(seconds=5),
            "[INFO] Health check passed on qwen\n[WARN] upstream slow\n[INFO] request done\n",
        )
        seed.favorite(c, "alpha", "qwen")
        seed.favorite(c, "beta", "qwen")
    return now
