"""The action executor: one serialized queue per provider, providers in parallel.

``run_forever`` is what a long-lived process (``boocontrol up``/``connect``) starts in a thread::

    stop = threading.Event()
    threading.Thread(target=executor.run_forever, args=(engine, registry, None, stop), daemon=True).start()

Per provider, a worker holds the provider's host lease (`warehouse.lease`, scope ``host``, shared with
benchmark runs, evals and other executors; heartbeated, reclaimed when its holder died) and runs that
provider's queued rows in id order until the queue is empty. Before each claim the worker renews the lease
with the action as its purpose (what the Fleet page and ``boocontrol lease list`` show) and stops if the
lease is no longer its own, so two executors never run two actions on one host at the same time; the claim
itself is ``FOR UPDATE SKIP LOCKED``, so a row is never claimed twice even then.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine

from actions.perform import ClientFactory, Outcome, default_client_factory, perform
from actions.queue import ACTIONS, HOST_ACTIONS, validate
from core.providers import Registry
from warehouse import lease
from warehouse.queries.actions import (
    claim_next,
    finish_action,
    insert_action,
    interrupt_running,
    providers_with_queued,
)

log = logging.getLogger(__name__)

RegistrySource = Registry | Callable[[], Registry]


def _registry(src: RegistrySource) -> Registry:
    return src if isinstance(src, Registry) else src()


def drain_provider(
    engine: Engine,
    registry: RegistrySource,
    client_factory: ClientFactory | None,
    provider_id: str,
    stop_event: threading.Event | None = None,
    slot_wait_s: float = 1.0,
    lease_ttl_s: float = lease.DEFAULT_TTL_S,
) -> int:
    """Run the provider's queued actions in id order while holding its host lease; returns how many ran.

    While someone else holds the lease (a benchmark, another executor) this keeps trying every
    ``slot_wait_s`` until ``stop_event`` is set."""
    factory = client_factory or default_client_factory
    dsn = engine.url.render_as_string(hide_password=False)
    holder = lease.holder_id("actions")
    while True:
        try:
            with lease.hold(dsn, provider_id, lease.SCOPE_HOST, "action queue", holder=holder,
                            ttl_s=lease_ttl_s, wait_s=slot_wait_s) as lost, engine.connect() as c:
                conn = c.execution_options(isolation_level="AUTOCOMMIT")
                interrupted = interrupt_running(conn, provider_id, HOST_ACTIONS)
                if interrupted:
                    log.warning(
                        "provider %s: %d action(s) interrupted by an earlier executor stop",
                        provider_id,
                        interrupted,
                    )
                done = 0
                while not (stop_event is not None and stop_event.is_set()):
                    if lost.is_set() or not _renew(conn, provider_id, holder, lease_ttl_s):
                        log.warning("provider %s: host lease lost; the remaining actions wait", provider_id)
                        break
                    row = claim_next(conn, provider_id)
                    if row is None:
                        break
                    _renew(conn, provider_id, holder, lease_ttl_s,
                           f"action {row.id}: {row.action}{' ' + row.target if row.target else ''}")
                    log.info(
                        "provider %s: action %d %s %s", provider_id, row.id, row.action, row.target or ""
                    )
                    outcome = asyncio.run(
                        perform(
                            _registry(registry),
                            factory,
                            provider_id,
                            row.action,
                            row.target,
                            row.params,
                            conn,
                        )
                    )
                    finish_action(conn, row.id, outcome.status, outcome.result, outcome.error)
                    log.info("provider %s: action %d %s", provider_id, row.id, outcome.status)
                    done += 1
                return done
        except lease.LeaseHeld:  # a benchmark or another executor holds the host; keep waiting unless stopping
            if stop_event is not None and stop_event.is_set():
                return 0


def _renew(conn: Connection, provider_id: str, holder: str, ttl_s: float, purpose: str = "action queue") -> bool:
    """Extend our lease and set its purpose; False when it is not ours any more (broken or taken over)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    return lease.heartbeat(raw, provider_id, lease.SCOPE_HOST, holder, ttl_s, purpose)


def drain_once(
    engine: Engine,
    registry: RegistrySource,
    client_factory: ClientFactory | None = None,
    max_workers: int = 8,
) -> int:
    """Run every queued action now (providers in parallel, each provider in order); returns how many ran."""
    counts: dict[str, int] = {}
    pending = providers_with_queued(engine)
    while pending:
        batch, pending = pending[:max_workers], pending[max_workers:]
        threads = []
        for pid in batch:

            def work(pid: str = pid) -> None:
                counts[pid] = drain_provider(engine, registry, client_factory, pid)

            t = threading.Thread(target=work, name=f"actions-{pid}")
            t.start()
            threads.append(t)
        for t in threads:
            t.join()
    return sum(counts.values())


def run_forever(
    engine: Engine,
    registry: RegistrySource,
    client_factory: ClientFactory | None,
    stop_event: threading.Event,
    poll_s: float = 0.5,
    max_workers: int = 8,
) -> None:
    """Poll for queued actions until ``stop_event`` is set; one worker thread per busy provider.

    A worker finishes the action it is running before it notices the stop; this returns after the
    workers have stopped (or after 30 s).
    """
    workers: dict[str, threading.Thread] = {}
    log.info("action executor started")
    while not stop_event.is_set():
        try:
            queued = providers_with_queued(engine)
        except Exception:  # noqa: BLE001 - a database hiccup must not kill the executor
            log.exception("action executor: cannot read the queue")
            stop_event.wait(max(poll_s, 2.0))
            continue
        for pid, t in list(workers.items()):
            if not t.is_alive():
                del workers[pid]
        for pid in queued:
            if pid in workers or len(workers) >= max_workers:
                continue

            def work(pid: str = pid) -> None:
                try:
                    drain_provider(engine, registry, client_factory, pid, stop_event)
                except Exception:  # noqa: BLE001
                    log.exception("action executor: worker for %s failed", pid)

            t = threading.Thread(target=work, name=f"actions-{pid}", daemon=True)
            workers[pid] = t
            t.start()
        stop_event.wait(poll_s)
    for t in workers.values():
        t.join(timeout=30)
    log.info("action executor stopped")


def run_direct(
    engine: Engine,
    registry: RegistrySource,
    client_factory: ClientFactory | None,
    provider_id: str,
    action: str,
    target: str | None,
    params: dict[str, object] | None = None,
    requested_by: str | None = None,
) -> tuple[int, Outcome]:
    """Run a read-only action (``fetch_capture``) right away, outside the host queue, with an audit row."""
    validate(action, target, params)
    if ACTIONS[action].mutates_host:
        raise ValueError(f"{action!r} changes the host: enqueue it instead")
    with engine.connect() as c:
        conn = c.execution_options(isolation_level="AUTOCOMMIT")
        action_id = insert_action(conn, provider_id, action, target, params, requested_by, status="running")
        outcome = asyncio.run(
            perform(
                _registry(registry),
                client_factory or default_client_factory,
                provider_id,
                action,
                target,
                dict(params or {}),
                conn,
            )
        )
        finish_action(conn, action_id, outcome.status, outcome.result, outcome.error)
    return action_id, outcome
