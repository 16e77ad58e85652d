from __future__ import annotations

from engines.bench.sse import SSEDecoder

STREAM = (
    b'data: {"a":1}\n\n'
    b'event:message\r\ndata:{"b":2}\r\n\r\n'
    b": a comment\n"
    b"data: line1\ndata: line2\n\n"
    b"data: [DONE]\n\n"
)
EXPECTED = [b'{"a":1}', b'{"b":2}', b"line1\nline2", b"[DONE]"]


def test_whole_stream() -> None:
    assert SSEDecoder().feed(STREAM) == EXPECTED


def test_every_split_point_and_byte_by_byte() -> None:
    for cut in range(len(STREAM)):
        d = SSEDecoder()
        assert d.feed(STREAM[:cut]) + d.feed(STREAM[cut:]) == EXPECTED, cut
    d = SSEDecoder()
    out = []
    for i in range(len(STREAM)):
        out += d.feed(STREAM[i : i + 1])
    assert out == EXPECTED


def test_flush_returns_an_unterminated_event() -> None:
    d = SSEDecoder()
    assert d.feed(b"data: x\n") == []
    assert d.flush() == [b"x"]
    assert d.flush() == []
