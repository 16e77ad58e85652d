"""The official `openai` client against the gateway, in front of instant upstreams (real TCP servers):
chat, completions and embeddings, streaming and not; provider/model, bare ids and the model list; one
attribution row per request with exact tokens."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from core.providers import Provider, Registry
from tests.gateway.conftest import run_gateway, seed, wait_rows
from tests.gateway.upstream import UpstreamState, run_upstream
from warehouse.records import utcnow


def registry(*providers: Provider, default: str | None = None) -> Registry:
    return Registry(providers=tuple(providers), default_provider=default)


def test_chat_completions_embeddings_streaming_and_not(gw_db: str, tmp_path: Path) -> None:
    with run_upstream(UpstreamState(models=("m1",))) as up:
        p = Provider(id="inst", label="inst", base_url=up.base_url, kind="openai")
        with run_gateway(gw_db, registry(p, default="inst"), tmp_path) as gw:
            client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0)
            chat = client.chat.completions.create(model="inst/m1", messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=5)
            assert chat.choices[0].message.content == " tok" * 5
            assert chat.usage is not None and chat.usage.completion_tokens == 5 and chat.model == "m1"

            stream = client.chat.completions.create(model="inst/m1", messages=[{"role": "user", "content": "hi"}],
                                                    max_tokens=7, stream=True)
            pieces = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
            assert pieces == [" tok"] * 7

            comp = client.completions.create(model="m1", prompt="hi", max_tokens=3)  # bare id: default provider
            assert comp.choices[0].text == " tok" * 3

            texts = [c.choices[0].text for c in client.completions.create(model="inst/m1", prompt="hi", max_tokens=4,
                                                                          stream=True) if c.choices]
            assert "".join(texts) == " tok" * 4

            emb = client.embeddings.create(model="inst/m1", input=["a", "b", "c"])
            assert [len(d.embedding) for d in emb.data] == [4, 4, 4]

            got = wait_rows(gw_db, 5)
        assert up.state.asked == ["m1"] * 5  # the provider prefix is never sent upstream
    assert [(r["endpoint"], r["stream"], r["requested_model"], r["provider_id"], r["model_id"], r["status"],
             r["prompt_tokens"], r["completion_tokens"], r["consumer"], r["consumer_source"]) for r in got] == [
        ("chat", False, "inst/m1", "inst", "m1", 200, 8, 5, "openai-python", "user-agent"),
        ("chat", True, "inst/m1", "inst", "m1", 200, 8, 7, "openai-python", "user-agent"),
        ("completions", False, "m1", "inst", "m1", 200, 8, 3, "openai-python", "user-agent"),
        ("completions", True, "inst/m1", "inst", "m1", 200, 8, 4, "openai-python", "user-agent"),
        ("embeddings", False, "inst/m1", "inst", "m1", 200, 3, None, "openai-python", "user-agent"),
    ]
    assert all(r["error"] is None and r["ttft_ms"] is not None and r["total_ms"] >= r["ttft_ms"] for r in got)
    assert [r["reason"] for r in got[1:3]] == ["provider/model", "bare id, default provider"]


def test_model_list_favorites_first_then_by_provider_then_auto_and_offline_hidden(gw_db: str, tmp_path: Path) -> None:
    from warehouse.db import make_engine
    from warehouse.queries.favorites import set_favorite

    provs = [Provider(id=i, label=i, base_url=f"http://127.0.0.1:9/{i}", kind="openai") for i in ("a", "b", "gone")]
    seed(gw_db, provs, [("a", "x"), ("a", "y"), ("b", "z"), ("gone", "w")], offline=["gone"])
    eng = make_engine(gw_db, pool_size=1)
    with eng.begin() as conn:
        set_favorite(conn, "b", "z", True)
        set_favorite(conn, "gone", "w", True)  # a favourite of an offline provider stays hidden
    eng.dispose()
    with run_gateway(gw_db, registry(*provs), tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0)
        models = client.models.list().data
    ids = [m.id for m in models]
    assert ids == ["b/z", "a/x", "a/y", "auto:fast", "auto:best", "auto:code", "auto:long", "auto:efficient"]
    described = {m.id: getattr(m, "description", None) for m in models}
    assert described["auto:code"] == "Best HumanEval pass@1; speed breaks near-ties"
    assert described["a/x"] is None


def test_unknown_model_and_bad_bodies_are_openai_errors(gw_db: str, tmp_path: Path) -> None:
    p = Provider(id="inst", label="inst", base_url="http://127.0.0.1:9", kind="openai")
    with run_gateway(gw_db, registry(p), tmp_path) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key="none", max_retries=0)
        with pytest.raises(openai.NotFoundError, match="no default_provider"):
            client.chat.completions.create(model="m1", messages=[{"role": "user", "content": "hi"}])
        with pytest.raises(openai.NotFoundError, match="no routing policy 'auto:nope'"):
            client.chat.completions.create(model="auto:nope", messages=[{"role": "user", "content": "hi"}])
        r = httpx.post(gw.base_url + "/chat/completions", content=b"[1]", headers={"X-Boo-Source": "script"})
        assert r.status_code == 400 and r.json()["error"]["message"] == "the request body is not a JSON object"
        got = wait_rows(gw_db, 3)
    assert [(r["status"], r["consumer"], r["consumer_source"]) for r in got] == [
        (404, "openai-python", "user-agent"), (404, "openai-python", "user-agent"), (400, "script", "header")]
    assert utcnow() >= got[0]["started_at"]
