"""Simulated host telemetry: ``SysStat``/``GpuStat`` samples, ``/api/hardware`` and Prometheus ``/metrics``.

Nothing is read from the real machine. GPU utilisation follows the number of requests generating on the
models placed on that GPU (and model loads), VRAM follows the loaded models, temperature, fan and power
follow utilisation with some lag, and CPU/RAM/network counters drift plausibly. Every GPU is presented as
an NVIDIA board (so ``uuid`` is set and ``vram_temp_c`` is 0, as nvidia-smi reports it).
"""

from __future__ import annotations

import platform
import random
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GpuSpec:
    name: str = "NVIDIA GeForce RTX 4090"
    vram_mb: int = 24564
    power_limit_w: float = 450.0
    architecture: str = "Ada Lovelace"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class HostSpec:
    cpu_model: str = "AMD Ryzen 9 7950X 16-Core Processor"
    cpu_vendor: str = "AuthenticAMD"
    physical_cores: int = 16
    logical_cores: int = 32
    mem_total_mb: int = 64000
    os_name: str = "ubuntu"
    os_version: str = "24.04"
    kernel: str = "6.8.0-45-generic"
    driver_version: str = "575.51.03"
    gpus: tuple[GpuSpec, ...] = (GpuSpec(),)


@dataclass
class GpuLoad:
    """What the simulation knows about one GPU right now."""

    busy: int = 0  # requests generating on models placed on this GPU
    loading: bool = False
    vram_mb: int = 0  # VRAM of the models resident on this GPU


@dataclass
class _GpuState:
    util: float = 0.0
    temp: float = 34.0


@dataclass
class Telemetry:
    host: HostSpec
    rng: random.Random
    net_recv: int = 0
    net_sent: int = 0
    load_avg: list[float] = field(default_factory=lambda: [0.2, 0.2, 0.2])
    gpus: list[_GpuState] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.gpus = [_GpuState(temp=32 + self.rng.random() * 6) for _ in self.host.gpus]
        self.net_recv, self.net_sent = self.rng.randrange(10**8, 10**10), self.rng.randrange(10**8, 10**10)

    def sample(self, ts: str, gpu_ts: str, loads: list[GpuLoad], traffic_bytes: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """One SysStat and one GpuStat per GPU, moved one step towards the current load."""
        rng, host = self.rng, self.host
        busy = sum(load.busy for load in loads)
        loading = any(load.loading for load in loads)
        cpu = [round(min(100.0, rng.uniform(0.5, 6.0) + (rng.uniform(20, 90) if loading and i % 4 == 0 else 0)
                           + (rng.uniform(2, 15) if busy and i == 0 else 0)), 2) for i in range(host.logical_cores)]
        for i, target in enumerate((busy * 0.5 + loading, busy * 0.3 + loading * 0.5, busy * 0.1 + loading * 0.2)):
            self.load_avg[i] += (target + rng.uniform(0.0, 0.3) - self.load_avg[i]) * (0.4, 0.1, 0.04)[i]
        resident = sum(load.vram_mb for load in loads)
        mem_used = min(host.mem_total_mb - 512, 3500 + resident // 8 + rng.randrange(0, 400))
        self.net_recv += traffic_bytes // 3 + rng.randrange(200, 5000)
        self.net_sent += traffic_bytes + rng.randrange(200, 5000)
        sys_stat = {
            "timestamp": ts, "cpu_util_per_core": cpu,
            "mem_total_mb": host.mem_total_mb, "mem_used_mb": mem_used,
            "mem_free_mb": max(0, host.mem_total_mb - mem_used - 9000),
            "swap_total_mb": 8192, "swap_used_mb": 0,
            "load_avg_1": round(self.load_avg[0], 2), "load_avg_5": round(self.load_avg[1], 2),
            "load_avg_15": round(self.load_avg[2], 2),
            "net_io": [{"name": "eth0", "bytes_recv": self.net_recv, "bytes_sent": self.net_sent}],
        }
        gpu_stats = []
        for idx, (spec, state, load) in enumerate(zip(host.gpus, self.gpus, loads, strict=True)):
            target = min(100.0, load.busy * rng.uniform(70, 95) + (35.0 if load.loading else 0.0))
            state.util += (target - state.util) * 0.7
            state.temp += (33 + state.util * 0.5 - state.temp) * 0.35
            used = min(spec.vram_mb, load.vram_mb + (420 if load.vram_mb else 2))
            gpu_stats.append({
                "timestamp": gpu_ts, "id": idx, "name": spec.name, "uuid": spec.uuid,
                "temp_c": round(state.temp), "vram_temp_c": 0,
                "gpu_util_pct": round(state.util), "mem_util_pct": round(used / spec.vram_mb * 100, 1),
                "mem_used_mb": used, "mem_total_mb": spec.vram_mb,
                "fan_speed_pct": round(max(30.0, min(100.0, (state.temp - 30) * 1.6))),
                "power_draw_w": round(spec.power_limit_w * (0.07 + 0.85 * state.util / 100) + rng.uniform(-2, 2), 2),
            })
        return sys_stat, gpu_stats

    def hardware(self, captured_at: str, version: str) -> dict[str, Any]:
        host = self.host
        raw_arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), "amd64")
        return {
            "schema_version": 1,
            "captured_at": captured_at,
            "simulated": True,  # never sent by real llama-swap: these "detected" facts are synthetic
            "capture": {"scope": "inference_host", "method": "detected",
                        "detector": {"name": "llama-swap", "version": version}},
            "architecture": {"name": "arm64" if raw_arch == "arm64" else "x86_64", "raw_name": raw_arch},
            "operating_system": {"family": "linux", "name": host.os_name, "version": host.os_version,
                                 "kernel": host.kernel},
            "environment": {"kind": "native", "name": None, "version": None},
            "cpu": {"vendor": host.cpu_vendor, "model": host.cpu_model, "socket_count": 1,
                    "physical_core_count": host.physical_cores, "logical_thread_count": host.logical_cores},
            "memory": {"capacity_bytes": host.mem_total_mb * 1048576},
            "accelerators": [
                {"index": i, "kind": "gpu", "vendor": "NVIDIA", "model": gpu.name.removeprefix("NVIDIA "),
                 "architecture": gpu.architecture,
                 "memory": {"kind": "dedicated", "capacity_bytes": gpu.vram_mb * 1048576},
                 "driver": {"name": "nvidia", "version": host.driver_version},
                 "power_limit_watts": gpu.power_limit_w}
                for i, gpu in enumerate(host.gpus)
            ],
        }


