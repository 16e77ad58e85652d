"""Provider kinds: the one table of what each kind of server supports.

Every decision that depends on a provider's kind reads this table (``kind_spec(name)`` or
``Provider.spec``); nothing compares ``kind`` strings. A kind says:

* ``following`` — which connector protocol follows it (``llama-swap``: the event stream plus polling of
  llama-swap's own API; ``openai``: polling ``/v1/models`` for health and the model catalog);
* ``host_operations`` — whether the server reports its host (hardware, performance samples, logs,
  in-flight requests, captures: llama-swap's ``/api/*``);
* ``actions`` — whether warm / unload / cancel / capture can be performed on it;
* ``openai_path`` — where its OpenAI-compatible API lives below the provider's ``base_url``
  (``openai_base_url()``). ``base_url`` is always the server root, without ``/v1``;
* ``local`` — a self-hosted server of the fleet (llama-swap, vLLM, Ollama), not a possibly-cloud ``openai``
  API: the eval engine picks its default judge only among local models.

The connector classes live in ``connectors/`` (this module is below them): the runner maps
``following`` to a follower class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Following = Literal["llama-swap", "openai"]


@dataclass(frozen=True)
class ProviderKind:
    name: str
    summary: str
    following: Following
    host_operations: bool
    actions: bool
    openai_path: str = "/v1"
    local: bool = False

    def openai_base_url(self, base_url: str) -> str:
        """The OpenAI-compatible base URL (what an OpenAI client takes) of a provider of this kind."""
        return base_url.rstrip("/") + self.openai_path


LLAMA_SWAP = ProviderKind(
    name="llama-swap",
    summary="a llama-swap instance: followed live (events, activity, host samples, logs); actions",
    following="llama-swap",
    host_operations=True,
    actions=True,
    local=True,
)
OPENAI = ProviderKind(
    name="openai",
    summary="any OpenAI-compatible server (a cloud API, vLLM, llama-server): health and models from /v1/models",
    following="openai",
    host_operations=False,
    actions=False,
)
VLLM = ProviderKind(
    name="vllm",
    summary="a vLLM server: followed as an OpenAI-compatible server (context windows from max_model_len)",
    following="openai",
    host_operations=False,
    actions=False,
    local=True,
)
OLLAMA = ProviderKind(
    name="ollama",
    summary="an Ollama server: followed as an OpenAI-compatible server through its /v1 API",
    following="openai",
    host_operations=False,
    actions=False,
    local=True,
)

KINDS: dict[str, ProviderKind] = {k.name: k for k in (LLAMA_SWAP, OPENAI, VLLM, OLLAMA)}
DEFAULT_KIND = LLAMA_SWAP.name


class UnknownKind(ValueError):
    pass


def kind_spec(name: str) -> ProviderKind:
    try:
        return KINDS[name]
    except KeyError:
        raise UnknownKind(f"{name!r} is not one of {', '.join(KINDS)}") from None


def kinds_supporting_actions() -> list[str]:
    return [k.name for k in KINDS.values() if k.actions]
