"""Routing policies: what an ``auto:*`` model means, read from a YAML file with line-aware errors.

A policy is a set of filters (which targets may serve the request at all) and an objective (how the ones
left are ordered). The file::

    builtins: true            # keep auto:fast, auto:best, auto:code, auto:long, auto:efficient (default)
    policies:
      auto:code:
        description: Best HumanEval score, speed breaks near-ties
        capability: chat      # chat | completions | embeddings; default: the request's endpoint
        local_only: false     # never route to a cloud provider
        min_context: 0        # besides the request's own need (prompt + max_tokens), always checked
        quality_floor: {suite: humaneval, metric: pass@1, min: 0.3}
        latency:              # every threshold must hold, at its percentile
          - {metric: ttft, percentile: p90, max_ms: 2000}
        quality_suites: [humaneval]
        weights: {quality: 3, speed: 1, energy: 0}
        residency: true       # a cold model pays its measured load time
        live_load: true       # each request in flight on the target adds one expected request time

A file policy with a built-in's name replaces it; ``builtins: false`` keeps only the file's policies.
`PolicyBook.load` raises `PolicyError` naming ``file:line: field: what is wrong``; `PolicyWatcher` reloads
the file when it changes and keeps the last good book when the new text is wrong.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.yaml_errors import yaml_error_line, yaml_problem

ENDPOINTS: tuple[str, ...] = ("chat", "completions", "embeddings")
PERCENTILES: tuple[str, ...] = ("p50", "p90", "p95", "p99")
LATENCY_METRICS: tuple[str, ...] = ("ttft", "tpot", "e2e")
WEIGHTS: tuple[str, ...] = ("quality", "speed", "energy")
_NAME_RE = re.compile(r"^auto:[a-z0-9][a-z0-9_.-]{0,62}$")

# The headline metric of each eval suite (engines/evals), used when a policy names a suite but no metric.
HEADLINE_METRICS: Mapping[str, str] = {
    "humaneval": "pass@1",
    "ifeval": "prompt_strict",
    "chat": "judge_score",
    "agentic": "solved@1",
    "utility": "format_pass",
    "needle": "accuracy",
}


class PolicyError(ValueError):
    """A policy file that cannot be used; the message is ``file:line: field: what is wrong``."""


@dataclass(frozen=True)
class QualityFloor:
    suite: str
    metric: str
    min: float


@dataclass(frozen=True)
class LatencyLimit:
    metric: str  # ttft | tpot | e2e
    percentile: str  # p50 | p90 | p95 | p99
    max_ms: float


@dataclass(frozen=True)
class Policy:
    name: str
    description: str
    capability: str | None = None
    local_only: bool = False
    min_context: int = 0
    quality_floor: QualityFloor | None = None
    latency: tuple[LatencyLimit, ...] = ()
    quality_suites: tuple[str, ...] = ()
    weights: Mapping[str, float] = field(default_factory=lambda: {"quality": 0.0, "speed": 1.0, "energy": 0.0})
    residency: bool = True
    live_load: bool = True
    source: str = "built-in"

    def weight(self, factor: str) -> float:
        return float(self.weights.get(factor, 0.0))


def _w(quality: float, speed: float, energy: float) -> Mapping[str, float]:
    return {"quality": quality, "speed": speed, "energy": energy}


BUILTINS: tuple[Policy, ...] = (
    Policy("auto:fast", "Fastest answer right now: measured speed, loaded models first, live load counted",
           weights=_w(0, 1, 0)),
    Policy("auto:best", "Best measured quality (HumanEval, IFEval, judged chat); speed breaks near-ties",
           quality_suites=("humaneval", "ifeval", "chat"), weights=_w(4, 1, 0)),
    Policy("auto:code", "Best HumanEval pass@1; speed breaks near-ties",
           quality_suites=("humaneval",), weights=_w(3, 1, 0)),
    Policy("auto:long", "Long prompts: a 32k+ context window, fastest prompt processing, needle accuracy",
           min_context=32768, quality_suites=("needle",), weights=_w(1, 2, 0)),
    Policy("auto:efficient", "Fewest measured joules per token; speed breaks near-ties",
           weights=_w(0, 1, 3)),
)  # fmt: skip


@dataclass(frozen=True)
class PolicyBook:
    policies: tuple[Policy, ...]
    source: str = "built-in"

    def names(self) -> list[str]:
        return [p.name for p in self.policies]

    def get(self, name: str) -> Policy | None:
        for p in self.policies:
            if p.name == name:
                return p
        return None

    @staticmethod
    def builtin() -> PolicyBook:
        return PolicyBook(BUILTINS)

    @staticmethod
    def load(path: Path | None) -> PolicyBook:
        """The book in ``path``; the built-in policies when ``path`` is None or does not exist."""
        if path is None or not path.exists():
            return PolicyBook.builtin()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{path}:1: (file): cannot be read: {exc.strerror or exc}") from None
        return parse_policies(text, str(path))


# --- parsing -----------------------------------------------------------------------------------------------


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Doc:
    """Validation helpers that know which YAML node each value came from."""

    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, node: yaml.Node, where: str, msg: str) -> PolicyError:
        return PolicyError(f"{self.source}:{_line(node)}: {where}: {msg}")

    def mapping(self, node: yaml.Node, where: str, allowed: tuple[str, ...]) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.err(node, where, f"expected a mapping with keys among {', '.join(allowed)}")
        out: dict[str, yaml.Node] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            if key not in allowed:
                raise self.err(k, f"{where}.{key}" if where else str(key),
                               f"unknown field (allowed: {', '.join(allowed)})")
            assert key is not None
            if key in out:
                raise self.err(k, f"{where}.{key}" if where else key, "given twice")
            out[key] = v
        return out

    def scalar(self, node: yaml.Node, where: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.err(node, where, "expected a single value")
        return yaml.safe_load(yaml.serialize(node))

    def text(self, node: yaml.Node, where: str) -> str:
        v = self.scalar(node, where)
        if not isinstance(v, str) or not v.strip():
            raise self.err(node, where, "expected a non-empty string")
        return v.strip()

    def boolean(self, node: yaml.Node, where: str) -> bool:
        v = self.scalar(node, where)
        if not isinstance(v, bool):
            raise self.err(node, where, f"{v!r} is not true or false")
        return v

    def number(self, node: yaml.Node, where: str, *, lo: float = 0.0, hi: float | None = None) -> float:
        v = self.scalar(node, where)
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.err(node, where, f"{v!r} is not a number")
        if v < lo or (hi is not None and v > hi):
            bound = f"between {lo:g} and {hi:g}" if hi is not None else f"at least {lo:g}"
            raise self.err(node, where, f"{v:g} must be {bound}")
        return float(v)

    def choice(self, node: yaml.Node, where: str, options: tuple[str, ...]) -> str:
        v = self.scalar(node, where)
        if v not in options:
            raise self.err(node, where, f"{v!r} is not one of {', '.join(options)}")
        return str(v)


def parse_policies(text: str, source: str = "<string>") -> PolicyBook:
    """Parse and validate a policy file; raise `PolicyError` naming file, line and field."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}:{yaml_error_line(exc)}: (file): invalid YAML: {yaml_problem(exc)}") from None
    d = _Doc(source)
    if root is None:
        return PolicyBook(BUILTINS, source)
    top = d.mapping(root, "", ("builtins", "policies"))
    keep_builtins = d.boolean(top["builtins"], "builtins") if "builtins" in top else True
    own: list[Policy] = []
    if "policies" in top:
        pnode = top["policies"]
        if not isinstance(pnode, yaml.MappingNode):
            raise d.err(pnode, "policies", "expected a mapping of auto:<name> to a policy")
        seen: set[str] = set()
        for knode, vnode in pnode.value:
            name = knode.value if isinstance(knode, yaml.ScalarNode) else ""
            if not _NAME_RE.match(name):
                raise d.err(knode, f"policies.{name}", "a policy name is auto:<lowercase letters, digits, -_.>")
            if name in seen:
                raise d.err(knode, f"policies.{name}", "defined twice")
            seen.add(name)
            own.append(_parse_policy(d, name, vnode, source))
    book: list[Policy] = list(BUILTINS) if keep_builtins else []
    for p in own:
        book = [b for b in book if b.name != p.name] + [p]
    return PolicyBook(tuple(book), source)


