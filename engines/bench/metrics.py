"""Benchmark metrics, defined once (docs/bench-metrics.md is the prose version of this module).

Every request keeps its raw client timestamps (send, every content chunk's arrival, end of stream),
so any tool's definition can be recomputed later. The names follow vLLM ``bench serve`` and
genai-perf (TPOT and ITL exclude TTFT):

* **TTFT** = first content chunk − send. Chunks whose delta carries no text (the role chunk, the
  final ``finish_reason``/usage chunks) are not "first tokens".
* **E2E** = end of stream (``[DONE]`` or close) − send.
* **TPOT** (per request) = (E2E − TTFT) / (n_out − 1), only for requests with n_out > 1.
* **ITL** = every gap between consecutive content chunks, pooled over all requests. A chunk carrying
  several tokens is **one** gap (vLLM's convention); it is never divided by its token count. The
  per-request token-normalised figure is ``decode_tps`` = (n_out − 1) / (last − first chunk).
* **n_out** = server-reported ``usage.completion_tokens``; else llama.cpp ``timings.predicted_n``;
  else the number of content chunks (flagged ``tokens_from_chunks``).

All times in this module are seconds on one monotonic clock (``time.perf_counter``); summaries are
reported in milliseconds (``*_ms``) and per second (``*_per_s``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engines.bench.stats import intervals, relative_se_of_ratio

PERCENTILES: tuple[int, ...] = (50, 90, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default ``method="linear"``); ``values`` need not be sorted."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside 0..100")
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    if lo == hi:
        return float(xs[lo])
    return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))


@dataclass(frozen=True)
class Distribution:
    """Summary of one metric over requests (or over ITL gaps): count, mean, std, min, max, percentiles."""

    count: int
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    p50: float | None = None
    p90: float | None = None
    p95: float | None = None
    p99: float | None = None

    @classmethod
    def of(cls, values: Iterable[float], scale: float = 1.0) -> Distribution:
        xs = [float(v) * scale for v in values]
        if not xs:
            return cls(count=0)
        mean = sum(xs) / len(xs)
        std = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))  # population std, as numpy.std
        return cls(
            count=len(xs),
            mean=mean,
            std=std,
            min=min(xs),
            max=max(xs),
            p50=percentile(xs, 50),
            p90=percentile(xs, 90),
            p95=percentile(xs, 95),
            p99=percentile(xs, 99),
        )

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "count": self.count,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "p50": self.p50,
            "p90": self.p90,
            "p95": self.p95,
            "p99": self.p99,
        }


@dataclass
class RequestRecord:
    """Raw observations of one benchmark request; times are seconds on the point's monotonic clock."""

    index: int
    send: float
    end: float | None = None
    chunks: list[float] = field(default_factory=list)  # arrival of every content-bearing chunk
    scheduled: float | None = None  # open loop: when the arrival process wanted it sent
    status: int | None = None
    error: str | None = None
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    timings: dict[str, Any] | None = None
    target_input_tokens: int | None = None
    target_output_tokens: int | None = None
    cancelled: bool = False
    retries: int = 0  # connection-level retries before any response (see load.stream_one)

    # ---------------------------------------------------------------- per-request derived values
    @property
    def ok(self) -> bool:
        return self.error is None and not self.cancelled and self.status == 200 and self.end is not None

    @property
    def first(self) -> float | None:
        return self.chunks[0] if self.chunks else None

    @property
    def last(self) -> float | None:
        return self.chunks[-1] if self.chunks else None

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.send

    @property
    def e2e(self) -> float | None:
        return None if self.end is None else self.end - self.send

    @property
    def output_tokens(self) -> int:
        """Server-reported output tokens (usage, then llama.cpp timings), else the content-chunk count."""
        n = _int(self.usage, "completion_tokens")
        if n is None:
            n = _int(self.timings, "predicted_n")
        return n if n is not None else len(self.chunks)

    @property
    def tokens_from_chunks(self) -> bool:
        return _int(self.usage, "completion_tokens") is None and _int(self.timings, "predicted_n") is None

    @property
    def prompt_tokens(self) -> int | None:
        """Total prompt tokens as the server counts them (usage includes cached tokens)."""
        n = _int(self.usage, "prompt_tokens")
        if n is None and self.timings is not None:
            p = _int(self.timings, "prompt_n")
            c = _int(self.timings, "cache_n") or 0
            n = None if p is None else p + c
        return n

    @property
    def cached_tokens(self) -> int | None:
        c = _int(self.timings, "cache_n")
        if c is None and self.usage is not None:
            details = self.usage.get("prompt_tokens_details")
            if isinstance(details, Mapping):
                c = _int(details, "cached_tokens")
        return c

    @property
    def multi_token_chunks(self) -> bool:
        """True when fewer content chunks than output tokens arrived (some chunk carried several tokens)."""
        return self.ok and len(self.chunks) < self.output_tokens

    @property
    def tpot(self) -> float | None:
        n = self.output_tokens
        ttft, e2e = self.ttft, self.e2e
        if ttft is None or e2e is None or n <= 1:
            return None
        return (e2e - ttft) / (n - 1)

    @property
    def itl_gaps(self) -> list[float]:
        c = self.chunks
        return [c[i] - c[i - 1] for i in range(1, len(c))]

    @property
    def decode_tps(self) -> float | None:
        """Client-side generation speed: (n_out − 1) / (last − first content chunk)."""
        n = self.output_tokens
        if self.first is None or self.last is None or n <= 1 or self.last <= self.first:
            return None
        return (n - 1) / (self.last - self.first)

    @property
    def prompt_tps(self) -> float | None:
        """Latency-derived prompt rate: prompt tokens / TTFT (includes HTTP, queueing and, at concurrency > 1,
        other requests' decode steps: not the server's prefill speed, see ``server_prefill_per_s``)."""
        p, t = self.prompt_tokens, self.ttft
        if p is None or t is None or t <= 0:
            return None
        return p / t

    @property
    def server_prefill_per_s(self) -> float | None:
        """llama.cpp's own prefill rate: ``timings.prompt_per_second`` (tokens it evaluated ÷ its prompt time)."""
        v = self.timings.get("prompt_per_second") if self.timings else None
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            return None
        return float(v)

    @property
    def ttft_overhead(self) -> float | None:
        """TTFT minus llama.cpp's ``timings.prompt_ms``: HTTP, proxy, queueing, templating, tokenizing."""
        t = self.ttft
        pm = self.timings.get("prompt_ms") if self.timings else None
        if t is None or not isinstance(pm, int | float):
            return None
        return t - float(pm) / 1000.0

    @property
    def schedule_lag(self) -> float | None:
        return None if self.scheduled is None else self.send - self.scheduled

    def meets(self, slo: Slo) -> bool:
        """Whether this request met every SLO that is set (DistServe/vLLM goodput definition)."""
        if not self.ok:
            return False
        if slo.ttft_ms is not None and (self.ttft is None or self.ttft * 1000.0 > slo.ttft_ms):
            return False
        if slo.e2e_ms is not None and (self.e2e is None or self.e2e * 1000.0 > slo.e2e_ms):
            return False
        # TPOT is undefined for one-token answers: they cannot violate a TPOT SLO.
        tpot = self.tpot
        if slo.tpot_ms is not None and tpot is not None and tpot * 1000.0 > slo.tpot_ms:
            return False
        return True


