"""`boocontrol up`: the whole cockpit on embedded defaults, stopped cleanly with Ctrl-C.

Preflight first (`cli.preflight`): the data directory, every port it will use (named with the process holding
it and the other `up` it belongs to) and an external database; nothing starts unless all are fine. The
state file and the pointer to it (`cli.instance`) let every other command find this cockpit.

Start order: Postgres (embedded unless BOOCONTROL_DATABASE_URL is set) → migrations → demo fleet (only
when no provider is configured) → connector → action executor → Prefect server → deployments and a
Prefect worker → Streamlit. Stop order is the reverse; Postgres last, and only if `up` started it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

import click

from cli.errors import fail, postgres_unreachable
from cli.instance import (
    Instance,
    clear_pointer,
    find_instance,
    read_instance,
    state_fields,
    state_path,
    write_pointer,
)
from cli.preflight import check_data_dir, check_ports
from cli.services import Service, python_cmd, wait_http, write_state
from core.providers import RegistryError, load_registry
from core.settings import DEFAULT_DATA_DIR, Settings

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


def _known_instances() -> list[Instance]:
    """The other running `up`s this user can know of (the one the pointer names, the default data dir's)."""
    found = [find_instance(None), read_instance(state_path(DEFAULT_DATA_DIR))]
    return list({i.pid: i for i in found if i is not None}.values())


def _refuse(problems: list[str]) -> NoReturn:
    for line in problems[:-1]:
        click.echo(f"Error: {line}", err=True)
    fail(f"{problems[-1]}; nothing was started")


def _database_problem(url: str) -> list[str]:
    import psycopg

    from warehouse.db import psycopg_dsn

    try:
        with psycopg.connect(psycopg_dsn(url), connect_timeout=5):
            return []
    except psycopg.OperationalError as exc:
        return [postgres_unreachable(url, exc)]


def run_up(settings: Settings, *, demo_count: int, ui_port: int, prefect_port: int, with_prefect: bool,
           demo_base_port: int = 19400) -> int:
    from warehouse.cluster import ClusterError, EmbeddedCluster
    from warehouse.migrate import upgrade

    data = settings.data_dir.resolve()
    if problems := check_data_dir(data):
        _refuse(problems)
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    state_file = state_path(data)
    if (other := read_instance(state_file)) is not None:
        fail(f"`boocontrol up` is already running for {data} (pid {other.pid}); see `boocontrol status`")

    fleet = settings.fleet_path
    reg = None
    if fleet.exists():
        try:
            reg = load_registry(fleet)
        except RegistryError as exc:
            fail(f"{exc}; nothing was started")
    demo = reg is None or not reg.providers

    # preflight: nothing starts unless every port is free and the database answers
    cluster = None if settings.database_url else EmbeddedCluster(settings.pg_dir, settings.embedded_pg_port)
    ports: dict[str, tuple[int, str]] = {"the cockpit": (ui_port, "--ui-port")}
    if with_prefect:
        ports["the Prefect server"] = (prefect_port, "--prefect-port")
    if cluster is not None and not cluster.running():  # a cluster left running on this data dir is reused
        ports["the embedded Postgres"] = (settings.embedded_pg_port, "BOOCONTROL_EMBEDDED_PG_PORT")
    if demo:
        for i in range(demo_count):
            ports[f"demo instance {i + 1}"] = (demo_base_port + i, "--demo-base-port")
    ports["the gateway"] = (settings.gateway_port, "BOOCONTROL_GATEWAY_PORT")
    problems = check_ports(ports, _known_instances())
    if settings.database_url:
        problems += _database_problem(settings.database_url)
    if problems:
        _refuse(problems)

    if cluster is not None:
        try:
            cluster.start()
        except ClusterError as exc:
            why = (str(exc).strip().splitlines() or ["failed"])[0]
            fail(f"cannot start the embedded Postgres on port {settings.embedded_pg_port}: {why}; "
                 f"see {cluster.logfile}; nothing was started")
        click.echo(f"postgres        {cluster.url()} (data in {cluster.pgdata})")
    url = settings.resolved_database_url()
    try:
        upgrade(url)
    except Exception:
        if cluster is not None:
            cluster.stop()
        raise
    click.echo("migrations      schema is up to date")

    env = {"BOOCONTROL_DATA_DIR": str(data), "BOOCONTROL_DATABASE_URL": url, "PREFECT_HOME": str(data / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
    services: list[Service] = []
    fleet = settings.fleet_path
    if demo:
        from demo.fleet import write_demo_registry

        fleet = data / "demo-fleet.yaml"
        base_port = demo_base_port
        write_demo_registry(fleet, demo_count, "127.0.0.1", base_port)
        services.append(Service("demo-fleet", python_cmd("-m", "cli.main", "demo-fleet", "-n", str(demo_count),
                                                         "--base-port", str(base_port)), env,
                                url=f"http://127.0.0.1:{base_port}", health_url=f"http://127.0.0.1:{base_port}/health",
                                log_path=logs / "demo-fleet.log"))
    env["BOOCONTROL_FLEET_FILE"] = str(fleet)
    services.append(Service("connector", python_cmd("-m", "cli.main", "connect"), env, log_path=logs / "connector.log"))
    services.append(Service("actions", python_cmd("-m", "cli.main", "actions", "run"), env,
                            log_path=logs / "actions.log"))
    from cli.gateway import gateway_url

    services.append(Service("gateway", python_cmd("-m", "cli.main", "gateway"), env, url=gateway_url(settings),
                            health_url=gateway_url(settings).removesuffix("/v1") + "/health",
                            log_path=logs / "gateway.log"))
    prefect_api = f"http://127.0.0.1:{prefect_port}/api"
    if with_prefect:
        penv = dict(env)
        if cluster is not None:
            cluster.ensure_database("prefect")
            penv["PREFECT_API_DATABASE_CONNECTION_URL"] = (
                f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/prefect")
        services.append(Service("prefect-server", python_cmd("-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                                             "--port", str(prefect_port)), penv,
                                url=f"http://127.0.0.1:{prefect_port}", health_url=f"{prefect_api}/health",
                                log_path=logs / "prefect-server.log", stop_timeout_s=30))
        wenv = {**env, "PREFECT_API_URL": prefect_api, "PREFECT_RUNNER_POLL_FREQUENCY": "5",
                "PREFECT_LOGGING_EXTRA_LOGGERS": "warehouse,reports,engines,connectors,actions"}
        services.append(Service("prefect-worker", python_cmd("-m", "prefect", "worker", "start", "--pool",
                                                             "boocontrol", "--type", "process"), wenv,
                                log_path=logs / "prefect-worker.log"))
    services.append(Service("cockpit", python_cmd("-m", "streamlit", "run", str(REPO / "app.py"),
                                                  "--server.port", str(ui_port), "--server.address", "127.0.0.1",
                                                  "--server.headless", "true", "--browser.gatherUsageStats", "false"),
                            env, url=f"http://127.0.0.1:{ui_port}", health_url=f"http://127.0.0.1:{ui_port}/_stcore/health",
                            log_path=logs / "cockpit.log"))

    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started: list[Service] = []
    code = 0
    try:
        for svc in services:
            if stop.is_set():
                break
            if svc.name == "prefect-worker":
                deploy_flows(prefect_api, env)
            svc.start(REPO)
            started.append(svc)
            write_state(state_file, started, state_fields(data, url, fleet, prefect_api if with_prefect else None,
                                                          f"http://127.0.0.1:{ui_port}"))
            if len(started) == 1:
                write_pointer(data, os.getpid())
            if svc.health_url and not wait_http(svc.health_url, 90, svc.alive):
                click.echo(f"Error: {svc.name} did not come up; see {svc.log_path}", err=True)
                code = 1
                stop.set()
                break
            click.echo(f"{svc.name:<16}{svc.url or 'running'}")
        if not stop.is_set():
            click.echo(f"\nCockpit: http://127.0.0.1:{ui_port}" + (f"   Prefect: http://127.0.0.1:{prefect_port}"
                                                                   if with_prefect else ""))
            click.echo(f"Gateway (OpenAI-compatible, any client's base_url): {gateway_url(settings)}")
            exe = Path(sys.executable).parent / "boocontrol"
            click.echo(f"\nFrom any shell: {exe} status | providers list | lease list | bench list | "
                       "prefect deployment ls\n(`boocontrol` is in the project's virtualenv: `source "
                       f"{exe.parent / 'activate'}` puts it on PATH; every command finds this cockpit by itself, "
                       "`boocontrol env` prints the variables for other tools)")
            if not state_fields(data, url, fleet, None, "")["database_url"]:
                click.echo("The database URL holds a password, which is not written to disk: export "
                           "BOOCONTROL_DATABASE_URL in the shells that run `boocontrol`.")
            click.echo("Ctrl-C stops everything.")
        while not stop.wait(1.0):
            for svc in started:
                if not svc.alive():
                    click.echo(f"Error: {svc.name} exited (code {svc.proc.returncode if svc.proc else '?'}); "
                               f"see {svc.log_path}. Stopping.", err=True)
                    code = 1
                    stop.set()
                    break
    finally:
        click.echo("stopping…")
        for svc in reversed(started):
            svc.stop()
            click.echo(f"  stopped {svc.name}")
        if cluster is not None:
            cluster.stop()
            click.echo("  stopped postgres")
        state_file.unlink(missing_ok=True)
        clear_pointer(data)
    return code


def deploy_flows(prefect_api: str, env: dict[str, str]) -> None:
    """Register every deployment of prefect.yaml against the local server (flows.deploy)."""
    import subprocess

    code = ("from pathlib import Path; from flows.deploy import deploy_all; "
            f"print(len(deploy_all(Path({str(REPO / 'prefect.yaml')!r}))))")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env, "PREFECT_API_URL": prefect_api},
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        click.echo(f"warning: deployments not registered: {proc.stderr.strip().splitlines()[-1:]} ", err=True)
    else:
        click.echo(f"deployments     {proc.stdout.strip()} registered in work pool 'boocontrol'")
