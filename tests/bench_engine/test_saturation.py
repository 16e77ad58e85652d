from __future__ import annotations

from engines.bench.metrics import RequestRecord, summarize
from engines.bench.saturation import SaturationPolicy, Verdict, assess_closed, assess_open, should_stop


def point(
    n: int, tokens: int, duration: float, ttft: float = 0.0625, status: int = 200
) -> list[RequestRecord]:
    """n back-to-back requests of `tokens` tokens spread evenly over `duration` seconds."""
    out = []
    step = duration / n
    for i in range(n):
        t = i * step
        out.append(
            RequestRecord(
                index=i, send=t, chunks=[t + ttft, t + step], end=t + step, status=status,
                usage={"completion_tokens": tokens}, error=None if status == 200 else "HTTP 500",
            )
        )  # fmt: skip
    return out


def test_closed_loop_plateau_needs_two_steps_without_significant_gain() -> None:
    pol = SaturationPolicy()
    s1 = summarize(point(10, 100, 10.0))  # 100 tok/s
    s2 = summarize(point(10, 190, 10.0))  # 190 tok/s: +90 %, z = ln(1.9) / (0.06·√2) = 7.6
    s3 = summarize(point(10, 195, 10.0))  # 195 tok/s: +2.6 % — within the noise, but one step is no plateau
    s4 = summarize(point(10, 192, 10.0))  # 192 tok/s: −1.5 % vs the best (195): second step without a gain
    assert s1.throughput_rel_se == 0.0  # identical requests: the 0.06 noise floor applies
    assert not assess_closed(s1, [], pol).saturated
    assert not assess_closed(s2, [s1], pol).saturated
    assert not assess_closed(s3, [s1, s2], pol).saturated
    v = assess_closed(s4, [s1, s2, s3], pol)
    assert v.saturated
    assert v.reason == (
        "throughput plateau after sweep point #2: 2 steps without a significant gain over the best lower level: "
        "+2.6% (z=0.31), -1.5% (z=-0.18)"
    )
    # Early stop off: the verdict is still computed; only should_stop ignores it.
    off = SaturationPolicy.disabled()
    assert assess_closed(s4, [s1, s2, s3], off).saturated
    assert not should_stop([Verdict(False), assess_closed(s4, [s1, s2, s3], off)], off)


def test_queueing_and_error_bounds() -> None:
    pol = SaturationPolicy(ttft_p50_max_ms=1000.0, max_error_rate=0.05)
    slow = summarize(point(10, 100, 40.0, ttft=2.0))
    v = assess_closed(slow, [], pol)
    assert v.saturated and "p50 TTFT 2000 ms" in (v.reason or "")
    errs = summarize(point(9, 100, 9.0) + point(1, 0, 1.0, status=500))
    assert "errors: 10%" in (assess_closed(errs, [], pol).reason or "")


def test_open_loop_queue_growth() -> None:
    pol = SaturationPolicy()
    recs = point(30, 50, 30.0)
    for i, r in enumerate(recs):  # TTFT grows from 50 ms to ~3 s over the point
        r.chunks[0] = r.send + 0.05 + i * 0.1
        r.scheduled = r.send
    s = summarize(recs)
    v = assess_open(s, recs, rate=1.0, policy=pol)
    assert v.saturated and "queue growing" in (v.reason or "")


def test_open_loop_schedule_slip() -> None:
    recs = point(12, 50, 12.0)
    for r in recs:
        r.scheduled = r.send - 1.5  # every send 1.5 s late, rate 1/s → one gap is 1 s
    v = assess_open(summarize(recs), recs, rate=1.0, policy=SaturationPolicy())
    assert v.saturated and "schedule slipping" in (v.reason or "")
    recs_ok = point(12, 50, 12.0)
    for r in recs_ok:
        r.scheduled = r.send
    assert not assess_open(summarize(recs_ok), recs_ok, rate=1.0, policy=SaturationPolicy()).saturated


def test_should_stop_respects_patience() -> None:
    yes, no = Verdict(True, ("x",)), Verdict(False)
    assert should_stop([no, yes], SaturationPolicy())
    assert not should_stop([no, yes], SaturationPolicy(patience=2))
    assert should_stop([yes, yes], SaturationPolicy(patience=2))
    assert not should_stop([yes], SaturationPolicy.disabled())
