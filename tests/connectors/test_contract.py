"""One connector contract, run against the REAL llama-swap and against the demo fleet.

The demo fleet must speak llama-swap's API as it really is; this proves it by running the same
assertions against both: activity in Postgres equals the instance's own activity, swaps produce the
same state transitions, ring overflow while away produces the same exact gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from core.providers import Provider
from tests.support.connector import ConnectorThread, chat, query, registry_for, upstream_activity, wait_until
from tests.support.llamaswap import (
    find_llama_swap,
    free_port_block,
    responder_config,
    run_llama_swap,
    simple_responder_path,
)


@dataclass
class Target:
    base_url: str


@contextlib.contextmanager
def real_target(ring: int) -> Iterator[Target]:
    responder = simple_responder_path("newest")
    if responder is None or find_llama_swap("newest") is None:
        pytest.skip("REAL LLAMA-SWAP NOT INSTALLED: the Go module proxy did not deliver it")
    with run_llama_swap(responder_config(responder, start_port=free_port_block(),
                                         extra=f"metricsMaxInMemory: {ring}")) as ls:
        yield Target(ls.base_url)


@contextlib.contextmanager
def demo_target(ring: int) -> Iterator[Target]:
    from demo.fleet import serve_instances
    from demo.instance import GroupSpec, ModelSpec, SimulatedInstance

    models = [ModelSpec("responder-a", group="g", load_s=0.05), ModelSpec("responder-b", group="g", load_s=0.05)]
    sim = SimulatedInstance(models, [GroupSpec("g", swap=True, exclusive=False)], metrics_max_in_memory=ring,
                            perf_every_s=1.0)
    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    fleet = asyncio.run_coroutine_threadsafe(serve_instances([sim]), loop).result(20)
    try:
        yield Target(fleet.base_urls[0])
    finally:
        asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)


TARGETS = {"real": real_target, "demo": demo_target}


def acts(db_url):
    return query(db_url, "SELECT epoch, upstream_id, model_id, status_code, input_tokens, output_tokens FROM activity "
                         "WHERE provider_id='c' ORDER BY epoch, upstream_id")


@pytest.mark.parametrize("kind", ["real", "demo"])
def test_contract_activity_swaps_and_ring_gap(kind, db, db_url, tmp_path):
    with TARGETS[kind](ring=4) as target:
        p = Provider(id="c", label="c", base_url=target.base_url)
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            wait_until(lambda: query(db_url, "SELECT status FROM connector_health") == [("connected",)], what="connected")
            for m in ["responder-a", "responder-b", "responder-a"]:
                assert chat(target.base_url, m).status_code == 200
            wait_until(lambda: len(acts(db_url)) == 3, what="3 rows")
            wait_until(lambda: query(db_url, "SELECT state FROM models WHERE model_id='responder-b'") == [("stopped",)],
                       what="b swapped out")
            up = upstream_activity(target.base_url)
            assert [(r[1], r[2], r[3], r[4], r[5]) for r in acts(db_url)] == [
                (u["id"], u["model"], u["resp_status_code"], u["tokens"]["input_tokens"], u["tokens"]["output_tokens"])
                for u in up]
            trans_b = [r[0] for r in query(db_url, "SELECT to_state FROM model_transitions WHERE model_id='responder-b' "
                                                   "ORDER BY observed_at")]
            assert trans_b[0] == "stopped" and trans_b[-1] == "stopped" and "ready" in trans_b
            wait_until(lambda: query(db_url, "SELECT count(*) > 0 FROM perf_samples") == [(True,)], timeout=15,
                       what="perf samples")
        for _ in range(6):  # ids 4..9; a ring of 4 keeps 6..9
            chat(target.base_url, "responder-a")
        with ConnectorThread(registry_for(p), db_url, tmp_path / "sp"):
            wait_until(lambda: len(acts(db_url)) == 7, what="7 rows")
        assert [r[1] for r in acts(db_url)] == [1, 2, 3, 6, 7, 8, 9]
        assert query(db_url, "SELECT from_id, to_id FROM gaps") == [(4, 5)]
