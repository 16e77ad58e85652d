"""Where and what a YAML parse error is, for the one-line ``file:line: ...`` errors of the YAML files read."""

from __future__ import annotations

import yaml


def yaml_error_line(exc: yaml.YAMLError) -> int:
    """The 1-based line PyYAML blames (1 when it names none)."""
    mark = getattr(exc, "problem_mark", None)
    return mark.line + 1 if mark is not None else 1


def yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's short description of the problem, else the whole message."""
    return getattr(exc, "problem", None) or str(exc)
