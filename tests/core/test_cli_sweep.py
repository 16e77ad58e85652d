"""Every `boocontrol` command, with bad inputs: a clean `Error: …` line and exit 2, or success — never a traceback.

The commands are walked from the real click tree (a new command is swept without touching this file);
placeholder arguments fill their required arguments. Driven in-process with CliRunner on a temporary data
directory (so no running cockpit is adopted) and a temporary pointer location.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from core.settings import get_settings
from tests.conftest import free_port

UNREACHABLE = "postgresql://postgres@127.0.0.1:9/x"
UNREACHABLE_ERROR = "Error: cannot reach Postgres at postgresql+psycopg://postgres@127.0.0.1:9/x: connection failed"
ONE_PROVIDER = "providers:\n  - id: gpu\n    base_url: http://127.0.0.1:9\n"


def leaf_commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, cmd in sorted(group.commands.items()):
        if isinstance(cmd, click.Group):
            yield from leaf_commands(cmd, (*path, name))
        else:
            yield (*path, name)


def command_of(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    return cmd


def placeholder_args(path: tuple[str, ...]) -> list[str]:
    """Required arguments filled with values that exist nowhere; options that keep a command from running for
    ever (`up`, `demo-fleet`) pointed at free or invalid ports."""
    if path == ("up",):
        return ["--ui-port", str(free_port()), "--prefect-port", str(free_port()), "--demo-count", "1",
                "--demo-base-port", str(free_port())]
    if path == ("demo-fleet",):
        return ["--base-port", "0"]  # rejected before anything runs
    if path == ("prefect",):
        return ["deployment", "ls"]
    if path == ("route", "explain"):
        return ["auto:code", "--tokens", "100"]
    args: list[str] = []
    for p in command_of(path).params:
        if isinstance(p, click.Argument) and (p.required or p.nargs == -1):
            value = "999" if isinstance(p.type, click.types.IntParamType) else "gpu/no-such-model"
            args += [value] * (2 if p.nargs == -1 else 1)
    return args


COMMANDS = list(leaf_commands(cli))


def invoke(tmp_path: Path, path: tuple[str, ...], env: dict[str, str | None]) -> Result:
    get_settings.cache_clear()
    base: dict[str, str | None] = {"BOOCONTROL_DATABASE_URL": None, "BOOCONTROL_FLEET_FILE": None,
                                   "XDG_STATE_HOME": str(tmp_path / "state"), "PREFECT_API_URL": None,
                                   "BOOCONTROL_GATEWAY_PORT": str(free_port())}  # `up` checks it is free
    try:
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path), *path, *placeholder_args(path)],
                                  env={**base, **env})
    finally:
        get_settings.cache_clear()


def assert_clean(r: Result, path: tuple[str, ...]) -> None:
    assert "Traceback" not in r.output and "Traceback" not in r.stderr, (path, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), (path, repr(r.exception))
    assert r.exit_code in (0, 2), (path, r.exit_code, r.output)
    if r.exit_code == 2:
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 or (lines[0].startswith("Usage:") and lines[-1].startswith("Error:")), (path, r.stderr)
        assert lines[-1].startswith("Error: "), (path, r.stderr)


def test_the_sweep_covers_every_command():
    assert {" ".join(p) for p in COMMANDS} >= {
        "up", "status", "env", "prefect", "connect", "db upgrade", "db current", "providers list", "demo-fleet",
        "actions run", "lease list", "lease break", "bench run", "bench list", "bench show", "bench compare",
        "bench drift", "bench baseline add", "bench baseline clear"}


def test_a_malformed_database_url_stops_every_command_in_one_line(tmp_path):
    for path in COMMANDS:
        r = invoke(tmp_path, path, {"BOOCONTROL_DATABASE_URL": "localhost:5432"})
        assert_clean(r, path)
        assert (r.exit_code, r.stderr) == (2, "Error: BOOCONTROL_DATABASE_URL: not a URL; give a Postgres URL like "
                                              "postgresql://user@host:5432/dbname\n"), path


def test_postgres_down_every_command_that_needs_it_says_so_and_exits_2(tmp_path):
    (tmp_path / "fleet.yaml").write_text(ONE_PROVIDER)
    succeeded = []
    for path in COMMANDS:
        if path == ("gateway",):  # serves on purpose while Postgres is away (rows spooled): a test of its own,
            continue  # tests/gateway/test_gateway_replicas.py::test_a_gateway_started_while_postgres_is_down...
        r = invoke(tmp_path, path, {"BOOCONTROL_DATABASE_URL": UNREACHABLE})
        assert_clean(r, path)
        if r.exit_code == 0:
            succeeded.append(" ".join(path))
        elif path not in (("demo-fleet",), ("env",), ("prefect",)):
            assert r.stderr.startswith(UNREACHABLE_ERROR), (path, r.stderr)
    assert succeeded == ["providers list", "route policies", "status"]  # the last two read no database
    assert not (tmp_path / "run" / "up.json").exists() and not (tmp_path / "postgres").exists()  # nothing started


@pytest.mark.parametrize("registry", [None, "", "providers:\n  - id: a\n    base_url: nope\n"],
                         ids=["missing", "empty", "invalid"])
def test_a_missing_empty_or_invalid_registry_is_one_line_wherever_it_is_needed(tmp_path, registry):
    if registry is not None:
        (tmp_path / "fleet.yaml").write_text(registry)
    for path in [("providers", "list"), ("connect",), ("bench", "run"), ("bench", "drift"),
                 ("bench", "baseline", "clear"), ("actions", "run")]:
        r = invoke(tmp_path, path, {"BOOCONTROL_DATABASE_URL": UNREACHABLE})
        assert_clean(r, path)
        assert r.exit_code == 2, path
        if path == ("actions", "run"):  # the executor reads the registry per action; Postgres is checked first
            assert r.stderr.startswith(UNREACHABLE_ERROR)
        elif registry is None:
            assert "provider registry file not found" in r.stderr, (path, r.stderr)
        elif registry == "":
            assert ("lists no providers" in r.stderr or "names no known provider" in r.stderr), (path, r.stderr)
        else:
            assert "'nope' is not an http(s) URL" in r.stderr, (path, r.stderr)


def test_up_with_a_bad_database_starts_nothing(tmp_path):
    (tmp_path / "fleet.yaml").write_text(ONE_PROVIDER)
    r = invoke(tmp_path, ("up",), {"BOOCONTROL_DATABASE_URL": UNREACHABLE})
    assert r.exit_code == 2 and r.stderr.startswith(UNREACHABLE_ERROR)
    assert r.stderr.rstrip().endswith("; nothing was started") and r.stdout == ""
