"""Run untrusted (model-generated) code: one interface, two backends.

``BubblewrapSandbox`` runs here and in CI (bwrap as a dedicated uid per job, rlimits, no network,
read-only system dirs, size-capped tmpfs, outside wall-clock kill); ``DockerSandbox`` builds the same
job as a locked-down container through the docker SDK. ``SandboxPool`` runs jobs in parallel, one slot
(= one uid on bubblewrap) per parallel job. See docs/evals-sandbox.md.
"""

from engines.evals.sandbox.bubblewrap import BubblewrapSandbox
from engines.evals.sandbox.docker_backend import DockerSandbox, container_config
from engines.evals.sandbox.model import (
    SandboxBackend,
    SandboxError,
    SandboxJob,
    SandboxLimits,
    SandboxOutcome,
    SandboxUnavailable,
)
from engines.evals.sandbox.pool import SandboxPool

__all__ = [
    "BubblewrapSandbox",
    "DockerSandbox",
    "SandboxBackend",
    "SandboxError",
    "SandboxJob",
    "SandboxLimits",
    "SandboxOutcome",
    "SandboxPool",
    "SandboxUnavailable",
    "container_config",
]
