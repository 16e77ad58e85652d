"""Prefect task that builds, renders and stores a fleet digest (the artifact is published by the flow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from core.settings import get_settings
from reports import digest
from tasks.warehouse import RETRIES, warehouse_engine


@task(name="render-digest", tags=["postgres"], cache_policy=NO_CACHE, **RETRIES)
def render_and_store_digest(kind: str, start: datetime, end: datetime | None = None) -> dict[str, Any]:
    """Build the ``kind`` digest of the period starting at ``start`` (cut at ``end`` when given: "so far"),
    store it; return id, title, Markdown."""
    engine = warehouse_engine()
    settings = get_settings()
    slo = (settings.gateway_slo_ttft_ms, settings.gateway_slo_tpot_ms)
    rendered = digest.render_digest(digest.build_digest(engine, kind, start, end, slo=slo))
    with engine.begin() as conn:
        report_id = digest.store_report(conn, rendered)
    return {
        "id": report_id,
        "title": rendered.title,
        "markdown": rendered.markdown,
        "summary": rendered.summary,
    }
