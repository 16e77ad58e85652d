"""Scoring: code extraction, the HumanEval test program, pass@k, and per-suite metrics (plain functions).

pass@k is the unbiased estimator of Chen et al. (2021): with ``n`` samples of a problem of which ``c`` pass,
``pass@k = 1 - C(n-c, k) / C(n, k)`` (1 when ``n - c < k``), averaged over problems. It is defined only for
``k <= n``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from engines.evals.ifeval import CheckResult

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.S)


def extract_code(answer: str) -> str:
    """The code in a chat answer: the first ```python (or untagged) fenced block, else the first fenced block,
    else the whole answer."""
    blocks = _FENCE.findall(answer or "")
    for lang, body in blocks:
        if lang.lower() in ("python", "py", "python3", ""):
            return str(body)
    if blocks:
        return str(blocks[0][1])
    return answer or ""


def humaneval_program(payload: Mapping[str, Any], answer: str) -> str:
    """The file the sandbox runs: the problem's prompt (its imports and the stub), the answer's code (a whole
    function replaces the stub; a bare body completes it), the problem's tests, ``check(entry_point)``."""
    code = extract_code(answer)
    return f"{payload['prompt']}\n{code}\n\n{payload['test']}\n\ncheck({payload['entry_point']})\n"


def pass_at_k(n: int, c: int, k: int) -> float:
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass@k needs 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem (have {n})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def ks_for(n: int) -> list[int]:
    """The k reported for n samples per problem: 1, and 5, 10, 100 where n allows."""
    return [k for k in (1, 5, 10, 100) if k <= n] + ([n] if n not in (1, 5, 10, 100) and n > 1 else [])


def code_metrics(results: Mapping[str, Sequence[bool]], n: int) -> dict[str, float]:
    """``{item: [passed per sample]}`` (every item with ``n`` samples) -> ``{"pass@k": mean over items}``."""
    if not results:
        return {}
    out: dict[str, float] = {}
    for k in ks_for(n):
        vals = [pass_at_k(len(r), sum(r), k) for r in results.values()]
        out[f"pass@{k}"] = sum(vals) / len(vals)
    return out


def instruction_metrics(results: Mapping[str, Sequence[CheckResult]]) -> dict[str, float]:
    """``prompt_strict``: items whose checks all pass; ``instruction_strict``: checks that pass (of all)."""
    if not results:
        return {}
    checks = [c for rs in results.values() for c in rs]
    return {
        "prompt_strict": sum(all(c.passed for c in rs) for rs in results.values()) / len(results),
        "instruction_strict": sum(c.passed for c in checks) / len(checks) if checks else 0.0,
    }
