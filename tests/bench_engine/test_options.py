"""One declaration of the benchmark parameters: ``boocontrol bench run``'s options and the ``bench-sweep``
flow's parameters both come from `BenchOptions`, and the takeover confirmation is checked in one place."""

from __future__ import annotations

import ast
import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from cli.bench import bench, run_cmd
from core.settings import get_settings
from engines.bench.gate import TakeoverRefused, require_takeover_confirmation
from engines.bench.options import CONFIRM_TAKEOVER, RUN_PARAMS, BenchOptions, BenchParam, bench_params
from flows.bench import bench_sweep
from warehouse.queries import bench as q

ROOT = Path(__file__).parents[2]
CLI_ONLY = {"model", "slot_wait", "idle_wait", "as_json"}  # not benchmark parameters: how the CLI waits and prints


def other_value(p: BenchParam) -> Any:
    """A valid value different from the declared default."""
    if p.choices:
        return next(c for c in p.choices if c != p.default)
    if p.kind is bool:
        return not p.default
    if p.name == "levels":
        return (1.0, 3.0)
    if p.kind is int:
        return 7 if p.default is None else p.default + 1
    if p.kind is float:
        return 0.75 if p.default is None else p.default * 2 + 0.5
    return "other"


def cli_args(p: BenchParam, value: Any) -> list[str]:
    if p.kind is bool:
        on, _, off = p.flag.partition("/")
        return [on] if value else [off]
    if p.name == "levels":
        return [p.flag, ",".join(f"{v:g}" for v in reversed(value))]  # "3,1": the CLI parses and sorts
    return [p.flag, str(value)]


def test_every_field_is_declared_once_with_help() -> None:
    params = bench_params()
    assert [p.name for p in params] == [f.name for f in fields(BenchOptions)]
    assert all(p.help for p in params)
    flags = [p.flag for p in (*RUN_PARAMS, *params)]
    assert len(flags) == len(set(flags))
    by_name = {p.name: p for p in params}
    # the spellings the CLI always had
    assert by_name["requests_per_point"].flag == "--requests"
    assert by_name["warmup_requests"].flag == "--warmup"
    assert by_name["early_stop"].flag == "--early-stop/--no-early-stop"
    assert by_name["restore_host"].flag == "--restore-host/--keep-loaded"
    assert CONFIRM_TAKEOVER.flag == "--yes-take-over"


def test_flow_parameters_are_the_declared_parameters() -> None:
    sig = inspect.signature(bench_sweep.fn)
    declared = (*RUN_PARAMS, *bench_params())
    assert list(sig.parameters) == ["model", *(p.name for p in declared)]
    for p in declared:
        assert sig.parameters[p.name].default == p.default, p.name
        assert sig.parameters[p.name].annotation == p.annotation, p.name
    schema = bench_sweep.parameters.model_dump_for_openapi()
    assert schema["required"] == ["model"]
    assert schema["properties"]["prompt_tokens"] == {
        "default": 256, "description": "Synthetic prompt length (mean tokens).", "position": 7,
        "title": "prompt_tokens", "type": "integer",
    }  # fmt: skip
    assert schema["properties"]["mode"]["enum"] == ["concurrency", "rate"]
    assert schema["properties"]["confirm_takeover"]["default"] is False
    assert schema["properties"]["unattended"]["default"] is False


def test_cli_options_are_the_declared_parameters() -> None:
    opts = {p.name: p for p in run_cmd.params}
    declared = (*RUN_PARAMS, *bench_params())
    assert set(opts) - {p.name for p in declared} == CLI_ONLY
    for p in declared:
        o = opts[p.name]
        assert isinstance(o, click.Option)
        assert o.default == p.default, p.name
        assert o.help == p.help, p.name
        assert "/".join(o.opts + o.secondary_opts) == p.flag, p.name


