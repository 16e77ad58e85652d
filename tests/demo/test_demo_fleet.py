"""The fleet helpers, the traffic generator and the Go-style wire encoding."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import yaml

from demo import demo_fleet_in_thread, start_demo_fleet_in_background, write_demo_registry
from demo.wire import format_rfc3339, go_json, parse_rfc3339_ns, sse_frame


def test_go_json_escapes_html_and_drops_integral_fraction() -> None:
    assert go_json({"id": 'bad"name<b>', "v": 10.0, "w": 1.5, "&": None}) == (
        '{"id":"bad\\"name\\u003cb\\u003e","v":10,"w":1.5,"\\u0026":null}')
    assert sse_frame("activity", {"id": 3}) == b'event:message\ndata:{"type":"activity","data":"{\\"id\\":3}"}\n\n'


def test_rfc3339_keeps_nanoseconds_and_trims_zeros_like_go() -> None:
    ns = 1_787_400_000_123_450_000
    assert format_rfc3339(ns, -7 * 3600) == "2026-08-22T05:00:00.12345-07:00"
    assert format_rfc3339(ns, 0, fraction=False) == "2026-08-22T12:00:00Z"
    assert parse_rfc3339_ns("2026-08-22T05:00:00.12345-07:00") == ns
    assert parse_rfc3339_ns("2026-08-22T12:00:00.123450001Z") == ns + 1


def test_registry_lists_every_demo_host(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    write_demo_registry(path, 3, base_port=19400)
    doc = yaml.safe_load(path.read_text())
    assert doc["default_provider"] == "demo-01"
    assert doc["providers"][2] == {"id": "demo-03", "label": "Demo host 03", "base_url": "http://127.0.0.1:19402",
                                   "kind": "llama-swap", "labels": {"demo": "true"}}


def test_default_fleet_model_names_look_like_a_real_fleet() -> None:
    """What `boocontrol up` / `demo-fleet` serve: only catalog models (hostile names are for tests)."""
    from demo.fleet import MODEL_CATALOG

    catalog = {m[0] for m in MODEL_CATALOG} | {m[0].split("-")[0] + "-latest" for m in MODEL_CATALOG}
    with demo_fleet_in_thread(3) as fleet:
        ids = {m["id"] for url in fleet.base_urls for m in httpx.get(url + "/v1/models").json()["data"]}
    assert ids and ids <= catalog, ids - catalog


def test_thread_fleet_serves_hostile_names_escaped() -> None:
    with demo_fleet_in_thread(2, hostile=True) as fleet:
        raw = httpx.get(fleet.base_urls[1] + "/v1/models").text
        assert "bad\\\"name\\u003cb\\u003e" in raw
        unload = httpx.post(fleet.base_urls[1] + "/api/models/unload/org/üñí-模型 v2")
        assert (unload.status_code, unload.text) == (200, "OK")


def test_traffic_drives_the_real_request_path() -> None:
    async def scenario() -> None:
        fleet = await start_demo_fleet_in_background(2, requests_per_minute=1200, perf_every_s=0.2,
                                                     load_scale=0.02, unload_s=0.05)
        try:
            deadline = time.monotonic() + 20
            while min(sim.activity.next_id for sim in fleet.sims) < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            async with httpx.AsyncClient() as client:
                rows = (await client.get(fleet.base_urls[0] + "/api/metrics/activity", params={"limit": 999})).json()
            assert rows["total"] >= 3
            assert {r["req_path"] for r in rows["data"]} <= {"/v1/chat/completions", "/v1/completions"}
            assert any(r["tokens"]["output_tokens"] > 0 for r in rows["data"])
            assert "Request 10." in fleet.sims[0].logs["proxy"]
            assert fleet.sims[0].sys_ring and fleet.sims[0].gpu_ring
        finally:
            await fleet.stop()

    asyncio.run(scenario())
