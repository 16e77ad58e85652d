"""Judge calibration: agreement with human pairwise labels, exact counts; a judge below 80 % non-tie agreement
(or with too few non-tie pairs) is refused; the judge is asked in both orders through a scripted server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, select

from cli.main import cli
from core.providers import Provider
from core.settings import get_settings
from engines.evals import calibration, chat
from engines.evals.judge import PairOutcome
from tests.conftest import truncate_all
from tests.evals.conftest import provider_yaml
from tests.support.scripted_openai import ScriptedServer, run_scripted_server
from warehouse import eval_store
from warehouse.schema_evals import eval_judge_calibrations


def _label(i: int, good: str, winner: str) -> dict[str, object]:
    a, b = ("GOOD", "bad") if good == "a" else ("bad", "GOOD")
    return {"id": f"p{i}", "category": "writing", "turns": [f"question {i}"], "answers_a": [f"{a} {i}"],
            "answers_b": [f"{b} {i}"], "winner": winner}  # fmt: skip


def _labels(tmp_path: Path, people_agree: int, people_disagree: int, ties: int) -> list[calibration.Label]:
    rows = [_label(i, "a" if i % 2 else "b", "a" if i % 2 else "b") for i in range(people_agree)]
    rows += [_label(100 + i, "a", "b") for i in range(people_disagree)]  # people chose the "bad" side
    rows += [_label(200 + i, "b", "tie") for i in range(ties)]
    p = tmp_path / "labels.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return calibration.load_labels(p)


def _block(msg: str, who: str) -> str:
    return msg.split(f"<<assistant {who}>>")[1].split(f"<<end of assistant {who}>>")[0]


def picks_good(msg: str, seed: int) -> str:
    return "A is clearly better. [[A>>B]]" if "GOOD" in _block(msg, "A") else "[[B>A]]"


def always_first(msg: str, seed: int) -> str:
    return "[[A>B]]"  # position bias: flips with the order -> a tie every time


def run(script, labels):  # type: ignore[no-untyped-def]
    with run_scripted_server(script) as srv:
        jm = chat.judge_for(Provider("sc", "sc", srv.base_url, kind="openai"), "judge")

        async def go() -> calibration.CalibrationReport:
            async with httpx.AsyncClient(trust_env=False) as client:
                return await calibration.calibrate(client, jm, labels)

        return asyncio.run(go()), len(srv.state.asked)


def test_judge_agreeing_9_of_11_is_trusted(tmp_path: Path) -> None:
    r, asked = run(picks_good, _labels(tmp_path, 9, 2, 1))
    assert asked == 2 * 12  # both orders of every pair
    assert (r.pairs, r.parsed, r.non_tie, r.agreed, r.inconsistent) == (12, 12, 11, 9, 0)
    assert r.agreement == pytest.approx(9 / 11) and r.agreement_with_ties == pytest.approx(9 / 12)
    assert r.trusted and r.reason == "trusted: 81.8% non-tie agreement on 11 pairs (>= 80%)"
    assert r.judge == "sc/judge@judge-1"


def test_judge_agreeing_8_of_11_is_refused(tmp_path: Path) -> None:
    r, _ = run(picks_good, _labels(tmp_path, 8, 3, 1))
    assert (r.non_tie, r.agreed) == (11, 8) and not r.trusted
    assert r.reason == "not trusted: 72.7% non-tie agreement on 11 pairs (< 80%)"


def test_position_biased_judge_is_all_ties_and_refused(tmp_path: Path) -> None:
    r, _ = run(always_first, _labels(tmp_path, 12, 0, 0))
    assert (r.parsed, r.non_tie, r.inconsistent, r.agreement) == (12, 0, 12, None)
    assert not r.trusted and r.reason == "not trusted: only 0 non-tie pairs (need 10)"


def test_report_exact_and_unparsed_pairs_do_not_count() -> None:
    labs = [calibration.Label(str(i), None, ("q",), ("a",), ("b",), w) for i, w in enumerate("a a b tie".split())]
    outs = [PairOutcome(True, 2, True, 1.0), PairOutcome(True, -1, True, 0.25), PairOutcome(False, None, False, None),
            PairOutcome(True, 0, True, 0.5)]  # fmt: skip
    r = calibration.report("j", labs, outs, min_non_tie=1)
    assert (r.parsed, r.non_tie, r.agreed, r.agreement_with_ties) == (3, 2, 1, pytest.approx(2 / 3))
    assert r.agreement == 0.5 and not r.trusted


@pytest.mark.parametrize(("line", "msg"), [
    ('{"turns": ["q"], "answers_a": ["x"], "answers_b": ["y"], "winner": "c"}', "winner must be one of a, b, tie"),
    ('{"turns": ["q"], "answers_a": ["x"], "answers_b": [], "winner": "a"}', "answers_b must be"),
    ('{"turns": ["q"], "answers_a": ["x", "z"], "answers_b": ["y", "w"], "winner": "a"}', "same number of replies"),
    ("nope", "not JSON"),
])  # fmt: skip
def test_bad_labels_are_one_line_errors(line: str, msg: str) -> None:
    with pytest.raises(ValueError, match=msg):
        calibration.parse_labels(line, "labels.jsonl")


@pytest.fixture()
def fleet(engine: Engine, use_fleet: Callable[..., Path]) -> Iterator[ScriptedServer]:
    truncate_all(engine)
    with run_scripted_server(picks_good) as srv:
        use_fleet(provider_yaml("sc", srv.base_url), default="sc")
        yield srv
        get_settings.cache_clear()


def test_cli_calibrate_judge_stores_and_refuses(fleet: ScriptedServer, engine: Engine, tmp_path: Path) -> None:
    runner = CliRunner()
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    _labels(good, 9, 2, 1)
    _labels(bad, 8, 3, 1)
    ok = runner.invoke(cli, ["eval", "calibrate-judge", "sc/judge", str(good / "labels.jsonl")])
    assert ok.exit_code == 0, ok.output
    assert "trusted: 81.8% non-tie agreement on 11 pairs (>= 80%)" in ok.output
    refused = runner.invoke(cli, ["eval", "calibrate-judge", "sc/judge", str(bad / "labels.jsonl")])
    assert refused.exit_code == 1 and "not trusted: 72.7% non-tie agreement" in refused.output
    broken = tmp_path / "broken.jsonl"
    broken.write_text("{}\n")
    err = runner.invoke(cli, ["eval", "calibrate-judge", "sc/judge", str(broken)])
    assert err.exit_code == 2 and "Traceback" not in err.output and "line 1: turns must be" in err.output
    with engine.connect() as conn:
        latest = eval_store.latest_calibration(conn, "sc", "judge")
        n = len(conn.execute(select(eval_judge_calibrations.c.id)).all())
    assert n == 2 and latest is not None
    assert (latest["trusted"], latest["non_tie"], latest["agreed"], latest["threshold"]) == (False, 11, 8, 0.8)
    assert latest["judge"] == "sc/judge@judge-1" and len(latest["labels_sha256"]) == 64
    note = chat.calibration_note(latest)  # what a chat run judged by sc/judge stores about it
    assert note["trusted"] is False and note["reason"].startswith("not trusted: 72.7%")


def test_flow_calibrates(prefect_harness: None, fleet: ScriptedServer, tmp_path: Path) -> None:
    from flows.evals import judge_calibration

    _labels(tmp_path, 10, 0, 0)
    result = judge_calibration(judge="sc/judge", labels=str(tmp_path / "labels.jsonl"))
    assert result["trusted"] is True and result["agreement"] == 1.0 and result["non_tie"] == 10


def test_calibration_deployment_is_registered_with_the_declared_parameters(prefect_harness: None) -> None:
    """prefect.yaml's judge-calibration/manual: registered by deploy_all (what `boocontrol up` does) with the
    `CalibrationOptions` declaration as its parameters — the same one `eval calibrate-judge` is built from."""
    from prefect.client.orchestration import get_client

    from cli.evals import calibrate_cmd
    from engines.evals.options import calibration_params
    from flows.deploy import deploy_all

    names = deploy_all(Path(__file__).resolve().parents[2] / "prefect.yaml", pool="boocontrol-test")
    assert "judge-calibration/manual" in names

    async def read() -> object:
        async with get_client() as client:
            return await client.read_deployment_by_name("judge-calibration/manual")

    dep = asyncio.run(read())
    declared = calibration_params()
    schema = dep.parameter_openapi_schema  # type: ignore[attr-defined]
    assert list(schema["properties"]) == [p.name for p in declared] == ["judge", "labels", "request_timeout_s"]
    assert schema["required"] == ["judge", "labels"]
    assert {k: v["description"] for k, v in schema["properties"].items()} == {p.name: p.help for p in declared}
    assert schema["properties"]["request_timeout_s"]["default"] == 600.0
    assert {k: v["type"] for k, v in schema["properties"].items()} == {"judge": "string", "labels": "string",
                                                                        "request_timeout_s": "number"}  # fmt: skip
    assert (dep.entrypoint, dep.parameters, dep.schedules, dep.tags) == (  # type: ignore[attr-defined]
        "flows/evals.py:judge_calibration", {}, [], ["eval"])
    assert dep.enforce_parameter_schema  # type: ignore[attr-defined]
    assert [p.name for p in calibrate_cmd.params if p.name != "as_json"] == [p.name for p in declared]
