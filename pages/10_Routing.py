"""Routing: what each auto:* policy would pick right now, every factor shown, and a tester for one request."""

import streamlit as st

from gateway.ranking import DEFAULT_MAX_TOKENS, Need
from ui import data, routing_data, tables, widgets
from ui.format import md

widgets.page_setup("Routing", "🧭")
st.caption(
    "Advisory scores from what is measured: eval scores, live and benchmark speed, load times, energy, leases. "
    "The gateway also counts its own requests in flight and cooldowns, which are not visible here: this page "
    "ranks as if none."
)

book, error = routing_data.policies()
if error:
    st.error(f"Policy file not loaded: {md(error)} (the policies below are the last good ones)")
now = data.now()

st.subheader("Try a request")
left, mid, right, far = st.columns([2, 1, 1, 1])
names = book.names()
policy_name = left.selectbox("Policy", names, index=names.index("auto:code") if "auto:code" in names else 0,
                             key="routing_policy")  # fmt: skip
tokens = mid.number_input("Prompt tokens", min_value=0, value=30000, step=1000, key="routing_tokens")
max_tokens = right.number_input("Max tokens", min_value=0, value=DEFAULT_MAX_TOKENS, step=64, key="routing_max")
endpoint = far.selectbox("Endpoint", ["chat", "completions", "embeddings"], key="routing_endpoint")
policy = book.get(policy_name) if policy_name else None
if policy is not None:
    tried = routing_data.ranked(policy, Need(endpoint, int(tokens), int(max_tokens)), now)
    if tried.pick is not None:
        st.success(f"{md(policy.name)} would pick **{md(tried.pick.key)}** (score {tried.pick.score:.3f}) for a "
                   f"{int(tokens):,}-token prompt with {int(max_tokens):,} output tokens")  # fmt: skip
    else:
        st.warning(f"{md(policy.name)}: nothing in the fleet may serve a {int(tokens):,}-token prompt right now")
    tables.show(routing_data.candidates_table(tried), routing_data.CANDIDATE_COLS, key="routing_try")
    if tried.skipped:
        tables.show(routing_data.skipped_table(tried), routing_data.SKIPPED_COLS, key="routing_try_skipped")

st.subheader("Every policy right now")
st.caption(f"Ranked for a chat request of 1,000 prompt tokens and {DEFAULT_MAX_TOKENS} output tokens.")
for p in book.policies:
    r = routing_data.ranked(p, Need("chat", 1000, DEFAULT_MAX_TOKENS), now)
    pick = f" → {md(r.pick.key)}" if r.pick is not None else " → nothing"
    with st.expander(f"{md(p.name)}{pick}", expanded=False):
        st.caption(f"{md(p.description)} · {md(p.source)}")
        tables.show(routing_data.candidates_table(r), routing_data.CANDIDATE_COLS, key=f"routing_{p.name}")
        if r.skipped:
            tables.show(routing_data.skipped_table(r), routing_data.SKIPPED_COLS, key=f"routing_{p.name}_skipped")
