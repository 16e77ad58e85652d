"""``boocontrol bench`` — speed sweeps against a provider/model, stored in Postgres.

boocontrol bench run gpu-box/qwen-7b --levels 1,2,4,8 --requests 32 --yes-take-over
boocontrol bench run gpu-box/qwen-7b --mode rate --levels 0.5,1,2 --arrival poisson --yes-take-over
boocontrol bench list gpu-box/qwen-7b
boocontrol bench show 12
boocontrol bench baseline add 12
boocontrol bench drift gpu-box/qwen-7b
boocontrol bench compare 12 15 17      # other quantizations / hosts, same workload, against run 12
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from core.providers import load_registry
from core.settings import Settings, get_settings
from engines.bench.options import RUN_PARAMS, BenchOptions, BenchParam, bench_params

F = TypeVar("F", bound=Callable[..., Any])
SIMULATED_NOTE = "simulated host (demo fleet): speeds, hardware and energy are synthetic, not measurements"


def _settings() -> Settings:
    """The root command's settings (pointed at the running `boocontrol up`), else the environment's."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return obj if isinstance(obj, Settings) else get_settings()


def _engine() -> Any:
    """An engine on the warehouse, after checking it answers and has the current schema (else one line, exit 2)."""
    from cli.main import require_schema  # here: cli.main imports this module
    from warehouse.db import make_engine

    url = _settings().resolved_database_url()
    require_schema(url)
    return make_engine(url, pool_size=2)


def _resolve(model: str) -> tuple[Any, str]:
    """(provider, model id) of MODEL; a missing registry or an unknown provider/model is a one-line error (exit 2)."""
    from cli.errors import fail

    registry = load_registry(_settings().fleet_path)
    try:
        ref = registry.resolve(model)
        return registry.get(ref.provider_id), ref.model_id
    except KeyError as exc:
        fail(f"{model}: {exc.args[0]} in {registry.source} (see `boocontrol providers list`)")
    except ValueError as exc:
        fail(f"{model}: {exc} in {registry.source} (see `boocontrol providers list`)")


def _require_known_model(engine: Any, provider: Any, model_id: str, asked: str) -> None:
    """A model the provider's stored catalog does not list is a one-line error before anything waits on the host
    (a provider whose catalog the connector has not stored yet is not checked: the host answers for itself)."""
    from cli.errors import fail
    from warehouse.queries.fleet import provider_models

    known = provider_models(engine, provider.id)["model_id"].to_list()
    if not known or model_id in known:
        return
    engine.dispose()
    head, sep, _ = asked.partition("/")
    why = (f" (`{head}` is not a provider, so all of it was taken as a model of the default provider {provider.id})"
           if sep and head != provider.id else "")  # fmt: skip
    more = f" and {len(known) - 10} more" if len(known) > 10 else ""
    fail(f"{asked}: {provider.id} has no model {model_id!r}{why}; its models: {', '.join(known[:10])}{more} "
         "(see `boocontrol providers list` and the Models page)")


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    body = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])


@click.group()
def bench() -> None:
    """Speed benchmarks: TTFT, TPOT, ITL and tokens/s against concurrency or request rate."""


def _click_option(p: BenchParam) -> Callable[[F], F]:
    """One declared benchmark parameter as a click option (same name, default and help as the flow's)."""
    if p.kind is bool:
        return click.option(
            p.flag,
            p.name,
            is_flag=True,
            default=p.default,
            show_default="/" in p.flag,
            help=p.help,
        )
    ctype: click.ParamType[Any] = click.Choice(p.choices) if p.choices else _CLICK_TYPES[p.kind]
    return click.option(
        p.flag, p.name, type=ctype, default=p.default, show_default=p.default is not None, help=p.help
    )


_CLICK_TYPES: dict[type, click.ParamType[Any]] = {int: click.INT, float: click.FLOAT, str: click.STRING}


def bench_options(f: F) -> F:
    """Decorate a command with the takeover confirmation, ``--unattended`` and every `BenchOptions` field, in
    declaration order."""
    for p in reversed((*RUN_PARAMS, *bench_params())):
        f = _click_option(p)(f)
    return f


