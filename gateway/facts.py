"""What is measured about every routable model, in one frozen snapshot the ranking reads.

`load_facts(engine, now)` gathers it from Postgres (queries in `warehouse.queries.routing`): the catalog
(state, context window, capabilities, provider online, measured load time), eval scores per suite and
metric (current, not stale), speed from live activity and from the newest benchmark run, joules per
token, and which hosts are under a fleet lease. `gateway.ranking.rank` is a pure function of these facts
and the gateway's own live counters.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from core.kinds import UnknownKind, kind_spec
from warehouse.queries import routing

# A model's newest LIVE_SAMPLE successful requests of the last LIVE_WINDOW_S seconds are its "live speed" when
# there are at least LIVE_MIN_REQUESTS of them; otherwise the newest benchmark run speaks for the model.
LIVE_WINDOW_S = 24 * 3600
LIVE_MIN_REQUESTS = 5
LIVE_SAMPLE = 200
CANARY_WINDOW_S = 15 * 60  # a canary result older than this says nothing about now

_EMBED_RE = re.compile(r"embed", re.IGNORECASE)


@dataclass(frozen=True)
class Speed:
    """Measured speed of one model from one source (percentiles keyed ``p50``/``p90``/``p95``/``p99``)."""

    source: str  # plain words: "live activity (24 h, 41 requests)" / "bench run 12"
    samples: int
    ttft_ms: Mapping[str, float] = field(default_factory=dict)
    tpot_ms: Mapping[str, float] = field(default_factory=dict)
    e2e_ms: Mapping[str, float] = field(default_factory=dict)
    gen_tps: Mapping[str, float] = field(default_factory=dict)
    prefill_tps: float | None = None  # median prompt tokens per second


@dataclass(frozen=True)
class ModelFacts:
    provider_id: str
    model_id: str
    kind: str  # the provider's kind (core.kinds)
    local: bool  # self-hosted (a llama-swap, a private/loopback address) rather than a cloud API
    provider_online: bool
    state: str | None  # llama-swap's model state: ready / starting / stopped / ...; None when not reported
    context_length: int | None
    endpoints: frozenset[str]  # of chat / completions / embeddings
    load_ms: float | None = None  # median measured load time (starting -> ready)
    quality: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # suite -> metric -> value
    live: Speed | None = None
    bench: Speed | None = None
    j_per_token: float | None = None
    lease: str | None = None  # the host lease holding this provider, in words; None when free
    canary_ok: bool | None = None  # last canary result where canaries are recorded

    @property
    def key(self) -> str:
        return f"{self.provider_id}/{self.model_id}"

    @property
    def loaded(self) -> bool:
        """Resident right now: llama-swap says ready, or the provider has no notion of loading (a cloud API)."""
        return self.state == "ready" or self.state is None

    @property
    def speed(self) -> Speed | None:
        """The speed the ranking uses: live activity when there is enough of it, else the newest bench run."""
        return self.live if self.live is not None else self.bench


@dataclass(frozen=True)
class FleetFacts:
    at: datetime
    models: tuple[ModelFacts, ...] = ()

    def get(self, key: str) -> ModelFacts | None:
        for m in self.models:
            if m.key == key:
                return m
        return None


def is_local(kind_host_operations: bool, base_url: str, labels: Mapping[str, Any]) -> bool:
    """Whether a provider is self-hosted. A ``location`` label (``local``/``cloud``) decides when given; else a
    provider with host operations (llama-swap) or a loopback/private/link-local address or ``.local``/bare
    host name is local; any other address is treated as a cloud API."""
    loc = str(labels.get("location", "")).strip().lower()
    if loc in ("local", "cloud"):
        return loc == "local"
    if kind_host_operations:
        return True
    host = urlsplit(base_url).hostname or ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith((".local", ".lan", ".internal")) or "." not in host
    return ip.is_loopback or ip.is_private or ip.is_link_local


def endpoints_of(model_id: str, capabilities: Mapping[str, Any] | None) -> frozenset[str]:
    """What a model can serve. An ``embeddings``/``embedding`` capability or ``embed`` in the id means an
    embedding model (embeddings only); anything else serves chat and completions."""
    caps = capabilities or {}
    if caps.get("embeddings") or caps.get("embedding") or _EMBED_RE.search(model_id):
        return frozenset({"embeddings"})
    return frozenset({"chat", "completions"})


def load_facts(engine: Engine, now: datetime) -> FleetFacts:
    """Everything measured that the ranking needs, as of ``now``."""
    models = routing.routable_models(engine)
    quality: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for r in routing.eval_quality(engine).iter_rows(named=True):
        quality.setdefault((r["provider_id"], r["model_id"]), {}).setdefault(r["suite_name"], {})[r["metric"]] = r[
            "value"
        ]
    since = now - timedelta(seconds=LIVE_WINDOW_S)
    live = {
        (r["provider_id"], r["model_id"]): _speed(r, f"live activity ({LIVE_WINDOW_S // 3600} h, {r['requests']} "
                                                     "requests)")
        for r in routing.live_speed(engine, since, now, LIVE_MIN_REQUESTS, LIVE_SAMPLE).iter_rows(named=True)
    }
    bench = {
        (r["provider_id"], r["model_id"]): _speed(
            r, f"bench run {r['run_id']}" + (" (simulated host)" if r["simulated"] else ""))
        for r in routing.bench_speed(engine, now).iter_rows(named=True)
    }  # fmt: skip
    joules = {(r["provider_id"], r["model_id"]): float(r["j_per_token"])
              for r in routing.energy(engine, now).iter_rows(named=True)}  # fmt: skip
    leases = {
        r["provider_id"]: f"{r['purpose']} by {r['holder']} until {r['expires_at']:%H:%M:%S} UTC"
        for r in routing.host_leases(engine, now).iter_rows(named=True)
    }
    canary = {
        (r["provider_id"], r["model_id"]): bool(r["ok"])
        for r in routing.canary_results(engine, now - timedelta(seconds=CANARY_WINDOW_S), now).iter_rows(named=True)
    }
    out: list[ModelFacts] = []
    for r in models.iter_rows(named=True):
        k = (r["provider_id"], r["model_id"])
        labels = json.loads(r["labels"]) if r["labels"] else {}
        caps = json.loads(r["capabilities"]) if r["capabilities"] else {}
        try:
            spec = kind_spec(r["kind"])
        except UnknownKind:
            continue  # a kind this version does not know cannot be called
        out.append(ModelFacts(
            provider_id=r["provider_id"],
            model_id=r["model_id"],
            kind=r["kind"],
            local=is_local(spec.host_operations, r["base_url"], labels if isinstance(labels, dict) else {}),
            provider_online=bool(r["provider_online"]),
            state=r["state"] if spec.host_operations else None,
            context_length=r["context_length"],
            endpoints=endpoints_of(r["model_id"], caps if isinstance(caps, dict) else {}),
            load_ms=r["load_ms_p50"],
            quality=quality.get(k, {}),
            live=live.get(k),
            bench=bench.get(k),
            j_per_token=joules.get(k),
            lease=leases.get(r["provider_id"]),
            canary_ok=canary.get(k),
        ))  # fmt: skip
    return FleetFacts(at=now, models=tuple(out))


def _speed(r: Mapping[str, Any], source: str) -> Speed:
    def pcts(metric: str) -> dict[str, float]:
        return {p: float(r[f"{metric}_{p}"]) for p in routing.PCTS if r[f"{metric}_{p}"] is not None}

    gen = r["gen_tps_p50"]
    return Speed(
        source=source,
        samples=int(r["requests"] or 0),
        ttft_ms=pcts("ttft"),
        tpot_ms=pcts("tpot"),
        e2e_ms=pcts("e2e"),
        gen_tps={"p50": float(gen)} if gen else {},
        prefill_tps=float(r["prefill_tps"]) if r["prefill_tps"] else None,
    )
