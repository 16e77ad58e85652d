"""docs/settings.md documents every ``BOOCONTROL_*`` variable, and only those that exist.

* The settings table (between the ``settings:begin``/``settings:end`` markers) is generated from
  `core.settings.Settings` (nested models become ``BOOCONTROL_<FIELD>__<SUBFIELD>``) and must match it
  exactly: names, types, defaults, descriptions. Regenerate it with
  ``.venv/bin/python -m tests.core.test_settings_reference``.
* Every other ``BOOCONTROL_*`` name read anywhere in the code, tests and scripts is in the second
  table, and every name in that table is still read somewhere.
* Every ``BOOCONTROL_*`` name mentioned in the other docs is documented.
"""

from __future__ import annotations

import re
import sys
import typing
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from core.settings import Settings

ROOT = Path(__file__).parents[2]
DOC = ROOT / "docs" / "settings.md"
SELF = Path(__file__).resolve()
BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
PREFIX = "BOOCONTROL_"
# A full name; a match that ends in "_" (``BOOCONTROL_RETENTION__*``, ``startswith("BOOCONTROL_")``) is a
# reference to a family of names, not a variable.
NAME = re.compile(r"BOOCONTROL_[A-Z0-9_]*")
CODE_SUFFIXES = {".py", ".sh", ".toml", ".yaml", ".yml", ".cfg", ".ini", ".service"}
SKIP_DIRS = {".venv", ".git", "node_modules", "data", "__pycache__", "boocontrol.egg-info"}


def _type_name(annotation: object) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if args:
        optional = len(args) < len(typing.get_args(annotation))
        return ", ".join(_type_name(a) for a in args) + (" (optional)" if optional else "")
    return str(annotation).replace("typing.", "")


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None or info.is_required():
        return "(required)" if info.is_required() else "(computed)"
    value = info.default
    if value is None:
        return "unset"
    text = str(value).lower() if isinstance(value, bool) else str(value)
    home = str(Path.home())
    if text.startswith(home):
        text = "~" + text[len(home) :]
    return f"`{text}`"


def settings_rows(model: type[BaseModel] = Settings, prefix: str = PREFIX) -> Iterator[tuple[str, str, str, str]]:
    """(variable, type, default, description) of every leaf of ``model``, nested with ``__``."""
    for name, info in model.model_fields.items():
        env = prefix + name.upper()
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            yield from settings_rows(ann, env + "__")
        else:
            yield env, _type_name(ann), _default(info), info.description or ""


def render_settings_table() -> str:
    lines = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    lines += [f"| `{v}` | {t} | {d} | {m} |" for v, t, d, m in settings_rows()]
    return "\n".join(lines)


def settings_names() -> set[str]:
    return {row[0] for row in settings_rows()}


def _files(suffixes: set[str] | None) -> Iterator[Path]:
    for path in ROOT.rglob("*"):
        rel = path.relative_to(ROOT)
        if any(part in SKIP_DIRS for part in rel.parts) or not path.is_file() or path == SELF:
            continue
        is_code = path.suffix in CODE_SUFFIXES or rel.parts[0] == ".ci"
        if (suffixes is None and is_code) or (suffixes is not None and path.suffix in suffixes):
            yield path


def names_in(paths: typing.Iterable[Path]) -> dict[str, set[str]]:
    """Variable name → the files (relative) that mention it."""
    found: dict[str, set[str]] = {}
    for path in paths:
        for name in NAME.findall(path.read_text(encoding="utf-8", errors="replace")):
            if not name.endswith("_"):
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def documented_block(text: str) -> tuple[str, str]:
    """(the generated settings block, the rest of the document)."""
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return text[start:end].strip(), text[: text.index(BEGIN)] + text[end:]


def test_settings_table_is_generated_from_settings() -> None:
    block, _ = documented_block(DOC.read_text(encoding="utf-8"))
    assert block == render_settings_table(), (
        "docs/settings.md's settings table is out of date with core/settings.py; regenerate it with "
        "`.venv/bin/python -m tests.core.test_settings_reference`"
    )


def test_every_variable_read_in_the_code_is_documented_and_no_other() -> None:
    _, rest = documented_block(DOC.read_text(encoding="utf-8"))
    others_documented = {n for n in NAME.findall(rest) if not n.endswith("_")}
    in_code = names_in(_files(None))
    expected_others = set(in_code) - settings_names()
    missing = {n: sorted(in_code[n]) for n in sorted(expected_others - others_documented)}
    assert not missing, f"BOOCONTROL_* variables read in the code but not in docs/settings.md: {missing}"
    gone = sorted(others_documented - expected_others - settings_names())
    assert not gone, f"documented in docs/settings.md but read nowhere any more: {gone}"


def test_docs_mention_only_documented_variables() -> None:
    documented = {n for n in NAME.findall(DOC.read_text(encoding="utf-8")) if not n.endswith("_")}
    mentioned = names_in(p for p in _files({".md"}) if p != DOC)
    unknown = {n: sorted(files) for n, files in sorted(mentioned.items()) if n not in documented}
    assert not unknown, f"docs mention BOOCONTROL_* variables that docs/settings.md does not document: {unknown}"


def test_the_scan_sees_known_variables() -> None:
    """The checks above are only as good as the scan: it must see names in Python, shell and nested form."""
    in_code = names_in(_files(None))
    assert {"BOOCONTROL_CACHE_DIR", "BOOCONTROL_LLAMA_SWAP_BIN", "BOOCONTROL_DATABASE_URL"} <= set(in_code)
    assert "scripts/install.sh" in in_code["BOOCONTROL_CACHE_DIR"]
    assert "BOOCONTROL_RETENTION__RAW_PERF_HOURS" in settings_names()
    assert "BOOCONTROL_RETENTION" not in settings_names()  # the nested model itself is not a leaf


def _update() -> None:
    text = DOC.read_text(encoding="utf-8")
    head, tail = text.split(BEGIN, 1)
    _, tail = tail.split(END, 1)
    DOC.write_text(f"{head}{BEGIN}\n{render_settings_table()}\n{END}{tail}", encoding="utf-8")
    print(f"updated {DOC.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    _update()