@bench.command("run")
@click.argument("model")
@bench_options
@click.option(
    "--slot-wait", type=float, default=30.0, show_default=True, help="Seconds to wait for the host lease."
)
@click.option(
    "--idle-wait", type=float, default=60.0, show_default=True,
    help="Seconds to wait (with a countdown) for requests in flight on the host to finish before refusing.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def run_cmd(model: str, confirm_takeover: bool, unattended: bool, slot_wait: float, idle_wait: float,
            as_json: bool, **opts: Any) -> None:
    """Run a sweep against MODEL (``provider/model``) and store it."""
    import httpx

    from connectors.llama_swap_api import LlamaSwapError
    from engines.bench.gate import TakeoverRefused
    from engines.bench.runner import Progress
    from engines.bench.service import HostLeaseLost, build_spec, run_bench
    from engines.bench.unattended import BenchSkipped

    try:
        options = BenchOptions.from_mapping(opts)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    provider, model_id = _resolve(model)
    engine = _engine()
    _require_known_model(engine, provider, model_id, model)
    try:
        spec = build_spec(engine, provider.id, model_id, options)
    except ValueError as exc:
        engine.dispose()
        raise click.UsageError(str(exc)) from exc
    click.echo(
        f"bench {provider.id}/{model_id}: {spec.mode} {', '.join(f'{v:g}' for v in spec.levels)}, "
        f"{spec.requests_per_point} requests per point, {spec.workload.describe()['kind']} workload",
        err=True,
    )
    bar = click.progressbar(length=spec.total_requests, label="gate", file=sys.stderr, show_pos=True)
    notes: list[str] = []

    def progress(p: Progress) -> None:
        if p.phase == "request":
            bar.update(1)
        elif p.phase == "point":
            bar.label = f"{spec.mode}={p.level:g}"
            bar.render_progress()
        elif p.phase == "gate" and p.message.startswith("waiting"):
            bar.label = f"gate: {p.message}"  # the countdown while the host is busy
            bar.render_progress()
        elif p.phase in ("gate", "warm", "warmup", "cleanup"):
            bar.label = p.phase
            bar.render_progress()
        elif p.phase == "point_done" and p.message:
            notes.append(f"{spec.mode}={p.level:g}: saturated ({p.message})")

    try:
        with bar:
            outcome = run_bench(
                engine,
                provider,
                model_id,
                spec,
                confirm_takeover=confirm_takeover,
                progress=progress,
                slot_wait_s=slot_wait,
                requested_by="cli",
                unattended_idle_s=_settings().bench_unattended_idle_seconds if unattended else None,
                idle_wait_s=idle_wait,
            )
            bar.update(spec.total_requests - bar.pos)
    except BenchSkipped as exc:
        click.echo(f"\nskipped: {exc}", err=True)  # an unattended run that may not start is not an error
        return
    except HostLeaseLost as exc:
        click.echo(f"\ncancelled: {exc}; bench requests closed, host restored, run stored as 'cancelled'", err=True)
        sys.exit(1)
    except TakeoverRefused as exc:
        attempt = f" (attempt #{exc.run_id} recorded; `bench list --all` shows it)" if exc.run_id else ""
        click.echo(f"\nrefused: {exc}{attempt}", err=True)
        sys.exit(3)
    except KeyboardInterrupt:
        click.echo("\ncancelled: bench requests closed, host restored, run stored as 'cancelled'", err=True)
        sys.exit(130)
    except (LlamaSwapError, httpx.HTTPError) as exc:  # the host refused or did not answer: one line, no traceback
        from cli.errors import fail

        fail(f"{provider.id}/{model_id}: {exc or type(exc).__name__} (host {provider.base_url}); see `boocontrol "
             "bench list --all` for the attempt")
    finally:
        engine.dispose()
    for n in notes:
        click.echo(n, err=True)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "run_id": outcome.run_id,
                    "run_uid": outcome.run_uid,
                    "simulated": outcome.simulated,
                    "status": outcome.status,
                    "stop_reason": outcome.stop_reason,
                    "points": [{"level": p.level, **p.summary.as_dict()} for p in outcome.points],
                    "cleanup": outcome.cleanup,
                },
                default=str,
            )
        )
        return
    rows = []
    for p in outcome.points:
        s = p.summary
        rows.append(
            [
                f"{p.level:g}",
                f"{s.completed}/{s.requests}",
                _fmt(s.request_throughput, 2),
                _fmt(s.output_throughput),
                _fmt(s.ttft_ms.p50),
                _fmt(s.ttft_ms.p99),
                _fmt(s.tpot_ms.p50, 2),
                _fmt(s.tpot_ms.p99, 2),
                _fmt(s.itl_ms.p99, 2),
                _fmt(s.e2e_ms.p50),
                _fmt(s.goodput, 2),
                "yes" if p.verdict.saturated else "",
            ]
        )
    click.echo(
        _table(
            [
                spec.mode,
                "ok",
                "req/s",
                "out tok/s",
                "TTFT p50",
                "TTFT p99",
                "TPOT p50",
                "TPOT p99",
                "ITL p99",
                "E2E p50",
                "goodput",
                "saturated",
            ],
            rows,
        )  # fmt: skip
    )
    _echo_sure([(p.level, p.summary.as_dict()) for p in outcome.points])
    click.echo(
        f"run #{outcome.run_id if outcome.run_id is not None else outcome.run_uid}: {outcome.status}"
        + (f" ({outcome.stop_reason})" if outcome.stop_reason else "")
        + (f" — {SIMULATED_NOTE}" if outcome.simulated else "")
    )
    for c in outcome.cleanup:
        click.echo(f"  host: {c}")
    if outcome.foreign_requests:
        click.echo(f"  warning: {outcome.foreign_requests} other request(s) hit the host during the run")


