"""The benchmark parameters, declared once: `BenchOptions` → both shells and `BenchSpec`.

Every field of `BenchOptions` (its type, default and the help in its metadata) is at once a
``boocontrol bench run`` option (`cli.bench`) and a parameter of the ``bench-sweep`` Prefect flow
(`flows.bench`): `bench_params()` is what both build from, so ``--prompt-tokens 512`` and the
deployment's ``prompt_tokens: 512`` mean the same thing and cannot drift apart. `CONFIRM_TAKEOVER`
and `UNATTENDED` declare the two parameters that are not options of the sweep: the takeover confirmation,
checked only by `engines.bench.gate.require_takeover_confirmation`, and whether nobody watches the run (a
schedule): then it needs an idle host (`engines.bench.unattended`). `RUN_PARAMS` is both, in shell order.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from engines.bench.capacity import SearchBounds, SloTargets
from engines.bench.metrics import Slo
from engines.bench.runner import BenchSpec, Mode
from engines.bench.saturation import SaturationPolicy
from engines.bench.workload import (
    Arrival,
    LengthDist,
    MultiTurnWorkload,
    SharedPrefixWorkload,
    SyntheticWorkload,
    Workload,
    parse_levels,
)

DEFAULT_CONCURRENCY = (1.0, 2.0, 4.0, 8.0)
DEFAULT_RATES = (0.5, 1.0, 2.0, 4.0)


def _meta(help: str, flag: str | None = None) -> dict[str, str]:
    """Field metadata: the help both shells show; ``flag`` overrides the CLI spelling (default
    ``--field-name``; for booleans ``--on/--off``)."""
    return {"help": help} if flag is None else {"help": help, "flag": flag}


@dataclass(frozen=True)
class BenchOptions:
    mode: Mode = field(
        default="concurrency",
        metadata=_meta("Sweep concurrency levels (closed loop) or request rates (open loop)."),
    )
    levels: tuple[float, ...] | None = field(
        default=None,
        metadata=_meta(
            "Comma list (CLI) or list: concurrency levels (default 1,2,4,8) or req/s (default 0.5,1,2,4)."
        ),
    )
    requests_per_point: int = field(default=32, metadata=_meta("Requests per point.", "--requests"))
    workload: Literal["synthetic", "production", "shared-prefix", "multi-turn"] = field(
        default="synthetic",
        metadata=_meta(
            "Synthetic lengths below, the model's stored production mix, a long system prompt shared by every "
            "request of a point (prompt-cache gain: TTFT of the first request vs the rest), or multi-turn "
            "conversations (each turn carries the earlier turns and their answers)."
        ),
    )
    prompt_tokens: int = field(default=256, metadata=_meta("Synthetic prompt length (mean tokens)."))
    prompt_stdev: float = field(default=0.0, metadata=_meta("Synthetic prompt length standard deviation."))
    prompt_min: int = field(default=1, metadata=_meta("Shortest synthetic prompt (tokens)."))
    prompt_max: int | None = field(default=None, metadata=_meta("Longest synthetic prompt (tokens)."))
    output_tokens: int = field(default=128, metadata=_meta("Synthetic output length (mean tokens)."))
    output_stdev: float = field(default=0.0, metadata=_meta("Synthetic output length standard deviation."))
    output_min: int = field(default=1, metadata=_meta("Shortest synthetic output (tokens)."))
    output_max: int | None = field(default=None, metadata=_meta("Longest synthetic output (tokens)."))
    production_days: float | None = field(
        default=30.0, metadata=_meta("Activity window (production workload).")
    )
    arrival: Arrival = field(default="poisson", metadata=_meta("Open loop: request arrival process."))
    burstiness: float = field(
        default=1.0,
        metadata=_meta("Open loop, poisson arrivals: gamma shape of the gaps between requests (vLLM bench's "
                       "burstiness): 1 = Poisson, below 1 burstier, above 1 more regular; the rate stays exact."),
    )
    max_concurrency: int = field(default=10, metadata=_meta("Open-loop cap on outstanding requests."))
    ramp_s: float = field(
        default=0.0, metadata=_meta("Closed loop: stagger worker starts over this many seconds.")
    )
    warmup_requests: int = field(
        default=3, metadata=_meta("Warm-up requests before the first point.", "--warmup")
    )
    seed: int | None = field(default=None, metadata=_meta("Prompt seed (default: fresh per run)."))
    slo_ttft_ms: float | None = field(default=200.0, metadata=_meta("Goodput SLO: time to first token (ms)."))
    slo_tpot_ms: float | None = field(
        default=50.0, metadata=_meta("Goodput SLO: time per output token (ms).")
    )
    slo_e2e_ms: float | None = field(default=None, metadata=_meta("Goodput SLO: end-to-end latency (ms)."))
    early_stop: bool = field(
        default=True, metadata=_meta("Stop the sweep at saturation (off: run every level).")
    )
    noise_floor: float = field(
        default=0.06,
        metadata=_meta("Plateau test: least relative noise (std) assumed per point's throughput."),
    )
    ttft_p50_max_ms: float | None = field(
        default=10_000.0, metadata=_meta("Saturated when p50 TTFT exceeds this (ms).")
    )
    repeat_until_ci_pct: float | None = field(
        default=None,
        metadata=_meta("Repeat a point (whole extra rounds of new requests, pooled) while the 95 % interval of its "
                       "output throughput is wider than ± this many percent, up to --max-rounds; unset: never.",
                       "--repeat-until-ci"),
    )
    max_rounds: int = field(default=3, metadata=_meta("At most this many rounds per point with --repeat-until-ci."))
    max_point_s: float | None = field(
        default=600.0,
        metadata=_meta("Time limit of one point (s): after it no new request starts; those in flight finish and "
                       "count. With a large --requests it bounds points by duration (guidellm's max_seconds); "
                       "each point records whether it ended by time or by its request count."),
    )
    request_timeout_s: float = field(default=600.0, metadata=_meta("Time limit of one request (s)."))
    ignore_eos: bool = field(default=True, metadata=_meta("Generate exactly the requested output tokens."))
    restore_host: bool = field(
        default=True,
        metadata=_meta("Put the host's models back as they were afterwards.", "--restore-host/--keep-loaded"),
    )
    label: str | None = field(default=None, metadata=_meta("Free-text label stored with the run."))
    shared_prefix_tokens: int = field(
        default=1024, metadata=_meta("Shared-prefix workload: length of the shared system prompt (tokens).")
    )
    turns: int = field(default=4, metadata=_meta("Multi-turn workload: turns per conversation."))
    text: Literal["words", "corpus"] = field(
        default="words",
        metadata=_meta("Prompt text: random common words, or readable sentences generated from the seed."),
    )

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

    def synthetic(self) -> Workload:
        """The workload built from lengths alone (all but the production mix)."""
        prompt = LengthDist(self.prompt_tokens, self.prompt_stdev, self.prompt_min, self.prompt_max)
        output = LengthDist(self.output_tokens, self.output_stdev, self.output_min, self.output_max)
        if self.workload == "shared-prefix":
            return SharedPrefixWorkload(prompt, output, prefix_tokens=self.shared_prefix_tokens, text=self.text)
        if self.workload == "multi-turn":
            return MultiTurnWorkload(prompt, output, turns=self.turns, text=self.text)
        return SyntheticWorkload(prompt=prompt, output=output, text=self.text)

    def spec(self, workload: Workload | None = None) -> BenchSpec:
        """The spec; ``workload`` overrides the synthetic one (the production workload needs a DB read)."""
        return BenchSpec(
            mode=self.mode,
            levels=self.resolved_levels(),
            requests_per_point=self.requests_per_point,
            workload=workload or self.synthetic(),
            arrival=self.arrival,
            burstiness=self.burstiness,
            max_concurrency=self.max_concurrency,
            ramp_s=self.ramp_s,
            warmup_requests=self.warmup_requests,
            seed=self.seed,
            slo=Slo(self.slo_ttft_ms, self.slo_tpot_ms, self.slo_e2e_ms),
            saturation=SaturationPolicy(
                enabled=self.early_stop, noise_floor=self.noise_floor, ttft_p50_max_ms=self.ttft_p50_max_ms
            ),
            max_point_s=self.max_point_s,
            repeat_until_ci_pct=self.repeat_until_ci_pct,
            max_rounds=self.max_rounds if self.repeat_until_ci_pct is not None else 1,
            request_timeout_s=self.request_timeout_s,
            ignore_eos=self.ignore_eos,
            restore_host=self.restore_host,
            label=self.label,
        )


def levels_arg(value: str | Sequence[float] | None) -> tuple[float, ...] | None:
    return None if value is None or value == "" else tuple(parse_levels(value))


@dataclass(frozen=True)
class BenchParam:
    """One benchmark parameter as both shells expose it."""

    name: str  # the BenchOptions field, the flow parameter and the CLI destination
    annotation: Any  # the resolved type (the flow parameter's annotation)
    default: Any
    help: str
    flag: str  # the CLI spelling: ``--prompt-tokens``, ``--early-stop/--no-early-stop``
    kind: type  # int, float, str or bool: the CLI value type (lists are comma-separated strings)
    choices: tuple[str, ...] | None = None  # a Literal's values


def _param(name: str, annotation: Any, default: Any, help: str, flag: str | None) -> BenchParam:
    base = annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):  # X | None → X
        base = next(a for a in typing.get_args(annotation) if a is not type(None))
    choices: tuple[str, ...] | None = None
    kind: type
    if typing.get_origin(base) is Literal:
        choices, kind = tuple(str(a) for a in typing.get_args(base)), str
    elif isinstance(base, type) and base in (int, float, str, bool):
        kind = base
    elif typing.get_origin(base) in (tuple, list):
        kind = str  # a comma-separated list on the command line
    else:
        raise TypeError(f"bench option {name}: no shell form for {annotation!r}")
    if flag is None:
        dashed = name.replace("_", "-")
        flag = f"--{dashed}/--no-{dashed}" if kind is bool else f"--{dashed}"
    return BenchParam(name, annotation, default, help, flag, kind, choices)


def declared_params(options: type) -> tuple[BenchParam, ...]:
    """Every field of an options dataclass (help and CLI spelling in its field metadata), in declaration order,
    with its shell form: what a CLI command and a Prefect flow both build from (benchmarks and evals)."""
    hints = typing.get_type_hints(options)
    return tuple(
        _param(f.name, hints[f.name], f.default, f.metadata["help"], f.metadata.get("flag"))
        for f in fields(options)
    )


@dataclass(frozen=True)
class CapacityOptions:
    """The capacity search's own parameters (``boocontrol bench capacity`` options and ``bench-capacity`` flow
    parameters, declared here once); every point of the search runs with the `BenchOptions` beside them."""

    percentile: int = field(default=95, metadata=_meta("The percentile of TTFT and TPOT that must meet the "
                                                        "targets: 50, 90, 95 or 99."))
    ttft_ms: float | None = field(default=None, metadata=_meta("TTFT target (ms) at that percentile."))
    tpot_ms: float | None = field(default=None, metadata=_meta("TPOT target (ms) at that percentile."))
    low: float = field(default=1.0, metadata=_meta("Lowest level (concurrency or req/s) to try."))
    high: float = field(default=32.0, metadata=_meta("Highest level to try."))
    max_points: int = field(default=8, metadata=_meta("At most this many measured levels."))

    def targets(self) -> SloTargets:
        return SloTargets(int(self.percentile), ttft_ms=self.ttft_ms, tpot_ms=self.tpot_ms)

    def bounds(self) -> SearchBounds:
        return SearchBounds(self.low, self.high, self.max_points)


def capacity_params() -> tuple[BenchParam, ...]:
    """Every `CapacityOptions` field with its shell form."""
    return declared_params(CapacityOptions)


def bench_params() -> tuple[BenchParam, ...]:
    """Every `BenchOptions` field, in declaration order, with its shell form."""
    return declared_params(BenchOptions)


CONFIRM_TAKEOVER = BenchParam(
    name="confirm_takeover",
    annotation=bool,
    default=False,
    help="Confirm that the host may be saturated by the sweep (without it the run is refused and recorded).",
    flag="--yes-take-over",
    kind=bool,
)

UNATTENDED = BenchParam(
    name="unattended",
    annotation=bool,
    default=False,
    help="A scheduled run nobody watches: it runs only if the host lease is free now and the host has been idle "
    "for BOOCONTROL_BENCH_UNATTENDED_IDLE_SECONDS; otherwise it is recorded as skipped with the reason.",
    flag="--unattended",
    kind=bool,
)

RUN_PARAMS = (CONFIRM_TAKEOVER, UNATTENDED)
