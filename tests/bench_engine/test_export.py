"""`boocontrol bench export`: the files read back and compared with the stored rows."""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, update

from core.settings import get_settings
from warehouse import bench_store
from warehouse.queries import bench as q
from warehouse.schema_bench import bench_runs

from .test_store import stored_run


@pytest.fixture()
def two_runs(db: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[int]:
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(tmp_path / "no-fleet.yaml"))
    get_settings.cache_clear()
    uids = [stored_run(db).run_uid for _ in range(2)]
    ids = dict(zip(q.list_runs(db)["run_uid"], q.list_runs(db)["run_id"], strict=True))
    yield [int(ids[u]) for u in uids]
    get_settings.cache_clear()


def test_json_export_reads_back_as_the_stored_rows(db: Engine, two_runs: list[int], tmp_path: Path) -> None:
    from cli.bench import bench

    out = tmp_path / "runs.json"
    res = CliRunner().invoke(bench, ["export", *map(str, two_runs), "--format", "json", "-o", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["format"] == "boocontrol-bench-export" and [r["run"]["id"] for r in data["runs"]] == two_runs
    for rid, exported in zip(two_runs, data["runs"], strict=True):
        stored_points = q.run_points(db, [rid])
        assert [p["output_throughput"] for p in exported["points"]] == stored_points["output_throughput"].to_list()
        assert [p["ttft_p50_ms"] for p in exported["points"]] == stored_points["ttft_p50_ms"].to_list()
        with db.connect() as conn:
            summaries = bench_store.point_summaries(conn, rid)
        assert [p["summary"] for p in exported["points"]] == [s["summary"] for s in summaries]
        assert len(exported["requests"]) == q.run_requests(db, rid).height > 0
        assert exported["run"]["params"] == q.run_detail(db, rid)["params"]  # type: ignore[index]


def test_csv_export_one_row_per_point_with_intervals(db: Engine, two_runs: list[int]) -> None:
    from cli.bench import bench

    res = CliRunner().invoke(bench, ["export", *map(str, two_runs), "--format", "csv"])
    assert res.exit_code == 0, res.output
    frame = pl.read_csv(io.StringIO(res.output))
    stored = q.run_points(db, two_runs)
    assert frame.height == stored.height
    assert frame["output_throughput"].to_list() == pytest.approx(stored["output_throughput"].to_list())
    with db.connect() as conn:
        s0 = bench_store.point_summaries(conn, two_runs[0])[0]["summary"]
    row = frame.filter((pl.col("run_id") == two_runs[0]) & (pl.col("idx") == 0)).row(0, named=True)
    assert row["ttft_ms_p50_low"] == pytest.approx(s0["intervals"]["ttft_ms"]["p50"]["low"])
    assert row["ttft_ms_p50_high"] == pytest.approx(s0["intervals"]["ttft_ms"]["p50"]["high"])
    # unknown runs: a one-line usage error
    bad = CliRunner().invoke(bench, ["export", "999999"])
    assert bad.exit_code == 2 and "no run 999999" in bad.output


class _Text(HTMLParser):
    """The HTML's visible text (script bodies apart), the tags it opens and every script's src."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.script_srcs: list[str | None] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "script":
            self._in_script = True
            self.script_srcs += [v for k, v in attrs if k == "src"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.text.append(data)


def test_html_export_is_self_contained_with_the_runs_numbers_and_escaped_names(
    db: Engine, db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from cli.bench import bench

    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(tmp_path / "no-fleet.yaml"))
    get_settings.cache_clear()
    hostile = 'bad"name<b>'
    uid = stored_run(db, model=hostile).run_uid
    with db.begin() as conn:
        conn.execute(update(bench_runs).where(bench_runs.c.run_uid == uid).values(
            server_props={"model_path": "/models/q<i>x.gguf", "build_info": "b6543-0abc123"},
            hardware={"gpus": [{"name": "NVIDIA GeForce RTX 4090"}]}, label="</script><script>alert(1)</script>",
        ))  # fmt: skip
    rid = int(q.list_runs(db).filter(pl.col("run_uid") == uid)["run_id"][0])
    out = tmp_path / "report.html"
    try:
        res = CliRunner().invoke(bench, ["export", str(rid), "--format", "html", "-o", str(out)])
    finally:
        get_settings.cache_clear()
    assert res.exit_code == 0, res.output
    page = out.read_text()
    parsed = _Text()
    parsed.feed(page)
    text = "".join(parsed.text)
    assert hostile in text and "q<i>x.gguf" in text  # shown as text
    assert "</script><script>alert(1)</script>" in text  # the label too, never markup
    assert "b" not in parsed.tags and "i" not in parsed.tags and "<script>alert(1)" not in page
    assert parsed.script_srcs == []  # nothing loaded from anywhere
    assert "<script src=http" not in page.lower() and 'src="https://cdn.plot.ly' not in page
    assert page.count("<script") >= 2 and "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js inlined
    for label in ("b6543-0abc123", "NVIDIA GeForce RTX 4090", '"kind": "synthetic"', "95 % bootstrap"):
        assert label in text, label
    stored = q.run_points(db, [rid])
    for v in stored["output_throughput"].to_list() + stored["ttft_p50_ms"].to_list():
        assert f"{v:,.2f}" in text
    with db.connect() as conn:
        summaries = bench_store.point_summaries(conn, rid)
    lows = [s["summary"]["intervals"]["ttft_ms"]["p50"]["low"] for s in summaries]
    assert all(lo is not None for lo in lows)
