"""Alert flow: evaluate the alert rules every minute and deliver notices through Prefect notification blocks.

The rules and their state machine are ``engines.alerts`` (pure). This flow only loads the notification blocks
the user configured in Prefect (``blocks``: names like ``custom-webhook/oncall``, ``slack-webhook/team``,
``discord-webhook/ops``, ``email-server-credentials`` blocks are not notifiers: use e.g. ``sendgrid-email/…``)
and hands ``evaluate_once`` a delivery function. Thresholds are the flow's parameters (defaults in
``engines.alerts.Policy``); set them on the deployment.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, fields
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE

from engines.alerts import Deliver, Notice, Policy, evaluate_once, parse_silence
from tasks.warehouse import warehouse_engine


async def _wait(aw: Any) -> None:
    await aw


def load_notifiers(names: Sequence[str]) -> tuple[dict[str, NotificationBlock], dict[str, str]]:
    """The named notification blocks, and for each name that could not be loaded, why."""
    found: dict[str, NotificationBlock] = {}
    missing: dict[str, str] = {}
    for name in names:
        try:
            block = Block.load(name)
        except (ValueError, RuntimeError) as exc:  # unknown block or type: say so, deliver to the others
            missing[name] = f"cannot load block {name!r}: {str(exc).splitlines()[0][:200]}"
            continue
        if not isinstance(block, NotificationBlock):
            missing[name] = f"block {name!r} is a {type(block).__name__}, not a notification block"
            continue
        found[name] = block
    return found, missing


def make_deliver(blocks: Mapping[str, NotificationBlock], missing: Mapping[str, str]) -> Deliver:
    """Send a notice to every block (or only to those named in ``only``: a retry); per block "ok" or the error (a
    block that could not be loaded: why)."""

    def deliver(n: Notice, only: Collection[str] | None = None, /) -> dict[str, str]:
        out = {name: why for name, why in missing.items() if only is None or name in only}
        for name, block in blocks.items():
            if only is not None and name not in only:
                continue
            try:
                with block.raise_on_failure():
                    sent: Any = block.notify(body=n.message, subject=n.title)
                    if inspect.isawaitable(sent):  # a block without a sync notify
                        asyncio.run(_wait(sent))
                out[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - any failure of one channel is recorded, the others still get it
                out[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return out

    return deliver


@task(name="evaluate-alerts", tags=["postgres"], cache_policy=NO_CACHE)
def evaluate_alerts(policy: dict[str, Any], blocks: list[str], silences: list[str] | None = None) -> dict[str, Any]:
    quiet = [parse_silence(s) for s in silences or []]  # a malformed one fails the run with its one-line reason
    notifiers, missing = load_notifiers(blocks)
    log = get_run_logger()
    for why in missing.values():
        log.warning(why)
    result = evaluate_once(warehouse_engine(), datetime.now(UTC), Policy(**policy), make_deliver(notifiers, missing),
                           quiet)
    for n, d in zip(result.notices, result.delivery, strict=True):
        log.info("%s %s %s: %s (delivery: %s)", n.kind, n.rule, n.subject, n.message, d)
    for n, d in result.retried:
        log.info("retried %s %s %s (delivery now: %s)", n.kind, n.rule, n.subject, d)
    return {"findings": result.findings, "active": result.active, "firing": result.firing,
            "flapping": result.flapping, "notices": [asdict(n) | {"at": n.at.isoformat()} for n in result.notices],
            "delivery": [dict(d) for d in result.delivery],
            "retried": [{"kind": n.kind, "rule": n.rule, "subject": n.subject, "delivery": dict(d)}
                        for n, d in result.retried]}


POLICY_FIELDS = [f.name for f in fields(Policy)]


@flow(name="alerts")
def alerts(
    blocks: list[str] | None = None,
    silences: list[str] | None = None,
    host_unreachable_minutes: float = Policy.host_unreachable_minutes,
    gpu_temp_c: float = Policy.gpu_temp_c,
    vram_pct: float = Policy.vram_pct,
    error_rate: float = Policy.error_rate,
    error_min_requests: int = Policy.error_min_requests,
    error_window_minutes: float = Policy.error_window_minutes,
    gap_window_minutes: float = Policy.gap_window_minutes,
    bench_drift_pct: float = Policy.bench_drift_pct,
    eval_drop_pct: float = Policy.eval_drop_pct,
    thrash_loads_per_hour: float = Policy.thrash_loads_per_hour,
    canary_ttft_slo_ms: float = Policy.canary_ttft_slo_ms,
    hold_s: float = Policy.hold_s,
    clear_s: float = Policy.clear_s,
    flap_window_s: float = Policy.flap_window_s,
    flap_changes: int = Policy.flap_changes,
    retry_minutes: float = Policy.retry_minutes,
) -> dict[str, Any]:
    """Evaluate every alert rule once; send fire/recover notices to the notification blocks named in ``blocks``
    (``block-type/name``, as ``prefect block ls`` lists them); notices matching a ``silences`` entry
    (``RULE:SUBJECT`` globs, optionally ``… until 2026-12-02T18:00Z``) are stored but not sent."""
    values = locals()
    policy = {k: values[k] for k in POLICY_FIELDS}
    return evaluate_alerts(policy, list(blocks or []), list(silences or []))
