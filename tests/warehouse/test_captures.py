from __future__ import annotations

import base64
import json

from sqlalchemy import Engine, func, select

from tests.ui import seed
from tests.ui.seed import T0
from warehouse import schema
from warehouse.captures import (
    CAPTURE_CAP_BYTES,
    decode_capture,
    read_capture,
    reassemble_stream,
    upsert_capture,
)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def sse(*chunks: dict[str, object], done: bool = True) -> bytes:
    out = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def delta(content: str | None = None, reasoning: str | None = None, index: int = 0) -> dict[str, object]:
    d: dict[str, object] = {}
    if content is not None:
        d["content"] = content
    if reasoning is not None:
        d["reasoning_content"] = reasoning
    return {"choices": [{"index": index, "delta": d}]}


def test_decode_base64_and_redact_headers() -> None:
    row = decode_capture(
        {
            "id": 7,
            "req_path": "/v1/chat/completions",
            "req_headers": {
                "Content-Type": "application/json",
                "Authorization": "Bearer sk-live-123456",
                "X-Api-Key": "secret",
            },
            "req_body": b64(b'{"model":"m"}'),
            "resp_headers": {"Content-Type": "text/event-stream"},
            "resp_body": b64(b"data: x\n\n"),
        }
    )
    assert row.req_body == b'{"model":"m"}' and row.resp_body == b"data: x\n\n"
    assert row.req_headers == {
        "Content-Type": "application/json",
        "Authorization": "[REDACTED]",
        "X-Api-Key": "[REDACTED]",
    }
    assert row.truncated is False
    assert row.size_bytes == 13 + 9 + len(json.dumps(row.req_headers)) + len(json.dumps(row.resp_headers))


def test_null_bodies() -> None:
    row = decode_capture(
        {
            "id": 1,
            "req_path": "/v1/audio/speech",
            "req_headers": {},
            "req_body": None,
            "resp_headers": None,
            "resp_body": None,
        }
    )
    assert row.req_body is None and row.resp_body is None and row.resp_headers is None and row.size_bytes == 0


def test_cap_keeps_small_side_whole_and_truncates_the_big_one() -> None:
    big = b"x" * (600 * 1024)
    row = decode_capture(
        {"req_headers": {}, "req_body": b64(b"small"), "resp_headers": {}, "resp_body": b64(big)}
    )
    assert row.truncated is True
    assert row.req_body == b"small"
    assert row.size_bytes <= CAPTURE_CAP_BYTES
    assert (
        len(row.req_body) + len(row.resp_body or b"") == CAPTURE_CAP_BYTES
    )  # empty header maps cost nothing
    both = decode_capture({"req_body": b64(big), "resp_body": b64(big)})
    assert (
        both.truncated and len(both.req_body or b"") == len(both.resp_body or b"") == CAPTURE_CAP_BYTES // 2
    )


def test_upsert_is_idempotent_and_round_trips(db: Engine) -> None:
    with db.begin() as c:
        seed.provider(c, "alpha")
    row = decode_capture(
        {
            "req_path": "/v1/chat/completions",
            "req_headers": {"A": "1"},
            "req_body": b64(b"req"),
            "resp_headers": {},
            "resp_body": b64(b"resp"),
        }
    )
    with db.begin() as c:
        assert upsert_capture(c, "alpha", "e1", 5, row, T0) is True
        other = decode_capture({"req_body": b64(b"different")})
        assert upsert_capture(c, "alpha", "e1", 5, other, T0) is False
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(schema.captures)).scalar() == 1
    stored = read_capture(db, "alpha", "e1", 5)
    assert stored is not None and stored.row == row and stored.fetched_at == T0
    assert read_capture(db, "alpha", "e1", 6) is None


def test_reassemble_chat_stream_with_reasoning() -> None:
    body = sse(
        delta(reasoning="think "),
        delta(reasoning="hard"),
        delta("Hel"),
        delta("lo"),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "timings": {"predicted_n": 2}},
    )
    assert reassemble_stream(body) == "<think>think hard</think>\nHello"


def test_reassemble_llama_swap_framing_without_space_and_split_chunk() -> None:
    # llama-swap's simple-responder frames `event:message` / `data:` with no space; a truncated last line is skipped
    body = (
        b"event:message\ndata:"
        + json.dumps(delta("as")).encode()
        + b"\n\nevent:message\ndata:"
        + json.dumps(delta("df")).encode()
        + b'\n\ndata: {"choices": [{"delta": {"content": "tru'
    )
    assert reassemble_stream(body) == "asdf"


def test_reassemble_non_streaming_and_other_shapes() -> None:
    chat = {
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "42", "reasoning_content": "because"}}
        ]
    }
    assert reassemble_stream(json.dumps(chat).encode()) == "<think>because</think>\n42"
    assert reassemble_stream(json.dumps({"choices": [{"text": "done"}]}).encode()) == "done"
    assert reassemble_stream(json.dumps({"content": "llama.cpp"}).encode()) == "llama.cpp"
    two = sse(delta("a", index=0), delta("b", index=1), delta("c", index=0))
    assert reassemble_stream(two) == "[choice 0]\nac\n\n[choice 1]\nb"
    assert reassemble_stream(b"plain text error") == "plain text error"
    assert reassemble_stream(b"") == "" and reassemble_stream(None) == ""
