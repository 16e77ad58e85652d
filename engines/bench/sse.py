"""Minimal, allocation-light SSE line splitting for the two streams the bench engine reads.

* OpenAI-style completions streams (``data: {...}`` / ``data: [DONE]``), read per request at high chunk
  rates, where parser overhead is client overhead that would show up in TTFT and ITL.
* llama-swap's ``/api/events`` (``event:message`` / ``data:<envelope>``, no space after the colon).

Only ``data`` fields matter for both; multi-line ``data`` fields are joined with ``\\n`` as the SSE
spec says. Lines end in ``\\n`` or ``\\r\\n``; a lone ``\\r`` (legal SSE) is produced by neither
server and is not supported.
"""

from __future__ import annotations


class SSEDecoder:
    """Feed raw bytes, get complete ``data`` payloads (bytes) of finished events."""

    __slots__ = ("_buf", "_data")

    def __init__(self) -> None:
        self._buf = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        # Fast path (the common case on a completions stream): one whole single-line ``data:`` event.
        if (
            not self._buf
            and not self._data
            and chunk.startswith(b"data:")
            and chunk.endswith(b"\n\n")
            and chunk.find(b"\n") == len(chunk) - 2
        ):
            value = chunk[5:-2]
            if value.endswith(b"\r"):
                value = value[:-1]
            return [value[1:] if value.startswith(b" ") else value]
        buf = self._buf + chunk if self._buf else chunk
        out: list[bytes] = []
        start = 0
        while True:
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = buf[start:nl]
            start = nl + 1
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data:
                    out.append(self._data[0] if len(self._data) == 1 else b"\n".join(self._data))
                    self._data = []
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                if value.startswith(b" "):
                    value = value[1:]
                self._data.append(value)
            # event:, id:, retry: and comments are irrelevant here
        self._buf = buf[start:]
        return out

    def flush(self) -> list[bytes]:
        """Payload of a final event not followed by a blank line (stream closed early)."""
        rest = self.feed(b"\n\n") if (self._buf or self._data) else []
        self._buf = b""
        return rest
