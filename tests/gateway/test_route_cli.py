"""`boocontrol route explain` / `route policies` as a user runs them (a subprocess) on a known fleet."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from tests.gateway.routing_seed import known_fleet

ROOT = Path(__file__).parents[2]


def run_cli(db_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOOCONTROL_DATABASE_URL": db_url}
    env.pop("BOOCONTROL_GATEWAY_POLICIES_FILE", None)
    return subprocess.run([sys.executable, "-m", "cli.main", "--data-dir", str(data_dir), "route", *args],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)


def test_explain_auto_code_for_30k_tokens(db: Engine, db_url: str, tmp_path: Path) -> None:
    known_fleet(db, datetime.now(UTC).replace(microsecond=0))
    r = run_cli(db_url, tmp_path, "explain", "auto:code", "--tokens", "30000", "--max-tokens", "512")
    assert (r.returncode, r.stderr) == (0, "")
    lines = r.stdout.splitlines()
    assert lines[0] == "auto:code: Best HumanEval pass@1; speed breaks near-ties (built-in)"
    assert lines[1].startswith("request: chat, 30,000 prompt + 512 output tokens; facts as of ")
    ranked = [ln for ln in lines if ln[:4].strip().rstrip(".").isdigit()]
    assert ranked == [
        " 1. cloud/gpt-x  score 1.000  quality 1.00  speed 1.00  energy 0.00  expected 13.7 s",
        " 2. gpu/qwen-coder  score 0.635  quality 0.67  speed 0.54  energy 0.00  expected 25.2 s",
    ]
    assert "      residency: always available (no loading)" in lines
    skipped = lines[lines.index("skipped:") + 1:]
    assert [s.split(":")[0].strip() for s in skipped] == [
        "cpu/qwen-coder", "down/qwen-coder", "gpu/llama-8b", "gpu/nomic-embed"]
    assert "  down/qwen-coder: provider down is offline" in skipped
    assert "  gpu/nomic-embed: does not serve chat (serves embeddings)" in skipped


def test_unknown_policy_and_bad_policy_file_are_one_line_errors(db: Engine, db_url: str, tmp_path: Path) -> None:
    r = run_cli(db_url, tmp_path, "explain", "auto:cod", "--tokens", "10")
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == ("Error: unknown policy 'auto:cod' (known: auto:fast, auto:best, auto:code, auto:long, "
                        "auto:efficient; see `boocontrol route policies`)\n")
    (tmp_path / "gateway-policies.yaml").write_text("policies:\n  auto:x:\n    description: x\n    speed: 1\n")
    r = run_cli(db_url, tmp_path, "policies")
    assert r.returncode == 2 and r.stderr.startswith(
        f"Error: {tmp_path / 'gateway-policies.yaml'}:4: policies.auto:x.speed: unknown field")
    assert len(r.stderr.splitlines()) == 1
    (tmp_path / "gateway-policies.yaml").write_text("policies:\n  auto:mine: {description: Mine only}\n")
    r = run_cli(db_url, tmp_path, "policies")
    assert r.returncode == 0
    assert r.stdout.splitlines()[-1] == f"auto:mine\tMine only\t({tmp_path / 'gateway-policies.yaml'})"
