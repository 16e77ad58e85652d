"""pytest plugin (registered in ``tests/conftest.py``): the ``target_kind`` fixture and the counts that prove
the resilience scenarios ran.

* Header: where each real llama-swap binary came from (or that none was found and how to provide one).
* After collection: how many real-binary tests were collected (and whether they will run or be skipped) and
  how many resilience scenarios will run on the simulator.
* Terminal summary: how many of each actually passed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.support.llamaswap import PINNED, provenance
from tests.support.targets import real_missing_reason, target_params

_REAL = pytest.StashKey[set[str]]()
_SIM = pytest.StashKey[set[str]]()
_PASSED = pytest.StashKey[dict[str, int]]()
_REAL_RES = pytest.StashKey[set[str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "resilience: a connector resilience scenario (restart with/without store, "
                                       "kill -9, Postgres restart, ring overflow, reload)")
    config.addinivalue_line("markers", "simulator: runs against the llama-swap simulator process (demo.single)")
    config.addinivalue_line("markers", "real_llamaswap: needs a real llama-swap binary")
    config.stash[_REAL], config.stash[_SIM], config.stash[_PASSED] = set(), set(), {"real": 0, "sim": 0, "real_res": 0}
    config.stash[_REAL_RES] = set()


def pytest_report_header(config: pytest.Config) -> list[str]:  # noqa: ARG001
    return [f"llama-swap {name} ({rev}): {provenance(name)}" for name, (rev, _) in PINNED.items()]


def pytest_report_collectionfinish(config: pytest.Config, start_path: Path,  # noqa: ARG001
                                   items: Sequence[pytest.Item]) -> list[str]:
    real = {i.nodeid for i in items if i.get_closest_marker("real_llamaswap")}
    sim = {i.nodeid for i in items if i.get_closest_marker("resilience") and i.get_closest_marker("simulator")}
    config.stash[_REAL], config.stash[_SIM] = real, sim
    config.stash[_REAL_RES] = {i.nodeid for i in items if i.nodeid in real and i.get_closest_marker("resilience")}
    missing = real_missing_reason()
    fate = ", all will be SKIPPED: " + missing if missing and real else " to run"
    lines = [f"real llama-swap: {len(real)} real-binary tests collected{fate}; "
             f"simulator: {len(sim)} resilience scenarios collected to run; "
             f"real llama-swap: {len(config.stash[_REAL_RES])} resilience scenarios collected{fate}"]
    if config.get_verbosity() < 0:  # -q drops the header: say where the binaries come from here
        lines = pytest_report_header(config) + lines
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if report.when == "call" and report.passed and not hasattr(report, "wasxfail"):
        counts = item.config.stash[_PASSED]
        if item.nodeid in item.config.stash[_REAL]:
            counts["real"] += 1
        if item.nodeid in item.config.stash[_SIM]:
            counts["sim"] += 1
        if item.nodeid in item.config.stash[_REAL_RES]:
            counts["real_res"] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,  # noqa: ARG001
                            config: pytest.Config) -> None:
    counts = config.stash[_PASSED]
    terminalreporter.write_line(
        f"real llama-swap: {counts['real']} of {len(config.stash[_REAL])} real-binary tests passed; "
        f"simulator: {counts['sim']} of {len(config.stash[_SIM])} resilience scenarios passed; "
        f"real llama-swap: {counts['real_res']} of {len(config.stash[_REAL_RES])} resilience scenarios passed")


@pytest.fixture(params=target_params())
def target_kind(request: pytest.FixtureRequest) -> str:
    """``sim`` or ``real``; ``real`` is skipped with the reason where no real llama-swap is found."""
    kind = str(request.param)
    if kind == "real":
        missing = real_missing_reason()
        if missing:
            pytest.skip(f"{missing} (the sim parametrization of this test still runs)")
    return kind
