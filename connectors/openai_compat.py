"""Following an OpenAI-compatible server (kinds ``openai``, ``vllm``, ``ollama`` in `core.kinds`).

Such a server (a cloud API like DeepSeek, vLLM, llama.cpp's llama-server, Ollama) has no event stream
and no host API: what it tells about itself is its model list. `OpenAIFollower.session()` has the
same contract as `LlamaSwapFollower.session()`: it polls ``GET <base>/v1/models`` every ``liveness_s``
seconds; the first answer reports the provider connected (``on_connected``), every answer upserts the
catalog (`ModelInfo`) and a changed answer is also kept as a raw event; any failure raises, and the
runner reports it and reconnects with backoff.

Context windows are what the server says, never a default (`context_window`): vLLM's
``max_model_len``; ``context_length`` / ``context_window`` / ``max_context_length`` (OpenRouter, Groq,
Mistral, ...); llama-server's ``meta.n_ctx`` (the window one request can use), else its ``/props``
``default_generation_settings.n_ctx``, else the model's ``meta.n_ctx_train``; otherwise NULL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

from connectors.llama_swap_api import LlamaSwapError, auth_headers, error_message
from core.providers import Provider
from warehouse.records import ModelInfo, ProviderState, RawEvent, Record, utcnow

log = logging.getLogger(__name__)

Emit = Callable[[Sequence[Record]], Awaitable[None]]

# Fields that change on every answer without the catalog changing (llama-server stamps `created` = now).
_VOLATILE = ("id", "object", "created")
_WINDOW_FIELDS = ("max_model_len", "context_length", "context_window", "max_context_length")


class OpenAICompatError(LlamaSwapError):
    """An HTTP error from an OpenAI-compatible server (same shape, so the runner reports it alike)."""


def _positive_int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else None


def is_llama_server(entry: Mapping[str, Any]) -> bool:
    return entry.get("owned_by") == "llamacpp"


def _served_window(entry: Mapping[str, Any]) -> int | None:
    for name in _WINDOW_FIELDS:
        found = _positive_int(entry.get(name))
        if found is not None:
            return found
    meta = entry.get("meta")
    return _positive_int(meta.get("n_ctx")) if isinstance(meta, Mapping) else None


def context_window(entry: Mapping[str, Any], props: Mapping[str, Any] | None = None) -> int | None:
    """The context window the server reports for one ``/v1/models`` entry, or None when it says nothing."""
    served = _served_window(entry)
    if served is not None:
        return served
    if props is not None:
        settings = props.get("default_generation_settings")
        if isinstance(settings, Mapping):
            served = _positive_int(settings.get("n_ctx"))
            if served is not None:
                return served
    meta = entry.get("meta")
    return _positive_int(meta.get("n_ctx_train")) if isinstance(meta, Mapping) else None


def needs_props(entries: Sequence[Mapping[str, Any]]) -> bool:
    """Only a llama-server whose entries do not carry the served window is asked for ``/props``."""
    return any(is_llama_server(e) and _served_window(e) is None for e in entries)


def model_entries(body: Any) -> list[dict[str, Any]]:
    """The model entries of a ``/v1/models`` answer (``{"data": [...]}``); entries without an id are skipped."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ValueError("/v1/models: expected an object with a 'data' list")
    return [m for m in body["data"] if isinstance(m, dict) and isinstance(m.get("id"), str) and m["id"]]


def catalog_records(entries: Sequence[Mapping[str, Any]], provider_id: str, seen_at: datetime,
                    props: Mapping[str, Any] | None = None) -> list[ModelInfo]:
    out = []
    for m in entries:
        aliases = m.get("aliases")
        meta = {k: v for k, v in m.items() if k not in _VOLATILE}
        name = m.get("name")
        out.append(ModelInfo(
            provider_id=provider_id,
            model_id=str(m["id"]),
            seen_at=seen_at,
            name=name if isinstance(name, str) and name else None,
            kind="model",
            aliases=[a for a in aliases if isinstance(a, str)] if isinstance(aliases, list) else None,
            context_length=context_window(m, props),
            meta=meta or None,
        ))
    return out


