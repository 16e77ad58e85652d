"""The docker backend: the container it asks for (checked through the docker SDK's own argument
translation), its run/timeout/OOM handling against a fake client with the SDK's interface, the file
bundle unpacked by the real prelude (run in the bubblewrap sandbox), and a real engine when one answers."""

from __future__ import annotations

import base64
import io
import random
import signal
import tarfile
from typing import Any

import pytest
import requests
from docker.models.containers import _create_container_args

from engines.evals.sandbox import (
    BubblewrapSandbox,
    DockerSandbox,
    SandboxError,
    SandboxJob,
    SandboxLimits,
    SandboxUnavailable,
    container_config,
)
from engines.evals.sandbox.docker_backend import BUNDLE_ENV, NAME_PREFIX

JOB = SandboxJob(
    command=("python3", "test_solution.py"),
    files={"solution.py": "def add(a, b):\n    return a + b\n", "test_solution.py": "print('ok')\n"},
    limits=SandboxLimits(cpu_seconds=5, memory_mb=256, processes=32, file_size_mb=8, open_files=48, tmpfs_mb=16,
                         workdir_mb=24, wall_seconds=7.5),
)  # fmt: skip


def test_container_config_is_locked_down() -> None:
    cfg = container_config(JOB, name="boocontrol-sandbox-abc")
    # the SDK's own translation of create() kwargs into the engine's API body (raises on unknown kwargs)
    body = _create_container_args({**cfg, "version": "1.45"})
    host = body.pop("host_config")
    env = body.pop("environment")
    assert body == {
        "image": "python:3.11-slim",
        "command": [
            "/bin/sh",
            "-c",
            f'printf %s "${BUNDLE_ENV}" | base64 -d | tar -xzf - -C /job && unset {BUNDLE_ENV} && exec "$@"',
            "sandbox",
            "python3",
            "test_solution.py",
        ],
        "name": "boocontrol-sandbox-abc",
        "user": "65534:65534",
        "working_dir": "/job",
        "stdin_open": False,
        "tty": False,
        "labels": {"boocontrol.sandbox": "1"},
    }
    assert dict(host) == {
        "NetworkMode": "none",
        "ReadonlyRootfs": True,
        "CapDrop": ["ALL"],
        "SecurityOpt": ["no-new-privileges:true"],
        "PidsLimit": 32,
        "Memory": 256 * 1024 * 1024,
        "MemorySwap": 256 * 1024 * 1024,
        "Ulimits": [
            {"Name": "cpu", "Soft": 5, "Hard": 6},
            {"Name": "fsize", "Soft": 8 * 1024 * 1024, "Hard": 8 * 1024 * 1024},
            {"Name": "nofile", "Soft": 48, "Hard": 48},
            {"Name": "core", "Soft": 0, "Hard": 0},
        ],
        "Tmpfs": {
            "/tmp": "rw,nosuid,nodev,size=16m,mode=1777",
            "/job": "rw,nosuid,nodev,exec,size=24m,uid=65534,gid=65534,mode=0755",
        },
        "LogConfig": {"Type": "json-file", "Config": {"max-size": str(4 * 64 * 1024)}},
    }
    assert {k: v for k, v in env.items() if k != BUNDLE_ENV} == {
        "HOME": "/job",
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(env[BUNDLE_ENV]))) as tar:
        assert {m.name: (m.mode, m.uid, tar.extractfile(m).read()) for m in tar.getmembers()} == {  # type: ignore[union-attr]
            "solution.py": (0o644, 65534, b"def add(a, b):\n    return a + b\n"),
            "test_solution.py": (0o644, 65534, b"print('ok')\n"),
        }


def test_too_many_files_for_the_environment_refused() -> None:
    big = SandboxJob(command=("true",), files={"blob.bin": random.Random(1).randbytes(100_000)})
    with pytest.raises(SandboxError, match="more than the docker backend's"):
        container_config(big, name="x")


def test_prelude_unpacks_the_bundle_and_runs_the_command(sandbox: BubblewrapSandbox) -> None:
    # the docker command line, run for real: in the bubblewrap sandbox, whose /job is a tmpfs like the container's
    job = SandboxJob(
        command=("python3", "pkg/main.py", "arg one"),
        files={
            "pkg/main.py": "import sys\nprint(open('pkg/data.txt').read(), sys.argv[1:])\n",
            "pkg/data.txt": "data",
        },
    )
    cfg = container_config(job, name="x")
    env = cfg["environment"]
    out = sandbox.run(SandboxJob(command=tuple(cfg["command"]), env=env))
    assert (out.exit_code, out.stdout, out.stderr) == (0, "data ['arg one']\n", "")