_FIELDS = ("description", "capability", "local_only", "min_context", "quality_floor", "latency",
           "quality_suites", "weights", "residency", "live_load")  # fmt: skip


def _parse_policy(d: _Doc, name: str, node: yaml.Node, source: str) -> Policy:
    at = f"policies.{name}"
    f = d.mapping(node, at, _FIELDS)
    if "description" not in f:
        raise d.err(node, f"{at}.description", "required field is missing (one line shown in /v1/models)")
    description = d.text(f["description"], f"{at}.description")
    if "\n" in description:
        raise d.err(f["description"], f"{at}.description", "must be one line")
    capability = d.choice(f["capability"], f"{at}.capability", ENDPOINTS) if "capability" in f else None
    local_only = d.boolean(f["local_only"], f"{at}.local_only") if "local_only" in f else False
    min_context = int(d.number(f["min_context"], f"{at}.min_context")) if "min_context" in f else 0
    floor = None
    if "quality_floor" in f:
        qf = d.mapping(f["quality_floor"], f"{at}.quality_floor", ("suite", "metric", "min"))
        if "suite" not in qf or "min" not in qf:
            raise d.err(f["quality_floor"], f"{at}.quality_floor", "needs suite and min")
        suite = d.text(qf["suite"], f"{at}.quality_floor.suite")
        metric = d.text(qf["metric"], f"{at}.quality_floor.metric") if "metric" in qf else HEADLINE_METRICS.get(suite)
        if metric is None:
            raise d.err(qf["suite"], f"{at}.quality_floor.metric",
                        f"suite {suite!r} has no default metric; name one")
        floor = QualityFloor(suite, metric, d.number(qf["min"], f"{at}.quality_floor.min", lo=float("-inf")))
    limits: list[LatencyLimit] = []
    if "latency" in f:
        lnode = f["latency"]
        if not isinstance(lnode, yaml.SequenceNode):
            raise d.err(lnode, f"{at}.latency", "expected a list of {metric, percentile, max_ms}")
        for i, item in enumerate(lnode.value):
            w = f"{at}.latency[{i}]"
            lm = d.mapping(item, w, ("metric", "percentile", "max_ms"))
            for req in ("metric", "max_ms"):
                if req not in lm:
                    raise d.err(item, f"{w}.{req}", "required field is missing")
            limits.append(LatencyLimit(
                d.choice(lm["metric"], f"{w}.metric", LATENCY_METRICS),
                d.choice(lm["percentile"], f"{w}.percentile", PERCENTILES) if "percentile" in lm else "p50",
                d.number(lm["max_ms"], f"{w}.max_ms"),
            ))  # fmt: skip
    suites: tuple[str, ...] = ()
    if "quality_suites" in f:
        snode = f["quality_suites"]
        if isinstance(snode, yaml.ScalarNode):
            items = [(snode, f"{at}.quality_suites")]
        elif isinstance(snode, yaml.SequenceNode):
            items = [(s, f"{at}.quality_suites[{i}]") for i, s in enumerate(snode.value)]
        else:
            raise d.err(snode, f"{at}.quality_suites", "expected a suite name or a list of them")
        suites = tuple(d.choice(s, where, tuple(HEADLINE_METRICS)) for s, where in items)
    weights = dict(_w(0, 1, 0))
    if "weights" in f:
        wm = d.mapping(f["weights"], f"{at}.weights", WEIGHTS)
        weights = {k: d.number(wm[k], f"{at}.weights.{k}") if k in wm else 0.0 for k in WEIGHTS}
        if not any(weights.values()):
            raise d.err(f["weights"], f"{at}.weights", "at least one weight must be above 0")
    if weights["quality"] > 0 and not suites:
        where = f"{at}.quality_suites"
        raise d.err(f.get("weights", node), where, "a quality weight needs the suites it is measured on")
    return Policy(
        name=name,
        description=description,
        capability=capability,
        local_only=local_only,
        min_context=min_context,
        quality_floor=floor,
        latency=tuple(limits),
        quality_suites=suites,
        weights=weights,
        residency=d.boolean(f["residency"], f"{at}.residency") if "residency" in f else True,
        live_load=d.boolean(f["live_load"], f"{at}.live_load") if "live_load" in f else True,
        source=source,
    )


