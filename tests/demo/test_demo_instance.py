"""A simulated instance served over real HTTP must speak llama-swap's wire contract exactly."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx

from demo import GroupSpec, InferenceCall, ModelSpec, SimulatedInstance, serve_instances

FRAME = re.compile(rb"event:message\ndata:(\{[^\n]*\})\n\n")


def make_sim(**kwargs: Any) -> SimulatedInstance:
    fast = {"load_s": 0.05, "gen_tps": 1000.0, "prompt_tps": 5000.0}
    models = [ModelSpec("alpha", group="g", aliases=("a",), **fast), ModelSpec("beta", group="g", **fast),
              ModelSpec("gamma", group="solo", **fast), ModelSpec("slow", group="solo", load_s=0.3, gen_tps=5.0)]
    groups = [GroupSpec("g", swap=True, exclusive=False), GroupSpec("solo", swap=True, exclusive=False)]
    options: dict[str, Any] = {"jitter": 0.0, "unload_s": 0.01, "perf_every_s": 0.05, "utc_offset_s": -7 * 3600}
    return SimulatedInstance(models, groups, **(options | kwargs))


@asynccontextmanager
async def served(sim: SimulatedInstance) -> AsyncIterator[httpx.AsyncClient]:
    fleet = await serve_instances([sim])
    try:
        async with httpx.AsyncClient(base_url=fleet.base_urls[0], timeout=10) as client:
            yield client
    finally:
        await fleet.stop()


def run(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    def wrapper() -> None:
        asyncio.run(asyncio.wait_for(test(), 30))  # type: ignore[arg-type]

    wrapper.__name__ = test.__name__
    return wrapper


def chat(model: str, content: str, max_tokens: int = 7, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, **extra}


async def states(client: httpx.AsyncClient) -> dict[str, str]:
    return {r["model"]: r["state"] for r in (await client.get("/running")).json()["running"]}


@run
async def test_three_chat_requests_get_ids_1_2_3_with_exact_tokens() -> None:
    async with served(make_sim()) as c:
        assert (await c.post("/v1/chat/completions", json=chat("alpha", "hello world"))).status_code == 200
        streamed = await c.post("/v1/chat/completions", json=chat("a", "hello world", stream=True))
        assert streamed.headers["content-type"] == "text/event-stream"
        assert streamed.text.endswith("data: [DONE]\n\n")
        await c.post("/v1/chat/completions", json=chat("alpha", "goodbye"))
        body = (await c.get("/api/metrics/activity", params={"sort": "id", "order": "asc"})).json()
    assert [r["id"] for r in body["data"]] == [1, 2, 3]
    assert (body["page"], body["limit"], body["total"], body["total_pages"]) == (1, 25, 3, 1)
    # ChatML rendering of "hello world" is 61 chars = 16 tokens; the repeat reuses 15 cached, "goodbye" 4
    expected = [(16, 0), (1, 15), (11, 4)]
    for row, (prompt_n, cache_n) in zip(body["data"], expected, strict=True):
        assert row["model"] == "alpha" and row["resp_status_code"] == 200
        assert row["tokens"] == {"cache_tokens": cache_n, "draft_tokens": -1, "draft_acc_tokens": -1,
                                 "input_tokens": prompt_n, "output_tokens": 7, "prompt_per_second": 5000,
                                 "tokens_per_second": 1000}
        assert row["has_capture"] is True and row["metadata"] == {"fifo_priority": "0"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d-07:00", row["timestamp"])
    assert body["data"][1]["resp_content_type"] == "text/event-stream"


@run
async def test_ring_cap_keeps_newest_rows_and_filters_validate() -> None:
    async with served(make_sim(metrics_max_in_memory=3)) as c:
        for i in range(5):
            await c.post("/v1/chat/completions", json=chat("alpha", f"q{i}", 1))
        rows = (await c.get("/api/metrics/activity")).json()
        assert [r["id"] for r in rows["data"]] == [5, 4, 3] and rows["total"] == 3
        since = (await c.get("/api/metrics/activity", params={"min_id": 4, "order": "asc"})).json()
        assert [r["id"] for r in since["data"]] == [4, 5]
        paged = (await c.get("/api/metrics/activity", params={"limit": 2, "page": 2})).json()
        assert [r["id"] for r in paged["data"]] == [3] and paged["total_pages"] == 2
        assert (await c.get("/api/metrics/activity", params={"limit": 999})).status_code == 200
        bad = await c.get("/api/metrics/activity", params={"limit": 1000})
        assert bad.status_code == 400
        assert bad.json()["src"] == "llama-swap"
        assert bad.json()["error"]["type"] == "invalid_request_error" and bad.json()["error"]["code"] == "bad_request"
        for params in ({"sort": "nope"}, {"order": "up"}, {"min_id": 0}, {"min_id": 5, "max_id": 4},
                       {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, {"start": "yesterday"}):
            assert (await c.get("/api/metrics/activity", params=params)).status_code == 400, params
        stats = (await c.get("/api/metrics/stats")).json()
        assert stats["total_requests"] == 3 and stats["total_output_tokens"] == 3
        assert stats["gen_histogram"] == {"bins": [3], "min": 1000, "max": 1000, "binSize": 0,
                                          "p50": 1000, "p95": 1000, "p99": 1000}


@run
async def test_captures_hold_base64_bodies() -> None:
    async with served(make_sim()) as c:
        sent = json.dumps(chat("alpha", "cap")).encode()
        await c.post("/v1/chat/completions", content=sent,
                     headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
        cap = (await c.get("/api/captures/1")).json()
        assert base64.b64decode(cap["req_body"]) == sent
        assert cap["req_headers"]["Authorization"] == "[REDACTED]" and "Host" not in cap["req_headers"]
        assert json.loads(base64.b64decode(cap["resp_body"]))["usage"]["completion_tokens"] == 7
        assert (await c.get("/api/captures/999")).status_code == 404
        assert (await c.get("/api/captures/x")).status_code == 400


@run
async def test_sse_framing_is_byte_exact_and_double_encoded() -> None:
    async with served(make_sim()) as c, c.stream("GET", "/api/events") as stream:
        assert stream.headers["content-type"] == "text/event-stream"
        assert stream.headers["x-accel-buffering"] == "no"
        buffer, messages = b"", []
        chunks = stream.aiter_bytes()
        posted = None
        while not any(m["type"] == "activity" for m in messages):
            buffer += await anext(chunks)
            while (match := FRAME.match(buffer)) is not None:
                envelope = json.loads(match.group(1))
                assert isinstance(envelope["data"], str)
                messages.append({"type": envelope["type"], "data": json.loads(envelope["data"])})
                buffer = buffer[match.end():]
            assert buffer == b"" or buffer.startswith(b"event:message\ndata:")
            if len(messages) >= 6 and posted is None:
                posted = asyncio.ensure_future(c.post("/v1/chat/completions", json=chat("alpha", "sse")))
        assert posted is not None and (await posted).status_code == 200
    assert [m["type"] for m in messages[:6]] == ["logData", "logData", "modelStatus", "uiConfig", "profileChanged", "inflight"]
    assert [m["data"]["source"] for m in messages[:2]] == ["proxy", "upstream"]
    assert messages[5]["data"] == {"operation": "snapshot"}  # empty: "requests" omitted, as recorded
    assert messages[3]["data"] == {"activity": {"session_id": ["X-Session-ID", "X-Litellm-Session-Id"]}}
    live = messages[6:]
    alpha_states = [next(x["state"] for x in m["data"] if x["id"] == "alpha") for m in live if m["type"] == "modelStatus"]
    assert alpha_states == ["starting", "ready"]
    inflight = [m["data"] for m in live if m["type"] == "inflight"]
    assert inflight[0]["operation"] == "upsert" and inflight[0]["request"]["id"] == "1"
    assert inflight[-1] == {"operation": "remove", "id": "1"}
    assert live[-1] == {"type": "activity", "data": {"id": 1}}


@run
async def test_performance_after_is_strictly_after_and_null_when_empty() -> None:
    async with served(make_sim(perf_every_s=60)) as c:
        empty = (await c.get("/api/performance")).json()
        assert empty == {"enabled": True, "sys_stats": None, "gpu_stats": None}
        after = (await c.get("/api/performance", params={"after": "2020-01-01T00:00:00Z"})).json()
        assert after == {"enabled": True, "sys_stats": [], "gpu_stats": []}
        assert (await c.get("/metrics")).text == ""
    async with served(make_sim()) as c:
        await asyncio.sleep(0.3)
        perf = (await c.get("/api/performance")).json()
        stamps = [s["timestamp"] for s in perf["sys_stats"]]
        assert len(stamps) >= 3 and all(re.search(r"\.\d{1,9}-07:00$", s) for s in stamps)
        newer = (await c.get("/api/performance", params={"after": stamps[1]})).json()
        assert [s["timestamp"] for s in newer["sys_stats"]][: len(stamps) - 2] == stamps[2:]
        assert all(g["timestamp"] > stamps[1] for g in newer["gpu_stats"]) or newer["gpu_stats"] == []
        assert (await c.get("/api/performance", params={"after": "2026-01-01 00:00:00"})).status_code == 400
        assert "llamaswap_gpu_power_draw_watts{id=\"0\"" in (await c.get("/metrics")).text
        hardware = (await c.get("/api/hardware")).json()
        assert hardware["captured_at"].endswith("Z") and hardware["accelerators"][0]["kind"] == "gpu"


@run
async def test_api_keys_are_checked_like_llama_swap() -> None:
    async with served(make_sim(api_keys=["sk-test"])) as c:
        denied = await c.get("/running")
        assert denied.status_code == 401 and denied.headers["www-authenticate"] == 'Basic realm="llama-swap"'
        assert denied.json()["src"] == "llama-swap"
        assert {k: v for k, v in denied.json()["error"].items() if k != "message"} == {
            "type": "authentication_error", "param": None, "code": "unauthorized"}
        assert (await c.get("/running", headers={"Accept": "text/plain"})).text.startswith("llama-swap: ")
        basic = "Basic " + base64.b64encode(b"anyone:sk-test").decode()
        wrong = "Basic " + base64.b64encode(b"anyone:nope").decode()
        for headers, status in (({"Authorization": "Bearer sk-test"}, 200), ({"Authorization": basic}, 200),
                                ({"x-api-key": "sk-test"}, 200), ({"Authorization": wrong, "x-api-key": "sk-test"}, 401)):
            assert (await c.get("/running", headers=headers)).status_code == status, headers
        assert (await c.get("/wol-health")).text == "OK"


@run
async def test_unload_returns_text_ok_and_swap_evicts_the_group_peer() -> None:
    async with served(make_sim()) as c:
        await c.post("/v1/chat/completions", json=chat("alpha", "x"))
        await c.post("/v1/chat/completions", json=chat("gamma", "x"))
        assert await states(c) == {"alpha": "ready", "gamma": "ready"}
        await c.post("/v1/chat/completions", json=chat("beta", "x"))
        assert await states(c) == {"beta": "ready", "gamma": "ready"}
        unloaded = await c.post("/api/models/unload/beta")
        assert (unloaded.status_code, unloaded.text) == (200, "OK")
        assert unloaded.headers["content-type"].startswith("text/plain")
        assert await states(c) == {"gamma": "ready"}
        models = {m["id"]: m["status"]["value"] for m in (await c.get("/v1/models")).json()["data"]}
        assert models == {"alpha": "unloaded", "beta": "unloaded", "gamma": "loaded", "slow": "unloaded"}
        assert (await c.post("/api/models/unload/nope")).status_code == 404
        assert (await c.post("/api/models/unload")).json() == {"msg": "ok"}
        assert await states(c) == {}
        warm = await c.get("/upstream/alpha/")
        assert warm.status_code == 200 and await states(c) == {"alpha": "ready"}
        assert (await c.get("/upstream/alpha")).status_code == 301
        assert (await c.get("/api/metrics/activity")).json()["total"] == 3


@run
async def test_cancel_and_faults_produce_the_documented_rows() -> None:
    sim = make_sim()
    async with served(sim) as c:
        for expected in (200, 502):  # cancelled while the model loads -> empty 200; while generating -> 502
            pending = asyncio.ensure_future(c.post("/v1/chat/completions", json=chat("slow", "x", 500)))
            while not sim.inflight or (expected == 502 and sim.models["slow"].active == 0):
                await asyncio.sleep(0.01)
            assert (await c.post(f"/api/inflight/{next(iter(sim.inflight))}/cancel")).json() == {"msg": "ok"}
            response = await pending
            assert response.status_code == expected and (expected == 502 or response.content == b"")
        assert (await c.post("/api/inflight/99/cancel")).status_code == 404
        crash = await c.post("/v1/chat/completions", json=chat("alpha", "x"), headers={"X-Demo-Fault": "crash"})
        assert crash.status_code == 502 and crash.content == b""  # Go's reverse proxy: bare 502 (recorded)
        assert "upstream process exited unexpectedly" in (await c.get("/logs")).text
        error = await c.post("/v1/chat/completions", json=chat("beta", "x"), headers={"X-Demo-Fault": "error"})
        assert error.status_code == 500 and "src" not in error.json()
        failed = await c.post("/v1/chat/completions", json=chat("alpha", "x"), headers={"X-Demo-Fault": "start-fail"})
        assert failed.status_code == 500
        assert (await c.post("/v1/chat/completions", json=chat("nope", "x"))).status_code == 404
        rows = (await c.get("/api/metrics/activity", params={"order": "asc"})).json()["data"]
    assert [(r["model"], r["resp_status_code"], r["resp_content_type"][:4]) for r in rows] == [
        ("slow", 200, ""), ("slow", 502, ""), ("alpha", 502, ""), ("beta", 500, "appl"),
        ("alpha", 500, "appl"), ("nope", 404, "appl")]
    assert all(r["tokens"]["output_tokens"] == 0 for r in rows) and all(r.get("error_msg") for r in rows[1:])
    assert rows[1]["error_msg"] == rows[2]["error_msg"] == "502 Bad Gateway"
    assert sim.model_status()[0]["state"] == "stopped"


@run
async def test_concurrent_requests_for_swapping_models_all_finish() -> None:
    sim = make_sim()

    async def one(model: str) -> int:
        reply = await sim.infer(InferenceCall("/v1/chat/completions", json.dumps(chat(model, "x", 3)).encode(),
                                              {"Content-Type": "application/json"}))
        async for _ in reply.body:
            pass
        return reply.status

    statuses = await asyncio.gather(*[one(("alpha", "beta", "gamma")[i % 3]) for i in range(30)])
    assert statuses == [200] * 30 and not sim.inflight
    assert [r["id"] for r in sim.activity.rows] == list(range(1, 31))
    assert sim.logs["proxy"].count("swapping in") >= 1
