from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from engines.bench.gate import (
    InflightSnapshot,
    TakeoverRefused,
    check_takeover,
    read_inflight_snapshot,
    read_llama_server_slots,
)

pytestmark = pytest.mark.anyio

ENTRY = {"id": "17", "model": "qwen", "req_path": "/v1/chat/completions", "method": "POST",
         "req_headers": {"X-Booctrl": "x", "X-Boocontrol-Bench": "bc-1"}}  # fmt: skip


def msg(typ: str, data: Any) -> bytes:
    env = {"type": typ, "data": json.dumps(data)}
    return b"event:message\ndata:" + json.dumps(env, separators=(",", ":")).encode() + b"\n\n"


def events_client(body: list[bytes], status: int = 200, hang: bool = False) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/events"

        async def gen() -> AsyncIterator[bytes]:
            for b in body:
                # split each message in two to exercise the decoder across reads
                yield b[: len(b) // 2]
                yield b[len(b) // 2 :]
            if hang:
                await asyncio.sleep(3600)

        return httpx.Response(status, headers={"content-type": "text/event-stream"}, content=gen())

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


def test_confirmation_is_required_even_on_an_idle_host() -> None:
    with pytest.raises(TakeoverRefused, match="explicit takeover confirmation"):
        check_takeover(False, InflightSnapshot())
    check_takeover(True, InflightSnapshot())


def test_unknown_inflight_state_is_refused() -> None:
    with pytest.raises(TakeoverRefused, match="cannot be read: v230"):
        check_takeover(True, InflightSnapshot(known=False, detail="v230"))
    with pytest.raises(TakeoverRefused):
        check_takeover(True, None)


def test_busy_host_is_refused_with_the_requests_named() -> None:
    with pytest.raises(
        TakeoverRefused, match=r"1 request\(s\) in flight \[17 POST /v1/chat/completions"
    ) as ei:
        check_takeover(True, InflightSnapshot(requests=(ENTRY,)))
    assert ei.value.inflight == [ENTRY]


async def test_snapshot_v240_after_initial_payload() -> None:
    body = [
        msg("logData", {"source": "proxy", "data": "x" * 5000}),
        msg(
            "modelStatus",
            [
                {"id": "qwen", "state": "ready"},
                {"id": "other", "state": "stopped"},
                {"id": "peer/m", "state": "", "peerID": "peer"},
            ],
        ),  # fmt: skip
        msg("uiConfig", {}),
        msg("inflight", {"operation": "snapshot", "requests": [ENTRY]}),
    ]
    async with events_client(body, hang=True) as c:
        snap = await read_inflight_snapshot(c, "http://h")
    assert snap.known and snap.headers_known
    assert [r["id"] for r in snap.requests] == ["17"]
    assert snap.loaded_models == ("qwen",)
    assert snap.tagged("bc-1") == [ENTRY] and snap.foreign("bc-1") == []


async def test_snapshot_pre_v240_full_list() -> None:
    old = {k: v for k, v in ENTRY.items() if k != "req_headers"}
    async with events_client([msg("inflight", {"requests": [old]})], hang=True) as c:
        snap = await read_inflight_snapshot(c, "http://h")
    assert snap.known and not snap.headers_known and len(snap.requests) == 1


async def test_live_upsert_before_snapshot_does_not_end_the_read() -> None:
    body = [
        msg("inflight", {"operation": "upsert", "request": {"id": "3"}}),
        msg("inflight", {"operation": "snapshot", "requests": []}),
    ]
    async with events_client(body, hang=True) as c:
        snap = await read_inflight_snapshot(c, "http://h")
    assert snap.known and snap.requests == ()


async def test_no_snapshot_is_unknown_not_idle() -> None:
    async with events_client([msg("modelStatus", [])], hang=True) as c:
        snap = await read_inflight_snapshot(c, "http://h", timeout_s=0.2)
    assert not snap.known and "older than v235" in snap.detail
    async with events_client([msg("modelStatus", [])]) as c:
        snap = await read_inflight_snapshot(c, "http://h")
    assert not snap.known and "ended" in snap.detail
    async with events_client([b'{"error":"unauthorized"}'], status=401) as c:
        snap = await read_inflight_snapshot(c, "http://h")
    assert not snap.known and "HTTP 401" in snap.detail


async def test_llama_server_slots() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"id": 0, "is_processing": False}, {"id": 1, "is_processing": True}])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as c:
        snap = await read_llama_server_slots(c, "http://h")
    assert snap.known and [r["id"] for r in snap.requests] == ["slot-1"]

    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(501))) as c:
        snap = await read_llama_server_slots(c, "http://h")
    assert not snap.known
