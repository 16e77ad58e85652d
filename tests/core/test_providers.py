from pathlib import Path

import pytest

from core.providers import ModelRef, RegistryError, load_registry, parse_registry

GOOD = """\
default_provider: embedding
providers:
  - id: sam-desktop
    label: Sam desktop
    base_url: http://10.0.0.5:8401/
    kind: llama-swap
    api_key_env: SAM_KEY
    labels: {gpu: "5090"}
  - id: embedding
    label: Embedding
    base_url: http://10.0.0.6:8411
  - id: deepseek
    label: DeepSeek cloud
    base_url: https://api.deepseek.com
    kind: openai
    api_key_env: DEEPSEEK_API_KEY
"""


def test_good_registry_parses_with_defaults():
    reg = parse_registry(GOOD, "fleet.yaml")
    assert reg.ids() == ["sam-desktop", "embedding", "deepseek"]
    assert reg.default_provider == "embedding"
    sam = reg.get("sam-desktop")
    assert sam.base_url == "http://10.0.0.5:8401" and sam.labels == {"gpu": "5090"}
    assert reg.get("embedding").kind == "llama-swap"


def test_resolver_composite_bare_and_slashed_ids():
    reg = parse_registry(GOOD)
    assert reg.resolve("sam-desktop/qwen-7b") == ModelRef("sam-desktop", "qwen-7b")
    assert reg.resolve("qwen-7b") == ModelRef("embedding", "qwen-7b")  # legacy bare id -> default provider
    assert reg.resolve("embedding/deepseek-r1-qwen3-8b") == ModelRef("embedding", "deepseek-r1-qwen3-8b")
    assert reg.resolve("sam-desktop/peer1/llama") == ModelRef("sam-desktop", "peer1/llama")  # peer model ids
    assert reg.resolve("unknownhost/model") == ModelRef("embedding", "unknownhost/model")
    # the same model name on two providers stays two models
    assert reg.resolve("sam-desktop/m") != reg.resolve("embedding/m")
    assert str(reg.resolve("sam-desktop/m")) == "sam-desktop/m"
    with pytest.raises(ValueError, match="empty"):
        reg.resolve("  ")


def test_default_provider_falls_back_to_first_local():
    reg = parse_registry("providers:\n  - id: cloud\n    base_url: https://x\n    kind: openai\n"
                         "  - id: box\n    base_url: http://y\n")
    assert reg.default_provider == "box"


def test_api_key_comes_from_the_environment_and_never_from_repr():
    reg = parse_registry(GOOD)
    sam = reg.get("sam-desktop")
    assert sam.api_key({"SAM_KEY": "sk-secret"}) == "sk-secret"
    assert sam.api_key({}) is None
    assert "sk-secret" not in repr(sam)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("providers:\n  - id: a\n    label: A\n", "fleet.yaml:2: providers[0].base_url: required field is missing"),
        ("providers:\n  - id: a\n    base_url: ftp://x\n", "fleet.yaml:3: providers[0].base_url: 'ftp://x' is not an http(s) URL"),
        ("providers:\n  - id: a\n    base_url: http://x\n  - id: a\n    base_url: http://y\n",
         "fleet.yaml:4: providers[1].id: duplicate provider id 'a' (first at line 2)"),
        ("providers:\n  - id: a\n    base_url: http://x\n    kind: tgi\n",
         "fleet.yaml:4: providers[0].kind: 'tgi' is not one of llama-swap, openai, vllm, ollama"),
        ("providers:\n  - id: Bad Id\n    base_url: http://x\n", "fleet.yaml:2: providers[0].id: 'Bad Id' must be lowercase"),
        ("providers:\n  - id: a\n    base_url: http://x\n    api_key_env: sk-live-123\n",
         "fleet.yaml:4: providers[0].api_key_env: must be the NAME of an environment variable"),
        ("providers:\n  - id: a\n    base_url: http://x\n    colour: red\n", "fleet.yaml:4: providers[0].colour: unknown field"),
        ("default_provider: nope\nproviders:\n  - id: a\n    base_url: http://x\n",
         "fleet.yaml:1: default_provider: 'nope' is not the id of a listed provider"),
        ("providers: [\n", "fleet.yaml:2: invalid YAML"),
        ("servers: []\n", "fleet.yaml:1: servers: unknown key"),
    ],
)
def test_bad_registry_names_file_line_and_field(text, expected):
    with pytest.raises(RegistryError) as err:
        parse_registry(text, "fleet.yaml")
    assert str(err.value).startswith(expected)


def test_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(RegistryError, match="provider registry file not found"):
        load_registry(tmp_path / "nope.yaml")