# --- reloading ---------------------------------------------------------------------------------------------


class PolicyWatcher:
    """The current book of a policy file, reloaded when the file changes (checked on every `current`).

    A change is seen by the file's (mtime, size) and confirmed by a hash of its text, so touching the file
    costs one read and an edit within the same mtime tick is still seen on the next size or mtime change.
    A file that fails to load leaves the last good book in place; `error` says why until a good version
    arrives. A removed file means the built-in policies.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._digest: str | None = None
        self._book = PolicyBook.builtin()
        self._error: str | None = None
        self.reloads = 0
        self.current()

    @property
    def error(self) -> str | None:
        """The last load error (``file:line: field: what``), None when the current file loaded."""
        return self._error

    def current(self) -> PolicyBook:
        with self._lock:
            self._refresh()
            return self._book

    def _refresh(self) -> None:
        path = self.path
        if path is None:
            return
        try:
            st = path.stat()
        except FileNotFoundError:
            if self._stamp is not None or self._digest is not None:
                self._book, self._error, self._stamp, self._digest = PolicyBook.builtin(), None, None, None
                self.reloads += 1
            return
        except OSError as exc:
            self._error = f"{path}:1: (file): cannot be read: {exc.strerror or exc}"
            return
        stamp = (st.st_mtime, st.st_size)
        if stamp == self._stamp:
            return
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            self._error = f"{path}:1: (file): cannot be read: {exc.strerror or exc}"
            return
        self._stamp = stamp
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        if digest == self._digest:
            return
        self._digest = digest
        try:
            book = parse_policies(text, str(path))
        except PolicyError as exc:
            self._error = str(exc)
            return
        self._book, self._error = book, None
        self.reloads += 1
