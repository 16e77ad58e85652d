"""Parsing llama-swap's wire formats into records (pure functions, no I/O).

SSE messages are ``event:message`` / ``data:<envelope>``; the envelope's ``data`` is a JSON *string*
holding JSON again (double-encoded). Timestamps carry the host's UTC offset and up to nanosecond
fractions; raw strings are kept for cursors, parsed values (UTC, microseconds) for storage.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from warehouse.records import Activity, GpuSample, ModelInfo, PerfSample, Transition


class ProtocolError(ValueError):
    """A message that does not follow llama-swap's format; logged and skipped, never fatal."""


_FRAC_RE = re.compile(r"^(?P<head>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(?P<frac>\d+))?(?P<tz>Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(raw: str) -> datetime:
    """RFC 3339 with up to 9 fractional digits -> aware UTC datetime (truncated to microseconds)."""
    m = _FRAC_RE.match(raw.strip()) if isinstance(raw, str) else None
    if not m:
        raise ProtocolError(f"bad timestamp {raw!r}")
    frac = (m.group("frac") or "")[:6].ljust(6, "0")
    tz = m.group("tz")
    tz = "+00:00" if tz == "Z" else tz
    return datetime.fromisoformat(f"{m.group('head')}.{frac}{tz}").astimezone(UTC)


def timestamp_ns(raw: str) -> int:
    """RFC 3339 with up to 9 fractional digits -> nanoseconds since the Unix epoch, exact (for ordering cursors the
    way llama-swap's Go ``time.Time`` does; Go drops trailing zeros, so the strings themselves do not sort)."""
    m = _FRAC_RE.match(raw.strip()) if isinstance(raw, str) else None
    if not m or len(m.group("frac") or "") > 9:
        raise ProtocolError(f"bad timestamp {raw!r}")
    tz = m.group("tz")
    whole = datetime.fromisoformat(m.group("head") + ("+00:00" if tz == "Z" else tz))
    return int(whole.timestamp()) * 1_000_000_000 + int((m.group("frac") or "").ljust(9, "0"))


def decode_envelope(data: str) -> tuple[str, Any]:
    """Decode one SSE ``data:`` payload into (type, decoded data)."""
    try:
        env = json.loads(data)
    except ValueError as exc:
        raise ProtocolError(f"envelope is not JSON: {exc}") from None
    if not isinstance(env, dict) or not isinstance(env.get("type"), str):
        raise ProtocolError("envelope has no 'type'")
    inner = env.get("data")
    if isinstance(inner, str):
        try:
            inner = json.loads(inner) if inner else None
        except ValueError as exc:
            raise ProtocolError(f"{env['type']} data is not JSON: {exc}") from None
    return env["type"], inner


def _num(d: dict[str, Any], key: str, default: float = 0.0) -> float:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return default
    return float(v)


def _int(d: dict[str, Any], key: str, default: int = 0) -> int:
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return default
    return int(v)


def parse_activity(entry: Any, provider_id: str, epoch: str) -> Activity:
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), int):
        raise ProtocolError("activity entry without an integer id")
    tokens = entry.get("tokens") if isinstance(entry.get("tokens"), dict) else {}
    assert isinstance(tokens, dict)
    meta = entry.get("metadata")
    return Activity(
        provider_id=provider_id,
        epoch=epoch,
        upstream_id=int(entry["id"]),
        finished_at=parse_timestamp(str(entry.get("timestamp", ""))),
        model_id=str(entry.get("model", "")),
        req_path=str(entry.get("req_path", "")),
        resp_content_type=str(entry.get("resp_content_type", "")),
        status_code=_int(entry, "resp_status_code"),
        input_tokens=_int(tokens, "input_tokens"),
        output_tokens=_int(tokens, "output_tokens"),
        cache_tokens=_int(tokens, "cache_tokens", -1),
        draft_tokens=_int(tokens, "draft_tokens", -1),
        draft_acc_tokens=_int(tokens, "draft_acc_tokens", -1),
        prompt_per_second=_num(tokens, "prompt_per_second", -1.0),
        tokens_per_second=_num(tokens, "tokens_per_second", -1.0),
        duration_ms=_int(entry, "duration_ms"),
        has_capture=bool(entry.get("has_capture", False)),
        error_msg=(str(entry["error_msg"]) if entry.get("error_msg") else None),
        metadata=meta if isinstance(meta, dict) and meta else None,
    )


