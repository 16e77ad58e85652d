"""The simulation core of one llama-swap instance: models, scheduler, inference, activity, captures, events.

What is simulated: model processes with the states ``stopped``/``starting``/``ready``/``stopping``, group swap
and exclusivity rules, TTL unloads, load times, start failures and crashes; a llama.cpp-like (or usage-only,
vLLM-like) upstream whose response bodies are parsed into activity rows exactly like llama-swap does; the
in-flight tracker, captures, proxy/upstream logs, the ``/api/events`` fan-out and host telemetry.

Every inference request, whether it arrives over HTTP (``demo.instance``) or from ``demo.traffic``, runs through
``SimulatedInstance.infer``. ``InferenceCall.fault`` (HTTP: the demo-only header ``X-Demo-Fault``) selects a
failure path: ``error`` (upstream 500), ``crash`` (process dies, 502) or ``start-fail`` (load fails, 500).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import json
import logging
import math
import os
import random
import re
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

from demo.activity import TOKEN_FIELDS, ActivityStore, Tokens, parse_tokens
from demo.telemetry import GpuLoad, HostSpec, Telemetry
from demo.wire import (
    UPSTREAM_JSON_CT,
    canonical_header,
    canonical_headers,
    error_response,
    format_rfc3339,
    go_json,
    sse_frame,
)

log = logging.getLogger(__name__)

VERSION, COMMIT, BUILD_DATE = "v250-5-g0bdb372", "0bdb372", "2026-08-22T16:29:57Z"
GRANTED = {"fifo_priority": "0"}  # shared, never mutated: activity metadata of a granted local request
UI_CONFIG = {"activity": {"session_id": ["X-Session-ID", "X-Litellm-Session-Id"]}}
LOG_CAP = 100 * 1024
INFERENCE_PATHS = ("/v1/chat/completions", "/v1/completions")
PUBLIC_PATHS = frozenset({"/health", "/wol-health", "/favicon.ico", "/", "/upstream"})
UNLOGGED_PREFIXES = ("/wol-health", "/api/performance", "/metrics")
IGNORED_UPSTREAM = re.compile(r"\.(js|json|css|png|gif|jpg|jpeg|ico|txt)$")
WORDS = ("the model answers with a short and mostly plausible sentence about tokens GPUs latency and the "
         "weather in a city that may or may not exist while the fleet keeps swapping").split()


@dataclass(frozen=True)
class ModelSpec:
    """A configured model. ``group`` names a ``GroupSpec``; unknown groups behave like ``(default)``."""

    id: str
    name: str = ""
    description: str = ""
    group: str = "(default)"
    load_s: float = 3.0
    gen_tps: float = 60.0
    prompt_tps: float = 1500.0
    ttl: int = 0
    unlisted: bool = False
    aliases: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()  # e.g. ("vision", "function_calling")
    context_length: int | None = None
    backend: Literal["llama.cpp", "openai"] = "llama.cpp"
    vram_mb: int = 6000
    gpu: int = 0
    respond: str | None = None  # the upstream is llama-swap's test server simple-responder answering this text


@dataclass(frozen=True)
class GroupSpec:
    id: str
    swap: bool = True
    exclusive: bool = True


@dataclass
class InferenceCall:
    """One inference request as the proxy sees it (headers: canonical key -> first value, not redacted)."""

    path: str
    body: bytes
    headers: dict[str, str]
    remote_ip: str = "127.0.0.1"
    method: str = "POST"
    model: str | None = None  # set for /upstream/<model>/<route>, else read from the JSON body
    fault: str | None = None  # demo-only: "error" | "crash" | "start-fail"
    query: str = ""  # the raw query string (simple-responder reads ``stream`` and ``wait`` there)


@dataclass
class InferenceReply:
    status: int
    headers: dict[str, str]
    body: AsyncIterator[bytes]


class _Cancelled(Exception):
    pass


@dataclass
class _Load:
    done: asyncio.Event = field(default_factory=asyncio.Event)
    error: str | None = None


@dataclass
class _Model:
    spec: ModelSpec
    port: int
    state: str = "stopped"
    active: int = 0  # requests holding the process
    waiting: int = 0  # requests waiting for it to become ready
    admitted: int = 0  # for the concurrency limit
    cut: asyncio.Event = field(default_factory=asyncio.Event)  # set when this process life ends
    load: _Load | None = None
    stop_task: asyncio.Task[None] | None = None
    ttl_timer: asyncio.TimerHandle | None = None
    last_prompt: str = ""
    retired: bool = False  # belongs to the server a config reload replaced


@dataclass
class _InFlight:
    id: str
    timestamp: str
    model: str
    req_path: str
    method: str
    req_headers: dict[str, str]
    remote_ip: str
    started: float = field(default_factory=time.monotonic)
    resp_headers: dict[str, str] = field(default_factory=dict)
    resp_bytes: int = 0
    published: float = 0.0
    cancel: asyncio.Event = field(default_factory=asyncio.Event)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "timestamp": self.timestamp, "model": self.model, "req_path": self.req_path,
                "method": self.method, "req_headers": self.req_headers, "remote_ip": self.remote_ip,
                "resp_headers": self.resp_headers, "resp_bytes": self.resp_bytes,
                "elapsed_ms": int((time.monotonic() - self.started) * 1000)}


@dataclass
class _Capture:
    """One capture, bodies zlib-compressed; ``size`` counts compressed bytes like llama-swap's budget."""

    req_path: str
    req_headers: dict[str, str]
    req_body: bytes | None
    resp_headers: dict[str, str] | None
    resp_body: bytes | None

    @property
    def size(self) -> int:
        return len(self.req_body or b"") + len(self.resp_body or b"")

    def to_json(self, capture_id: int) -> dict[str, Any]:
        def unpack(body: bytes | None) -> str | None:
            return base64.b64encode(zlib.decompress(body)).decode() if body is not None else None

        return {"id": capture_id, "req_path": self.req_path, "req_headers": self.req_headers,
                "req_body": unpack(self.req_body), "resp_headers": self.resp_headers, "resp_body": unpack(self.resp_body)}


