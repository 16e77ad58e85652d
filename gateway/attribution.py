"""Who is asking: the consumer a gateway request is attributed to, and the API keys that name them.

Consumer = the owner of the request's bearer key (``key``), else the ``X-Boo-Source`` header (``header``), else
a client name derived from the User-Agent (``user-agent``). Keys come from ``BOOCONTROL_GATEWAY_KEYS``
(``owner=key`` pairs) and/or a YAML file in the data directory's secrets::

    keys:
      - owner: alice
        sha256: 3f7a...            # sha256 hex of the key: the file never holds the key itself
        concurrency: 4             # optional, else BOOCONTROL_GATEWAY_KEY_CONCURRENCY
        rate_per_minute: 120       # optional, else BOOCONTROL_GATEWAY_KEY_RATE_PER_MINUTE

Only SHA-256 digests are kept in memory; a presented key is hashed and looked up, so the key itself is never
stored, compared in clear or logged.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from core.yaml_errors import yaml_error_line

_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")
_UA_TOKEN_RE = re.compile(r"[A-Za-z][A-Za-z0-9._+-]*(?:/[A-Za-z0-9._+-]+)?")
_SOURCE_MAX = 64


class KeysError(ValueError):
    """A keys file or variable that cannot be used; the message names where (never a key)."""


@dataclass(frozen=True)
class KeyOwner:
    owner: str
    concurrency: int | None = None  # None: the default
    rate_per_minute: float | None = None


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class KeyBook:
    by_digest: Mapping[str, KeyOwner]

    def __len__(self) -> int:
        return len(self.by_digest)

    def owner_of(self, key: str) -> KeyOwner | None:
        return self.by_digest.get(key_digest(key))


def parse_keys_env(value: str) -> dict[str, KeyOwner]:
    """``owner=key,owner2=key2`` -> digests. Errors name the pair's position, never its key."""
    out: dict[str, KeyOwner] = {}
    for i, pair in enumerate((p.strip() for p in value.split(",")), start=1):
        if not pair:
            continue
        owner, sep, key = pair.partition("=")
        owner, key = owner.strip(), key.strip()
        if not sep or not key:
            raise KeysError(f"BOOCONTROL_GATEWAY_KEYS: pair {i}: expected owner=key")
        if not _OWNER_RE.match(owner):
            raise KeysError(f"BOOCONTROL_GATEWAY_KEYS: pair {i}: owner {owner[:64]!r} is not a plain name")
        out[key_digest(key)] = KeyOwner(owner)
    return out


def parse_keys_file(text: str, source: str) -> dict[str, KeyOwner]:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise KeysError(f"{source}:{yaml_error_line(exc)}: invalid YAML") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict) or not isinstance(doc.get("keys", []), list):
        raise KeysError(f"{source}: expected a mapping with a 'keys' list")
    out: dict[str, KeyOwner] = {}
    for i, item in enumerate(doc.get("keys") or [], start=1):
        where = f"{source}: keys[{i}]"
        if not isinstance(item, dict):
            raise KeysError(f"{where}: expected a mapping with owner and sha256")
        unknown = set(item) - {"owner", "sha256", "concurrency", "rate_per_minute"}
        if unknown:
            raise KeysError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))} "
                            "(a key is stored as its sha256, never in clear)")
        owner, digest = str(item.get("owner", "")), str(item.get("sha256", "")).lower()
        if not _OWNER_RE.match(owner):
            raise KeysError(f"{where}: owner: expected a plain name")
        if not _HEX_RE.match(digest):
            raise KeysError(f"{where}: sha256: expected 64 hex digits (sha256 of the key)")
        conc, rate = item.get("concurrency"), item.get("rate_per_minute")
        if conc is not None and (not isinstance(conc, int) or conc < 0):
            raise KeysError(f"{where}: concurrency: expected a whole number >= 0")
        if rate is not None and (not isinstance(rate, (int, float)) or rate < 0):
            raise KeysError(f"{where}: rate_per_minute: expected a number >= 0")
        out[digest] = KeyOwner(owner, conc, float(rate) if rate is not None else None)
    return out


def load_keys(env_value: str | None, path: Path | None) -> KeyBook:
    """Keys of the variable and of the file (when it exists); the file's entry wins for the same key."""
    keys: dict[str, KeyOwner] = parse_keys_env(env_value) if env_value else {}
    if path is not None and path.is_file():
        keys.update(parse_keys_file(path.read_text(), str(path)))
    return KeyBook(keys)


def client_name(user_agent: str | None) -> str:
    """A short client name from a User-Agent: ``OpenAI/Python 1.40.0`` -> ``openai-python``,
    ``curl/8.5.0`` -> ``curl``, ``Mozilla/5.0 (...)`` -> ``mozilla``; nothing usable -> ``unknown``."""
    ua = (user_agent or "").strip()
    m = _UA_TOKEN_RE.search(ua)
    if m is None:
        return "unknown"
    product = m.group(0).split("/")[0].lower()
    if product == "openai":  # the official SDKs say OpenAI/<Language> <version>
        lang = m.group(0).split("/")[1].lower() if "/" in m.group(0) else ""
        if lang and not lang[0].isdigit():
            return f"openai-{lang}"
    return product[:_SOURCE_MAX]


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class Consumer:
    name: str
    source: str  # key | header | user-agent
    key: KeyOwner | None = None


def identify(keys: KeyBook, authorization: str | None, source_header: str | None,
             user_agent: str | None) -> tuple[Consumer, bool]:
    """The consumer of a request, and whether it presented a bearer key that is not known."""
    token = bearer(authorization)
    unknown_key = False
    if token is not None and len(keys):
        owner = keys.owner_of(token)
        if owner is not None:
            return Consumer(owner.owner, "key", owner), False
        unknown_key = True
    src = (source_header or "").strip()
    if src:
        cleaned = "".join(ch for ch in src if ch.isprintable())[:_SOURCE_MAX]
        if cleaned:
            return Consumer(cleaned, "header"), unknown_key
    return Consumer(client_name(user_agent), "user-agent"), unknown_key
