"""lint_facts on known rows: median load time, VRAM a load added, host VRAM, requested models, days watched."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from tests.ui import seed
from warehouse.config_store import lint_facts


def test_lint_facts_exact(db):
    now = datetime.now(UTC).replace(microsecond=0)
    with db.begin() as c:
        seed.provider(c, "p")
        seed.epoch(c, "p", "e1", now - timedelta(days=50))
        for mid in ("qwen", "llama"):
            c.execute(text("INSERT INTO models (provider_id, model_id, state, first_seen_at, last_seen_at) "
                           "VALUES ('p', :m, 'stopped', :f, :l)"), {"m": mid, "f": now - timedelta(days=45), "l": now})

        def gpus(at, used0, used1):
            seed.gpu(c, "p", at, key="GPU-0", index=0, used=used0, total=24000)
            seed.gpu(c, "p", at, key="GPU-1", index=1, used=used1, total=24000)

        for start, load_s, after in ((now - timedelta(hours=5), 10, 7000), (now - timedelta(hours=3), 20, 7400)):
            gpus(start - timedelta(seconds=1), 1000, 1000)
            seed.transition(c, "p", "qwen", start, "starting", "stopped")
            seed.transition(c, "p", "qwen", start + timedelta(seconds=load_s), "ready", "starting")
            gpus(start + timedelta(seconds=load_s + 1), after, 1000)
            seed.transition(c, "p", "qwen", start + timedelta(minutes=30), "stopped", "ready")
        t = now - timedelta(hours=1)
        seed.transition(c, "p", "llama", t, "starting", "stopped")
        seed.transition(c, "p", "llama", t + timedelta(seconds=4), "ready", "starting")
        seed.activity(c, "p", "e1", 1, now - timedelta(days=2), model_id="qwen")
        seed.activity(c, "p", "e1", 2, now - timedelta(days=40), model_id="llama")
    f = lint_facts(db, 30)
    assert f.vram_mb == {("p", "qwen"): 6200.0}  # (8000 - 2000) and (8400 - 2000): median; llama: no sample after
    assert f.host_vram_mb == {"p": 48000.0}
    assert f.load_s == {("p", "qwen"): 15.0, ("p", "llama"): 4.0}
    assert f.requested == {"p": frozenset({"qwen"})}
    assert round(f.watched_days["p"], 3) == 45.0