def test_cli_and_flow_turn_the_same_values_into_the_same_options() -> None:
    """Every parameter set to a non-default value through each shell gives one and the same BenchOptions."""
    values = {p.name: other_value(p) for p in bench_params()}
    argv = ["gpu/m", *(a for p in bench_params() for a in cli_args(p, values[p.name])), "--yes-take-over"]
    ctx = run_cmd.make_context("run", argv)
    from_cli = {k: v for k, v in ctx.params.items() if k not in CLI_ONLY}
    assert from_cli.pop("confirm_takeover") is True and from_cli.pop("unattended") is False
    flow_params = bench_sweep.validate_parameters(
        {
            "model": "gpu/m",
            "confirm_takeover": True,
            **{k: list(v) if k == "levels" else v for k, v in values.items()},
        }
    )
    assert flow_params.pop("model") == "gpu/m" and flow_params.pop("confirm_takeover") is True
    assert flow_params.pop("unattended") is False
    cli_options, flow_options = BenchOptions.from_mapping(from_cli), BenchOptions.from_mapping(flow_params)
    assert cli_options == flow_options
    default = BenchOptions()
    same_as_default = [
        f.name for f in fields(BenchOptions) if getattr(cli_options, f.name) == getattr(default, f.name)
    ]
    assert same_as_default == []
    assert cli_options.levels == (1.0, 3.0) and cli_options.restore_host is False


def test_a_bad_level_is_a_usage_error_not_a_traceback() -> None:
    r = CliRunner().invoke(bench, ["run", "gpu/m", "--levels", "1,-2", "--yes-take-over"])
    assert r.exit_code == 2 and "levels must be positive numbers" in r.output and "Traceback" not in r.output


def _confirmation_tests(tree: ast.AST) -> list[tuple[int, str | None]]:
    """(line, enclosing function) of every boolean test that reads a ``confirm*`` name."""
    hits: list[tuple[int, str | None]] = []

    def visit(node: ast.AST, func: str | None) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            func = node.name
        tests: list[ast.AST] = []
        if isinstance(node, ast.If | ast.IfExp | ast.While | ast.Assert):
            tests.append(node.test)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            tests.append(node.operand)
        elif isinstance(node, ast.BoolOp | ast.Compare):
            tests.append(node)
        for t in tests:
            names = {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(t) if isinstance(n, ast.Attribute)}
            if any(n.startswith("confirm") for n in names):
                hits.append((node.lineno, func))  # type: ignore[attr-defined]
        for child in ast.iter_child_nodes(node):
            visit(child, func)

    visit(tree, None)
    return hits


def test_the_takeover_confirmation_is_checked_in_one_place() -> None:
    found = {}
    for package in ("engines", "cli", "flows", "tasks", "actions", "ui", "reports", "pages"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for line, func in _confirmation_tests(ast.parse(path.read_text(encoding="utf-8"))):
                found[f"{path.relative_to(ROOT)}:{line}"] = func
    assert list(found.values()) == ["require_takeover_confirmation"], found
    assert next(iter(found)).startswith("engines/bench/gate.py:")
    # the check itself: only an explicit True passes
    require_takeover_confirmation(True)
    for refused in (False, None, "yes", 1):
        with pytest.raises(TakeoverRefused, match="explicit takeover confirmation"):
            require_takeover_confirmation(refused)  # type: ignore[arg-type]


def test_cli_without_confirmation_is_refused_and_recorded(
    db: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before any host is contacted (the provider's port is closed) and stored as refused."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("providers:\n  - id: lab\n    base_url: http://127.0.0.1:9\n")
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(fleet))
    get_settings.cache_clear()
    try:
        r = CliRunner().invoke(bench, ["run", "lab/m", "--levels", "1", "--requests", "1"])
    finally:
        get_settings.cache_clear()
    assert r.exit_code == 3, r.output
    assert "refused: refusing to benchmark without an explicit takeover confirmation" in r.output
    runs = q.list_runs(db, "lab", "m")
    assert runs["status"].to_list() == ["refused"]
    assert runs["stop_reason"].to_list() == ["no takeover confirmation"]
    assert runs["requested_by"].to_list() == ["cli"]


def test_flow_without_confirmation_is_refused_and_recorded(
    prefect_harness: None, db: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through Prefect's own validation and call path (the synthesized signature), with every option passed."""
    fleet = tmp_path / "fleet.yaml"
    fleet.write_text("providers:\n  - id: lab\n    base_url: http://127.0.0.1:9\n")
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(fleet))
    get_settings.cache_clear()
    try:
        with pytest.raises(TakeoverRefused, match="explicit takeover confirmation"):
            bench_sweep(model="lab/m", levels=[2, 1], requests_per_point=1, label="no-confirm")
    finally:
        get_settings.cache_clear()
    runs = q.list_runs(db, "lab", "m")
    assert runs["status"].to_list() == ["refused"] and runs["label"].to_list() == ["no-confirm"]
    assert runs["requested_by"][0].startswith("prefect:")
