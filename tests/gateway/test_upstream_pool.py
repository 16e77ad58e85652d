"""The gateway's upstream session (`gateway.upstream`): a lone numeric address is connected to directly, on
uvloop as the gateway runs, and what the gateway's fallback tells apart stays the same — a refused connection is
an `aiohttp.ClientConnectorError` (→ the next candidate), a host name with two addresses goes aiohttp's way."""

from __future__ import annotations

import socket
from typing import Any

import aiohttp
import pytest
import uvloop

from gateway.upstream import DirectConnector, upstream_session
from tests.gateway.upstream import run_upstream

CHAT = {"model": "instant", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()  # nothing listens there now
    return port


def test_numeric_upstreams_are_connected_directly_and_streams_pass() -> None:
    async def main(base: str) -> tuple[list[Any], int, int]:
        opened: list[int] = []
        trace = aiohttp.TraceConfig()

        async def made(*_: Any) -> None:
            opened.append(1)

        trace.on_connection_create_end.append(made)
        async with upstream_session(trace_configs=[trace]) as s:
            got = []
            for stream in (False, True, False):
                async with s.post(f"{base}/v1/chat/completions", json={**CHAT, "stream": stream}) as r:
                    body = await r.read()
                    got.append((r.status, body.count(b"data: {"), b'"usage"' in body))
            conn = s.connector
            assert isinstance(conn, DirectConnector)
            return got, conn.direct, len(opened)

    with run_upstream() as up:
        got, direct, opened = uvloop.run(main(up.base_url))
    # plain: one JSON answer with usage; stream: the role chunk, 3 content chunks, the finish and the usage chunk
    assert got == [(200, 0, True), (200, 6, True), (200, 0, True)]
    assert direct == opened == 1  # one kept-alive connection, opened the direct way


def test_a_refused_connection_is_a_connector_error() -> None:
    port = _closed_port()

    async def main() -> tuple[type[BaseException], int]:
        async with upstream_session() as s:
            with pytest.raises(aiohttp.ClientError) as err:
                await s.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=CHAT)
            conn = s.connector
            assert isinstance(conn, DirectConnector)
            return err.type, conn.direct

    kind, direct = uvloop.run(main())
    assert issubclass(kind, aiohttp.ClientConnectorError)
    assert direct == 0


def test_a_name_with_several_addresses_goes_aiohttps_way(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    parent = aiohttp.TCPConnector._wrap_create_connection

    async def spy(self: aiohttp.TCPConnector, *args: Any, addr_infos: list[Any], **kw: Any) -> Any:
        calls.append(len(addr_infos))
        return await parent(self, *args, addr_infos=addr_infos, **kw)

    monkeypatch.setattr(aiohttp.TCPConnector, "_wrap_create_connection", spy)

    async def main(port: int) -> tuple[int, int]:
        # two addresses for one name: 127.0.0.1 first (it listens), then 127.0.0.2 (never reached)
        infos = [{"hostname": "up.test", "host": h, "port": port, "family": socket.AF_INET, "proto": 0,
                  "flags": 0} for h in ("127.0.0.1", "127.0.0.2")]

        class TwoAddresses(aiohttp.abc.AbstractResolver):
            async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> Any:
                return infos

            async def close(self) -> None:
                return None

        conn = DirectConnector(resolver=TwoAddresses())
        async with aiohttp.ClientSession(connector=conn) as s:
            async with s.post(f"http://up.test:{port}/v1/chat/completions", json=CHAT) as r:
                await r.read()
                return r.status, conn.direct

    with run_upstream() as up:
        status, direct = uvloop.run(main(up.port))
    assert (status, direct, calls) == (200, 0, [2])
