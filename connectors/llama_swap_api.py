"""llama-swap's HTTP protocol, in one place: the typed API client and the one ``/api/events`` reader.

Every method takes its ``httpx.AsyncClient`` from the caller (tests inject transports). Nothing here
stores or logs the API key: it is attached as a header by `auth_headers` only.

``/api/events`` is read only through `open_events` (or `LlamaSwapAPI.events`): an async iterator of decoded
envelopes (`Event`). The connector's follower, the benchmark's idle gate and its foreign-request watch all use
it; `InflightTracker` applies the ``inflight`` messages (v240+ snapshot/upsert/remove, v235–v239 full lists).
Pure parsing of the payloads stays in `connectors.llama_swap`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import aconnect_sse

from connectors import llama_swap as proto
from connectors.clock import ClockOffset
from core.providers import Provider


class LlamaSwapError(RuntimeError):
    """An HTTP error from llama-swap, with its message extracted from either error-body shape."""

    def __init__(self, status: int, message: str, path: str) -> None:
        super().__init__(f"{path}: HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.path = path


def auth_headers(provider: Provider, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    key = provider.api_key(environ)
    return {"Authorization": f"Bearer {key}"} if key else {}


def error_message(resp: httpx.Response) -> str:
    """`error` is a string before v251 and an object after; upstream errors pass through untouched."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip()[:500] or resp.reason_phrase
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, str):
            return err
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return resp.text.strip()[:500]


def parse_version_number(version: str | None) -> int | None:
    """'v250' -> 250, 'v250-5-g0bdb37' -> 250, '0'/'unknown' -> None."""
    if not version:
        return None
    v = version.strip().lstrip("v")
    digits = ""
    for ch in v:
        if ch.isdigit():
            digits += ch
        else:
            break
    n = int(digits) if digits else 0
    return n if n >= 100 else None


@dataclass(frozen=True)
class Features:
    """What this instance's version can do (feature detection from /api/version)."""

    version: str | None
    number: int | None
    dirty: bool  # a build after the release tag (e.g. v250-5-g...)

    @property
    def activity_id_filter(self) -> bool:
        # min_id/max_id exist only after v250; unknown source builds are assumed modern and probed.
        if self.number is None:
            return True
        return self.number > 250 or (self.number == 250 and self.dirty)

    @property
    def inflight_deltas(self) -> bool:
        return self.number is None or self.number >= 240

    @classmethod
    def from_version(cls, version: str | None) -> Features:
        num = parse_version_number(version)
        dirty = bool(version and "-" in version.strip().lstrip("v"))
        return cls(version=version, number=num, dirty=dirty)


@dataclass(frozen=True)
class Event:
    """One ``/api/events`` message: the envelope's type and its decoded data.

    A message that does not follow the format has ``type == ""``, ``data is None`` and ``error`` set; ``raw`` is
    always the ``data:`` payload as received (the follower stores it)."""

    type: str
    data: Any
    raw: str
    error: str | None = None


@contextlib.asynccontextmanager
async def open_events(
    client: httpx.AsyncClient,
    base_url: str,
    headers: Mapping[str, str] | None = None,
    *,
    connect_timeout_s: float = 10.0,
) -> AsyncIterator[AsyncIterator[Event]]:
    """Open ``GET /api/events`` and yield an async iterator of its decoded messages (ends when the server closes
    the stream). An HTTP error answer raises `LlamaSwapError`; transport errors are httpx's own."""
    url = base_url.rstrip("/") + "/api/events"
    timeout = httpx.Timeout(connect_timeout_s, read=None)
    async with aconnect_sse(client, "GET", url, headers=dict(headers or {}), timeout=timeout) as source:
        resp = source.response
        if resp.status_code >= 400:
            await resp.aread()
            raise LlamaSwapError(resp.status_code, error_message(resp), "/api/events")

        async def messages() -> AsyncIterator[Event]:
            async for sse in source.aiter_sse():
                yield decode_event(sse.data)

        yield messages()


def decode_event(raw: str) -> Event:
    """One ``data:`` payload → `Event` (a malformed one has ``type == ""`` and ``error`` set; never raises)."""
    try:
        typ, data = proto.decode_envelope(raw)
    except proto.ProtocolError as exc:
        return Event("", None, raw, str(exc))
    return Event(typ, data, raw)


@dataclass
class InflightTracker:
    """The live in-flight list, kept from ``inflight`` messages (malformed ones are ignored)."""

    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    have_snapshot: bool = False
    full_lists: bool = False  # v235–v239: every message is the whole list, without request headers
    seen_ids: set[str] = field(default_factory=set)

    def apply(self, data: Any) -> bool:
        """Apply one ``inflight`` message; False when it was malformed (and changed nothing)."""
        try:
            self.requests = proto.inflight_requests(data, self.requests)
        except proto.ProtocolError:
            return False
        op = data.get("operation")
        if op is None or op == "snapshot":
            self.have_snapshot = True
            self.full_lists = self.full_lists or op is None
        self.seen_ids.update(self.requests)
        return True


