"""Epoch decisions on a new boot, with hand-built upstream answers (MockTransport)."""

from __future__ import annotations

import asyncio

import httpx

from connectors import llama_swap as proto
from connectors.follower import LlamaSwapFollower, activity_signature
from connectors.llama_swap_api import LlamaSwapAPI
from core.providers import Provider
from warehouse.records import Epoch, Gap, ProviderState

OLD_ROW = {"id": 1, "timestamp": "2026-11-21T10:00:00Z", "model": "m", "req_path": "/v1/chat/completions",
           "resp_content_type": "application/json", "resp_status_code": 200, "duration_ms": 31,
           "tokens": {"input_tokens": 25, "output_tokens": 10, "cache_tokens": -1, "draft_tokens": -1,
                      "draft_acc_tokens": -1, "prompt_per_second": 0, "tokens_per_second": 10}, "has_capture": True}


def decide(upstream_row: dict, followed_to_end: bool = False, boot_marker: str = "boot-2") -> list:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"data": [upstream_row], "page": 1, "limit": 1, "total": 1, "total_pages": 1})

    old = proto.parse_activity(OLD_ROW, "p", "boot-1")
    st = ProviderState(boot_marker=boot_marker, epoch="boot-1", cursor=1, cursor_finished_at=old.finished_at,
                       cursor_model="m", cursor_signature=activity_signature(old), followed_to_end=followed_to_end)

    async def main() -> list:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            f = LlamaSwapFollower(LlamaSwapAPI(Provider(id="p", label="p", base_url="http://ls"), client), st,
                                  emit=None)  # type: ignore[arg-type]
            records: list = []
            await f._decide_epoch(records, "boot-1", old.finished_at)
            return records

    return asyncio.run(main())


def test_same_row_after_restart_means_persistent_store_and_same_epoch():
    assert decide(dict(OLD_ROW)) == []


def test_new_row_1_in_the_same_second_is_not_mistaken_for_the_old_one():
    fresh = {**OLD_ROW, "duration_ms": 29}  # same id, same whole second, same model: a different request
    recs = decide(fresh)
    assert [type(r) for r in recs] == [Gap, Epoch]
    assert (recs[0].from_id, recs[0].to_id) == (2, None) and recs[1].epoch == "boot-2"


def test_restart_followed_to_the_end_starts_a_new_epoch_without_gap():
    recs = decide({**OLD_ROW, "model": "other"}, followed_to_end=True)
    assert [type(r) for r in recs] == [Epoch]


def test_identical_row_that_finished_after_the_new_boot_began_is_a_new_epoch():
    # the new process started at 09:59:58.7; a row stamped 10:00:00 finished after that, so it cannot have
    # survived from the previous boot even though every field matches the old row 1
    recs = decide(dict(OLD_ROW), boot_marker="2026-11-21T09:59:58.7Z")
    assert [type(r) for r in recs] == [Gap, Epoch]
    assert recs[1].epoch == "2026-11-21T09:59:58.7Z"


def test_identical_row_from_before_or_in_the_boot_second_continues_the_epoch():
    assert decide(dict(OLD_ROW), boot_marker="2026-11-21T10:00:07.25Z") == []  # restarted 7 s later
    assert decide(dict(OLD_ROW), boot_marker="2026-11-21T10:00:00.9Z") == []  # same second: undecided


def test_finished_after_boot_rule():
    from datetime import UTC, datetime

    from connectors.follower import finished_after_boot

    t = datetime(2026, 11, 21, 10, 0, 1, tzinfo=UTC)
    assert finished_after_boot(t, "2026-11-21T10:00:00.999999999Z") is True
    assert finished_after_boot(t, "2026-11-21T10:00:01.000Z") is False
    assert finished_after_boot(t, "2026-11-21T10:00:02Z") is False
    assert finished_after_boot(t, "seen:2026-11-21T09:00:00+00:00") is False
    assert finished_after_boot(t, "garbage") is False
    assert finished_after_boot(t, None) is False


# -- what a new in-memory epoch may have lost ----------------------------------------------------------------

def _t(s: str):
    from datetime import datetime

    return datetime.fromisoformat(s)


def decide_state(st: ProviderState, upstream_row: dict | None = None, date_header: str | None = None) -> list:
    """`_decide_epoch` for a prepared state; the cursor row upstream is ``upstream_row`` (a fresh boot's row 1)."""
    row = upstream_row or {**OLD_ROW, "model": "other"}

    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"date": date_header} if date_header else {}
        return httpx.Response(200, headers=headers,
                              json={"data": [row], "page": 1, "limit": 1, "total": 1, "total_pages": 1})

    async def main() -> list:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            api = LlamaSwapAPI(Provider(id="p", label="p", base_url="http://ls"), client)
            if date_header:
                await api.version()  # one answer with a Date header: the clock offset bracket
            f = LlamaSwapFollower(api, st, emit=None)  # type: ignore[arg-type]
            records: list = []
            await f._decide_epoch(records, "2026-11-21T09:00:00Z", _t("2026-11-21T10:01:00+00:00"))
            return records

    return asyncio.run(main())


def followed_state(boot: str, **kw) -> ProviderState:
    old = proto.parse_activity(OLD_ROW, "p", "2026-11-21T09:00:00Z")
    return ProviderState(boot_marker=boot, epoch="2026-11-21T09:00:00Z", cursor=1, cursor_finished_at=old.finished_at,
                         cursor_model="m", cursor_signature=activity_signature(old), followed_to_end=True, **kw)


