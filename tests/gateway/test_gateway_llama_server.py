"""The official `openai` client through the gateway to a real llama.cpp ``llama-server`` (tiny generated model):
directly (an OpenAI-compatible provider), through a real llama-swap (where its binary is present) and through the
llama-swap simulator (which answers as llama-server does, with synthetic words). Chat and completions, streaming and not, and embeddings on an embedding server; the row's
tokens are exactly what the client was told."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openai
import pytest

from core.providers import Provider, Registry
from tests.gateway.conftest import run_gateway, wait_rows
from tests.support.llamaserver import llama_server_cmd, require_llama_server, run_llama_server
from tests.support.llamaswap import HOW_TO_PROVIDE, find_llama_swap, free_port_block, run_llama_swap
from tests.support.tinymodel import write_tiny_gguf

pytestmark = pytest.mark.llama_server
MSG = [{"role": "user", "content": "hello"}]


@contextmanager
def fleet(how: str, tmp: Path) -> Iterator[Provider]:
    binary = require_llama_server()
    model = write_tiny_gguf(tmp / "tiny.gguf", seed=0)
    if how == "direct":
        with run_llama_server(model, ctx=2048, parallel=2, binary=binary, extra_args=("--alias", "tiny")) as base:
            yield Provider(id="llama", label="llama", base_url=base, kind="vllm")
        return
    if how == "real" and find_llama_swap() is None:
        pytest.skip(f"REAL LLAMA-SWAP NOT FOUND: {HOW_TO_PROVIDE}")
    cfg = (f"healthCheckTimeout: 60\nstartPort: {free_port_block()}\nmodels:\n  tiny:\n"
           f"    cmd: {llama_server_cmd(binary, model, parallel=2, ctx=2048)}\n"
           "    proxy: http://127.0.0.1:${PORT}\n")
    with run_llama_swap(cfg, kind=how) as ls:
        yield Provider(id="swap", label="swap", base_url=ls.base_url, kind="llama-swap")


@pytest.mark.parametrize("how", ["direct", "sim", "real"])
def test_openai_client_through_the_gateway_to_llama_server(how: str, gw_db: str, tmp_path: Path) -> None:
    with fleet(how, tmp_path) as p, run_gateway(gw_db, Registry((p,), default_provider=p.id), tmp_path,
                                                first_byte_timeout_s=60) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0)
        chat = client.chat.completions.create(model=f"{p.id}/tiny", messages=MSG, max_tokens=6, temperature=0)
        assert chat.usage is not None and chat.usage.completion_tokens == 6
        assert chat.choices[0].message.content
        chunks = list(client.chat.completions.create(model="tiny", messages=MSG, max_tokens=5, temperature=0,
                                                     stream=True, stream_options={"include_usage": True}))
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
        streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        again = client.chat.completions.create(model=f"{p.id}/tiny", messages=MSG, max_tokens=5, temperature=0)
        if how != "sim":  # the simulator answers like llama-server with its own synthetic words, not the model's
            assert streamed == again.choices[0].message.content
        comp = client.completions.create(model=f"{p.id}/tiny", prompt="once upon", max_tokens=4, temperature=0)
        assert comp.usage is not None and comp.usage.completion_tokens == 4
        text = "".join(c.choices[0].text for c in client.completions.create(
            model=f"{p.id}/tiny", prompt="once upon", max_tokens=4, temperature=0, stream=True) if c.choices)
        if how != "sim":
            assert text == comp.choices[0].text
        got = wait_rows(gw_db, 5)
    assert [(r["endpoint"], r["stream"], r["provider_id"], r["model_id"], r["status"], r["completion_tokens"],
             r["error"]) for r in got] == [
        ("chat", False, p.id, "tiny", 200, 6, None), ("chat", True, p.id, "tiny", 200, 5, None),
        ("chat", False, p.id, "tiny", 200, 5, None), ("completions", False, p.id, "tiny", 200, 4, None),
        ("completions", True, p.id, "tiny", 200, 4, None)]  # llama-server reports usage at the end
    assert got[0]["prompt_tokens"] == chat.usage.prompt_tokens


def test_embeddings_through_the_gateway_to_llama_server(gw_db: str, tmp_path: Path) -> None:
    binary = require_llama_server()
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=0)
    with run_llama_server(model, binary=binary, extra_args=("--alias", "tiny", "--embeddings", "--pooling", "mean")) as base:
        p = Provider(id="emb", label="emb", base_url=base, kind="vllm")
        with run_gateway(gw_db, Registry((p,)), tmp_path) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0)
            emb = client.embeddings.create(model="emb/tiny", input=["one", "two"])
            direct = openai.OpenAI(base_url=base + "/v1", api_key="none").embeddings.create(model="tiny",
                                                                                            input=["one", "two"])
            got = wait_rows(gw_db, 1)
    assert [d.embedding for d in emb.data] == [d.embedding for d in direct.data] and len(emb.data) == 2
    assert (got[0]["endpoint"], got[0]["status"], got[0]["prompt_tokens"]) == (
        "embeddings", 200, emb.usage.prompt_tokens)
