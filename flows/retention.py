"""Retention flow: prune every table to its keep-period (``BOOCONTROL_RETENTION__*``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.windows import as_utc
from tasks.warehouse import prune_captures, prune_table, retention_cutoffs


@flow(name="retention")
def retention(now: datetime | None = None) -> dict[str, Any]:
    """Delete rows older than each table's cutoff as of ``now`` (default: the current time).

    One task run per table, each deleting in small batches with short transactions, then the capture
    row cap and size budget. Re-running with the same ``now`` deletes nothing more.
    """
    at = as_utc(now) if now else datetime.now(UTC)
    cutoffs = retention_cutoffs(at)
    rows = {table: prune_table(table, cutoff) for table, cutoff in cutoffs.items()}
    rows.update(prune_captures())
    create_table_artifact(
        key="retention-last-run",
        table=[
            {"table": t, "cutoff": cutoffs[t].isoformat() if t in cutoffs else "size budget", "rows": n}
            for t, n in rows.items()
        ],
        description=f"Rows deleted (captures_truncated: rows rewritten) as of {at.isoformat()}",
    )
    get_run_logger().info("retention as of %s: %s", at.isoformat(), rows)
    return {"now": at.isoformat(), "rows": rows}
