"""Per-consumer limits and per-target cooldowns: the gateway's in-memory live state.

Both are per replica (the gateway is otherwise stateless: several replicas share nothing but Postgres), so a
key's limits hold per replica; behind a load balancer of N replicas a key gets at most N times them.

* `KeyLimits` — requests in flight and requests per minute per key owner. The rate is a token bucket holding
  one minute's worth (``rate_per_minute`` tokens, refilled continuously), so a key may burst its minute and
  then goes at the rate. A refusal says how long to wait (``Retry-After``).
* `Cooldowns` — the circuit breaker: a target (``provider/model``) that failed is not tried again until its
  cooldown ends; the first request after it is the probe.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class KeyLimits:
    default_concurrency: int  # 0 = unlimited
    default_rate_per_minute: float  # 0 = unlimited
    clock: Callable[[], float] = time.monotonic
    inflight: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def acquire(self, owner: str, concurrency: int | None = None, rate_per_minute: float | None = None
                ) -> tuple[bool, int, str]:
        """Take a slot for ``owner``: (True, 0, "") or (False, retry_after_s, why). Release with `release`."""
        conc = self.default_concurrency if concurrency is None else concurrency
        rate = self.default_rate_per_minute if rate_per_minute is None else rate_per_minute
        n = self.inflight.get(owner, 0)
        if conc and n >= conc:
            return False, 1, f"{n} requests in flight, the key's limit is {conc}"
        if rate:
            now = self.clock()
            b = self._buckets.get(owner)
            if b is None:
                b = self._buckets[owner] = _Bucket(rate, now)
            b.tokens = min(rate, b.tokens + (now - b.at) * rate / 60.0)
            b.at = now
            if b.tokens < 1.0:
                wait = (1.0 - b.tokens) * 60.0 / rate
                return False, max(1, math.ceil(wait)), f"over the key's rate of {rate:g} requests per minute"
            b.tokens -= 1.0
        self.inflight[owner] = n + 1
        return True, 0, ""

    def release(self, owner: str) -> None:
        n = self.inflight.get(owner, 0) - 1
        if n > 0:
            self.inflight[owner] = n
        else:
            self.inflight.pop(owner, None)


@dataclass
class Cooldowns:
    seconds: float
    clock: Callable[[], float] = time.monotonic
    until: dict[str, tuple[float, str]] = field(default_factory=dict)  # target -> (monotonic end, why)

    def fail(self, target: str, why: str, for_s: float | None = None) -> None:
        """Cool ``target`` for the configured time, or ``for_s`` (a 429's Retry-After: busy, not broken)."""
        s = self.seconds if for_s is None else for_s
        if s > 0:
            self.until[target] = (self.clock() + s, why)

    def ok(self, target: str) -> None:
        self.until.pop(target, None)

    def cooling(self, target: str) -> str | None:
        """Why ``target`` is cooling down (with how long is left), or None when it may be tried."""
        entry = self.until.get(target)
        if entry is None:
            return None
        left = entry[0] - self.clock()
        if left <= 0:
            del self.until[target]
            return None
        return f"cooling down {left:.0f} s more after: {entry[1]}"

    def active(self) -> set[str]:
        now = self.clock()
        return {t for t, (end, _) in self.until.items() if end > now}
