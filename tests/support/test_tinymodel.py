"""The real-inference harness: tiny GGUF generator + llama.cpp's llama-server.

Tests marked ``llama_server`` use the real binary built by ``scripts/build-llama-server.sh``. When it is
missing they FAIL (with the command to run) unless ``BOOCONTROL_ALLOW_MISSING_LLAMA_SERVER=1``.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gguf import GGUFReader

from .llamaserver import (
    ENV_BIN,
    ENV_CACHE,
    find_llama_server,
    llama_server_cmd,
    require_llama_server,
    run_llama_server,
)
from .tinymodel import (
    MODEL_NAME,
    N_EMBD,
    N_LAYER,
    SMALL,
    TINY,
    ModelShape,
    vocab_size,
    write_tiny_gguf,
)

CHAT = {"messages": [{"role": "user", "content": "hello world"}], "max_tokens": 16}


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- the GGUF file itself


def test_gguf_is_byte_identical_per_seed_and_differs_across_seeds(tmp_path: Path) -> None:
    a = write_tiny_gguf(tmp_path / "a" / "m.gguf", seed=7)
    b = write_tiny_gguf(tmp_path / "b" / "m.gguf", seed=7)
    c = write_tiny_gguf(tmp_path / "c" / "m.gguf", seed=8)
    assert _sha(a) == _sha(b)
    assert _sha(a) != _sha(c)
    assert 500_000 < a.stat().st_size < 2_000_000


def test_gguf_metadata(tmp_path: Path) -> None:
    r = GGUFReader(write_tiny_gguf(tmp_path / "m.gguf"))

    def val(key: str) -> object:
        return r.fields[key].contents()

    assert val("general.architecture") == "llama"
    assert val("general.name") == MODEL_NAME
    assert val("tokenizer.ggml.model") == "llama"
    assert val("llama.embedding_length") == N_EMBD
    assert val("llama.block_count") == N_LAYER
    tokens = val("tokenizer.ggml.tokens")
    assert isinstance(tokens, list) and len(tokens) == vocab_size()
    assert tokens[:5] == ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    assert "<0x00>" in tokens and "<0xFF>" in tokens and "\u2581the" in tokens
    assert "<|im_start|>" in str(val("tokenizer.chat_template"))
    assert {t.name for t in r.tensors} >= {"token_embd.weight", "output.weight", "blk.1.ffn_down.weight"}


def test_model_shape_rejects_inconsistent_sizes() -> None:
    with pytest.raises(ValueError):
        ModelShape(n_embd=100, n_layer=1, n_head=3, n_head_kv=3, n_ff=64, name="x")  # 100 % 3
    with pytest.raises(ValueError):
        ModelShape(n_embd=128, n_layer=1, n_head=4, n_head_kv=3, n_ff=64, name="x")  # 4 % 3
    with pytest.raises(ValueError):
        ModelShape(n_embd=128, n_layer=0, n_head=4, n_head_kv=4, n_ff=64, name="x")
    assert TINY.n_params() == 557_696 and SMALL.n_params() == 58_012_416


@pytest.fixture(scope="module")
def small_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("small") / "small.gguf", seed=0, shape=SMALL)


def test_small_shape_metadata_and_tensors(small_gguf: Path) -> None:
    r = GGUFReader(small_gguf)

    def val(key: str) -> object:
        return r.fields[key].contents()

    assert (SMALL.n_embd, SMALL.n_layer, SMALL.n_head, SMALL.n_head_kv, SMALL.n_ff) == (768, 8, 12, 12, 2048)
    assert val("general.name") == "boocontrol-small-llama"
    assert val("llama.embedding_length") == 768
    assert val("llama.block_count") == 8
    assert val("llama.feed_forward_length") == 2048
    assert val("llama.attention.head_count") == 12
    assert val("llama.attention.head_count_kv") == 12
    assert val("llama.rope.dimension_count") == 64
    assert val("llama.vocab_size") == vocab_size()
    tokens = val("tokenizer.ggml.tokens")
    assert isinstance(tokens, list) and len(tokens) == vocab_size()
    shapes = {t.name: tuple(int(x) for x in t.shape) for t in r.tensors}  # ggml order: (n_in, n_out)
    assert len(shapes) == 2 + 9 * 8 + 1
    assert shapes["token_embd.weight"] == (768, vocab_size())
    assert shapes["blk.7.attn_k.weight"] == (768, 768)
    assert shapes["blk.7.ffn_gate.weight"] == (768, 2048)
    assert shapes["blk.7.ffn_down.weight"] == (2048, 768)
    assert shapes["output.weight"] == (768, vocab_size())
    assert sum(int(t.n_elements) for t in r.tensors) == SMALL.n_params() == 58_012_416
    assert 100_000_000 < small_gguf.stat().st_size < 130_000_000


@pytest.mark.llama_server
def test_small_shape_runs_on_llama_server(small_gguf: Path) -> None:
    binary = require_llama_server()
    with run_llama_server(small_gguf, ctx=512, binary=binary) as base:
        body = {**CHAT, "max_tokens": 8}
        r = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["usage"]["completion_tokens"] == 8
        assert out["timings"]["predicted_n"] == 8
        assert out["choices"][0]["finish_reason"] == "length"


# --------------------------------------------------------------------------- locating the binary


def test_find_llama_server_env_and_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_BIN, raising=False)
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "cache"))
    assert find_llama_server() is None
    for ver in ("0.3.9", "0.3.36"):
        p = tmp_path / "cache" / "llama-server" / ver / "llama-server"
        p.parent.mkdir(parents=True)
        p.write_text("#!/bin/sh\n")
        p.chmod(0o755)
    assert find_llama_server() == tmp_path / "cache" / "llama-server" / "0.3.36" / "llama-server"
    monkeypatch.setenv(ENV_BIN, str(tmp_path / "nope"))
    assert find_llama_server() is None
    monkeypatch.setenv(ENV_BIN, str(tmp_path / "cache" / "llama-server" / "0.3.9" / "llama-server"))
    assert find_llama_server() == tmp_path / "cache" / "llama-server" / "0.3.9" / "llama-server"


def test_llama_server_cmd_keeps_port_placeholder() -> None:
    cmd = llama_server_cmd("/opt/llama server/llama-server", "/m/tiny.gguf")
    argv = shlex.split(cmd)
    assert argv[0] == "/opt/llama server/llama-server"
    assert argv[argv.index("--port") + 1] == "${PORT}"
    assert argv[argv.index("-m") + 1] == "/m/tiny.gguf"
    assert argv[argv.index("-t") + 1] == "1" and argv[argv.index("-tb") + 1] == "1"
    assert argv[argv.index("--host") + 1] == "127.0.0.1"


# --------------------------------------------------------------------------- the real engine


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf", seed=0)


@pytest.fixture(scope="module")
def server(tiny_gguf: Path) -> Iterator[str | None]:
    binary = find_llama_server()
    if binary is None:
        yield None  # each test then fails (or skips) itself, so a missing binary shows as FAILED
        return
    with run_llama_server(tiny_gguf, parallel=2, ctx=2048, binary=binary) as base:
        yield base


def _need(server: str | None) -> str:
    """Fail here, in the test body, so a missing binary is reported as FAILED rather than ERROR."""
    if server is None:
        require_llama_server()  # pytest.fail(...) with the build hint, or skip when explicitly allowed
    assert server is not None
    return server


@pytest.mark.llama_server
def test_server_loads_and_props_answer(server: str | None, tiny_gguf: Path) -> None:
    base = _need(server)
    assert httpx.get(f"{base}/health").json().get("status") == "ok"
    props = httpx.get(f"{base}/props").json()
    assert props["total_slots"] == 2
    assert "<|im_start|>" in props["chat_template"]
    assert Path(props["model_path"]).name == tiny_gguf.name
    slots = httpx.get(f"{base}/slots").json()
    assert len(slots) == 2


@pytest.mark.llama_server
def test_chat_completion_runs_to_max_tokens_with_timings(server: str | None) -> None:
    base = _need(server)
    r = httpx.post(f"{base}/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["usage"]["completion_tokens"] == 16
    assert body["usage"]["prompt_tokens"] > 0
    assert body["choices"][0]["finish_reason"] == "length"
    assert isinstance(body["choices"][0]["message"]["content"], str)
    t = body["timings"]
    assert t["predicted_n"] == 16
    assert t["prompt_n"] >= 0 and t["predicted_ms"] > 0 and t["predicted_per_second"] > 0


@pytest.mark.llama_server
def test_never_eos_holds_for_long_generations(server: str | None) -> None:
    base = _need(server)
    req = {**CHAT, "max_tokens": 200, "temperature": 1.5, "seed": 3}
    body = httpx.post(f"{base}/v1/chat/completions", json=req, timeout=60).json()
    assert body["usage"]["completion_tokens"] == 200
    assert body["timings"]["predicted_n"] == 200


@pytest.mark.llama_server
def test_streaming_final_chunk_carries_timings(server: str | None) -> None:
    base = _need(server)
    chunks: list[dict[str, Any]] = []
    with httpx.stream("POST", f"{base}/v1/chat/completions", json={**CHAT, "stream": True}, timeout=30) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                break
            chunks.append(json.loads(data))
    assert chunks
    with_timings = [c for c in chunks if "timings" in c]
    assert with_timings, "no chunk carried timings"
    assert with_timings[-1] is chunks[-1] or "timings" in chunks[-1]
    assert chunks[-1]["timings"]["predicted_n"] == 16
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"


@pytest.mark.llama_server
def test_parallel_slots_serve_concurrently(server: str | None) -> None:
    base = _need(server)
    results: list[dict[str, Any]] = []

    def one() -> None:
        req = {**CHAT, "max_tokens": 64}
        results.append(httpx.post(f"{base}/v1/chat/completions", json=req, timeout=60).json())

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r["timings"]["predicted_n"] for r in results] == [64, 64]


@pytest.mark.llama_server
def test_run_llama_server_leaves_nothing_behind(tiny_gguf: Path, tmp_path: Path) -> None:
    binary = require_llama_server()
    log = tmp_path / "server.log"
    with run_llama_server(tiny_gguf, binary=binary, log_path=log) as base:
        assert httpx.get(f"{base}/health").status_code == 200
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{base}/health", timeout=2)
    assert "listening on" in log.read_text()
