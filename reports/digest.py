"""The daily and weekly fleet digest: gathered from the warehouse, rendered to Markdown and HTML.

``build_digest`` reads one closed period and the period before it; ``render_digest`` turns that into a
title, Markdown, HTML (with Plotly figures), the figures as JSON and a JSON summary of the headline
numbers. Both are plain functions: the report flow stores the result (``warehouse.queries.reports``) and
publishes the Markdown as a Prefect artifact; the Reports page lists and shows stored reports.

Periods are UTC: a daily digest covers ``[00:00, 24:00)`` of one day, a weekly digest Monday 00:00 to the
next Monday. "Change" columns compare with the period of the same length just before. A period still
running can be digested *so far* (``end`` = now, e.g. "today so far"): it is compared with the same span of
the period before, and the closed digest of that period later replaces it (same kind and start).
"""

from __future__ import annotations

import html as htmllib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import plotly.graph_objects as go
import plotly.offline
import polars as pl
from sqlalchemy import Connection

from core.settings import Settings
from engines.thrash import ThrashReport, thrash_report
from reports import digest_figures, uptime
from warehouse.queries import consumers as consumers_q
from warehouse.queries import evals as evals_q
from warehouse.queries import fleet as fleet_q
from warehouse.queries import reports as q
from warehouse.queries._frames import Db

KINDS = {"daily": timedelta(days=1), "weekly": timedelta(days=7)}
# The gateway consumers' SLO targets (TTFT ms, TPOT ms) when the caller does not pass the configured ones.
DEFAULT_SLO = (float(Settings.model_fields["gateway_slo_ttft_ms"].default),
               float(Settings.model_fields["gateway_slo_tpot_ms"].default))  # fmt: skip


def period_start_for(kind: str, day: date) -> datetime:
    """The start of the ``kind`` period containing ``day`` (weekly periods start on Mondays)."""
    if kind not in KINDS:
        raise ValueError(f"unknown report kind {kind!r}; expected one of {sorted(KINDS)}")
    if kind == "weekly":
        day = day - timedelta(days=day.weekday())
    return datetime.combine(day, time(0), tzinfo=UTC)


def last_closed_period(kind: str, now: datetime) -> tuple[datetime, datetime]:
    """The most recent ``kind`` period that has fully ended at ``now``."""
    current = period_start_for(kind, now.astimezone(UTC).date())
    return current - KINDS[kind], current


@dataclass
class Digest:
    kind: str
    start: datetime
    end: datetime
    usage: pl.DataFrame
    usage_prev: pl.DataFrame
    hourly: pl.DataFrame
    speeds: pl.DataFrame  # current period, with *_prev columns and the p50 change
    uptime: pl.DataFrame
    errors: pl.DataFrame
    simulated: tuple[str, ...] = ()  # providers that were simulated hosts (the demo fleet): synthetic numbers
    # weekly only (`warehouse.queries.evals`): headline eval scores of the runs completed in the period, each
    # against the previous run of the same suite and model, and the newest scores marked stale at its end
    evals: pl.DataFrame | None = None
    evals_stale: pl.DataFrame | None = None
    # the gateway's consumers (`warehouse.queries.consumers.consumer_summary`) and the SLO targets used
    consumers: pl.DataFrame | None = None
    slo: tuple[float, float] = DEFAULT_SLO
    # swap thrash of the period (`engines.thrash`): loads, loading vs serving, ping-pong pairs, GPU time lost
    thrash: ThrashReport | None = None

    @property
    def prev_start(self) -> datetime:
        return self.start - KINDS[self.kind]

    @property
    def prev_end(self) -> datetime:
        """The previous period cut to the same length as this one (so a partial day compares like with like)."""
        return self.prev_start + (self.end - self.start)

    @property
    def partial(self) -> bool:
        return self.end < self.start + KINDS[self.kind]

    @property
    def title(self) -> str:
        so_far = f" (so far, to {self.end:%H:%M} UTC)" if self.partial else ""
        if self.kind == "daily":
            return f"Fleet digest — {self.start.date().isoformat()}{so_far}"
        iso = self.start.isocalendar()
        so_far = f" (so far, to {self.end:%a %H:%M} UTC)" if self.partial else ""
        return f"Fleet digest — week {iso.year}-W{iso.week:02d} (from {self.start.date().isoformat()}){so_far}"


