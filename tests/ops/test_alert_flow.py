"""The alert flow end to end: rules over the real test Postgres, notices delivered through a real Prefect
webhook block to a webhook receiver on loopback (a real HTTP server), history and state stored."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.flows.conftest import flow_env  # noqa: F401 - fixture
from tests.flows.synthetic import add_gpu_samples, add_provider

__all__ = ["flow_env"]


class Receiver:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                n = int(self.headers.get("Content-Length") or 0)
                outer.bodies.append(json.loads(self.rfile.read(n)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def gpu(db, temp: float, at: datetime) -> None:
    with db.begin() as c:
        add_provider(c, "h1")
        add_gpu_samples(c, [(at, 250.0)], pid="h1", temp_c=temp)


def test_hot_gpu_fires_once_recovers_once_through_a_webhook_block(prefect_harness, flow_env: Path,  # noqa: F811
                                                                   db, receiver: Receiver) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from flows.alerts import alerts

    CustomWebhookNotificationBlock(
        name="oncall", url=receiver.url, json_data={"subject": "{{subject}}", "body": "{{body}}"},
    ).save("oncall", overwrite=True)
    blocks = ["custom-webhook/oncall", "custom-webhook/nobody"]  # the second one does not exist
    now = datetime.now(UTC)
    gpu(db, 91.0, now - timedelta(seconds=5))
    out = alerts(blocks=blocks, hold_s=0, clear_s=0)
    assert [(n["kind"], n["rule"], n["subject"]) for n in out["notices"]] == [("fire", "gpu_temperature", "h1/g0")]
    assert receiver.bodies == [{"subject": "[BooControl] FIRING: gpu_temperature h1/g0",
                                "body": "h1 GPU RTX Test at 91 °C (threshold 85 °C)"}]
    assert out["delivery"][0]["custom-webhook/oncall"] == "ok"
    assert out["delivery"][0]["custom-webhook/nobody"].startswith("cannot load block 'custom-webhook/nobody'")

    assert alerts(blocks=blocks, hold_s=0, clear_s=0)["notices"] == []  # still hot: deduplicated
    assert len(receiver.bodies) == 1

    gpu(db, 60.0, datetime.now(UTC))
    out = alerts(blocks=blocks, hold_s=0, clear_s=0)
    assert [n["kind"] for n in out["notices"]] == ["recover"]
    assert receiver.bodies[-1] == {"subject": "[BooControl] RECOVERED: gpu_temperature h1/g0",
                                   "body": "recovered: h1 GPU RTX Test at 60 °C (threshold 85 °C)"}
    assert alerts(blocks=blocks, hold_s=0, clear_s=0)["notices"] == []
    assert len(receiver.bodies) == 2

    with db.connect() as c:
        history = c.execute(text("SELECT kind, rule, subject, delivery->>'custom-webhook/oncall' FROM alert_events "
                                 "ORDER BY id")).all()
        firing = c.execute(text("SELECT count(*) FROM alert_states WHERE firing")).scalar_one()
    assert [tuple(r) for r in history] == [("fire", "gpu_temperature", "h1/g0", "ok"),
                                          ("recover", "gpu_temperature", "h1/g0", "ok")]
    assert firing == 0


def test_a_failing_channel_is_recorded_and_the_alert_still_counts(prefect_harness, flow_env: Path,  # noqa: F811
                                                                  db, receiver: Receiver) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from flows.alerts import alerts

    receiver.close()  # nobody listens any more
    CustomWebhookNotificationBlock(name="gone", url=receiver.url, json_data={"body": "{{body}}"},
                                   timeout=2).save("gone", overwrite=True)
    gpu(db, 95.0, datetime.now(UTC))
    out = alerts(blocks=["custom-webhook/gone"], hold_s=0)
    assert out["delivery"][0]["custom-webhook/gone"].startswith("ConnectError")
    with db.connect() as c:
        assert c.execute(text("SELECT firing FROM alert_states WHERE rule = 'gpu_temperature'")).scalar_one()


def test_a_failed_delivery_is_sent_again_once_the_channel_answers(prefect_harness, flow_env: Path,  # noqa: F811
                                                                  db, receiver: Receiver) -> None:
    """The webhook is down when the alert fires; the next evaluations send that same notice again, to that channel
    only, until it takes it; then nothing more. A recovery supersedes a fire nobody got."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from flows.alerts import alerts

    down = Receiver()
    down.close()
    CustomWebhookNotificationBlock(name="pager", url=down.url, json_data={"body": "{{body}}"},
                                   timeout=2).save("pager", overwrite=True)
    CustomWebhookNotificationBlock(name="log", url=receiver.url, json_data={"body": "{{body}}"},
                                   ).save("log", overwrite=True)
    blocks = ["custom-webhook/pager", "custom-webhook/log"]
    gpu(db, 95.0, datetime.now(UTC))
    out = alerts(blocks=blocks, hold_s=0)
    assert out["delivery"][0]["custom-webhook/pager"].startswith("ConnectError")
    assert out["delivery"][0]["custom-webhook/log"] == "ok"
    assert len(receiver.bodies) == 1

    out = alerts(blocks=blocks, hold_s=0)  # still down: tried again, still failing, log channel not re-sent
    assert out["notices"] == []
    assert [(r["kind"], r["rule"]) for r in out["retried"]] == [("fire", "gpu_temperature")]
    assert out["retried"][0]["delivery"]["custom-webhook/pager"].startswith("ConnectError")
    assert len(receiver.bodies) == 1

    back = Receiver()  # the pager's webhook is fixed (a new URL saved on the block)
    try:
        CustomWebhookNotificationBlock(name="pager", url=back.url, json_data={"body": "{{body}}"},
                                       ).save("pager", overwrite=True)
        out = alerts(blocks=blocks, hold_s=0)
        assert out["notices"] == []
        assert back.bodies == [{"body": "h1 GPU RTX Test at 95 °C (threshold 85 °C)"}]
        assert len(receiver.bodies) == 1
        with db.connect() as c:
            rows = c.execute(text("SELECT kind, delivery->>'custom-webhook/pager', delivery->>'custom-webhook/log' "
                                  "FROM alert_events ORDER BY id")).all()
        assert len(rows) == 1 and rows[0][0] == "fire" and rows[0][2] == "ok"
        assert rows[0][1].startswith("ok (retried ")
        assert alerts(blocks=blocks, hold_s=0)["retried"] == []  # delivered: not sent a third time
        assert len(back.bodies) == 1
    finally:
        back.close()


def test_a_recovery_supersedes_a_fire_nobody_got(prefect_harness, flow_env: Path,  # noqa: F811
                                                 db, receiver: Receiver) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from flows.alerts import alerts

    down = Receiver()
    down.close()
    CustomWebhookNotificationBlock(name="pager", url=down.url, json_data={"body": "{{body}}"},
                                   timeout=2).save("pager", overwrite=True)
    gpu(db, 95.0, datetime.now(UTC))
    alerts(blocks=["custom-webhook/pager"], hold_s=0, clear_s=0)
    gpu(db, 60.0, datetime.now(UTC))
    CustomWebhookNotificationBlock(name="pager", url=receiver.url, json_data={"body": "{{body}}"},
                                   ).save("pager", overwrite=True)
    out = alerts(blocks=["custom-webhook/pager"], hold_s=0, clear_s=0)
    assert [n["kind"] for n in out["notices"]] == ["recover"]
    assert out["retried"] == []  # the fire is no longer news
    assert receiver.bodies == [{"body": "recovered: h1 GPU RTX Test at 60 °C (threshold 85 °C)"}]
    assert alerts(blocks=["custom-webhook/pager"], hold_s=0, clear_s=0)["retried"] == []
    assert len(receiver.bodies) == 1
