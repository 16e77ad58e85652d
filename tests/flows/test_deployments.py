"""prefect.yaml cannot rot: every entrypoint is a Prefect flow, and deploy_all registers them all."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml
from prefect.flows import Flow

from flows.deploy import deploy_all, enter_project_directory, load_deployments, load_entrypoint, project_root

ROOT = Path(__file__).resolve().parents[2]
PREFECT_YAML = ROOT / "prefect.yaml"
_, ENTRIES = load_deployments(PREFECT_YAML)


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: f"{e['entrypoint']}/{e['name']}")
def test_every_entrypoint_is_a_prefect_flow(entry):
    path, _, fn = entry["entrypoint"].partition(":")
    assert path.startswith("flows/") and path.endswith(".py") and fn
    fl = load_entrypoint(entry["entrypoint"], ROOT)
    assert isinstance(fl, Flow)
    assert set(entry.get("parameters") or {}) <= set(fl.parameters.properties)
    for s in entry.get("schedules") or []:
        assert s["timezone"] == "UTC"
        assert len(s["cron"].split()) == 5


def test_deployment_names_are_unique_per_flow_and_all_use_the_pool():
    doc = yaml.safe_load(PREFECT_YAML.read_text())
    keys = [(d["entrypoint"], d["name"]) for d in doc["deployments"]]
    assert len(keys) == len(set(keys))
    assert {d["work_pool"]["name"] for d in doc["deployments"]} == {"boocontrol"}
    assert doc["pull"] == [{"flows.deploy.enter_project_directory": {}}]


def test_pull_step_enters_the_tree_holding_the_entrypoints():
    assert enter_project_directory() == {"directory": str(project_root())}
    for entry in ENTRIES:
        assert (project_root() / entry["entrypoint"].partition(":")[0]).is_file()


def test_deploy_all_registers_every_deployment_idempotently(prefect_harness):
    from prefect.client.orchestration import get_client

    names = deploy_all(PREFECT_YAML, pool="boocontrol-test")
    assert sorted(names) == sorted(
        [
            "rollup/every-10m",
            "rollup/daily-catchup",
            "retention/hourly",
            "export-parquet/daily",
            "fleet-digest/daily",
            "fleet-digest/today",
            "fleet-digest/weekly",
        ]
        + ["canary/every-5m", "alerts/every-minute", "host-configs/every-15m"]
        + [n for n in names if n.startswith(("bench", "eval", "judge"))]
    )
    assert deploy_all(PREFECT_YAML, pool="boocontrol-test") == names

    async def read():
        async with get_client() as client:
            pool = await client.read_work_pool("boocontrol-test")
            deps = {
                f"{(await client.read_flow(d.flow_id)).name}/{d.name}": d
                for d in await client.read_deployments()
            }
            return pool, deps

    pool, deps = asyncio.run(read())
    assert pool.type == "process"
    every = deps["rollup/every-10m"]
    assert every.work_pool_name == "boocontrol-test"
    assert every.parameters == {"hours": 3}
    assert every.entrypoint == "flows/rollups.py:rollup"
    assert every.pull_steps == [{"flows.deploy.enter_project_directory": {}}]
    (sched,) = every.schedules
    assert sched.schedule.cron == "*/10 * * * *" and sched.schedule.timezone == "UTC"
    assert deps["fleet-digest/weekly"].parameters == {"kind": "weekly"}
    assert deps["fleet-digest/today"].parameters == {"kind": "daily", "so_far": True}
    (hourly,) = deps["fleet-digest/today"].schedules
    assert hourly.schedule.cron == "7 * * * *"
    assert "kind" in deps["fleet-digest/weekly"].parameter_openapi_schema["properties"]