class FakeContainer:
    def __init__(self, name: str, script: dict[str, Any]) -> None:
        self.name = name
        self.script = script
        self.calls: list[str] = []
        self.attrs: dict[str, Any] = {"State": {"OOMKilled": False}}

    def start(self) -> None:
        self.calls.append("start")

    def wait(self, *, timeout: float) -> dict[str, Any]:
        self.calls.append(f"wait({timeout})")
        if self.script.get("hang"):
            raise requests.exceptions.ReadTimeout("read timed out")
        return {"StatusCode": self.script["status"], "Error": None}

    def logs(self, *, stdout: bool, stderr: bool) -> bytes:
        return bytes(self.script["stdout" if stdout else "stderr"])

    def kill(self) -> None:
        self.calls.append("kill")

    def reload(self) -> None:
        self.calls.append("reload")
        self.attrs = {"State": {"OOMKilled": bool(self.script.get("oom"))}}

    def remove(self, *, force: bool) -> None:
        self.calls.append(f"remove(force={force})")


class FakeContainers:
    def __init__(self, script: dict[str, Any]) -> None:
        self.script = script
        self.created: list[tuple[dict[str, Any], FakeContainer]] = []

    def create(self, image: str, command: list[str], **kwargs: Any) -> FakeContainer:
        # the same validation the SDK does before talking to the engine
        _create_container_args({**kwargs, "image": image, "command": command, "version": "1.45"})
        container = FakeContainer(kwargs["name"], self.script)
        self.created.append(({"image": image, "command": command, **kwargs}, container))
        return container


class FakeDockerClient:
    """``docker.DockerClient``'s interface as the backend uses it, answering from a script."""

    def __init__(self, **script: Any) -> None:
        self.containers = FakeContainers(script)

    def ping(self) -> bool:
        return True


def test_run_collects_status_and_capped_logs() -> None:
    client = FakeDockerClient(status=1, stdout=b"x" * 70_000, stderr=b"AssertionError\n")
    out = DockerSandbox(client).run(JOB)
    (cfg, container), = client.containers.created  # fmt: skip
    assert cfg["name"].startswith(NAME_PREFIX) and len(cfg["name"]) == len(NAME_PREFIX) + 16
    assert container.calls == ["start", "wait(7.5)", "reload", "remove(force=True)"]
    assert (out.exit_code, out.signal, out.killed_reason, out.timed_out, out.backend) == (
        1,
        None,
        None,
        False,
        "docker",
    )
    assert (len(out.stdout), out.stdout_truncated, out.stdout_total_bytes) == (65536, True, 70_000)
    assert (out.stderr, out.stderr_truncated) == ("AssertionError\n", False)


def test_timeout_kills_and_removes_the_named_container() -> None:
    client = FakeDockerClient(hang=True, stdout=b"partial", stderr=b"")
    out = DockerSandbox(client).run(JOB)
    (cfg, container), = client.containers.created  # fmt: skip
    assert container.name == cfg["name"]
    assert container.calls == ["start", "wait(7.5)", "kill", "reload", "remove(force=True)"]
    assert (out.exit_code, out.signal, out.killed_reason, out.timed_out) == (
        None,
        signal.SIGKILL,
        "wall_clock",
        True,
    )
    assert out.stdout == "partial"


def test_oom_kill_reported_as_memory() -> None:
    out = DockerSandbox(FakeDockerClient(status=137, oom=True, stdout=b"", stderr=b"")).run(JOB)
    assert (out.exit_code, out.signal, out.killed_reason) == (None, signal.SIGKILL, "memory")


def test_container_removed_when_start_fails() -> None:
    client = FakeDockerClient(status=0, stdout=b"", stderr=b"")

    def boom() -> None:
        raise RuntimeError("image has no /bin/sh")

    original_create = client.containers.create

    def create(image: str, command: list[str], **kwargs: Any) -> FakeContainer:
        c = original_create(image, command, **kwargs)
        c.start = boom  # type: ignore[method-assign]
        return c

    client.containers.create = create  # type: ignore[method-assign]
    with pytest.raises(RuntimeError, match="no /bin/sh"):
        DockerSandbox(client).run(JOB)
    assert client.containers.created[0][1].calls == ["remove(force=True)"]


def test_real_docker_engine() -> None:
    try:
        backend = DockerSandbox.from_env()
    except SandboxUnavailable as exc:
        pytest.skip(f"no docker engine answers here, so the container itself is not run: {exc}")
    out = backend.run(
        SandboxJob(
            command=(
                "python3",
                "-c",
                "import socket; print(open('/job/a.txt').read(), socket.if_nameindex())",
            ),
            files={"a.txt": "hello"},
        )
    )
    assert (out.exit_code, out.stdout) == (0, "hello [(1, 'lo')]\n")