def _label(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render_prometheus(sys_stat: dict[str, Any] | None, gpu_stats: list[dict[str, Any]]) -> str:
    """Prometheus text 0.0.4 from the latest samples only (§7.2); empty before the first sample."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"])
        lines.extend(f"{name}{labels} {_fmt(value)}" for labels, value in samples)

    if sys_stat is not None:
        mib = 1048576
        family("llamaswap_cpu_util_percent", "gauge", "CPU utilisation per core.",
               [(f'{{core="{i}"}}', v) for i, v in enumerate(sys_stat["cpu_util_per_core"])])
        for key in ("total", "used", "free"):
            family(f"llamaswap_memory_{key}_bytes", "gauge", f"Memory {key} in bytes.",
                   [("", sys_stat[f"mem_{key}_mb"] * mib)])
        for key in ("total", "used"):
            family(f"llamaswap_swap_{key}_bytes", "gauge", f"Swap {key} in bytes.", [("", sys_stat[f"swap_{key}_mb"] * mib)])
        family("llamaswap_load_average", "gauge", "System load average.",
               [(f'{{interval="{i}m"}}', sys_stat[f"load_avg_{i}"]) for i in (1, 5, 15)])
        family("llamaswap_network_bytes_total", "counter", "Network bytes by interface and direction.",
               [(f'{{interface="{_label(n["name"])}",direction="{d}"}}', n[f"bytes_{d}"])
                for n in sys_stat["net_io"] for d in ("recv", "sent")])
    gauges = [("temperature_celsius", "temp_c", 1), ("vram_temperature_celsius", "vram_temp_c", 1),
              ("util_percent", "gpu_util_pct", 1), ("memory_util_percent", "mem_util_pct", 1),
              ("memory_used_bytes", "mem_used_mb", 1048576), ("memory_total_bytes", "mem_total_mb", 1048576),
              ("fan_speed_percent", "fan_speed_pct", 1), ("power_draw_watts", "power_draw_w", 1)]
    if gpu_stats:
        for suffix, key, scale in gauges:
            family(f"llamaswap_gpu_{suffix}", "gauge", f"GPU {suffix.replace('_', ' ')}.", [
                (f'{{id="{g["id"]}",name="{_label(g["name"])}"' + (f',uuid="{_label(g["uuid"])}"' if g["uuid"] else "") + "}",
                 g[key] * scale) for g in gpu_stats])
    return "\n".join(lines) + "\n" if lines else ""
