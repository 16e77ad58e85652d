"""Plotly figures of the Evals page (no Streamlit import), in the cockpit's template (`reports.figures`).

Inputs are the frames of `warehouse.queries.evals` (and plain dicts for the pairwise matrix). Every model id,
item key or category that reaches a title, tick, legend or hover label goes through `plot_text` first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
import polars as pl

from reports.figures import ACCENT, MUTED, PALETTE, TEMPLATE, plot_text

STALE = "#6b7c8f"
FRONT = "#ffb300"


def _empty(title: str, message: str) -> go.Figure:
    fig = go.Figure(layout={"template": TEMPLATE, "title": plot_text(title), "height": 280})
    fig.add_annotation(text=plot_text(message), showarrow=False, font={"color": MUTED, "size": 14}, x=0.5, y=0.5,
                       xref="paper", yref="paper")  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _is_rate(metric: str) -> bool:
    return metric not in ("judge_score", "rating")


def score_axis(metric: str) -> str:
    """The axis title of a headline metric, with its unit."""
    if metric == "judge_score":
        return "judge score (1-10, mean of parsed ratings)"
    if metric == "rating":
        return "Bradley-Terry rating (Elo scale)"
    return f"{metric} (share of items, 0-1)"


def interval_dots(
    labels: Sequence[str],
    values: Sequence[float | None],
    lows: Sequence[float | None],
    highs: Sequence[float | None],
    title: str,
    axis: str,
    stale: Sequence[bool] | None = None,
) -> go.Figure:
    """One row per model (best on top): the value as a dot with its 95 % interval as error bars; stale scores
    greyed and marked in their label."""
    if not labels:
        return _empty(title, "nothing to rank yet")
    stale = list(stale or [False] * len(labels))
    names = [plot_text(lb) + (" (stale)" if st else "") for lb, st in zip(labels, stale, strict=True)]
    x = list(values)
    plus = [(h - v) if h is not None and v is not None else 0.0 for v, h in zip(values, highs, strict=True)]
    minus = [(v - lo) if lo is not None and v is not None else 0.0 for v, lo in zip(values, lows, strict=True)]
    custom = [[_fmt(lo), _fmt(h)] for lo, h in zip(lows, highs, strict=True)]
    fig = go.Figure(
        go.Scatter(
            x=x, y=names, mode="markers", showlegend=False, customdata=custom,
            marker={"size": 11, "color": [STALE if st else ACCENT for st in stale]},
            error_x={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus, "color": MUTED,
                     "thickness": 1.5, "width": 6},
            hovertemplate="%{y}<br>%{x:.3f} (95 % interval %{customdata[0]} – %{customdata[1]})<extra></extra>",
        ),
        layout={"template": TEMPLATE, "title": plot_text(title), "height": max(220, 60 + 34 * len(labels))},
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    fig.update_xaxes(title=axis)
    if axis.endswith("(share of items, 0-1)"):
        fig.update_xaxes(range=[-0.03, 1.03])
    return fig


def _fmt(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def leaderboard(board: pl.DataFrame, suite: str) -> go.Figure:
    """`warehouse.queries.evals.leaderboard` as dots with their bootstrap 95 % intervals."""
    metric = board["metric"][0] if board.height else ""
    return interval_dots(board["label"].to_list(), board["score"].to_list(), board["low"].to_list(),
                         board["high"].to_list(), f"{suite}: {metric}, newest run per model",
                         score_axis(metric), board["stale"].to_list())  # fmt: skip


def category_radar(cats: pl.DataFrame, labels: Mapping[int, str], metric: str) -> go.Figure:
    """One closed trace per run over its item categories (`warehouse.queries.evals.category_scores`)."""
    title = "Score per category"
    if cats.height == 0 or cats["category"].n_unique() < 3:
        return _empty(title, "a radar needs at least three item categories (this suite has fewer)")
    cats_all = sorted(set(cats["category"].to_list()))
    theta = [plot_text(c) for c in cats_all] + [plot_text(cats_all[0])]
    fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 420})
    for i, (rid, part) in enumerate(cats.group_by("run_id", maintain_order=True)):
        run_id = int(rid[0]) if isinstance(rid, tuple) else int(rid)
        by = dict(zip(part["category"].to_list(), part["score"].to_list(), strict=True))
        r = [by.get(c) for c in cats_all]
        name = plot_text(labels.get(run_id, f"#{run_id}"))
        fig.add_trace(go.Scatterpolar(r=r + r[:1], theta=theta, name=name, mode="lines+markers",
                                      line={"color": PALETTE[i % len(PALETTE)]},
                                      hovertemplate=f"{name}<br>%{{theta}}: %{{r:.3f}}<extra></extra>"))  # fmt: skip
    top = 1.0 if _is_rate(metric) else 10.0
    fig.update_layout(polar={"bgcolor": "#111821", "radialaxis": {"range": [0, top], "gridcolor": "#1f2a36"},
                             "angularaxis": {"gridcolor": "#1f2a36"}})  # fmt: skip
    return fig


def win_rate_matrix(models: Sequence[str], rates: Mapping[tuple[str, str], float],
                    counts: Mapping[tuple[str, str], int]) -> go.Figure:  # fmt: skip
    """Row model's mean win share against the column model (both orders judged; a tie is half a win)."""
    title = "Pairwise win rate (row vs column)"
    if len(models) < 2:
        return _empty(title, "no pairwise verdicts stored")
    names = [plot_text(m) for m in models]
    z = [[rates.get((a, b)) for b in models] for a in models]
    text = [[("" if rates.get((a, b)) is None else f"{rates[(a, b)]:.0%} of {counts.get((a, b), 0)}")
             for b in models] for a in models]  # fmt: skip
    fig = go.Figure(
        go.Heatmap(z=z, x=names, y=names, text=text, texttemplate="%{text}", zmin=0, zmax=1,
                   colorscale=[[0, "#ff4081"], [0.5, "#1f2a36"], [1, "#76ff03"]],
                   hovertemplate="%{y} vs %{x}: %{text}<extra></extra>", colorbar={"title": "win share"}),
        layout={"template": TEMPLATE, "title": title, "height": max(300, 120 + 50 * len(models))},
    )  # fmt: skip
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    fig.update_xaxes(type="category", automargin=True)
    return fig