def parse_sys_stat(s: Any, provider_id: str) -> PerfSample:
    if not isinstance(s, dict) or "timestamp" not in s:
        raise ProtocolError("sys_stat without timestamp")
    cores = [float(x) for x in (s.get("cpu_util_per_core") or []) if isinstance(x, (int, float))]
    net = s.get("net_io")
    return PerfSample(
        provider_id=provider_id,
        sampled_at=parse_timestamp(s["timestamp"]),
        raw_ts=s["timestamp"],
        cpu_util_pct=(sum(cores) / len(cores)) if cores else 0.0,
        cpu_util_per_core=cores,
        mem_total_mb=_num(s, "mem_total_mb"),
        mem_used_mb=_num(s, "mem_used_mb"),
        mem_free_mb=_num(s, "mem_free_mb"),
        swap_total_mb=_num(s, "swap_total_mb"),
        swap_used_mb=_num(s, "swap_used_mb"),
        load_avg_1=_num(s, "load_avg_1"),
        load_avg_5=_num(s, "load_avg_5"),
        load_avg_15=_num(s, "load_avg_15"),
        net_io=net if isinstance(net, list) else None,
    )


def parse_gpu_stat(g: Any, provider_id: str) -> GpuSample:
    if not isinstance(g, dict) or "timestamp" not in g:
        raise ProtocolError("gpu_stat without timestamp")
    uuid_ = g.get("uuid") or ""
    idx = _int(g, "id")
    return GpuSample(
        provider_id=provider_id,
        gpu_key=str(uuid_) if uuid_ else f"gpu{idx}",
        sampled_at=parse_timestamp(g["timestamp"]),
        raw_ts=g["timestamp"],
        gpu_index=idx,
        name=str(g.get("name", "")),
        temp_c=_num(g, "temp_c"),
        vram_temp_c=_num(g, "vram_temp_c"),
        util_pct=_num(g, "gpu_util_pct"),
        mem_util_pct=_num(g, "mem_util_pct"),
        mem_used_mb=_num(g, "mem_used_mb"),
        mem_total_mb=_num(g, "mem_total_mb"),
        fan_pct=_num(g, "fan_speed_pct"),
        power_w=_num(g, "power_draw_w"),
    )


def parse_model_status(items: Any, provider_id: str, seen_at: datetime) -> list[ModelInfo]:
    if not isinstance(items, list):
        raise ProtocolError("modelStatus data is not a list")
    out = []
    for m in items:
        if not isinstance(m, dict) or not isinstance(m.get("id"), str):
            raise ProtocolError("modelStatus element without an id")
        is_peer = bool(m.get("peerID"))
        caps = m.get("capabilities")
        out.append(
            ModelInfo(
                provider_id=provider_id,
                model_id=m["id"],
                seen_at=seen_at,
                name=str(m.get("name") or "") or None,
                description=str(m.get("description") or "") or None,
                kind="peer" if is_peer else "model",
                unlisted=bool(m.get("unlisted", False)),
                aliases=[str(a) for a in m.get("aliases") or []],
                capabilities=caps if isinstance(caps, dict) else None,
                context_length=m.get("context_length") if isinstance(m.get("context_length"), int) else None,
                state=(str(m.get("state") or "") or None) if not is_peer else None,
            )
        )
    return out