@dataclass
class _Outcome:
    """Everything one inference request accumulates; read by the ``finally`` that records it."""

    accept: str
    model: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    error_msg: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    record: bool = True
    m: _Model | None = None
    flight: _InFlight | None = None
    admitted: bool = False
    held: bool = False
    plan: _Plan | None = None
    cut: asyncio.Event = field(default_factory=asyncio.Event)


async def _wait_any(events: Sequence[asyncio.Event], timeout: float | None = None) -> bool:
    """Wait until one event is set (True) or the timeout passes (False)."""
    if any(e.is_set() for e in events):
        return True
    waiters = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for w in waiters:
            w.cancel()


_GO_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_GO_UNIT_S = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text: str) -> float:
    """Seconds of a Go ``time.ParseDuration`` string (``5s``, ``1m30s``, ``500ms``); ValueError if invalid."""
    parts = _GO_DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        raise ValueError(f"invalid duration {text!r}")
    return sum(float(n) * _GO_UNIT_S[u] for n, u in parts)


def _prompt_text(req: dict[str, Any], chat: bool) -> str:
    if not chat:
        prompt = req.get("prompt", "")
        return prompt if isinstance(prompt, str) else json.dumps(prompt)
    text = ""
    for msg in req.get("messages") or []:
        content = msg.get("content", "") if isinstance(msg, dict) else ""
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text += f"<|im_start|>{msg.get('role', 'user') if isinstance(msg, dict) else 'user'}\n{content}<|im_end|>\n"
    return text + "<|im_start|>assistant\n"


