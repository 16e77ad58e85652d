"""What connectors emit: plain typed records, one class per warehouse table.

Connectors know nothing about SQL; the warehouse writer (`warehouse.ingest`) maps each record type to
its table. Records are picklable so they can be spooled to disk while Postgres is away.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class RawEvent:
    provider_id: str
    boot_marker: str | None
    received_at: datetime
    type: str
    payload: Any
    uid: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class Boot:
    provider_id: str
    boot_marker: str
    version: str | None
    commit: str | None
    build_date: str | None
    hardware: dict[str, Any] | None
    seen_at: datetime


@dataclass(frozen=True, slots=True)
class Epoch:
    provider_id: str
    epoch: str
    started_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class ConfigReload:
    provider_id: str
    boot_marker: str
    detected_at: datetime
    evidence: str


@dataclass(frozen=True, slots=True)
class Activity:
    provider_id: str
    epoch: str
    upstream_id: int
    finished_at: datetime
    model_id: str
    req_path: str
    resp_content_type: str
    status_code: int
    input_tokens: int
    output_tokens: int
    cache_tokens: int
    draft_tokens: int
    draft_acc_tokens: int
    prompt_per_second: float
    tokens_per_second: float
    duration_ms: int
    has_capture: bool
    error_msg: str | None
    metadata: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class PerfSample:
    provider_id: str
    sampled_at: datetime
    raw_ts: str
    cpu_util_pct: float
    cpu_util_per_core: list[float]
    mem_total_mb: float
    mem_used_mb: float
    mem_free_mb: float
    swap_total_mb: float
    swap_used_mb: float
    load_avg_1: float
    load_avg_5: float
    load_avg_15: float
    net_io: list[dict[str, Any]] | None


@dataclass(frozen=True, slots=True)
class GpuSample:
    provider_id: str
    gpu_key: str
    sampled_at: datetime
    raw_ts: str
    gpu_index: int
    name: str
    temp_c: float
    vram_temp_c: float
    util_pct: float
    mem_util_pct: float
    mem_used_mb: float
    mem_total_mb: float
    fan_pct: float
    power_w: float


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A catalog upsert; None fields leave the stored value unchanged."""

    provider_id: str
    model_id: str
    seen_at: datetime
    name: str | None = None
    description: str | None = None
    kind: str | None = None
    unlisted: bool | None = None
    aliases: list[str] | None = None
    capabilities: dict[str, Any] | None = None
    context_length: int | None = None
    meta: dict[str, Any] | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    provider_id: str
    model_id: str
    observed_at: datetime
    boot_marker: str | None
    from_state: str | None
    to_state: str
    source: str


@dataclass(frozen=True, slots=True)
class Inflight:
    provider_id: str
    observed_at: datetime
    requests: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class LogChunk:
    provider_id: str
    source: str
    received_at: datetime
    text: str
    uid: uuid.UUID = field(default_factory=uuid.uuid4)


@dataclass(frozen=True, slots=True)
class Capture:
    provider_id: str
    epoch: str
    upstream_id: int
    payload: dict[str, Any]
    fetched_at: datetime


@dataclass(frozen=True, slots=True)
class Gap:
    provider_id: str
    stream: str
    epoch: str | None
    from_id: int | None
    to_id: int | None
    from_at: datetime | None
    to_at: datetime | None
    detected_at: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class Health:
    provider_id: str
    status: str
    updated_at: datetime
    version: str | None = None
    boot_marker: str | None = None
    connected_since: datetime | None = None
    last_event_at: datetime | None = None
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class GatewayRequest:
    """One request served by the gateway (table ``gateway_requests``, see ``warehouse.schema_gateway``).

    ``fallbacks`` is a list of ``{"target": "provider/model", "why": "..."}``; ``consumer_source`` is
    ``'key'``, ``'header'`` or ``'user-agent'``; ``endpoint`` is ``'chat'``, ``'completions'`` or ``'embeddings'``.
    """

    request_id: uuid.UUID
    started_at: datetime
    replica: str
    consumer: str
    consumer_source: str
    requested_model: str
    endpoint: str
    stream: bool
    status: int
    total_ms: float
    policy: str | None = None
    provider_id: str | None = None
    model_id: str | None = None
    reason: str | None = None
    fallbacks: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


Record = (
    RawEvent | Boot | Epoch | ConfigReload | Activity | PerfSample | GpuSample | ModelInfo | Transition
    | Inflight | LogChunk | Capture | Gap | Health | GatewayRequest
)


@dataclass
class ProviderState:
    """What the follower knows; loaded from the warehouse at start, advanced as records are emitted."""

    boot_marker: str | None = None
    epoch: str | None = None
    cursor: int = 0
    cursor_finished_at: datetime | None = None
    cursor_model: str | None = None
    cursor_signature: tuple[Any, ...] | None = None  # the row at the cursor, to recognise it after a restart
    sys_after: str | None = None
    gpu_after: str | None = None
    model_states: dict[str, str] = field(default_factory=dict)
    followed_to_end: bool = False  # the previous stream ended with every announced id read
    inflight_at_close: int = 0  # requests in flight when the server closed the stream (their rows come after)
    lost_at: datetime | None = None  # connector clock: the last observation of the boot we were following
    absent_at: list[datetime] = field(default_factory=list)  # connect attempts refused since lost_at
    id_filter: bool | None = None  # min_id supported (probed)
    log_tails: dict[str, str] = field(default_factory=dict)
    version: str | None = None
