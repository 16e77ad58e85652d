"""Capacity searches are stored: ``boocontrol bench capacity`` and the ``bench-capacity`` flow run the same search
(each level a stored run) against the instant test server's known latency model, and the search — targets,
bounds, points with their runs, the result — lands in ``bench_capacity_searches``; a refused search too."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from core.settings import get_settings
from warehouse import bench_store
from warehouse.queries import bench as q

from . import instant_server

# TPOT at n streams: 40 ms + 40 ms · (n − 1): 40, 80, 120, 160 ms at 1..4 — a 100 ms target passes 1 and 2
ITL_S, LOAD_S = 0.040, 0.040
COMMON = ["--requests", "4", "--prompt-tokens", "8", "--output-tokens", "6", "--percentile", "50",
          "--tpot-ms", "100", "--low", "1", "--high", "4"]  # fmt: skip


@pytest.fixture
def instant_env(db: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(
        loop.create_server(lambda: instant_server.Upstream(ITL_S, LOAD_S), "127.0.0.1", 0))
    port = [server.sockets[0].getsockname()[1]]
    th = threading.Thread(target=loop.run_forever, daemon=True)
    th.start()
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(f"default_provider: instant\nproviders:\n  - id: instant\n    label: Instant\n"
                     f"    base_url: http://127.0.0.1:{port[0]}\n    kind: openai\n")  # fmt: skip
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(fleet))
    monkeypatch.setenv("BOOCONTROL_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        yield db
    finally:
        get_settings.cache_clear()
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        th.join(10)


def _searches(db: Engine) -> list[dict[str, object]]:
    with db.connect() as conn:
        return bench_store.capacity_searches(conn, "instant", "instant")


def _check_search(row: dict[str, object], db: Engine) -> None:
    assert (row["status"], row["mode"], row["percentile"], row["tpot_ms"], row["ttft_ms"]) == (
        "completed", "concurrency", 50, 100.0, None)
    assert (row["low"], row["high"], row["max_points"], row["reached"], row["limited_by"]) == (
        1.0, 4.0, 8, True, "tpot_ms")
    points = row["points"]
    assert isinstance(points, list)
    # the bisection: 1 (meets), 4 (fails), 2 (meets), 3 (fails) — stored in level order, each with its run
    assert [(p["level"], p["meets"]) for p in points] == [(1.0, True), (2.0, True), (3.0, False), (4.0, False)]
    capacity = row["capacity"]
    assert isinstance(capacity, float) and 2.0 <= capacity <= 3.0  # interpolated between the measured 2 and 3
    runs = q.list_runs(db, "instant", "instant", include_refused=False)
    assert sorted(int(p["run_id"]) for p in points) == sorted(runs["run_id"].to_list())
    assert set(runs["label"].to_list()) == {f"capacity search #{row['id']} (concurrency)"}


def test_cli_search_is_stored(instant_env: Engine) -> None:
    from cli.bench import bench

    runner = CliRunner()
    no_target = runner.invoke(bench, ["capacity", "instant/instant", "--yes-take-over", "--low", "1", "--high", "4"])
    assert no_target.exit_code == 2 and "set a TTFT or a TPOT target" in no_target.output
    assert _searches(instant_env) == []  # a usage error stores nothing
    out = runner.invoke(bench, ["capacity", "instant/instant", "--yes-take-over", *COMMON])
    assert out.exit_code == 0, out.output
    (row,) = _searches(instant_env)
    lines = out.output.splitlines()
    assert lines[-1].startswith(f"stored as capacity search #{row['id']} ")
    assert lines[-2] == f"capacity: {row['description']}"
    _check_search(row, instant_env)


def test_refused_search_is_stored(instant_env: Engine) -> None:
    from cli.bench import bench

    out = CliRunner().invoke(bench, ["capacity", "instant/instant", *COMMON])  # no --yes-take-over
    assert out.exit_code == 3 and out.output.splitlines()[-1].startswith("refused: ")
    (row,) = _searches(instant_env)
    assert row["status"] == "refused" and "confirm" in str(row["error"]) and row["points"] == []


def test_flow_search_is_stored(prefect_harness: None, instant_env: Engine) -> None:
    from flows.bench import bench_capacity

    result = bench_capacity(model="instant/instant", confirm_takeover=True, percentile=50, tpot_ms=100.0, low=1.0,
                            high=4.0, requests_per_point=4, prompt_tokens=8, output_tokens=6)  # fmt: skip
    (row,) = _searches(instant_env)
    assert (result["search_id"], result["status"], result["capacity"]) == (row["id"], "completed", row["capacity"])
    assert row["requested_by"].startswith("prefect:")  # type: ignore[union-attr]
    _check_search(row, instant_env)
