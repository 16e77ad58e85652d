"""Parallel jobs on one backend, each in its own slot (on bubblewrap: its own uid)."""

from __future__ import annotations

import queue
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor

from engines.evals.sandbox.model import SandboxBackend, SandboxJob, SandboxOutcome


class SandboxPool:
    """``run_all(jobs)`` runs up to ``workers`` jobs at once and returns outcomes in the jobs' order.
    A slot is held by one job at a time, so two running jobs never share a uid."""

    def __init__(self, backend: SandboxBackend, workers: int) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.backend = backend
        self.workers = workers
        self._slots: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(workers):
            self._slots.put(slot)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox")

    def _run(self, job: SandboxJob) -> SandboxOutcome:
        slot = self._slots.get()
        try:
            return self.backend.run(job, slot=slot)
        finally:
            self._slots.put(slot)

    def submit(self, job: SandboxJob) -> Future[SandboxOutcome]:
        return self._executor.submit(self._run, job)

    def run_all(self, jobs: Iterable[SandboxJob]) -> list[SandboxOutcome]:
        futures = [self.submit(job) for job in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
