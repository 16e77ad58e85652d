"""The HTTP face of a simulated llama-swap instance: ``create_instance_app(sim)`` builds its Starlette app.

Routes, status codes, headers and bodies follow docs/llama-swap-api.md (after v250): auth and proxy-log
middleware, ``/api/events`` SSE, ``/running``, ``/v1/models``, activity/stats/captures, in-flight cancel,
performance/Prometheus/hardware, version, unload, health, ``/upstream/<model>/...``, the inference routes and
the MCP endpoint ``/api/mcp`` (§16, newer than the buildable snapshot; ``demo.mcp``).
The state behind them lives in ``demo.simulator``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from demo.activity import QueryError
from demo.mcp import handle_mcp
from demo.simulator import (
    IGNORED_UPSTREAM,
    INFERENCE_PATHS,
    PUBLIC_PATHS,
    UNLOGGED_PREFIXES,
    GroupSpec,
    InferenceCall,
    InferenceReply,
    ModelSpec,
    SimulatedInstance,
)
from demo.telemetry import render_prometheus
from demo.wire import (
    JSON_CT,
    canonical_headers,
    error_response,
    go_json_response,
    go_redirect,
    parse_rfc3339_ns,
)

__all__ = ["GroupSpec", "InferenceCall", "InferenceReply", "ModelSpec", "SimulatedInstance", "create_instance_app"]


class _Gate:
    """Outermost middleware: API-key check (§0.2) and one proxy-log line per request (§0.5)."""

    def __init__(self, app: ASGIApp, sim: SimulatedInstance) -> None:
        self.app, self.sim = app, sim

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, t0, status, size = scope["path"], time.monotonic(), 0, 0

        async def counting_send(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        headers = Headers(scope=scope)
        try:
            if self.sim.api_keys and path not in PUBLIC_PATHS and scope["method"] != "OPTIONS" \
                    and not self.sim.check_key(headers):
                await error_response(401, "unauthorized: invalid or missing API key", headers.get("accept", ""),
                                     headers={"WWW-Authenticate": 'Basic realm="llama-swap"'})(scope, receive, counting_send)
            else:
                await self.app(scope, receive, counting_send)
        finally:
            if not path.startswith(UNLOGGED_PREFIXES):
                client = scope.get("client") or ("", 0)
                self.sim.log_request(client[0], scope["method"], path, status, size,
                                     headers.get("user-agent", ""), time.monotonic() - t0)


class _EventStream(Response):
    """``GET /api/events``: queued frames until the client leaves or the instance stops."""

    def __init__(self, sim: SimulatedInstance) -> None:
        self.sim, self.status_code, self.background = sim, 200, None
        self.raw_headers = [(k.encode(), v.encode()) for k, v in (
            ("content-type", "text/event-stream"), ("cache-control", "no-cache"), ("connection", "keep-alive"),
            ("x-content-type-options", "nosniff"), ("x-accel-buffering", "no"))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        q = self.sim.subscribe()

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.ensure_future(disconnected())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            while True:
                getter = asyncio.ensure_future(q.get())
                await asyncio.wait([getter, gone], return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    return
                frames = [getter.result()]
                while not q.empty() and frames[-1] is not None:
                    frames.append(q.get_nowait())
                data = b"".join(f for f in frames if f is not None)
                if data:
                    await send({"type": "http.response.body", "body": data, "more_body": True})
                if frames[-1] is None:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
        finally:
            self.sim.unsubscribe(q)
            gone.cancel()


class _LogStream(Response):
    """``GET /logs/stream[/<id>]``: the retained history, then live chunks, until the client leaves. Like Go's
    handler it writes nothing at all (not even the status line) before the first byte of log text, and drops
    chunks a slow reader has not taken (10-chunk buffer). Per-model logs are not simulated: always empty."""

    def __init__(self, sim: SimulatedInstance, sources: tuple[str, ...], history: str) -> None:
        self.sim, self.sources, self.history, self.background = sim, sources, history, None
        self.status_code = 200
        self.raw_headers = [(k.encode(), v.encode()) for k, v in (
            ("content-type", "text/plain"), ("x-content-type-options", "nosniff"), ("x-accel-buffering", "no"))]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        q: asyncio.Queue[str] = asyncio.Queue(maxsize=10)
        started = False

        def on_log(source: str, text: str) -> None:
            if source in self.sources and not q.full():
                q.put_nowait(text)

        async def write(text: str) -> None:
            nonlocal started
            if not started:
                await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
                started = True
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        self.sim.log_listeners.add(on_log)
        gone = asyncio.ensure_future(disconnected())
        try:
            if self.history:
                await write(self.history)
            while True:
                getter = asyncio.ensure_future(q.get())
                await asyncio.wait([getter, gone], return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                await write(getter.result())
            if started:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            self.sim.log_listeners.discard(on_log)
            gone.cancel()


class _ReplyResponse(StreamingResponse):
    """Streams an ``InferenceReply`` and always closes its body, so the activity row gets written."""

    def __init__(self, reply: InferenceReply) -> None:
        super().__init__(reply.body, reply.status, reply.headers)
        self.reply = reply

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            body = self.reply.body
            if isinstance(body, AsyncGenerator):
                await body.aclose()


def remote_ip(request: Request) -> str:
    forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
    return forwarded or request.headers.get("x-real-ip", "") or (request.client.host if request.client else "")


def create_instance_app(sim: SimulatedInstance) -> Starlette:
    """The llama-swap HTTP API of ``sim`` (its lifespan starts/stops ``sim`` when served on its own)."""

    def err(request: Request, status: int, message: str) -> Response:
        return error_response(status, message, request.headers.get("accept", ""))

    async def events(request: Request) -> Response:
        return _EventStream(sim)

    async def running(request: Request) -> Response:
        rows = [{"model": m.spec.id, "state": m.state,
                 "cmd": f"llama-server --port {m.port} -m /models/{m.spec.id}.gguf -ngl 99",
                 "proxy": f"http://localhost:{m.port}", "ttl": m.spec.ttl, "name": m.spec.name,
                 "description": m.spec.description}
                for m in sim.models.values() if m.state != "stopped"]
        return go_json_response({"running": rows})

    async def list_models(request: Request) -> Response:
        data = []
        for m in sim.models.values():
            s = m.spec
            if s.unlisted:
                continue
            rec: dict[str, Any] = {"id": s.id, "object": "model", "created": int(time.time()), "owned_by": "llama-swap"}
            rec |= {k: v for k, v in (("name", s.name), ("description", s.description)) if v}
            if s.capabilities:
                vision = "vision" in s.capabilities
                rec["architecture"] = {"input_modalities": ["text", "image"] if vision else ["text"],
                                       "output_modalities": ["text"],
                                       "modality": "text+image->text" if vision else "text->text"}
                rec["capabilities"] = {c: True for c in s.capabilities}
                if "function_calling" in s.capabilities:
                    rec["supported_parameters"] = ["tools", "tool_choice"]
            if s.context_length:
                rec["context_length"] = s.context_length
            llamaswap: dict[str, Any] = {"type": "model"} | ({"aliases": list(s.aliases)} if s.aliases else {})
            rec["meta"] = ({"n_ctx": s.context_length} if s.context_length else {}) | {"llamaswap": llamaswap}
            rec["status"] = {"value": "unloaded" if m.state == "stopped" else "loaded"}
            data.append(rec)
        origin = request.headers.get("origin")
        return go_json_response({"object": "list", "data": data},
                                headers={"Access-Control-Allow-Origin": origin} if origin else None)

    async def activity(request: Request) -> Response:
        params = {k: v for k, v in request.query_params.items() if k != "model"}
        try:
            rows, meta = sim.activity.query(params, request.query_params.getlist("model"))
        except QueryError as exc:
            return err(request, 400, str(exc))
        return go_json_response({"data": [sim.activity_json(r) for r in rows], **meta})

    async def stats(request: Request) -> Response:
        return go_json_response(sim.activity.stats(request.query_params.get("model") or None))

    async def capture(request: Request) -> Response:
        try:
            found_id = int(request.path_params["id"])
            found = sim.captures.get(found_id)
        except ValueError:
            return err(request, 400, "invalid capture ID")
        return go_json_response(found.to_json(found_id)) if found else err(request, 404, "capture not found")

    async def cancel(request: Request) -> Response:
        flight = sim.inflight.get(request.path_params["id"])
        if flight is None:
            return err(request, 404, "inflight request not found")
        flight.cancel.set()
        return go_json_response({"msg": "ok"})

    async def performance(request: Request) -> Response:
        if sim.perf_every_s <= 0:
            return go_json_response({"enabled": False}, 503)
        after = request.query_params.get("after")
        try:
            cursor = -1 if after is None else parse_rfc3339_ns(after)
        except ValueError:
            return err(request, 400, "invalid 'after' timestamp, use RFC3339 format")
        parts = []
        for ring in (sim.sys_ring, sim.gpu_ring):
            items = [text for ns, text in ring if ns > cursor]
            parts.append("[" + ",".join(items) + "]" if items or after is not None else "null")
        body = f'{{"enabled":true,"sys_stats":{parts[0]},"gpu_stats":{parts[1]}}}'
        return Response(body, media_type=JSON_CT)

    async def metrics(request: Request) -> Response:
        if sim.perf_every_s <= 0:
            return PlainTextResponse("# performance monitoring is disabled\n", 503)
        text = render_prometheus(sim.latest_sys, sim.latest_gpu)
        return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def hardware(request: Request) -> Response:
        return go_json_response(sim.telemetry.hardware(sim.captured_at, sim.version))

    async def version(request: Request) -> Response:
        # "simulated": a key real llama-swap never sends; BooControl labels the provider and its runs by it
        return go_json_response({"version": sim.version, "commit": sim.commit, "build_date": sim.build_date,
                                 "simulated": True})

    async def unload_all(request: Request) -> Response:
        await asyncio.gather(*[t for t in (sim.unload(m) for m in sim.models.values()) if t is not None])
        if request.method == "GET":
            return PlainTextResponse("OK")
        return go_json_response({"msg": "ok"})

    async def unload_one(request: Request) -> Response:
        m = sim.resolve(request.path_params["model"])
        if m is None:
            return err(request, 404, "model not found")
        task = sim.unload(m)
        if task is not None:
            await task
        return PlainTextResponse("OK")

    async def profiles(request: Request) -> Response:
        return go_json_response({"active": None, "profiles": []})

    async def logs(request: Request) -> Response:
        return PlainTextResponse(sim.logs["proxy"])

    async def log_stream(request: Request) -> Response:
        log_id = request.path_params.get("log_id", "")
        history = "" if "no-history" in request.query_params else None
        sources: tuple[str, ...]
        if log_id in ("", "proxy", "upstream"):
            sources = ("proxy", "upstream") if not log_id else (log_id,)
            text = sim.logs["proxy" if not log_id else log_id]
        elif sim.resolve(log_id) is not None:
            sources, text = (), ""  # per-model logs are not simulated
        else:
            return err(request, 400, "invalid logger. Use 'proxy', 'upstream' or a model's ID")
        return _LogStream(sim, sources, text if history is None else history)

    async def mcp(request: Request) -> Response:
        return await handle_mcp(request, sim)

    async def health(request: Request) -> Response:
        return PlainTextResponse("OK")

    async def inference(request: Request) -> Response:
        call = InferenceCall(path=request.url.path, body=await request.body(), query=request.url.query,
                             headers=_request_headers(request),
                             remote_ip=remote_ip(request), fault=request.headers.get("x-demo-fault"))
        return _ReplyResponse(await sim.infer(call))

    async def upstream(request: Request) -> Response:
        rest = request.path_params["rest"]
        names = sorted([*sim.models, *sim.aliases], key=len, reverse=True)
        name = next((n for n in names if rest == n or rest.startswith(n + "/")), None)
        m = sim.resolve(name) if name else None
        if m is None or name is None:
            return err(request, 404, "model not found")
        sub = rest[len(name):]
        if not sub:
            code = 301 if request.method in ("GET", "HEAD") else 308
            return go_redirect(f"/upstream/{rest}/", code, request.method)
        if request.method == "POST" and sub in INFERENCE_PATHS:
            call = InferenceCall(path=sub, body=await request.body(), model=m.spec.id, query=request.url.query,
                                 headers=_request_headers(request),
                                 remote_ip=remote_ip(request), fault=request.headers.get("x-demo-fault"))
            return _ReplyResponse(await sim.infer(call))
        if IGNORED_UPSTREAM.search(sub) and m.state != "ready":
            return err(request, 409, "model is not ready")
        error = await sim.acquire(m, asyncio.Event())
        if error:
            return err(request, 500, error)
        sim.release(m)
        if sub == "/" and m.spec.respond is not None:  # simple-responder echoes the request line (recorded)
            return Response(b"GET /", headers={"content-type": "text/plain"})
        if sub == "/":
            return Response(f"<!doctype html><title>llama.cpp - {m.spec.id}</title>", media_type="text/html")
        if sub == "/health":
            return go_json_response({"status": "ok"})
        return PlainTextResponse("File Not Found", 404)

    async def redirect(request: Request) -> Response:
        return go_redirect("/ui/models" if request.url.path == "/upstream" else "/ui", 302)

    async def not_found(request: Request, exc: Exception) -> Response:
        return PlainTextResponse("404 page not found", 404)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sim.start()
        yield
        await sim.stop()

    routes = [Route(path, endpoint, methods=["GET"]) for path, endpoint in (
        ("/api/events", events), ("/running", running), ("/v1/models", list_models), ("/models", list_models),
        ("/api/metrics/activity", activity), ("/api/metrics/stats", stats), ("/api/captures/{id}", capture),
        ("/api/performance", performance), ("/metrics", metrics), ("/api/hardware", hardware),
        ("/api/version", version), ("/unload", unload_all), ("/api/profiles", profiles), ("/logs", logs),
        ("/logs/stream", log_stream), ("/logs/stream/{log_id:path}", log_stream),
        ("/health", health), ("/wol-health", health), ("/upstream", redirect), ("/", redirect))]
    routes += [Route(path, endpoint, methods=["POST"]) for path, endpoint in (
        ("/api/inflight/{id}/cancel", cancel), ("/api/models/unload", unload_all),
        ("/api/models/unload/{model:path}", unload_one), *((p, inference) for p in INFERENCE_PATHS))]
    routes.append(Route("/api/mcp", mcp, methods=["GET", "POST", "DELETE", "PUT", "PATCH"]))  # §16, demo.mcp
    routes.append(Route("/upstream/{rest:path}", upstream, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"]))
    return Starlette(routes=routes, middleware=[Middleware(_Gate, sim=sim)],
                     exception_handlers={404: not_found}, lifespan=lifespan)


def _request_headers(request: Request) -> dict[str, str]:
    """Header map as Go's server exposes it: canonical keys, first values, no ``Host``."""
    return {k: v for k, v in canonical_headers(request.headers.items()).items() if k != "Host"}