def quality_vs_speed(df: pl.DataFrame, suite: str) -> go.Figure:
    """Headline score against generation tok/s (`warehouse.queries.evals.quality_vs_speed`); the Pareto front
    (no other model both better and faster) highlighted and joined."""
    metric = df["metric"][0] if df.height else ""
    title = f"{suite}: quality vs speed"
    have = df.filter(pl.col("gen_tps").is_not_null() & pl.col("score").is_not_null()) if df.height else df
    if have.height == 0:
        return _empty(title, "no model has both a score and a benchmark run")
    fig = go.Figure(layout={"template": TEMPLATE, "title": plot_text(title), "height": 420})
    for on, name, color in ((False, "dominated", MUTED), (True, "Pareto front", FRONT)):
        part = have.filter(pl.col("pareto") == on)
        if part.height == 0:
            continue
        labels = [plot_text(x) for x in part["label"].to_list()]
        fig.add_trace(go.Scatter(x=part["gen_tps"].to_list(), y=part["score"].to_list(), mode="markers+text",
                                 text=labels, textposition="top center", name=name,
                                 marker={"size": 12 if on else 9, "color": color,
                                         "line": {"width": 2 if on else 0, "color": "#ffffff"}},
                                 hovertemplate="%{text}<br>%{x:,.1f} tok/s, %{y:.3f}<extra></extra>"))  # fmt: skip
    front = have.filter(pl.col("pareto")).sort("gen_tps")
    if front.height > 1:
        fig.add_trace(go.Scatter(x=front["gen_tps"].to_list(), y=front["score"].to_list(), mode="lines",
                                 line={"color": FRONT, "dash": "dash", "width": 1}, hoverinfo="skip",
                                 showlegend=False))  # fmt: skip
    fig.update_xaxes(title="generation speed (tok/s, newest benchmark, lowest concurrency)", rangemode="tozero")
    fig.update_yaxes(title=score_axis(metric), range=[-0.03, 1.1] if _is_rate(metric) else [0, 10.5])
    return fig


def needle_heatmap(cells: pl.DataFrame, title: str) -> go.Figure:
    """Accuracy per depth (rows, 0 = start of the haystack) × context length (columns, prompt tokens); the
    multi-needle cells as their own bottom row."""
    if cells.height == 0:
        return _empty(title, "no needle answers in this run")
    lengths = sorted(set(cells["target_tokens"].to_list()))
    depths = sorted({d for d in cells["depth"].to_list() if d is not None})
    has_multi = cells["depth"].null_count() > 0
    rows = [f"depth {d:g}" for d in depths] + (["several needles"] if has_multi else [])
    cols = [f"{n:,} tok" for n in lengths]
    z: list[list[float | None]] = [[None] * len(lengths) for _ in rows]
    text: list[list[str]] = [[""] * len(lengths) for _ in rows]
    for r in cells.iter_rows(named=True):
        i = depths.index(r["depth"]) if r["depth"] is not None else len(rows) - 1
        j = lengths.index(r["target_tokens"])
        z[i][j] = r["accuracy"]
        text[i][j] = f"{r['found']}/{r['asked']}"
    fig = go.Figure(
        go.Heatmap(z=z, x=cols, y=rows, text=text, texttemplate="%{text}", zmin=0, zmax=1,
                   colorscale=[[0, "#ff4081"], [0.5, "#ffb300"], [1, "#76ff03"]],
                   hovertemplate="%{y}, %{x}: %{z:.0%} (%{text})<extra></extra>", colorbar={"title": "accuracy"}),
        layout={"template": TEMPLATE, "title": plot_text(title), "height": max(280, 120 + 44 * len(rows))},
    )  # fmt: skip
    fig.update_xaxes(title="context length (prompt tokens)", type="category")
    fig.update_yaxes(title="needle depth (0 = start)", type="category", autorange="reversed", automargin=True)
    return fig


def needle_curves(cells: pl.DataFrame, labels: Mapping[int, str]) -> go.Figure:
    """Accuracy vs context length (fraction of the model's window, every cell of a length) per run."""
    title = "Needle accuracy vs context length"
    if cells.height == 0:
        return _empty(title, "no needle runs yet")
    fig = go.Figure(layout={"template": TEMPLATE, "title": title, "height": 340})
    for i, (rid, part) in enumerate(cells.group_by("run_id", maintain_order=True)):
        run_id = int(rid[0]) if isinstance(rid, tuple) else int(rid)
        curve = part.group_by("length_fraction").agg(pl.col("accuracy").mean()).sort("length_fraction")
        name = plot_text(labels.get(run_id, f"#{run_id}"))
        fig.add_trace(go.Scatter(x=curve["length_fraction"].to_list(), y=curve["accuracy"].to_list(),
                                 mode="lines+markers", name=name, line={"color": PALETTE[i % len(PALETTE)]},
                                 hovertemplate=f"{name}<br>%{{x:.3g}} of the window: %{{y:.0%}}<extra></extra>"))  # fmt: skip
    fig.update_xaxes(title="context length (fraction of the model's window)", range=[0, 1.05])
    fig.update_yaxes(title="accuracy (share of codes found)", range=[-0.03, 1.03])
    return fig