@bench.command("list")
@click.argument("model", required=False)
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--all", "show_all", is_flag=True, help="Also list attempts that never ran (refused, skipped).")
def list_cmd(model: str | None, limit: int, show_all: bool) -> None:
    """Recent runs (of MODEL when given), with drift against the baseline; ``sim`` marks a simulated host."""
    import polars as pl

    from engines.bench.report import drift_by_run
    from warehouse.queries import bench as q

    engine = _engine()
    try:
        if model:
            provider, model_id = _resolve(model)
            runs = drift_by_run(engine, provider.id, model_id, limit=limit)
            hidden = 0 if show_all else q.count_attempts(engine, provider.id, model_id)
            if show_all:  # the attempts too, newest first among the runs (no drift: they never ran)
                tried = q.list_runs(engine, provider.id, model_id, limit=limit, include_refused=True)
                tried = tried.filter(pl.col("status").is_in(["refused", "skipped"])).with_columns(
                    pl.lit(None, pl.Utf8).alias("drift"), pl.lit(None, pl.Utf8).alias("drift_detail"))
                runs = pl.concat([runs, tried.select(runs.columns)]).sort(
                    ["started_at", "run_id"], descending=True).head(limit)
        else:
            runs = q.list_runs(engine, limit=limit, include_refused=show_all)
            hidden = 0 if show_all else q.count_attempts(engine)
    finally:
        engine.dispose()
    rows = [
        [
            str(r["run_id"]),
            r["started_at"].strftime("%Y-%m-%d %H:%M") if r["started_at"] else "-",
            f"{r['provider_id']}/{r['model_id']}",
            r["status"],
            r["mode"],
            str(r["points"]),
            r.get("drift") or ("baseline" if r["is_baseline"] else ""),
            "sim" if r["simulated"] else "",
            r["label"] or "",
        ]
        for r in runs.iter_rows(named=True)
    ]
    click.echo(
        _table(["id", "started (UTC)", "model", "status", "mode", "points", "drift", "host", "label"], rows)
    )
    if runs["simulated"].any():
        click.echo(f"sim: {SIMULATED_NOTE}")
    if hidden:
        click.echo(f"{hidden} attempt(s) that never ran (refused, skipped) not listed: "
                   f"`bench list{' ' + model if model else ''} --all`")