def current_period(kind: str, now: datetime) -> tuple[datetime, datetime]:
    """The ``kind`` period containing ``now``, cut at ``now`` ("today so far", "this week so far")."""
    return period_start_for(kind, now.astimezone(UTC).date()), now


def build_digest(db: Db, kind: str, start: datetime, end: datetime | None = None,
                 slo: tuple[float, float] = DEFAULT_SLO) -> Digest:
    """Gather the ``kind`` period starting at ``start`` and the one before it.

    ``end`` (default: the period's end) cuts a period still running; the previous period is cut to the
    same length. ``slo`` is the gateway consumers' (TTFT ms, TPOT ms) targets.
    """
    if start != period_start_for(kind, start.astimezone(UTC).date()):
        raise ValueError(f"{start.isoformat()} is not the start of a {kind} period")
    full = start + KINDS[kind]
    end = full if end is None else end
    if not start < end <= full:
        raise ValueError(f"{end.isoformat()} is not inside the {kind} period from {start.isoformat()}")
    prev = start - KINDS[kind]
    prev_end = prev + (end - start)
    speeds = q.speed_percentiles(db, start, end)
    speeds_prev = q.speed_percentiles(db, prev, prev_end).select(
        "provider_id",
        "model_id",
        pl.col("gen_p50").alias("gen_p50_prev"),
        pl.col("gen_n").alias("gen_n_prev"),
    )
    speeds = speeds.join(speeds_prev, on=["provider_id", "model_id"], how="left").with_columns(
        ((pl.col("gen_p50") - pl.col("gen_p50_prev")) / pl.col("gen_p50_prev") * 100).alias(
            "gen_p50_change_pct"
        )
    )
    return Digest(
        kind=kind,
        start=start,
        end=end,
        usage=q.usage_by_model(db, start, end),
        usage_prev=q.usage_by_model(db, prev, prev_end),
        hourly=q.requests_by_hour(db, start, end),
        speeds=speeds,
        uptime=uptime.uptime_by_provider(db, start, end),
        errors=q.top_errors(db, start, end),
        evals=evals_q.period_scores(db, start, end) if kind == "weekly" else None,
        evals_stale=evals_q.stale_headlines(db, end) if kind == "weekly" else None,
        simulated=tuple(fleet_q.simulated_providers(db, end)),
        consumers=consumers_q.consumer_summary(db, start, end, *slo),
        slo=slo,
        thrash=thrash_report(db, start, end),
    )


# --- summary numbers ------------------------------------------------------------------------------------

_TOTALS = ("requests", "errors", "input_tokens", "output_tokens", "cache_tokens", "swaps")


def _totals(usage: pl.DataFrame) -> dict[str, int]:
    return {k: int(usage[k].sum() or 0) for k in _TOTALS}


def busiest_hours(hourly: pl.DataFrame, n: int = 3) -> list[tuple[datetime, int]]:
    """The ``n`` UTC hours with the most requests fleet-wide (earliest first among ties)."""
    fleet = (
        hourly.group_by("bucket_start")
        .agg(pl.col("requests").sum())
        .filter(pl.col("requests") > 0)
        .sort(["requests", "bucket_start"], descending=[True, False])
        .head(n)
    )
    return [(t, int(r)) for t, r in fleet.iter_rows()]


def summarize(d: Digest) -> dict[str, Any]:
    """Headline numbers as JSON-ready values (stored with the report)."""
    cur, prev = _totals(d.usage), _totals(d.usage_prev)
    return {
        "kind": d.kind,
        "period_start": d.start.isoformat(),
        "period_end": d.end.isoformat(),
        **cur,
        "error_rate_pct": (cur["errors"] / cur["requests"] * 100) if cur["requests"] else None,
        "previous": prev,
        "restarts": int(d.uptime["restarts"].sum() or 0),
        "simulated_providers": list(d.simulated),
        "busiest_hours": [{"hour": t.isoformat(), "requests": r} for t, r in busiest_hours(d.hourly)],
        **({"evals": _eval_summary(d)} if d.evals is not None else {}),
        **({"consumers": d.consumers.select(
            "consumer", "requests", "errors", "tokens", "load_share", "slo_attainment").to_dicts()}
           if d.consumers is not None else {}),  # fmt: skip
        "speeds": [
            {k: v for k, v in row.items()}
            for row in d.speeds.select(
                "provider_id", "model_id", "gen_n", "gen_p50", "gen_p95", "gen_p99", "gen_p50_prev"
            ).to_dicts()
        ],
    }


