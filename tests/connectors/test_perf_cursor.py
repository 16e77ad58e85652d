"""The follower's ``/api/performance?after=`` cursor is the older of its two sample cursors compared as times.

Go drops trailing zeros in fractional seconds and keeps the host's offset, so the raw strings do not sort as times:
``…15.71Z`` < ``…15.7Z`` as strings, although it is 10 ms later. Asking with the later cursor skips the other
stream's samples in between for good.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest

from connectors import llama_swap as proto
from connectors.follower import LlamaSwapFollower, newest_cursor, older_cursor
from connectors.llama_swap_api import LlamaSwapAPI
from core.providers import Provider
from warehouse.records import GpuSample, PerfSample, ProviderState


def test_timestamp_ns_is_exact_to_the_nanosecond_and_offset_aware():
    assert proto.timestamp_ns("2026-11-21T10:00:15.7Z") == 1_795_255_215_700_000_000
    assert proto.timestamp_ns("2026-11-21T10:00:15.71Z") == 1_795_255_215_710_000_000
    assert proto.timestamp_ns("2026-11-21T12:00:15.123456789+02:00") == 1_795_255_215_123_456_789
    assert proto.timestamp_ns("2026-11-21T10:00:15Z") == 1_795_255_215_000_000_000
    with pytest.raises(proto.ProtocolError):
        proto.timestamp_ns("2026-11-21T10:00:15.1234567891Z")  # more than nanoseconds: not Go's
    with pytest.raises(proto.ProtocolError):
        proto.timestamp_ns("yesterday")


@pytest.mark.parametrize(("sys_after", "gpu_after", "older"), [
    # trailing zero dropped by Go: as strings '.71Z' < '.7Z', as times .7 is the older
    ("2026-11-21T10:00:15.71Z", "2026-11-21T10:00:15.7Z", "2026-11-21T10:00:15.7Z"),
    ("2026-11-21T10:00:15.7Z", "2026-11-21T10:00:15.71Z", "2026-11-21T10:00:15.7Z"),
    # nanoseconds: '.123456789Z' < '.1234567Z' as strings; .1234567 is older (and equal at microseconds)
    ("2026-11-21T10:00:15.123456789Z", "2026-11-21T10:00:15.1234567Z", "2026-11-21T10:00:15.1234567Z"),
    # the host's offset: 12:00:15.5+02:00 is 10:00:15.5Z, older than 10:00:15.6Z although it sorts after it
    ("2026-11-21T10:00:15.6Z", "2026-11-21T12:00:15.5+02:00", "2026-11-21T12:00:15.5+02:00"),
    # whole seconds (no fraction at all) against a fraction of the same second
    ("2026-11-21T10:00:15.000000001Z", "2026-11-21T10:00:15Z", "2026-11-21T10:00:15Z"),
    # one stream has no cursor yet: the other one
    (None, "2026-11-21T10:00:15.7Z", "2026-11-21T10:00:15.7Z"),
    ("2026-11-21T10:00:15.71Z", None, "2026-11-21T10:00:15.71Z"),
    (None, None, None),
    # an unparseable cursor: ask for everything rather than risk skipping
    ("garbage", "2026-11-21T10:00:15.7Z", None),
])
def test_older_cursor_compares_times_and_returns_the_raw_string(sys_after, gpu_after, older):
    assert older_cursor(sys_after, gpu_after) == older


def _ts(raw: str) -> datetime:
    return datetime.fromisoformat(raw)


class Perf:
    """``/api/performance`` like llama-swap's handler: both lists filtered by ``Timestamp.After(after)``."""

    SYS = ["2026-11-21T10:00:15.71Z", "2026-11-21T10:00:20.71Z"]
    GPU = ["2026-11-21T10:00:15.7Z", "2026-11-21T10:00:15.705Z", "2026-11-21T10:00:20.7Z"]

    def __init__(self) -> None:
        self.asked: list[str | None] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/performance"
        after = request.url.params.get("after")
        self.asked.append(after)

        def keep(ts: str) -> bool:
            return after is None or _ts(ts) > _ts(after)

        body: dict[str, Any] = {
            "sys_stats": [{"timestamp": t, "cpu_util_per_core": [10.0]} for t in self.SYS if keep(t)],
            "gpu_stats": [{"timestamp": t, "id": 0, "uuid": "GPU-1", "name": "g"} for t in self.GPU if keep(t)],
        }
        return httpx.Response(200, json=body)


