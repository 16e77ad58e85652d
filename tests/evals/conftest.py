"""Fixtures for the sandbox tests: the real bubblewrap backend (root + bwrap, as on every CI machine)."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator

import pytest

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
