"""`boocontrol up`: the whole cockpit on embedded defaults, stopped cleanly with Ctrl-C.

Start order: Postgres (embedded unless BOOCONTROL_DATABASE_URL is set) → migrations → demo fleet (only
when no provider is configured) → connector → action executor → Prefect server → deployments and a
Prefect worker → Streamlit. Stop order is the reverse; Postgres last, and only if `up` started it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from pathlib import Path

import click

from cli.services import Service, python_cmd, wait_http, write_state
from core.providers import RegistryError, load_registry
from core.settings import Settings

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]


def _another_up_running(state_path: Path) -> int | None:
    if not state_path.exists():
        return None
    try:
        pid = int(json.loads(state_path.read_text()).get("pid", 0))
        os.kill(pid, 0)
        return pid
    except (ValueError, ProcessLookupError, PermissionError, json.JSONDecodeError):
        return None


def run_up(settings: Settings, *, demo_count: int, ui_port: int, prefect_port: int, with_prefect: bool) -> int:
    from warehouse.cluster import ClusterError, EmbeddedCluster
    from warehouse.migrate import upgrade

    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    run_dir, logs = data / "run", data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "up.json"
    if (other := _another_up_running(state_path)) is not None:
        click.echo(f"Error: `boocontrol up` is already running for {data} (pid {other}); see `boocontrol status`",
                   err=True)
        return 2

    cluster: EmbeddedCluster | None = None
    if not settings.database_url:
        cluster = EmbeddedCluster(settings.pg_dir, settings.embedded_pg_port)
        try:
            cluster.start()
        except ClusterError as exc:
            click.echo(f"Error: cannot start the embedded Postgres: {exc}", err=True)
            return 2
        click.echo(f"postgres        {cluster.url()} (data in {cluster.pgdata})")
    url = settings.resolved_database_url()
    upgrade(url)
    click.echo("migrations      schema is up to date")

    env = {"BOOCONTROL_DATA_DIR": str(data), "BOOCONTROL_DATABASE_URL": url, "PREFECT_HOME": str(data / "prefect"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PYTHONUNBUFFERED": "1"}
    services: list[Service] = []
    fleet = settings.fleet_path
    if fleet.exists():
        try:
            reg = load_registry(fleet)
        except RegistryError as exc:
            click.echo(f"Error: {exc}\nNothing was started.", err=True)
            if cluster:
                cluster.stop()
            return 2
    if not fleet.exists() or not reg.providers:
        from demo.fleet import write_demo_registry

        fleet = data / "demo-fleet.yaml"
        base_port = 19400
        write_demo_registry(fleet, demo_count, "127.0.0.1", base_port)
        services.append(Service("demo-fleet", python_cmd("-m", "cli.main", "demo-fleet", "-n", str(demo_count),
                                                         "--base-port", str(base_port)), env,
                                url=f"http://127.0.0.1:{base_port}", health_url=f"http://127.0.0.1:{base_port}/health",
                                log_path=logs / "demo-fleet.log"))
    env["BOOCONTROL_FLEET_FILE"] = str(fleet)
    services.append(Service("connector", python_cmd("-m", "cli.main", "connect"), env, log_path=logs / "connector.log"))
    services.append(Service("actions", python_cmd("-m", "cli.main", "actions", "run"), env,
                            log_path=logs / "actions.log"))
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
            write_state(state_path, started, {"data_dir": str(data), "database": _safe(url)})
            if svc.health_url and not wait_http(svc.health_url, 90, svc.alive):
                click.echo(f"Error: {svc.name} did not come up; see {svc.log_path}", err=True)
                code = 1
                stop.set()
                break
            click.echo(f"{svc.name:<16}{svc.url or 'running'}")
        if not stop.is_set():
            click.echo(f"\nCockpit: http://127.0.0.1:{ui_port}" + (f"   Prefect: http://127.0.0.1:{prefect_port}"
                                                                   if with_prefect else ""))
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
        state_path.unlink(missing_ok=True)
    return code


def _safe(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def deploy_flows(prefect_api: str, env: dict[str, str]) -> None:
    """Register every deployment of prefect.yaml against the local server (flows.deploy)."""
    import subprocess
    import sys

    code = ("from pathlib import Path; from flows.deploy import deploy_all; "
            f"print(len(deploy_all(Path({str(REPO / 'prefect.yaml')!r}))))")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env, "PREFECT_API_URL": prefect_api},
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        click.echo(f"warning: deployments not registered: {proc.stderr.strip().splitlines()[-1:]} ", err=True)
    else:
        click.echo(f"deployments     {proc.stdout.strip()} registered in work pool 'boocontrol'")
