"""The connector's aiohttp-backed transport raises the httpx errors the follower tells apart, and carries the SSE
stream and polls of a (simulated) llama-swap unchanged."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
from collections.abc import Iterator

import httpx
import pytest

from connectors.follower import refused
from connectors.llama_swap_api import LlamaSwapAPI
from connectors.transport import FollowerTransport
from core.providers import Provider
from demo.fleet import demo_fleet_in_thread


def client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=8, keepalive_expiry=60)
    return httpx.AsyncClient(transport=FollowerTransport(limits, ssl.create_default_context()), limits=limits)


def get(url: str, timeout: float = 5.0) -> httpx.Response:
    async def main() -> httpx.Response:
        async with client() as c:
            resp = await c.get(url, timeout=timeout)
            await resp.aread()
            return resp

    return asyncio.run(main())


@pytest.fixture
def raw_server() -> Iterator[tuple[int, list[bytes]]]:
    """A TCP server that answers each connection with the next scripted bytes, then closes it (b"" = never answers)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    script: list[bytes] = []
    held: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(65536)
            answer = script.pop(0) if script else b""
            if answer:
                conn.sendall(answer)
                conn.close()
            else:
                held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1], script
    srv.close()
    for c in held:
        c.close()


def test_refused_connect_is_a_connect_error_that_refused_recognises() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(httpx.ConnectError) as info:
        get(f"http://127.0.0.1:{port}/api/version")
    assert refused(info.value)


def test_no_answer_is_a_read_timeout(raw_server: tuple[int, list[bytes]]) -> None:
    port, script = raw_server
    script.append(b"")
    with pytest.raises(httpx.ReadTimeout):
        get(f"http://127.0.0.1:{port}/api/version", timeout=0.5)


def test_body_cut_short_is_a_remote_protocol_error(raw_server: tuple[int, list[bytes]]) -> None:
    port, script = raw_server
    script.append(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":")
    with pytest.raises(httpx.RemoteProtocolError):
        get(f"http://127.0.0.1:{port}/api/version")


def test_error_status_and_json_pass_through(raw_server: tuple[int, list[bytes]]) -> None:
    port, script = raw_server
    body = b'{"error":"nope"}'
    script.append(b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: "
                  + str(len(body)).encode() + b"\r\n\r\n" + body)
    resp = get(f"http://127.0.0.1:{port}/api/captures/7")
    assert (resp.status_code, resp.json()) == (404, {"error": "nope"})


def test_polls_and_event_stream_of_a_simulated_host() -> None:
    with demo_fleet_in_thread(1) as fleet:
        async def main() -> tuple[list[str], dict[str, object], int]:
            async with client() as c:
                api = LlamaSwapAPI(Provider(id="p", label="p", base_url=fleet.base_urls[0]), c)
                version = await api.version()
                types: list[str] = []
                async with api.events() as events:
                    async for ev in events:
                        types.append(ev.type)
                        if ev.type == "modelStatus":
                            break
                page = await api.activity_page(sort="id", order="asc", limit=999, page=1)
                return types, version, int(page["total_pages"]) if "total_pages" in page else -1

        types, version, pages = asyncio.run(main())
    assert version["simulated"] is True
    assert types == ["logData", "logData", "modelStatus"]  # §2.4: the two log histories, then the models
    assert pages >= 0
