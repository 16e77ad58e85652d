"""Cancelling a run from outside: Ctrl-C (SIGINT, the CLI) and Prefect's cancellation SIGTERM (the flow's
process gets SIGTERM and Prefect's handler raises inside the event loop). Either way the run stops
promptly, no bench request stays in flight, the model is unloaded again and the run row says cancelled."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from connectors.llama_swap_api import LlamaSwapAPI
from core.providers import Provider
from engines.bench.gate import read_inflight_snapshot
from warehouse.queries import bench as q

from .conftest import TINY, SwapLab

pytestmark = [pytest.mark.llama_server, pytest.mark.real_llamaswap]
ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from core.providers import Provider
from engines.bench.runner import BenchSpec
from engines.bench.saturation import SaturationPolicy
from engines.bench.service import run_bench
from engines.bench.workload import LengthDist, SyntheticWorkload
from warehouse.db import make_engine

url, base, mode = sys.argv[1:4]
spec = BenchSpec(levels=(4,), requests_per_point=200, workload=SyntheticWorkload(LengthDist(32), LengthDist(1800)),
                 warmup_requests=2, saturation=SaturationPolicy.disabled())
def go():
    run_bench(make_engine(url), Provider("lab", "lab", base), "tiny", spec, confirm_takeover=True, requested_by=mode)
if mode == "prefect":
    from prefect.utilities.engine import capture_sigterm
    with capture_sigterm():
        go()
else:
    go()
"""


def inflight_count(base: str) -> int:
    async def read() -> int:
        async with httpx.AsyncClient(timeout=10) as c:
            return len((await read_inflight_snapshot(c, base)).requests)

    return asyncio.run(read())


def loaded(base: str) -> set[str]:
    async def read() -> set[str]:
        async with httpx.AsyncClient(timeout=10) as c:
            api = LlamaSwapAPI(Provider("lab", "lab", base), c)
            return {r["model"] for r in await api.running()}

    return asyncio.run(read())


@pytest.mark.parametrize(
    "mode,sig", [("cli", signal.SIGINT), ("cli", signal.SIGTERM), ("prefect", signal.SIGTERM)]
)
def test_signal_cancels_cleanly(
    mode: str, sig: int, swap_lab: SwapLab, db: Engine, db_url: str, tmp_path: Path
) -> None:
    base = swap_lab.base_url
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = subprocess.Popen([sys.executable, str(script), db_url, base, mode], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while inflight_count(base) < 4:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline, "the run never reached 4 requests in flight"
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.wait(timeout=60)
        stopped_in = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.returncode != 0, out
    if mode == "cli" and sig == signal.SIGTERM:  # default disposition: cleaned up first, then exit 128 + 15
        assert proc.returncode == 143, out
    assert inflight_count(base) == 0
    assert TINY not in loaded(base)
    runs = q.list_runs(db, "lab", TINY)
    assert runs["status"].to_list() == ["cancelled"], out
    assert runs["requested_by"].to_list() == [mode]
    assert runs["stop_reason"].to_list() == ["cancelled (SIGTERM)" if sig == signal.SIGTERM else "cancelled"]
    assert stopped_in < 30, out
