"""Where the running cockpit is: `up`'s state file and the per-user pointer to it.

`boocontrol up` records itself in ``DATA_DIR/run/up.json`` (its pid, the data directory, the database URL,
the registry file it really uses — ``demo-fleet.yaml`` for the demo —, the Prefect API and every service)
and points ``$XDG_STATE_HOME/boocontrol/running.json`` (default ``~/.local/state/…``) at that data
directory. Every other command finds the running cockpit there, so it works from a fresh shell with no
variables: a data directory given explicitly (``--data-dir`` or ``BOOCONTROL_DATA_DIR``) selects that
directory's own `up`; otherwise the pointed-to one is used while its `up` process lives. What the user set
explicitly (``BOOCONTROL_DATABASE_URL``, ``BOOCONTROL_FLEET_FILE``) always wins over what is adopted.

A database URL holding a password is never written to disk: the state records that it was withheld and
the commands say to export ``BOOCONTROL_DATABASE_URL``.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.settings import DEFAULT_DATA_DIR, Settings


@dataclass(frozen=True)
class Instance:
    """A live `boocontrol up`, as read from its state file."""

    pid: int
    data_dir: Path
    database: str  # the URL with any password hidden, for people
    database_url: str | None  # the URL to use; None when it holds a password (not written to disk)
    fleet_file: Path | None
    prefect_api: str | None
    cockpit_url: str | None
    services: list[dict[str, Any]] = field(default_factory=list)


def state_path(data_dir: Path) -> Path:
    return data_dir / "run" / "up.json"


def pointer_path(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = Path(env["XDG_STATE_HOME"]) if env.get("XDG_STATE_HOME") else Path.home() / ".local" / "state"
    return base / "boocontrol" / "running.json"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def read_instance(path: Path) -> Instance | None:
    """The `up` recorded in ``path`` if its process is alive; None when missing, unreadable or stale."""
    try:
        state = json.loads(path.read_text())
        pid = int(state.get("pid", 0))
    except (OSError, ValueError, AttributeError):
        return None
    if not pid_alive(pid):
        return None

    def opt_path(key: str) -> Path | None:
        return Path(state[key]) if state.get(key) else None

    return Instance(pid=pid, data_dir=Path(state.get("data_dir") or path.parent.parent),
                    database=str(state.get("database") or ""), database_url=state.get("database_url") or None,
                    fleet_file=opt_path("fleet_file"), prefect_api=state.get("prefect_api") or None,
                    cockpit_url=state.get("cockpit_url") or None, services=list(state.get("services") or []))


def find_instance(data_dir: Path | None, environ: Mapping[str, str] | None = None) -> Instance | None:
    """The running `up` of ``data_dir`` (given explicitly), else the one the pointer names, else the default
    data directory's."""
    if data_dir is not None:
        return read_instance(state_path(data_dir))
    try:
        pointed = Path(json.loads(pointer_path(environ).read_text())["data_dir"])
    except (OSError, ValueError, KeyError, TypeError):
        pointed = None
    if pointed is not None and (inst := read_instance(state_path(pointed))) is not None:
        return inst
    return read_instance(state_path(DEFAULT_DATA_DIR))


def adopt(settings: Settings, inst: Instance, environ: Mapping[str, str]) -> Settings:
    """``settings`` pointed at the running instance, keeping every value the user set explicitly."""
    update: dict[str, Any] = {}
    if not environ.get("BOOCONTROL_DATA_DIR"):
        update["data_dir"] = inst.data_dir
    if not environ.get("BOOCONTROL_DATABASE_URL") and inst.database_url:
        update["database_url"] = inst.database_url
    if not environ.get("BOOCONTROL_FLEET_FILE") and inst.fleet_file is not None:
        update["fleet_file"] = inst.fleet_file
    return settings.model_copy(update=update) if update else settings


def write_pointer(data_dir: Path, pid: int, environ: Mapping[str, str] | None = None) -> Path:
    path = pointer_path(environ)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{pid}.tmp")
    tmp.write_text(json.dumps({"data_dir": str(data_dir), "pid": pid}))
    os.replace(tmp, path)
    return path


def clear_pointer(data_dir: Path, environ: Mapping[str, str] | None = None) -> None:
    """Remove the pointer if it still names ``data_dir`` (a later `up` elsewhere may have taken it over)."""
    path = pointer_path(environ)
    try:
        if Path(json.loads(path.read_text())["data_dir"]) == data_dir:
            path.unlink()
    except (OSError, ValueError, KeyError, TypeError):
        pass


def state_fields(data_dir: Path, database_url: str, fleet_file: Path, prefect_api: str | None,
                 cockpit_url: str) -> dict[str, object]:
    """What `up` records beside its services (``write_state``'s extra)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    return {"data_dir": str(data_dir), "database": url.render_as_string(hide_password=True),
            "database_url": None if url.password else database_url, "fleet_file": str(fleet_file),
            "prefect_api": prefect_api, "cockpit_url": cockpit_url}


def shell_exports(inst: Instance) -> list[str]:
    """``export`` lines reaching this instance from a shell (not needed by `boocontrol` itself; for other tools)."""
    lines = [f"export BOOCONTROL_DATA_DIR={shlex.quote(str(inst.data_dir))}"]
    if inst.database_url:
        lines.append(f"export BOOCONTROL_DATABASE_URL={shlex.quote(inst.database_url)}")
    else:
        lines.append(f"# export BOOCONTROL_DATABASE_URL=…  ({inst.database} with its password; not written to disk)")
    if inst.fleet_file is not None:
        lines.append(f"export BOOCONTROL_FLEET_FILE={shlex.quote(str(inst.fleet_file))}")
    if inst.prefect_api:
        lines.append(f"export PREFECT_API_URL={shlex.quote(inst.prefect_api)}")
        lines.append(f"export PREFECT_HOME={shlex.quote(str(inst.data_dir / 'prefect'))}")
    return lines
