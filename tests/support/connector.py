"""Running the real connector in a background thread for tests."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg

from connectors.runner import Connector, ConnectorOptions
from core.providers import Provider, Registry


def dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


class ConnectorThread:
    def __init__(self, registry: Registry, db_url: str, spool_dir: Path, **opts: Any) -> None:
        defaults: dict[str, Any] = dict(flush_s=0.1, perf_poll_s=1.0, liveness_s=2.0, backoff_base_s=0.2,
                                        backoff_max_s=1.0)
        defaults.update(opts)
        self.connector = Connector(registry, dsn(db_url), spool_dir, ConnectorOptions(**defaults))
        self.loop = asyncio.new_event_loop()
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self.stop_event = asyncio.Event()
            await self.connector.run(self.stop_event)

        try:
            self.loop.run_until_complete(main())
        except BaseException as exc:  # noqa: BLE001
            self.error = exc

    def start(self) -> ConnectorThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        deadline = time.monotonic() + 5
        while self.stop_event is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.stop_event is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(timeout=20)
        if self.error is not None:
            raise self.error

    def __enter__(self) -> ConnectorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def wait_until(pred: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value {last!r})")


def query(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn(db_url)) as conn:
        return conn.execute(sql, params).fetchall()


def registry_for(*providers: Provider) -> Registry:
    return Registry(providers=tuple(providers), default_provider=providers[0].id)


def upstream_activity(base_url: str, headers: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Every activity row llama-swap holds (works on versions without id filters)."""
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        r = httpx.get(base_url + "/api/metrics/activity", params={"sort": "id", "order": "asc", "limit": 999,
                                                                   "page": page}, headers=headers or {}, timeout=10)
        r.raise_for_status()
        body = r.json()
        rows.extend(body.get("data") or [])
        if page >= int(body.get("total_pages") or 0):
            return rows
        page += 1


def chat(base_url: str, model: str, headers: dict[str, str] | None = None, query_str: str = "",
         timeout: float = 30.0) -> httpx.Response:
    return httpx.post(base_url + "/v1/chat/completions" + query_str,
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                      headers={"Content-Type": "application/json", **(headers or {})}, timeout=timeout)
