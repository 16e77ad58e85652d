"""Evals: how good each model is — leaderboards with intervals, categories, pairwise ratings, quality vs speed,
the needle grid, every item's answer and verdict, and what regressed between two runs."""

import json

import polars as pl
import streamlit as st

from reports import eval_figures as ef
from ui import eval_data, tables, widgets
from ui import format as fmt

widgets.page_setup("Evals", "🧪")

RUN_HINT = ("`boocontrol eval run provider/model --suite ifeval --yes-take-over` (suites: humaneval, ifeval, chat "
            "with `--judge provider/model`, agentic, utility, needle; on the demo fleet a provider is `demo-01`…)")  # fmt: skip

all_runs = eval_data.runs()
if all_runs.is_empty():
    st.info(f"No eval runs yet. Start one from the CLI — {RUN_HINT} — or the `eval-run/manual` Prefect deployment.")
    st.stop()

if all_runs["simulated"].any():
    st.warning("Some runs asked a simulated host (the demo fleet): their answers come from a simulator, not a "
               "model. They are marked *(simulated)* in every chart and table.")  # fmt: skip

names = eval_data.suites()
if not names:
    st.info(f"No eval run has completed yet ({all_runs.height} stored). Finish or continue one: {RUN_HINT}.")
    st.stop()
suite = st.selectbox("Suite", names, key="evals_suite")
labels = eval_data.run_labels(all_runs)


def run_name(run_id: int) -> str:
    return labels.get(run_id, f"#{run_id}")


board_tab, pair_tab, speed_tab, needle_tab, item_tab, cmp_tab = st.tabs(
    ["Leaderboard", "Pairwise", "Quality vs speed", "Needle", "Items", "Compare runs"]
)

with board_tab:
    board = eval_data.leaderboard(suite)
    widgets.chart(ef.leaderboard(board, suite), key="evals_board")
    tables.show(board, eval_data.LEADERBOARD, key="evals_board_table")
    stale = board.filter(pl.col("stale"))
    if stale.height:
        st.warning(f"{stale.height} score(s) are stale — computed under a model file, server, harness, suite "
                   "version, sampling or judge that is no longer current: "
                   + "; ".join(f"{fmt.md(r['label'])}: {fmt.md(r['stale_reason'])}" for r in stale.iter_rows(named=True))
                   + ". Run the suite again to refresh them.")  # fmt: skip
    if board["suite_version"].n_unique() > 1:
        st.caption("These runs asked different versions of the suite (its items or prompts changed): compare with care.")
    st.caption("Newest completed run per provider/model; the interval is a bootstrap 95 % interval over the run's "
               "items (2 000 resamples).")  # fmt: skip
    run_names = {int(r): lb for r, lb in zip(board["run_id"], board["label"], strict=True)}
    widgets.chart(ef.category_radar(eval_data.categories(tuple(run_names)), run_names,
                                    board["metric"][0] if board.height else ""), key="evals_radar")  # fmt: skip

with pair_tab:
    verdicts = eval_data.pair_verdicts()
    if verdicts.is_empty():
        st.info("No pairwise verdicts yet. Compare two or more completed chat runs of different models: "
                "`boocontrol eval pairwise 4 5 --judge provider/model`.")  # fmt: skip
    else:
        first = eval_data.pairwise_board()
        judge = first.judge
        if len(first.judges) > 1:
            judge = st.selectbox("Judge", first.judges, key="evals_judge") or first.judge
        pw = first if judge == first.judge else eval_data.pairwise_board(judge)
        ratings = eval_data.ratings_frame(pw)
        widgets.chart(ef.interval_dots(ratings["label"].to_list(), ratings["rating"].to_list(),
                                       ratings["low"].to_list(), ratings["high"].to_list(),
                                       f"Bradley-Terry ratings, judge {pw.judge}", ef.score_axis("rating")),
                      key="evals_bt")  # fmt: skip
        tables.show(ratings, eval_data.RATINGS, key="evals_bt_table")
        widgets.chart(ef.win_rate_matrix(pw.models, pw.rates, pw.counts), key="evals_winrate")
        st.caption(f"{len(pw.comparisons)} comparisons, each judged in both orders; {pw.inconsistent} moved with "
                   f"the order (counted as ties), {pw.unparseable} had an unparseable half (not counted), "
                   f"{pw.incomplete} have only one order stored.")  # fmt: skip

with speed_tab:
    qs = eval_data.quality_vs_speed(suite)
    widgets.chart(ef.quality_vs_speed(qs, suite), key="evals_speed")
    tables.show(qs, eval_data.SPEED, key="evals_speed_table")
    missing = qs.filter(pl.col("gen_tps").is_null())["label"].to_list()
    if missing:
        st.caption(f"No benchmark run for {', '.join(fmt.md(m) for m in missing)}: "
                   "`boocontrol bench run provider/model --yes-take-over` measures its speed.")  # fmt: skip

with needle_tab:
    needle_runs = all_runs.filter((pl.col("suite") == "needle") & (pl.col("status") == "completed"))
    if needle_runs.is_empty():
        st.info("No needle-in-a-haystack runs yet: `boocontrol eval run provider/model --suite needle "
                "--yes-take-over` (a llama-server that reports its context window).")  # fmt: skip
    else:
        ids = needle_runs["run_id"].to_list()
        picked = int(st.selectbox("Run", ids, format_func=run_name, key="evals_needle_run") or ids[0])
        widgets.chart(ef.needle_heatmap(eval_data.needle_cells((picked,)), run_name(picked)),
                      key="evals_needle_heatmap")  # fmt: skip
        newest = tuple(eval_data.leaderboard("needle")["run_id"].to_list())
        widgets.chart(ef.needle_curves(eval_data.needle_cells(newest), {r: run_name(r) for r in newest}),
                      key="evals_needle_curves")  # fmt: skip

