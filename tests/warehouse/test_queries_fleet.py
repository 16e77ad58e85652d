from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.ui import seed
from tests.ui.seed import T0
from warehouse.queries import fleet


@pytest.fixture()
def two_hosts(db: Engine) -> Engine:
    with db.begin() as c:
        seed.provider(c, "alpha", label="Alpha box")
        seed.provider(c, "beta", status="disconnected", last_error="connect refused")
        seed.provider(c, "gamma", status=None)  # never connected: no health row
        seed.boot(c, "alpha", "2026-11-20T10:00:00Z", first_seen=T0 - timedelta(hours=1), version="v249")
        seed.boot(c, "alpha", "2026-11-20T11:00:00Z", first_seen=T0 - timedelta(minutes=30))
        seed.boot(c, "beta", "opaque-marker", first_seen=T0 - timedelta(hours=3))
        for i in range(60):  # one sample a minute for the last hour, cpu = minute index
            seed.perf(c, "alpha", T0 - timedelta(minutes=59 - i), cpu=float(i))
        seed.perf(c, "beta", T0 - timedelta(days=2), cpu=99.0)
        # alpha has two GPUs; the newest sample of each differs in time
        seed.gpu(c, "alpha", T0 - timedelta(minutes=5), key="GPU-a", index=0, temp=50, power=100)
        seed.gpu(
            c,
            "alpha",
            T0 - timedelta(seconds=10),
            key="GPU-a",
            index=0,
            temp=71,
            util=90,
            used=20000,
            power=300,
        )
        seed.gpu(
            c,
            "alpha",
            T0 - timedelta(seconds=20),
            key="GPU-b",
            index=1,
            temp=65,
            util=10,
            used=1000,
            total=8000,
            power=50,
        )
        seed.gpu(c, "beta", T0 - timedelta(days=2), temp=40)
        seed.model(c, "alpha", "qwen", state="ready")
        seed.model(c, "alpha", "llama", state="starting")
        seed.model(c, "alpha", "idle", state="stopped")
        seed.inflight(c, "alpha", T0 - timedelta(seconds=30), [{"id": "1"}])
        seed.inflight(
            c,
            "alpha",
            T0 - timedelta(seconds=2),
            [
                {
                    "id": "7",
                    "model": "qwen",
                    "req_path": "/v1/chat/completions",
                    "method": "POST",
                    "elapsed_ms": 900,
                },
                {
                    "id": "8",
                    "model": "qwen",
                    "req_path": "/v1/chat/completions",
                    "method": "POST",
                    "elapsed_ms": 4000,
                },
            ],
        )
    return db


def test_overview_latest_rows(two_hosts: Engine) -> None:
    ov = fleet.fleet_overview(two_hosts)
    assert ov["provider_id"].to_list() == ["alpha", "beta", "gamma"]
    a, b, g = ov.to_dicts()
    assert a["status"] == "connected" and a["version"] == "v250"
    assert a["boots"] == 2 and a["boot_marker"] == "2026-11-20T11:00:00Z"
    assert a["booted_at"] == T0 - timedelta(hours=1)  # parsed from the marker, not first_seen_at
    assert a["inflight"] == 2
    assert a["loaded"] == 2 and a["loaded_models"] == "llama (starting), qwen (ready)"
    assert a["cpu_util_pct"] == 59.0 and a["perf_at"] == T0
    assert b["status"] == "disconnected" and b["last_error"] == "connect refused"
    assert b["booted_at"] == T0 - timedelta(hours=3)  # opaque marker: first seen
    assert b["inflight"] is None and b["loaded"] == 0
    assert g["status"] == "unknown" and g["boots"] == 0 and g["version"] is None


def test_gpu_now_is_newest_row_per_gpu(two_hosts: Engine) -> None:
    g = fleet.gpu_now(two_hosts)
    rows = [(r["provider_id"], r["gpu_key"], r["temp_c"]) for r in g.to_dicts()]
    assert rows == [("alpha", "GPU-a", 71.0), ("alpha", "GPU-b", 65.0), ("beta", "GPU-0", 40.0)]


def test_board_summarises_gpus_and_flags_stale(two_hosts: Engine) -> None:
    board = fleet.fleet_board(two_hosts, now=T0, spark_minutes=60)
    a, b, g = board.to_dicts()
    assert a["gpus"] == 2 and a["gpu_temp_c"] == 71.0 and a["gpu_util_pct"] == 50.0
    assert a["vram_used_mb"] == 21000.0 and a["vram_total_mb"] == 32000.0 and a["gpu_power_w"] == 350.0
    assert a["perf_stale"] is False and a["gpu_stale"] is False
    assert a["uptime_s"] == 3600.0
    assert b["perf_stale"] is True and b["gpu_stale"] is True and b["uptime_s"] is None
    assert g["gpus"] == 0 and g["cpu_spark"] is None
    # 60 samples (11:01..12:00, cpu 0..59 %) into 2-minute buckets aligned on even minutes: the first
    # bucket holds 11:01 alone, then pairs (11:02+11:03 -> 1.5), and 12:00 alone at the end
    assert len(a["cpu_spark"]) == 31
    assert a["cpu_spark"][:2] == [0.0, 1.5] and a["cpu_spark"][-1] == 59.0
    assert a["mem_spark"][0] == 25.0
    assert b["cpu_spark"] is None  # nothing inside the window
    summary = fleet.fleet_summary(board)
    assert summary == {
        "providers": 3,
        "online": 1,
        "models_loaded": 2,
        "inflight": 2,
        "gpus": 3,
        "gpu_power_w": 350.0,
        "hottest_gpu_c": 71.0,
        "simulated_gpus": 0,
    }


def test_inflight_requests_from_latest_snapshot(two_hosts: Engine) -> None:
    r = fleet.inflight_requests(two_hosts, "alpha")
    assert r["request_id"].to_list() == ["8", "7"]
    assert r["elapsed_ms"].to_list() == [4000, 900]
    assert fleet.inflight_requests(two_hosts, "beta").height == 0


def test_empty_database_gives_typed_empty_frames(db: Engine) -> None:
    board = fleet.fleet_board(db, now=T0)
    assert board.height == 0 and "gpu_temp_c" in board.columns
    assert fleet.fleet_summary(board)["providers"] == 0


def test_overview_flags_a_simulated_host_by_its_newest_boot(db: Engine) -> None:
    """``simulated`` comes from what the host said (the demo simulator's /api/hardware), newest boot only."""
    from sqlalchemy import insert

    from warehouse.schema import instance_boots

    def boot(c: Any, pid: str, marker: str, at: Any, hardware: dict[str, Any] | None) -> None:
        c.execute(insert(instance_boots).values(provider_id=pid, boot_marker=marker, version="v250", hardware=hardware,
                                                first_seen_at=at, last_seen_at=at))

    with db.begin() as c:
        for pid in ("demo-01", "real", "replaced", "never-seen"):
            seed.provider(c, pid)
        boot(c, "demo-01", "b1", T0, {"schema_version": 1, "simulated": True})
        boot(c, "real", "b1", T0, {"schema_version": 1})
        boot(c, "replaced", "b1", T0 - timedelta(hours=2), {"simulated": True})  # the demo host it replaced
        boot(c, "replaced", "b2", T0, None)  # a pre-v247 real llama-swap: no /api/hardware at all
    ov = fleet.fleet_overview(db)
    assert dict(zip(ov["provider_id"], ov["simulated"], strict=True)) == {
        "demo-01": True, "never-seen": False, "real": False, "replaced": False}