class LlamaSwapAPI:
    """Thin request layer; JSON in, JSON out, raising `LlamaSwapError` on non-2xx answers."""

    def __init__(
        self, provider: Provider, client: httpx.AsyncClient, environ: Mapping[str, str] | None = None
    ):
        self.provider = provider
        self.client = client
        self.base = provider.base_url.rstrip("/")
        self.headers = auth_headers(provider, environ)
        self.clock = ClockOffset()  # the instance's clock vs ours, from every answer's Date header
        self.answered_at: tuple[float, float] | None = None  # (monotonic, wall) of the last answer below 500

    async def _get(self, path: str, params: Any = None, timeout: float | None = 15.0) -> httpx.Response:
        sent = time.time()
        try:
            resp = await self.client.get(self.base + path, params=params, headers=self.headers, timeout=timeout)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # a pooled keep-alive connection the server closed just as we reused it: GETs are safe to retry once
            sent = time.time()
            resp = await self.client.get(self.base + path, params=params, headers=self.headers, timeout=timeout)
        received = time.time()
        self.clock.observe(resp.headers.get("date"), sent, received)
        if resp.status_code < 500:  # the instance itself answered: evidence of liveness (see `recently_answered`)
            self.answered_at = (time.monotonic(), received)
        if resp.status_code >= 400:
            raise LlamaSwapError(resp.status_code, error_message(resp), path)
        return resp

    async def _post(self, path: str, json: Any = None, timeout: float | None = 60.0) -> httpx.Response:
        resp = await self.client.post(self.base + path, json=json, headers=self.headers, timeout=timeout)
        if resp.status_code >= 400:
            raise LlamaSwapError(resp.status_code, error_message(resp), path)
        return resp

    def events(self) -> contextlib.AbstractAsyncContextManager[AsyncIterator[Event]]:
        """``async with api.events() as stream: async for ev in stream: ...`` (see `open_events`)."""
        return open_events(self.client, self.base, self.headers)

    async def upstream_get(self, model_id: str, path: str, headers: Mapping[str, str] | None = None,
                           timeout: float = 15.0) -> httpx.Response:
        """``GET /upstream/<model>/<path>``: the model's own server through llama-swap (loads it if needed)."""
        url = f"{self.base}/upstream/{quote(model_id, safe='/')}/{path.lstrip('/')}"
        return await self.client.get(url, headers={**self.headers, **(headers or {})}, timeout=timeout)

    def recently_answered(self, within_s: float) -> float | None:
        """The wall-clock time of the last answer below HTTP 500 to a request of this client, if it came within
        the last ``within_s`` seconds: as good a sign of life as a ``/wol-health`` probe, so a follower that polls
        anyway does not also probe."""
        if self.answered_at is None or time.monotonic() - self.answered_at[0] >= within_s:
            return None
        return self.answered_at[1]

    async def alive(self) -> bool:
        try:
            resp = await self.client.get(self.base + "/wol-health", timeout=5.0)
        except httpx.HTTPError:
            return False
        return resp.status_code == 200

    async def version(self) -> dict[str, Any]:
        return dict((await self._get("/api/version")).json())

    async def hardware(self) -> dict[str, Any] | None:
        try:
            return dict((await self._get("/api/hardware")).json())
        except LlamaSwapError as exc:
            if exc.status in (404, 503):  # before v247, or detection failed
                return None
            raise

    async def running(self) -> list[dict[str, Any]]:
        return list((await self._get("/running")).json().get("running") or [])

    async def models(self) -> list[dict[str, Any]]:
        return list((await self._get("/v1/models")).json().get("data") or [])

    async def activity_page(self, **params: Any) -> dict[str, Any]:
        return dict((await self._get("/api/metrics/activity", params=params)).json())

    async def performance(self, after: str | None = None) -> dict[str, Any]:
        params = {"after": after} if after else None
        return dict((await self._get("/api/performance", params=params)).json())

    async def capture(self, upstream_id: int) -> dict[str, Any] | None:
        try:
            return dict((await self._get(f"/api/captures/{int(upstream_id)}")).json())
        except LlamaSwapError as exc:
            if exc.status == 404:
                return None
            raise

    async def unload_all(self) -> None:
        await self._post("/api/models/unload", timeout=120.0)

    async def unload(self, model_id: str) -> None:
        await self._post("/api/models/unload/" + quote(model_id, safe="/"), timeout=120.0)

    async def cancel_inflight(self, request_id: str) -> bool:
        try:
            await self._post(f"/api/inflight/{quote(str(request_id), safe='')}/cancel", timeout=15.0)
        except LlamaSwapError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def warm(self, model_id: str, timeout: float = 180.0) -> float:
        """Load a model without creating an activity row: GET /upstream/<id>/ (what llama-swap's UI does).

        Any answer from the model's server (even 404 from servers with no root page) means it is loaded.
        Returns the seconds it took.
        """
        t0 = time.monotonic()
        path = "/upstream/" + quote(model_id, safe="/") + "/"
        resp = await self.client.get(
            self.base + path,
            params={"_": str(int(time.time() * 1000))},
            headers=self.headers,
            timeout=timeout,
        )
        if resp.status_code >= 500 or resp.status_code in (401, 403):
            raise LlamaSwapError(resp.status_code, error_message(resp), path)
        if resp.status_code == 404 and "llama-swap" in resp.text:
            raise LlamaSwapError(resp.status_code, error_message(resp), path)
        return time.monotonic() - t0
