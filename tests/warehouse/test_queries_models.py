from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select, text

from tests.ui import seed
from tests.ui.seed import T0
from warehouse import schema
from warehouse.queries import models as q
from warehouse.queries.favorites import set_favorite


@pytest.fixture()
def fleet(db: Engine) -> Engine:
    with db.begin() as c:
        seed.provider(c, "alpha")
        seed.provider(c, "beta", status="disconnected")
        seed.provider(c, "gamma", active=False)
        seed.model(c, "alpha", "qwen", state="ready")
        seed.model(c, "alpha", "llama", state="stopped")
        seed.model(c, "beta", "qwen", state=None)
        seed.model(c, "gamma", "mistral")
        # qwen@alpha: load 1 = starting->ready in 2.5 s, load 2 = 4 s, load 3 = stopped->ready (no time)
        seed.transition(c, "alpha", "qwen", T0, "starting", "stopped")
        seed.transition(c, "alpha", "qwen", T0 + timedelta(seconds=2.5), "ready", "starting")
        seed.transition(c, "alpha", "qwen", T0 + timedelta(minutes=5), "stopped", "ready")
        seed.transition(c, "alpha", "qwen", T0 + timedelta(minutes=10), "starting", "stopped")
        seed.transition(c, "alpha", "qwen", T0 + timedelta(minutes=10, seconds=4), "ready", "starting")
        seed.transition(c, "alpha", "qwen", T0 + timedelta(minutes=20), "stopped", "ready")
        seed.transition(c, "alpha", "qwen", T0 + timedelta(minutes=30), "ready", "stopped")
        # llama@alpha: a start that failed (starting -> stopped) is not a load
        seed.transition(c, "alpha", "llama", T0, "starting", "stopped")
        seed.transition(c, "alpha", "llama", T0 + timedelta(seconds=9), "stopped", "starting")
        seed.activity(c, "alpha", "e", 1, T0 + timedelta(minutes=1), model_id="qwen")
        seed.activity(c, "alpha", "e", 2, T0 + timedelta(minutes=31), model_id="qwen")
        seed.activity(c, "beta", "e", 1, T0 + timedelta(hours=1), model_id="qwen")
        seed.favorite(c, "alpha", "qwen")
        seed.favorite(c, "beta", "qwen")
        seed.favorite(c, "gamma", "mistral")
        seed.favorite(c, "alpha", "removed-model")
    return db


def test_catalog_load_counts_times_and_last_use(fleet: Engine) -> None:
    cat = q.model_catalog(fleet)
    assert [(r["provider_id"], r["model_id"]) for r in cat.to_dicts()] == [
        ("alpha", "llama"),
        ("alpha", "qwen"),
        ("beta", "qwen"),
        ("gamma", "mistral"),
    ]
    rows = {(r["provider_id"], r["model_id"]): r for r in cat.to_dicts()}
    qwen = rows[("alpha", "qwen")]
    assert qwen["loads"] == 3
    assert qwen["load_ms_p50"] == pytest.approx(3250.0)  # median of 2500 and 4000
    assert qwen["load_ms_last"] == pytest.approx(4000.0)
    assert qwen["last_load_at"] == T0 + timedelta(minutes=30)
    assert qwen["last_used_at"] == T0 + timedelta(minutes=31)
    assert qwen["favorite"] is True and qwen["provider_online"] is True
    llama = rows[("alpha", "llama")]
    assert llama["loads"] == 0 and llama["load_ms_p50"] is None and llama["last_used_at"] is None
    assert rows[("beta", "qwen")]["last_used_at"] == T0 + timedelta(hours=1)
    assert rows[("beta", "qwen")]["provider_online"] is False
    assert rows[("gamma", "mistral")]["provider_online"] is False  # inactive even though connected


def test_favorites_hide_not_delete(fleet: Engine) -> None:
    cat = q.model_catalog(fleet)
    fav = q.favorites_section(cat)
    assert [(r["provider_id"], r["model_id"]) for r in fav.to_dicts()] == [("alpha", "qwen")]
    # the favourite still appears in its provider group
    assert cat.filter((cat["provider_id"] == "alpha") & (cat["model_id"] == "qwen")).height == 1
    hidden = {(r["provider_id"], r["model_id"]): r["reason"] for r in q.hidden_favorites(fleet).to_dicts()}
    assert hidden == {
        ("beta", "qwen"): "provider offline",
        ("gamma", "mistral"): "provider inactive",
        ("alpha", "removed-model"): "model not on provider",
    }
    with fleet.connect() as c:
        assert c.execute(select(func.count()).select_from(schema.favorites)).scalar() == 4  # nothing deleted
    # beta comes back: its favourite returns by itself
    with fleet.begin() as c:
        c.execute(text("UPDATE connector_health SET status = 'connected' WHERE provider_id = 'beta'"))
    fav = q.favorites_section(q.model_catalog(fleet))
    assert [(r["provider_id"], r["model_id"]) for r in fav.to_dicts()] == [
        ("alpha", "qwen"),
        ("beta", "qwen"),
    ]


def test_set_favorite_toggles_idempotently(fleet: Engine) -> None:
    with fleet.begin() as c:
        set_favorite(c, "alpha", "llama", True)
        set_favorite(c, "alpha", "llama", True)
        set_favorite(c, "alpha", "qwen", False)
    cat = q.model_catalog(fleet).filter(q.model_catalog(fleet)["provider_id"] == "alpha")
    assert dict(zip(cat["model_id"].to_list(), cat["favorite"].to_list(), strict=True)) == {
        "llama": True,
        "qwen": False,
    }


def test_model_loads_and_timeline(fleet: Engine) -> None:
    loads = q.model_loads(fleet, "alpha", "qwen")
    assert loads["load_ms"].to_list() == [None, pytest.approx(4000.0), pytest.approx(2500.0)]
    assert loads["prev_state"].to_list() == ["stopped", "starting", "starting"]
    tl = q.state_timeline(fleet, "alpha", "qwen", T0 + timedelta(minutes=1), T0 + timedelta(minutes=15))
    assert [(r["state"], r["since"], r["until"]) for r in tl.to_dicts()] == [
        ("ready", T0 + timedelta(minutes=1), T0 + timedelta(minutes=5)),
        ("stopped", T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)),
        ("starting", T0 + timedelta(minutes=10), T0 + timedelta(minutes=10, seconds=4)),
        ("ready", T0 + timedelta(minutes=10, seconds=4), T0 + timedelta(minutes=15)),
    ]
    assert q.state_timeline(fleet, "alpha", "nope", T0, T0 + timedelta(hours=1)).height == 0
