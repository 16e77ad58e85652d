"""Flat, shell-friendly benchmark options (CLI flags, Prefect flow parameters) → `BenchSpec`.

Both shells expose the same names, so ``boocontrol bench run --prompt-tokens 512`` and the
``bench-sweep`` deployment's ``prompt_tokens: 512`` mean the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from engines.bench.metrics import Slo
from engines.bench.runner import BenchSpec, Mode
from engines.bench.saturation import SaturationPolicy
from engines.bench.workload import Arrival, LengthDist, SyntheticWorkload, Workload, parse_levels

DEFAULT_CONCURRENCY = (1.0, 2.0, 4.0, 8.0)
DEFAULT_RATES = (0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class BenchOptions:
    mode: Mode = "concurrency"
    levels: tuple[float, ...] | None = None  # None = DEFAULT_CONCURRENCY / DEFAULT_RATES
    requests_per_point: int = 32
    workload: Literal["synthetic", "production"] = "synthetic"
    prompt_tokens: int = 256
    prompt_stdev: float = 0.0
    prompt_min: int = 1
    prompt_max: int | None = None
    output_tokens: int = 128
    output_stdev: float = 0.0
    output_min: int = 1
    output_max: int | None = None
    production_days: float | None = 30.0  # production workload: activity window
    arrival: Arrival = "poisson"
    max_concurrency: int = 10
    ramp_s: float = 0.0
    warmup_requests: int = 3
    seed: int | None = None
    slo_ttft_ms: float | None = 200.0
    slo_tpot_ms: float | None = 50.0
    slo_e2e_ms: float | None = None
    early_stop: bool = True
    min_gain: float = 0.05
    ttft_p50_max_ms: float | None = 10_000.0
    max_point_s: float | None = 600.0
    request_timeout_s: float = 600.0
    ignore_eos: bool = True
    restore_host: bool = True
    label: str | None = None

    @classmethod
    def from_mapping(cls, params: dict[str, Any]) -> BenchOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown bench option(s): {', '.join(unknown)}")
        p = dict(params)
        if p.get("levels") is not None:
            p["levels"] = tuple(parse_levels(p["levels"]))
        return cls(**p)

    def as_mapping(self) -> dict[str, Any]:
        d = asdict(self)
        d["levels"] = list(self.levels) if self.levels is not None else None
        return d

    def resolved_levels(self) -> tuple[float, ...]:
        if self.levels:
            return tuple(self.levels)
        return DEFAULT_CONCURRENCY if self.mode == "concurrency" else DEFAULT_RATES

    def synthetic(self) -> SyntheticWorkload:
        return SyntheticWorkload(
            prompt=LengthDist(self.prompt_tokens, self.prompt_stdev, self.prompt_min, self.prompt_max),
            output=LengthDist(self.output_tokens, self.output_stdev, self.output_min, self.output_max),
        )

    def spec(self, workload: Workload | None = None) -> BenchSpec:
        """The spec; ``workload`` overrides the synthetic one (the production workload needs a DB read)."""
        return BenchSpec(
            mode=self.mode,
            levels=self.resolved_levels(),
            requests_per_point=self.requests_per_point,
            workload=workload or self.synthetic(),
            arrival=self.arrival,
            max_concurrency=self.max_concurrency,
            ramp_s=self.ramp_s,
            warmup_requests=self.warmup_requests,
            seed=self.seed,
            slo=Slo(self.slo_ttft_ms, self.slo_tpot_ms, self.slo_e2e_ms),
            saturation=SaturationPolicy(
                enabled=self.early_stop, min_gain=self.min_gain, ttft_p50_max_ms=self.ttft_p50_max_ms
            ),
            max_point_s=self.max_point_s,
            request_timeout_s=self.request_timeout_s,
            ignore_eos=self.ignore_eos,
            restore_host=self.restore_host,
            label=self.label,
        )


def levels_arg(value: str | Sequence[float] | None) -> tuple[float, ...] | None:
    return None if value is None or value == "" else tuple(parse_levels(value))
