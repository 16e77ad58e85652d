"""A lean HTTP/1.1 transport for benchmark traffic, plugged into a normal ``httpx.AsyncClient``.

Why: at 64 concurrent streams the client's own cost per request and per chunk is inside every TTFT
and ITL it measures. httpx's default stack (httpcore + h11 + anyio) spends most of that time in
generic machinery: two socket writes per request (headers, then body), a cancel scope per read and
an h11 event per HTTP chunk. This transport writes each request with one ``write``, reads the socket
in large pieces and decodes chunked framing on raw bytes, yielding everything a read made available
at once. The engine still takes any ``httpx.AsyncClient`` (tests inject ``MockTransport`` clients);
`engines.bench.service.make_client` uses this transport for plain ``http://`` hosts and falls back
to httpx's own transport for anything else (``https://``).

Scope (enough for OpenAI-style APIs, deliberately not more): HTTP/1.1 only; request bodies are
bytes; response bodies framed by ``Transfer-Encoding: chunked``, ``Content-Length`` or connection
close; keep-alive connections are reused per origin unless the response said ``Connection: close``
or was not read to its end. Timeouts (httpx's per-request ``timeout``): ``connect``; ``read`` for the
response head and for every read of a ``Content-Length`` or close-delimited body. Chunked bodies
(token streams, SSE) get no per-read timer — that is the hot path; `engines.bench.load.stream_one`
bounds each completion as a whole instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

_READ = 1 << 16


class _Conn:
    __slots__ = ("origin", "reader", "writer")

    def __init__(self, origin: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.origin = origin
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof()

    def close(self) -> None:
        self.writer.close()


class _Body(httpx.AsyncByteStream):
    """The response body: decoded from chunked / content-length / close-delimited framing."""

    def __init__(
        self,
        transport: LeanTransport,
        conn: _Conn,
        buf: bytes,
        mode: str,
        length: int,
        keep: bool,
        read_timeout: float | None = None,
    ):
        self._t = transport
        self._timeout = None if mode == "chunked" else read_timeout
        self._conn: _Conn | None = conn
        self._buf = buf
        self._mode = mode  # "chunked" | "length" | "close"
        self._left = length
        self._keep = keep
        self._done = False

    async def _read(self, n: int = _READ) -> bytes:
        assert self._conn is not None, "response body read after close"
        try:
            if self._timeout is None:
                return await self._conn.reader.read(n)
            async with asyncio.timeout(self._timeout):
                return await self._conn.reader.read(n)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no data for {self._timeout:g} s") from exc
        except ConnectionError as exc:
            raise httpx.ReadError(str(exc)) from exc

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._mode == "length":
            async for piece in self._iter_length():
                yield piece
        elif self._mode == "chunked":
            async for piece in self._iter_chunked():
                yield piece
        else:
            if self._buf:
                yield self._buf
                self._buf = b""
            while data := await self._read():
                yield data
            self._done = True
            self._keep = False

    async def _iter_length(self) -> AsyncIterator[bytes]:
        if self._buf:
            take = self._buf[: self._left]
            self._left -= len(take)
            self._buf = b""
            if take:
                yield take
        while self._left > 0:
            data = await self._read(min(_READ, self._left))
            if not data:
                raise httpx.RemoteProtocolError("connection closed before the end of the response body")
            self._left -= len(data)
            yield data
        self._done = True

    async def _iter_chunked(self) -> AsyncIterator[bytes]:
        buf = self._buf
        self._buf = b""
        while True:
            out = []
            pos = 0
            finished = False
            while True:  # decode every complete chunk in buf
                nl = buf.find(b"\r\n", pos)
                if nl < 0:
                    break
                size_field = buf[pos:nl].split(b";", 1)[0].strip()
                try:
                    size = int(size_field, 16)
                except ValueError:
                    raise httpx.RemoteProtocolError(f"bad chunk size {size_field!r}") from None
                if size == 0:
                    end = buf.find(b"\r\n\r\n", nl)  # trailers end with an empty line
                    if end < 0:
                        break
                    pos = end + 4
                    finished = True
                    break
                if len(buf) < nl + 2 + size + 2:
                    break
                out.append(buf[nl + 2 : nl + 2 + size])
                pos = nl + 2 + size + 2
            buf = buf[pos:]
            if out:
                yield out[0] if len(out) == 1 else b"".join(out)
            if finished:
                self._done = True
                if buf:  # bytes after the body: the connection is out of sync, do not reuse it
                    self._keep = False
                return
            data = await self._read()
            if not data:
                raise httpx.RemoteProtocolError("connection closed in the middle of a chunked body")
            buf = buf + data if buf else data

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep and conn.usable():
            self._t._release(conn)
        else:
            conn.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """See the module docstring. ``fallback`` serves non-``http`` URLs (default: httpx's own transport)."""

    def __init__(
        self, connect_timeout: float = 30.0, fallback: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._idle: dict[tuple[str, int], list[_Conn]] = {}
        self._connect_timeout = connect_timeout
        self._fallback = fallback or httpx.AsyncHTTPTransport()
        self._closed = False

    def _release(self, conn: _Conn) -> None:
        if self._closed:
            conn.close()
        else:
            self._idle.setdefault(conn.origin, []).append(conn)

    async def _connect(self, origin: tuple[str, int], timeout: float | None) -> _Conn:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(origin[0], origin[1], limit=1 << 20)
        return _Conn(origin, reader, writer)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            return await self._fallback.handle_async_request(request)
        origin = (url.host, url.port or 80)
        timeouts = request.extensions.get("timeout") or {}
        read_timeout = timeouts.get("read")
        connect_timeout = timeouts.get("connect", self._connect_timeout)
        body = await request.aread()
        head = [request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        has_length = False
        for k, v in request.headers.raw:
            kl = k.lower()
            if kl == b"content-length":
                has_length = True
            elif kl == b"transfer-encoding":
                continue  # the body is sent with a Content-Length
            head += [k, b": ", v, b"\r\n"]
        if body and not has_length:
            head += [b"Content-Length: ", str(len(body)).encode(), b"\r\n"]
        head.append(b"\r\n")
        payload = b"".join(head) + body

        idle = self._idle.get(origin)
        conn = None
        while idle:
            c = idle.pop()
            if c.usable():
                conn = c
                break
            c.close()
        if conn is None:
            try:
                conn = await self._connect(origin, connect_timeout)
            except TimeoutError as exc:
                raise httpx.ConnectTimeout(f"connect to {origin[0]}:{origin[1]} timed out") from exc
            except OSError as exc:
                raise httpx.ConnectError(str(exc)) from exc
        try:
            conn.writer.write(payload)
            async with asyncio.timeout(read_timeout):
                status, reason, headers, rest = await self._read_head(conn)
        except TimeoutError as exc:
            conn.close()
            raise httpx.ReadTimeout(f"no response within {read_timeout:g} s") from exc
        except BaseException:
            conn.close()
            raise
        mode, length, keep = "close", 0, True
        for k, v in headers:
            kl = k.lower()
            if kl == b"transfer-encoding" and b"chunked" in v.lower():
                mode = "chunked"
            elif kl == b"content-length" and mode != "chunked":
                mode, length = "length", int(v)
            elif kl == b"connection" and b"close" in v.lower():
                keep = False
        if mode == "close":
            keep = False
        if request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            mode, length = "length", 0
        return httpx.Response(
            status,
            headers=headers,
            stream=_Body(self, conn, rest, mode, length, keep, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason},
        )

    async def _read_head(self, conn: _Conn) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        buf = b""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            try:
                data = await conn.reader.read(_READ)
            except ConnectionError as exc:
                raise httpx.ReadError(str(exc)) from exc
            if not data:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            buf += data
        lines = buf[:end].split(b"\r\n")
        parts = lines[0].split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise httpx.RemoteProtocolError(f"bad status line {lines[0][:80]!r}")
        headers = []
        for line in lines[1:]:
            k, sep, v = line.partition(b":")
            if sep:
                headers.append((k.strip(), v.strip()))
        return int(parts[1]), (parts[2] if len(parts) > 2 else b""), headers, buf[end + 4 :]

    async def aclose(self) -> None:
        self._closed = True
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()
        with contextlib.suppress(Exception):
            await self._fallback.aclose()
