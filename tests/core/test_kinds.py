"""The provider kinds table (core/kinds.py) and the decisions that read it instead of comparing strings."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import httpx
import pytest

from actions.perform import perform
from core.kinds import KINDS, LLAMA_SWAP, OPENAI, ProviderKind, UnknownKind, kind_spec
from core.providers import Provider, Registry, RegistryError, parse_registry
from engines.bench.host import LlamaSwapHost, OpenAIHost
from engines.bench.service import make_host

ROOT = Path(__file__).parents[2]
PRODUCT = ["core", "connectors", "warehouse", "actions", "engines", "reports", "tasks", "flows", "ui", "cli",
           "pages", "demo", "app.py"]


def test_the_table_says_what_each_kind_supports():
    assert [(k.name, k.following, k.host_operations, k.actions, k.openai_path) for k in KINDS.values()] == [
        ("llama-swap", "llama-swap", True, True, "/v1"),
        ("openai", "openai", False, False, "/v1"),
        ("vllm", "openai", False, False, "/v1"),
        ("ollama", "openai", False, False, "/v1"),
    ]
    assert all(isinstance(k, ProviderKind) for k in KINDS.values())
    assert OPENAI.openai_base_url("https://api.deepseek.com/") == "https://api.deepseek.com/v1"
    assert LLAMA_SWAP.openai_base_url("http://10.0.0.5:8080") == "http://10.0.0.5:8080/v1"
    with pytest.raises(UnknownKind, match=r"^'tgi' is not one of llama-swap, openai, vllm, ollama$"):
        kind_spec("tgi")


def test_a_provider_carries_its_kind_spec_and_refuses_unknown_kinds():
    assert Provider(id="d", label="d", base_url="https://api.deepseek.com", kind="openai").spec is OPENAI
    assert Provider(id="g", label="g", base_url="http://x:1").spec is LLAMA_SWAP
    with pytest.raises(UnknownKind):
        Provider(id="t", label="t", base_url="http://x:1", kind="tgi")


def test_registry_refuses_a_base_url_that_already_ends_in_the_openai_path():
    text = "providers:\n  - id: ds\n    kind: openai\n    base_url: https://api.deepseek.com/v1\n"
    with pytest.raises(RegistryError) as err:
        parse_registry(text, "fleet.yaml")
    assert str(err.value) == ("fleet.yaml:4: providers[0].base_url: 'https://api.deepseek.com/v1' ends with /v1: "
                              "give the server root (BooControl adds /v1 itself)")


def test_the_default_provider_is_the_first_self_hosted_one():
    text = ("providers:\n  - id: ds\n    kind: openai\n    base_url: https://api.deepseek.com\n"
            "  - id: gpu\n    base_url: http://10.0.0.5:8080\n")
    assert parse_registry(text).default_provider == "gpu"
    only_cloud = "providers:\n  - id: ds\n    kind: openai\n    base_url: https://api.deepseek.com\n"
    assert parse_registry(only_cloud).default_provider == "ds"


def test_missing_key_is_named_with_the_provider():
    p = Provider(id="ds", label="ds", base_url="https://api.deepseek.com", kind="openai", api_key_env="DS_KEY")
    assert p.missing_key_env({}) == "DS_KEY" and p.missing_key_env({"DS_KEY": ""}) == "DS_KEY"
    assert p.missing_key_env({"DS_KEY": "sk-1"}) is None
    assert p.missing_key_message({}) == (
        "provider ds: its API key variable DS_KEY is not set; export DS_KEY=<key> where the connector runs and "
        "restart it (nothing is sent to ds without its key)")
    assert Provider(id="x", label="x", base_url="http://x:1").missing_key_message({}) is None


def _never_called(provider: Provider) -> httpx.AsyncClient:
    raise AssertionError("an action on a refused provider must not open a connection")


def test_actions_are_refused_for_kinds_without_them():
    reg = Registry((Provider(id="ds", label="ds", base_url="https://api.deepseek.com", kind="openai"),), "ds")
    out = asyncio.run(perform(reg, _never_called, "ds", "unload", "deepseek-chat", {}))
    assert (out.status, out.error) == (
        "refused",
        "provider ds is of kind openai, which has no unload action (warm, unload, cancel and capture need a "
        "provider of kind llama-swap)",
    )


def test_actions_are_refused_without_their_key(monkeypatch):
    monkeypatch.delenv("GPU_KEY_FOR_TEST", raising=False)
    reg = Registry((Provider(id="gpu", label="g", base_url="http://127.0.0.1:9", api_key_env="GPU_KEY_FOR_TEST"),),
                   "gpu")
    out = asyncio.run(perform(reg, _never_called, "gpu", "warm", "m", {}))
    assert out.status == "refused" and out.error == Provider(
        id="gpu", label="g", base_url="http://127.0.0.1:9", api_key_env="GPU_KEY_FOR_TEST").missing_key_message()


def test_bench_host_comes_from_the_table():
    async def hosts() -> tuple[object, object]:
        async with httpx.AsyncClient() as client:
            return (make_host(Provider(id="a", label="a", base_url="http://x:1"), client),
                    make_host(Provider(id="b", label="b", base_url="http://x:2", kind="vllm"), client))

    swap, direct = asyncio.run(hosts())
    assert isinstance(swap, LlamaSwapHost) and isinstance(direct, OpenAIHost)


def _kind_string_compares(tree: ast.AST) -> list[int]:
    names = set(KINDS)
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        mentions_kind = any(isinstance(s, ast.Attribute) and s.attr == "kind" or isinstance(s, ast.Name)
                            and s.id == "kind" for s in sides)
        literal = any(isinstance(s, ast.Constant) and s.value in names for s in sides)
        if mentions_kind and literal:
            hits.append(node.lineno)
    return hits


def test_no_product_code_compares_kind_strings():
    found = {}
    for top in PRODUCT:
        for path in [ROOT / top] if top.endswith(".py") else sorted((ROOT / top).rglob("*.py")):
            hits = _kind_string_compares(ast.parse(path.read_text(), str(path)))
            if hits:
                found[str(path.relative_to(ROOT))] = hits
    assert found == {}, "decide from core.kinds (Provider.spec / kind_spec), not by comparing kind strings"
    assert _kind_string_compares(ast.parse('if p.kind != "llama-swap": pass')) == [1]  # the check can fail