# --- rendering ------------------------------------------------------------------------------------------


@dataclass
class Section:
    title: str
    lines: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    figure: str | None = None
    text_cols: int = 2  # leading left-aligned columns; the rest are numbers


def _int(v: Any) -> str:
    return "—" if v is None else f"{int(v):,}"


def _num(v: Any, digits: int = 1) -> str:
    return "—" if v is None else f"{float(v):,.{digits}f}"


def _hours(seconds: float | None) -> str:
    """``0m``, ``18m``, ``6h 30m``, ``168h 00m`` (whole minutes, rounded down)."""
    if seconds is None:
        return "—"
    h, m = divmod(int(seconds) // 60, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m"


def _change(cur: float | None, prev: float | None) -> str:
    if cur is None or prev is None:
        return "—"
    if prev == 0:
        return "new" if cur else "±0 %"
    pct = (cur - prev) / prev * 100
    return f"{pct:+.1f} %"


def _provider(d: Digest, provider_id: str) -> FleetText:
    """A provider cell; a simulated host's says so next to its numbers."""
    return FleetText(f"{provider_id} (simulated)" if provider_id in d.simulated else provider_id)


def _sections(d: Digest, summary: dict[str, Any]) -> list[Section]:
    prev = summary["previous"]
    span = "day" if d.kind == "daily" else "week"
    head = Section(
        "Headline",
        [
            f"Period {d.start:%Y-%m-%d %H:%M} → {d.end:%Y-%m-%d %H:%M} UTC, compared with "
            + (f"the same hours of the previous {span} (so far)." if d.partial else f"the previous {span}.")
        ],
        ["", "This period", "Previous", "Change"],
        text_cols=1,
    )
    labels = {
        "requests": "Requests",
        "errors": "Errors",
        "input_tokens": "Input tokens",
        "output_tokens": "Output tokens",
        "cache_tokens": "Cached tokens",
        "swaps": "Model swaps",
    }
    if d.simulated:
        head.lines.append(
            "Simulated hosts (the demo fleet: their speeds, hardware and energy are synthetic, not measurements): "
            + ", ".join(d.simulated) + "."  # registry ids ([a-z0-9_.-]): the same text in Markdown and HTML
        )
    for k, label in labels.items():
        head.rows.append([label, _int(summary[k]), _int(prev[k]), _change(summary[k], prev[k])])
    head.rows.append(["Restarts", _int(summary["restarts"]), "", ""])

    usage = Section(
        "Tokens per provider and model",
        headers=["Provider", "Model", "Requests", "Input", "Cached", "Output", "Errors", "Busy (min)"],
        figure="tokens_by_model",
    )
    for r in d.usage.iter_rows(named=True):
        usage.rows.append(
            [
                _provider(d, r["provider_id"]),
                FleetText(r["model_id"]),
                _int(r["requests"]),
                _int(r["input_tokens"]),
                _int(r["cache_tokens"]),
                _int(r["output_tokens"]),
                _int(r["errors"]),
                _num((r["busy_ms"] or 0) / 60000),
            ]
        )
    if not usage.rows:
        usage.lines.append("No requests in this period.")

    hours = Section("Busiest hours", figure="requests_by_hour")
    top = busiest_hours(d.hourly)
    hours.lines = [f"{t:%Y-%m-%d %H:00} UTC: {n:,} requests" for t, n in top] or [
        "No requests in this period."
    ]

    speeds = Section(
        "Generation speed percentiles (tokens/s)",
        ["Requests with a reported speed only (llama-swap's -1 and 0 sentinels are excluded)."],
        ["Provider", "Model", "n", "p50", "p95", "p99", "Prompt p50", f"p50 previous {span}", "p50 change"],
        figure="speed_change",
    )
    for r in d.speeds.iter_rows(named=True):
        speeds.rows.append(
            [
                _provider(d, r["provider_id"]),
                FleetText(r["model_id"]),
                _int(r["gen_n"]),
                _num(r["gen_p50"]),
                _num(r["gen_p95"]),
                _num(r["gen_p99"]),
                _num(r["prompt_p50"]),
                _num(r["gen_p50_prev"]),
                _change(r["gen_p50"], r["gen_p50_prev"]),
            ]
        )

    uptime = Section(
        "Restarts and uptime",
        [
            "Uptime is the time each instance was seen running: from a boot's start (llama-swap's boot marker) "
            "to its last sighting by the connector; before v247 (no boot marker) only while it was being "
            "followed. Time nobody observed does not count."
        ],
        ["Provider", "Version", "Boots", "Restarts", "Up", "Uptime"],
    )
    for r in d.uptime.iter_rows(named=True):
        uptime.rows.append(
            [
                _provider(d, r["provider_id"]),
                FleetText(r["version"]) if r["version"] else "—",
                _int(r["boots"]),
                _int(r["restarts"]),
                _hours(r["uptime_s"]),
                f"{_num(r['uptime_pct'])} %",
            ]
        )

    errors = Section("Errors", headers=["Provider", "Model", "Status", "Message", "Count"], text_cols=4)
    for r in d.errors.iter_rows(named=True):
        msg = (r["error_msg"] or "").replace("\n", " ")
        errors.rows.append(
            [_provider(d, r["provider_id"]), FleetText(r["model_id"]), str(r["status_code"]), FleetText(msg[:120]),
             _int(r["count"])]  # fmt: skip
        )
    if not errors.rows:
        errors.lines.append("No failed requests.")

    swaps = Section(
        "Model swaps",
        ["A swap is a model load; load time is from `starting` to `ready`."],
        ["Provider", "Model", "Swaps", "Timed loads", "Mean load (s)", "Max load (s)"],
    )
    for r in d.usage.filter(pl.col("swaps") > 0).sort("swaps", descending=True).iter_rows(named=True):
        mean = r["load_ms_sum"] / r["loads_timed"] / 1000 if r["loads_timed"] else None
        mx = r["load_ms_max"] / 1000 if r["load_ms_max"] is not None else None
        swaps.rows.append(
            [_provider(d, r["provider_id"]), FleetText(r["model_id"]), _int(r["swaps"]), _int(r["loads_timed"]),
             _num(mean), _num(mx)]  # fmt: skip
        )
    if not swaps.rows:
        swaps.lines.append("No model loads.")
    return [head, usage, hours, speeds, uptime, errors, swaps, *_eval_sections(d), *_consumer_sections(d),
            *_thrash_sections(d)]


def _thrash_sections(d: Digest) -> list[Section]:
    """Where GPUs were spent loading instead of serving: per host, and the pairs of models that swapped back and
    forth (`engines.thrash`; canary probes not counted)."""
    if d.thrash is None:
        return []
    t = d.thrash
    loading = sum(h.loading_s for h in t.hosts)
    serving = sum(h.serving_s for h in t.hosts)
    lost = sum(h.gpu_s_lost + h.gpu_s_lost_estimated for h in t.hosts)
    share = f"{_num(100 * loading / (loading + serving))} %" if loading + serving else "—"
    hosts = Section(
        "Swap thrash",
        [f"{len(t.loads):,} model loads; time loading {share} of loading + serving; GPU time lost to loads "
         f"{_num(lost)} s (measured load times, plus each model's median for loads whose time was not seen)."],
        ["Provider", "Loads", "Loads/h", "Failed", "Loading share", "GPU lost (s)"],
        text_cols=1,
    )
    for h in t.hosts:
        if not h.loads:
            continue
        hosts.rows.append([_provider(d, h.provider_id), _int(h.loads), _num(h.loads_per_hour), _int(h.failed_loads),
                           "—" if h.loading_share is None else f"{_num(100 * h.loading_share)} %",
                           _num(h.gpu_s_lost + h.gpu_s_lost_estimated)])  # fmt: skip
    if not hosts.rows:
        hosts.lines.append("No model loads.")
    pairs = Section(
        "Ping-pong pairs",
        ["Two models of one host that evicted each other back and forth (a reversal within 15 min)."],
        ["Provider", "Model A", "Model B", "A evicted B", "B evicted A", "Back and forth", "GPU lost (s)"],
        text_cols=3,
    )
    for p in t.pairs[:10]:
        pairs.rows.append([_provider(d, p.provider_id), FleetText(p.model_a), FleetText(p.model_b),
                           _int(p.a_evicted_b), _int(p.b_evicted_a), _int(p.reversals), _num(p.gpu_s_lost)])  # fmt: skip
    if not pairs.rows:
        pairs.lines.append("No pair of models evicted each other.")
    return [hosts, pairs]


def _consumer_sections(d: Digest) -> list[Section]:
    """Who used the gateway: requests, tokens, load share and SLO attainment per consumer."""
    if d.consumers is None:
        return []
    ttft, tpot = d.slo
    sec = Section(
        "Gateway consumers",
        [f"Requests through the gateway per consumer (key owner, X-Boo-Source or client). Load share = share of "
         f"the gateway's serving time; SLO met = first byte within {ttft:,.0f} ms and at most {tpot:,.0f} ms per "
         "output token."],
        ["Consumer", "Identified by", "Requests", "Errors", "Tokens", "Load share", "SLO met"],
    )  # fmt: skip
    for r in d.consumers.iter_rows(named=True):
        sec.rows.append([FleetText(r["consumer"]), FleetText(r["source"]), _int(r["requests"]), _int(r["errors"]),
                         _int(r["tokens"]), f"{_num((r['load_share'] or 0) * 100)} %",
                         f"{_num(r['slo_attainment'] * 100)} %"])  # fmt: skip
    if not sec.rows:
        sec.lines.append("No requests through the gateway in this period.")
    return [sec]


def _regressions(evals: pl.DataFrame) -> pl.DataFrame:
    """Runs whose headline score fell against the previous run of the same suite and model, or that fail an
    item the previous run passed."""
    return evals.filter((pl.col("delta") < 0) | (pl.col("items_regressed") > 0))


def _eval_summary(d: Digest) -> dict[str, Any]:
    assert d.evals is not None and d.evals_stale is not None
    keep = ["suite", "provider_id", "model_id", "run_id", "metric", "value", "prev_run_id", "prev_value", "delta",
            "items_regressed"]  # fmt: skip
    return {"new_scores": d.evals.height, "regressions": _regressions(d.evals).select(keep).to_dicts(),
            "stale": d.evals_stale.height}  # fmt: skip


def _eval_sections(d: Digest) -> list[Section]:
    """Weekly: eval scores of the week, regressions against each model's previous run of the suite, stale scores."""
    if d.evals is None or d.evals_stale is None:
        return []
    scores = Section(
        "Eval scores this week",
        ["The headline score of every eval run completed in the period (`boocontrol eval list --scores`), against "
         "the previous run of the same suite and model."],
        ["Suite", "Provider", "Model", "Metric", "Score", "Previous", "Change", "Items regressed"],
        text_cols=4,
    )  # fmt: skip
    for r in d.evals.iter_rows(named=True):
        scores.rows.append([FleetText(r["suite"]), _provider(d, r["provider_id"]), FleetText(r["model_id"]),
                            FleetText(r["metric"] + (" (stale)" if r["stale_reason"] else "")), _num(r["value"], 3),
                            _num(r["prev_value"], 3), "—" if r["delta"] is None else f"{r['delta']:+.3f}",
                            _int(r["items_regressed"])])  # fmt: skip
    if not scores.rows:
        scores.lines.append("No eval run completed in this period (`boocontrol eval run provider/model --suite ifeval "
                            "--yes-take-over`).")  # fmt: skip
    regress = Section("Eval regressions", headers=["Suite", "Provider", "Model", "Metric", "Before", "Now", "Change",
                                                   "Items regressed"], text_cols=4)  # fmt: skip
    for r in _regressions(d.evals).iter_rows(named=True):
        regress.rows.append([FleetText(r["suite"]), _provider(d, r["provider_id"]), FleetText(r["model_id"]),
                             FleetText(r["metric"]), _num(r["prev_value"], 3), _num(r["value"], 3),
                             "—" if r["delta"] is None else f"{r['delta']:+.3f}", _int(r["items_regressed"])])  # fmt: skip
    if not regress.rows:
        regress.lines.append("No regression against the previous run of the same suite and model.")
    stale = Section(
        "Stale eval scores",
        ["Newest scores computed under a model file, server, harness, suite version, sampling or judge that has "
         "changed since; run the suite again to refresh them."],
        ["Suite", "Provider", "Model", "Metric", "Why", "Score"],
        text_cols=5,
    )  # fmt: skip
    for r in d.evals_stale.iter_rows(named=True):
        stale.rows.append([FleetText(r["suite"]), _provider(d, r["provider_id"]), FleetText(r["model_id"]),
                           FleetText(r["metric"]), FleetText(r["stale_reason"]), _num(r["value"], 3)])  # fmt: skip
    if not stale.rows:
        stale.lines.append("No stale eval scores.")
    return [scores, regress, stale]


class FleetText(str):
    """A table cell that came from the fleet (provider and model ids, versions, error messages)."""


_MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:&\"'")


