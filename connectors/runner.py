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
from connectors.ownership import Heartbeat, Ownership, Plan
from connectors.transport import FollowerTransport
from core.providers import Provider, Registry
from warehouse.lease import holder_id
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
    lease_ttl_s: float = 15.0  # follow leases and membership expire this long after the last heartbeat
    take_over_local_dead: bool = True  # a gone connector process of this machine: take its leases at once
    aiohttp_transport: bool = True  # HTTP through aiohttp (connectors.transport); False: httpx's own (httpcore)


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
        self.holder = holder_id("connector")  # the follow leases and the membership row carry this name
        self.following: dict[str, asyncio.Task[None]] = {}  # providers whose follow lease we hold, and their task
        self._last_beat = 0.0  # monotonic start of the last heartbeat that reached Postgres
        self._loop_alive = time.monotonic()  # the event loop last ran (the heartbeat thread checks it)
        self._stopping: dict[str, asyncio.Task[None]] = {}  # cancelled followers that have not ended yet
        self._undrained = False  # followers stopped without waiting for their records to land
        self._replays_seen = 0  # writer.replayed_batches when the previous plan was applied

    def _prepare_db(self) -> None:
        from warehouse.ingest import sync_providers

        with psycopg.connect(self.dsn, connect_timeout=5) as conn:
            sync_providers(conn, self.registry.providers)
        # each provider's state is loaded when its follow lease is taken (connectors.ownership)

    async def _wait_for_db(self, stop: asyncio.Event) -> None:
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
        """Follow the providers whose follow lease this connector holds, until ``stop``.

        Several connectors on one database split the providers between them (`connectors.ownership`); a lone
        connector holds them all. On a clean exit it marks ``stopped`` only the providers it followed and gives
        their leases back, so another connector takes them at once.
        """
        await self._wait_for_db(stop)
        # One small pool per provider: httpcore's pool scans all its connections on every request, so a
        # single shared pool holding 500 long-lived SSE streams makes each request cost O(fleet).
        # They share one TLS context: httpx would otherwise load the CA bundle once per client (~1 MB each).
        # Created when a provider is first followed, so a connector holding a third of the fleet pays a third.
        tls = ssl.create_default_context()
        clients: dict[str, httpx.AsyncClient] = {}

        def client_for(provider_id: str) -> httpx.AsyncClient:
            if self.client is not None:
                return self.client
            if provider_id not in clients:
                # idle connections are kept past the longest regular interval (liveness, performance poll):
                # httpx's default of 5 s closed them just before each 5 s poll, so every poll paid a new TCP
                # connection (llama-swap, a Go server, keeps idle connections open indefinitely)
                keep = max(60.0, 2 * max(self.opts.perf_poll_s, self.opts.liveness_s))
                limits = httpx.Limits(max_connections=8, keepalive_expiry=keep)
                clients[provider_id] = httpx.AsyncClient(
                    transport=FollowerTransport(limits, tls) if self.opts.aiohttp_transport else None,
                    limits=limits, verify=tls, timeout=httpx.Timeout(15.0))
            return clients[provider_id]

        own = Ownership(self.dsn, self.holder, self.registry.ids(), self.opts.lease_ttl_s,
                        self.opts.take_over_local_dead)
        writer = asyncio.ensure_future(self.writer.run(stop))
        self._loop_alive = time.monotonic()
        beats = Heartbeat(self.dsn, self.holder, self.opts.lease_ttl_s, self._beat_ok, lambda: self._loop_alive)
        beats.start()
        owner = asyncio.ensure_future(self._own(own, stop, client_for))
        helpers = [asyncio.ensure_future(self._watchdog()), asyncio.ensure_future(self._watch_loop_lag())]
        try:
            await stop.wait()
        finally:
            own.closing = True  # the tick under way takes nothing more
            try:
                await asyncio.wait_for(owner, self.opts.lease_ttl_s)
            except BaseException:  # noqa: BLE001 - a hung tick must not keep the process alive
                owner.cancel()
            for t in helpers:
                t.cancel()
            await asyncio.to_thread(beats.stop)
            owned = sorted(self.following)
            await self._stop_following(owned)
            for t in helpers:
                with contextlib.suppress(BaseException):
                    await t
            await writer
            for pid in owned:  # only the providers this connector followed: another may follow the rest
                self.writer.pending.append(Health(pid, "stopped", utcnow()))
            await self.writer.flush()
            if self.writer.db_ok and not owner.cancelled():
                try:
                    given = await asyncio.to_thread(own.leave)
                    log.info("gave back %d follow lease(s)", len(given))
                except psycopg.Error as exc:
                    log.error("could not give back the follow leases (%s); they expire in %.0f s",
                              exc.__class__.__name__, self.opts.lease_ttl_s)
            if not owner.cancelled():
                own.close()
            for c in clients.values():
                await c.aclose()

    def _beat_ok(self, started: float) -> None:
        """A heartbeat that started at monotonic ``started`` reached Postgres (called from the tick's thread)."""
        self._last_beat = max(self._last_beat, started)

    def _beat_stale(self) -> bool:
        return time.monotonic() - self._last_beat > self.opts.lease_ttl_s / 2

    async def _stop_following(self, provider_ids: list[str]) -> None:
        pairs = [(p, self.following.pop(p)) for p in provider_ids if p in self.following]
        tasks = [t for _, t in pairs]
        for t in tasks:
            t.cancel()
        if tasks:
            self._undrained = True
            _, stuck = await asyncio.wait(tasks, timeout=10)
            if stuck:  # never wait forever on a follower that does not end when cancelled; never start a second one
                log.error("%d follower(s) did not stop within 10 s of being cancelled; not restarted until they "
                          "end", len(stuck))
                self._stopping.update((p, t) for p, t in pairs if t in stuck)

    async def _hold_back(self) -> set[str] | None:
        """Providers that must not be (re)started now: a follower of theirs has not ended, or (None: all of
        them) records of stopped followers are not all in Postgres yet, so `load_state` would miss them."""
        self._stopping = {p: t for p, t in self._stopping.items() if not t.done()}
        if self._undrained:
            if not await self._drained():
                return None
            self._undrained = False
        return set(self._stopping)

    async def _drained(self) -> bool:
        """Every record emitted so far is in Postgres (bounded wait: the writer stops on shutdown)."""
        try:
            ok = await asyncio.wait_for(self.writer.drain(), self.opts.lease_ttl_s / 2)
        except TimeoutError:
            return False
        return ok and not len(self.writer.spool)

    async def _own(self, own: Ownership, stop: asyncio.Event,
                   client_for: Callable[[str], httpx.AsyncClient]) -> None:
        """Heartbeat and balance the follow leases every ``lease_ttl_s / 5`` (see `connectors.ownership`)."""
        period = self.opts.lease_ttl_s / 5
        failing = False
        while not stop.is_set():
            wait = period
            try:
                hold_back = await self._hold_back()
                plan = await asyncio.to_thread(own.tick, set(self.following), self._beat_ok, hold_back)
                wait = period if plan.wake_in is None else plan.wake_in  # sooner when a member is about to expire
                if failing:
                    log.info("follow leases: Postgres answers again")
                failing = False
                await self._apply(plan, own, stop, client_for)
            except psycopg.Error as exc:
                if not failing:
                    first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
                    log.error("follow leases: cannot reach Postgres (%s); following stops if it lasts %.0f s",
                              first, self.opts.lease_ttl_s / 2)
                failing = True
            except Exception:  # a bug here must not end heartbeats for good (the watchdog would stop everything)
                log.exception("follow leases: tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def _apply(self, plan: Plan, own: Ownership, stop: asyncio.Event,
                     client_for: Callable[[str], httpx.AsyncClient]) -> None:
        lost = sorted(p for p in self.following if p not in plan.held)
        if lost:
            log.warning("follow lease lost for %s (broken, or expired and taken over): stopped following",
                        ", ".join(lost))
            await self._stop_following(lost)
        given: list[str] = []
        if plan.release:  # above our share: stop, land what was observed, then hand over
            await self._stop_following(plan.release)
            if await self._drained():
                given = await asyncio.to_thread(own.release, plan.release)
        started = 0
        replays, self._replays_seen = self._replays_seen, self.writer.replayed_batches
        if plan.start and (not self.writer.landed() or self.writer.replayed_batches != replays):
            # states are loaded from the warehouse: loaded while records still waited in the spool (or were being
            # replayed) they are stale, and a stale cursor turns a complete boot into a "count unknown" gap
            log.info("%d provider(s) wait for the spool to be replayed before their state is loaded", len(plan.start))
            plan.start = {}
        if not stop.is_set() and not self._beat_stale():  # a plan older than half a lease is not trusted
            for pid, state in plan.start.items():
                if pid not in self.following:
                    self.following[pid] = asyncio.ensure_future(
                        self.supervise(self.registry.get(pid), state, client_for(pid)))
                    started += 1
        if lost or given or started:
            log.info("following %d of %d provider(s): +%d, -%d handed over, -%d lost (%d connector(s) share the "
                     "fleet, share %d)", len(self.following), len(self.registry.providers), started, len(given),
                     len(lost), plan.members, plan.share)

    async def _watchdog(self) -> None:
        """Stop every follower when no heartbeat has reached Postgres for half a lease: our leases could expire
        and be taken by another connector, and two followers of one provider would double its rows."""
        while True:
            await asyncio.sleep(min(0.25, self.opts.lease_ttl_s / 20))
            self._loop_alive = time.monotonic()
            if self.following and self._beat_stale():
                log.error("no lease heartbeat reached Postgres for %.1f s: stopped following %d provider(s) so "
                          "another connector can take them over; resuming when Postgres answers",
                          time.monotonic() - self._last_beat, len(self.following))
                await self._stop_following(list(self.following))
