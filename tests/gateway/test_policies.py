"""Policy files: built-ins, validation errors as file:line: field: what, and reloading without restart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gateway.policies import (
    LatencyLimit,
    PolicyBook,
    PolicyError,
    PolicyWatcher,
    QualityFloor,
    parse_policies,
)

GOOD = """\
policies:
  auto:team-code:
    description: Local coders only, fast enough
    capability: chat
    local_only: true
    quality_floor: {suite: humaneval, min: 0.3}
    latency:
      - {metric: ttft, percentile: p90, max_ms: 2000}
      - {metric: tpot, max_ms: 60}
    quality_suites: [humaneval]
    weights: {quality: 3, speed: 1}
    residency: false
  auto:fast:
    description: Overridden fast
"""


def test_builtins_when_no_file(tmp_path: Path) -> None:
    book = PolicyBook.load(tmp_path / "missing.yaml")
    assert book.names() == ["auto:fast", "auto:best", "auto:code", "auto:long", "auto:efficient"]
    eff = book.get("auto:efficient")
    assert eff is not None and dict(eff.weights) == {"quality": 0, "speed": 1, "energy": 3}
    assert book.get("auto:nope") is None
    assert all(p.description and "\n" not in p.description for p in book.policies)


def test_parse_a_good_file(tmp_path: Path) -> None:
    f = tmp_path / "policies.yaml"
    f.write_text(GOOD)
    book = PolicyBook.load(f)
    assert book.names() == ["auto:best", "auto:code", "auto:long", "auto:efficient", "auto:team-code", "auto:fast"]
    p = book.get("auto:team-code")
    assert p is not None
    assert (p.capability, p.local_only, p.residency, p.live_load) == ("chat", True, False, True)
    assert p.quality_floor == QualityFloor("humaneval", "pass@1", 0.3)
    assert p.latency == (LatencyLimit("ttft", "p90", 2000.0), LatencyLimit("tpot", "p50", 60.0))
    assert dict(p.weights) == {"quality": 3.0, "speed": 1.0, "energy": 0.0} and p.source == str(f)
    fast = book.get("auto:fast")
    assert fast is not None and fast.description == "Overridden fast"
    assert parse_policies("builtins: false\npolicies:\n  auto:x: {description: x}\n").names() == ["auto:x"]
    assert parse_policies("").names() == PolicyBook.builtin().names()


ERRORS = [
    ("policies:\n  auto:x:\n    description: [a\n", "p.yaml:4: (file): invalid YAML: "),
    ("polices: {}\n", "p.yaml:1: polices: unknown field (allowed: builtins, policies)"),
    ("policies:\n  fast:\n    description: x\n", "p.yaml:2: policies.fast: a policy name is auto:"),
    ("policies:\n  auto:x:\n    weights: {speed: 1}\n", "p.yaml:3: policies.auto:x.description: required field"),
    ("policies:\n  auto:x:\n    description: x\n    speed: 1\n",
     "p.yaml:4: policies.auto:x.speed: unknown field (allowed: description, capability,"),
    ("policies:\n  auto:x:\n    description: x\n    capability: chats\n",
     "p.yaml:4: policies.auto:x.capability: 'chats' is not one of chat, completions, embeddings"),
    ("policies:\n  auto:x:\n    description: x\n    local_only: yes please\n",
     "p.yaml:4: policies.auto:x.local_only: 'yes please' is not true or false"),
    ("policies:\n  auto:x:\n    description: x\n    latency:\n      - {metric: ttft, percentile: p42, max_ms: 1}\n",
     "p.yaml:5: policies.auto:x.latency[0].percentile: 'p42' is not one of p50, p90, p95, p99"),
    ("policies:\n  auto:x:\n    description: x\n    latency:\n      - {metric: ttft}\n",
     "p.yaml:5: policies.auto:x.latency[0].max_ms: required field is missing"),
    ("policies:\n  auto:x:\n    description: x\n    weights:\n      speed: -1\n",
     "p.yaml:5: policies.auto:x.weights.speed: -1 must be at least 0"),
    ("policies:\n  auto:x:\n    description: x\n    weights: {quality: 1}\n",
     "p.yaml:4: policies.auto:x.quality_suites: a quality weight needs the suites it is measured on"),
    ("policies:\n  auto:x:\n    description: x\n    quality_floor: {suite: mystery, min: 1}\n",
     "p.yaml:4: policies.auto:x.quality_floor.metric: suite 'mystery' has no default metric; name one"),
    ("policies:\n  auto:x: {description: a}\n  auto:x: {description: b}\n", "p.yaml:3: policies.auto:x: defined twice"),
    ("policies:\n  auto:x:\n    description: x\n    quality_suites: [humaneval, mmlu]\n",
     "p.yaml:4: policies.auto:x.quality_suites[1]: 'mmlu' is not one of humaneval, ifeval, chat, agentic, utility, "
     "needle"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[e[1].split(": ")[1] for e in ERRORS])
def test_errors_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse_policies(text, "p.yaml")
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def _write(f: Path, text: str, tick: int) -> None:
    f.write_text(text)
    os.utime(f, (1_700_000_000 + tick, 1_700_000_000 + tick))  # a new mtime without sleeping


def test_watcher_reloads_and_keeps_the_last_good_book(tmp_path: Path) -> None:
    f = tmp_path / "policies.yaml"
    w = PolicyWatcher(f)
    assert w.current().names() == PolicyBook.builtin().names() and w.error is None
    _write(f, "builtins: false\npolicies:\n  auto:one: {description: first}\n", 1)
    assert w.current().names() == ["auto:one"] and w.error is None
    _write(f, "builtins: false\npolicies:\n  auto:one: {description: first}\n  auto:two: {descripton: x}\n", 2)
    assert w.current().names() == ["auto:one"]  # the last good book stays
    assert w.error == f"{f}:4: policies.auto:two.descripton: unknown field (allowed: description, capability, " \
        "local_only, min_context, quality_floor, latency, quality_suites, weights, residency, live_load)"
    _write(f, "builtins: false\npolicies:\n  auto:two: {description: second}\n", 3)
    assert w.current().names() == ["auto:two"] and w.error is None
    reloads = w.reloads
    _write(f, "builtins: false\npolicies:\n  auto:two: {description: second}\n", 4)  # touched, same text
    assert w.current().names() == ["auto:two"] and w.reloads == reloads
    f.unlink()
    assert w.current().names() == PolicyBook.builtin().names() and w.error is None
