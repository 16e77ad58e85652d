"""Fixtures for the sandbox tests: the real bubblewrap backend (root + bwrap, as on every CI machine)."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.settings import get_settings
from engines.evals.sandbox import BubblewrapSandbox, SandboxJob, SandboxLimits
from engines.evals.sandbox.bubblewrap import uid_pids

TEST_BASE_UID = 2_100_100_000
"""Away from the default base uid, so a test sweep never touches a real eval running on the same host."""


@pytest.fixture()
def sandbox() -> Iterator[BubblewrapSandbox]:
    sb = BubblewrapSandbox(base_uid=TEST_BASE_UID)
    sb.check()  # on CI this must run: a missing bwrap or a non-root run fails loudly, never skips
    yield sb
    sb.close()


def script_job(code: str, **limits: float) -> SandboxJob:
    """A job running ``python3 main.py`` with ``code`` (dedented) as main.py."""
    return SandboxJob(
        command=("python3", "main.py"),
        files={"main.py": textwrap.dedent(code)},
        limits=SandboxLimits(**limits),  # type: ignore[arg-type]
    )


class UidWatcher:
    """Samples, from the host, the processes of some uids while jobs run: the peak count and their uids."""

    def __init__(self, uids: range) -> None:
        self.uids = uids
        self.peak = 0
        self.seen: set[int] = set()
        self.real_uids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            pids = uid_pids(self.uids)
            self.peak = max(self.peak, len(pids))
            for pid in pids:
                if pid in self.seen:
                    continue
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("Uid:"):
                                self.real_uids.update(int(x) for x in line.split()[1:])
                    self.seen.add(pid)
                except OSError:
                    continue
            self._stop.wait(0.005)

    def __enter__(self) -> UidWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture()
def no_leftovers(sandbox: BubblewrapSandbox) -> Iterator[None]:
    yield
    assert uid_pids(sandbox.uid_range(0)) == [], "a process of the job's uid outlived the job"


def provider_yaml(provider_id: str, base_url: str, kind: str = "openai") -> str:
    """One provider entry of a registry file."""
    return f"  - id: {provider_id}\n    label: {provider_id}\n    base_url: {base_url}\n    kind: {kind}\n"


@pytest.fixture()
def use_fleet(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Point the CLI and the Prefect tasks at the test database and at a registry of the given providers
    (`provider_yaml` entries; ``default`` the default provider): ``use_fleet(provider_yaml("sc", url), default="sc")``."""

    def point(*providers: str, default: str | None = None) -> Path:
        fleet = tmp_path / "fleet.yaml"
        fleet.write_text((f"default_provider: {default}\n" if default else "") + "providers:\n" + "".join(providers))
        monkeypatch.setenv("BOOCONTROL_DATABASE_URL", db_url)
        monkeypatch.setenv("BOOCONTROL_FLEET_FILE", str(fleet))
        monkeypatch.setenv("BOOCONTROL_DATA_DIR", str(tmp_path / "data"))
        get_settings.cache_clear()
        return fleet

    yield point
    get_settings.cache_clear()
