from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from actions.host_logs import HostLogError, fetch_model_log
from core.providers import Provider

P = Provider("alpha", "alpha", "http://alpha.test:8080", api_key_env="ALPHA_KEY")


def factory(handler):  # type: ignore[no-untyped-def]
    return lambda p: httpx.AsyncClient(transport=httpx.MockTransport(handler))


class Endless(httpx.AsyncByteStream):
    """History first, then a stream that stays open (like llama-swap's live tail)."""

    def __init__(self, history: bytes) -> None:
        self.history = history

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.history
        while True:
            await asyncio.sleep(0.05)
            yield b""


def test_reads_history_then_stops_at_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPHA_KEY", "sk-secret-999")
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.url.path} {request.headers.get('authorization')}")
        return httpx.Response(
            200, stream=Endless(b"loading 3\nloading 2\nready with --api-key sk-secret-999\n")
        )

    t0 = time.monotonic()
    text = fetch_model_log(P, "org/m v2", factory(handler), read_s=0.3)
    assert time.monotonic() - t0 < 2
    assert text == "loading 3\nloading 2\nready with --api-key [REDACTED]\n"
    assert seen == ["/logs/stream/org/m v2 Bearer sk-secret-999"]  # decoded path; the slash is kept


def test_bounded_in_size() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Endless(b"x" * 5000))

    assert len(fetch_model_log(P, "m", factory(handler), max_bytes=1000, read_s=0.2)) == 1000


def test_errors_are_clear() -> None:
    def bad(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "invalid log id"}})

    with pytest.raises(HostLogError, match=r"provider alpha: /logs/stream/m: HTTP 400: invalid log id"):
        fetch_model_log(P, "m", factory(bad), read_s=0.2)

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(
        HostLogError, match=r"^provider alpha is unreachable: ConnectError: Connection refused$"
    ):
        fetch_model_log(P, "m", factory(down), read_s=0.2)


def test_a_quiet_models_log_is_empty_not_unreachable() -> None:
    """llama-swap writes nothing, not even headers, while a log's history is empty (recorded; the simulator
    does the same, checked by tests/demo/test_simulator_contract.py). Before: 'unreachable: ReadTimeout'."""
    from demo import demo_fleet_in_thread

    with demo_fleet_in_thread(1) as fleet:
        quiet = next(iter(fleet.sims[0].models))
        provider = Provider("demo", "demo", fleet.base_urls[0])
        assert fetch_model_log(provider, quiet, read_s=0.3) == ""
        with pytest.raises(HostLogError, match=r"HTTP 400: invalid logger"):
            fetch_model_log(provider, "no-such-model", read_s=0.3)
        assert "llama-swap listening" in fetch_model_log(provider, "proxy", read_s=0.3)
