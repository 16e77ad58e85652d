"""Reading every llama-swap host's config and storing what was read (`boocontrol config ... --refresh`, the
``host-configs`` flow). One host's failure never stops the others; each outcome is one line."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from sqlalchemy import Engine

from connectors.host_config import HostConfigError, SshCredentials, read_host_config
from core.providers import Provider
from warehouse.config_store import Recorded, record_config


@dataclass(frozen=True)
class PollOutcome:
    provider_id: str
    source: str | None
    recorded: Recorded | None
    error: str | None = None


async def poll_configs(engine: Engine, providers: Sequence[Provider], creds: SshCredentials | None,
                       concurrency: int = 16) -> list[PollOutcome]:
    """Read each provider that has host operations (llama-swap) and record the text; outcomes in input order."""
    sem = asyncio.Semaphore(concurrency)

    async def one(p: Provider, client: httpx.AsyncClient) -> PollOutcome:
        async with sem:
            try:
                got = await read_host_config(p, client, creds)
            except HostConfigError as exc:
                return PollOutcome(p.id, None, None, str(exc))

        def store() -> Recorded:
            with engine.begin() as conn:
                return record_config(conn, p.id, got.source, got.text)

        return PollOutcome(p.id, got.source, await asyncio.to_thread(store))

    async with httpx.AsyncClient(timeout=httpx.Timeout(20.0, connect=5.0)) as client:
        return list(await asyncio.gather(*(one(p, client) for p in providers if p.spec.host_operations)))
