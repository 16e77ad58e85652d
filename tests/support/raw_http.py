"""Scaffolding for the instant raw-asyncio HTTP/1.1 test servers (tests/gateway/upstream.py,
tests/bench_engine/instant_server.py): request framing over keep-alive, chunked and JSON responses.

No framework, so a server's own cost stays small and constant; a subclass of `RequestProtocol` only says how to
answer one request (`handle`).
"""

from __future__ import annotations

import asyncio
import json
from typing import cast

SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def chunk(payload: bytes) -> bytes:
    """One chunk of a chunked transfer encoding."""
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def json_response(
    obj: object, status: str = "200 OK", extra: bytes = b"", separators: tuple[str, str] | None = None
) -> bytes:
    """A whole JSON response with Content-Length; ``extra`` is more header lines, each ending in CRLF."""
    body = json.dumps(obj, separators=separators).encode()
    return b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n%s" % (
        status.encode(),
        len(body),
        extra,
        body,
    )


class RequestProtocol(asyncio.Protocol):
    """Splits the bytes of a keep-alive connection into requests (head, then Content-Length bytes of body) and
    calls `handle` for each; cancels a pending ``timer`` when the connection goes."""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio.Transport instances

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v.strip())
            if len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4 : end + 4 + length]
            self.buf = self.buf[end + 4 + length :]
            method, path, _ = head.split("\r\n", 1)[0].split(" ", 2)
            self.handle(method, path, body)

    def handle(self, method: str, path: str, body: bytes) -> None:
        raise NotImplementedError