def capacity_options(f: F) -> F:
    """Decorate a command with every `CapacityOptions` field (the flow's parameters come from the same)."""
    from engines.bench.options import capacity_params

    for p in reversed(capacity_params()):
        f = _click_option(p)(f)
    return f


@bench.command("capacity")
@click.argument("model")
@bench_options
@capacity_options
def capacity_cmd(model: str, confirm_takeover: bool, unattended: bool, percentile: int, ttft_ms: float | None,
                 tpot_ms: float | None, low: float, high: float, max_points: int, **opts: Any) -> None:
    """Highest concurrency (``--mode concurrency``) or request rate (``--mode rate``) of MODEL at which the chosen
    percentile of TTFT and TPOT meets the targets: a bisection of single-level runs (each stored), interpolated;
    the search itself is stored too (`bench capacity-list`, the Benchmarks page)."""
    import httpx

    from connectors.llama_swap_api import LlamaSwapError
    from engines.bench.gate import TakeoverRefused
    from engines.bench.options import CapacityOptions
    from engines.bench.service import CapacityAborted, build_spec, run_capacity

    try:
        options = BenchOptions.from_mapping({**opts, "levels": None, "early_stop": False})
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    provider, model_id = _resolve(model)
    engine = _engine()
    _require_known_model(engine, provider, model_id, model)
    try:
        copts = CapacityOptions(percentile, ttft_ms, tpot_ms, low, high, max_points)
        targets, bounds = copts.targets(), copts.bounds()
        base = build_spec(engine, provider.id, model_id, options)
    except ValueError as exc:
        engine.dispose()
        raise click.UsageError(str(exc)) from exc
    try:
        out = run_capacity(engine, provider, model_id, base, targets, bounds, confirm_takeover=confirm_takeover,
                           requested_by="cli",
                           on_level=lambda lv: click.echo(f"measuring {base.mode}={lv:g} …", err=True))  # fmt: skip
    except TakeoverRefused as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(3)
    except CapacityAborted as exc:
        from cli.errors import fail

        fail(str(exc))
    except (LlamaSwapError, httpx.HTTPError) as exc:
        from cli.errors import fail

        fail(f"{provider.id}/{model_id}: {exc or type(exc).__name__} (host {provider.base_url})")
    finally:
        engine.dispose()
    cap = out.result
    assert cap is not None
    rows = [
        [f"{p.level:g}", *(_fmt(p.values.get(m), 1) for m in targets.metrics()), _fmt(p.goodput, 2),
         _fmt(p.goodput_ratio, 2), "yes" if p.meets else "no", f"#{out.runs.get(p.level)}"]
        for p in cap.points
    ]  # fmt: skip
    heads = [f"p{targets.percentile} {m.split('_')[0].upper()} ms" for m in targets.metrics()]
    click.echo(_table([base.mode, *heads, "goodput/s", "good %", "meets", "run"], rows))
    click.echo(f"capacity: {cap.describe()}")
    click.echo(f"stored as capacity search #{out.search_id} (Benchmarks page, `bench capacity-list`)")


@bench.command("export")
@click.argument("run_ids", type=int, nargs=-1, required=True)
@click.option("--format", "fmt_", type=click.Choice(["json", "csv", "html"]), default="json", show_default=True,
              help="json: runs, points with their intervals, every request; csv: one row per point; html: one "
                   "self-contained report (curves, intervals, workload, host identity; no network).")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file (default: standard output).")  # fmt: skip
def export_cmd(run_ids: tuple[int, ...], fmt_: str, output: str | None) -> None:
    """Export stored runs (the report leaves the cockpit)."""
    from engines.bench.report import export_csv, export_json

    engine = _engine()
    try:
        if fmt_ == "json":
            text = json.dumps(export_json(engine, run_ids), default=str, indent=1)
        elif fmt_ == "html":
            from reports.bench_html import render_html

            text = render_html(json.loads(json.dumps(export_json(engine, run_ids), default=str)))
        else:
            text = export_csv(engine, run_ids)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        engine.dispose()
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
        click.echo(f"wrote {output} ({len(run_ids)} run(s), {fmt_})", err=True)
    else:
        click.echo(text, nl=not text.endswith("\n"))


