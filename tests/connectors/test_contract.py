"""One connector contract, run against a real llama-swap (``real``) and the simulator process (``sim``).

The simulator must speak llama-swap's API as it really is; this proves it by running the same
assertions against both: activity in Postgres equals the instance's own activity, swaps produce the
same state transitions, ring overflow while away produces the same exact gap.
"""

from __future__ import annotations

import pytest

from core.providers import Provider
from tests.support.connector import ConnectorThread, chat, query, registry_for, upstream_activity, wait_until
from tests.support.targets import run_target


def acts(db_url):
    return query(db_url, "SELECT epoch, upstream_id, model_id, status_code, input_tokens, output_tokens FROM activity "
                         "WHERE provider_id='c' ORDER BY epoch, upstream_id")


@pytest.mark.resilience
def test_contract_activity_swaps_and_ring_gap(target_kind, db, db_url, tmp_path):
    with run_target(target_kind, extra="metricsMaxInMemory: 4") as target:
        p = Provider(id="c", label="c", base_url=target.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            wait_until(lambda: query(db_url, "SELECT status FROM connector_health") == [("connected",)], what="connected")
            for m in ["responder-a", "responder-b", "responder-a"]:
                assert chat(target.base_url, m).status_code == 200
            wait_until(lambda: len(acts(db_url)) == 3, what="3 rows")
            wait_until(lambda: query(db_url, "SELECT state FROM models WHERE model_id='responder-b'") == [("stopped",)],
                       what="b swapped out")
            up = upstream_activity(target.base_url)
            assert [(r[1], r[2], r[3], r[4], r[5]) for r in acts(db_url)] == [
                (u["id"], u["model"], u["resp_status_code"], u["tokens"]["input_tokens"], u["tokens"]["output_tokens"])
                for u in up]
            trans_b = [r[0] for r in query(db_url, "SELECT to_state FROM model_transitions WHERE model_id='responder-b' "
                                                   "ORDER BY observed_at")]
            assert trans_b[0] == "stopped" and trans_b[-1] == "stopped" and "ready" in trans_b
            wait_until(lambda: query(db_url, "SELECT count(*) > 0 FROM perf_samples") == [(True,)], timeout=15,
                       what="perf samples")
        for _ in range(6):  # ids 4..9; a ring of 4 keeps 6..9
            chat(target.base_url, "responder-a")
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            wait_until(lambda: len(acts(db_url)) == 7, what="7 rows")
        assert [r[1] for r in acts(db_url)] == [1, 2, 3, 6, 7, 8, 9]
        assert query(db_url, "SELECT from_id, to_id FROM gaps") == [(4, 5)]
