"""A lean HTTP/1.1 transport for benchmark traffic, plugged into a normal ``httpx.AsyncClient``.

Why: at 64 concurrent streams the client's own cost per request and per chunk is inside every TTFT
and ITL it measures. httpx's default stack (httpcore + h11 + anyio) spends most of that time in
generic machinery: two socket writes per request (headers, then body), a cancel scope per read and
an h11 event per HTTP chunk. This transport writes each request with one ``send``, receives with an
event-loop reader callback on a non-blocking socket and decodes chunked framing on raw bytes.

**Wire timestamps.** Every received piece is stamped with the instant it reached this host: the
kernel's receive timestamp (``SO_TIMESTAMPNS``, Linux) when the clock is the default one — else, on a
`engines.bench.eventloop.StampingEventLoop`, the instant the loop's I/O poll that reported it returned,
else the clock when the reader callback ran — and the request is stamped the moment its bytes go to
the socket. Both are published on the response as ``response.extensions[WIRE]`` (a `WireTimes`):
``sent``, and ``arrival`` — the stamp of the piece the body iterator yielded last. A consumer that
reads ``arrival`` right after each ``aiter_raw()`` step therefore gets the instant the bytes reached
the client, not the instant its coroutine got round to them: with 64 streams in flight the loop may
run dozens of other callbacks in between, and that queueing is the client's time, not the server's.
The clock is the request's ``extensions[CLOCK]`` (default ``time.perf_counter``), so stamps and the
caller's own timestamps share one clock. Other transports publish no `WireTimes`; callers fall back to
their own clock (`engines.bench.load.stream_one` does).

The engine still takes any ``httpx.AsyncClient`` (tests inject ``MockTransport`` clients);
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
import collections
import contextlib
import socket
import struct
import sys
import time
from collections.abc import AsyncIterator, Callable

import httpx

from engines.bench.eventloop import StampingEventLoop

WIRE = "boocontrol.wire"  # response extension: the request's WireTimes
CLOCK = "boocontrol.clock"  # request extension: the clock to stamp with (default time.perf_counter)

_HIGH_WATER = 1 << 20  # stop reading the socket when this much is received but unread
_LOW_WATER = 1 << 18

Clock = Callable[[], float]

_READ_SIZE = 1 << 16
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; == SCM_TIMESTAMPNS (the cmsg type)
_TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux: tv_sec, tv_nsec
_ANC_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)


class WireTimes:
    """When the request went out and when the body's most recently yielded bytes came in."""

    __slots__ = ("arrival", "sent")

    def __init__(self, sent: float) -> None:
        self.sent = sent
        self.arrival = sent


def _enable_rx_timestamps(sock: socket.socket) -> bool:
    """Ask the kernel to stamp received data (``SO_TIMESTAMPNS``); False where it is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


class _Wire:
    """One connection on a non-blocking socket read by the event loop's reader callback: every
    received piece kept with the instant it arrived.

    The instant is, best first: the kernel's receive timestamp of the data (``SO_TIMESTAMPNS``, Linux,
    with the default clock) — when the bytes reached this host, however long the loop was busy with
    other streams before it read them; else, on a `StampingEventLoop` with the default clock, the
    instant the loop's I/O poll returned; else the clock at the read."""

    def __init__(
        self, origin: tuple[str, int], sock: socket.socket, clock: Clock, kernel_stamps: bool = True
    ) -> None:
        self.origin = origin
        self.sock = sock
        self._fd = sock.fileno()
        self._loop = asyncio.get_running_loop()
        self._io_loop = self._loop if isinstance(self._loop, StampingEventLoop) else None
        self._kernel_capable = kernel_stamps and _enable_rx_timestamps(sock)
        self.use_clock(clock)
        self._pieces: collections.deque[tuple[float, bytes]] = collections.deque()
        self._size = 0
        self._eof = False
        self._closed = False
        self._exc: Exception | None = None
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._loop.add_reader(self._fd, self._readable)

    def use_clock(self, clock: Clock) -> None:
        """Stamp with ``clock`` — or, for the default clock, with the kernel's receive time (or the
        instant the `StampingEventLoop`'s I/O poll returned) expressed on that clock."""
        self.clock = clock
        default = clock is time.perf_counter
        io = self._io_loop
        self._stamp = io.io_returned_at if io is not None and default else clock
        self._kernel = self._kernel_capable and default

    # -- the loop's reader callback
    def _readable(self) -> None:
        try:
            if self._kernel:
                data, anc, _flags, _addr = self.sock.recvmsg(_READ_SIZE, _ANC_SIZE)
            else:
                data, anc = self.sock.recv(_READ_SIZE), []
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._exc = exc
            self._stop_reading()
            self._wake()
            return
        t = self._stamp()
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(raw) >= 16:
                sec, nsec = _TIMESPEC.unpack_from(raw)
                # how long ago the kernel received it, on the realtime clock, applied to perf_counter
                t = min(t, time.perf_counter() - (time.time() - (sec + nsec * 1e-9)))
        if not data:
            self._eof = True
            self._stop_reading()
        else:
            self._pieces.append((t, data))
            self._size += len(data)
            if self._size > _HIGH_WATER and not self._paused:
                self._paused = True
                self._stop_reading()
        self._wake()

    def _stop_reading(self) -> None:
        if not self._closed:
            self._loop.remove_reader(self._fd)

    def _wake(self) -> None:
        w, self._waiter = self._waiter, None
        if w is not None and not w.done():
            w.set_result(None)

    # -- used by the transport
    def usable(self) -> bool:
        return not self._eof and not self._closed and self._exc is None

    def close(self) -> None:
        if not self._closed:
            self._stop_reading()
            self._closed = True
            self.sock.close()
            self._wake()

    async def send(self, payload: bytes) -> None:
        """Write the request: one ``send`` (the rest, if the socket buffer was full, when it drains)."""
        try:
            n = self.sock.send(payload)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as exc:
            raise httpx.WriteError(str(exc) or type(exc).__name__) from exc
        if n < len(payload):
            try:
                await self._loop.sock_sendall(self.sock, payload[n:])
            except OSError as exc:
                raise httpx.WriteError(str(exc) or type(exc).__name__) from exc

    async def read(self) -> tuple[float, bytes]:
        """The oldest unread piece and its arrival instant; ``b""`` at end of stream."""
        while not self._pieces:
            if self._exc is not None:
                raise httpx.ReadError(str(self._exc) or type(self._exc).__name__)
            if self._eof or self._closed:
                return self.clock(), b""
            self._waiter = self._loop.create_future()
            await self._waiter
        t, data = self._pieces.popleft()
        self._size -= len(data)
        if self._paused and self._size < _LOW_WATER and not self._closed:
            self._paused = False
            self._loop.add_reader(self._fd, self._readable)
        return t, data