@bench.command("show")
@click.argument("run_id", type=int)
def show_cmd(run_id: int) -> None:
    """Points of one run, then every figure with its 95 % bootstrap interval."""
    from warehouse import bench_store
    from warehouse.queries import bench as q

    engine = _engine()
    try:
        detail = q.run_detail(engine, run_id)
        pts = q.run_points(engine, [run_id])
        with engine.connect() as conn:
            summaries = bench_store.point_summaries(conn, run_id)
    finally:
        engine.dispose()
    if detail is None:
        raise click.UsageError(f"no run {run_id}")
    click.echo(
        f"run {run_id} {detail['provider_id']}/{detail['model_id']} {detail['status']} "
        f"llama-swap {detail['llama_swap_version'] or '-'} seed {detail['seed']}"
    )
    if detail.get("simulated"):
        click.echo(f"  SIMULATED: {SIMULATED_NOTE}")
    if detail["stop_reason"]:
        click.echo(f"  stop: {detail['stop_reason']}")
    click.echo(f"  workload: {_describe_workload((detail.get('params') or {}).get('workload'))}")
    if ((detail.get("params") or {}).get("workload") or {}).get("kind") == "shared-prefix":
        for r in summaries:
            s = r["summary"]
            click.echo(f"  prompt cache at {r['level']:g}: TTFT first {_fmt(s.get('ttft_first_ms'))} ms, "
                       f"rest p50 {_fmt(s.get('ttft_rest_p50_ms'))} ms")  # fmt: skip
    rows = [
        [
            f"{r['level']:g}",
            f"{r['completed']}/{r['requests']}",
            _fmt(r["output_throughput"]),
            _fmt(r["ttft_p50_ms"]),
            _fmt(r["ttft_p99_ms"]),
            _fmt(r["tpot_p50_ms"], 2),
            _fmt(r["itl_p99_ms"], 2),
            _fmt(r["e2e_p50_ms"]),
            _fmt(r["j_per_token"], 3),
            "yes" if r["saturated"] else "",
        ]
        for r in pts.iter_rows(named=True)
    ]
    click.echo(
        _table(
            [
                "level",
                "ok",
                "out tok/s",
                "TTFT p50",
                "TTFT p99",
                "TPOT p50",
                "ITL p99",
                "E2E p50",
                "J/tok (sim)" if detail.get("simulated") else "J/tok",
                "sat",
            ],
            rows,
        )
    )
    _echo_sure([(float(r["level"]), r["summary"]) for r in summaries])


def _describe_workload(wl: Any) -> str:
    """One line for a stored workload definition: kind, lengths and the kind's own parameters."""
    if not isinstance(wl, dict):
        return "-"

    def length(d: Any) -> str:
        if not isinstance(d, dict):
            return "-"
        return f"{d.get('mean'):g}" + (f"±{d.get('stdev'):g}" if d.get("stdev") else "")

    parts = [str(wl.get("kind"))]
    if "prompt" in wl:
        parts.append(f"prompt {length(wl['prompt'])} output {length(wl.get('output'))} tokens")
    for key, name in (("prefix_tokens", "shared prefix"), ("turns", "turns"), ("pairs", "stored pairs"),
                      ("text", "text")):  # fmt: skip
        if wl.get(key) is not None:
            parts.append(f"{name} {wl[key]}")
    return ", ".join(parts)


def _echo_sure(points: list[tuple[float, Any]]) -> None:
    """The interval table: every figure with its 95 % bootstrap interval, small samples marked."""
    from engines.bench.report import sure_rows

    if not points:
        return
    headers, rows, notes = sure_rows(points)
    click.echo("how sure (95 % bootstrap intervals):")
    click.echo(_table(headers, rows))
    for n in notes:
        click.echo(f"  {n}")


@bench.group("baseline")
def baseline() -> None:
    """The runs that define a provider/model's expected speed (repeat runs to measure noise)."""


