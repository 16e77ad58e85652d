"""A gap the REAL connector records (ring overflow while it was away, on a real llama-swap and on the simulator)
appears in the cockpit: the Activity page's Gaps section with its exact ids, and the Fleet board's count."""

from __future__ import annotations

import pytest

from core.providers import Provider
from tests.support.connector import ConnectorThread, chat, query, registry_for, wait_until
from tests.support.targets import run_target
from tests.ui.conftest import run_page


@pytest.mark.resilience
def test_ring_overflow_gap_is_shown_on_activity_and_fleet(target_kind, app_env, db_url, tmp_path):
    def ids() -> list[int]:
        return [r[0] for r in query(db_url, "SELECT upstream_id FROM activity WHERE provider_id='c' ORDER BY 1")]

    with run_target(target_kind, extra="metricsMaxInMemory: 4") as target:
        p = Provider(id="c", label="c", base_url=target.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            wait_until(lambda: query(db_url, "SELECT status FROM connector_health") == [("connected",)],
                       what="connected")
            assert chat(target.base_url, "responder-a").status_code == 200
            wait_until(lambda: ids() == [1], what="row 1")
        for _ in range(6):  # ids 2..7 while nobody follows; a ring of 4 keeps 4..7
            assert chat(target.base_url, "responder-a").status_code == 200
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            wait_until(lambda: ids() == [1, 4, 5, 6, 7], what="rows 4..7")
            wait_until(lambda: query(db_url, "SELECT count(*) FROM gaps") == [(1,)], what="the gap")
    ((epoch,),) = query(db_url, "SELECT epoch FROM activity WHERE provider_id='c' LIMIT 1")

    at = run_page("pages/2_Activity.py")
    assert not at.exception, at.exception
    assert [w.value for w in at.warning] == ["1 gap in this window: c 1"]
    (table,) = [d.value for d in at.dataframe if "reason" in d.value.columns]
    assert [tuple(r) for r in table[["provider_id", "stream", "epoch", "missing", "reason"]].itertuples(index=False)] \
        == [("c", "activity", epoch, "2..3 (2 rows)",
             "ids 2..3 were no longer held upstream (activity ring overflowed while not followed)")]

    fleet = run_page("pages/1_Fleet.py")
    assert not fleet.exception, fleet.exception
    board = fleet.dataframe[0].value
    assert list(zip(board["provider_id"], board["gaps_recent"], strict=True)) == [("c", 1)]
