"""The shells: the bench-sweep Prefect flow (under the session Prefect harness) and `boocontrol bench`,
both against the real llama-swap lab and the test Postgres."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from core.settings import get_settings
from warehouse.queries import bench as q

from .conftest import TINY, SwapLab

pytestmark = [pytest.mark.llama_server, pytest.mark.real_llamaswap]


@pytest.fixture
def lab_env(
    swap_lab: SwapLab, db: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text(
        f"default_provider: lab\nproviders:\n  - id: lab\n    label: Lab\n    base_url: {swap_lab.base_url}\n"
        "    kind: llama-swap\n"
    )
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(fleet))
    monkeypatch.setenv("BOOCONTROL_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def test_flow_runs_a_sweep_and_stores_it(prefect_harness: None, lab_env: Engine) -> None:
    from flows.bench import bench_sweep

    result = bench_sweep(
        model=f"lab/{TINY}", confirm_takeover=True, levels=[1, 2], requests_per_point=4,
        prompt_tokens=32, output_tokens=16, early_stop=False, label="flow-test",
    )  # fmt: skip
    assert result["status"] == "completed"
    assert [(p["level"], p["completed"]) for p in result["points"]] == [(1.0, 4), (2.0, 4)]
    runs = q.list_runs(lab_env, "lab", TINY)
    assert runs.height == 1 and runs["status"][0] == "completed" and runs["label"][0] == "flow-test"
    assert runs["requested_by"][0].startswith("prefect:") and runs["points"][0] == 2
    assert (result["run_id"], result["simulated"]) == (runs["run_id"][0], False)  # one run id; a real host
    assert q.run_requests(lab_env, int(runs["run_id"][0])).height == 8


def test_flow_refuses_without_confirmation(prefect_harness: None, lab_env: Engine) -> None:
    from engines.bench.gate import TakeoverRefused
    from flows.bench import bench_sweep

    with pytest.raises(TakeoverRefused):
        bench_sweep(model=f"lab/{TINY}", levels=[1], requests_per_point=1)
    runs = q.list_runs(lab_env, "lab", TINY)
    assert runs["status"].to_list() == ["refused"]


def test_cli_run_list_show_baseline(lab_env: Engine) -> None:
    from cli.bench import bench

    runner = CliRunner()
    args = ["run", f"lab/{TINY}", "--levels", "1,2", "--requests", "3", "--prompt-tokens", "32",
            "--output-tokens", "8", "--no-early-stop"]  # fmt: skip
    refused = runner.invoke(bench, args)
    assert refused.exit_code == 3 and "explicit takeover confirmation" in refused.output
    ok = runner.invoke(bench, [*args, "--yes-take-over"])
    assert ok.exit_code == 0, ok.output
    assert "TTFT p50" in ok.output and "completed" in ok.output
    run_id = int(q.list_runs(lab_env, "lab", TINY, include_refused=False)["run_id"][0])
    assert f"run #{run_id}: completed" in ok.output  # the number list/show/compare take, not the hex uid
    assert "simulated" not in ok.output.lower()  # a real llama-swap is never labelled simulated
    assert q.list_runs(lab_env, "lab", TINY)["simulated"].to_list() == [False, False]  # the run and the refusal
    shown = runner.invoke(bench, ["show", str(run_id)])
    assert shown.exit_code == 0 and "TPOT p50" in shown.output and "SIMULATED" not in shown.output
    # every figure with its interval; 3 requests per point: p99 hidden, the rest marked as few samples
    for out in (ok.output, shown.output):
        assert "how sure (95 % bootstrap intervals):" in out
        sure = out[out.index("how sure"):].splitlines()
        assert sure[1].split("  ")[0].strip() == "level" and "prefill tok/s (server timings)" in sure[1]
        assert sum("hidden (n=3)" in ln for ln in sure) == 2  # concurrency 1 and 2
        assert "  hidden: fewer than 1 sample above the percentile (p99 needs 100 requests)" in sure
        # exact lengths on llama-server: every prompt is 32 tokens as the server counted them
        assert [ln.split()[-3:] for ln in sure[3:5]] == [["32.0", "(32–32)", "0"], ["32.0", "(32–32)", "0"]]
    assert runner.invoke(bench, ["baseline", "add", str(run_id)]).exit_code == 0
    listed = runner.invoke(bench, ["list", f"lab/{TINY}"])
    assert listed.exit_code == 0 and "baseline" in listed.output and " sim " not in listed.output
    assert listed.output.splitlines()[-1] == (
        f"1 attempt(s) that never ran (refused, skipped) not listed: `bench list lab/{TINY} --all`")
    listed_all = runner.invoke(bench, ["list", f"lab/{TINY}", "--all"])
    assert [ln.split()[4] for ln in listed_all.output.splitlines()[2:]] == ["completed", "refused"]
    drift = runner.invoke(bench, ["drift", f"lab/{TINY}"])
    assert drift.exit_code == 0
    # a second run of the same workload compares side by side; the GGUF file comes from llama-server /props
    assert runner.invoke(bench, [*args, "--yes-take-over"]).exit_code == 0
    second = int(q.list_runs(lab_env, "lab", TINY, include_refused=False)["run_id"][0])
    cmp = runner.invoke(bench, ["compare", str(run_id), str(second), "--metric", "output_throughput"])
    assert cmp.exit_code == 0, cmp.output
    assert cmp.output.splitlines()[:2] == [f"#{run_id}: lab/{TINY} (tiny.gguf)", f"#{second}: lab/{TINY} (tiny.gguf)"]
    assert [ln.split()[0] for ln in cmp.output.splitlines() if ln.startswith("concurrency=")] == [
        "concurrency=1", "concurrency=2"]  # fmt: skip


def test_cli_capacity_search(lab_env: Engine) -> None:
    from cli.bench import bench

    runner = CliRunner()
    common = ["capacity", f"lab/{TINY}", "--requests", "4", "--prompt-tokens", "32", "--output-tokens", "8",
              "--low", "1", "--high", "2", "--yes-take-over"]  # fmt: skip
    assert runner.invoke(bench, common).exit_code == 2  # no target: a usage error, not a traceback
    # generous targets: both levels meet them, the capacity is not reached within the searched range
    ok = runner.invoke(bench, [*common, "--percentile", "50", "--ttft-ms", "600000", "--tpot-ms", "600000"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[-2] == (
        "capacity: ≥ 2 (every measured level meets p50 TTFT ≤ 600000 ms and p50 TPOT ≤ 600000 ms)"
    )
    assert ok.output.splitlines()[-1].startswith("stored as capacity search #")
    search_id = int(ok.output.splitlines()[-1].split("#")[1].split()[0])
    runs = q.list_runs(lab_env, "lab", TINY, include_refused=False)
    assert runs.height == 2 and set(runs["label"].to_list()) == {f"capacity search #{search_id} (concurrency)"}
    # an impossible target: the lowest level already fails
    none = runner.invoke(bench, [*common, "--ttft-ms", "0.001"])
    assert none.exit_code == 0 and none.output.splitlines()[-2] == "capacity: no measured level meets p95 TTFT ≤ 0.001 ms"