@baseline.command("add")
@click.argument("run_id", type=int)
@click.option("--note", default=None)
def baseline_add(run_id: int, note: str | None) -> None:
    from warehouse import bench_store

    engine = _engine()
    try:
        with engine.begin() as conn:
            provider_id, model_id = bench_store.set_baseline(conn, run_id, note)
    except (LookupError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"run {run_id} is now part of the {provider_id}/{model_id} baseline")


@baseline.command("clear")
@click.argument("model")
@click.option("--run", "run_id", type=int, default=None, help="Remove only this run.")
def baseline_clear(model: str, run_id: int | None) -> None:
    from warehouse import bench_store

    provider, model_id = _resolve(model)
    engine = _engine()
    try:
        with engine.begin() as conn:
            n = bench_store.clear_baseline(conn, provider.id, model_id, run_id)
    finally:
        engine.dispose()
    click.echo(f"removed {n} run(s) from the {provider.id}/{model_id} baseline")


@bench.command("drift")
@click.argument("model")
@click.option("--limit", type=int, default=20, show_default=True)
def drift_cmd(model: str, limit: int) -> None:
    """Exit 1 when the newest comparable run of MODEL is slower than its baseline beyond noise."""
    from engines.bench.report import drift_by_run

    provider, model_id = _resolve(model)
    engine = _engine()
    try:
        runs = drift_by_run(engine, provider.id, model_id, limit=limit)
    finally:
        engine.dispose()
    for r in runs.iter_rows(named=True):
        click.echo(f"{r['run_id']:>6}  {r['status']:<10} {r['drift'] or '':<15} {r['drift_detail'] or ''}")
    newest = next((r for r in runs.iter_rows(named=True) if r["drift"] in ("slower", "ok")), None)
    if newest is not None and newest["drift"] == "slower":
        sys.exit(1)


@bench.command("compare")
@click.argument("run_ids", nargs=-1, type=int, required=True)
@click.option(
    "--metric",
    "metrics",
    multiple=True,
    help="Metric to compare (repeatable; default: output tok/s, TTFT/TPOT/E2E p50, J/token).",
)
def compare_cmd(run_ids: tuple[int, ...], metrics: tuple[str, ...]) -> None:
    """Side by side: runs of other models or hosts (quantizations, GPUs) against the first RUN_ID.

    The runs must have run the same workload (`bench run` with the same options); every level of the
    first run is shown with each run's value and its ratio to the first.
    """
    from engines.bench.report import (
        COMPARE_METRICS,
        NotComparable,
        compare_runs,
        comparison_cells,
        prompt_lengths_of,
    )
    from warehouse import bench_store
    from warehouse.queries import bench as q

    engine = _engine()
    try:
        pts = q.run_points(engine, list(run_ids))
        with engine.connect() as conn:
            lengths = {rid: prompt_lengths_of(bench_store.point_summaries(conn, rid)) for rid in run_ids}
    finally:
        engine.dispose()
    try:
        table = compare_runs(pts, run_ids, metrics or COMPARE_METRICS, prompt_lengths=lengths)
    except NotComparable as exc:
        raise click.ClickException(str(exc)) from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    from reports.bench_figures import metric_label

    who = {r["run_id"]: r for r in table.unique("run_id", keep="first").iter_rows(named=True)}
    for rid in run_ids:
        name, file = who[rid]["subject"].rsplit(" #", 1)[0], who[rid]["model_file"]
        sim = " [SIMULATED host: synthetic numbers]" if who[rid].get("simulated") else ""
        click.echo(f"#{rid}: {name}" + (f" ({file})" if file else "") + sim)
    cells = comparison_cells(table, run_ids)
    for metric in metrics or COMPARE_METRICS:
        if table.filter(table["metric"] == metric)["value"].is_null().all():
            continue
        click.echo(f"\n{metric_label(metric)}")
        rows = [
            [f"{r['mode']}={r['level']:g}", *(r[f"#{i}"] for i in run_ids)]
            for r in cells.filter(cells["metric"] == metric).iter_rows(named=True)
        ]
        click.echo(_table(["point", *(f"#{i}" for i in run_ids)], rows))