def _md_cell(s: str) -> str:
    """Fleet text is escaped whole (so ``*x*`` or ``[a](b)`` in a model id stays text); our own cells only
    need their ``|`` escaped."""
    if isinstance(s, FleetText):
        return "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in s)
    return s.replace("|", "\\|")


def _markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for s in sections:
        out += [f"## {s.title}", ""]
        for line in s.lines:
            out += [line, ""]
        if s.rows:
            out.append("| " + " | ".join(s.headers) + " |")
            out.append(
                "|" + "|".join("---" if i < s.text_cols else "---:" for i in range(len(s.headers))) + "|"
            )
            out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in s.rows]
            out.append("")
    return "\n".join(out)


_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#c9d6e3;background:#0a0e14}
h1,h2{color:#00e5ff;letter-spacing:.04em}h2{margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #1f2a36;padding:4px 8px}
td:not(:nth-child(-n+2)){text-align:right}th{background:#111821;color:#6b7c8f}
"""  # the cockpit's colours (reports.figures), so the embedded figures sit on their own background

_CDN_SCRIPT = re.compile(r'<script[^>]*src="https://cdn\.plot\.ly/[^"]+"[^>]*></script>')


def _html(title: str, sections: list[Section], figures: dict[str, go.Figure]) -> str:
    esc = htmllib.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    plotlyjs: str | bool = "cdn"
    for s in sections:
        parts.append(f"<h2>{esc(s.title)}</h2>")
        parts += [f"<p>{esc(line)}</p>" for line in s.lines]
        if s.rows:
            parts.append("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in s.headers) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in s.rows]
            parts.append("</table>")
        if s.figure and s.figure in figures:
            parts.append(figures[s.figure].to_html(full_html=False, include_plotlyjs=plotlyjs))
            plotlyjs = False
    parts.append("</body></html>")
    return "\n".join(parts)


def inline_plotlyjs(html: str) -> str:
    """A self-contained copy of a stored report (plotly.js inlined instead of loaded from its CDN)."""
    js = plotly.offline.get_plotlyjs()
    return _CDN_SCRIPT.sub(lambda _: f'<script type="text/javascript">{js}</script>', html, count=1)


@dataclass(frozen=True)
class RenderedReport:
    kind: str
    start: datetime
    end: datetime
    title: str
    markdown: str
    html: str
    figures: dict[str, Any]  # name -> Plotly figure JSON
    summary: dict[str, Any]


def digest_figures_for(d: Digest) -> dict[str, go.Figure]:
    figs: dict[str, go.Figure] = {}
    sim = d.simulated  # a simulated host's bars and lines say "(simulated)" like its table rows
    if d.usage.height:
        figs["tokens_by_model"] = digest_figures.tokens_by_model(d.usage, simulated=sim)
    if d.hourly.height:
        figs["requests_by_hour"] = digest_figures.requests_by_hour(d.hourly, simulated=sim)
    if d.speeds.height:
        figs["speed_change"] = digest_figures.speed_change(d.speeds, simulated=sim)
    return figs


def render_digest(d: Digest) -> RenderedReport:
    summary = summarize(d)
    sections = _sections(d, summary)
    figures = digest_figures_for(d)
    return RenderedReport(
        kind=d.kind,
        start=d.start,
        end=d.end,
        title=d.title,
        markdown=_markdown(d.title, sections),
        html=_html(d.title, sections, figures),
        figures={k: json.loads(f.to_json() or "{}") for k, f in figures.items()},
        summary=json.loads(json.dumps(summary, default=str)),
    )


def store_report(conn: Connection, report: RenderedReport) -> int:
    """Upsert ``report`` into the ``reports`` table; returns its id."""
    return q.upsert_report(
        conn,
        kind=report.kind,
        start=report.start,
        end=report.end,
        title=report.title,
        markdown=report.markdown,
        html=report.html,
        figures=report.figures,
        summary=report.summary,
    )