def _sse(doc: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(doc).encode() + b"\n\n"


@dataclass
class _Plan:
    """The simulated upstream's answer: llama-server (``timings`` in the last chunk) or a usage-only server."""

    model: str
    chat: bool
    llama: bool
    prompt_total: int
    cache_n: int
    n_out: int
    prompt_tps: float
    gen_tps: float
    finish: str
    words: list[str]
    include_usage: bool
    created: int = field(default_factory=lambda: int(time.time()))
    cid: str = field(default_factory=lambda: "chatcmpl-" + os.urandom(12).hex())

    @property
    def prompt_n(self) -> int:
        return self.prompt_total - self.cache_n

    @property
    def prompt_ms(self) -> float:
        return self.prompt_n / self.prompt_tps * 1000

    @property
    def predicted_ms(self) -> float:
        return self.n_out / self.gen_tps * 1000

    def _usage(self) -> dict[str, Any]:
        usage = {"completion_tokens": self.n_out, "prompt_tokens": self.prompt_total,
                 "total_tokens": self.prompt_total + self.n_out}
        return usage if self.llama else usage | {"prompt_tokens_details": {"cached_tokens": self.cache_n}}

    def _doc(self, text: str, finish: str | None, stream: bool, tail: bool = False) -> dict[str, Any]:
        if not self.chat:
            choice: dict[str, Any] = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        elif stream:
            choice = {"finish_reason": finish, "index": 0, "delta": {"content": text} if text else {}}
        else:
            choice = {"finish_reason": finish, "index": 0, "message": {"role": "assistant", "content": text}}
        kind = "chat.completion" + (".chunk" if stream else "") if self.chat else "text_completion"
        doc = {"choices": [choice], "created": self.created, "id": self.cid, "model": self.model,
               "system_fingerprint": "b6200-demo", "object": kind}
        if tail and (self.llama or not stream):
            doc["usage"] = self._usage()
        if tail and self.llama:
            doc["timings"] = {
                "cache_n": self.cache_n, "prompt_n": self.prompt_n, "prompt_ms": self.prompt_ms,
                "prompt_per_token_ms": 1000 / self.prompt_tps, "prompt_per_second": self.prompt_tps,
                "predicted_n": self.n_out, "predicted_ms": self.predicted_ms,
                "predicted_per_token_ms": 1000 / self.gen_tps, "predicted_per_second": self.gen_tps}
        return doc

    def chunks(self, start: int, end: int) -> bytes:
        return b"".join(_sse(self._doc((" " if i else "") + self.words[i], None, True)) for i in range(start, end))

    def final_chunks(self) -> bytes:
        body = _sse(self._doc("", self.finish, True, tail=True))
        if not self.llama and self.include_usage:  # vLLM sends usage only when asked, in an extra chunk
            body += _sse(self._doc("", None, True) | {"choices": [], "usage": self._usage()})
        return body + b"data: [DONE]\n\n"

    def whole(self) -> bytes:
        return json.dumps(self._doc(" ".join(self.words), self.finish, False, tail=True)).encode()


class SimulatedInstance:
    """State of one simulated llama-swap process. Call ``start()`` inside the running loop, ``stop()`` at the end."""

    def __init__(
        self,
        models: Sequence[ModelSpec],
        groups: Sequence[GroupSpec] = (),
        *,
        seed: int = 0,
        host: HostSpec | None = None,
        api_keys: Sequence[str] = (),
        metrics_max_in_memory: int = 1000,
        capture_buffer_mb: float = 5.0,
        perf_every_s: float = 5.0,
        utc_offset_s: int | None = None,
        version: str = VERSION,
        commit: str = COMMIT,
        build_date: str = BUILD_DATE,
        jitter: float = 0.1,
        unload_s: float = 0.3,
        load_scale: float = 1.0,
        concurrency_limit: int = 10,
        start_port: int = 5800,
        store_path: str | Path | None = None,
        capture_delay_s: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self._configure_models(models, groups, start_port)
        self.host = host or HostSpec()
        self.telemetry = Telemetry(self.host, random.Random(seed + 1))
        self.api_keys = tuple(api_keys)
        self.store_path = str(store_path) if store_path else None
        self.activity = ActivityStore(metrics_max_in_memory, self.store_path)
        self.capture_budget = int(capture_buffer_mb * 1024 * 1024)
        self.capture_delay_s = capture_delay_s  # row stored (and visible to queries) this long before its capture
        self.captures: OrderedDict[int, _Capture] = OrderedDict()
        self.capture_bytes = 0
        self._configure_perf(perf_every_s)
        self.latest_sys: dict[str, Any] | None = None
        self.latest_gpu: list[dict[str, Any]] = []
        local = datetime.now().astimezone().utcoffset()
        self.utc_offset_s = utc_offset_s if utc_offset_s is not None else int(local.total_seconds() if local else 0)
        self.version, self.commit, self.build_date = version, commit, build_date
        self.jitter, self.unload_s, self.concurrency_limit = jitter, unload_s, concurrency_limit
        self.load_scale = load_scale  # multiplies every model's load time (tests, quick demos)
        self.boot_ns = time.time_ns()
        self.captured_at = format_rfc3339(self.boot_ns, 0)
        self.logs = {"proxy": "", "upstream": ""}
        self.log_listeners: set[Callable[[str, str], None]] = set()
        self.inflight: dict[str, _InFlight] = {}
        self.next_inflight = 1
        self.traffic_bytes = 0
        self._subs: set[asyncio.Queue[bytes | None]] = set()
        self._changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._perf_task: asyncio.Task[None] | None = None
        self._started = False
        # the parsed config file (demo.single sets it); None: /api/mcp derives one from the specs (demo.mcp)
        self.config_doc: dict[str, Any] | None = None

    def _configure_models(self, models: Sequence[ModelSpec], groups: Sequence[GroupSpec], start_port: int) -> None:
        self.groups = {g.id: g for g in groups}
        ordered = sorted(models, key=lambda m: m.id)
        self.models = {m.id: _Model(m, start_port + i) for i, m in enumerate(ordered)}
        self.aliases = {a: m.id for m in ordered for a in m.aliases}

    def _configure_perf(self, perf_every_s: float) -> None:
        self.perf_every_s = perf_every_s
        ring = max(1, int(3600 / perf_every_s)) if perf_every_s > 0 else 1
        self.sys_ring: deque[tuple[int, str]] = deque(maxlen=ring)  # (unix ns, Go JSON) - compact for 500 hosts
        self.gpu_ring: deque[tuple[int, str]] = deque(maxlen=ring)

    # ---- lifecycle, logs and events -------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self.log_proxy(f"[INFO] llama-swap listening ({self.version}, simulated)\n")
        self._start_perf()

    def _start_perf(self) -> None:
        if self._perf_task is not None:
            self._perf_task.cancel()
            self._perf_task = None
        if self.perf_every_s > 0:
            self._perf_task = self.spawn(self._perf_loop())

    def close_streams(self) -> None:
        """End every ``/api/events`` stream (shutdown and config reload)."""
        for q in list(self._subs):
            while q.full():
                q.get_nowait()
            q.put_nowait(None)
        self._subs.clear()

    async def reload(
        self,
        models: Sequence[ModelSpec],
        groups: Sequence[GroupSpec] = (),
        *,
        api_keys: Sequence[str] = (),
        metrics_max_in_memory: int = 1000,
        capture_buffer_mb: float = 5.0,
        perf_every_s: float = 5.0,
        start_port: int = 5800,
        store_path: str | Path | None = None,
    ) -> None:
        """A config reload as llama-swap does it (SIGHUP / ``-watch-config``): a new server takes over at once
        (every model ``stopped``, in-flight ids from 1, no captures), the old one's models are stopped and its
        event streams closed. Kept: the boot marker (``captured_at``), proxy/upstream logs, and the activity
        store unless ``store_path`` changed. The performance buffers are cleared only if their interval changed.
        About 3 s later a ``modelStatus`` message goes to the (new) subscribers."""
        self.log_proxy("[INFO] reloading configuration\n")
        old = list(self.models.values())
        self._configure_models(models, groups, start_port)
        self.api_keys = tuple(api_keys)
        new_path = str(store_path) if store_path else None
        if new_path != self.store_path:
            self.store_path, self.activity = new_path, ActivityStore(metrics_max_in_memory, new_path)
        self.activity.max_rows = metrics_max_in_memory
        self.capture_budget = int(capture_buffer_mb * 1024 * 1024)
        self.captures = OrderedDict()
        self.capture_bytes = 0
        self.inflight = {}
        self.next_inflight = 1
        if perf_every_s != self.perf_every_s:
            self._configure_perf(perf_every_s)
            self._start_perf()
        for m in old:  # the old server's shutdown: its processes stop, its requests are cut
            if m.ttl_timer:
                m.ttl_timer.cancel()
            if m.load and not m.load.done.is_set():
                m.load.error = f"model {m.spec.id} was unloaded while starting"
                m.load.done.set()
            m.cut.set()
            if m.state != "stopped":
                self.log_proxy(f"[INFO] <{m.spec.id}> Stopping process, sending SIGTERM\n")
            m.state, m.retired = "stopped", True  # not published: nobody sees the old server's models any more
        self.close_streams()
        self._bump()
        self.log_proxy("[INFO] configuration reloaded\n")

        async def late_status() -> None:
            await asyncio.sleep(3)
            self.publish("modelStatus", self.model_status())

        self.spawn(late_status())

    async def stop(self) -> None:
        """Close event streams and cancel background work (models are left as they are)."""
        self.close_streams()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for m in self.models.values():
            if m.ttl_timer:
                m.ttl_timer.cancel()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def now(self, fraction: bool = True, ns: int | None = None) -> str:
        return format_rfc3339(time.time_ns() if ns is None else ns, self.utc_offset_s, fraction)

    def publish(self, event_type: str, data: Any) -> None:
        if not self._subs:
            return
        frame = sse_frame(event_type, data)
        for q in self._subs:
            try:
                q.put_nowait(frame)
            except asyncio.QueueFull:
                log.warning("dropping %s event for a slow /api/events subscriber", event_type)

    def subscribe(self) -> asyncio.Queue[bytes | None]:
        q: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=1024)
        self._subs.add(q)
        for source in ("proxy", "upstream"):
            q.put_nowait(sse_frame("logData", {"source": source, "data": self.logs[source]}))
        q.put_nowait(sse_frame("modelStatus", self.model_status()))
        q.put_nowait(sse_frame("uiConfig", UI_CONFIG))
        q.put_nowait(sse_frame("profileChanged", {"active": None}))
        snapshot = [f.to_json() for f in self.inflight.values()]
        # an empty snapshot omits "requests" (Go's omitempty)
        q.put_nowait(sse_frame("inflight", {"operation": "snapshot"} | ({"requests": snapshot} if snapshot else {})))
        return q

    def unsubscribe(self, q: asyncio.Queue[bytes | None]) -> None:
        self._subs.discard(q)

    def _log(self, source: str, text: str) -> None:
        self.logs[source] = (self.logs[source] + text)[-LOG_CAP:]
        self.publish("logData", {"source": source, "data": text})
        for listener in list(self.log_listeners):  # /logs/stream readers
            listener(source, text)

    def log_proxy(self, text: str) -> None:
        self._log("proxy", text)

    def log_upstream(self, text: str) -> None:
        self._log("upstream", text)

    def log_request(self, ip: str, method: str, path: str, status: int, size: int, agent: str, seconds: float) -> None:
        self.log_proxy(f'[INFO] Request {ip} "{method} {path} HTTP/1.1" {status} {size} "{agent}" {seconds * 1000:.3f}ms\n')

    # ---- models ---------------------------------------------------------------------------------------
    def resolve(self, name: str) -> _Model | None:
        return self.models.get(self.aliases.get(name, name))

    def model_status(self) -> list[dict[str, Any]]:
        out = []
        for m in self.models.values():
            s = m.spec
            entry: dict[str, Any] = {"id": s.id, "name": s.name, "description": s.description, "state": m.state,
                                     "unlisted": s.unlisted, "peerID": ""}
            if s.aliases:
                entry["aliases"] = list(s.aliases)
            if s.capabilities:
                entry["capabilities"] = {c: True for c in s.capabilities}
            if s.context_length:
                entry["context_length"] = s.context_length
            out.append(entry)
        return out

    def _bump(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _set_state(self, m: _Model, state: str) -> None:
        m.state = state
        self.publish("modelStatus", self.model_status())
        self._bump()

    def _conflicts(self, m: _Model) -> list[_Model]:
        group = self.groups.get(m.spec.group, GroupSpec(m.spec.group))
        return [v for v in self.models.values() if v is not m and (v.state != "stopped" or v.load is not None) and (
            (v.spec.group == m.spec.group and group.swap) or (v.spec.group != m.spec.group and group.exclusive))]

    def unload(self, m: _Model) -> asyncio.Task[None] | None:
        """Begin stopping a model's process (cuts its in-flight requests); returns the task to await."""
        if m.state == "stopped":
            if m.load is not None and not m.load.done.is_set():  # its load still waits for evictions: drop it
                m.load.error = f"model {m.spec.id} was unloaded while starting"
                m.load.done.set()
                m.load = None
            return None
        if m.stop_task is None or m.stop_task.done():
            m.stop_task = self.spawn(self._stop_process(m))
        return m.stop_task

    async def _stop_process(self, m: _Model) -> None:
        if m.load and not m.load.done.is_set():
            m.load.error = f"model {m.spec.id} was unloaded while starting"
            m.load.done.set()
        self._set_state(m, "stopping")
        m.cut.set()
        self.log_proxy(f"[INFO] <{m.spec.id}> Stopping process, sending SIGTERM\n")
        await asyncio.sleep(self.unload_s)
        self.log_upstream(f"srv    operator(): operator(): cleaning up before exit... (port {m.port})\n")
        self._reset(m)

    def _reset(self, m: _Model) -> None:
        m.cut, m.last_prompt, m.load = asyncio.Event(), "", None
        self._set_state(m, "stopped")

    def crash(self, m: _Model) -> None:
        self.log_upstream(f"/app/ggml/src/ggml-cuda.cu:{self.rng.randrange(70, 2900)}: CUDA error: an illegal memory access was encountered\n")
        self.log_proxy(f"[WARN] <{m.spec.id}> upstream process exited unexpectedly: signal: aborted (core dumped)\n")
        m.cut.set()
        self._reset(m)

    async def _load_process(self, m: _Model, load: _Load, victims: list[asyncio.Task[None]], fail: bool) -> None:
        await asyncio.gather(*victims)
        if m.load is not load or m.retired:
            return
        self._set_state(m, "starting")
        s = m.spec
        self.log_upstream(f"build: 6200 (demo) with cc (GCC) 12.2.0\nllama_model_loader: loaded meta data from /models/{s.id}.gguf\n")
        await asyncio.sleep(s.load_s * self.load_scale * (1 + self.rng.uniform(-self.jitter, self.jitter)) * (0.5 if fail else 1))
        if m.load is not load or m.state != "starting":
            return
        if fail:
            self.log_upstream("llama_model_load: error loading model: tensor 'blk.0.attn_q.weight' data is not within the file bounds\n")
            load.error = f"unable to start process: upstream command exited prematurely but successfully (model {s.id})"
            self.log_proxy(f"[ERROR] <{s.id}> {load.error}\n")
            self._reset(m)
        else:
            self.log_upstream(f"main: server is listening on http://127.0.0.1:{m.port} - starting the main loop\n")
            self.log_proxy(f"[INFO] <{s.id}> Health check passed on http://localhost:{m.port}/health\n")
            self._set_state(m, "ready")
            self._touch(m)
        load.done.set()

    async def acquire(self, m: _Model, cancel: asyncio.Event, fail_start: bool = False) -> str | None:
        """Wait until ``m`` is ready (swapping as needed) and hold it; returns an error message on failure."""
        m.waiting += 1
        try:
            while True:
                if cancel.is_set():
                    raise _Cancelled
                if m.retired:
                    return f"model {m.spec.id} was unloaded: configuration reloaded"
                if m.state == "ready":
                    m.active += 1
                    return None
                if m.state == "stopped" and m.load is None:
                    victims = self._conflicts(m)
                    if all(v.active == 0 and v.waiting == 0 for v in victims):
                        tasks = [t for t in (self.unload(v) for v in victims) if t is not None]
                        if victims:
                            self.log_proxy(f"[INFO] swapping in <{m.spec.id}>, evicting {', '.join(v.spec.id for v in victims)}\n")
                        m.load = _Load()  # "starting" once the evicted models have stopped, as llama-swap does
                        self.spawn(self._load_process(m, m.load, tasks, fail_start))
                if m.state in ("stopped", "starting") and m.load is not None:
                    load = m.load
                    await _wait_any([load.done, cancel])
                    if load.done.is_set() and load.error:
                        return load.error
                    continue
                await _wait_any([self._changed, cancel])
        finally:
            m.waiting -= 1
            self._bump()  # a swap may have been waiting for this model's waiters to go

    def release(self, m: _Model) -> None:
        m.active -= 1
        self._touch(m)
        self._bump()

    def _touch(self, m: _Model) -> None:
        if m.spec.ttl > 0:
            if m.ttl_timer:
                m.ttl_timer.cancel()
            m.ttl_timer = asyncio.get_running_loop().call_later(m.spec.ttl, self._ttl_expired, m)

    def _ttl_expired(self, m: _Model) -> None:
        if m.state == "ready" and m.active == 0 and m.waiting == 0:
            self.log_proxy(f"[INFO] <{m.spec.id}> Unloading model, TTL of {m.spec.ttl}s reached\n")
            self.unload(m)

    # ---- inference ------------------------------------------------------------------------------------
    async def infer(self, call: InferenceCall) -> InferenceReply:
        """Run one inference request; the reply's body must be iterated (or closed) to finish and record it."""
        out = _Outcome(accept=call.headers.get("Accept", ""))
        gen = self._run(call, out)
        await anext(gen)
        return InferenceReply(out.status, out.headers, gen)

    def _fail(self, out: _Outcome, status: int, message: str, code: str | None = None,
              headers: dict[str, str] | None = None) -> bytes:
        resp = error_response(status, message, out.accept, code, headers)
        out.status, out.error_msg = status, message
        out.headers = {k: v for k, v in resp.headers.items() if k != "content-length"}
        return bytes(resp.body)

    def _bad_gateway(self, out: _Outcome) -> bytes:
        """The upstream connection failed (cancelled, crashed): Go's reverse proxy answers a bare 502 with no
        body and no content type, so the activity row's error is the status line."""
        out.status, out.headers, out.error_msg = 502, {}, "502 Bad Gateway"
        return b""

    def _respond(self, out: _Outcome, headers: dict[str, str], status: int = 200, error: str = "") -> None:
        out.status, out.headers, out.error_msg = status, headers, error
        if out.flight is not None:
            out.flight.resp_headers = {canonical_header(k): v for k, v in headers.items()}
            self._upsert(out.flight)

    def _plan(self, m: _Model, req: dict[str, Any], chat: bool) -> _Plan:
        text = _prompt_text(req, chat)
        total = max(1, math.ceil(len(text) / 4))
        cache = min(len(os.path.commonprefix([text, m.last_prompt])) // 4, total - 1)
        m.last_prompt = text
        limit = next((req[k] for k in ("max_tokens", "max_completion_tokens", "n_predict")
                      if isinstance(req.get(k), int) and req[k] > 0), None)
        n_out = limit if limit is not None else min(2048, max(4, int(self.rng.lognormvariate(4.8, 0.8))))
        speed = (1 + self.rng.uniform(-self.jitter, self.jitter)) / (1 + 0.25 * (m.active - 1))
        options = req.get("stream_options")
        return _Plan(m.spec.id, chat, m.spec.backend == "llama.cpp", total, cache, n_out, m.spec.prompt_tps * speed,
                     m.spec.gen_tps * speed, "length" if limit is not None else "stop",
                     [self.rng.choice(WORDS) for _ in range(n_out)],
                     isinstance(options, dict) and options.get("include_usage") is True)

    def _track(self, call: InferenceCall, model: str) -> _InFlight:
        flight = _InFlight(str(self.next_inflight), self.now(), model, call.path, call.method,
                           canonical_headers(call.headers, redact=True), call.remote_ip)
        self.next_inflight += 1
        self.inflight[flight.id] = flight
        self._upsert(flight)
        return flight

    def _upsert(self, flight: _InFlight) -> None:
        flight.published = time.monotonic()
        self.publish("inflight", {"operation": "upsert", "request": flight.to_json()})

    def _emit(self, out: _Outcome, chunk: bytes) -> bytes:
        out.body += chunk
        self.traffic_bytes += len(chunk)
        if out.flight is not None:
            out.flight.resp_bytes += len(chunk)
            if time.monotonic() - out.flight.published >= 0.25:
                self._upsert(out.flight)
        return chunk

    async def _run(self, call: InferenceCall, out: _Outcome) -> AsyncGenerator[bytes, None]:
        """First yields ``b""`` once status and headers are known (in ``out``), then the body chunks."""
        t0 = time.monotonic()
        try:
            body = await self._prepare(call, out)
            yield b""
            if body:
                yield self._emit(out, body)
            elif body is None and out.plan is not None:
                async for chunk in self._stream(out, out.plan):
                    yield chunk
        finally:
            if out.m is not None and out.held:
                self.release(out.m)
            if out.m is not None and out.admitted:
                out.m.admitted -= 1
            if out.flight is not None:
                self.inflight.pop(out.flight.id, None)  # a config reload may have dropped it already
                self.publish("inflight", {"operation": "remove", "id": out.flight.id})
            if out.record:
                self._record(call, out, t0)

    async def _prepare(self, call: InferenceCall, out: _Outcome) -> bytes | None:
        """Everything before the response headers; returns the whole body, or None to stream ``out.plan``."""
        try:
            req = json.loads(call.body) if "application/json" in call.headers.get("Content-Type", "") else None
        except ValueError:
            req = None
        req = req if isinstance(req, dict) else {}
        name = call.model or req.get("model")
        if not isinstance(name, str) or not name:
            out.record = False
            return self._fail(out, 404, "no model id could be identified")
        m = out.m = self.resolve(name)
        out.model = m.spec.id if m else name
        flight = out.flight = self._track(call, out.model)  # llama-swap tracks unknown model names too
        if m is None:
            return self._fail(out, 404, "no router for requested model")
        if m.admitted >= self.concurrency_limit:
            return self._fail(out, 429, "too many requests", "concurrency_limit", {"Retry-After": "1"})
        m.admitted += 1
        out.admitted = True
        try:
            error = await self.acquire(m, flight.cancel, call.fault == "start-fail")
        except _Cancelled:
            return b""  # Go answers an empty 200 when the handler returns without writing
        if error:
            return self._fail(out, 500, error)
        out.held, out.metadata, out.cut = True, GRANTED, m.cut
        if m.spec.respond is not None:
            return await self._simple_responder(call, out, m, flight)
        plan = self._plan(m, req, call.path.endswith("/chat/completions"))
        if await _wait_any([flight.cancel, out.cut], plan.prompt_ms / 1000):
            return self._bad_gateway(out)
        if call.fault == "crash":
            self.crash(m)
            return self._bad_gateway(out)
        if call.fault == "error":  # an upstream error body, passed through untouched
            message = "the request exceeds the available context size, try increasing it"
            self._respond(out, {"content-type": UPSTREAM_JSON_CT}, 500, message)
            return json.dumps({"error": {"code": 500, "message": message, "type": "server_error"}}).encode()
        if req.get("stream"):
            self._respond(out, {"content-type": "text/event-stream", "cache-control": "no-cache"})
            out.plan = plan
            return None
        if await _wait_any([flight.cancel, out.cut], plan.predicted_ms / 1000):
            return self._bad_gateway(out)
        self._respond(out, {"content-type": UPSTREAM_JSON_CT})
        return plan.whole()

    async def _simple_responder(self, call: InferenceCall, out: _Outcome, m: _Model, flight: _InFlight) -> bytes:
        """What llama-swap's ``cmd/simple-responder`` answers (fixed usage 25/10 and llama.cpp-like timings;
        ``?stream=true`` streams ten ``asdf`` chunks; ``?wait=<Go duration>`` delays the answer)."""
        message = m.spec.respond or ""
        if call.fault == "crash":
            self.crash(m)
            return self._bad_gateway(out)
        query = parse_qs(call.query)
        try:
            wait = parse_go_duration(query.get("wait", [""])[0])
        except ValueError:
            wait = 0.0
        if wait > 0 and await _wait_any([flight.cancel, out.cut], wait):
            return self._bad_gateway(out)
        usage = {"completion_tokens": 10, "prompt_tokens": 25, "total_tokens": 35}
        timings = {"predicted_ms": 17, "predicted_n": 10, "predicted_per_second": 10, "prompt_ms": 13, "prompt_n": 25}
        if call.path.endswith("/v1/completions"):
            self._respond(out, {"content-type": "application/json"})
            return go_json({"responseMessage": message, "usage": usage}).encode()
        if query.get("stream", [""])[0] == "true":
            self._respond(out, {"content-type": "text/event-stream", "cache-control": "no-cache"})
            created = int(time.time())
            chunk = go_json({"choices": [{"delta": {"content": "asdf"}, "finish_reason": None, "index": 0}],
                             "created": created})
            return (f"event:message\ndata:{chunk}\n\n" * 10
                    + f"event:message\ndata:{go_json({'timings': timings, 'usage': usage})}\n\n"
                    + "event:message\ndata:[DONE]\n\n").encode()
        self._respond(out, {"content-type": "application/json"})
        return go_json({"h_content_length": call.headers.get("Content-Length", ""),
                        "request_body": call.body.decode(errors="replace"), "responseMessage": message,
                        "timings": timings, "usage": usage}).encode()

    async def _stream(self, out: _Outcome, plan: _Plan) -> AsyncIterator[bytes]:
        """Token chunks paced at the generation speed, batched so a stream wakes at most ~5 times a second."""
        gen_s, sent, begin = plan.predicted_ms / 1000, 0, time.monotonic()
        stop = [out.flight.cancel if out.flight else asyncio.Event(), out.cut]
        while True:
            due = min(plan.n_out, max(sent + 1, int((time.monotonic() - begin) / gen_s * plan.n_out))) if gen_s > 0 else plan.n_out
            yield self._emit(out, plan.chunks(sent, due))
            sent = due
            if sent >= plan.n_out:
                yield self._emit(out, plan.final_chunks())
                return
            if await _wait_any(stop, min(max(0.2, gen_s / plan.n_out), begin + gen_s - time.monotonic())):
                return  # cancelled or the process went away: the client sees a truncated stream

    def _record(self, call: InferenceCall, out: _Outcome, t0: float) -> None:
        ctype = out.headers.get("content-type", "")
        tok = parse_tokens(ctype, bytes(out.body)) if out.status == 200 else Tokens()
        duration = max(int((time.monotonic() - t0) * 1000), int(tok.timings_ms))
        now_ns = time.time_ns()
        row: dict[str, Any] = {
            "id": 0, "timestamp": self.now(False, now_ns), "model": out.model, "req_path": call.path,
            "resp_content_type": ctype, "resp_status_code": out.status,
            "tokens": {k: getattr(tok, k) for k in TOKEN_FIELDS}, "duration_ms": duration, "has_capture": False,
        }
        if out.error_msg:
            row["error_msg"] = out.error_msg[:500]
        if out.metadata:
            row["metadata"] = out.metadata
        row["ts"] = now_ns // 1_000_000_000
        row_id = self.activity.add(row)
        ok = out.status == 200
        capture = _Capture(call.path, canonical_headers(call.headers, redact=True),
                           zlib.compress(call.body, 1) if call.body else None,
                           {canonical_header(k): v for k, v in out.headers.items()},  # kept for errors too
                           zlib.compress(bytes(out.body), 1) if ok and out.body else None)
        # llama-swap inserts the row (queryable from then on), then stores the capture, then announces the row
        if self.capture_delay_s > 0:
            self.spawn(self._store_capture_later(row_id, capture, self.captures))
        else:
            self._store_capture(row_id, capture)

    async def _store_capture_later(self, row_id: int, capture: _Capture, cache: OrderedDict[int, _Capture]) -> None:
        await asyncio.sleep(self.capture_delay_s)
        if cache is self.captures:  # else a config reload replaced the cache meanwhile
            self._store_capture(row_id, capture)

    def _store_capture(self, row_id: int, capture: _Capture) -> None:
        if self.capture_budget > 0 and 0 < capture.size <= self.capture_budget:
            self.captures[row_id] = capture
            self.capture_bytes += capture.size
            while self.capture_bytes > self.capture_budget:
                self.capture_bytes -= self.captures.popitem(last=False)[1].size
        self.publish("activity", {"id": row_id})

    def activity_json(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in row.items() if k != "ts"} | {"has_capture": row["id"] in self.captures}

    # ---- telemetry ------------------------------------------------------------------------------------
    def take_sample(self) -> None:
        loads = [GpuLoad() for _ in self.host.gpus]
        for m in self.models.values():
            load = loads[m.spec.gpu % len(loads)]
            load.busy += m.active
            load.loading = load.loading or m.state == "starting"
            load.vram_mb += m.spec.vram_mb if m.state == "ready" else m.spec.vram_mb // 2 if m.state != "stopped" else 0
        ns = time.time_ns()
        gpu_ns = ns + self.rng.randrange(1_000_000, 30_000_000)
        sys_stat, gpu_stats = self.telemetry.sample(self.now(ns=ns), self.now(ns=gpu_ns), loads, self.traffic_bytes)
        self.traffic_bytes = 0
        self.sys_ring.append((ns, go_json(sys_stat)))
        self.gpu_ring.extend((gpu_ns, go_json(g)) for g in gpu_stats)
        self.latest_sys, self.latest_gpu = sys_stat, gpu_stats

    async def _perf_loop(self) -> None:
        while self.perf_every_s > 0:
            await asyncio.sleep(self.perf_every_s)
            self.take_sample()

    def check_key(self, headers: Mapping[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth.startswith("Basic "):
            try:
                candidate = base64.b64decode(auth[6:]).decode().partition(":")[2]
            except ValueError:
                candidate = ""
        elif auth.startswith("Bearer "):
            candidate = auth[7:]
        else:
            candidate = headers.get("x-api-key", "")
        return any(hmac.compare_digest(candidate.encode(), k.encode()) for k in self.api_keys)