def parse_v1_models(items: list[dict[str, Any]], provider_id: str, seen_at: datetime) -> list[ModelInfo]:
    out = []
    for m in items:
        if not isinstance(m, dict) or not isinstance(m.get("id"), str):
            continue
        meta = m.get("meta") if isinstance(m.get("meta"), dict) else {}
        assert isinstance(meta, dict)
        ls = meta.get("llamaswap") if isinstance(meta.get("llamaswap"), dict) else {}
        assert isinstance(ls, dict)
        caps = m.get("capabilities")
        out.append(
            ModelInfo(
                provider_id=provider_id,
                model_id=m["id"],
                seen_at=seen_at,
                name=m.get("name") or None,
                description=m.get("description") or None,
                kind=str(ls.get("type") or "model"),
                capabilities=caps if isinstance(caps, dict) else None,
                context_length=m.get("context_length") if isinstance(m.get("context_length"), int) else None,
                meta=meta or None,
            )
        )
    return out


def diff_states(
    previous: dict[str, str], current: list[ModelInfo], provider_id: str, observed_at: datetime,
    boot_marker: str | None, source: str = "modelStatus",
) -> list[Transition]:
    """Transitions between two successive modelStatus lists (quick intermediate states may be missed)."""
    out = []
    for m in current:
        if m.state is None:
            continue
        before = previous.get(m.model_id)
        if before != m.state:
            out.append(Transition(provider_id, m.model_id, observed_at, boot_marker, before, m.state, source))
    return out


_SECRET_FLAG_RE = re.compile(
    r"(?P<flag>--?(?:api[-_]?key|hf[-_]?token|token|password|secret|auth[-_a-z]*)(?:=|\s+))(?P<val>\S+)",
    re.IGNORECASE,
)
_ENV_SECRET_RE = re.compile(r"\b(?P<name>[A-Z0-9_]*(?:KEY|TOKEN|SECRET|PASSWORD)[A-Z0-9_]*)=(?P<val>\S+)")
_BEARERISH_RE = re.compile(r"\b(sk|hf|ghp|xox[bap])[-_][A-Za-z0-9_-]{8,}")


def says_simulated(*payloads: Any) -> bool:
    """Whether an ``/api/version`` or ``/api/hardware`` answer comes from a simulator: BooControl's demo
    simulator adds ``"simulated": true``, a key real llama-swap never sends (so a real host never counts)."""
    return any(isinstance(p, dict) and p.get("simulated") is True for p in payloads)


def redact_command(cmd: str) -> str:
    """Hide secrets that /running's expanded command lines may reveal."""
    cmd = _SECRET_FLAG_RE.sub(lambda m: m.group("flag") + "[REDACTED]", cmd)
    cmd = _ENV_SECRET_RE.sub(lambda m: m.group("name") + "=[REDACTED]", cmd)
    return _BEARERISH_RE.sub("[REDACTED]", cmd)


def redact_running(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "cmd": redact_command(str(r.get("cmd", "")))} for r in items]


def inflight_requests(data: Any, current: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Apply one `inflight` message (snapshot/upsert/remove, or pre-v240 full list) to the current map."""
    if not isinstance(data, dict):
        raise ProtocolError("inflight data is not an object")
    op = data.get("operation")
    if op is None or op == "snapshot":  # pre-v240 full lists have no operation
        reqs = data.get("requests") or []  # an empty snapshot omits "requests"
        if not isinstance(reqs, list):
            raise ProtocolError("inflight requests is not a list")
        return {str(r.get("id")): r for r in reqs if isinstance(r, dict)}
    if op == "upsert":
        r = data.get("request")
        if not isinstance(r, dict) or "id" not in r:
            raise ProtocolError("inflight upsert without a request id")
        return {**current, str(r["id"]): r}
    if op == "remove":
        rid = str(data.get("id"))
        return {k: v for k, v in current.items() if k != rid}
    raise ProtocolError(f"unknown inflight operation {op!r}")
