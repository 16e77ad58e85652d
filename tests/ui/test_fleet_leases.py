"""The Fleet page shows the fleet leases (real test Postgres, leases taken through warehouse.lease)."""

from __future__ import annotations

import time
from datetime import datetime

import psycopg
import streamlit as st
from sqlalchemy import Engine

from tests.ui.conftest import run_page
from warehouse import lease as L
from warehouse.db import psycopg_dsn
from warehouse.queries.leases import lease_board


def leases_frame(at):  # type: ignore[no-untyped-def]
    found = [d.value for d in at.dataframe if "holder" in d.value.columns]
    assert found, "no lease table on the page"
    return found[0]


def test_fleet_page_lists_leases_with_holder_purpose_and_state(live_fleet: datetime, app_env: Engine,
                                                               db_url: str) -> None:
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    assert "No leases: no action, benchmark or eval holds a host, and no connector follows one." in [
        c.value for c in at.caption]
    with psycopg.connect(psycopg_dsn(db_url), autocommit=True) as conn:
        L.try_acquire(conn, "alpha", L.SCOPE_HOST, "bench@box:7:abc", 'bench run 1f2e (<b>*qwen*</b>)', ttl_s=300)
        L.try_acquire(conn, "gpu_1*", L.SCOPE_HOST, "actions@box:9:def", "action 12: warm qwen", ttl_s=0.1)
        L.try_acquire(conn, "alpha", L.SCOPE_FOLLOW, "connector@box:3:f00", "follow", ttl_s=300)
    time.sleep(0.2)  # gpu_1*'s holder stopped heartbeating
    board = lease_board(app_env)
    assert board.select("provider_id", "scope", "expired").rows() == [
        ("alpha", "host", False), ("gpu_1*", "host", True), ("alpha", "follow", False)]
    st.cache_data.clear()  # the page's lease list is cached for 2 s
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    table = leases_frame(at)
    assert table["provider_id"].tolist() == ["alpha", "gpu_1*", "alpha"]
    assert table["purpose"].tolist()[0] == "bench run 1f2e (<b>*qwen*</b>)"  # plain text cell, shown as sent
    assert table["state"].tolist() == ["🔒 held", "⚠️ expired, reclaimable", "🔒 held"]
    assert table["holder"].tolist()[1] == "actions@box:9:def"
    captions = [c.value for c in at.caption]
    assert "Hosts leased now: alpha, gpu\\_1\\*. Free one with `boocontrol lease break PROVIDER`." in captions
