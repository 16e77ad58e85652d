"""Fleet diff and lint on crafted configs: exact findings."""

from __future__ import annotations

from engines.config.diff import fleet_diff, side_by_side
from engines.config.hostcfg import matrix_alternatives, parse_host_config, quantization
from engines.config.lint import Measured, lint

A = """
macros:
  srv: llama-server --port ${PORT} -ngl 99
globalTTL: 600
models:
  qwen:
    cmd: ${srv} -m /m/qwen2.5-7b-instruct-Q4_K_M.gguf -c 8192
  llama:
    cmd: llama-server --port 5801 -m /m/llama-3.1-8b.Q8_0.gguf --ctx-size 16384
    ttl: 5
  solo-a:
    cmd: llama-server --port 9 -m /m/a.gguf
groups:
  pair:
    swap: false
    members: [qwen, llama]
peers:
  b:
    proxy: http://10.0.0.2:8080
    models: [gemma, qwen]
  c:
    proxy: http://10.0.0.3:8080/
    models: [gemma]
"""
B = """
models:
  qwen:
    cmd: llama-server --port 5900 -m /m/qwen2.5-7b-instruct-Q5_K_M.gguf -c 32768
    ttl: 300
  llama:
    cmd: llama-server --port 5901 -m /m/llama-3.1-8b.Q8_0.gguf --ctx-size 16384
    ttl: 5
peers:
  a:
    proxy: http://10.0.0.1:8080
    models: [x]
"""
C = """
models:
  gemma: {cmd: "llama-server --port ${PORT} -hf ggml-org/gemma-3-12b-it-GGUF:Q4_K_M -c 4096"}
  small-1: {cmd: "llama-server -m /m/s1.gguf"}
  small-2: {cmd: "llama-server -m /m/s2.gguf"}
matrix:
  vars: {g: gemma, s1: small-1, s2: small-2}
  sets:
    pairs: "g & (s1 | s2)"
    all: "+pairs & s2"
"""


def hosts():
    return [parse_host_config("a", "http://10.0.0.1:8080", A), parse_host_config("b", "http://10.0.0.2:8080", B),
            parse_host_config("c", "http://10.0.0.3:8080", C)]


def test_parsed_facts():
    a, b, c = hosts()
    q = a.models["qwen"]
    assert q.cmd == "llama-server --port ${PORT} -ngl 99 -m /m/qwen2.5-7b-instruct-Q4_K_M.gguf -c 8192"
    assert (q.ctx_size, q.quantization, q.ttl) == (8192, "Q4_K_M", 600)  # ttl unset: globalTTL
    assert (a.models["llama"].ctx_size, a.models["llama"].quantization, a.models["llama"].ttl) == (16384, "Q8_0", 5)
    assert (c.models["gemma"].ctx_size, c.models["gemma"].quantization) == (4096, "Q4_K_M")
    assert quantization("llama-server -m x.gguf", "llama-3.3-70b-instruct:Q4_K_M") == "Q4_K_M"
    assert matrix_alternatives(c.matrix_sets["all"], c.matrix_sets, c.matrix_vars) == [
        frozenset({"gemma", "small-1", "small-2"}), frozenset({"gemma", "small-2"})]


def test_fleet_diff_exact():
    rows = fleet_diff(hosts())
    got = [(r.model_id, r.field, r.values) for r in rows]
    assert got == [
        ("qwen", "cmd", (("a", "llama-server --port ${PORT} -ngl 99 -m /m/qwen2.5-7b-instruct-Q4_K_M.gguf -c 8192"),
                         ("b", "llama-server --port ${PORT} -m /m/qwen2.5-7b-instruct-Q5_K_M.gguf -c 32768"))),
        ("qwen", "ctx_size", (("a", "8192"), ("b", "32768"))),
        ("qwen", "quantization", (("a", "Q4_K_M"), ("b", "Q5_K_M"))),
        ("qwen", "ttl", (("a", "600"), ("b", "300"))),
    ]  # llama: only its port differs -> no row
    assert [r.field for r in side_by_side(hosts(), "llama")] == ["cmd", "ctx_size", "quantization", "ttl"]
    assert all(r.distinct() == 1 for r in side_by_side(hosts(), "llama"))


def test_lint_exact():
    measured = Measured(
        vram_mb={("a", "qwen"): 6200, ("a", "llama"): 6900, ("c", "gemma"): 9800, ("c", "small-1"): 1500,
                 ("c", "small-2"): 1400},
        host_vram_mb={"a": 12000, "c": 12000},
        load_s={("a", "llama"): 7.5, ("b", "llama"): 4.0, ("b", "qwen"): 20.0},
        requested={"a": frozenset({"qwen"}), "b": frozenset({"qwen", "llama"})},
        watched_days={"a": 45, "b": 45, "c": 3})
    got = [(f.provider_id, f.code, f.severity, f.subject) for f in lint(hosts(), measured)]
    assert got == [
        ("a", "never-requested", "info", "llama"),
        ("a", "never-requested", "info", "solo-a"),
        ("a", "peer-cycle", "error", "a → b → a"),
        ("a", "peer-duplicate-id", "warning", "gemma"),
        ("a", "peer-duplicate-id", "warning", "qwen"),
        ("a", "ttl-below-load", "warning", "llama"),
        ("a", "vram-overcommit", "error", "group pair (swap: false)"),
        ("c", "vram-overcommit", "error", "matrix set all"),
    ]
    by = {(f.provider_id, f.code, f.subject): f.message for f in lint(hosts(), measured)}
    assert by[("a", "vram-overcommit", "group pair (swap: false)")] == (
        "group pair (swap: false) runs llama, qwen together: 13100 MiB measured, the host has 12000 MiB")
    assert by[("a", "peer-duplicate-id", "gemma")].startswith("model gemma is offered by peers b, c")
    assert by[("a", "ttl-below-load", "llama")] == "model llama: ttl 5 s is shorter than its measured load time 7.5 s"
    # c: 'g & s1' = 11300 fits, 'g & s1 & s2' = 12700 does not (reported once per set name)
    assert by[("c", "vram-overcommit", "matrix set all")].endswith("12700 MiB measured, the host has 12000 MiB")


def test_persistent_groups_run_beside_every_set_and_routing_groups_are_read():
    cfg = """
routing:
  router:
    use: group
    groups:
      pair: {swap: false, exclusive: true, members: [a, b]}
      emb: {persistent: true, members: [embed, embed-small]}
models:
  a: {cmd: "llama-server -m a.gguf"}
  b: {cmd: "llama-server -m b.gguf"}
  embed: {cmd: "llama-server -m e.gguf"}
  embed-small: {cmd: "llama-server -m es.gguf"}
"""
    h = parse_host_config("h", "http://h:1", cfg)
    assert [g.group_id for g in h.groups] == ["pair", "emb"]
    measured = Measured(vram_mb={("h", "a"): 5000, ("h", "b"): 5000, ("h", "embed"): 2000, ("h", "embed-small"): 500},
                        host_vram_mb={"h": 11000})
    [f] = lint([h], measured)
    assert (f.code, f.subject) == ("vram-overcommit", "group pair (swap: false) + persistent groups")
    assert f.message == ("group pair (swap: false) + persistent groups runs a, b, embed together: 12000 MiB "
                         "measured, the host has 11000 MiB")
    assert lint([h], Measured(vram_mb=measured.vram_mb, host_vram_mb={"h": 12000})) == []