class _Body(httpx.AsyncByteStream):
    """The response body: decoded from chunked / content-length / close-delimited framing.

    Every yielded piece is preceded by setting ``wire.arrival`` to the arrival instant of the
    received piece that completed it."""

    def __init__(
        self,
        transport: LeanTransport,
        conn: _Wire,
        wire: WireTimes,
        buf: bytes,
        mode: str,
        length: int,
        keep: bool,
        read_timeout: float | None = None,
    ):
        self._t = transport
        self._timeout = None if mode == "chunked" else read_timeout
        self._conn: _Wire | None = conn
        self._wire = wire
        self._buf = buf
        self._mode = mode  # "chunked" | "length" | "close"
        self._left = length
        self._keep = keep
        self._done = False

    async def _read(self) -> bytes:
        assert self._conn is not None, "response body read after close"
        try:
            if self._timeout is None:
                t, data = await self._conn.read()
            else:
                async with asyncio.timeout(self._timeout):
                    t, data = await self._conn.read()
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no data for {self._timeout:g} s") from exc
        self._wire.arrival = t
        return data

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
            data = await self._read()
            if not data:
                raise httpx.RemoteProtocolError("connection closed before the end of the response body")
            if len(data) > self._left:  # bytes past the body: the connection is out of sync
                data = data[: self._left]
                self._keep = False
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
    """See the module docstring. ``fallback`` serves non-``http`` URLs (default: httpx's own transport);
    ``kernel_stamps=False`` turns the kernel's receive timestamps off (for comparing stamp sources)."""

    def __init__(
        self,
        connect_timeout: float = 30.0,
        fallback: httpx.AsyncBaseTransport | None = None,
        kernel_stamps: bool = True,
    ) -> None:
        self._kernel_stamps = kernel_stamps
        self._idle: dict[tuple[str, int], list[_Wire]] = {}
        self._connect_timeout = connect_timeout
        self._fallback = fallback or httpx.AsyncHTTPTransport()
        self._closed = False

    def _release(self, conn: _Wire) -> None:
        if self._closed:
            conn.close()
        else:
            self._idle.setdefault(conn.origin, []).append(conn)

    async def _connect(self, origin: tuple[str, int], timeout: float | None, clock: Clock) -> _Wire:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        async with asyncio.timeout(timeout):
            for family, kind, proto, _, addr in await loop.getaddrinfo(*origin, type=socket.SOCK_STREAM):
                sock = socket.socket(family, kind, proto)
                try:
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    await loop.sock_connect(sock, addr)
                    return _Wire(origin, sock, clock, self._kernel_stamps)
                except OSError as exc:
                    sock.close()
                    last = exc
                except BaseException:
                    sock.close()
                    raise
        raise last or OSError(f"no address for {origin[0]}:{origin[1]}")

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http":
            return await self._fallback.handle_async_request(request)
        origin = (url.host, url.port or 80)
        clock: Clock = request.extensions.get(CLOCK) or time.perf_counter
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
                conn = await self._connect(origin, connect_timeout, clock)
            except TimeoutError as exc:
                raise httpx.ConnectTimeout(f"connect to {origin[0]}:{origin[1]} timed out") from exc
            except OSError as exc:
                raise httpx.ConnectError(str(exc)) from exc
        conn.use_clock(clock)
        try:
            wire = WireTimes(clock())
            await conn.send(payload)
            async with asyncio.timeout(read_timeout):
                status, reason, headers, rest = await self._read_head(conn, wire)
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
            stream=_Body(self, conn, wire, rest, mode, length, keep, read_timeout),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": reason, WIRE: wire},
        )

    async def _read_head(
        self, conn: _Wire, wire: WireTimes
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]], bytes]:
        buf = b""
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            t, data = await conn.read()
            if not data:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
            wire.arrival = t  # bytes after the head carry the stamp of the piece they came in
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
