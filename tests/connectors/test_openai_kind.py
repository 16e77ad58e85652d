"""The `openai` provider kind end to end: the real connector follows OpenAI-compatible servers into Postgres.

Servers: a real llama.cpp ``llama-server`` on the generated tiny model, and a small real HTTP server in
vLLM's and DeepSeek's ``/v1/models`` shapes (tests/support/openai_models_server.py). Catalog rows are
asserted exactly; keys come from the environment and never reach the database or the log.
"""

from __future__ import annotations

import logging

import pytest

from connectors.openai_compat import context_window, needs_props
from core.providers import Provider
from tests.support.connector import ConnectorThread, query, registry_for, wait_until
from tests.support.openai_models_server import DEEPSEEK_MODELS, VLLM_MODELS, run_models_server

LLAMA_SERVER_V1_MODELS_ENTRY = {  # as the llama-server built here answers (meta.n_ctx: the window of one slot)
    "id": "tiny", "aliases": ["tiny"], "object": "model", "created": 1764680000, "owned_by": "llamacpp",
    "meta": {"vocab_type": 1, "n_vocab": 896, "n_ctx": 1024, "n_ctx_train": 4096, "n_embd": 128},
}


def test_context_window_is_what_the_server_says_and_nothing_else():
    assert context_window(VLLM_MODELS["data"][0]) == 32768
    assert context_window({"id": "m", "context_length": 131072}) == 131072  # OpenRouter
    assert context_window({"id": "m", "context_window": 8192}) == 8192  # Groq
    assert context_window({"id": "m", "max_context_length": 32000}) == 32000  # Mistral
    assert context_window(LLAMA_SERVER_V1_MODELS_ENTRY) == 1024
    older = {"id": "tiny.gguf", "owned_by": "llamacpp", "meta": {"n_ctx_train": 4096}}  # no served window
    assert needs_props([older]) and not needs_props([LLAMA_SERVER_V1_MODELS_ENTRY])
    assert not needs_props(DEEPSEEK_MODELS["data"])  # a cloud API is never asked for /props
    assert context_window(older, {"default_generation_settings": {"n_ctx": 2048}}) == 2048
    assert context_window(older, None) == 4096  # the model's own trained window, as the server reports it
    assert [context_window(m) for m in DEEPSEEK_MODELS["data"]] == [None, None]
    assert context_window({"id": "m", "context_length": True}) is None
    assert context_window({"id": "m", "context_length": "32k"}) is None
    assert context_window({"id": "m", "max_model_len": 0}) is None


def _health(db_url: str) -> dict[str, tuple[str, str | None]]:
    return {p: (s, e) for p, s, e in query(db_url, "SELECT provider_id, status, last_error FROM connector_health")}


def test_openai_kind_catalog_health_and_keys(db, db_url, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "sk-vllm-SECRET-0123456789abcdef"
    wrong = "sk-wrong-0000000000000000"
    monkeypatch.setenv("VLLM_TEST_KEY", secret)
    monkeypatch.setenv("VLLM_WRONG_KEY", wrong)
    monkeypatch.delenv("LOCKED_TEST_KEY", raising=False)
    with run_models_server(VLLM_MODELS, api_key=secret) as vllm, run_models_server(DEEPSEEK_MODELS) as cloud, \
            run_models_server(DEEPSEEK_MODELS, api_key="sk-never-sent-1234567890") as locked:
        providers = [
            Provider(id="vllm", label="vLLM", base_url=vllm.base_url, kind="vllm", api_key_env="VLLM_TEST_KEY"),
            Provider(id="cloud", label="cloud", base_url=cloud.base_url, kind="openai"),
            Provider(id="locked", label="locked", base_url=locked.base_url, kind="openai",
                     api_key_env="LOCKED_TEST_KEY"),
            Provider(id="wrong", label="wrong", base_url=vllm.base_url, kind="openai", api_key_env="VLLM_WRONG_KEY"),
            Provider(id="swap", label="swap", base_url=locked.base_url, kind="llama-swap",
                     api_key_env="LOCKED_TEST_KEY"),  # the same for a llama-swap whose key variable is unset
        ]
        with ConnectorThread(registry_for(*providers), db_url, tmp_path / "sp", liveness_s=0.2, backoff_base_s=0.05,
                             backoff_max_s=0.1):
            wait_until(lambda: {p: s for p, (s, _) in _health(db_url).items()} == {
                "vllm": "connected", "cloud": "connected", "locked": "no_api_key", "wrong": "auth_failed",
                "swap": "no_api_key"},
                what="every provider's health")
            refused = lambda: sum(1 for _, ok in vllm.seen.requests if not ok)  # noqa: E731
            wait_until(lambda: refused() >= 4, what="the refused key retried")
            polls = vllm.seen.count()
            wait_until(lambda: cloud.seen.count() >= 3 and vllm.seen.count() >= polls + 2, what="polling")

    rows = query(db_url, "SELECT provider_id, model_id, context_length, kind FROM models ORDER BY 1, 2")
    assert rows == [
        ("cloud", "deepseek-chat", None, "model"),
        ("cloud", "deepseek-reasoner", None, "model"),
        ("vllm", "Qwen/Qwen2.5-7B-Instruct", 32768, "model"),
        ("vllm", "sql-lora", 32768, "model"),
    ]
    meta = dict(query(db_url, "SELECT model_id, meta FROM models WHERE provider_id = 'vllm'"))
    assert meta["sql-lora"]["parent"] == "Qwen/Qwen2.5-7B-Instruct" and "created" not in meta["sql-lora"]
    # a changed answer is a raw event; the same answer polled again is not stored again
    assert query(db_url, "SELECT provider_id, count(*) FROM raw_events GROUP BY 1 ORDER BY 1") == [
        ("cloud", 1), ("vllm", 1)]

    assert locked.seen.requests == []  # nothing is sent without the key
    health = _health(db_url)
    assert health["locked"] == ("stopped", (
        "provider locked: its API key variable LOCKED_TEST_KEY is not set; export LOCKED_TEST_KEY=<key> where the "
        "connector runs and restart it (nothing is sent to locked without its key)"))
    assert health["wrong"][1] == (
        "HTTP 401 on /v1/models: Incorrect API key provided.: the server refused the key of provider wrong (from "
        "VLLM_WRONG_KEY); check that variable's value")
    assert health["vllm"] == ("stopped", None) and health["cloud"] == ("stopped", None)

    wrong_warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and r.getMessage().startswith("wrong:")]
    assert len(wrong_warnings) == 1 and refused() >= 4  # warned once, not at every retry
    assert sorted(r.getMessage() for r in caplog.records if "LOCKED_TEST_KEY" in r.getMessage()) == [
        health["locked"][1], health["swap"][1]]
    assert health["swap"] == ("stopped", (
        "provider swap: its API key variable LOCKED_TEST_KEY is not set; export LOCKED_TEST_KEY=<key> where the "
        "connector runs and restart it (nothing is sent to swap without its key)"))

    dump = "\n".join(str(r) for t in ("raw_events", "connector_health", "models", "providers")
                     for r in query(db_url, f"SELECT * FROM {t}"))  # noqa: S608 - fixed names
    assert secret not in dump and wrong not in dump and "sk-never-sent" not in dump
    assert secret not in caplog.text and wrong not in caplog.text


