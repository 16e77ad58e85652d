"""The docker backend: the same job as a locked-down container through the docker SDK.

No network, read-only root, every capability dropped, no-new-privileges, a non-root user, pid and
memory limits, rlimits for CPU, file size and open files, size-capped tmpfs /tmp and /job, a capped
log. The job's files travel in the container's environment as a base64 tar that a ``sh`` prelude
unpacks into /job (the root is read-only and /job is a tmpfs, so ``put_archive`` cannot place them);
the image therefore needs ``sh``, ``base64`` and ``tar`` (any Debian/Alpine-based python image has them).
A container still running at the wall-clock deadline is killed; the named container is always removed.
"""

from __future__ import annotations

import base64
import io
import signal
import tarfile
import time
import uuid
from typing import Any, Protocol

from engines.evals.sandbox.model import (
    JOB_DIR,
    CappedBuffer,
    SandboxError,
    SandboxJob,
    SandboxOutcome,
    SandboxUnavailable,
    killed_reason,
    split_status,
)

DEFAULT_IMAGE = "python:3.11-slim"
CONTAINER_USER = "65534:65534"
BUNDLE_ENV = "BOOCONTROL_SANDBOX_BUNDLE"
MAX_BUNDLE_BYTES = 120 * 1024
"""One environment string is at most 128 KiB on Linux (MAX_ARG_STRLEN); the encoded bundle stays below."""
NAME_PREFIX = "boocontrol-sandbox-"

_PRELUDE = (
    f'printf %s "${BUNDLE_ENV}" | base64 -d | tar -xzf - -C {JOB_DIR} && unset {BUNDLE_ENV} && exec "$@"'
)


class ContainerLike(Protocol):
    name: str
    attrs: dict[str, Any]

    def start(self) -> None: ...
    def wait(self, *, timeout: float) -> dict[str, Any]: ...
    def logs(self, *, stdout: bool, stderr: bool) -> bytes: ...
    def kill(self) -> None: ...
    def reload(self) -> None: ...
    def remove(self, *, force: bool) -> None: ...


class ContainersLike(Protocol):
    def create(self, image: str, command: list[str], **kwargs: Any) -> ContainerLike: ...


class DockerClientLike(Protocol):
    """The part of ``docker.DockerClient`` the backend uses."""

    containers: ContainersLike

    def ping(self) -> bool: ...


def bundle(job: SandboxJob) -> str:
    """The job's files as a base64 gzip tar (uid/gid 65534, 0644 or 0755)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for path, data in sorted(job.file_bytes().items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mode = 0o755 if path in job.executable else 0o644
            info.uid = info.gid = 65534
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    encoded = base64.b64encode(buf.getvalue()).decode()
    if len(encoded) > MAX_BUNDLE_BYTES:
        raise SandboxError(
            f"the job's files encode to {len(encoded)} bytes, more than the docker backend's {MAX_BUNDLE_BYTES}"
        )
    return encoded


def container_config(job: SandboxJob, *, name: str, image: str = DEFAULT_IMAGE) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create`` (the docker SDK's names)."""
    from docker.types import LogConfig, Ulimit

    lim = job.limits
    mb = 1024 * 1024
    env = {"HOME": JOB_DIR, "TMPDIR": "/tmp", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", **job.env}
    env[BUNDLE_ENV] = bundle(job)
    return {
        "image": image,
        "command": ["/bin/sh", "-c", _PRELUDE, "sandbox", *job.command],
        "name": name,
        "user": CONTAINER_USER,
        "working_dir": JOB_DIR,
        "environment": env,
        "network_mode": "none",
        "read_only": True,
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges:true"],
        "pids_limit": lim.processes,
        "mem_limit": lim.memory_mb * mb,
        "memswap_limit": lim.memory_mb * mb,
        "ulimits": [
            Ulimit(name="cpu", soft=lim.cpu_seconds, hard=lim.cpu_seconds + 1),
            Ulimit(name="fsize", soft=lim.file_size_mb * mb, hard=lim.file_size_mb * mb),
            Ulimit(name="nofile", soft=lim.open_files, hard=lim.open_files),
            Ulimit(name="core", soft=0, hard=0),
        ],
        "tmpfs": {
            "/tmp": f"rw,nosuid,nodev,size={lim.tmpfs_mb}m,mode=1777",
            JOB_DIR: f"rw,nosuid,nodev,exec,size={lim.workdir_mb}m,uid=65534,gid=65534,mode=0755",
        },
        "log_config": LogConfig(type="json-file", config={"max-size": str(4 * lim.output_bytes)}),
        "stdin_open": False,
        "tty": False,
        "labels": {"boocontrol.sandbox": "1"},
    }


class DockerSandbox:
    """``run(job)`` in a fresh named container; ``client`` is a ``docker.DockerClient`` (or anything with
    its interface)."""

    name = "docker"

    def __init__(self, client: DockerClientLike, *, image: str = DEFAULT_IMAGE) -> None:
        self.client = client
        self.image = image

    @classmethod
    def from_env(cls, *, image: str = DEFAULT_IMAGE, timeout: float = 5.0) -> DockerSandbox:
        """Connect to the engine named by DOCKER_HOST (or the local socket); SandboxUnavailable when none answers."""
        import docker

        try:
            client = docker.from_env(timeout=int(max(1, timeout)))
            client.ping()
        except Exception as exc:  # the SDK raises DockerException, requests errors, FileNotFoundError...
            raise SandboxUnavailable(
                f"no docker engine answers ({type(exc).__name__}: {exc})".splitlines()[0]
            ) from exc
        return cls(client, image=image)

    def run(self, job: SandboxJob, *, slot: int = 0) -> SandboxOutcome:
        import requests

        config = container_config(job, name=f"{NAME_PREFIX}{uuid.uuid4().hex[:16]}", image=self.image)
        image, command = config.pop("image"), config.pop("command")
        start = time.monotonic()
        container = self.client.containers.create(image, command, **config)
        timed_out = False
        try:
            container.start()
            try:
                status = int(container.wait(timeout=job.limits.wall_seconds).get("StatusCode", -1))
            except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
                timed_out = True
                status = -9
                try:
                    container.kill()
                except Exception:  # already gone: removal below is what matters
                    pass
            duration = time.monotonic() - start
            container.reload()
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
            out, err = CappedBuffer(job.limits.output_bytes), CappedBuffer(job.limits.output_bytes)
            out.add(container.logs(stdout=True, stderr=False))
            err.add(container.logs(stdout=False, stderr=True))
        finally:
            container.remove(force=True)
        exit_code, sig = split_status(status)
        if timed_out:
            exit_code, sig = None, int(signal.SIGKILL)
        reason = "memory" if oom and not timed_out else killed_reason(sig, timed_out)
        return SandboxOutcome(
            exit_code=exit_code,
            signal=sig,
            timed_out=timed_out,
            killed_reason=reason,
            stdout=out.text(),
            stderr=err.text(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            stdout_total_bytes=out.total,
            stderr_total_bytes=err.total,
            duration_s=duration,
            backend=self.name,
        )
