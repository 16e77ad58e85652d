"""The simulated activity store: per-request rows, their query API and the token arithmetic of §4.4.

Real llama-swap keeps rows in an in-memory SQLite database pruned to ``metricsMaxInMemory`` rows; here a
deque with the same cap does the job. With ``store.path`` real llama-swap uses a SQLite file that is never
pruned and whose ids continue across restarts; here the file is JSON lines (one row each, appended and flushed
per insert, so a ``kill -9`` keeps every announced row), read back on start. Token numbers are not invented: the simulated upstream's response
body is parsed the way ``internal/server/metrics.go`` parses it (usage, then llama.cpp ``timings`` override,
``-1`` sentinels, all zeros when parsing fails or the status is not 200).
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from demo.wire import parse_rfc3339_ns

SORT_KEYS = {
    "id": "id",
    "time": "ts",
    "model": "model",
    "req_path": "req_path",
    "resp_status_code": "resp_status_code",
    "resp_content_type": "resp_content_type",
    "cached": "cache_tokens",
    "prompt": "input_tokens",
    "generated": "output_tokens",
    "drafted": "draft_tokens",
    "prompt_speed": "prompt_per_second",
    "gen_speed": "tokens_per_second",
    "duration": "duration_ms",
}
TOKEN_FIELDS = (
    "cache_tokens",
    "draft_tokens",
    "draft_acc_tokens",
    "input_tokens",
    "output_tokens",
    "prompt_per_second",
    "tokens_per_second",
)


class QueryError(ValueError):
    """An invalid query parameter (answered with 400)."""


@dataclass
class Tokens:
    input_tokens: int = 0
    output_tokens: int = 0
    cache_tokens: int = 0
    draft_tokens: int = 0
    draft_acc_tokens: int = 0
    prompt_per_second: float = 0.0
    tokens_per_second: float = 0.0
    timings_ms: float = 0.0  # prompt_ms + predicted_ms when llama.cpp timings were seen


def _apply(doc: Any, tok: Tokens) -> bool:
    """Fold one JSON document (whole body or one SSE chunk) into ``tok``; True if it carried numbers."""
    if not isinstance(doc, dict):
        return False
    found = False
    for usage in (doc.get("usage"), (doc.get("response") or {}).get("usage"), (doc.get("message") or {}).get("usage")):
        if not isinstance(usage, dict):
            continue
        found = True
        for dst, names in (("input_tokens", ("prompt_tokens", "input_tokens")),
                           ("output_tokens", ("completion_tokens", "output_tokens"))):
            value = next((usage[n] for n in names if isinstance(usage.get(n), int)), 0)
            if value > 0:
                setattr(tok, dst, value)
        details = usage.get("input_tokens_details") or usage.get("prompt_tokens_details") or {}
        cached = usage.get("cache_read_input_tokens", details.get("cached_tokens"))
        if isinstance(cached, int) and cached > 0:
            tok.cache_tokens = cached
    timings = doc.get("timings")
    if isinstance(timings, dict):
        found = True
        tok.input_tokens = int(timings.get("prompt_n", 0))
        tok.output_tokens = int(timings.get("predicted_n", 0))
        tok.prompt_per_second = float(timings.get("prompt_per_second", 0.0))
        tok.tokens_per_second = float(timings.get("predicted_per_second", 0.0))
        if "cache_n" in timings:
            tok.cache_tokens = int(timings["cache_n"])
        if "draft_n" in timings and "draft_n_accepted" in timings:
            tok.draft_tokens, tok.draft_acc_tokens = int(timings["draft_n"]), int(timings["draft_n_accepted"])
        tok.timings_ms = float(timings.get("prompt_ms", 0.0)) + float(timings.get("predicted_ms", 0.0))
    return found


def parse_tokens(content_type: str, body: bytes) -> Tokens:
    """Token fields of an activity row from a 200 response body (§4.4)."""
    tok = Tokens(cache_tokens=-1, draft_tokens=-1, draft_acc_tokens=-1, prompt_per_second=-1, tokens_per_second=-1)
    found = False
    try:
        if "text/event-stream" in content_type:
            for line in body.decode().splitlines():
                if line.startswith("data:") and line[5:].strip() != "[DONE]":
                    try:
                        found = _apply(json.loads(line[5:]), tok) or found
                    except json.JSONDecodeError:
                        continue
        else:
            found = _apply(json.loads(body), tok)
    except (UnicodeDecodeError, AttributeError, TypeError, ValueError):
        found = False
    return tok if found else Tokens()


def _int_param(params: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(f"invalid {name} parameter: {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise QueryError(f"{name} must be between {low} and {high}" if high else f"{name} must be >= {low}")
    return value


def _percentile(values: Sequence[float], p: float) -> float:
    pos = p * (len(values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


def histogram(values: Sequence[float]) -> dict[str, Any] | None:
    """Speed histogram of §4.2: Sturges bins clamped to 5..20, one bin when all values are equal."""
    vals = sorted(v for v in values if v > 0)
    if not vals:
        return None
    lo, hi = vals[0], vals[-1]
    if lo == hi:
        bins, size = [len(vals)], 0.0
    else:
        count = min(20, max(5, math.ceil(math.log2(len(vals)) + 1)))
        size = (hi - lo) / count
        bins = [0] * count
        for v in vals:
            bins[min(count - 1, int((v - lo) / size))] += 1
    return {"bins": bins, "min": lo, "max": hi, "binSize": size,
            "p50": _percentile(vals, 0.5), "p95": _percentile(vals, 0.95), "p99": _percentile(vals, 0.99)}


class ActivityStore:
    """Activity rows with ids from 1: in memory, pruned to the newest ``max_rows`` after each insert, or, with
    ``path``, persisted to that file (JSON lines), never pruned, ids continuing after the file's newest row."""

    def __init__(self, max_rows: int = 1000, path: str | Path | None = None) -> None:
        self.max_rows = max_rows
        self.path = Path(path) if path else None
        self.next_id = 1
        self.rows: deque[dict[str, Any]] = deque()
        if self.path is not None:
            self._load(self.path)

    @property
    def in_memory(self) -> bool:
        return self.path is None

    def _load(self, path: Path) -> None:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            return
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):  # a row cut short by a kill -9 while written: never announced
            data = data[: data.rfind(b"\n") + 1]
            with path.open("r+b") as f:
                f.truncate(len(data))
        for line in data.decode("utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and isinstance(row.get("id"), int):
                self.rows.append(row)
                self.next_id = max(self.next_id, row["id"] + 1)

    def add(self, row: dict[str, Any]) -> int:
        """Store a row (``id`` assigned here; ``ts`` = unix seconds used for filters) and return its id."""
        row["id"] = self.next_id
        self.next_id += 1
        self.rows.append(row)
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
        else:
            while len(self.rows) > self.max_rows:
                self.rows.popleft()
        return int(row["id"])

    def query(self, params: Mapping[str, str], models: Sequence[str]) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """Rows of one page plus ``page``/``limit``/``total``/``total_pages`` (raises QueryError)."""
        limit = _int_param(params, "limit", 25, 1, 999)
        page = _int_param(params, "page", 1, 1)
        min_id = _int_param(params, "min_id", 1, 1)
        max_id = _int_param(params, "max_id", 2**62, 1)
        if min_id > max_id:
            raise QueryError("min_id must not be greater than max_id")
        bounds = []
        for name in ("start", "end"):
            try:
                bounds.append(parse_rfc3339_ns(params[name]) // 1_000_000_000 if name in params else None)
            except ValueError:
                raise QueryError(f"invalid {name} parameter: {params[name]!r}") from None
        start, end = bounds
        if start is not None and end is not None and start > end:
            raise QueryError("start must not be after end")
        sort = params.get("sort", "id")
        order = params.get("order", "desc")
        if sort not in SORT_KEYS:
            raise QueryError(f"invalid sort parameter: {sort!r}")
        if order not in ("asc", "desc"):
            raise QueryError(f"invalid order parameter: {order!r}")
        rows = [
            r for r in self.rows
            if min_id <= r["id"] <= max_id
            and (not models or r["model"] in models)
            and (start is None or r["ts"] >= start)
            and (end is None or r["ts"] <= end)
        ]
        key = SORT_KEYS[sort]
        rows.sort(key=lambda r: (r["tokens"][key] if key in TOKEN_FIELDS else r[key], r["id"]), reverse=order == "desc")
        total = len(rows)
        meta = {"page": page, "limit": limit, "total": total, "total_pages": math.ceil(total / limit)}
        return rows[(page - 1) * limit: page * limit], meta

    def stats(self, model: str | None) -> dict[str, Any]:
        rows = [r for r in self.rows if model is None or r["model"] == model]
        tokens = [r["tokens"] for r in rows]
        return {
            "total_requests": len(rows),
            "total_input_tokens": sum(t["input_tokens"] for t in tokens),
            "total_output_tokens": sum(t["output_tokens"] for t in tokens),
            "total_cache_tokens": sum(t["cache_tokens"] for t in tokens if t["cache_tokens"] > 0),
            "prompt_histogram": histogram([t["prompt_per_second"] for t in tokens]),
            "gen_histogram": histogram([t["tokens_per_second"] for t in tokens]),
        }
