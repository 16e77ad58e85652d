"""Per-model log history read straight from a llama-swap (``GET /logs/stream/<model>``).

The connector stores the proxy and upstream logs; per-model logs exist only on the host (docs/llama-swap-api.md
§10.1), so the Logs page reads them on demand: the stream answers with the retained history (≤ 100 KiB)
and then stays open for live chunks, so this reads for a short moment, closes, and returns what arrived
(bounded, redacted). Read-only: it does not go through the host queue.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import quote

import httpx

from actions.perform import ClientFactory, default_client_factory
from connectors.llama_swap_api import auth_headers, error_message
from core.providers import Provider
from warehouse.queries.redaction import redact_text


class HostLogError(RuntimeError):
    pass


async def _read(
    provider: Provider, client: httpx.AsyncClient, log_id: str, max_bytes: int, read_s: float
) -> str:
    url = provider.base_url.rstrip("/") + "/logs/stream/" + quote(log_id, safe="/")
    buf = bytearray()
    deadline = time.monotonic() + read_s
    try:
        async with client.stream(
            "GET", url, headers=auth_headers(provider), timeout=httpx.Timeout(read_s + 2, connect=5.0)
        ) as resp:
            if resp.status_code >= 400:
                await resp.aread()
                raise HostLogError(
                    f"provider {provider.id}: /logs/stream/{log_id}: HTTP {resp.status_code}: "
                    f"{error_message(resp)}"
                )
            it = resp.aiter_bytes()
            while len(buf) < max_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    chunk = await asyncio.wait_for(it.__anext__(), timeout=left)
                except (TimeoutError, StopAsyncIteration):
                    break
                buf += chunk
    except httpx.ReadTimeout as exc:
        # llama-swap sends nothing, not even the status line, while a log's history is empty
        # (docs/llama-swap-api.md §10.1): an empty log if the host is otherwise alive
        if not await _alive(client, provider):
            raise HostLogError(f"provider {provider.id} is unreachable: {type(exc).__name__}: {exc}") from None
    except httpx.HTTPError as exc:
        raise HostLogError(f"provider {provider.id} is unreachable: {type(exc).__name__}: {exc}") from None
    text = bytes(buf[-max_bytes:]).decode("utf-8", "replace")
    secrets = [k for k in [provider.api_key()] if k]
    return redact_text(text, secrets)


async def _alive(client: httpx.AsyncClient, provider: Provider) -> bool:
    try:
        resp = await client.get(provider.base_url.rstrip("/") + "/wol-health", timeout=3.0)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200


def fetch_model_log(
    provider: Provider,
    model_id: str,
    client_factory: ClientFactory | None = None,
    max_bytes: int = 256 * 1024,
    read_s: float = 0.8,
) -> str:
    """The model's retained log history on its host (plus whatever arrives within ``read_s``)."""

    async def run() -> str:
        async with (client_factory or default_client_factory)(provider) as client:
            return await _read(provider, client, model_id, max_bytes, read_s)

    return asyncio.run(run())
