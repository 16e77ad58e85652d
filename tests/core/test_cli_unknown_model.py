"""`bench run` / `eval run` with a model the provider does not have, or a host that does not answer: one line
naming what is wrong and what the provider has, exit 2, nothing waits on the host, no traceback (it used to
wait a minute at the gate and then print llama-swap's 404 as a 60-line traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine

from cli.main import cli
from core.settings import get_settings
from tests.ui import seed


@pytest.fixture()
def fleet(db: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Engine:
    """Registry: alpha (default, nothing listening) and beta; alpha's stored catalog holds qwen and llama."""
    registry = tmp_path / "fleet.yaml"
    registry.write_text("default_provider: alpha\nproviders:\n  - id: alpha\n    base_url: http://127.0.0.1:9\n"
                        "  - id: beta\n    base_url: http://127.0.0.1:9\n")  # fmt: skip
    with db.begin() as c:
        seed.provider(c, "alpha")
        seed.provider(c, "beta")
        seed.model(c, "alpha", "qwen", state="stopped")
        seed.model(c, "alpha", "llama", state="stopped")
    monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
    monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(registry))
    monkeypatch.setenv("BOOCONTROL_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield db
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, list(args))
    assert "Traceback" not in r.output, r.output
    return r.exit_code, r.output


@pytest.mark.parametrize("command", [["bench", "run"], ["eval", "run", "--suite", "humaneval"]])
def test_a_model_the_provider_does_not_have_is_one_line(fleet: Engine, command: list[str]) -> None:
    code, out = run(*command, "alpha/nope", "--yes-take-over")
    assert code == 2 and out == (
        "Error: alpha/nope: alpha has no model 'nope'; its models: llama, qwen "
        "(see `boocontrol providers list` and the Models page)\n"
    )


def test_an_unknown_provider_is_said_to_be_one(fleet: Engine) -> None:
    code, out = run("bench", "run", "gpu-box/qwen", "--yes-take-over")
    assert code == 2 and out.startswith(
        "Error: gpu-box/qwen: alpha has no model 'gpu-box/qwen' (`gpu-box` is not a provider, so all of it was "
        "taken as a model of the default provider alpha); its models: llama, qwen"
    ), out


def test_a_host_that_does_not_answer_is_one_line(fleet: Engine) -> None:
    code, out = run("bench", "run", "alpha/qwen", "--yes-take-over", "--idle-wait", "1", "--slot-wait", "1")
    lines = [ln for ln in out.splitlines() if ln.startswith("refused:")]
    assert code == 3 and lines == [
        "refused: refusing to benchmark: the host's in-flight requests cannot be read: ConnectError: [Errno 111] "
        "Connect call failed ('127.0.0.1', 9) (attempt #1 recorded; `bench list --all` shows it)"], out


def test_a_host_that_refuses_the_model_is_one_line(fleet: Engine) -> None:
    """The stored catalog lists qwen but the host (a demo simulator with its own models) answers 404 on the warm."""
    import asyncio
    import threading

    from demo.fleet import build_demo_instance, serve_instances

    loop = asyncio.new_event_loop()
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    demo = asyncio.run_coroutine_threadsafe(serve_instances([build_demo_instance(0)]), loop).result(20)
    try:
        registry = get_settings().fleet_path
        registry.write_text(f"default_provider: alpha\nproviders:\n  - id: alpha\n    base_url: {demo.base_urls[0]}\n")
        get_settings.cache_clear()
        code, out = run("bench", "run", "alpha/qwen", "--yes-take-over", "--idle-wait", "5")
    finally:
        asyncio.run_coroutine_threadsafe(demo.stop(), loop).result(20)
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
    lines = [ln for ln in out.splitlines() if ln.startswith("Error:")]
    assert code == 2 and lines == [
        f"Error: alpha/qwen: /upstream/qwen/: HTTP 404: model not found (host {demo.base_urls[0]}); see `boocontrol "
        "bench list --all` for the attempt"], out
