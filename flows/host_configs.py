"""Host-configs flow: read every llama-swap host's configuration and store each version seen
(`engines.config.poll`; MCP's effective config where the host offers it, else the file over SSH).

Thin: the registry, the database and the secrets directory come from the settings. A host that cannot be read
is one line in the result (and the run's log), never a failed run: the others are still stored.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from connectors.host_config import SshCredentials
from core.providers import load_registry
from core.settings import get_settings
from engines.config.poll import poll_configs
from tasks.warehouse import warehouse_engine


@task(name="read-host-configs", tags=["postgres"], cache_policy=NO_CACHE)
def read_host_configs(concurrency: int) -> dict[str, Any]:
    settings = get_settings()
    registry = load_registry(settings.fleet_path)
    outcomes = asyncio.run(poll_configs(warehouse_engine(), registry.providers, SshCredentials(settings.secrets_dir),
                                        concurrency=concurrency))
    return {
        "read": sum(1 for o in outcomes if o.recorded is not None),
        "changed": sorted(o.provider_id for o in outcomes if o.recorded is not None and o.recorded.changed),
        "failed": {o.provider_id: o.error for o in outcomes if o.error},
    }


@flow(name="host-configs")
def host_configs(concurrency: int = 16) -> dict[str, Any]:
    """Read each llama-swap host's config (``concurrency`` at a time) and store the versions seen."""
    out = read_host_configs(concurrency)
    log = get_run_logger()
    log.info("host configs: %d read, changed: %s", out["read"], ", ".join(out["changed"]) or "none")
    for pid, error in out["failed"].items():
        log.warning("host config of %s not read: %s", pid, error)
    return out
