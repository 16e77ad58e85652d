"""The connector against llama-swap (``real`` binary and ``sim`` process, same config): activity in Postgres
equals llama-swap's own activity."""

from __future__ import annotations

from core.providers import Provider
from tests.support.connector import ConnectorThread, chat, query, registry_for, upstream_activity, wait_until
from tests.support.targets import run_target


def activity_rows(db_url, pid):
    return query(db_url, "SELECT upstream_id, model_id, status_code, input_tokens, output_tokens, tokens_per_second, "
                         "epoch FROM activity WHERE provider_id=%s ORDER BY epoch, upstream_id", (pid,))


def as_tuples(upstream):
    return [(r["id"], r["model"], r["resp_status_code"], r["tokens"]["input_tokens"], r["tokens"]["output_tokens"],
             float(r["tokens"]["tokens_per_second"])) for r in upstream]


def test_load_swap_activity_lands_exactly_once(db, db_url, target_kind, tmp_path):
    with run_target(target_kind) as ls:
        p = Provider(id="ls1", label="LS 1", base_url=ls.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "spool"):
            wait_until(lambda: query(db_url, "SELECT status FROM connector_health WHERE provider_id='ls1'") ==
                       [("connected",)], what="connected")
            for model in ["responder-a", "responder-a", "responder-b", "responder-a"]:
                assert chat(ls.base_url, model).status_code == 200
            up = upstream_activity(ls.base_url)
            assert len(up) == 4
            wait_until(lambda: len(activity_rows(db_url, "ls1")) == 4, what="4 activity rows")
            wait_until(lambda: query(db_url, "SELECT count(*) FROM model_transitions WHERE model_id='responder-b' "
                                             "AND to_state='ready'") == [(1,)], what="responder-b ready")
        rows = activity_rows(db_url, "ls1")
        assert [r[:6] for r in rows] == as_tuples(up)
        assert [r[3:5] for r in rows] == [(25, 10)] * 4  # simple-responder's usage/timings
        assert len({r[6] for r in rows}) == 1
        assert query(db_url, "SELECT count(*) FROM gaps") == [(0,)]
        assert query(db_url, "SELECT count(*) FROM instance_boots WHERE provider_id='ls1'") == [(1,)]
        # the swap: a went ready -> stopped when b loaded, then back
        states_a = [r[0] for r in query(db_url, "SELECT to_state FROM model_transitions WHERE model_id='responder-a' "
                                                "ORDER BY observed_at")]
        assert states_a[0] == "stopped" and "ready" in states_a and states_a.count("ready") == 2
        assert query(db_url, "SELECT count(*) > 0 FROM raw_events WHERE type = 'sse:modelStatus'") == [(True,)]
        assert query(db_url, "SELECT status FROM connector_health WHERE provider_id='ls1'") == [("stopped",)]
