"""Expected failures of the CLI: one line on stderr naming what to do, exit 2 (like usage errors), never a traceback.

Driven through click's CliRunner (in-process, the real command functions); the settings cache is cleared
before each call so the environment given to the call is the one read.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from core.settings import get_settings

UNREACHABLE = "postgresql://postgres@127.0.0.1:9/x"
UNREACHABLE_LINE = (
    'Error: cannot reach Postgres at postgresql+psycopg://postgres@127.0.0.1:9/x: connection failed: connection '
    'to server at "127.0.0.1", port 9 failed: Connection refused (start it: `boocontrol up` runs the embedded '
    "one; or point BOOCONTROL_DATABASE_URL at yours)\n"
)


def invoke(tmp_path: Path, *args: str, env: dict[str, str | None] | None = None) -> Result:
    get_settings.cache_clear()
    base: dict[str, str | None] = {"BOOCONTROL_DATABASE_URL": None, "BOOCONTROL_FLEET_FILE": None}
    try:
        return CliRunner().invoke(cli, ["--data-dir", str(tmp_path), *args], env={**base, **(env or {})})
    finally:
        get_settings.cache_clear()


def assert_clean_failure(r: Result, code: int, line: str) -> None:
    assert "Traceback" not in r.output and "Traceback" not in r.stderr
    assert isinstance(r.exception, SystemExit), r.exception
    assert (r.exit_code, r.stderr) == (code, line)


@pytest.mark.parametrize("command", [("db", "upgrade"), ("db", "current")])
def test_db_commands_name_the_unreachable_postgres(tmp_path, command):
    r = invoke(tmp_path, *command, env={"BOOCONTROL_DATABASE_URL": UNREACHABLE})
    assert_clean_failure(r, 2, UNREACHABLE_LINE)
    assert r.stdout == ""


@pytest.mark.parametrize(("url", "why"), [
    ("localhost:5432", "not a URL"),
    ("mysql://root@db/boo", "'mysql' is not Postgres"),
    ("postgresql://u:hunter2@db:fivefourthree/boo", "cannot be parsed (is the port a number?)"),
])
@pytest.mark.parametrize("command", [("db", "current"), ("providers", "list"), ("status",)])
def test_a_wrong_database_url_is_one_line_in_every_command(tmp_path, url, why, command):
    r = invoke(tmp_path, *command, env={"BOOCONTROL_DATABASE_URL": url})
    assert_clean_failure(
        r, 2, f"Error: BOOCONTROL_DATABASE_URL: {why}; give a Postgres URL like postgresql://user@host:5432/dbname\n"
    )
    assert "hunter2" not in r.stderr


def test_a_malformed_setting_names_its_variable(tmp_path):
    r = invoke(tmp_path, "providers", "list", env={"BOOCONTROL_CONNECTOR_BATCH_ROWS": "lots"})
    assert_clean_failure(
        r, 2, "Error: BOOCONTROL_CONNECTOR_BATCH_ROWS: Input should be a valid integer, unable to parse string as "
              "an integer\n")


def test_providers_list_on_an_empty_registry_says_so(tmp_path):
    (tmp_path / "fleet.yaml").write_text("")
    r = invoke(tmp_path, "providers", "list")
    assert_clean_failure(r, 2, f"Error: {tmp_path / 'fleet.yaml'}: the registry lists no providers; add one under "
                               "'providers:' (see README, 'The provider registry')\n")
    (tmp_path / "fleet.yaml").write_text("default_provider: null\nproviders: []\n")
    assert invoke(tmp_path, "providers", "list").stderr == r.stderr


def test_providers_list_without_a_registry_file_starts_nothing_and_says_what_to_do(tmp_path):
    r = invoke(tmp_path, "providers", "list")
    assert_clean_failure(r, 2, f"Error: {tmp_path / 'fleet.yaml'}: provider registry file not found (create it as "
                               "in README, 'The provider registry', or set BOOCONTROL_FLEET_FILE)\n")
    assert "Nothing was started" not in r.stderr and "nothing was started" not in r.stderr


def test_connect_with_an_empty_registry_starts_nothing(tmp_path):
    (tmp_path / "fleet.yaml").write_text("providers: []\n")
    r = invoke(tmp_path, "connect")
    assert_clean_failure(r, 2, f"Error: {tmp_path / 'fleet.yaml'}: the registry lists no providers; add one under "
                               "'providers:' (see README, 'The provider registry'); nothing was started\n")


def test_providers_list_warns_about_an_unset_key_variable(tmp_path):
    (tmp_path / "fleet.yaml").write_text(
        "providers:\n"
        "  - id: gpu\n    base_url: http://10.0.0.5:8080\n    api_key_env: GPU_KEY\n"
        "  - id: deepseek\n    kind: openai\n    base_url: https://api.deepseek.com\n    api_key_env: DEEPSEEK_KEY\n"
    )
    r = invoke(tmp_path, "providers", "list", env={"GPU_KEY": "sk-set-1234567890", "DEEPSEEK_KEY": None})
    assert r.exit_code == 0, r.output
    assert r.stdout == ("gpu (default)\tllama-swap\thttp://10.0.0.5:8080\tgpu key from $GPU_KEY\n"
                        "deepseek\topenai\thttps://api.deepseek.com\tdeepseek key from $DEEPSEEK_KEY\n")
    assert r.stderr == ("Warning: provider deepseek: its API key variable DEEPSEEK_KEY is not set; export "
                        "DEEPSEEK_KEY=<key> where the connector runs and restart it (nothing is sent to deepseek "
                        "without its key)\n")
    assert "sk-set" not in r.output


def test_a_usage_error_exits_2(tmp_path):
    r = invoke(tmp_path, "providers", "lst")
    assert r.exit_code == 2 and "No such command 'lst'" in r.stderr and "Traceback" not in r.output
