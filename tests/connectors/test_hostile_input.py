"""Hostile input: recorded SSE bytes split at awkward boundaries, malformed frames, invalid JSON,
oversized payloads, model names with quotes and markup. Each gets a logged error; the connector goes on."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors import llama_swap as proto
from connectors.follower import LlamaSwapFollower, StreamEnded
from connectors.llama_swap_api import LlamaSwapAPI
from core.providers import Provider
from warehouse.records import Inflight, LogChunk, ModelInfo, ProviderState, RawEvent, Transition

FIXTURE = Path(__file__).parents[1] / "fixtures" / "sse" / "llama_swap_0bdb372.txt"


class Chunked(httpx.AsyncByteStream):
    def __init__(self, data: bytes, size: int) -> None:
        self.data, self.size = data, size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.data), self.size):
            yield self.data[i : i + self.size]


def run_follow(body: bytes, chunk: int) -> list:
    emitted: list = []

    async def emit(records):
        emitted.extend(records)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/events":  # activity events trigger a sync: nothing new upstream
            return httpx.Response(200, json={"data": [], "page": 1, "limit": 999, "total": 0, "total_pages": 0})
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=Chunked(body, chunk))

    async def main():
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            api = LlamaSwapAPI(Provider(id="p", label="p", base_url="http://ls"), client)
            st = ProviderState(boot_marker="b", epoch="b", cursor=10**9)  # no activity sync in this test
            f = LlamaSwapFollower(api, st, emit)
            f._reconciled.set()
            with pytest.raises(StreamEnded):
                await f.follow()
            await asyncio.sleep(0)

    asyncio.run(main())
    return emitted


def summary(records):
    return [(type(r).__name__, getattr(r, "type", None), getattr(r, "model_id", None), getattr(r, "to_state", None),
             getattr(r, "text", None), len(getattr(r, "requests", []) or [])) for r in records
            if not isinstance(r, RawEvent) or True]


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1000, 10**6])
def test_recorded_stream_decodes_identically_at_any_chunk_boundary(chunk):
    body = FIXTURE.read_bytes()
    baseline = run_follow(body, 10**6)
    got = run_follow(body, chunk)
    strip = lambda rs: [(type(r).__name__, getattr(r, "type", None), getattr(r, "payload", None),  # noqa: E731
                         getattr(r, "model_id", None), getattr(r, "to_state", None), getattr(r, "text", None))
                        for r in rs]
    assert strip(got) == strip(baseline)
    raw = [r for r in got if isinstance(r, RawEvent)]
    assert len(raw) == 37  # every SSE message of the recording lands as a raw event
    assert [r.type for r in raw].count("sse:modelStatus") == 13
    assert {m.model_id for m in got if isinstance(m, ModelInfo)} == {'bad"name<b>', "responder-a"}
    trans = [(t.model_id, t.from_state, t.to_state) for t in got if isinstance(t, Transition)]
    cycle = [("stopped", "starting"), ("starting", "ready"), ("ready", "stopping"), ("stopping", "stopped")]
    a, b = "responder-a", 'bad"name<b>'
    assert trans == [(b, None, "stopped"), (a, None, "stopped"), *[(a, *c) for c in cycle],
                     *[(b, *c) for c in cycle], *[(a, *c) for c in cycle]]
    assert isinstance(got[-1], (RawEvent, Inflight, LogChunk, ModelInfo, Transition))


def frame(obj) -> bytes:
    data = obj if isinstance(obj, str) else json.dumps(obj)
    return f"event:message\ndata:{data}\n\n".encode()


def env(type_, data) -> dict:
    return {"type": type_, "data": json.dumps(data)}


def test_malformed_frames_are_logged_and_skipped(caplog):
    body = b"".join([
        frame("{not json"),
        frame({"no": "type"}),
        frame({"type": "modelStatus", "data": "[not json"}),
        frame(env("modelStatus", {"not": "a list"})),
        frame(env("inflight", {"operation": "explode"})),
        frame(env("logData", {"source": "proxy"})),
        b"garbage line without colon\n\n",
        b"event:message\ndata:" + b"\xff\xfe invalid utf8" + b"\n\n",
        frame(env("modelStatus", [{"id": "ok-model", "state": "ready"}])),
    ])
    with caplog.at_level(logging.ERROR):
        got = run_follow(body, 5)
    errors = [r.message for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) >= 6
    assert any("not JSON" in e for e in errors)
    malformed = [r for r in got if isinstance(r, RawEvent) and r.type == "sse:malformed"]
    assert len(malformed) >= 3
    # the good message after all the bad ones still lands
    assert [(m.model_id, m.state) for m in got if isinstance(m, ModelInfo)] == [("ok-model", "ready")]


def test_oversized_payload_is_kept_and_stream_continues():
    big = "x" * (8 * 1024 * 1024)
    body = frame(env("logData", {"source": "upstream", "data": big})) + frame(env("modelStatus", [{"id": "m", "state": "stopped"}]))
    got = run_follow(body, 65536)
    logs = [r for r in got if isinstance(r, LogChunk)]
    assert len(logs) == 1 and len(logs[0].text) == len(big)
    assert [(m.model_id, m.state) for m in got if isinstance(m, ModelInfo)] == [("m", "stopped")]


def test_names_with_quotes_markup_and_nul_survive_to_postgres(db, db_url):
    import psycopg

    from tests.support.connector import dsn, query
    from warehouse.ingest import sync_providers, write_batch
    from warehouse.records import utcnow

    names = ['bad"name<b>', "<script>alert(1)</script>", "it's", "nul\x00byte", "peer/with/slash"]
    now = utcnow()
    recs = [ModelInfo("p", n, now, state="ready") for n in names]
    recs.append(RawEvent("p", None, now, "sse:modelStatus", [{"id": n} for n in names]))
    with psycopg.connect(dsn(db_url)) as conn:
        sync_providers(conn, [Provider(id="p", label="p", base_url="http://x")])
        write_batch(conn, recs)
        write_batch(conn, recs)  # a replay changes nothing
    got = sorted(r[0] for r in query(db_url, "SELECT model_id FROM models"))
    assert got == sorted(n.replace("\x00", "\ufffd") for n in names)
    assert query(db_url, "SELECT count(*) FROM raw_events") == [(1,)]


def test_timestamps_keep_offsets_and_truncate_nanoseconds():
    t = proto.parse_timestamp("2026-08-22T09:29:57.123456789-07:00")
    assert t.isoformat() == "2026-08-22T16:29:57.123456+00:00"
    assert proto.parse_timestamp("2026-08-22T16:00:01Z").isoformat() == "2026-08-22T16:00:01+00:00"
    with pytest.raises(proto.ProtocolError):
        proto.parse_timestamp("yesterday")


def test_inflight_pre_v240_full_list_and_empty_snapshot():
    cur = proto.inflight_requests({"operation": "snapshot"}, {"9": {}})
    assert cur == {}
    cur = proto.inflight_requests({"requests": [{"id": "1"}, {"id": "2"}]}, cur)  # v235-v239 shape
    assert sorted(cur) == ["1", "2"]
    cur = proto.inflight_requests({"operation": "upsert", "request": {"id": "3"}}, cur)
    cur = proto.inflight_requests({"operation": "remove", "id": "1"}, cur)
    assert sorted(cur) == ["2", "3"]


def test_command_lines_are_redacted():
    cmd = "llama-server --port 5801 --api-key sk-abcdef123456789 -m /m.gguf HF_TOKEN=hf_abcdefghijklmnop --hf-token=xyz"
    red = proto.redact_command(cmd)
    assert "sk-abcdef" not in red and "hf_abcdef" not in red and "xyz" not in red
    assert "--port 5801" in red and "-m /m.gguf" in red
