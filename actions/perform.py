"""Running one action against one llama-swap, turning every failure into a clear audit outcome.

``refused`` means the action was not attempted (unknown provider, host unreachable, stale capture id);
``failed`` means the host was reached and said no (or timed out). Error strings are redacted: they can
never carry the provider's API key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Connection

from actions.queue import kind_refusal
from connectors.llama_swap_api import LlamaSwapAPI, LlamaSwapError
from core.providers import Provider, Registry
from warehouse.captures import decode_capture, upsert_capture
from warehouse.queries.activity import current_epoch
from warehouse.queries.redaction import redact_text

ClientFactory = Callable[[Provider], httpx.AsyncClient]


def default_client_factory(provider: Provider) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded | failed | refused
    result: dict[str, Any] | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Refused(Exception):
    pass


def _describe(exc: BaseException) -> str:
    msg = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {msg}" if not isinstance(exc, LlamaSwapError) else msg


async def _probe(api: LlamaSwapAPI) -> None:
    """Raise `Refused` unless the provider answers ``/wol-health`` (unauthenticated, not logged upstream)."""
    pid = api.provider.id
    try:
        resp = await api.client.get(api.base + "/wol-health", timeout=5.0)
    except httpx.HTTPError as exc:
        raise Refused(f"provider {pid} is unreachable: {_describe(exc)}") from None
    if resp.status_code != 200:
        raise Refused(f"provider {pid} is unreachable: /wol-health answered HTTP {resp.status_code}")


async def _model_state(api: LlamaSwapAPI, model_id: str) -> str:
    for r in await api.running():
        if r.get("model") == model_id:
            return str(r.get("state") or "unknown")
    return "stopped"


async def _run(
    api: LlamaSwapAPI, action: str, target: str | None, params: dict[str, Any], conn: Connection | None
) -> dict[str, Any]:
    if action == "warm":
        assert target is not None
        seconds = await api.warm(target, timeout=float(params.get("timeout_s", 180.0)))
        return {"model": target, "seconds": round(seconds, 3), "state": await _model_state(api, target)}
    if action == "unload":
        assert target is not None
        await api.unload(target)
        return {"model": target, "state": await _model_state(api, target)}
    if action == "unload_all":
        before = sorted(str(r.get("model")) for r in await api.running())
        await api.unload_all()
        return {"unloaded": before}
    if action == "cancel_inflight":
        assert target is not None
        if not await api.cancel_inflight(target):
            raise LlamaSwapError(
                404,
                f"in-flight request {target} not found (already finished?)",
                f"/api/inflight/{target}/cancel",
            )
        return {"cancelled": target}
    if action == "fetch_capture":
        assert target is not None and conn is not None
        epoch = str(params["epoch"])
        current = current_epoch(conn, api.provider.id)
        if current is not None and epoch != current:
            raise Refused(
                f"capture {target} belongs to epoch {epoch}, but provider {api.provider.id} has restarted "
                f"since (current epoch {current}); llama-swap no longer holds it"
            )
        payload = await api.capture(int(target))
        if payload is None:
            raise LlamaSwapError(
                404,
                f"capture {target} is no longer held by llama-swap (evicted or disabled)",
                f"/api/captures/{target}",
            )
        row = decode_capture(payload)
        stored = upsert_capture(conn, api.provider.id, epoch, int(target), row, datetime.now(UTC))
        return {
            "upstream_id": int(target),
            "epoch": epoch,
            "stored": stored,
            "size_bytes": row.size_bytes,
            "truncated": row.truncated,
        }
    raise Refused(f"unknown action {action!r}")


async def perform(
    registry: Registry,
    client_factory: ClientFactory,
    provider_id: str,
    action: str,
    target: str | None,
    params: dict[str, Any],
    conn: Connection | None = None,
) -> Outcome:
    """Run one action and describe the outcome; never raises for host or network problems."""
    try:
        provider = registry.get(provider_id)
    except KeyError:
        return Outcome("refused", error=f"provider {provider_id} is not in the provider registry")
    secrets = [k for k in [provider.api_key()] if k]
    refusal = kind_refusal(provider, action)
    if refusal is not None:
        return Outcome("refused", error=refusal)
    missing_key = provider.missing_key_message()
    if missing_key is not None:
        return Outcome("refused", error=missing_key)
    try:
        async with client_factory(provider) as client:
            api = LlamaSwapAPI(provider, client)
            await _probe(api)
            result = await _run(api, action, target, params, conn)
        return Outcome("succeeded", result=result)
    except Refused as exc:
        return Outcome("refused", error=redact_text(str(exc), secrets))
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        return Outcome(
            "refused", error=redact_text(f"provider {provider_id} is unreachable: {_describe(exc)}", secrets)
        )
    except LlamaSwapError as exc:
        return Outcome("failed", error=redact_text(f"provider {provider_id}: {exc}", secrets))
    except httpx.TimeoutException as exc:
        return Outcome(
            "failed", error=redact_text(f"provider {provider_id}: timed out: {_describe(exc)}", secrets)
        )
    except Exception as exc:  # noqa: BLE001 - the audit row must say what happened, whatever it was
        return Outcome("failed", error=redact_text(f"provider {provider_id}: {_describe(exc)}", secrets))
