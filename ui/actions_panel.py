"""Action controls and the per-host queue view (Streamlit). The logic lives in `actions`."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import streamlit as st

from actions.queue import ACTIONS, InvalidAction, kind_refusal
from ui import data
from ui import format as fmt
from ui.widgets import action_log_table

STUCK_AFTER_S = 30


def outcome_slot(key: str, action: str) -> str:
    """Session key remembering the last action submitted from one control (its status line shows there)."""
    return f"{key}_{action}_last_action"


def submit(provider_id: str, action: str, target: str | None, key: str) -> int | None:
    """Queue an action from the control ``key``; its status line (`action_outcome`) then follows it."""
    try:
        action_id = data.enqueue_action(provider_id, action, target)
    except InvalidAction as exc:
        st.error(str(exc))
        return None
    what = ACTIONS[action].label + (f" {target}" if target else "")
    st.toast(f"Queued #{action_id}: {fmt.md(what)} on {fmt.md(provider_id)}")
    st.session_state[outcome_slot(key, action)] = action_id
    return action_id


def action_outcome(key: str, action: str) -> None:
    """Where the action was clicked: queued → running → done/failed, with its durations and what it waits for.

    Call it inside the control's refreshing fragment: the line moves on with every refresh."""
    action_id = st.session_state.get(outcome_slot(key, action))
    if action_id is None:
        return
    try:
        line = data.action_status(int(action_id))
    except KeyError:  # the audit row is gone (retention)
        st.session_state.pop(outcome_slot(key, action), None)
        return
    if line.done and st.session_state.get(outcome_slot(key, action) + "_seen_done") != line.action_id:
        st.session_state[outcome_slot(key, action) + "_seen_done"] = line.action_id
        data.action_finished()  # what the action changed is read afresh, not from a cache older than its end
    icon = fmt.ACTION_ICONS.get(line.status, "ℹ️")
    text = fmt.md(line.text)
    if line.status == "succeeded":
        st.success(text, icon=icon)
    elif line.done:
        st.error(text, icon=icon)
    else:
        st.info(text, icon=icon)


def provider_refusal(provider_id: str) -> str | None:
    """Why this provider's kind has no actions (its buttons are not offered), or None."""
    try:
        provider = data.registry().get(provider_id)
    except KeyError:
        return None  # not in the registry: the executor refuses with its own message
    return kind_refusal(provider)


def _confirmed(key: str, text: str, target: object = None) -> bool:
    """A confirmation tick that holds for one target only: when the live choices move under it (the picked
    request finished, another one is picked now), the tick is cleared instead of confirming something else."""
    if st.session_state.get(key + "_for") != target:
        st.session_state[key] = False
    st.session_state[key + "_for"] = target
    return bool(st.checkbox(text, key=key))


def actions_panel(
    provider_id: str, models: list[str], loaded: list[str], inflight_ids: list[str], key: str
) -> None:
    """Warm / unload / unload all / cancel for one provider. Destructive ones need a confirmation tick.

    Build it from the same live data as the tables beside it, inside their refreshing fragment: the
    choices follow the fleet, and each control shows the status of the last action it queued."""
    refusal = provider_refusal(provider_id)
    if refusal is not None:
        st.caption(refusal)
        return
    warm_col, unload_col, all_col, cancel_col = st.columns(4)
    with warm_col:
        st.markdown("**Warm**")
        model = st.selectbox("Model to load", models, key=f"{key}_warm_model", disabled=not models)
        if st.button("Warm model", key=f"{key}_warm", disabled=not model, icon="🔥"):
            submit(provider_id, "warm", model, key)
        action_outcome(key, "warm")
    with unload_col:
        st.markdown("**Unload**")
        victim = st.selectbox("Loaded model", loaded, key=f"{key}_unload_model", disabled=not loaded)
        ok = _confirmed(f"{key}_unload_ok", "Cut off its requests", victim)
        if st.button("Unload model", key=f"{key}_unload", disabled=not (victim and ok), icon="⏏️"):
            submit(provider_id, "unload", victim, key)
        action_outcome(key, "unload")
    with all_col:
        st.markdown("**Unload all**")
        ok_all = _confirmed(f"{key}_all_ok", f"Stop every model on {provider_id}")
        if st.button("Unload all", key=f"{key}_all", disabled=not ok_all, icon="🛑"):
            submit(provider_id, "unload_all", None, key)
        action_outcome(key, "unload_all")
    with cancel_col:
        st.markdown("**Cancel request**")
        rid = st.selectbox(
            "In-flight request", inflight_ids, key=f"{key}_cancel_id", disabled=not inflight_ids
        )
        ok_c = _confirmed(f"{key}_cancel_ok", "Abort it", rid)
        if st.button("Cancel request", key=f"{key}_cancel", disabled=not (rid and ok_c), icon="✂️"):
            submit(provider_id, "cancel_inflight", rid, key)
        action_outcome(key, "cancel_inflight")


def queue_view(provider_ids: tuple[str, ...], limit: int = 20) -> None:
    """The per-host queues (what runs, what waits) and the latest audit rows, refreshed in place."""
    summary = data.queue_summary()
    if provider_ids:
        summary = summary.filter(pl.col("provider_id").is_in(list(provider_ids)))
    now = datetime.now(UTC)
    for r in summary.to_dicts():
        waiting = r["oldest_queued_at"]
        line = (
            f"**{fmt.md(r['provider_id'])}** · running: {fmt.md(r['running_action'] or 'nothing')} · "
            f"queued: {r['queued']}"
        )
        if waiting is not None and r["running"] == 0 and (now - waiting).total_seconds() > STUCK_AFTER_S:
            st.warning(
                f"{line} — waiting {fmt.ago(waiting, now)[:-4]}: is the action executor running? "
                "(`boocontrol up` starts it)"
            )
        else:
            st.markdown(line)
    log = data.action_log(provider_ids, limit)
    if log.height == 0:
        st.caption("No actions yet.")
        return
    action_log_table(log)
