"""The Prefect server's scheduler turns prefect.yaml's schedules into scheduled runs (real server on the
suite's Postgres, as `boocontrol up` runs it); the manual-only bench deployment gets none."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx

from tests.flows.test_workers import ROOT, _wait, prefect_server  # noqa: F401  (the fixture)


def _deploy(env: dict[str, str]) -> list[str]:
    code = (
        "from pathlib import Path; from flows.deploy import deploy_all; "
        f"print('\\n'.join(deploy_all(Path({str(ROOT / 'prefect.yaml')!r}))))"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.split()


def test_scheduler_creates_runs_for_scheduled_deployments_only(prefect_server, tmp_path: Path) -> None:  # noqa: F811
    api, env, _workers = prefect_server
    names = _deploy(env)
    assert "rollup/every-10m" in names and "bench-sweep/manual" in names

    with httpx.Client(base_url=api, timeout=30) as client:
        every = client.get("/deployments/name/rollup/every-10m").json()
        manual = client.get("/deployments/name/bench-sweep/manual").json()

        def scheduled(dep_id: str) -> list[dict]:
            body = {
                "deployments": {"id": {"any_": [dep_id]}},
                "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
            }
            r = client.post("/flow_runs/filter", json=body)
            assert r.status_code == 200, r.text
            return r.json()

        runs = _wait(lambda: scheduled(every["id"]), 150, "scheduled runs of rollup/every-10m")
        assert scheduled(manual["id"]) == []
        assert (
            manual["schedules"] == []
            and manual["parameter_openapi_schema"]["properties"]["prompt_tokens"]["default"] == 256
        )
    starts = sorted(datetime.fromisoformat(r["expected_start_time"]) for r in runs)
    assert len(starts) >= 3, starts  # the scheduler keeps at least three runs ahead
    assert all(t.minute % 10 == 0 and t.second == 0 and t.microsecond == 0 for t in starts), starts
    assert {(b - a).total_seconds() for a, b in zip(starts, starts[1:], strict=False)} == {600.0}
    assert {r["parameters"].get("hours") for r in runs} == {3}
