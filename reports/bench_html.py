"""A benchmark report as one self-contained HTML file (no network): ``boocontrol bench export --format html``.

Input is `engines.bench.report.export_json`'s document (runs, points with their full summaries, requests), so
the HTML shows exactly what the JSON export holds: per run the host's identity (model file, llama-server build,
llama-swap version, GPUs), the workload definition, the sweep curves (`reports.bench_figures.sweep_curves`),
a table of every point's figures with their 95 % bootstrap intervals (`engines.bench.report.sure_rows`), and
the measured points. plotly.js is inlined once; every string from the fleet or the user is HTML-escaped (and
made safe for Plotly's own markup by `reports.figures.plot_text` inside the figures).
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import plotly.io as pio
import polars as pl

from engines.bench.report import sure_rows
from reports.bench_figures import sweep_curves

CURVES = ("output_throughput", "ttft_p50_ms", "tpot_p50_ms", "e2e_p50_ms")
POINT_COLUMNS = (
    ("level", "level"), ("requests", "requests"), ("completed", "completed"), ("failed", "failed"),
    ("output_throughput", "output tok/s"), ("request_throughput", "req/s"), ("goodput", "goodput req/s"),
    ("ttft_p50_ms", "TTFT p50 ms"), ("tpot_p50_ms", "TPOT p50 ms"), ("e2e_p50_ms", "E2E p50 ms"),
    ("saturated", "saturated"),
)  # fmt: skip

_CSS = """body{font-family:system-ui,sans-serif;background:#0b0f14;color:#d7dee6;margin:2em;max-width:1200px}
h1,h2,h3{color:#e8eef5}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #1f2a36;
padding:4px 8px}th{background:#111821;color:#8797a8}td{text-align:right}td:first-child{text-align:left}
dl{display:grid;grid-template-columns:max-content auto;gap:2px 12px}dt{color:#8797a8}dd{margin:0}
pre{background:#111821;padding:8px;white-space:pre-wrap}.note{color:#8797a8}"""


def _esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return "-" if value is None else ("yes" if value else "no")
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def gpu_names(hardware: object) -> list[str]:
    """GPU names anywhere in a stored ``/api/hardware`` document (dicts with a ``name`` under a key that says gpu)."""
    found: list[str] = []

    def walk(node: object, under_gpu: bool) -> None:
        if isinstance(node, Mapping):
            if under_gpu and isinstance(node.get("name"), str) and node["name"]:
                found.append(node["name"])
            for k, v in node.items():
                walk(v, under_gpu or "gpu" in str(k).lower())
        elif isinstance(node, list):
            for v in node:
                walk(v, under_gpu)

    walk(hardware, False)
    return list(dict.fromkeys(found))


def host_identity(run: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs naming what was measured: model, file, engine builds, GPUs, host kind."""
    props = run.get("server_props") if isinstance(run.get("server_props"), Mapping) else {}
    assert isinstance(props, Mapping)
    model_path = props.get("model_path")
    gpus = gpu_names(run.get("hardware"))
    return [
        ("provider / model", f"{run.get('provider_id')}/{run.get('model_id')}"),
        ("model file", str(model_path).rsplit("/", 1)[-1] if model_path else "-"),
        ("llama-server build", str(props.get("build_info") or "-")),
        ("llama-swap", f"{run.get('llama_swap_version') or '-'} ({run.get('llama_swap_commit') or '-'})"),
        ("GPU", ", ".join(gpus) if gpus else "-"),
        ("host kind", str(run.get("host_kind") or "-")),
        ("simulated host", "yes: speeds and hardware are synthetic" if run.get("simulated") else "no"),
    ]


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(_fmt(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _run_section(entry: Mapping[str, Any]) -> list[str]:
    run = entry["run"]
    points = [p for p in entry.get("points") or [] if p.get("summary") is not None or p.get("level") is not None]
    params = run.get("params") or {}
    title = f"Run #{run.get('id')} · {run.get('provider_id')}/{run.get('model_id')}"
    if run.get("label"):
        title += f" · {run.get('label')}"
    out = [f"<h2>{_esc(title)}</h2>"]
    out.append("<dl>" + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in (
        *host_identity(run),
        ("status", run.get("status")), ("started", run.get("started_at")), ("finished", run.get("finished_at")),
        ("seed", run.get("seed")), ("workload key", run.get("workload_key")),
        ("stop reason", run.get("stop_reason") or "-"),
    )) + "</dl>")  # fmt: skip
    out.append("<h3>Workload</h3>")
    workload = {k: params.get(k) for k in ("mode", "levels", "requests_per_point", "workload", "arrival", "burstiness", "slo")}
    out.append(f"<pre>{_esc(json.dumps(workload, indent=1, default=str))}</pre>")
    out.append("<h3>Points</h3>")
    out.append(_table([h for _, h in POINT_COLUMNS], [[p.get(k) for k, _ in POINT_COLUMNS] for p in points]))
    stored = [(float(p["level"]), p["summary"]) for p in points if p.get("summary")]
    if stored:
        headers, rows, notes = sure_rows(stored)
        out.append("<h3>How sure: 95 % bootstrap intervals</h3>")
        out.append(_table(headers, rows))
        out += [f"<p class='note'>{_esc(n)}</p>" for n in notes]
        cache = [(lv, s.get("ttft_first_ms"), s.get("ttft_rest_p50_ms")) for lv, s in stored]
        if any(f is not None for _, f, _ in cache):
            out.append("<h3>First request vs the rest (prompt cache)</h3>")
            out.append(_table(["level", "TTFT first ms", "TTFT rest p50 ms"], cache))
    return out


def render_html(export: Mapping[str, Any], title: str = "BooControl benchmark report") -> str:
    """The whole report (see the module docstring) from an `export_json` document."""
    runs: list[Mapping[str, Any]] = list(export.get("runs") or [])
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        f"<p class='note'>{len(runs)} run(s). Curves: one line per run, ✕ = saturated point. Intervals: 95 % "
        "bootstrap; * few samples; p99 hidden below 100 requests.</p>",
    ]
    all_points = [p for e in runs for p in (e.get("points") or [])]
    plotlyjs: bool = True
    if all_points:
        frame = pl.DataFrame([{k: v for k, v in p.items() if k != "summary"} for p in all_points],
                             infer_schema_length=None)  # fmt: skip
        parts.append("<h2>Curves</h2>")
        for mode in dict.fromkeys(str(m) for m in frame["mode"].to_list()):
            for metric in CURVES:
                if metric not in frame.columns:
                    continue
                fig = sweep_curves(frame, metric, mode)
                parts.append(pio.to_html(fig, full_html=False, include_plotlyjs=plotlyjs, include_mathjax=False))
                plotlyjs = False
    for entry in runs:
        parts += _run_section(entry)
    parts.append("</body></html>")
    return "\n".join(parts)
