"""A simulated host (the demo fleet, whose /api/hardware says "simulated": true) is labelled on the Fleet page;
a real one is not."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from tests.ui.conftest import run_page


def test_fleet_page_labels_a_simulated_host(live_fleet: datetime, app_env) -> None:  # type: ignore[no-untyped-def]
    with app_env.begin() as c:
        c.execute(text("""UPDATE instance_boots SET hardware = '{"simulated": true}' WHERE provider_id = 'alpha'"""))
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    board = at.dataframe[0].value
    assert dict(zip(board["provider_id"], board["version"], strict=True)) == {
        "alpha": "v250 (simulated)", "beta": "v250", "gamma": "v250"}
    assert [m.value for m in at.metric if m.label == "llama-swap (simulated)"] == ["v250"]  # alpha's tiles
    assert any("simulated" in md.value for md in at.markdown if "GPU 0" in md.value)
    # every page's provider picker says so too (the same widget on Activity, Logs, Models, Performance, ...)
    options = at.selectbox(key="fleet_provider").options
    assert [o.split()[1] for o in options if o.endswith(" (simulated)")] == ["alpha"] and len(options) == 3
