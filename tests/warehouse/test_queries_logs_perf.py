from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import Engine, insert

from tests.ui import seed
from tests.ui.seed import T0
from warehouse import schema_rollups as r
from warehouse.queries import logs, perf
from warehouse.queries.redaction import redact_text


@pytest.fixture()
def logged(db: Engine) -> Engine:
    with db.begin() as c:
        seed.provider(c, "alpha")
        seed.log(c, "alpha", "proxy", T0, "[INFO] one\n[WARN] tw")
        seed.log(c, "alpha", "proxy", T0 + timedelta(seconds=1), "o\n[INFO] \x1b[32mthree\x1b[0m\n")
        seed.log(c, "alpha", "proxy", T0 + timedelta(seconds=2), "[INFO] cmd --api-key sk-abcdefgh1234\n")
        seed.log(c, "alpha", "upstream", T0, "model output\n")
        seed.log(c, "alpha", "model:qwen", T0 - timedelta(days=3), "old\n")
    return db


def test_tail_joins_chunks_strips_ansi_and_redacts(logged: Engine) -> None:
    tail = logs.log_tail(logged, "alpha", "proxy")
    assert tail.text == "[INFO] one\n[WARN] two\n[INFO] three\n[INFO] cmd --api-key [REDACTED]\n"
    assert tail.truncated is False and tail.chunks == 3 and tail.newest_at == T0 + timedelta(seconds=2)
    assert logs.log_sources(logged, "alpha", T0 - timedelta(days=1)) == ["proxy", "upstream"]


def test_tail_is_bounded_to_whole_lines(logged: Engine) -> None:
    tail = logs.log_tail(logged, "alpha", "proxy", max_bytes=40)
    assert tail.truncated is True
    assert len(tail.text.encode()) <= 40
    assert tail.text == "[INFO] cmd --api-key [REDACTED]\n"  # the cut first line is dropped
    assert logs.log_tail(logged, "alpha", "nothing").text == ""


def test_grep_lines(logged: Engine) -> None:
    body = logs.log_tail(logged, "alpha", "proxy").text
    assert logs.grep_lines(body, r"\[warn\]") == ["[WARN] two"]
    assert logs.grep_lines(body, "") == body.splitlines()
    assert logs.grep_lines(body, "INFO", max_lines=1) == ["[INFO] cmd --api-key [REDACTED]"]
    with pytest.raises(re.error):
        logs.grep_lines(body, "([unclosed")


def test_redact_text_patterns() -> None:
    s = "Authorization: Bearer abc.def-123 --api-key=XYZ123 token: t0k3n sk-live-abcdefgh ok"
    assert redact_text(s, ["t0k3n"]) == (
        "Authorization: Bearer [REDACTED] --api-key=[REDACTED] token: [REDACTED] [REDACTED] ok"
    )


@pytest.fixture()
def sampled(db: Engine) -> Engine:
    with db.begin() as c:
        seed.provider(c, "alpha")
        seed.provider(c, "beta")
        for i in range(120):  # 2 hours of minute samples; cpu alternates 10/30, mem 25 %
            t = T0 - timedelta(minutes=120 - i)
            seed.perf(c, "alpha", t, cpu=10.0 if i % 2 == 0 else 30.0)
            seed.gpu(c, "alpha", t, key="GPU-a", index=0, temp=50.0 + (i % 2) * 10, power=100.0)
            seed.gpu(c, "alpha", t, key="GPU-b", index=1, temp=40.0, power=50.0)
        seed.perf(c, "beta", T0 - timedelta(minutes=30), cpu=90.0, mem_used=16000.0)
    return db


def test_host_series_raw_buckets(sampled: Engine) -> None:
    s = perf.host_series(sampled, ("alpha", "beta"), T0 - timedelta(hours=2), T0, points=12)
    a = s.filter(s["provider_id"] == "alpha")
    assert a.height == 12  # 10-minute buckets over two hours
    assert a["cpu_pct"].to_list() == [20.0] * 12 and a["mem_pct"].to_list() == [25.0] * 12
    b = s.filter(s["provider_id"] == "beta")
    assert b["cpu_pct"].to_list() == [90.0] and b["mem_pct"].to_list() == [50.0]
    assert perf.host_series(sampled, ("gamma",), T0 - timedelta(hours=2), T0).height == 0


def test_gpu_series_names_multi_gpu_lines(sampled: Engine) -> None:
    g = perf.gpu_series(sampled, ("alpha",), T0 - timedelta(hours=2), T0, points=4)
    assert sorted(set(g["series"].to_list())) == ["alpha/gpu0", "alpha/gpu1"]
    g0 = g.filter(g["series"] == "alpha/gpu0")
    assert g0.height == 4 and g0["temp_c"].to_list() == [55.0] * 4 and g0["power_w"].to_list() == [100.0] * 4


def test_long_windows_read_rollups_and_fill_the_tail_from_raw(sampled: Engine) -> None:
    # 3 days of hourly host rollups for alpha ending 2 h before T0 (cpu 50 %, 60 samples each); the last
    # two hours exist only as raw samples (cpu mean 20 %).
    with sampled.begin() as c:
        for h in range(72):
            c.execute(
                insert(r.rollup_host_1h).values(
                    provider_id="alpha",
                    bucket_start=T0 - timedelta(hours=74 - h),
                    samples=60,
                    cpu_util_pct_mean=50.0,
                    cpu_util_pct_max=60.0,
                    mem_used_mb_mean=8000.0,
                    mem_used_mb_max=8000.0,
                    mem_total_mb=32000.0,
                    load_avg_1_mean=1.0,
                    load_avg_1_max=1.0,
                    gpu_count=0,
                    gpu_energy_j=0.0,
                )
            )
    start, end = T0 - timedelta(days=4), T0
    assert perf.source_grain(perf.bucket_seconds(start, end, 24)) == "1h"
    s = perf.host_series(sampled, ("alpha",), start, end, points=24)  # 4-hour buckets
    cpu = s["cpu_pct"].to_list()
    assert cpu[:-1] == [50.0] * (len(cpu) - 1)
    # last bucket [T0-4h, T0): 2 rollup hours (120 samples at 50 %) + 120 raw samples at 20 % mean
    assert s["t"][-1] == T0 - timedelta(hours=4) and cpu[-1] == pytest.approx(35.0)


def test_own_requests_are_boocontrols_polls_only() -> None:
    from warehouse.queries.logs import is_own_request, without_own_requests

    def line(method: str, path: str, agent: str) -> str:
        return f'[INFO] Request 127.0.0.1 "{method} {path} HTTP/1.1" 200 12 "{agent}" 1.2ms'

    httpx_ua = "python-httpx/0.28.1"
    own = [line("GET", p, httpx_ua) for p in ("/api/captures/7", "/api/metrics/activity?min_id=3", "/running",
                                               "/v1/models", "/api/version", "/logs/stream/qwen")]  # fmt: skip
    theirs = [
        line("GET", "/v1/models", "curl/8.5.0"),  # someone else listing models
        line("POST", "/v1/chat/completions", httpx_ua),  # a client using httpx
        line("GET", "/upstream/qwen/", httpx_ua),  # a warm action: not polling
        line("GET", "/runningx", httpx_ua),
        "[INFO] upstream ready",
    ]
    assert [is_own_request(x) for x in own] == [True] * 6
    assert [is_own_request(x) for x in theirs] == [False] * 5
    assert without_own_requests("\n".join(own + theirs)) == ("\n".join(theirs), 6)
