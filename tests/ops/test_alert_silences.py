"""Silences: a matching notice is decided and stored but not sent, and never retried; others still go out; an
expired silence no longer applies; malformed silences are one-line errors. `evaluate_once` on the real Postgres
with a recording delivery function (the flow's own delivery through real webhook blocks: test_alert_flow.py)."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from engines.alerts import Notice, Policy, evaluate_once, parse_silence
from tests.flows.synthetic import add_gpu_samples, add_provider

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Recorder:
    def __init__(self, outcome: str = "ok") -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.outcome = outcome

    def __call__(self, n: Notice, only: Collection[str] | None = None, /) -> Mapping[str, str]:
        self.sent.append((n.kind, n.rule, n.subject))
        return {"custom-webhook/oncall": self.outcome}


def hot(db, at: datetime, temps: Mapping[str, float]) -> None:
    with db.begin() as c:
        for pid, t in temps.items():
            add_provider(c, pid)
            add_gpu_samples(c, [(at, 250.0)], pid=pid, temp_c=t)


def history(db) -> list[tuple[str, str, dict]]:
    with db.connect() as c:
        rows = c.execute(text("SELECT kind, subject, delivery::text FROM alert_events ORDER BY id")).all()
    return [(k, s, json.loads(d)) for k, s, d in rows]


def test_a_silenced_host_is_stored_not_sent_and_never_retried(db) -> None:
    p = Policy(hold_s=0, clear_s=0)
    quiet = [parse_silence("*:h1/*")]
    hot(db, NOW - timedelta(seconds=5), {"h1": 95.0, "h2": 95.0})
    failing = Recorder("ConnectError: down")
    ev = evaluate_once(db, NOW, p, failing, quiet)
    assert failing.sent == [("fire", "gpu_temperature", "h2/g0")]
    assert [(n.subject, dict(d)) for n, d in zip(ev.notices, ev.delivery, strict=True)] == [
        ("h1/g0", {"silenced": "*:h1/*"}), ("h2/g0", {"custom-webhook/oncall": "ConnectError: down"})]
    assert ev.firing == 2  # the state machine is the same: h1 counts as fired

    rec = Recorder()
    ev = evaluate_once(db, NOW + timedelta(minutes=1), p, rec, quiet)
    assert rec.sent == [("fire", "gpu_temperature", "h2/g0")]  # h2's failed fire retried, h1's silenced one not
    assert [(n.subject, d["custom-webhook/oncall"].startswith("ok (retried")) for n, d in ev.retried] == [
        ("h2/g0", True)]
    assert [(k, s, d) for k, s, d in history(db) if s == "h1/g0"] == [("fire", "h1/g0", {"silenced": "*:h1/*"})]


def test_an_expired_silence_no_longer_applies(db) -> None:
    p = Policy(hold_s=0, clear_s=0)
    hot(db, NOW - timedelta(seconds=5), {"h1": 95.0})
    rec = Recorder()
    ev = evaluate_once(db, NOW, p, rec, [parse_silence("gpu_temperature:h1/g0 until 2026-03-02T11:59Z")])
    assert rec.sent == [("fire", "gpu_temperature", "h1/g0")]
    assert [dict(d) for d in ev.delivery] == [{"custom-webhook/oncall": "ok"}]


def test_silence_syntax() -> None:
    s = parse_silence("  gpu_*:gpu-box/*  until 2026-12-02T18:00Z ")
    assert (s.rule, s.subject, s.until) == ("gpu_*", "gpu-box/*", datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
    assert parse_silence("*:h1").until is None
    with pytest.raises(ValueError, match=r"^silence 'h1': write RULE:SUBJECT"):
        parse_silence("h1")
    with pytest.raises(ValueError, match=r"'gpu_temp' matches no rule \(rules: host_unreachable, "):
        parse_silence("gpu_temp:h1")
    with pytest.raises(ValueError, match=r"'tomorrow' is not a time"):
        parse_silence("*:h1 until tomorrow")
    with pytest.raises(ValueError, match=r"give the time zone"):
        parse_silence("*:h1 until 2026-12-02T18:00")
