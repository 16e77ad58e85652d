"""Captures are fetched until llama-swap has them or has dropped them (hand-built upstream answers, MockTransport).

llama-swap stores an activity row, then its capture, then announces the row on ``/api/events``; a fetch that
lands in between reads ``has_capture: false`` for a capture that exists a moment later.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from connectors.follower import LlamaSwapFollower, ProviderState
from connectors.llama_swap_api import LlamaSwapAPI
from core.providers import Provider
from warehouse.records import Capture, Gap

CAPTURE = {"id": 5, "req_path": "/v1/chat/completions", "req_headers": {"Content-Type": "application/json"},
           "req_body": "e30=", "resp_headers": {"Content-Type": "application/json"}, "resp_body": "e30="}


def row(i: int, has_capture: bool) -> dict[str, Any]:
    return {"id": i, "timestamp": "2026-11-21T10:00:00Z", "model": "m", "req_path": "/v1/chat/completions",
            "resp_content_type": "application/json", "resp_status_code": 200, "duration_ms": 31,
            "tokens": {"input_tokens": 25, "output_tokens": 10, "cache_tokens": -1, "draft_tokens": -1,
                       "draft_acc_tokens": -1, "prompt_per_second": 0, "tokens_per_second": 10},
            "has_capture": has_capture}


class Upstream:
    """Activity row 5 after cursor 4, and ``/api/captures/5`` answering from ``capture_answers`` in turn."""

    def __init__(self, has_capture: bool, capture_answers: list[int], boot: str | None = None) -> None:
        self.boot = boot  # what /api/hardware says (None: 404, as before v247)
        self.has_capture = has_capture
        self.capture_answers = capture_answers
        self.capture_calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/metrics/activity":
            data = [row(5, self.has_capture)] if int(request.url.params.get("min_id", 0)) <= 5 else []
            return httpx.Response(200, json={"data": data, "page": 1, "limit": 999, "total": len(data),
                                             "total_pages": 1})
        if request.url.path == "/api/captures/5":
            status = self.capture_answers[min(self.capture_calls, len(self.capture_answers) - 1)]
            self.capture_calls += 1
            if status == 200:
                return httpx.Response(200, json=CAPTURE)
            return httpx.Response(status, json={"error": "capture not found" if status == 404 else "busy"})
        if request.url.path == "/api/hardware" and self.boot is not None:
            return httpx.Response(200, json={"captured_at": self.boot})
        return httpx.Response(404, json={"error": "not here"})


def run(upstream: Upstream, *, announced: int, announce_5_after_fetch: bool = False,
        wait_for: type = Capture, timeout: float = 20.0) -> tuple[list[Any], Upstream]:
    emitted: list[Any] = []

    async def emit(records) -> None:
        emitted.extend(records)

    async def main() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
            st = ProviderState(boot_marker="b", epoch="b", cursor=4, id_filter=True)
            f = LlamaSwapFollower(LlamaSwapAPI(Provider(id="p", label="p", base_url="http://ls"), client), st, emit)
            f.max_announced = announced
            await f.sync_activity()
            if announce_5_after_fetch:  # llama-swap stores the capture, then announces the row
                upstream.capture_answers = [200]
                await f.handle_message(json.dumps({"type": "activity", "data": json.dumps({"id": 5})}))
            deadline = time.monotonic() + timeout
            while not any(isinstance(r, wait_for) for r in emitted) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)  # nothing more follows
            for t in list(f._tasks):
                t.cancel()

    asyncio.run(main())
    return emitted, upstream


def of(records: list[Any], kind: type) -> list[Any]:
    return [r for r in records if isinstance(r, kind)]


def test_row_read_before_its_capture_was_stored_gets_its_capture_after_the_announcement():
    # the fetch ran after row 4 was announced: row 5 was read before its own announcement, capture not stored yet
    emitted, up = run(Upstream(has_capture=False, capture_answers=[404]), announced=4, announce_5_after_fetch=True)
    (cap,) = of(emitted, Capture)
    assert (cap.provider_id, cap.epoch, cap.upstream_id, cap.payload) == ("p", "b", 5, CAPTURE)
    assert up.capture_calls == 1  # asked once, after the announcement
    assert of(emitted, Gap) == []


def test_row_read_after_its_announcement_without_capture_is_not_asked_for():
    emitted, up = run(Upstream(has_capture=False, capture_answers=[200]), announced=5, timeout=0.5)
    assert up.capture_calls == 0 and of(emitted, Capture) == [] and of(emitted, Gap) == []


def test_capture_dropped_before_it_was_fetched_is_recorded_not_silently_absent():
    emitted, up = run(Upstream(has_capture=True, capture_answers=[404]), announced=5, wait_for=Gap)
    assert of(emitted, Capture) == []
    (gap,) = of(emitted, Gap)
    assert (gap.provider_id, gap.stream, gap.epoch, gap.from_id, gap.to_id) == ("p", "capture", "b", 5, 5)
    assert "dropped by llama-swap" in gap.reason
    assert up.capture_calls == 1


def test_capture_is_retried_after_transport_errors():
    emitted, up = run(Upstream(has_capture=True, capture_answers=[503, 503, 200]), announced=5)
    assert [c.upstream_id for c in of(emitted, Capture)] == [5]
    assert up.capture_calls == 3 and of(emitted, Gap) == []


def test_a_retried_capture_is_taken_only_from_the_boot_the_row_came_from():
    # the instance restarted while the capture was retried: the new boot (ids restart at 1) answers for id 5
    # with its own request's capture, which must not be stored under the old row
    emitted, up = run(Upstream(has_capture=True, capture_answers=[503, 200], boot="a-new-boot"), announced=5,
                      wait_for=Gap)
    assert of(emitted, Capture) == []
    (gap,) = of(emitted, Gap)
    assert (gap.stream, gap.from_id) == ("capture", 5) and "restarted before it was fetched" in gap.reason
    emitted, up = run(Upstream(has_capture=True, capture_answers=[503, 200], boot="b"), announced=5)
    assert [c.upstream_id for c in of(emitted, Capture)] == [5]  # same boot: taken
