"""Log tails: the newest stored chunks of one provider's log source, bounded in size, plus a line filter.

Log chunks are arbitrary byte chunks (not lines), so a tail is the newest chunks concatenated in arrival
order, cut to at most ``max_bytes`` and to whole lines. ANSI colour codes are stripped and
credential-looking values redacted before anything is returned.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import polars as pl
from sqlalchemy import text

from warehouse.queries._frames import UTC_TS, Db, frame
from warehouse.queries.redaction import redact_text

MAX_TAIL_BYTES = 256 * 1024
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


@dataclass(frozen=True)
class LogTail:
    text: str
    truncated: bool  # older text exists beyond the byte bound
    newest_at: datetime | None
    chunks: int


def log_sources(db: Db, provider_id: str, since: datetime) -> list[str]:
    """Log sources (proxy, upstream, per-model…) that received text since ``since``."""
    df = frame(
        db,
        text(
            "SELECT DISTINCT source FROM logs WHERE provider_id = :p AND received_at >= :since ORDER BY source"
        ),
        {"p": provider_id, "since": since},
        {"source": pl.Utf8},
    )
    return [str(s) for s in df["source"].to_list()]


def log_tail(
    db: Db, provider_id: str, source: str, max_bytes: int = MAX_TAIL_BYTES, max_chunks: int = 5000
) -> LogTail:
    """The newest ``max_bytes`` of one source, whole lines only (the oldest partial line is dropped)."""
    df = frame(
        db,
        text(
            """
SELECT received_at, text, octet_length(text) AS n FROM logs
WHERE provider_id = :p AND source = :s
ORDER BY received_at DESC, id DESC LIMIT :lim
"""
        ),
        {"p": provider_id, "s": source, "lim": max_chunks},
        {"received_at": UTC_TS, "text": pl.Utf8, "n": pl.Int64},
    )
    taken: list[str] = []
    used = 0
    truncated = df.height >= max_chunks
    for chunk, n in zip(df["text"].to_list(), df["n"].to_list(), strict=True):
        if used + n > max_bytes:
            room = max_bytes - used
            if room > 0:
                taken.append(chunk.encode()[-room:].decode("utf-8", "ignore"))
            truncated = True
            break
        taken.append(chunk)
        used += n
    body = "".join(reversed(taken))
    if truncated and "\n" in body:
        body = body.split("\n", 1)[1]
    body = redact_text(_ANSI.sub("", body))
    newest = df["received_at"][0] if df.height else None
    return LogTail(text=body, truncated=truncated, newest_at=newest, chunks=len(taken))


def grep_lines(body: str, pattern: str, max_lines: int = 2000, ignore_case: bool = True) -> list[str]:
    """The last ``max_lines`` lines matching ``pattern`` (every line when it is empty).

    Raises ``re.error`` for an invalid pattern; the caller shows it as a message.
    """
    lines = body.splitlines()
    if pattern:
        rx = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        lines = [ln for ln in lines if rx.search(ln)]
    return lines[-max_lines:] if max_lines > 0 else []


# BooControl's own reads of llama-swap (the connector's reconcile and polls, capture and log fetches) as
# llama-swap's access log prints them:  [INFO] Request <ip> "GET <path> HTTP/1.1" <status> <bytes> "<UA>" <t>
# BooControl talks with httpx's default user agent. A user's GET of the same paths from a browser or
# another client has another user agent and stays; so do actions (POSTs, and warm's GET /upstream/…).
OWN_PATHS = (
    "/api/captures/",
    "/api/metrics/activity",
    "/api/events",
    "/api/version",
    "/api/hardware",
    "/api/performance",
    "/running",
    "/v1/models",
    "/logs/stream",
)
_ACCESS = re.compile(r'\bRequest \S+ "GET (?P<path>\S+) [^"]*" \d+ \d+ "(?P<agent>[^"]*)"')


def is_own_request(line: str) -> bool:
    """True for an access-log line of BooControl's own polling (see ``OWN_PATHS``)."""
    m = _ACCESS.search(line)
    if m is None or not m["agent"].startswith("python-httpx/"):
        return False
    path = m["path"].split("?", 1)[0]
    return any(path == p or path.startswith(p if p.endswith("/") else p + "/") for p in OWN_PATHS)


def without_own_requests(body: str) -> tuple[str, int]:
    """``body`` without BooControl's own polling lines, and how many were dropped."""
    kept, dropped = [], 0
    for line in body.splitlines():
        if is_own_request(line):
            dropped += 1
        else:
            kept.append(line)
    return "\n".join(kept), dropped
