"""The Thrash and Alerts pages render the known data (AppTest against the real test Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from tests.ops import scripted
from tests.ui.conftest import app_env, live_fleet, run_page  # noqa: F401 - fixtures

__all__ = ["app_env", "live_fleet"]


def metric(at, label: str) -> str:  # type: ignore[no-untyped-def]
    values = [str(m.value) for m in at.metric if m.label == label]
    assert values, f"no metric {label!r}: {[m.label for m in at.metric]}"
    return values[0]


def test_thrash_page_shows_the_scripted_sequence(app_env: Engine) -> None:
    now = datetime.now(UTC)
    # the scripted hour ends 2 hours ago: inside the page's default 24 h window
    scripted.load(app_env, shift=(now - timedelta(hours=2)) - scripted.END)
    at = run_page("pages/13_Thrash.py")
    assert not at.exception, at.exception
    # the whole script is in the window: the hour's 5 loads plus 11:59 (5 s) and 13:00:30 (2 s)
    assert metric(at, "Model loads") == "7"
    assert metric(at, "GPU time lost to loads") == "36.5 s"  # 32 measured + 4.5 estimated
    assert metric(at, "Time loading (of loading + serving)") == "81.0 %"  # 32 / (32 + 6.5 + 1 on h2)
    pairs = at.dataframe[1].value
    assert pairs["model_a"].to_list() == ["A"] and pairs["reversals"].to_list() == [2]
    consumers = at.dataframe[2].value
    assert consumers["consumer"].to_list() == ["unknown", "app-x", "team-a", "warm by ops"]
    assert consumers["loads"].to_list() == [3, 2, 1, 1]


def test_thrash_page_empty(app_env: Engine) -> None:
    at = run_page("pages/13_Thrash.py")
    assert not at.exception, at.exception
    assert any("No model loads" in str(i.value) for i in at.info)


def test_fleet_shows_a_canary_light_per_model(live_fleet: datetime, app_env: Engine) -> None:
    """alpha (selected first): qwen answered its probe in 120 ms (green), llama failed (red, error escaped)."""
    from sqlalchemy import insert

    from warehouse.schema_alerts import canary_probes

    with app_env.begin() as c:
        c.execute(insert(canary_probes), [
            dict(provider_id="alpha", model_id="qwen", sent_at=live_fleet - timedelta(minutes=2), ok=True,
                 ttft_ms=120.0, total_ms=130.0, status_code=200, error=None),
            dict(provider_id="alpha", model_id="qwen", sent_at=live_fleet - timedelta(minutes=7), ok=True,
                 ttft_ms=5000.0, total_ms=5100.0, status_code=200, error=None),  # older: not the light
            dict(provider_id="alpha", model_id="llama", sent_at=live_fleet - timedelta(minutes=1), ok=False,
                 ttft_ms=None, total_ms=40.0, status_code=502, error="upstream *died*"),
            dict(provider_id="gamma", model_id="embed", sent_at=live_fleet - timedelta(minutes=1), ok=True,
                 ttft_ms=9.0, total_ms=9.0, status_code=200, error=None),
        ])
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    (canary,) = [m.value for m in at.markdown if str(m.value).startswith("**Canary**")]
    lines = canary.split("  \n")[1:]
    assert lines[0].startswith("🔴 **llama** failed: upstream \\*died\\*, ")
    assert lines[1].startswith("🟢 **qwen** 120 ms, 2m")
    assert len(lines) == 2  # gamma's model is not alpha's


def test_alerts_page_shows_firing_flapping_and_history(app_env: Engine) -> None:
    from sqlalchemy import insert

    from warehouse.schema_alerts import alert_events, alert_states, canary_cycles

    now = datetime.now(UTC)
    with app_env.begin() as c:
        c.execute(insert(alert_states), [
            dict(rule="gpu_temperature", subject="h1/g0", active=True, changed_at=now - timedelta(minutes=3),
                 firing=True, flapping=False, flips=[], value=91.0, message="h1 GPU RTX at 91 °C (threshold 85 °C)",
                 evaluated_at=now),
            dict(rule="error_rate", subject="h2", active=False, changed_at=now, firing=False, flapping=True,
                 flips=[], value=0.1, message="h2: 2 of 20 requests failed", evaluated_at=now),
        ])
        c.execute(insert(alert_events).values(rule="gpu_temperature", subject="h1/g0", kind="fire",
                                              at=now - timedelta(minutes=2), message="h1 GPU RTX at 91 °C",
                                              value=91.0, delivery={"custom-webhook/oncall": "ok"}))
        c.execute(insert(canary_cycles).values(started_at=now, finished_at=now, hosts=3, probed=2, failed=0,
                                               unmatched=0, skipped={"h3": "host lease held by bench"}))
    at = run_page("pages/14_Alerts.py")
    assert not at.exception, at.exception
    assert (metric(at, "Firing"), metric(at, "Flapping (notices held back)")) == ("1", "1")
    firing, flapping, history, cycles = (d.value for d in at.dataframe)
    assert firing["subject"].to_list() == ["h1/g0"] and flapping["subject"].to_list() == ["h2"]
    assert history["kind"].to_list() == ["fire"]
    assert cycles["probed"].to_list() == [2]


def test_alerts_page_empty(app_env: Engine) -> None:
    at = run_page("pages/14_Alerts.py")
    assert not at.exception, at.exception
    assert any("Nothing is firing" in str(s.value) for s in at.success)