def _int(d: Mapping[str, Any] | None, key: str) -> int | None:
    if not d:
        return None
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return int(v)


@dataclass(frozen=True)
class Slo:
    """Per-request service-level objectives in milliseconds; None = not checked."""

    ttft_ms: float | None = 200.0
    tpot_ms: float | None = 50.0
    e2e_ms: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        return {"ttft_ms": self.ttft_ms, "tpot_ms": self.tpot_ms, "e2e_ms": self.e2e_ms}


def peak_concurrency(intervals: Iterable[tuple[float, float]]) -> int:
    """Exact maximum number of overlapping [start, end) intervals (sweep line; ends sort before starts)."""
    events: list[tuple[float, int]] = []
    for start, end in intervals:
        events.append((start, 1))
        events.append((end, -1))
    events.sort(key=lambda e: (e[0], e[1]))
    cur = best = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def peak_output_per_s(records: Sequence[RequestRecord], bucket_s: float = 1.0) -> float | None:
    """Peak output tokens per second in ``bucket_s`` buckets, counting one token per content chunk
    except that a request's surplus tokens (n_out − chunks) are credited to its last chunk."""
    counts: dict[int, float] = {}
    origin: float | None = None
    for r in records:
        if r.chunks:
            origin = r.chunks[0] if origin is None else min(origin, r.chunks[0])
    if origin is None:
        return None
    for r in records:
        if not r.chunks:
            continue
        extra = max(0, r.output_tokens - len(r.chunks))
        for i, t in enumerate(r.chunks):
            k = int((t - origin) // bucket_s)
            counts[k] = counts.get(k, 0.0) + 1.0 + (extra if i == len(r.chunks) - 1 else 0)
    return max(counts.values()) / bucket_s


@dataclass(frozen=True)
class PointSummary:
    """Everything reported for one sweep point (one concurrency level or one arrival rate)."""

    requests: int
    completed: int
    failed: int
    cancelled: int
    duration_s: float
    request_throughput: float
    output_throughput: float
    total_token_throughput: float
    prompt_throughput: float
    goodput: float
    goodput_ratio: float | None
    prompt_tokens: int
    output_tokens: int
    peak_concurrency: int
    mean_concurrency: float
    peak_output_per_s: float | None
    multi_token_chunk_requests: int
    tokens_from_chunks_requests: int
    retried_requests: int
    ttft_ms: Distribution
    tpot_ms: Distribution
    itl_ms: Distribution
    e2e_ms: Distribution
    decode_tps: Distribution
    prompt_tps: Distribution
    schedule_lag_ms: Distribution
    server_prompt_ms: Distribution
    ttft_overhead_ms: Distribution
    server_predicted_per_s: Distribution
    slo: Slo
    # llama.cpp's own prefill rate per request (timings.prompt_per_second): prompt tokens it evaluated ÷ its
    # prompt time. Unlike ``prompt_tps`` (prompt tokens ÷ TTFT, latency-derived: queueing, HTTP and other
    # requests' decode steps included) it is the server's prefill speed, also at concurrency > 1.
    server_prefill_per_s: Distribution = Distribution(count=0)
    prompt_len: Distribution = Distribution(count=0)  # actual prompt tokens per request (usage)
    output_len: Distribution = Distribution(count=0)  # actual output tokens per request
    # Bootstrap intervals and sample-size flags of every reported statistic (engines/bench/stats.py):
    # {metric: {stat: {n, value, low, high, hidden, warning}}}
    intervals: dict[str, dict[str, dict[str, object]]] = field(default_factory=dict)
    throughput_rel_se: float | None = None  # measured within-point noise of the output throughput
    # successful requests whose server-counted prompt (usage) differs from the target, and the largest difference
    length_mismatches: int = 0
    length_max_abs_error: int | None = None
    # Prompt-cache gain (shared-prefix workload, any workload really): TTFT of the point's first request sent
    # against the median TTFT of the others (the first pays the prefill of a shared prefix, the rest can reuse it)
    ttft_first_ms: float | None = None
    ttft_rest_p50_ms: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in self.__dict__.items():
            if isinstance(v, Distribution | Slo):
                out[k] = v.as_dict()
            elif k == "intervals":
                out[k] = {m: {st: dict(e) for st, e in by.items()} for m, by in v.items()}
            else:
                out[k] = v
        return out


def first_vs_rest_ttft(records: Sequence[RequestRecord]) -> tuple[float | None, float | None]:
    """TTFT (ms) of the first request sent, and the median TTFT (ms) of the other successful ones; None
    when the first failed or there are no others."""
    if not records:
        return None, None
    first = min(records, key=lambda r: (r.send, r.index))
    rest = sorted(r.ttft * 1000.0 for r in records if r is not first and r.ok and r.ttft is not None)
    first_ms = first.ttft * 1000.0 if first.ok and first.ttft is not None else None
    if not rest:
        return first_ms, None
    m = len(rest) // 2
    return first_ms, rest[m] if len(rest) % 2 else (rest[m - 1] + rest[m]) / 2


def summarize(records: Sequence[RequestRecord], slo: Slo | None = None,
              duration_s: float | None = None) -> PointSummary:
    """Aggregate one point's requests.

    Duration runs from the first send to the last end of stream among the point's requests;
    throughputs are totals over that duration (vLLM). A point measured in several rounds passes
    ``duration_s``, the sum of its rounds' durations (the pauses between rounds are not load). Latency
    distributions use successful requests only; ITL pools the chunk gaps of all successful requests.
    """
    slo = slo or Slo()
    ok = [r for r in records if r.ok]
    cancelled = sum(1 for r in records if r.cancelled)
    starts = [r.send for r in records]
    ends = [r.end for r in records if r.end is not None]
    duration = (max(ends) - min(starts)) if (starts and ends) else 0.0
    if duration_s is not None:
        duration = duration_s
    out_tokens = sum(r.output_tokens for r in ok)
    prompt_tokens = sum(r.prompt_tokens or 0 for r in ok)
    good = sum(1 for r in ok if r.meets(slo))

    def per_s(x: float) -> float:
        return x / duration if duration > 0 else 0.0

    gaps = [g for r in ok for g in r.itl_gaps]
    prefill = [float(p) for r in ok if (p := r.server_prefill_per_s) is not None]
    len_err = [
        r.prompt_tokens - r.target_input_tokens
        for r in ok
        if r.prompt_tokens is not None and r.target_input_tokens is not None
    ]
    e2e_sum = sum(r.e2e or 0.0 for r in ok)
    first_ms, rest_p50_ms = first_vs_rest_ttft(records)
    return PointSummary(
        requests=len(records),
        completed=len(ok),
        failed=len(records) - len(ok) - cancelled,
        cancelled=cancelled,
        duration_s=duration,
        request_throughput=per_s(len(ok)),
        output_throughput=per_s(out_tokens),
        total_token_throughput=per_s(out_tokens + prompt_tokens),
        prompt_throughput=per_s(prompt_tokens),
        goodput=per_s(good),
        goodput_ratio=(good / len(ok)) if ok else None,
        prompt_tokens=prompt_tokens,
        output_tokens=out_tokens,
        peak_concurrency=peak_concurrency((r.send, r.end) for r in records if r.end is not None),
        mean_concurrency=per_s(e2e_sum),
        peak_output_per_s=peak_output_per_s(ok),
        multi_token_chunk_requests=sum(1 for r in ok if r.multi_token_chunks),
        tokens_from_chunks_requests=sum(1 for r in ok if r.tokens_from_chunks),
        retried_requests=sum(1 for r in records if r.retries),
        ttft_ms=Distribution.of((r.ttft for r in ok if r.ttft is not None), 1000.0),
        tpot_ms=Distribution.of((r.tpot for r in ok if r.tpot is not None), 1000.0),
        itl_ms=Distribution.of(gaps, 1000.0),
        e2e_ms=Distribution.of((r.e2e for r in ok if r.e2e is not None), 1000.0),
        decode_tps=Distribution.of(r.decode_tps for r in ok if r.decode_tps is not None),
        prompt_tps=Distribution.of(r.prompt_tps for r in ok if r.prompt_tps is not None),
        schedule_lag_ms=Distribution.of(
            (r.schedule_lag for r in records if r.schedule_lag is not None), 1000.0
        ),
        server_prompt_ms=Distribution.of(
            float(r.timings["prompt_ms"])
            for r in ok
            if r.timings and isinstance(r.timings.get("prompt_ms"), int | float)
        ),
        ttft_overhead_ms=Distribution.of(
            (r.ttft_overhead for r in ok if r.ttft_overhead is not None), 1000.0
        ),
        server_predicted_per_s=Distribution.of(
            float(r.timings["predicted_per_second"])
            for r in ok
            if r.timings and isinstance(r.timings.get("predicted_per_second"), int | float)
        ),
        slo=slo,
        server_prefill_per_s=Distribution.of(prefill),
        prompt_len=Distribution.of(float(r.prompt_tokens) for r in ok if r.prompt_tokens is not None),
        output_len=Distribution.of(float(r.output_tokens) for r in ok),
        intervals={
            "ttft_ms": intervals([r.ttft for r in ok if r.ttft is not None], 1000.0),
            "tpot_ms": intervals([r.tpot for r in ok if r.tpot is not None], 1000.0),
            "itl_ms": intervals(gaps, 1000.0),
            "e2e_ms": intervals([r.e2e for r in ok if r.e2e is not None], 1000.0),
            "decode_tps": intervals([r.decode_tps for r in ok if r.decode_tps is not None]),
            "prompt_tps": intervals([r.prompt_tps for r in ok if r.prompt_tps is not None]),
            "server_prefill_per_s": intervals(prefill),
        },
        length_mismatches=sum(1 for d in len_err if d != 0),
        length_max_abs_error=max((abs(d) for d in len_err), default=None),
        ttft_first_ms=first_ms,
        ttft_rest_p50_ms=rest_p50_ms,
        throughput_rel_se=relative_se_of_ratio(
            [float(r.output_tokens) for r in ok], [r.e2e or 0.0 for r in ok]
        ),
    )
