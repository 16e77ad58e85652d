"""Keeping credentials out of everything the cockpit stores or shows.

llama-swap redacts credential headers itself, but peers, older builds, error strings and process command
lines (``/running`` ``cmd``, proxy log lines) can still carry a key. Everything that leaves this layer
for the database or the UI passes through these functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

REDACTED = "[REDACTED]"
SENSITIVE_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key", "x-auth-token"}
)

# `--api-key VALUE`, `--api-key=VALUE`, `api_key: VALUE`, `Bearer VALUE`, `sk-...` style tokens, and
# `?api_key=` / `&token=` in URLs.
_PATTERNS = [
    re.compile(r"(?i)(--?(?:api[-_]?key|token|password|secret)[= ]+)(\S+)"),
    re.compile(r"(?i)\b((?:api[-_]?key|apikey|token|password|secret)\"?\s*[:=]\s*\"?)([^\s\"&,;]+)"),
    re.compile(r"(?i)\b(bearer\s+|basic\s+)([A-Za-z0-9._~+/=-]{4,})"),
    re.compile(r"()\b(sk-[A-Za-z0-9_-]{8,})"),
]


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k.lower() in SENSITIVE_HEADERS else v) for k, v in headers.items()}


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace credential-looking values (and any literal ``secrets``) in free text."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pat in _PATTERNS:
        text = pat.sub(lambda m: m.group(1) + REDACTED, text)
    return text
