"""rank(): table-driven, exact picks, orders, factors and skip reasons on hand-made facts (pure, no I/O)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.facts import FleetFacts, ModelFacts, Speed
from gateway.policies import LatencyLimit, Policy, PolicyBook, QualityFloor
from gateway.ranking import Need, rank

BOOK = PolicyBook.builtin()
AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
CHAT = frozenset({"chat", "completions"})


def speed(prefill: float, tpot: float, ttft_p90: float = 500.0, source: str = "bench run 1") -> Speed:
    return Speed(source=source, samples=10, ttft_ms={"p50": 400.0, "p90": ttft_p90}, tpot_ms={"p50": tpot},
                 gen_tps={"p50": 1000 / tpot}, prefill_tps=prefill)  # fmt: skip


def mf(key: str, **kw: Any) -> ModelFacts:
    pid, mid = key.split("/", 1)
    base: dict[str, Any] = dict(kind="llama-swap", local=True, provider_online=True, state="ready",
                                context_length=32768, endpoints=CHAT, bench=speed(1000.0, 10.0))
    base.update(kw)
    return ModelFacts(provider_id=pid, model_id=mid, **base)


def policy(name: str = "auto:test", **kw: Any) -> Policy:
    return Policy(name, "test policy", **kw)


def order(p: Policy, models: list[ModelFacts], need: Need | None = None, inflight: dict[str, int] | None = None,
          cooling: tuple[str, ...] = ()) -> tuple[list[tuple[str, float]], list[tuple[str, str]]]:
    r = rank(p, need or Need("chat", 1000, 100), FleetFacts(AT, tuple(models)), inflight or {}, cooling)
    return [(c.key, c.score) for c in r.candidates], list(r.skipped)


FAST = BOOK.get("auto:fast")
assert FAST is not None

CASES: list[tuple[str, Policy, list[ModelFacts], dict[str, Any], list[tuple[str, float]], list[tuple[str, str]]]] = [
    ("residency: the loaded model beats a faster cold one by its measured load time", FAST,
     [mf("h/a", bench=speed(1000.0, 90.0)), mf("h/b", state="stopped", load_ms=5000.0, bench=speed(1000.0, 70.0))],
     {}, [("h/a", 1.0), ("h/b", 0.769231)], []),
    ("residency off: the faster cold model wins", policy(residency=False),
     [mf("h/a", bench=speed(1000.0, 90.0)), mf("h/b", state="stopped", load_ms=5000.0, bench=speed(1000.0, 70.0))],
     {}, [("h/b", 1.0), ("h/a", 0.8)], []),
    ("cold without its own load time pays the fleet's median load time", FAST,
     [mf("h/a", bench=speed(1000.0, 90.0)), mf("h/b", state="stopped", bench=speed(1000.0, 10.0)),
      mf("h/c", state="stopped", load_ms=9000.0, context_length=100)],
     {}, [("h/a", 1.0), ("h/b", 0.909091)], [("h/c", "context window 100 < 1,100 tokens needed (prompt + max_tokens)")]),
    ("live load: two in flight through the gateway triple the expected time", FAST,
     [mf("h/a"), mf("h/b")], {"inflight": {"h/a": 2}}, [("h/b", 1.0), ("h/a", 0.333333)], []),
    ("a cold model waits for the requests in flight on its host's other models before the swap", FAST,
     [mf("h/a", bench=replace(speed(1000.0, 10.0), e2e_ms={"p50": 3000.0})),
      mf("h/b", state="stopped", load_ms=1000.0), mf("x/c")],
     {"inflight": {"h/a": 2}}, [("x/c", 1.0), ("h/a", 0.333333), ("h/b", 0.222222)], []),
    ("live load off: no swap wait either", policy(live_load=False),
     [mf("h/a"), mf("h/b", state="stopped", load_ms=1000.0)],
     {"inflight": {"h/a": 2}}, [("h/a", 1.0), ("h/b", 0.666667)], []),
    ("live load off: equal scores, alphabetical", policy(live_load=False),
     [mf("h/b"), mf("h/a")], {"inflight": {"h/a": 2}}, [("h/a", 1.0), ("h/b", 1.0)], []),
    ("tie: the loaded one first, then alphabetical", policy(residency=False),
     [mf("z/a"), mf("a/a", state="stopped"), mf("m/a")], {}, [("m/a", 1.0), ("z/a", 1.0), ("a/a", 1.0)], []),
    ("cooling down and leased targets are skipped", FAST,
     [mf("h/a"), mf("h/b"), mf("l/c", lease="bench run 7 by x until 12:05:00 UTC")], {"cooling": ("h/a",)},
     [("h/b", 1.0)],
     [("h/a", "cooling down after recent failures"),
      ("l/c", "host under a fleet lease: bench run 7 by x until 12:05:00 UTC")]),
    ("offline, wrong endpoint, failed canary", FAST,
     [mf("h/a", provider_online=False), mf("h/e", endpoints=frozenset({"embeddings"})), mf("h/c", canary_ok=False),
      mf("h/d", canary_ok=True)],
     {}, [("h/d", 1.0)],
     [("h/a", "provider h is offline"), ("h/c", "its last canary failed"),
      ("h/e", "does not serve chat (serves embeddings)")]),
    ("embeddings: only embedding models", FAST,
     [mf("h/a"), mf("h/e", endpoints=frozenset({"embeddings"}))], {"need": Need("embeddings", 500, 0)},
     [("h/e", 1.0)], [("h/a", "does not serve embeddings (serves chat, completions)")]),
    ("local-only never picks a cloud provider", policy(local_only=True),
     [mf("cloud/x", local=False, state=None, bench=speed(9000.0, 1.0)), mf("h/a")], {},
     [("h/a", 1.0)], [("cloud/x", "cloud provider, and the policy is local-only")]),
    ("quality floor on a named suite", policy(quality_floor=QualityFloor("humaneval", "pass@1", 0.5)),
     [mf("h/a", quality={"humaneval": {"pass@1": 0.49}}), mf("h/b", quality={"humaneval": {"pass@1": 0.5}}),
      mf("h/c")],
     {}, [("h/b", 1.0)],
     [("h/a", "humaneval pass@1 0.490 below the policy's floor 0.5"),
      ("h/c", "no humaneval pass@1 score (the policy's floor is 0.5)")]),
    ("latency limit at a percentile", policy(latency=(LatencyLimit("ttft", "p90", 600.0),)),
     [mf("h/a", bench=speed(1000.0, 10.0, ttft_p90=601.0)), mf("h/b", bench=speed(100.0, 10.0, ttft_p90=600.0)),
      mf("h/c", bench=None)],
     {}, [("h/b", 1.0)],
     [("h/a", "ttft p90 601 ms over the policy's limit 600 ms"),
      ("h/c", "no measured ttft p90 (the policy's limit is 600 ms)")]),
    ("auto:efficient: joules per token first, speed breaks near-ties", BOOK.get("auto:efficient"),
     [mf("h/a", j_per_token=1.0, bench=speed(1000.0, 10.0)), mf("h/b", j_per_token=0.5, bench=speed(1000.0, 30.0)),
      mf("h/c", bench=speed(10000.0, 9.0))],
     {}, [("h/b", 0.8125), ("h/a", 0.5), ("h/c", 0.25)], []),
    ("auto:code: quality over speed", BOOK.get("auto:code"),
     [mf("h/fast", quality={"humaneval": {"pass@1": 0.3}}, bench=speed(1000.0, 5.0)),
      mf("h/good", quality={"humaneval": {"pass@1": 0.6}}, bench=speed(1000.0, 10.0)), mf("h/none")],
     {}, [("h/good", 0.9375), ("h/fast", 0.625), ("h/none", 0.1875)], []),
    ("auto:best averages its suites, a missing suite counts 0", BOOK.get("auto:best"),
     [mf("h/a", quality={"humaneval": {"pass@1": 0.8}, "ifeval": {"prompt_strict": 0.5}, "chat": {"judge_score": 8.0}}),
      mf("h/b", quality={"humaneval": {"pass@1": 0.4}, "ifeval": {"prompt_strict": 1.0}})],
     {}, [("h/a", 0.866667), ("h/b", 0.6)], []),
    ("auto:long: a 32k window is required even for a short prompt", BOOK.get("auto:long"),
     [mf("h/a", context_length=16384), mf("h/b", context_length=65536), mf("h/c", context_length=None)],
     {}, [("h/b", 0.666667)],
     [("h/a", "context window 16,384 < 32,768 the policy requires"),
      ("h/c", "context window not known, the policy requires 32,768")]),
    ("no speed measured: speed 0 but still a candidate", FAST,
     [mf("h/a", bench=None), mf("h/b")], {}, [("h/b", 1.0), ("h/a", 0.0)], []),
    ("live activity speaks over the bench run", FAST,
     [mf("h/a", live=speed(1000.0, 50.0, source="live"), bench=speed(1000.0, 1.0)), mf("h/b")], {},
     [("h/b", 1.0), ("h/a", 0.333333)], []),
]


@pytest.mark.parametrize(("p", "models", "kw", "expected", "skipped"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_rank(p: Policy | None, models: list[ModelFacts], kw: dict[str, Any], expected: list[tuple[str, float]],
              skipped: list[tuple[str, str]]) -> None:
    assert p is not None
    got, why = order(p, models, **kw)
    assert got == expected
    assert why == skipped


def test_same_facts_same_order_whatever_the_input_order() -> None:
    models = [mf(f"h/{c}", state="stopped" if c in "bd" else "ready") for c in "edcba"]
    first, _ = order(FAST, models)
    assert first == order(FAST, list(reversed(models)))[0]
    assert [k for k, _ in first] == ["h/a", "h/c", "h/e", "h/b", "h/d"]


def test_factors_and_reasons_in_plain_words() -> None:
    code = BOOK.get("auto:code")
    assert code is not None
    a = mf("gpu/qwen", state="stopped", load_ms=4000.0, quality={"humaneval": {"pass@1": 0.6}},
           live=speed(2000.0, 20.0, source="live activity (24 h, 10 requests)"))
    b = mf("cloud/gpt", local=False, state=None, quality={"humaneval": {"pass@1": 0.9}}, bench=speed(5000.0, 15.0))
    r = rank(code, Need("chat", 30000, 512), FleetFacts(AT, (a, b)), {"gpu/qwen": 1}, ())
    assert [c.key for c in r.candidates] == ["cloud/gpt", "gpu/qwen"]
    top, second = r.candidates
    assert top.score == 1.0
    assert second.factors == {"quality": 0.666667, "speed": 0.251101, "energy": 0.0, "cold_ms": 4000.0,
                              "queue_ms": 25240.0, "inflight": 1.0, "expected_ms": 54480.0}  # fmt: skip
    assert second.score == round((3 * 0.6 / 0.9 + 13680 / 54480) / 4, 6)
    assert second.reasons == (
        "quality 0.67: humaneval pass@1 0.600 (best here 0.900)",
        "speed: ~25.2 s for 30,000 prompt + 512 output tokens (prefill 2,000 tok/s, 20.0 ms/token; "
        "live activity (24 h, 10 requests)) → speed 0.25",
        "residency: stopped, +4,000 ms measured load time",
        "load: 1 in flight through the gateway, +25.2 s",
        "expected in all ~54.5 s",
    )
    assert top.reasons[2] == "residency: always available (no loading)"


def test_explain_limits_reasons_to_the_first_candidates_and_changes_nothing_else() -> None:
    models = [mf(f"h/{c}", bench=speed(1000.0, 10.0 + i)) for i, c in enumerate("abcd")]
    full = rank(FAST, Need("chat", 1000, 100), FleetFacts(AT, tuple(models)), {}, ["h/x"])
    two = rank(FAST, Need("chat", 1000, 100), FleetFacts(AT, tuple(models)), {}, ["h/x"], explain=2)
    assert [(c.key, c.score, c.factors) for c in two.candidates] == [(c.key, c.score, c.factors)
                                                                     for c in full.candidates]  # fmt: skip
    assert [c.reasons for c in two.candidates[:2]] == [c.reasons for c in full.candidates[:2]]
    assert [c.reasons for c in two.candidates[2:]] == [(), ()]
    assert full.candidates[3].reasons[0].startswith("speed: ~2,300 ms for 1,000 prompt + 100 output tokens")


def test_swap_wait_in_words() -> None:
    a = mf("h/a", bench=replace(speed(1000.0, 10.0), e2e_ms={"p50": 3000.0}))
    b = mf("h/b", state="stopped", load_ms=1000.0)
    r = rank(FAST, Need("chat", 1000, 100), FleetFacts(AT, (a, b)), {"h/a": 2}, ())
    cold = r.candidates[1]
    assert cold.key == "h/b" and cold.factors["queue_ms"] == 6000.0 and cold.factors["expected_ms"] == 9000.0
    assert cold.reasons[1:] == (
        "residency: stopped, +1,000 ms measured load time",
        "load: nothing in flight through the gateway",
        "swap: 2 in flight on other models of h finish first, +6,000 ms",
        "expected in all ~9,000 ms",
    )
