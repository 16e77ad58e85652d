"""The product's llama-swap parsing against what real llama-swap builds sent (tests/fixtures/llama_swap/).

The recordings come from ``scripts/record_llama_swap.py`` (newest snapshot, v250, v239). Every recorded event
message, activity row, performance sample and error body must go through ``connectors`` parsing as the
documented facts say (docs/llama-swap-api.md), for every recorded version.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors import llama_swap as proto
from connectors.llama_swap_api import error_message
from demo.contract import load_recording

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "llama_swap"
LABELS = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


@pytest.fixture(params=LABELS)
def recording(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load_recording(FIXTURES / request.param)


def test_there_are_recordings_for_three_versions() -> None:
    assert LABELS == ["v239", "v250", "v250-5-g0bdb372"]


def test_raw_event_stream_decodes_into_the_recorded_messages(recording: dict[str, Any]) -> None:
    raw = (FIXTURES / recording["label"] / "events.sse").read_bytes()
    blocks = [b for b in raw.split(b"\n\n") if b]
    decoded = []
    for block in blocks:
        event, data = block.split(b"\n")
        assert event == b"event:message" and data.startswith(b"data:{")
        decoded.append(proto.decode_envelope(data[5:].decode()))
    assert [t for t, _ in decoded] == [m["type"] for m in recording["events"]["messages"][: len(decoded)]]


def test_every_inflight_message_applies(recording: dict[str, Any]) -> None:
    current: dict[str, dict[str, Any]] = {}
    steps_with_requests = set()
    for msg in recording["events"]["messages"]:
        if msg["type"] == "inflight":
            current = proto.inflight_requests(msg["data"], current)
            if current:
                steps_with_requests.add(msg["step"])
    assert current == {}  # every tracked request was removed again
    assert {"chat_load", "chat_stream", "cancel"} <= steps_with_requests


def test_model_status_and_activity_rows_parse(recording: dict[str, Any]) -> None:
    now = datetime.now(UTC)
    for msg in recording["events"]["messages"]:
        if msg["type"] == "modelStatus":
            models = proto.parse_model_status(msg["data"], "p", now)
            assert [m.model_id for m in models] == ["responder-a", "responder-b"]
    rows = recording["exchanges"]["activity_default"]["body"]["json"]["data"]
    parsed = [proto.parse_activity(r, "p", "e") for r in rows]
    assert [a.upstream_id for a in parsed] == [5, 4, 3]  # the ring of metricsMaxInMemory=3, newest first
    cancelled, unknown, swap = parsed
    assert (cancelled.status_code, cancelled.error_msg, cancelled.resp_content_type) == (502, "502 Bad Gateway", "")
    assert (unknown.model_id, unknown.status_code, unknown.input_tokens, unknown.cache_tokens) == (
        "no-such-model", 404, 0, 0)
    assert (swap.input_tokens, swap.output_tokens, swap.tokens_per_second, swap.cache_tokens) == (25, 10, 10.0, -1)
    assert swap.prompt_per_second == 0.0  # simple-responder's timings have no prompt_per_second


def test_performance_samples_parse(recording: dict[str, Any]) -> None:
    body = recording["exchanges"]["performance"]["body"]["json"]
    assert body["enabled"] is True and body["gpu_stats"] is None  # no GPU tool on the recording host
    sample = proto.parse_sys_stat(body["sys_stats"][0], "p")
    assert sample.raw_ts == body["sys_stats"][0]["timestamp"]


def test_error_messages_come_out_of_both_body_shapes(recording: dict[str, Any]) -> None:
    checked = 0
    for name, ex in recording["exchanges"].items():
        body = ex["body"]
        if ex["status"] is None or ex["status"] < 400 or not body or "json" not in body:
            continue
        err = body["json"]["error"]
        expected = err if isinstance(err, str) else err["message"]
        resp = httpx.Response(ex["status"], json=body["json"])
        assert error_message(resp) == expected, name
        checked += 1
    assert checked >= 8
