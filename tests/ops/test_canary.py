"""Canary probes against a llama-swap (the demo simulator, and the real binary where provided): only loaded
models are probed, never a load (proved from the host's own model-state events), a leased host is skipped, and
the probe's activity row is named so user statistics leave it out."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import text

from connectors.llama_swap import parse_activity
from connectors.llama_swap_api import LlamaSwapAPI
from core.providers import Provider
from tests.flows.conftest import flow_env  # noqa: F401 - fixture
from tests.support.targets import run_target, target_params
from warehouse import lease

__all__ = ["flow_env"]


class StateLog:
    """Every model state the host itself announces on ``/api/events`` while the block runs."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.states: list[tuple[str, str]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._follow()), daemon=True)

    async def _follow(self) -> None:
        async with httpx.AsyncClient() as client:
            api = LlamaSwapAPI(Provider(id="h", label="h", base_url=self.base_url), client)
            async with api.events() as stream:
                self.ready.set()
                async for ev in stream:
                    if ev.type == "modelStatus":
                        for m in ev.data or []:
                            self.states.append((str(m.get("id")), str(m.get("state"))))
                    if self.stop.is_set():
                        return

    def __enter__(self) -> StateLog:
        self.thread.start()
        assert self.ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        httpx.get(self.base_url + "/running")  # any traffic wakes the stream up; the thread ends with it
        self.thread.join(5)


def host_activity(base_url: str) -> list[dict]:
    return httpx.get(base_url + "/api/metrics/activity", params={"limit": 100, "sort": "id", "order": "asc"}
                     ).json()["data"]


@pytest.fixture()
def host(request, flow_env: Path) -> Iterator[str]:  # noqa: F811
    with run_target(request.param) as t:
        (flow_env / "fleet.yaml").write_text(
            f"providers:\n  - id: h1\n    base_url: {t.base_url}\n  - id: cloud\n    base_url: http://127.0.0.1:9\n"
            "    kind: openai\n")
        yield t.base_url


@pytest.mark.parametrize("host", target_params(), indirect=True)
def test_probes_only_loaded_models_and_never_loads_one(prefect_harness, host: str, db) -> None:
    from flows.canary import canary

    assert httpx.get(host + "/upstream/responder-a/", timeout=30).status_code < 500  # responder-a loaded
    with StateLog(host) as log:
        out = canary()
    # the host's own states while the cycle ran: nothing started, responder-b never left stopped
    assert [s for s in log.states if s[1] in ("starting", "stopping")] == []
    assert {m: s for m, s in log.states if m == "responder-b"} in ({}, {"responder-b": "stopped"})
    running = httpx.get(host + "/running").json()["running"]
    assert [(r["model"], r["state"]) for r in running] == [("responder-a", "ready")]

    assert (out["hosts"], out["probed"], out["failed"], out["unmatched"]) == (2, 1, 0, 0)
    assert out["skipped"] == {"cloud": "kind openai: no model states to tell a loaded model from one that would load"}
    with db.connect() as c:
        (probe,) = c.execute(text("SELECT provider_id, model_id, ok, ttft_ms > 0, total_ms >= ttft_ms, "
                                  "activity_upstream_id, activity_finished_at FROM canary_probes")).all()
    rows = host_activity(host)
    assert len(rows) == 1  # the probe is the only request the host ever saw
    mine = parse_activity(rows[0], "h1", "e1")
    assert probe == ("h1", "responder-a", True, True, True, mine.upstream_id, mine.finished_at)


@pytest.mark.parametrize("host", [pytest.param("sim", id="sim")], indirect=True)
def test_nothing_loaded_means_no_request(prefect_harness, host: str, db) -> None:
    from flows.canary import canary

    with StateLog(host) as log:
        out = canary()
    assert log.states == [] or {s for _, s in log.states} == {"stopped"}
    assert (out["probed"], out["skipped"]["h1"]) == (0, "no model loaded")
    assert host_activity(host) == []


@pytest.mark.parametrize("host", [pytest.param("sim", id="sim")], indirect=True)
def test_a_host_under_a_lease_is_skipped(prefect_harness, host: str, db, db_url: str) -> None:
    from flows.canary import canary

    assert httpx.get(host + "/upstream/responder-a/", timeout=30).status_code < 500
    dsn = db_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert lease.try_acquire(conn, "h1", lease.SCOPE_HOST, "bench@box:7:abc", "bench run #12 (qwen)", ttl_s=300)
    out = canary()
    assert out["probed"] == 0
    assert out["skipped"]["h1"] == "host lease held by bench@box:7:abc (bench run #12 (qwen))"
    assert host_activity(host) == []
    with db.connect() as c:
        assert c.execute(text("SELECT skipped->>'h1' FROM canary_cycles")).scalar_one().startswith("host lease held")


@pytest.mark.parametrize("host", [pytest.param("sim", id="sim")], indirect=True)
def test_one_cycle_at_a_time(prefect_harness, host: str, db) -> None:
    """While a cycle runs (its advisory lock held), the next scheduled run does nothing and says why."""
    from flows.canary import canary
    from warehouse.queries.canaries import release_cycle_lock, try_cycle_lock

    assert httpx.get(host + "/upstream/responder-a/", timeout=30).status_code < 500
    with db.connect() as other:
        assert try_cycle_lock(other)
        out = canary()
        release_cycle_lock(other)
    assert (out["cycle_id"], out["probed"], out["skipped"]) == (None, 0, {"*": "the previous canary cycle is still running"})
    assert host_activity(host) == []
    assert canary()["probed"] == 1  # the lock is free again
