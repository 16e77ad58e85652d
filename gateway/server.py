"""The gateway's serving path: an aiohttp server in front of the fleet's OpenAI-compatible upstreams.

aiohttp serves and aiohttp calls the upstreams (picked by measuring, `bench/bench_gateway.py stacks`).

One request:

1. **Who** (`gateway.attribution`): the bearer key's owner, else ``X-Boo-Source``, else the User-Agent's client.
   A key's limits (`gateway.limits.KeyLimits`) refuse with 429 and ``Retry-After``.
2. **Where**: ``provider/model`` goes to that provider, a bare legacy id through the registry's one resolver
   (`core.providers.Registry.resolve`) to the default provider, ``auto:*`` through its policy
   (`gateway.ranking.rank` over the fleet facts the gateway re-reads every few seconds, the gateway's own
   in-flight counters and its cooldowns). A local-only policy never reaches a provider the facts say is not
   local, whatever the ranking says.
3. **Try candidates in order**: a connect error, a 5xx, a 429 or no response within the first-byte timeout
   puts the target in cooldown (`gateway.limits.Cooldowns`) and the next candidate is tried. The upstream's
   status and headers are passed on when the upstream sends them and the body chunk by chunk as it arrives:
   nothing is buffered, nothing compressed.
4. **After the first byte** there is no going back: an upstream failure ends an event stream with an explicit
   ``data: {"error": ...}`` event (the official clients raise it), and any other body by aborting the
   connection, so a cut reply never looks finished.
5. All candidates down: 503 naming why each was skipped or failed.
6. One `warehouse.records.GatewayRequest` per request goes to the shared write path (spooled while Postgres is
   away; serving never waits for it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web
from sqlalchemy import Engine

from core.providers import Provider, Registry
from gateway.attribution import Consumer, KeyBook, identify
from gateway.catalog import model_entries
from gateway.facts import FleetFacts, load_facts
from gateway.limits import Cooldowns, KeyLimits
from gateway.policies import PolicyWatcher
from gateway.ranking import DEFAULT_MAX_TOKENS, Need, rank
from gateway.upstream import upstream_session
from warehouse.records import GatewayRequest, Record

log = logging.getLogger(__name__)

ENDPOINTS: Mapping[str, tuple[str, str]] = {  # our path -> (endpoint name, path below the upstream's /v1 base)
    "/v1/chat/completions": ("chat", "/chat/completions"),
    "/v1/completions": ("completions", "/completions"),
    "/v1/embeddings": ("embeddings", "/embeddings"),
}
_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "date", "server",
                  "proxy-connection", "te", "trailer", "upgrade"})
_USAGE_RE = re.compile(rb'"usage"\s*:\s*\{')
_PROMPT_RE = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')
_COMPLETION_RE = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
_HEAD_KEEP = 4096
_TAIL_KEEP = 16384

Emit = Callable[[Sequence[Record]], Awaitable[None]]


@dataclass(frozen=True)
class GatewayOptions:
    replica: str
    connect_timeout_s: float = 3.0
    first_byte_timeout_s: float = 120.0
    cooldown_s: float = 30.0
    require_key: bool = False
    key_concurrency: int = 16
    key_rate_per_minute: float = 0.0
    facts_refresh_s: float = 5.0


@dataclass(frozen=True)
class Target:
    provider: Provider
    model_id: str

    @property
    def key(self) -> str:
        return f"{self.provider.id}/{self.model_id}"


@dataclass
class Plan:
    """Where a request may go, in order, and what was ruled out before trying (``(target, why)``)."""

    targets: list[Target]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    policy: str | None = None
    reasons: dict[str, str] = field(default_factory=dict)  # target key -> why it was chosen


class RequestError(Exception):
    def __init__(self, status: int, message: str, kind: str, headers: Mapping[str, str] | None = None,
                 extra: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})


def error_body(message: str, kind: str, code: int, extra: Mapping[str, Any] | None = None) -> bytes:
    err: dict[str, Any] = {"message": message, "type": kind, "code": code}
    err.update(extra or {})
    return json.dumps({"error": err}).encode()


def usage_of(head: bytes, tail: bytes) -> tuple[int | None, int | None]:
    """prompt/completion tokens from the last ``"usage": {...}`` object in the kept tail (else the head)."""
    for buf in (tail, head):
        starts = [m.start() for m in _USAGE_RE.finditer(buf)]
        if not starts:
            continue
        seg = buf[starts[-1]:starts[-1] + 2048]
        p, c = _PROMPT_RE.search(seg), _COMPLETION_RE.search(seg)
        return (int(p.group(1)) if p else None), (int(c.group(1)) if c else None)
    return None, None


class Gateway:
    """One replica. ``engine`` (Postgres) feeds the fleet facts and the model catalog; ``emit`` takes the records."""

    def __init__(self, registry: Registry, keys: KeyBook, policies: PolicyWatcher, engine: Engine | None,
                 emit: Emit, opts: GatewayOptions) -> None:
        self.registry = registry
        self.keys = keys
        self.policies = policies
        self.engine = engine
        self.emit = emit
        self.opts = opts
        self.limits = KeyLimits(opts.key_concurrency, opts.key_rate_per_minute)
        self.cooldowns = Cooldowns(opts.cooldown_s)
        self.inflight: dict[str, int] = {}
        self.facts = FleetFacts(at=datetime.now(UTC))
        self.catalog: list[dict[str, Any]] = []
        self.facts_error: str | None = None
        self._session: aiohttp.ClientSession | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.requests_served = 0

    # --- lifecycle -----------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/v1/models", self.handle_models)
        app.router.add_get("/health", self.handle_health)
        for path in ENDPOINTS:
            app.router.add_post(path, self.handle_inference)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        self._session = upstream_session()
        if self.engine is not None:
            await self.refresh()
            self._refresher = asyncio.create_task(self._refresh_forever())

    async def _stop(self, app: web.Application) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        if self._session is not None:
            await self._session.close()

    async def refresh(self) -> None:
        """Re-read the fleet facts and the model catalog (in a thread: never on the event loop)."""
        if self.engine is None:
            return
        engine = self.engine
        try:
            facts, catalog = await asyncio.to_thread(_read_fleet, engine)
        except Exception as exc:  # noqa: BLE001 - Postgres away: keep serving on the last facts
            msg = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
            if msg != self.facts_error:
                log.warning("gateway: fleet facts not refreshed, serving on the last ones: %s", msg)
            self.facts_error = msg
            return
        self.facts, self.catalog, self.facts_error = facts, catalog, None

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.opts.facts_refresh_s)
            await self.refresh()

    # --- plain endpoints -----------------------------------------------------------------------------------

    async def handle_health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "replica": self.opts.replica, "facts_error": self.facts_error,
                                  "policies_error": self.policies.error})

    async def handle_models(self, request: web.Request) -> web.Response:
        consumer, unknown = identify(self.keys, request.headers.get("Authorization"),
                                     request.headers.get("X-Boo-Source"), request.headers.get("User-Agent"))
        if self.opts.require_key and consumer.source != "key":
            return _error(401, "a known API key is required (Authorization: Bearer <key>)", "invalid_api_key")
        book = self.policies.current()
        pols = [(n, p.description) for n in book.names() if (p := book.get(n)) is not None]
        return web.json_response({"object": "list", "data": model_entries(self.catalog, pols)})

    # --- routing -------------------------------------------------------------------------------------------

    def plan(self, model: str, endpoint: str, body: Mapping[str, Any], body_len: int) -> Plan:
        if model.startswith("auto:"):
            book = self.policies.current()
            policy = book.get(model)
            if policy is None:
                raise RequestError(404, f"no routing policy {model!r} (known: {', '.join(book.names())})",
                                   "model_not_found")
            max_tokens = body.get("max_tokens") or body.get("max_completion_tokens") or DEFAULT_MAX_TOKENS
            need = Need(endpoint, max(1, body_len // 4), int(max_tokens) if isinstance(max_tokens, int) else
                        DEFAULT_MAX_TOKENS)
            ranking = rank(policy, need, self.facts, dict(self.inflight), self.cooldowns.active())
            plan = Plan([], list(ranking.skipped), policy=policy.name)
            for c in ranking.candidates:
                facts = self.facts.get(c.key)
                if policy.local_only and (facts is None or not facts.local):
                    plan.skipped.append((c.key, "not a local provider, and the policy is local-only"))
                    continue
                try:
                    provider = self.registry.get(c.provider_id)
                except KeyError:
                    plan.skipped.append((c.key, "provider not in this gateway's registry"))
                    continue
                plan.targets.append(Target(provider, c.model_id))
                plan.reasons[c.key] = f"{policy.name} score {c.score:.3f}: " + "; ".join(c.reasons)
            log.info("route %s: %s", policy.name, ", ".join(t.key for t in plan.targets) or "no candidate")
            return plan
        try:
            ref = self.registry.resolve(model)
        except ValueError as exc:
            raise RequestError(404, str(exc), "model_not_found") from None
        provider = self.registry.get(ref.provider_id)
        t = Target(provider, ref.model_id)
        how = "provider/model" if model.startswith(ref.provider_id + "/") else "bare id, default provider"
        return Plan([t], reasons={t.key: how})

    # --- the proxy -----------------------------------------------------------------------------------------

    async def handle_inference(self, request: web.Request) -> web.StreamResponse:
        t0 = time.perf_counter()
        started = datetime.now(UTC)
        endpoint, upstream_path = ENDPOINTS[request.path]
        consumer, unknown_key = identify(self.keys, request.headers.get("Authorization"),
                                         request.headers.get("X-Boo-Source"), request.headers.get("User-Agent"))
        rec: dict[str, Any] = {"request_id": uuid.uuid4(), "started_at": started, "replica": self.opts.replica,
                               "consumer": consumer.name, "consumer_source": consumer.source,
                               "requested_model": "", "endpoint": endpoint, "stream": False}
        if self.opts.require_key and consumer.source != "key":
            why = "unknown API key" if unknown_key else "a known API key is required (Authorization: Bearer <key>)"
            return await self._refuse(rec, t0, RequestError(401, why, "invalid_api_key"))
        limited = consumer.source == "key"
        if limited:
            assert consumer.key is not None
            ok, retry, why = self.limits.acquire(consumer.name, consumer.key.concurrency, consumer.key.rate_per_minute)
            if not ok:
                return await self._refuse(rec, t0, RequestError(429, f"{consumer.name}: {why}", "rate_limit_exceeded",
                                                                {"Retry-After": str(retry)}))
        try:
            return await self._serve(request, consumer, endpoint, upstream_path, rec, t0)
        finally:
            if limited:
                self.limits.release(consumer.name)

    async def _refuse(self, rec: dict[str, Any], t0: float, err: RequestError) -> web.Response:
        rec.update(status=err.status, error=err.message)
        await self._record(rec, t0)
        return _error(err.status, err.message, err.kind, err.headers, err.extra)

    async def _record(self, rec: dict[str, Any], t0: float) -> None:
        rec["total_ms"] = (time.perf_counter() - t0) * 1000
        self.requests_served += 1
        try:
            await self.emit([GatewayRequest(**rec)])
        except Exception:  # noqa: BLE001 - attribution must never break serving
            log.exception("gateway: could not hand the request record to the write path")

    async def _serve(self, request: web.Request, consumer: Consumer, endpoint: str, upstream_path: str,
                     rec: dict[str, Any], t0: float) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            return await self._refuse(rec, t0, RequestError(400, "the request body is not a JSON object",
                                                            "invalid_request_error"))
        model = body.get("model")
        if not isinstance(model, str) or not model.strip():
            return await self._refuse(rec, t0, RequestError(400, "'model' is required", "invalid_request_error"))
        rec["requested_model"] = model
        rec["stream"] = bool(body.get("stream"))
        try:
            plan = self.plan(model.strip(), endpoint, body, len(raw))
        except RequestError as err:
            return await self._refuse(rec, t0, err)
        rec["policy"] = plan.policy
        tried: list[dict[str, str]] = []
        for target in plan.targets:
            cooling = self.cooldowns.cooling(target.key)
            if cooling is not None:
                tried.append({"target": target.key, "why": cooling})
                continue
            payload = raw if target.model_id == model else json.dumps({**body, "model": target.model_id}).encode()
            rec.update(provider_id=target.provider.id, model_id=target.model_id, reason=plan.reasons.get(target.key),
                       fallbacks=tried)
            resp = await self._attempt(request, target, upstream_path, payload, rec, t0, tried)
            if resp is not None:
                return resp
        rec.update(provider_id=None, model_id=None, reason=None, fallbacks=tried)
        parts = [f"{f['target']}: {f['why']}" for f in tried] + [f"{k}: {why}" for k, why in plan.skipped]
        msg = f"no upstream could serve {model!r}: " + ("; ".join(parts) if parts else "no candidate")
        return await self._refuse(rec, t0, RequestError(
            503, msg, "upstream_unavailable", {"Retry-After": "1"},
            {"tried": tried, "skipped": [{"target": k, "why": w} for k, w in plan.skipped]}))

    async def _attempt(self, request: web.Request, target: Target, upstream_path: str, payload: bytes,
                       rec: dict[str, Any], t0: float, tried: list[dict[str, str]]) -> web.StreamResponse | None:
        """Serve from ``target``; None (with ``tried`` extended and the target cooling) to try the next one."""
        assert self._session is not None
        url = target.provider.spec.openai_base_url(target.provider.base_url) + upstream_path
        headers = {"Content-Type": "application/json", "Accept": request.headers.get("Accept", "*/*")}
        key = target.provider.api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.opts.connect_timeout_s,
                                        sock_read=self.opts.first_byte_timeout_s)
        self.inflight[target.key] = self.inflight.get(target.key, 0) + 1
        up: aiohttp.ClientResponse | None = None
        try:
            for again in (True, False):
                try:
                    up = await self._session.post(url, data=payload, headers=headers, timeout=timeout)
                    break
                except aiohttp.ServerDisconnectedError:
                    if not again:  # a pooled connection the upstream had closed: one fresh try
                        raise
            assert up is not None
        except (aiohttp.ClientConnectorError, aiohttp.ClientOSError) as exc:
            self._failed(target, tried, f"connect error: {_short(exc)}")
            return None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            self._failed(target, tried, f"no response within {self.opts.first_byte_timeout_s:g} s")
            return None
        except aiohttp.ClientError as exc:
            self._failed(target, tried, f"upstream error before the first byte: {_short(exc)}")
            return None
        finally:
            if up is None:
                self._dec(target.key)
        try:
            if up.status >= 500 or up.status == 429:
                snippet = (await _read_some(up)).decode("utf-8", "replace")
                # a 429 means busy, not broken: the target cools only for its Retry-After (1 s without one)
                cool = (_retry_after(up.headers.get("Retry-After")) or 1.0) if up.status == 429 else None
                up.release()
                self._failed(target, tried, f"HTTP {up.status}: {snippet}", cool)
                return None
            self.cooldowns.ok(target.key)
            return await self._relay(request, up, target, rec, t0)
        finally:
            up.release()
            self._dec(target.key)

    def _dec(self, key: str) -> None:
        n = self.inflight.get(key, 0) - 1
        if n > 0:
            self.inflight[key] = n
        else:
            self.inflight.pop(key, None)

    def _failed(self, target: Target, tried: list[dict[str, str]], why: str, cool_s: float | None = None) -> None:
        why = why.replace("\n", " ")[:300]
        tried.append({"target": target.key, "why": why})
        self.cooldowns.fail(target.key, why, cool_s)
        log.warning("gateway: %s failed (%s); next candidate", target.key, why)
        return None

    async def _relay(self, request: web.Request, up: aiohttp.ClientResponse, target: Target, rec: dict[str, Any],
                     t0: float) -> web.StreamResponse:
        out = web.StreamResponse(status=up.status, reason=up.reason)
        for k, v in up.headers.items():
            if k.lower() not in _HOP:
                out.headers.add(k, v)
        ctype = up.headers.get("Content-Type", "")
        sse = ctype.startswith("text/event-stream")
        if sse:
            out.headers["X-Accel-Buffering"] = "no"
        elif up.content_length is not None:
            out.content_length = up.content_length
        out.headers["X-Boo-Target"] = target.key
        out.headers["X-Boo-Request-Id"] = str(rec["request_id"])
        rec["status"] = up.status
        head = bytearray()
        tail = b""
        error: str | None = None
        try:
            await out.prepare(request)
            async for data in up.content.iter_any():
                if rec.get("ttft_ms") is None:
                    rec["ttft_ms"] = (time.perf_counter() - t0) * 1000
                if len(head) < _HEAD_KEEP:
                    head += data[:_HEAD_KEEP - len(head)]
                tail = (tail + data)[-_TAIL_KEEP:]
                await out.write(data)
            if up.content_length is not None and up.content.total_bytes < up.content_length:
                raise aiohttp.ClientPayloadError("upstream closed before the end of the body")
        except (ConnectionResetError, asyncio.CancelledError) as exc:
            rec.update(status=499, error="the client closed the connection")
            up.close()  # stop the upstream generating for nobody
            if isinstance(exc, asyncio.CancelledError):
                await self._finish(rec, t0, head, tail)
                raise
            await self._finish(rec, t0, head, tail)
            return out
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(exc, TimeoutError):
                error = f"upstream {target.key} sent nothing for {self.opts.first_byte_timeout_s:g} s mid-reply"
            elif isinstance(exc, aiohttp.ClientPayloadError):
                error = f"upstream {target.key} failed mid-reply: the connection closed before the reply was complete"
            else:
                error = f"upstream {target.key} failed mid-reply: {_short(exc)}"
            up.close()
            self.cooldowns.fail(target.key, error)
        if error is not None:
            rec["error"] = error
            log.warning("gateway: %s", error)
            if sse:
                with contextlib.suppress(ConnectionResetError):
                    await out.write(b"data: " + error_body(error, "upstream_error", 502) + b"\n\n")
                    await out.write_eof()
            else:  # no way to say it inside a plain body: cut the connection, so the reply cannot look complete
                if request.transport is not None:
                    request.transport.abort()
            await self._finish(rec, t0, head, tail)
            return out
        with contextlib.suppress(ConnectionResetError):
            await out.write_eof()
        await self._finish(rec, t0, head, tail)
        return out

    async def _finish(self, rec: dict[str, Any], t0: float, head: bytes | bytearray, tail: bytes) -> None:
        rec["prompt_tokens"], rec["completion_tokens"] = usage_of(bytes(head), tail)
        await self._record(rec, t0)


def _read_fleet(engine: Engine) -> tuple[FleetFacts, list[dict[str, Any]]]:
    from warehouse.queries.models import model_catalog

    facts = load_facts(engine, datetime.now(UTC))
    return facts, list(model_catalog(engine).iter_rows(named=True))


async def _read_some(up: aiohttp.ClientResponse, limit: int = 300) -> bytes:
    with contextlib.suppress(aiohttp.ClientError, TimeoutError):
        return (await up.content.read(limit)).strip()
    return b""


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}"[:200] if text else type(exc).__name__


def _error(status: int, message: str, kind: str, headers: Mapping[str, str] | None = None,
           extra: Mapping[str, Any] | None = None) -> web.Response:
    return web.Response(status=status, body=error_body(message, kind, status, extra),
                        content_type="application/json", headers=dict(headers or {}))


async def serve(gateway: Gateway, host: str, port: int, stop: asyncio.Event,
                started: Callable[[int], None] | None = None) -> None:
    """Run ``gateway`` on host:port until ``stop`` is set; ``started(port)`` once it listens (port 0: any free)."""
    runner = web.AppRunner(gateway.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=4096, reuse_address=True)
    await site.start()
    sockets = getattr(site._server, "sockets", None)  # noqa: SLF001 - the bound port when asked for port 0
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    if started is not None:
        started(bound)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
