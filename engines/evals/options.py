"""The eval parameters, declared once: `EvalOptions` → ``boocontrol eval run`` options and the ``eval-run``
Prefect flow's parameters (both built from `eval_params()`, the way `engines.bench.options.bench_params` feeds
the bench shells), so ``--samples 5`` and the deployment's ``samples: 5`` mean the same thing; likewise
`CalibrationOptions` → ``boocontrol eval calibrate-judge`` and the ``judge-calibration`` flow
(`calibration_params()`; a field without a default is required: a CLI argument, a required flow parameter)."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Literal

from engines.bench.options import BenchParam, declared_params

DEFAULT_SEED = 1234
DEFAULT_SAMPLED_TEMPERATURE = 0.8  # n > 1 samples per item (pass@k): sampled, not greedy


def _meta(help: str, flag: str | None = None) -> dict[str, str]:
    return {"help": help} if flag is None else {"help": help, "flag": flag}


@dataclass(frozen=True)
class EvalOptions:
    suite: Literal["humaneval", "ifeval", "chat", "agentic", "utility", "needle"] = field(
        default="humaneval",
        metadata=_meta(
            "The suite: HumanEval (code, sandbox-scored), instruction following, chat (graded by --judge), "
            "agentic (coding tasks, failures fed back, up to 3 turns), utility (titles/summaries, by code) or "
            "needle (needle in a haystack on the model's own context window)."
        ),
    )
    limit: int | None = field(default=None, metadata=_meta("Ask only the first N items (a quick run)."))
    items: str | None = field(
        default=None, metadata=_meta("Comma list of item keys to ask (e.g. HumanEval/0,HumanEval/3).")
    )
    samples: int = field(
        default=1, metadata=_meta("Samples per item (n): pass@k is reported for every k <= n.")
    )
    temperature: float | None = field(
        default=None,
        metadata=_meta(
            f"Sampling temperature (default 0 for one sample, {DEFAULT_SAMPLED_TEMPERATURE} for more)."
        ),
    )
    top_p: float = field(default=1.0, metadata=_meta("Nucleus sampling (recorded with the run)."))
    seed: int = field(
        default=DEFAULT_SEED, metadata=_meta("Sampling seed; sample i of an item uses seed + i.")
    )
    max_tokens: int = field(default=768, metadata=_meta("Most tokens generated per answer."))
    parallel: int | None = field(
        default=None,
        metadata=_meta("Requests in flight (default: the host's parallel slots from /props, else 1)."),
    )
    request_timeout_s: float = field(default=600.0, metadata=_meta("Time limit of one request (s)."))
    sandbox_wall_s: float = field(
        default=10.0, metadata=_meta("Wall-clock limit of one test run in the sandbox (s).")
    )
    fresh: bool = field(
        default=False,
        metadata=_meta("Start a new run even if an unfinished one with the same settings exists."),
    )
    restore_host: bool = field(
        default=True,
        metadata=_meta("Put the host's models back as they were afterwards.", "--restore-host/--keep-loaded"),
    )
    label: str | None = field(default=None, metadata=_meta("Free-text label stored with the run."))
    judge: str | None = field(
        default=None,
        metadata=_meta(
            "The judge of the chat suite and of the utility rubric: a registry model, provider/model (default: the best-scoring local "
            "model on the ifeval suite, see docs/evals.md)."
        ),
    )
    questions: str | None = field(
        default=None,
        metadata=_meta("Chat suite: an MT-bench-format question file (JSONL) instead of the project's own set."),
    )

    def __post_init__(self) -> None:
        if self.samples < 1:
            raise ValueError("samples must be >= 1")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be >= 1")
        if self.parallel is not None and self.parallel < 1:
            raise ValueError("parallel must be >= 1")
        if self.questions and self.suite != "chat":
            raise ValueError("--questions is a question file for the chat suite (--suite chat)")

    @classmethod
    def from_mapping(cls, params: dict[str, Any]) -> EvalOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown eval option(s): {', '.join(unknown)}")
        return cls(**params)

    def as_mapping(self) -> dict[str, Any]:
        return asdict(self)

    def item_keys(self) -> list[str] | None:
        if not self.items:
            return None
        return [k.strip() for k in self.items.split(",") if k.strip()]

    def sampling(self) -> dict[str, Any]:
        """What the model was asked with (stored with the run and every score)."""
        t = self.temperature
        if t is None:
            t = 0.0 if self.samples == 1 else DEFAULT_SAMPLED_TEMPERATURE
        return {"temperature": t, "top_p": self.top_p, "seed": self.seed, "max_tokens": self.max_tokens,
                "samples": self.samples}  # fmt: skip


def eval_params() -> tuple[BenchParam, ...]:
    """Every `EvalOptions` field, in declaration order, with its shell form."""
    return declared_params(EvalOptions)


@dataclass(frozen=True)
class CalibrationOptions:
    judge: str = field(metadata=_meta("The judge to calibrate: a registry model, provider/model."))
    labels: str = field(
        metadata=_meta(
            "Human pairwise labels: a JSON-lines file on the machine that runs the calibration (format in "
            "docs/evals.md)."
        )
    )
    request_timeout_s: float = field(default=600.0, metadata=_meta("Time limit of one judge request (s)."))

    @classmethod
    def from_mapping(cls, params: dict[str, Any]) -> CalibrationOptions:
        unknown = sorted(set(params) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown calibration option(s): {', '.join(unknown)}")
        return cls(**params)


def calibration_params() -> tuple[BenchParam, ...]:
    """Every `CalibrationOptions` field, in declaration order (required ones have the default `MISSING`)."""
    return declared_params(CalibrationOptions)


CONFIRM_TAKEOVER = BenchParam(
    name="confirm_takeover",
    annotation=bool,
    default=False,
    help="Confirm that the host may be kept busy by the eval (without it the run is refused).",
    flag="--yes-take-over",
    kind=bool,
)

RUN_PARAMS = (CONFIRM_TAKEOVER,)


def is_required(p: BenchParam) -> bool:
    """A declared parameter without a default (a CLI argument, a required flow parameter)."""
    return p.default is MISSING