def test_sync_performance_asks_after_the_older_cursor_and_misses_no_gpu_sample():
    upstream = Perf()
    emitted: list[Any] = []

    async def emit(records) -> None:
        emitted.extend(records)

    async def main() -> ProviderState:
        async with httpx.AsyncClient(transport=httpx.MockTransport(upstream)) as client:
            # the last sys sample committed is .71, the last GPU sample .7; the GPU sample at .705 is not yet read
            st = ProviderState(boot_marker="b", epoch="b", sys_after="2026-11-21T10:00:15.71Z",
                               gpu_after="2026-11-21T10:00:15.7Z")
            f = LlamaSwapFollower(LlamaSwapAPI(Provider(id="p", label="p", base_url="http://ls"), client), st, emit)
            await f.sync_performance()
            return st

    st = asyncio.run(main())
    assert upstream.asked == ["2026-11-21T10:00:15.7Z"]
    assert [g.raw_ts for g in emitted if isinstance(g, GpuSample)] == ["2026-11-21T10:00:15.705Z",
                                                                       "2026-11-21T10:00:20.7Z"]
    # .71 again (the database deduplicates it) and the new one
    assert [s.raw_ts for s in emitted if isinstance(s, PerfSample)] == ["2026-11-21T10:00:15.71Z",
                                                                        "2026-11-21T10:00:20.71Z"]
    assert (st.sys_after, st.gpu_after) == ("2026-11-21T10:00:20.71Z", "2026-11-21T10:00:20.7Z")


def test_newest_cursor_is_the_latest_time_not_the_last_string():
    assert newest_cursor(["2026-11-21T10:00:15.7Z", "2026-11-21T10:00:15.71Z", "2026-11-21T10:00:15.705Z"]) == \
        "2026-11-21T10:00:15.71Z"
    assert newest_cursor(["2026-11-21T12:00:15.5+02:00", "2026-11-21T10:00:15.4Z"]) == "2026-11-21T12:00:15.5+02:00"
    assert newest_cursor(["2026-11-21T10:00:15.1234567891Z"]) is None  # more than nanoseconds: not Go's
    assert newest_cursor([]) is None


def test_a_malformed_last_sample_does_not_become_the_cursor():
    """The cursor was the list's last timestamp as sent, even when that sample was skipped as malformed: an
    unparseable cursor then made every later poll ask for everything."""
    class Upstream:
        def __call__(self, request: httpx.Request) -> httpx.Response:
            return httpx.Response(200, json={
                "sys_stats": [{"timestamp": "2026-11-21T10:00:20.71Z"}, {"timestamp": "not a time"}],
                "gpu_stats": [{"timestamp": "2026-11-21T10:00:20.7Z", "id": 0}, {"timestamp": 17, "id": 0}]})

    async def emit(records) -> None:
        pass

    async def main() -> ProviderState:
        async with httpx.AsyncClient(transport=httpx.MockTransport(Upstream())) as client:
            st = ProviderState(boot_marker="b", epoch="b")
            f = LlamaSwapFollower(LlamaSwapAPI(Provider(id="p", label="p", base_url="http://ls"), client), st, emit)
            await f.sync_performance()
            return st

    st = asyncio.run(main())
    assert (st.sys_after, st.gpu_after) == ("2026-11-21T10:00:20.71Z", "2026-11-21T10:00:20.7Z")