@pytest.mark.llama_server
def test_a_real_llama_server_as_an_openai_provider(db, db_url, tmp_path):
    from tests.support.llamaserver import require_llama_server, run_llama_server
    from tests.support.tinymodel import N_CTX_TRAIN, write_tiny_gguf

    binary = require_llama_server()
    model = write_tiny_gguf(tmp_path / "tiny.gguf", seed=0)
    # 2 slots sharing -c 2048: one request can use 1024 tokens (what /v1/models meta.n_ctx and /props say)
    with run_llama_server(model, ctx=2048, parallel=2, binary=binary, extra_args=("--alias", "tiny")) as base:
        provider = Provider(id="llamacpp", label="llama-server", base_url=base, kind="openai")
        with ConnectorThread(registry_for(provider), db_url, tmp_path / "sp", liveness_s=0.2):
            wait_until(lambda: query(db_url, "SELECT status FROM connector_health") == [("connected",)],
                       what="connected")
            wait_until(lambda: query(db_url, "SELECT count(*) FROM models") == [(1,)], what="the catalog")
    rows = query(db_url, "SELECT provider_id, model_id, context_length, aliases, meta->'meta'->>'n_ctx_train' "
                         "FROM models")
    assert N_CTX_TRAIN == 4096
    # the window one request gets, not -c (2048) nor the model's trained window (4096)
    assert rows == [("llamacpp", "tiny", 1024, ["tiny"], "4096")]


def test_auth_failures_name_the_provider_and_what_to_do(monkeypatch):
    from connectors.openai_compat import OpenAICompatError
    from connectors.runner import describe_error

    exc = OpenAICompatError(401, "Authentication Fails, Your api key: sk-live-9f8e7d6c5b4a is invalid", "/v1/models")
    keyed = Provider(id="ds", label="ds", base_url="https://api.deepseek.com", kind="openai", api_key_env="DS_K")
    keyless = Provider(id="ds", label="ds", base_url="https://api.deepseek.com", kind="openai")
    monkeypatch.setenv("DS_K", "sk-live-9f8e7d6c5b4a")
    assert describe_error(exc, keyed) == ("auth_failed", (
        "HTTP 401 on /v1/models: Authentication Fails, Your api key: [REDACTED] is invalid: the server refused "
        "the key of provider ds (from DS_K); check that variable's value"))
    assert describe_error(OpenAICompatError(401, "Unauthorized", "/v1/models"), keyless) == ("auth_failed", (
        "HTTP 401 on /v1/models: Unauthorized: provider ds sends no key and the server wants one; set its "
        "api_key_env in the registry to the name of a variable holding it"))


def test_an_answer_that_is_not_a_model_list_is_an_error_naming_the_path():
    import asyncio

    import httpx

    from connectors.openai_compat import OpenAICompatAPI, OpenAICompatError, OpenAIFollower
    from warehouse.records import ProviderState

    async def poll(body: bytes) -> None:
        transport = httpx.MockTransport(lambda req: httpx.Response(200, content=body))
        async with httpx.AsyncClient(transport=transport) as client:
            provider = Provider(id="web", label="web", base_url="http://example.test", kind="openai")

            async def sink(records: object) -> None:
                raise AssertionError("nothing is emitted from a bad answer")

            await OpenAIFollower(OpenAICompatAPI(provider, client), ProviderState(), sink).poll()

    for body, said in ((b"<html>hello</html>", "answer is not JSON"),
                       (b'{"models": []}', "expected an object with a 'data' list")):
        with pytest.raises(OpenAICompatError) as err:
            asyncio.run(poll(body))
        assert str(err.value) == f"/v1/models: HTTP 200: {said}"
