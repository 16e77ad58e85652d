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