def test_unobserved_stretch_exact():
    from connectors.follower import unobserved_stretch

    lost, boot = _t("2026-11-21T10:00:00+00:00"), _t("2026-11-21T10:00:03.5+00:00")
    assert unobserved_stretch(lost, [], boot, 1.0) == (lost, boot)
    probes = [_t("2026-11-21T10:00:00.8+00:00"), _t("2026-11-21T10:00:01.7+00:00"), _t("2026-11-21T10:00:02.6+00:00")]
    assert unobserved_stretch(lost, probes, boot, 1.0) is None  # refused every < 1 s: no boot fits in between
    assert unobserved_stretch(lost, probes[:1] + probes[2:], boot, 1.0) == (probes[0], probes[2])  # 1.8 s unseen
    assert unobserved_stretch(lost, [], _t("2026-11-21T10:00:00.9+00:00"), 1.0) is None  # a quick restart
    assert unobserved_stretch(lost, [], _t("2026-11-21T09:59:59+00:00"), 1.0) is None  # booted before we lost it


def test_boot_never_observed_between_loss_and_new_boot_is_an_explicit_gap():
    # followed to its end; the stream was lost at 10:00:10, the boot we now see started 4 s later and nothing
    # was observed in between: a boot that came and went there would be lost silently
    st = followed_state("2026-11-21T10:00:14Z", lost_at=_t("2026-11-21T10:00:10+00:00"))
    recs = decide_state(st)
    assert [type(r) for r in recs] == [Gap, Epoch]
    g = recs[0]
    assert (g.provider_id, g.stream, g.epoch, g.from_id, g.to_id) == ("p", "activity", "2026-11-21T09:00:00Z", 2, None)
    assert (g.from_at, g.to_at) == (_t("2026-11-21T10:00:10+00:00"), _t("2026-11-21T10:00:14+00:00"))
    assert g.reason.startswith("instance restarted between 2026-11-21T10:00:10+00:00 and 2026-11-21T10:00:14+00:00 "
                               "and was not observed")
    assert "rows unknown" in g.reason


def test_quick_restart_or_probed_downtime_leaves_no_gap():
    quick = followed_state("2026-11-21T10:00:10.6Z", lost_at=_t("2026-11-21T10:00:10+00:00"))
    assert [type(r) for r in decide_state(quick)] == [Epoch]
    slow_starter = followed_state("2026-11-21T10:00:12.5Z", lost_at=_t("2026-11-21T10:00:10+00:00"))
    assert [type(r) for r in decide_state(slow_starter)] == [Epoch]  # 2.5 s: no room for a boot with rows
    probed = followed_state("2026-11-21T10:00:14Z", lost_at=_t("2026-11-21T10:00:10+00:00"),
                            absent_at=[_t(f"2026-11-21T10:00:1{s}+00:00") for s in (0.9, 1.8, 2.7, 3.4)])
    assert [type(r) for r in decide_state(probed)] == [Epoch]


def test_instance_clock_ahead_is_corrected_with_date_headers():
    # the instance's clock runs 30 s ahead: its boot at "10:00:40.5" is 10:00:10.5 on ours, 0.5 s after the loss
    import time as _time
    from email.utils import formatdate

    ahead = formatdate(_time.time() + 30, usegmt=True)
    st = followed_state("2026-11-21T10:00:40.5Z", lost_at=_t("2026-11-21T10:00:10+00:00"))
    assert [type(r) for r in decide_state(st, date_header=ahead)] == [Epoch]
    st = followed_state("2026-11-21T10:00:40.5Z", lost_at=_t("2026-11-21T10:00:10+00:00"))
    assert [type(r) for r in decide_state(st)] == [Gap, Epoch]  # without the offset: 30 s unobserved


def test_requests_in_flight_at_shutdown_bound_the_gap():
    st = followed_state("2026-11-21T10:00:10.2Z", lost_at=_t("2026-11-21T10:00:10+00:00"), inflight_at_close=2)
    recs = decide_state(st)
    assert [type(r) for r in recs] == [Gap, Epoch]
    assert (recs[0].from_id, recs[0].to_id) == (2, 3) and "2 request(s) were in flight" in recs[0].reason


def test_clock_offset_brackets_narrow_and_reset_on_a_step():
    from connectors.clock import ClockOffset

    c = ClockOffset()
    c.observe("Sat, 21 Nov 2026 10:00:00 GMT", 1795255199.9, 1795255200.1)  # D = 1795255200
    assert (round(c.lo, 3), round(c.hi, 3)) == (-0.1, 1.1)
    c.observe("Sat, 21 Nov 2026 10:00:01 GMT", 1795255200.6, 1795255200.7)
    assert (round(c.lo, 3), round(c.hi, 3)) == (0.3, 1.1)
    c.observe("Sat, 21 Nov 2026 10:10:00 GMT", 1795255201.0, 1795255201.1)  # a 10-minute step: start again
    assert (round(c.lo, 3), round(c.hi, 3)) == (598.9, 600.0)
    c.observe(None, 0, 1)
    c.observe("garbage", 0, 1)
    assert (round(c.lo, 3), round(c.hi, 3)) == (598.9, 600.0)