class OpenAICompatAPI:
    """GETs against an OpenAI-compatible server; the key goes in a header only (never logged or stored)."""

    def __init__(self, provider: Provider, client: httpx.AsyncClient, environ: Mapping[str, str] | None = None):
        self.provider = provider
        self.client = client
        self.root = provider.base_url.rstrip("/")
        self.base = provider.spec.openai_base_url(provider.base_url)
        self.headers = auth_headers(provider, environ)

    async def models(self) -> Any:
        path = self.provider.spec.openai_path + "/models"
        resp = await self.client.get(self.base + "/models", headers=self.headers, timeout=15.0)
        if resp.status_code >= 400:
            raise OpenAICompatError(resp.status_code, error_message(resp), path)
        try:
            return resp.json()
        except ValueError:
            raise OpenAICompatError(resp.status_code, "answer is not JSON", path) from None

    async def props(self) -> dict[str, Any] | None:
        """llama-server's ``/props`` (None when absent or unreadable: it only refines the context window)."""
        with contextlib.suppress(httpx.HTTPError, ValueError):
            resp = await self.client.get(self.root + "/props", headers=self.headers, timeout=15.0)
            if resp.status_code == 200 and isinstance(body := resp.json(), dict):
                return body
        return None


class OpenAIFollower:
    """Polls ``/v1/models``: health and the model catalog of one OpenAI-compatible provider."""

    kind = "openai"

    def __init__(self, api: OpenAICompatAPI, state: ProviderState, emit: Emit, *,
                 perf_poll_s: float = 5.0, liveness_s: float = 15.0, fetch_captures: bool = True,
                 on_connected: Callable[[str | None, str | None], Awaitable[None]] | None = None) -> None:
        del perf_poll_s, fetch_captures  # no host samples, no captures on this kind of server
        self.api = api
        self.pid = api.provider.id
        self.state = state
        self.emit = emit
        self.poll_s = liveness_s
        self.on_connected = on_connected
        self._last_payload: Any = None

    async def poll(self) -> list[Record]:
        """One poll: the records it produced (already emitted)."""
        body = await self.api.models()
        now = utcnow()
        try:
            entries = model_entries(body)
        except ValueError as exc:
            path = self.api.provider.spec.openai_path + "/models"
            raise OpenAICompatError(200, str(exc).split(": ", 1)[-1], path) from None
        props = await self.api.props() if needs_props(entries) else None
        records: list[Record] = []
        stable = [{k: v for k, v in e.items() if k != "created"} for e in entries]
        if stable != self._last_payload:
            records.append(RawEvent(self.pid, None, now, "poll:/v1/models", body))
            if props is not None:
                records.append(RawEvent(self.pid, None, now, "poll:/props", _props_summary(props)))
            self._last_payload = stable
        records.extend(catalog_records(entries, self.pid, now, props))
        await self.emit(records)
        return records

    async def session(self) -> None:
        """One connection's life: poll until a poll fails (the runner reconnects). Never returns normally."""
        self._last_payload = None
        await self.poll()
        if self.on_connected is not None:
            await self.on_connected(None, None)
        while True:
            await asyncio.sleep(self.poll_s)
            await self.poll()


def _props_summary(props: Mapping[str, Any]) -> dict[str, Any]:
    """The identifying parts of llama-server's /props (its chat template can be kilobytes)."""
    keep = ("model_path", "model_alias", "total_slots", "build_info", "default_generation_settings")
    out = {k: props[k] for k in keep if k in props}
    dgs = out.get("default_generation_settings")
    if isinstance(dgs, Mapping):
        out["default_generation_settings"] = {"n_ctx": dgs.get("n_ctx")}
    return out
