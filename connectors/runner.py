"""The resident connector: follows every provider concurrently and lands records in Postgres.

* One asyncio task per provider runs `LlamaSwapFollower.session()` in a loop with exponential backoff
  and jitter; one slow or broken provider never blocks another.
* Followers hand records to the one write path (`warehouse.writer.Writer`), which batches them into
  Postgres and spools to disk while Postgres is away.
* Connection status and the last error per provider land in ``connector_health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

from connectors.follower import LlamaSwapFollower, StreamEnded
from connectors.llama_swap_api import LlamaSwapAPI, LlamaSwapError
from connectors.openai_compat import OpenAICompatAPI, OpenAIFollower
from core.providers import Provider, Registry
from warehouse.queries.redaction import redact_text
from warehouse.records import Health, ProviderState, utcnow
from warehouse.spool import Spool
from warehouse.writer import WriteOptions, Writer

log = logging.getLogger(__name__)


@dataclass
class ConnectorOptions:
    batch_rows: int = 2000
    flush_s: float = 0.25
    buffer_rows: int = 200_000
    perf_poll_s: float = 5.0
    liveness_s: float = 15.0
    fetch_captures: bool = True
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0


def describe_error(exc: BaseException, provider: Provider | None = None) -> tuple[str, str]:
    """(status, message) for connector_health; never includes credentials (only a variable's name)."""
    if isinstance(exc, LlamaSwapError):
        if exc.status in (401, 403):
            # some APIs echo the refused key (or part of it) in their error message
            said = redact_text(exc.message, [k for k in [provider.api_key()] if k] if provider else [])
            head = f"HTTP {exc.status} on {exc.path}: {said}"
            if provider is None:
                return "auth_failed", f"{head} (check the provider's api_key_env)"
            if provider.api_key_env:
                return "auth_failed", (f"{head}: the server refused the key of provider {provider.id} "
                                       f"(from {provider.api_key_env}); check that variable's value")
            return "auth_failed", (f"{head}: provider {provider.id} sends no key and the server wants one; "
                                   f"set its api_key_env in the registry to the name of a variable holding it")
        return "error", str(exc)
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return "unreachable", f"cannot connect: {exc.__class__.__name__}: {exc}"
    if isinstance(exc, StreamEnded):
        return "reconnecting", str(exc)
    if isinstance(exc, httpx.HTTPError):
        return "error", f"{exc.__class__.__name__}: {exc}"
    return "error", f"{exc.__class__.__name__}: {exc}"


class Connector:
    def __init__(self, registry: Registry, dsn: str, spool_dir: Path, opts: ConnectorOptions | None = None,
                 client: httpx.AsyncClient | None = None,
                 follower_factory: Callable[..., LlamaSwapFollower] = LlamaSwapFollower) -> None:
        self.registry = registry
        self.dsn = dsn
        self.opts = opts or ConnectorOptions()
        self.spool = Spool(spool_dir)
        self.writer = Writer(dsn, self.spool, WriteOptions(self.opts.batch_rows, self.opts.flush_s, self.opts.buffer_rows))
        self.client = client
        self.follower_factory = follower_factory
        self.followers: dict[str, LlamaSwapFollower | OpenAIFollower] = {}
        self.status: dict[str, str] = {}

    def _prepare_db(self) -> dict[str, ProviderState]:
        from warehouse.ingest import load_state, sync_providers

        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            sync_providers(conn, self.registry.providers)
            return {p.id: load_state(conn, p.id) for p in self.registry.providers}

    async def _wait_for_db(self, stop: asyncio.Event) -> dict[str, ProviderState]:
        delay = 1.0
        while True:
            try:
                return await asyncio.to_thread(self._prepare_db)
            except psycopg.OperationalError as exc:
                log.error("waiting for Postgres: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
                if stop.is_set():
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 15.0)

    async def _health(self, provider: Provider, status: str, **kw: Any) -> None:
        self.status[provider.id] = status
        await self.writer.emit([Health(provider.id, status, utcnow(), **kw)])

    async def supervise(self, provider: Provider, state: ProviderState, client: httpx.AsyncClient) -> None:
        missing_key = provider.missing_key_message()
        if missing_key is not None:  # the environment cannot change under a running process: say it once, send nothing
            log.error("%s", missing_key)
            await self._health(provider, "no_api_key", last_error=missing_key)
            return
        attempt = 0

        async def connected(version: str | None, boot: str | None) -> None:
            await self._health(provider, "connected", version=version, boot_marker=boot, connected_since=utcnow())

        # the follower class comes from the kinds table (core.kinds: `following`)
        kw: dict[str, Any] = dict(perf_poll_s=self.opts.perf_poll_s, liveness_s=self.opts.liveness_s,
                                  fetch_captures=self.opts.fetch_captures, on_connected=connected)
        follower: LlamaSwapFollower | OpenAIFollower
        if provider.spec.following == "openai":
            follower = OpenAIFollower(OpenAICompatAPI(provider, client), state, self.writer.emit, **kw)
        else:
            follower = self.follower_factory(LlamaSwapAPI(provider, client), state, self.writer.emit, **kw)
        self.followers[provider.id] = follower
        last_message: str | None = None
        while True:
            started = time.monotonic()
            try:
                await follower.session()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:  # noqa: BLE001 - every failure is reported and retried
                status, message = describe_error(exc, provider)
                if isinstance(exc, StreamEnded):
                    log.info("%s: %s; reconnecting", provider.id, message)
                    await self._health(provider, status)
                else:
                    # warn once per state change; the same failure again (every backoff) is only debug
                    repeated = (self.status.get(provider.id), last_message) == (status, message)
                    log.log(logging.DEBUG if repeated else logging.WARNING, "%s: %s", provider.id, message)
                    last_message = message
                    await self._health(provider, status, last_error=message)
            attempt = 0 if time.monotonic() - started > 10 else attempt + 1
            delay = min(self.opts.backoff_max_s, self.opts.backoff_base_s * (2 ** max(attempt - 1, 0)))
            if self.status.get(provider.id) == "auth_failed":
                delay = self.opts.backoff_max_s  # a refused key will not start working in a second
            await asyncio.sleep(delay * random.uniform(0.5, 1.0) if attempt else random.uniform(0.05, 0.3))

    async def _watch_loop_lag(self) -> None:
        """Log how late the event loop wakes up: a late loop delays every provider at once."""
        worst, window_start = 0.0, time.monotonic()
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.1)
            worst = max(worst, time.monotonic() - t0 - 0.1)
            if time.monotonic() - window_start >= 30:
                log.info("event loop: worst wake-up delay %.0f ms in the last 30 s", worst * 1000)
                worst, window_start = 0.0, time.monotonic()

    async def run(self, stop: asyncio.Event) -> None:
        states = await self._wait_for_db(stop)
        # One small pool per provider: httpcore's pool scans all its connections on every request, so a
        # single shared pool holding 500 long-lived SSE streams makes each request cost O(fleet).
        # They share one TLS context: httpx would otherwise load the CA bundle once per client (~1 MB each).
        tls = ssl.create_default_context()
        clients = {p.id: self.client or httpx.AsyncClient(limits=httpx.Limits(max_connections=8), verify=tls,
                                                          timeout=httpx.Timeout(15.0))
                   for p in self.registry.providers}
        writer = asyncio.ensure_future(self.writer.run(stop))
        tasks = [asyncio.ensure_future(self.supervise(p, states[p.id], clients[p.id])) for p in self.registry.providers]
        tasks.append(asyncio.ensure_future(self._watch_loop_lag()))
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
            await writer
            for p in self.registry.providers:
                self.writer.pending.append(Health(p.id, "stopped", utcnow()))
            await self.writer.flush()
            if self.client is None:
                for c in clients.values():
                    await c.aclose()
