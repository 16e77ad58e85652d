"""Benchmarks: speed sweeps per provider/model — curves vs concurrency and rate, baseline drift, Pareto."""

import streamlit as st

from reports import bench_figures as bf
from ui import bench_data, tables, widgets
from ui import format as fmt

widgets.page_setup("Benchmarks", "⏱️")

models = bench_data.models()
if models.is_empty():
    st.info(
        "No benchmark runs yet. Start one from the CLI — `boocontrol bench run provider/model --yes-take-over` — "
        "or trigger the `bench-sweep` deployment by hand in Prefect (set `confirm_takeover`)."
    )
    st.stop()

pairs = [f"{p}/{m}" for p, m in zip(models["provider_id"], models["model_id"], strict=True)]


def _forget_run_choices() -> None:
    """Run choices belong to one provider/model and sweep mode: a new one starts from its own defaults."""
    for k in ("bench_runs", "bench_compare_runs"):
        st.session_state.pop(k, None)


choice = st.selectbox("Provider / model", pairs, key="bench_model", on_change=_forget_run_choices)
provider_id, model_id = choice.split("/", 1)

runs = bench_data.runs(provider_id, model_id)
slower = runs.filter(runs["drift"] == "slower")
if slower.height:
    st.warning(
        f"{slower.height} run(s) slower than the baseline beyond run-to-run noise: "
        f"{fmt.md(slower['drift_detail'][0])}"
    )
tables.show(runs, tables.BENCH_RUNS, key="bench_runs_table")
simulated = runs.filter(runs["simulated"])
if simulated.height:
    st.warning(
        f"{simulated.height} of these runs measured a simulated host (the demo fleet): their speeds, hardware and "
        "energy (J/token) are synthetic, not measurements. They are marked *(simulated)* in every chart and table."
    )

done = runs.filter(runs["points"] > 0)
modes = sorted(set(done["mode"].to_list())) or ["concurrency"]
left, mid, right = st.columns([1, 3, 2])
mode = left.radio("Sweep", modes, key="bench_mode", on_change=_forget_run_choices)
of_mode = done.filter(done["mode"] == mode)
labels = bench_data.run_labels(of_mode)
selected = mid.multiselect("Runs to overlay", list(labels), default=list(labels)[:3], format_func=labels.get,
                           key="bench_runs")  # fmt: skip
metric = right.selectbox("Metric", list(bench_data.METRICS), index=list(bench_data.METRICS).index("tpot_p50_ms"),
                         format_func=bf.metric_label, key="bench_metric")  # fmt: skip
if not selected:
    st.info("Pick one or more runs.")
    st.stop()

points = bench_data.points(tuple(selected))
newest_key = of_mode.filter(of_mode["run_id"] == selected[0])["workload_key"][0]
band = bench_data.band(provider_id, model_id, newest_key, metric, mode)
band_sim = runs.filter(runs["is_baseline"] & runs["simulated"]).height > 0  # a demo host's baseline
widgets.chart(bf.sweep_curves(points, metric, mode, band, band_simulated=band_sim), key="bench_curves")

a, b = st.columns(2)
with a:
    y = st.selectbox("Pareto latency", ["tpot_p50_ms", "ttft_p99_ms", "e2e_p50_ms", "itl_p99_ms"],
                     format_func=bf.metric_label, key="bench_pareto_y")  # fmt: skip
    widgets.chart(bf.pareto(bench_data.pareto_points(tuple(selected), "output_throughput", y), y=y),
                  key="bench_pareto")  # fmt: skip
with b:
    lat = st.selectbox("Per-request latency of the first selected run", ["ttft_ms", "tpot_ms", "e2e_ms"],
                       key="bench_lat")  # fmt: skip
    widgets.chart(bf.latency_distribution(bench_data.requests(selected[0]), lat, labels[selected[0]]),
                  key="bench_requests")  # fmt: skip

with st.expander(f"How sure: 95 % bootstrap intervals of {fmt.md(labels[selected[0]])}", expanded=True):
    sure, sure_notes = bench_data.sure(selected[0])
    st.dataframe(sure, hide_index=True, key="bench_sure")
    st.caption("value [low–high]; * few samples; p99 is hidden below 100 requests. Prefill: the server's own rate "
               "(llama.cpp timings) beside prompt tokens ÷ TTFT, which includes queueing at concurrency > 1. "
               + " ".join(sure_notes))  # fmt: skip

dl_json, dl_csv, dl_html = st.columns(3)
dl_json.download_button("Download the selected runs (JSON: points, intervals, requests, host)",
                        bench_data.export(tuple(selected), "json"), file_name="bench-runs.json",
                        mime="application/json", key="bench_download_json")  # fmt: skip
dl_csv.download_button("Download the selected runs' points (CSV)", bench_data.export(tuple(selected), "csv"),
                       file_name="bench-points.csv", mime="text/csv", key="bench_download_csv")  # fmt: skip
dl_html.download_button("Download a report of the selected runs (HTML: curves, intervals, workload, host)",
                        lambda: bench_data.export(tuple(selected), "html"), file_name="bench-report.html",
                        mime="text/html", key="bench_download_html")  # fmt: skip

st.subheader("Compare across models and hosts")
st.caption("Quantizations of one model, or one model on several GPUs: any provider/model's runs of the same "
           "workload (mode, lengths, requests per point) as the first selected run. The first run picked is the "
           "reference.")  # fmt: skip
candidates = bench_data.comparable_runs(newest_key)
chosen = st.multiselect("Runs to compare", list(candidates), default=[selected[0]] if selected[0] in candidates
                        else [], format_func=candidates.get, key="bench_compare_runs")  # fmt: skip
if len(chosen) < 2:
    st.caption(f"Pick a second run: {max(len(candidates) - 1, 0)} other run(s) of this workload are stored.")
else:
    widgets.chart(
        bf.sweep_curves(bench_data.compare_points(tuple(chosen)), metric, mode), key="bench_compare"
    )
    comparison = bench_data.comparison(tuple(chosen))
    tables.show(comparison, tables.comparison_columns(comparison), key="bench_comparison_table")

with st.expander("Baseline (runs that define the expected speed; repeat runs to measure noise)"):
    run = st.selectbox("Run", list(labels), format_func=labels.get, key="bench_baseline_run")
    in_base = bool(runs.filter(runs["run_id"] == run)["is_baseline"][0])
    if not in_base and st.button("Add to baseline", key="bench_baseline_add"):
        bench_data.add_to_baseline(run)
        st.rerun()
    if in_base and st.button("Remove from baseline", key="bench_baseline_remove"):
        bench_data.remove_from_baseline(provider_id, model_id, run)
        st.rerun()
    shown = bench_data.detail(run) or {}
    if shown.get("simulated"):
        st.caption(f"Run #{run} measured a simulated host (the demo fleet): its speeds, hardware and energy are "
                   "synthetic.")  # fmt: skip
    st.json(shown, expanded=False)
