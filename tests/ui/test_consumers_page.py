"""The Consumers page (AppTest) on known gateway rows: exact per-consumer figures, a removed policy still
rendered with what served it, picking one consumer, a hostile consumer name shown as text."""

from __future__ import annotations

import uuid
from datetime import timedelta

import streamlit as st
from psycopg import connect
from sqlalchemy import Engine

from tests.gateway.consumer_seed import known_requests
from tests.ui.conftest import run_page
from ui import data
from warehouse.db import psycopg_dsn
from warehouse.ingest import write_batch
from warehouse.records import GatewayRequest

EVIL = "<script>alert(1)</script>**x**"


def test_consumers_page(app_env: Engine, db_url: str) -> None:
    now = data.now()
    known_requests(db_url, now)
    at = run_page("pages/11_Consumers.py")
    assert not at.exception
    s = at.dataframe[0].value
    assert s["consumer"].tolist() == ["alice", "bob", "curl/8.5"]
    assert s["source"].tolist() == ["key", "header", "user-agent"]
    assert s["requests"].tolist() == [4, 2, 1] and s["errors"].tolist() == [1, 1, 0]
    assert s["tokens"].tolist() == [1382, 122, 30]
    assert [round(v, 4) for v in s["load_share"].tolist()] == [78.0339, 21.6949, 0.2712]
    assert s["slo_attainment"].tolist() == [50.0, 50.0, 100.0]
    t = at.dataframe[1].value
    assert list(zip(t["consumer"], t["requested_model"], t["target"], strict=True)) == [
        ("alice", "auto:code", "gpu/qwen-coder"), ("alice", "auto:code", "—"), ("alice", "auto:gone", "cloud/gpt-x"),
        ("bob", "gpu/qwen-coder", "gpu/qwen-coder"), ("curl/8.5", "gpu/nomic-embed", "gpu/nomic-embed")]
    assert len(at.dataframe[2].value) == 7

    at.selectbox(key="consumers_pick").set_value("alice").run()
    reqs = at.dataframe[2].value
    assert reqs["requested_model"].tolist() == ["auto:code", "auto:gone", "auto:code", "auto:code"]
    assert reqs["target"].tolist() == ["none (failed)", "cloud/gpt-x", "gpu/qwen-coder", "gpu/qwen-coder"]
    assert reqs["slo"].tolist() == ["❌", "✅", "❌", "✅"]
    assert at.dataframe[1].value["consumer"].unique().tolist() == ["alice"]


def test_hostile_consumer_is_text_and_an_empty_window_says_so(app_env: Engine, db_url: str) -> None:
    at = run_page("pages/11_Consumers.py")
    assert not at.exception
    assert at.info[0].value.startswith("No requests through the gateway in this window.")
    with connect(psycopg_dsn(db_url)) as conn:
        write_batch(conn, [GatewayRequest(
            request_id=uuid.uuid4(), started_at=data.now() - timedelta(minutes=1), replica="r", consumer=EVIL,
            consumer_source="header", requested_model="auto:x", endpoint="chat", stream=False, status=200,
            total_ms=10.0)])  # fmt: skip
    st.cache_data.clear()  # the empty answer above may still be cached for this second
    at = run_page("pages/11_Consumers.py")
    assert not at.exception
    assert at.dataframe[0].value["consumer"].tolist() == [EVIL]
    assert at.selectbox(key="consumers_pick").options == ["all", EVIL]
    assert all(EVIL not in m.value for m in at.markdown)


def test_activity_page_filters_gateway_requests_by_consumer(app_env: Engine, db_url: str) -> None:
    now = data.now()
    known_requests(db_url, now)
    with connect(psycopg_dsn(db_url)) as conn:
        write_batch(conn, [GatewayRequest(
            request_id=uuid.uuid4(), started_at=now - timedelta(minutes=1), replica="r", consumer=EVIL,
            consumer_source="header", requested_model="auto:x", endpoint="chat", stream=False, status=200,
            total_ms=10.0)])  # fmt: skip
    at = run_page("pages/2_Activity.py")
    assert not at.exception
    pick = at.selectbox(key="activity_consumer")
    assert pick.options == ["all", EVIL, "alice", "bob", "curl/8.5"]
    assert at.subheader[-1].value == "Gateway requests"
    assert len(at.dataframe[-1].value) == 8
    pick.set_value("bob").run()
    assert at.subheader[-1].value == "Gateway requests of bob"
    bob = at.dataframe[-1].value
    assert bob["consumer"].tolist() == ["bob", "bob"] and bob["slo"].tolist() == ["❌", "✅"]
    at.selectbox(key="activity_consumer").set_value(EVIL).run()
    assert at.subheader[-1].value == "Gateway requests of \\<script\\>alert\\(1\\)\\</script\\>\\*\\*x\\*\\*"
    assert at.dataframe[-1].value["requested_model"].tolist() == ["auto:x"]
