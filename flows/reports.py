"""Fleet digest flow: render the daily or weekly digest, store it and publish it as a Prefect artifact."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from reports.digest import KINDS, current_period, last_closed_period, period_start_for
from tasks.reports import render_and_store_digest
from tasks.warehouse import rollup_activity


@flow(name="fleet-digest")
def fleet_digest(
    kind: Literal["daily", "weekly"] = "daily", day: date | None = None, so_far: bool = False
) -> dict[str, Any]:
    """The ``kind`` digest of the period containing ``day`` (default: the last closed period).

    ``so_far``: the period running now, up to now ("today so far"; a new install has no closed day yet).
    The activity rollups of the period and the one before it are recomputed first (idempotent), so the
    digest never reads stale rollups. Re-running replaces the stored report of that period, so the
    closed digest later replaces the "so far" one.
    """
    cut: datetime | None = None
    if so_far:
        start, cut = current_period(kind, datetime.now(UTC))
        end = cut
    elif day is None:
        start, end = last_closed_period(kind, datetime.now(UTC))
    else:
        start = period_start_for(kind, day)
        end = start + KINDS[kind]
    rollup_activity(start - KINDS[kind], end)
    report = render_and_store_digest(kind, start, cut)
    create_markdown_artifact(
        key=f"fleet-digest-{kind}",
        markdown=report["markdown"],
        description=report["title"],
    )
    get_run_logger().info("stored report %s: %s", report["id"], report["title"])
    return {"id": report["id"], "title": report["title"], "summary": report["summary"]}
