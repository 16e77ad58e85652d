"""Registering prefect.yaml's deployments against a Prefect server, and the pull step workers run.

``deploy_all`` is what ``boocontrol up`` calls (equivalent to ``prefect deploy --all`` without prompts or
build/push steps): it creates the process work pool if missing and upserts every deployment, schedules
and default parameters included, so calling it again after editing prefect.yaml updates them. A worker
(``prefect worker start --pool boocontrol``) then runs the flows.

``enter_project_directory`` is the deployments' pull step: it changes into the directory that holds the
``flows`` package *on the machine running the flow*, so the ``flows/<module>.py:<fn>`` entrypoints
resolve wherever BooControl is installed (editable checkout or site-packages).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
from prefect.client.schemas.schedules import CronSchedule
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.flows import Flow, load_flow_from_entrypoint
from prefect.utilities.callables import parameter_schema

import flows

DEFAULT_POOL = "boocontrol"


def project_root() -> Path:
    """The directory containing the ``flows`` package of this installation."""
    return Path(flows.__file__).resolve().parent.parent


def enter_project_directory() -> dict[str, str]:
    """Pull step: the worker's flow-run process continues in the project root (Prefect chdirs there)."""
    return {"directory": str(project_root())}


def load_deployments(prefect_yaml: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The project-level pull steps and the deployment entries of ``prefect_yaml``."""
    doc = yaml.safe_load(prefect_yaml.read_text()) or {}
    return list(doc.get("pull") or []), list(doc.get("deployments") or [])


def load_entrypoint(entrypoint: str, base: Path) -> Flow[..., Any]:
    """Import a ``path/to/module.py:function`` entrypoint relative to ``base`` and check it is a flow."""
    path, _, fn = entrypoint.partition(":")
    obj: Any = load_flow_from_entrypoint(f"{(base / path).resolve()}:{fn}")
    if not isinstance(obj, Flow):
        raise TypeError(f"{entrypoint} is not a Prefect flow")
    return obj


def _schedules(entry: dict[str, Any]) -> list[DeploymentScheduleCreate]:
    out = []
    for s in entry.get("schedules") or []:
        if "cron" not in s:
            raise ValueError(f"deployment {entry['name']}: only cron schedules are supported, got {s}")
        out.append(
            DeploymentScheduleCreate(
                schedule=CronSchedule(cron=s["cron"], timezone=s.get("timezone", "UTC")),
                active=bool(s.get("active", True)),
                parameters=s.get("parameters") or {},
            )
        )
    return out


def ensure_work_pool(pool: str) -> None:
    """Create the process work pool ``pool`` with Prefect's default job template unless it exists."""
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            try:
                client.create_work_pool(
                    WorkPoolCreate(
                        name=pool,
                        type=ProcessWorker.type,
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                    )
                )
            except ObjectAlreadyExists:  # a worker started with --type process created it meanwhile
                pass


def deploy_all(prefect_yaml: Path, pool: str = DEFAULT_POOL) -> list[str]:
    """Create the work pool if missing and register every deployment of ``prefect_yaml`` into it.

    Returns the registered ``flow-name/deployment-name`` strings. Needs ``PREFECT_API_URL`` to point at
    the server (or a test harness). Every deployment goes to ``pool``, whatever its ``work_pool.name`` says;
    its ``work_pool.work_queue_name`` and ``work_pool.job_variables`` are kept.
    """
    base = prefect_yaml.resolve().parent
    pull, entries = load_deployments(prefect_yaml)
    ensure_work_pool(pool)
    names = []
    with get_client(sync_client=True) as client:
        for entry in entries:
            fl = load_entrypoint(entry["entrypoint"], base)
            wp = entry.get("work_pool") or {}
            flow_id = client.create_flow_from_name(fl.name)
            client.create_deployment(
                flow_id=flow_id,
                name=entry["name"],
                work_pool_name=pool,
                work_queue_name=wp.get("work_queue_name"),
                entrypoint=entry["entrypoint"],
                pull_steps=entry.get("pull") or pull,
                parameters=entry.get("parameters") or {},
                parameter_openapi_schema=parameter_schema(fl).model_dump_for_openapi(),
                enforce_parameter_schema=True,
                description=entry.get("description") or fl.description,
                tags=list(entry.get("tags") or []),
                schedules=_schedules(entry),
                paused=bool(entry.get("paused", False)),
                job_variables=wp.get("job_variables") or {},
            )
            names.append(f"{fl.name}/{entry['name']}")
    return names
