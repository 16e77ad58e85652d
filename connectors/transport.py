"""The HTTP transport of the connector's per-provider clients: httpx's interface over aiohttp's pool and C parser.

A connector following hundreds of hosts spends most of its CPU on HTTP requests (a performance poll every 5 s per
host, activity and capture fetches); behind `httpx.AsyncClient`, aiohttp (`httpx_aiohttp.AiohttpTransport`) costs
markedly less per request than httpcore with h11 (bench/bench_fanout.py --compare-root measures it side by side).
Everything above the transport stays httpx: `LlamaSwapAPI`, the ``/api/events`` reader (httpx-sse), and the tests
that inject their own transports.

The follower tells failures apart by their httpx class, so aiohttp's errors are mapped to the classes httpcore
raises for the same event (httpx_aiohttp's own mapping turns a refused connection into a ``ConnectTimeout``):

* a refused or failed connect -> `httpx.ConnectError` (the ``OSError`` kept as the cause, so `refused` sees it);
* a connect timeout -> `httpx.ConnectTimeout`; any other timeout -> `httpx.ReadTimeout`;
* the server closing a connection (a pooled keep-alive one just as it was reused, or mid-body) ->
  `httpx.RemoteProtocolError`; other socket errors -> `httpx.ReadError`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def httpx_error(exc: BaseException, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx error httpcore would raise for ``exc`` (an aiohttp error, or httpx_aiohttp's mapping of one whose
    cause is the aiohttp error); None when ``exc`` is neither."""
    if isinstance(exc, httpx.TransportError) and isinstance(exc.__cause__, aiohttp.ClientError | TimeoutError):
        exc = exc.__cause__
    msg = str(exc) or exc.__class__.__name__
    err: httpx.TransportError
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        err = httpx.ConnectTimeout(msg, request=request)
    elif isinstance(exc, TimeoutError):  # aiohttp's other timeouts subclass it too
        err = httpx.ReadTimeout(msg, request=request)
    elif isinstance(exc, aiohttp.ClientConnectorError):
        err = httpx.ConnectError(msg, request=request)
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        err = httpx.RemoteProtocolError(msg, request=request)
    elif isinstance(exc, aiohttp.ClientError):
        err = httpx.ReadError(msg, request=request)
    else:
        return None
    err.__cause__ = exc
    return err


class _MappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, request: httpx.Request) -> None:
        self.inner, self.request = inner, request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                yield chunk
        except Exception as exc:
            mapped = httpx_error(exc, self.request)
            if mapped is None:
                raise
            raise mapped from mapped.__cause__

    async def aclose(self) -> None:
        await self.inner.aclose()


class FollowerTransport(httpx.AsyncBaseTransport):
    """`httpx_aiohttp.AiohttpTransport` with aiohttp's errors mapped as httpcore's (module docstring)."""

    def __init__(self, limits: httpx.Limits, verify: ssl.SSLContext) -> None:
        def session() -> aiohttp.ClientSession:  # made in the running loop, at the first request
            # cookies stay httpx's business (its jar sends them); aiohttp's own jar would send them a second time
            return aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limits.max_connections or 0, ssl=verify,
                                               keepalive_timeout=limits.keepalive_expiry),
                cookie_jar=aiohttp.DummyCookieJar())

        self.inner = AiohttpTransport(verify=verify, limits=limits, client=session)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            resp = await self.inner.handle_async_request(request)
        except Exception as exc:
            mapped = httpx_error(exc, request)
            if mapped is None:
                raise
            raise mapped from mapped.__cause__
        assert isinstance(resp.stream, httpx.AsyncByteStream)
        return httpx.Response(resp.status_code, headers=resp.headers, stream=_MappedStream(resp.stream, request),
                              request=request, extensions=resp.extensions)

    async def aclose(self) -> None:
        await self.inner.aclose()
