"""``demo.single``'s config reading and the file-backed activity store, without processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from demo.activity import ActivityStore
from demo.simulator import GroupSpec, ModelSpec
from demo.single import (
    ConfigError,
    SingleConfig,
    main,
    parse_config,
    parse_duration,
    simple_responder_message,
)

CONFIG = """
healthCheckTimeout: 15
logLevel: debug
startPort: 23100
captureBuffer: 2
metricsMaxInMemory: 3
apiKeys: ["sk-1", "sk-2"]
store:
  path: /tmp/activity.db
performance:
  every: 1m30s
groups:
  pair:
    swap: true
    exclusive: false
    members: [b, a]
models:
  a:
    cmd: simple-responder -port ${PORT} -respond from-a -silent
    proxy: http://127.0.0.1:${PORT}
    ttl: 2
    aliases: [alpha]
  b:
    cmd: simple-responder -port ${PORT}
    name: Bee
    unlisted: true
  c:
    cmd: llama-server --port ${PORT} -m /models/c.gguf
"""


def test_config_subset_is_read_exactly() -> None:
    cfg = parse_config(CONFIG, "cfg.yaml", load_s=0.1)
    assert cfg == SingleConfig(
        models=(ModelSpec("a", group="pair", load_s=0.1, ttl=2, aliases=("alpha",), respond="from-a"),
                ModelSpec("b", name="Bee", group="pair", load_s=0.1, unlisted=True, respond="hi"),
                ModelSpec("c", load_s=0.1)),
        groups=(GroupSpec("pair", swap=True, exclusive=False),),
        start_port=23100, capture_buffer_mb=2.0, perf_every_s=90.0, metrics_max_in_memory=3,
        store_path="/tmp/activity.db", api_keys=("sk-1", "sk-2"))


def test_defaults_are_llama_swaps() -> None:
    cfg = parse_config("models:\n  m:\n    cmd: x\n")
    assert (cfg.start_port, cfg.capture_buffer_mb, cfg.perf_every_s, cfg.metrics_max_in_memory, cfg.store_path,
            cfg.api_keys, cfg.models[0].group) == (5800, 5.0, 5.0, 1000, None, (), "(default)")
    assert parse_config("performance:\n  disabled: true\nmodels: {}\n").perf_every_s == 0.0


@pytest.mark.parametrize(("cmd", "message"), [
    ("/opt/ls/simple-responder -port ${PORT} -respond 'from a' -silent", "from a"),
    ("simple-responder --respond=x", "x"),
    ("simple-responder -port 1", "hi"),
    ("fake-model -listen 127.0.0.1:${PORT}", None),
    (None, None),
])
def test_simple_responder_models_are_recognised_by_their_cmd(cmd: str | None, message: str | None) -> None:
    assert simple_responder_message(cmd) == message


@pytest.mark.parametrize(("text", "seconds"), [("5s", 5.0), ("500ms", 0.5), ("1m30s", 90.0), ("2h", 7200.0), (7, 7.0)])
def test_go_durations(text: object, seconds: float) -> None:
    assert parse_duration(text, "x") == seconds


@pytest.mark.parametrize(("text", "message"), [
    ("models: [a, b]\n", "cfg.yaml: models must be a mapping of model id to settings"),
    ("startPort: high\nmodels: {}\n", "cfg.yaml: startPort must be an integer, got 'high'"),
    ("performance:\n  every: soon\nmodels: {}\n", "cfg.yaml: performance.every: invalid duration 'soon'"),
    ("models: {a: {cmd: x}}\ngroups:\n  g1: {members: [a]}\n  g2: {members: [a]}\n",
     "cfg.yaml: model a is a member of groups g1 and g2"),
    ("models: {\n", "cfg.yaml: invalid YAML: while parsing a flow node"),
])
def test_bad_config_is_one_clear_line(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "cfg.yaml")
    assert str(info.value) == message


def test_cli_refuses_a_bad_config_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "cfg.yaml"
    bad.write_text("models: [a]\n")
    assert main(["-config", str(bad), "-listen", "127.0.0.1:1"]) == 1
    assert capsys.readouterr().err == f"error: {bad}: models must be a mapping of model id to settings\n"
    assert main(["-config", str(tmp_path / "missing.yaml")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.yaml'}: cannot read: No such file or directory\n"


def row(model: str) -> dict[str, object]:
    return {"model": model, "ts": 1_700_000_000}


def test_file_store_continues_ids_and_is_never_pruned(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "activity.db"
    store = ActivityStore(max_rows=2, path=path)
    assert [store.add(row(m)) for m in "abc"] == [1, 2, 3]
    again = ActivityStore(max_rows=2, path=path)
    assert [r["id"] for r in again.rows] == [1, 2, 3]
    assert again.add(row("d")) == 4
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [1, 2, 3, 4]


def test_file_store_drops_a_row_cut_short_by_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "activity.db"
    store = ActivityStore(path=path)
    store.add(row("a"))
    store.add(row("b"))
    with path.open("a") as f:
        f.write('{"id":3,"model":"c","t')  # the process died in the middle of this write
    again = ActivityStore(path=path)
    assert [(r["id"], r["model"]) for r in again.rows] == [(1, "a"), (2, "b")]
    assert again.add(row("c")) == 3
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [1, 2, 3]


def test_memory_store_keeps_the_newest_rows_and_counts_on() -> None:
    store = ActivityStore(max_rows=2)
    assert [store.add(row(m)) for m in "abcd"] == [1, 2, 3, 4]
    assert [r["id"] for r in store.rows] == [3, 4]
