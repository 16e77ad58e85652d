"""llama-swap's wire contract as the product reads it: one scenario driven over HTTP, and a field-by-field comparison.

``run_scenario`` drives any llama-swap-like base URL (a real llama-swap started by
``scripts/record_llama_swap.py``, or the simulator in ``tests/demo/test_simulator_contract.py``) through the same
fixed steps: auth failure, inventory, a cold load, a streamed and a non-streamed chat, a swap, an unknown model,
an in-flight cancel, activity paging and filters on a small ring, captures, performance samples, unload, log
streams and (when the caller can trigger one) a config reload. It returns a JSON-able recording: every HTTP
exchange (status, the headers the product reads, body) and every ``/api/events`` message tagged with the step it
arrived in, plus the stream's framing.

``compare`` checks one recording against another: statuses, content types, JSON keys and types (timestamps by
format), protocol constants (event types, states, error codes...), SSE framing and envelope shape, and the order
of events per step (logs left out, repeats collapsed, the free-running ``activity`` message only counted). Volatile
values (ids, times, durations, byte counts) may differ. See ``docs/llama-swap-api.md`` for the facts behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

FORMAT = 1
SSE_HEADERS = ("content-type", "cache-control", "x-content-type-options", "x-accel-buffering")
EXCHANGE_HEADERS = ("content-type", "www-authenticate", "retry-after", "location")
# values that are protocol constants (compared exactly); everything else is compared by type only
CONSTANT_KEYS = frozenset({
    "src", "type", "code", "param", "object", "owned_by", "operation", "state", "value", "enabled",
    "schema_version", "scope", "method", "req_path", "resp_content_type", "msg", "source", "unlisted",
    "peerID", "model", "page", "limit", "total", "total_pages", "resp_status_code", "message", "error_msg",
})
# maps keyed by data (header names): only their value types are compared
MAP_KEYS = frozenset({"req_headers", "resp_headers"})
# arrays whose length is timing or host dependent (samples taken so far, cores, network interfaces)
VARIABLE_LENGTH_KEYS = frozenset({"sys_stats", "gpu_stats", "cpu_util_per_core", "net_io"})
# Go float64 fields: Go writes 10.0 as ``10``, so an integer on one side and a fraction on the other is fine
FLOAT_KEYS = frozenset({
    "prompt_per_second", "tokens_per_second", "cpu_util_per_core", "load_avg_1", "load_avg_5", "load_avg_15",
    "gpu_util_pct", "mem_util_pct", "fan_speed_pct", "power_draw_w", "min", "max", "binSize", "p50", "p95",
    "p99", "power_limit_watts", "mem_used_mb", "mem_total_mb", "mem_free_mb", "swap_total_mb", "swap_used_mb",
})
# a state that can be over before the modelStatus message announcing it is rendered
TRANSIENT_STATES = frozenset({"stopping"})
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})")
_MAX_TEXT = 240


class ScenarioError(RuntimeError):
    """The instance under test did not behave as the scenario needs (one line, no traceback)."""


@dataclass(frozen=True)
class ScenarioConfig:
    """Names the scenario expects the instance to be configured with (see ``scripts/record_llama_swap.py``)."""

    api_key: str = "sk-contract"
    model_a: str = "responder-a"
    alias_a: str = "a-alias"
    model_b: str = "responder-b"
    ring: int = 3  # metricsMaxInMemory
    perf_timeout_s: float = 20.0
    event_timeout_s: float = 20.0


Reload = Callable[[], Awaitable[None]]


@dataclass
class _Stream:
    """One ``/api/events`` connection read in the background; messages are tagged with the current step."""

    client: httpx.AsyncClient
    url: str
    headers: dict[str, str]
    step: str = "connect"
    after_snapshot: str = "steady"  # the step of messages behind the connect snapshot, until ``step`` is set
    status: int = 0
    resp_headers: dict[str, str] = field(default_factory=dict)
    raw: bytearray = field(default_factory=bytearray)
    messages: list[dict[str, Any]] = field(default_factory=list)
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        pending = b""
        try:
            async with self.client.stream("GET", self.url, headers=self.headers,
                                          timeout=httpx.Timeout(10.0, read=None)) as resp:
                self.status = resp.status_code
                self.resp_headers = {k: resp.headers[k] for k in SSE_HEADERS if k in resp.headers}
                self.opened.set()
                async for chunk in resp.aiter_bytes():
                    self.raw += chunk
                    pending += chunk
                    while b"\n\n" in pending:
                        block, pending = pending.split(b"\n\n", 1)
                        self._add(block)
        except httpx.HTTPError:
            pass
        finally:
            self.opened.set()
            self.closed.set()
            self._bump()

    def _add(self, block: bytes) -> None:
        data = next((line[5:] for line in block.split(b"\n") if line.startswith(b"data:")), None)
        if data is None:
            return
        envelope = json.loads(data)
        inner = envelope.get("data")
        decoded = json.loads(inner) if isinstance(inner, str) and inner else inner
        step = self.step
        if step == "connect" and any(m["type"] == "inflight" for m in self.messages):
            step = self.after_snapshot  # the snapshot ends with its in-flight message
        self.messages.append({"step": step, "type": envelope.get("type"), "data": decoded})
        self._bump()

    def _bump(self) -> None:
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def wait_for(self, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            seen = 0
            while True:
                waiter = self.changed
                for msg in self.messages[seen:]:
                    if pred(msg):
                        return msg
                seen = len(self.messages)
                if self.closed.is_set():
                    raise ScenarioError(f"/api/events closed while waiting for {what}")
                await waiter.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            raise ScenarioError(f"no {what} on /api/events within {timeout:.0f} s") from None

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def record(self) -> dict[str, Any]:
        """Status, headers, framing summary, tagged messages and (``raw``, bytes: not JSON) the stream itself."""
        return {"status": self.status, "headers": self.resp_headers, "framing": framing(bytes(self.raw)),
                "messages": self.messages, "raw": bytes(self.raw)}


def framing(raw: bytes) -> dict[str, Any]:
    """How ``/api/events`` frames its messages: line kinds per message block, separators, stray lines."""
    blocks = [b for b in raw.split(b"\n\n") if b]
    kinds = sorted({tuple(_line_kind(line) for line in b.split(b"\n")) for b in blocks})
    return {"block_layouts": [list(k) for k in kinds], "ends_with_blank_line": raw.endswith(b"\n\n") or not raw,
            "crlf": b"\r" in raw}


def _line_kind(line: bytes) -> str:
    if line == b"event:message":
        return "event:message"
    if line.startswith(b"data:{"):
        return "data:{json}"
    return "other:" + line[:12].decode("utf-8", "replace")


def is_activity(msg: dict[str, Any], ident: int | None = None) -> bool:
    return msg["type"] == "activity" and (ident is None or (isinstance(msg["data"], dict) and msg["data"].get("id") == ident))


def _flight_ids(msg: dict[str, Any]) -> list[str]:
    """In-flight ids an ``inflight`` message adds: an upsert's request, or a pre-v240 full list's entries."""
    data = msg["data"] if isinstance(msg["data"], dict) else {}
    if data.get("operation") == "upsert" and isinstance(data.get("request"), dict):
        return [str(data["request"].get("id"))]
    if "operation" not in data:
        return [str(r.get("id")) for r in data.get("requests") or [] if isinstance(r, dict)]
    return []


def _state_of(msg: dict[str, Any], model: str) -> str | None:
    if msg["type"] != "modelStatus" or not isinstance(msg["data"], list):
        return None
    return next((str(m.get("state")) for m in msg["data"] if isinstance(m, dict) and m.get("id") == model), None)


async def run_scenario(client: httpx.AsyncClient, base_url: str, cfg: ScenarioConfig = ScenarioConfig(),
                       reload: Reload | None = None) -> dict[str, Any]:
    """Drive the instance at ``base_url`` through the contract scenario and return the raw recording."""
    base = base_url.rstrip("/")
    key = {"Authorization": f"Bearer {cfg.api_key}"}
    ex: dict[str, Any] = {}
    facts: dict[str, Any] = {}

    async def call(name: str, method: str, path: str, *, params: Any = None, body: Any = None,
                   headers: Mapping[str, str] | None = None, raw_body: bytes | None = None) -> httpx.Response:
        hdrs = dict(key if headers is None else headers)
        if body is not None:
            hdrs["Content-Type"] = "application/json"
            raw_body = json.dumps(body).encode()
        resp = await client.request(method, base + path, params=params, content=raw_body, headers=hdrs,
                                    timeout=60.0)
        ex[name] = exchange(method, path, params, resp)
        if path == "/v1/chat/completions" and resp.status_code == 200:
            ex[name]["body"] = None  # the upstream's answer, passed through: not llama-swap's contract
        return resp

    def chat(model: str, stream: bool = False, max_tokens: int = 4) -> dict[str, Any]:
        return {"model": model, "stream": stream, "max_tokens": max_tokens,
                "messages": [{"role": "user", "content": "say hi"}]}

    resp = await client.get(base + "/wol-health", timeout=10.0)
    ex["wol_health"] = exchange("GET", "/wol-health", None, resp)
    await call("auth_missing", "GET", "/api/version", headers={})
    await call("auth_wrong_key", "GET", "/v1/models", headers={"Authorization": "Bearer wrong-key"})
    await call("version", "GET", "/api/version")
    await call("hardware", "GET", "/api/hardware")
    await call("running_cold", "GET", "/running")
    await call("models_cold", "GET", "/v1/models")
    await call("activity_empty", "GET", "/api/metrics/activity")

    events = _Stream(client, base + "/api/events", dict(key))
    events.start()
    await asyncio.wait_for(events.opened.wait(), cfg.event_timeout_s)
    await events.wait_for(lambda m: m["type"] == "inflight", "the connect snapshot", cfg.event_timeout_s)
    t = cfg.event_timeout_s

    snapshot = next(m for m in events.messages if m["type"] == "inflight")
    deltas = isinstance(snapshot["data"], dict) and "operation" in snapshot["data"]  # v240+; before: full lists

    def finished(step: str) -> Callable[[dict[str, Any]], bool]:
        def pred(m: dict[str, Any]) -> bool:
            if m["type"] != "inflight" or m["step"] != step or not isinstance(m["data"], dict):
                return False
            return m["data"].get("operation") == "remove" if deltas else not m["data"].get("requests")
        return pred

    async def chat_step(step: str, activity_id: int, model: str, *, stream: bool = False,
                        params: Any = None) -> None:
        events.step = step
        await call(step, "POST", "/v1/chat/completions", body=chat(model, stream), params=params)
        await events.wait_for(lambda m: is_activity(m, activity_id), f"activity {activity_id} ({step})", t)
        await events.wait_for(finished(step), f"in-flight removal ({step})", t)

    await chat_step("chat_load", 1, cfg.model_a)
    events.step = "steady"
    await call("running_ready", "GET", "/running")
    await call("models_loaded", "GET", "/v1/models")
    await chat_step("chat_stream", 2, cfg.alias_a, stream=True, params={"stream": "true"})
    await chat_step("chat_swap", 3, cfg.model_b)
    await events.wait_for(lambda m: _state_of(m, cfg.model_a) == "stopped", "the swapped-out model stopped", t)
    await chat_step("chat_unknown_model", 4, "no-such-model")
    events.step = "chat_no_model"
    await call("chat_no_model", "POST", "/v1/chat/completions", raw_body=json.dumps(chat(cfg.model_b)).encode())

    # an in-flight request (simple-responder honours ?wait=; the simulator is slow at max_tokens 400), cancelled
    events.step = "cancel"
    slow = asyncio.ensure_future(client.post(
        base + "/v1/chat/completions", params={"wait": "5s"}, json=chat(cfg.model_b, max_tokens=400),
        headers=key, timeout=60.0))
    started = await events.wait_for(lambda m: m["type"] == "inflight" and m["step"] == "cancel"
                                    and bool(_flight_ids(m)), "the slow request's in-flight entry", t)
    flight_id = _flight_ids(started)[0]
    await call("cancel_inflight", "POST", f"/api/inflight/{flight_id}/cancel")
    with contextlib.suppress(httpx.HTTPError):
        await slow
    await events.wait_for(lambda m: is_activity(m, 5), "activity 5 (cancelled request)", t)
    await events.wait_for(finished("cancel"), "in-flight removal (cancel)", t)
    events.step = "steady"
    await call("cancel_unknown", "POST", "/api/inflight/999999/cancel")

    await call("activity_default", "GET", "/api/metrics/activity")
    await call("activity_page2_asc", "GET", "/api/metrics/activity",
               params={"sort": "id", "order": "asc", "limit": "2", "page": "2"})
    await call("activity_min_id", "GET", "/api/metrics/activity",
               params={"min_id": "4", "sort": "id", "order": "asc", "limit": "999"})
    await call("activity_models", "GET", "/api/metrics/activity",
               params=[("model", cfg.model_b), ("model", "no-such-model")])
    await call("activity_bad_limit", "GET", "/api/metrics/activity", params={"limit": "1000"})
    await call("activity_bad_min_id", "GET", "/api/metrics/activity", params={"min_id": "0"})
    await call("capture_ok", "GET", "/api/captures/3")
    await call("capture_error_row", "GET", "/api/captures/4")
    await call("capture_missing", "GET", "/api/captures/999999")
    await call("capture_bad_id", "GET", "/api/captures/x")

    perf = await _wait_perf(client, base, key, cfg.perf_timeout_s)
    ex["performance"] = perf
    first = ((perf["body"].get("json") or {}).get("sys_stats") or [{}])[0].get("timestamp")
    if first:
        await call("performance_after_first", "GET", "/api/performance", params={"after": first})
    await call("performance_bad_after", "GET", "/api/performance", params={"after": "yesterday"})

    async def log_stream(name: str, log_id: str) -> None:
        """Status, headers and the first chunk; ``status`` None when no header came within 2 s (llama-swap
        sends nothing at all, not even headers, until a log with an empty history gets its first line)."""
        ex[name] = {"method": "GET", "path": "/logs/stream/" + log_id, "query": "", "status": None,
                    "headers": {}, "body": None}
        with contextlib.suppress(httpx.ReadTimeout):
            async with client.stream("GET", base + "/logs/stream/" + log_id, headers=key,
                                     timeout=httpx.Timeout(10.0, read=2.0)) as resp:
                body: Any
                if resp.status_code >= 400:
                    await resp.aread()
                    body = _body(resp)
                else:
                    body = {"text": (await anext(resp.aiter_text()))[:200]}
                ex[name] |= {"status": resp.status_code, "headers": _headers(resp), "body": body}

    await log_stream("logs_stream_proxy", "proxy")
    await log_stream("logs_stream_model_no_history", cfg.model_b)
    await log_stream("logs_stream_unknown", "no-such-model")

    events.step = "unload_one"
    await call("unload_one", "POST", f"/api/models/unload/{cfg.model_b}")
    await events.wait_for(lambda m: _state_of(m, cfg.model_b) == "stopped" and m["step"] == "unload_one",
                          "the unloaded model stopped", t)
    events.step = "unload_unknown"
    await call("unload_unknown", "POST", "/api/models/unload/no-such-model")
    events.step = "unload_all"
    await chat_step("chat_reload_a", 6, cfg.model_a)
    events.step = "unload_all"
    await call("unload_all", "POST", "/api/models/unload")
    await events.wait_for(lambda m: _state_of(m, cfg.model_a) == "stopped" and m["step"] == "unload_all",
                          "unload-all stopped the model", t)

    # warm without a row: GET /upstream/<model>/ loads the model and forwards GET / to it (what the UI does)
    events.step = "warm"
    await call("warm", "GET", f"/upstream/{cfg.model_b}/", params={"_": "1"})
    ex["warm"]["body"] = None  # the model server's own page
    await events.wait_for(lambda m: _state_of(m, cfg.model_b) == "ready" and m["step"] == "warm",
                          "the warmed model ready", t)
    events.step = "warm_errors"
    await call("warm_no_slash", "GET", f"/upstream/{cfg.model_b}")
    await call("warm_unknown", "GET", "/upstream/no-such-model/")
    events.step = "end"
    recording: dict[str, Any] = {"format": FORMAT, "exchanges": ex, "events": events.record(), "facts": facts}

    if reload is not None:
        await chat_step("chat_before_reload", 7, cfg.model_a)
        events.step = "reload"
        before = await _boot_marker(client, base, key)
        await reload()
        try:
            await asyncio.wait_for(events.closed.wait(), t)
            facts["reload_closes_events"] = True
        except TimeoutError:
            facts["reload_closes_events"] = False
        await events.close()
        recording["events"] = events.record()
        after_stream = _Stream(client, base + "/api/events", dict(key), after_snapshot="after_reload")
        after_stream.start()
        await after_stream.wait_for(lambda m: m["type"] == "inflight", "the snapshot after reload", t)
        after_stream.step = "after_reload"
        after = await _boot_marker(client, base, key)
        facts["reload_keeps_boot_marker"] = None if before is None else before == after
        await call("activity_after_reload", "GET", "/api/metrics/activity")
        await call("running_after_reload", "GET", "/running")
        await call("capture_after_reload", "GET", "/api/captures/7")
        await asyncio.sleep(0)
        await after_stream.close()
        recording["events_after_reload"] = after_stream.record()
    else:
        await events.close()
        recording["events"] = events.record()
    return recording


async def _boot_marker(client: httpx.AsyncClient, base: str, key: Mapping[str, str]) -> str | None:
    """``/api/hardware`` ``captured_at`` (None before v247, which has no such endpoint)."""
    resp = await client.get(base + "/api/hardware", headers=dict(key), timeout=10.0)
    return str(resp.json().get("captured_at")) if resp.status_code == 200 else None


async def _wait_perf(client: httpx.AsyncClient, base: str, key: Mapping[str, str], timeout: float) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        resp = await client.get(base + "/api/performance", headers=dict(key), timeout=10.0)
        body = resp.json() if resp.status_code == 200 else None
        if isinstance(body, dict) and body.get("sys_stats"):
            return exchange("GET", "/api/performance", None, resp)
        if asyncio.get_running_loop().time() > deadline:
            raise ScenarioError(f"/api/performance had no sample within {timeout:.0f} s")
        await asyncio.sleep(0.5)


def _headers(resp: httpx.Response) -> dict[str, str]:
    return {k: resp.headers[k] for k in EXCHANGE_HEADERS if k in resp.headers}


def _body(resp: httpx.Response) -> Any:
    if "json" in resp.headers.get("content-type", ""):
        try:
            return {"json": resp.json()}
        except ValueError:
            pass
    return {"text": resp.text}


def exchange(method: str, path: str, params: Any, resp: httpx.Response) -> dict[str, Any]:
    return {"method": method, "path": path, "query": resp.request.url.query.decode(), "status": resp.status_code,
            "headers": _headers(resp), "body": _body(resp)}


# ---- normalising a recording for a fixture --------------------------------------------------------------
def scrub(value: Any, replacements: Mapping[str, str]) -> Any:
    """Replace local paths/secrets in every string and shorten long strings (base64 stays base64)."""
    if isinstance(value, dict):
        return {k: scrub(v, replacements) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, replacements) for v in value]
    if isinstance(value, str):
        for old, new in replacements.items():
            value = value.replace(old, new)
        if len(value) > _MAX_TEXT:
            value = value[: _MAX_TEXT - _MAX_TEXT % 4]
        return value
    return value


# ---- comparison ----------------------------------------------------------------------------------------
def jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        m = _RFC3339.fullmatch(value)
        if m:
            return "time" if m.group(1) is None else "time.frac"
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


@functools.lru_cache(maxsize=512)
def _pattern(prefix: str) -> re.Pattern[str]:
    """A deviation path: ``*`` stands for one key, ``[*]`` for any list index; it covers everything below."""
    rx = re.escape(prefix).replace(r"\[\*\]", r"\[\d+\]").replace(r"\*", r"[^.\[]+")
    return re.compile(rx + r"(?:$|[.\[])")


def _allowed(path: str, allowed: Mapping[str, str]) -> bool:
    return any(_pattern(p).match(path) for p in allowed)


def diff_values(rec: Any, obs: Any, path: str, allowed: Mapping[str, str], key: str = "") -> list[str]:
    """Differences of ``obs`` (observed) from ``rec`` (recorded): keys, JSON types, constants."""
    if _allowed(path, allowed):
        return []
    tr, to = jtype(rec), jtype(obs)
    if {tr, to} == {"time", "time.frac"} and key in ("timestamp",):
        pass  # Go trims trailing zero fractions, so a sample can land on a whole second
    elif tr != to:
        return [f"{path}: recorded {tr} {_short(rec)}, simulator {to} {_short(obs)}"]
    out: list[str] = []
    if tr == "object":
        if key in MAP_KEYS:
            for k, v in obs.items():
                if jtype(v) != "string":
                    out.append(f"{path}.{k}: header value is {jtype(v)}, not string")
            return out
        for k in sorted(set(rec) | set(obs)):
            sub = f"{path}.{k}"
            if _allowed(sub, allowed):
                continue
            if k not in obs:
                out.append(f"{sub}: missing in simulator (recorded {_short(rec[k])})")
            elif k not in rec:
                out.append(f"{sub}: not in the recording (simulator {_short(obs[k])})")
            else:
                out += diff_values(rec[k], obs[k], sub, allowed, k)
    elif tr == "array":
        if len(rec) != len(obs) and key not in VARIABLE_LENGTH_KEYS:
            out.append(f"{path}: recorded {len(rec)} elements, simulator {len(obs)}")
        for i, (r, o) in enumerate(zip(rec, obs, strict=False)):
            out += diff_values(r, o, f"{path}[{i}]", allowed, key)
        if rec and len(obs) > len(rec):
            for i in range(len(rec), len(obs)):
                out += diff_values(rec[-1], obs[i], f"{path}[{i}]", allowed, key)
    elif tr == "number" and key not in FLOAT_KEYS and isinstance(rec, int) != isinstance(obs, int):
        out.append(f"{path}: recorded {_short(rec)}, simulator {_short(obs)} (integer vs fraction)")
    elif key in CONSTANT_KEYS and rec != obs:
        out.append(f"{path}: recorded {_short(rec)}, simulator {_short(obs)}")
    return out


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _variant(msg: dict[str, Any]) -> str:
    data = msg["data"]
    if msg["type"] == "inflight" and isinstance(data, dict):
        return f"inflight:{data.get('operation', 'list')}"
    if msg["type"] == "logData" and isinstance(data, dict):
        return f"logData:{data.get('source')}"
    return str(msg["type"])


def order_tokens(messages: list[dict[str, Any]], step: str) -> list[str]:
    """The significant event sequence of one step: logs left out, repeats collapsed, ``activity`` messages
    counted at the end; then each model's sequence of states.

    llama-swap publishes ``activity`` from another goroutine than the in-flight messages, so it can arrive
    before, between or after them (all three were recorded): only how many arrived is compared. And
    ``modelStatus`` lists are rendered when sent, not when the state changed, so a list may already show a
    later state of another model, a short ``stopping`` can be missed entirely (recorded both ways for the
    same unload), and a model's unchanged state may or may not be listed before it changes: each model's
    own sequence of lasting states is compared, starting from its state when the step began.
    """
    out: list[str] = []
    activities = 0
    states: dict[str, list[str]] = {}
    before: dict[str, str] = {}  # each model's lasting state when the step began
    for msg in messages:
        if msg["type"] == "modelStatus" and isinstance(msg["data"], list):
            for m in msg["data"]:
                if not isinstance(m, dict) or m.get("state") in TRANSIENT_STATES:
                    continue
                model, state = str(m.get("id")), str(m.get("state"))
                if msg["step"] != step:
                    if not states:
                        before[model] = state
                    continue
                seq = states.setdefault(model, [before[model]] if model in before else [])
                if not seq or seq[-1] != state:
                    seq.append(state)
            continue
        if msg["step"] != step or msg["type"] == "logData":
            continue
        if msg["type"] == "activity":
            activities += 1
            continue
        token = _variant(msg)
        if not out or out[-1] != token:
            out.append(token)
    # a model that did not change is left out: whether llama-swap lists it again in a step is a race (after a
    # reload the old server's shutdown may or may not reach the new stream as more all-stopped lists)
    changes = [f"{model}: {' > '.join(seq)}" for model, seq in sorted(states.items()) if len(seq) > 1]
    return out + ["activity"] * activities + changes


def compare_events(rec: dict[str, Any], obs: dict[str, Any], where: str,
                   allowed: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    if rec["status"] != obs["status"]:
        out.append(f"{where}.status: recorded {rec['status']}, simulator {obs['status']}")
    out += diff_values(rec["headers"], obs["headers"], f"{where}.headers", allowed)
    for k in set(rec["headers"]) & set(obs["headers"]):
        if rec["headers"][k] != obs["headers"][k] and not _allowed(f"{where}.headers.{k}", allowed):
            out.append(f"{where}.headers.{k}: recorded {rec['headers'][k]!r}, simulator {obs['headers'][k]!r}")
    if rec["framing"] != obs["framing"] and not _allowed(f"{where}.framing", allowed):
        out.append(f"{where}.framing: recorded {rec['framing']}, simulator {obs['framing']}")
    rm, om = rec["messages"], obs["messages"]
    snap_r = [_variant(m) for m in rm if m["step"] == "connect"]
    snap_o = [_variant(m) for m in om if m["step"] == "connect"]
    if snap_r != snap_o and not _allowed(f"{where}.order.connect", allowed):
        out.append(f"{where}.order.connect: recorded {snap_r}, simulator {snap_o}")
    steps = list(dict.fromkeys(m["step"] for m in rm + om))
    for step in steps:
        if step == "connect":
            continue
        tr, to = order_tokens(rm, step), order_tokens(om, step)
        if tr != to and not _allowed(f"{where}.order.{step}", allowed):
            out.append(f"{where}.order.{step}: recorded {tr}, simulator {to}")
    # envelope payload shapes: every observed message against the recorded one of the same kind
    by_kind: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for m in rm:
        by_kind.setdefault((m["step"], _variant(m)), []).append(m)
    any_kind = {(_variant(m)): m for m in rm}
    seen: dict[tuple[str, str], int] = {}
    for m in om:
        kind = (m["step"], _variant(m))
        n = seen.get(kind, 0)
        seen[kind] = n + 1
        candidates = by_kind.get(kind)
        ref = candidates[min(n, len(candidates) - 1)] if candidates else any_kind.get(kind[1])
        path = f"{where}.{m['step']}.{kind[1]}"
        if ref is None:
            if not _allowed(path, allowed):
                out.append(f"{path}: message kind never recorded")
            continue
        if kind[1].startswith("logData"):
            out += diff_values(jtype_only(ref["data"]), jtype_only(m["data"]), path, allowed)
        elif kind[1] == "modelStatus":  # states: compared as sequences by order_tokens
            out += diff_values(_mask_states(ref["data"]), _mask_states(m["data"]), path, allowed)
        else:
            out += diff_values(ref["data"], m["data"], path, allowed)
    return out


def _mask_states(items: Any) -> Any:
    return [m | {"state": "<state>"} if isinstance(m, dict) and "state" in m else m for m in items] \
        if isinstance(items, list) else items


def jtype_only(value: Any) -> Any:
    """Log payloads: keys and types only (their text is free-form)."""
    if isinstance(value, dict):
        return {k: jtype_only(v) for k, v in value.items()}
    return jtype(value)


def compare(recorded: Mapping[str, Any], observed: Mapping[str, Any], allowed: Mapping[str, str]) -> list[str]:
    """Every difference of ``observed`` from ``recorded`` not covered by ``allowed`` (path prefix -> reason)."""
    out: list[str] = []
    rex, oex = recorded["exchanges"], observed["exchanges"]
    for name in sorted(set(rex) | set(oex)):
        path = f"exchanges.{name}"
        if _allowed(path, allowed):
            continue
        if name not in oex or name not in rex:
            out.append(f"{path}: {'missing in simulator' if name not in oex else 'not in the recording'}")
            continue
        r, o = rex[name], oex[name]
        if r["status"] != o["status"] and not _allowed(path + ".status", allowed):
            out.append(f"{path}.status: recorded {r['status']}, simulator {o['status']}")
        for k in sorted(set(r["headers"]) | set(o["headers"])):
            rv, ov = r["headers"].get(k), o["headers"].get(k)
            if rv != ov and not _allowed(f"{path}.headers.{k}", allowed):
                out.append(f"{path}.headers.{k}: recorded {rv!r}, simulator {ov!r}")
        out += diff_values(r["body"], o["body"], path + ".body", allowed)
    for name in ("events", "events_after_reload"):
        if name in recorded and name in observed:
            out += compare_events(recorded[name], observed[name], name, allowed)
        elif name in recorded and not _allowed(name, allowed):
            out.append(f"{name}: missing in simulator")
    for k, v in recorded.get("facts", {}).items():
        ov = observed.get("facts", {}).get(k)
        if ov != v and not _allowed(f"facts.{k}", allowed):
            out.append(f"facts.{k}: recorded {v!r}, simulator {ov!r}")
    return out


def load_recording(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """A recording written by ``scripts/record_llama_swap.py`` (the inverse of its fixture layout)."""
    root = Path(directory)
    meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
    recording: dict[str, Any] = {
        "format": meta["format"], "label": meta["label"], "facts": meta["facts"],
        "exchanges": json.loads((root / "exchanges.json").read_text(encoding="utf-8"))["exchanges"],
        "events": json.loads((root / "events.json").read_text(encoding="utf-8")),
    }
    after = root / "events_after_reload.json"
    if after.exists():
        recording["events_after_reload"] = json.loads(after.read_text(encoding="utf-8"))
    return recording