with item_tab:
    every = all_runs["run_id"].to_list()
    of_suite = all_runs["suite"].to_list().index(suite)  # the newest run of the suite picked above
    run = int(st.selectbox("Run", every, index=of_suite, format_func=run_name, key="evals_item_run") or every[0])
    items = eval_data.run_items(run)
    tables.show(eval_data.verdicts_as_text(items), eval_data.ITEMS, key="evals_items_table")
    if items.is_empty():
        st.caption("This run has no stored answers yet.")
    else:
        answer_names = {int(r["answer_id"]): f"{r['item_key']} · sample {r['sample_idx']}"
                        for r in items.iter_rows(named=True)}  # fmt: skip
        aid = int(st.selectbox("Item", list(answer_names), format_func=lambda i: answer_names[i], key="evals_item")
                  or next(iter(answer_names)))
        a = eval_data.answer(aid)
        if a is None:
            st.warning("That answer no longer exists.")
        else:
            verdict = {True: "passed", False: "failed"}.get(a["passed"], "judged" if a["judgments"] else "not scored")
            score = fmt.DASH if a["score"] is None else f"{a['score']:.3f}"
            st.markdown(f"**{fmt.md(a['item_key'])}** · {fmt.md(a['category'] or fmt.DASH)} · {verdict} · "
                        f"score {fmt.md(score)}")  # fmt: skip
            payload = a["payload"] or {}
            st.caption("Prompt")
            prompt = payload.get("turns") or payload.get("prompt") or ""
            st.code(prompt if isinstance(prompt, str) else "\n\n---\n\n".join(map(str, prompt)), language=None,
                    wrap_lines=True)  # fmt: skip
            st.caption("Answer")
            if a["error"]:
                st.error(f"Request failed: {fmt.md(a['error'])}")
            st.code(a["text"] or "(no answer)", language=None, wrap_lines=True)
            for j in a["judgments"]:
                kind = "pairwise" if j["other_answer_id"] else "rating"
                parsed = f"score {j['score']:g}" if j["parsed"] and j["score"] is not None else "unparseable"
                st.caption(f"Judge {fmt.md(j['judge'])} ({fmt.md(j['prompt_version'])}, {kind}"
                           f"{', swapped' if j['swapped'] else ''}{', self-judged' if j['self_judged'] else ''}): "
                           f"{fmt.md(j['verdict'] or '')} → {parsed}")  # fmt: skip
                st.code(j["raw"] or "(empty)", language=None, wrap_lines=True)
            box = a["sandbox"]
            if box is not None:
                why = f", killed: {fmt.md(box['killed_reason'])}" if box["killed_reason"] else ""
                st.caption(f"Sandbox ({fmt.md(box['backend'])}): exit {box['exit_code']}, signal {box['signal']}"
                           f"{why}, {box['duration_s']:.2f} s")  # fmt: skip
                st.code(box["stdout"] or "(no stdout)", language=None, wrap_lines=True)
                st.code(box["stderr"] or "(no stderr)", language=None, wrap_lines=True)
            if a["detail"]:
                with st.expander("Verdict detail"):
                    st.code(json.dumps(a["detail"], indent=2, ensure_ascii=False), language="json")

with cmp_tab:
    mine = all_runs.filter(pl.col("suite") == suite)
    ids = mine["run_id"].to_list()  # newest first
    models = dict(zip(ids, mine["label"].to_list(), strict=True))
    if len(ids) < 2:
        st.info(f"Comparing needs two runs of {fmt.md(suite)}; {len(ids)} is stored. Run it again (after changing "
                f"the model file, or on another model): {RUN_HINT}.")  # fmt: skip
    else:
        # by default the newest run that has an earlier run of the same model, against that earlier run
        repeat = next((i for i, r in enumerate(ids) if any(models[o] == models[r] for o in ids[i + 1:])), 0)
        left, right = st.columns(2)
        b = int(right.selectbox("Run B (newer)", ids, index=repeat, format_func=run_name, key="evals_cmp_b") or ids[0])
        others = [r for r in ids if r != b]
        others = [r for r in others if models[r] == models[b]] + [r for r in others if models[r] != models[b]]
        a_run = int(left.selectbox("Run A (before)", others, format_func=run_name, key="evals_cmp_a") or others[0])
        cmp = eval_data.compare(a_run, b)
        counts = cmp.group_by("change").len()
        n = dict(zip(counts["change"].to_list(), counts["len"].to_list(), strict=True))
        cols = st.columns(4)
        cols[0].metric("Regressed", fmt.count(n.get("regressed", 0)), help="passed in A, failed in B")
        cols[1].metric("Fixed", fmt.count(n.get("fixed", 0)), help="failed in A, passed in B")
        cols[2].metric("Score lower / higher", f"{n.get('lower score', 0)} / {n.get('higher score', 0)}")
        cols[3].metric("Same", fmt.count(n.get("same", 0)))
        tables.show(eval_data.verdicts_as_text(cmp), eval_data.COMPARE, key="evals_cmp_table")
