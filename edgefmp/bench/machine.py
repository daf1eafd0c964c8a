"""What machine a measurement ran on, and how much memory it used.

Peak resident memory comes from the kernel (`VmHWM`, reset per measurement through
/proc/self/clear_refs where Linux allows it); GPU memory, clocks and throttle reasons from
NVML when a GPU and its bindings are there. The environment is recorded beside every bench and
profile result, because a number without its machine cannot be compared.
"""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux >= 4.0); False if it cannot."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mb() -> float | None:
    return _status_mb("VmRSS")


def peak_rss_mb() -> float | None:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    except (ImportError, OSError):
        return None


def gpu_info() -> dict[str, Any] | None:
    """GPU name, memory, clocks and throttle reasons from NVML; None without a readable GPU."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:
        return None
    try:
        out = []
        for i in range(int(pynvml.nvmlDeviceGetCount())):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(h)
            info: dict[str, Any] = {
                "index": i,
                "name": str(pynvml.nvmlDeviceGetName(h)),
                "memory_used_mb": mem.used / 2**20,
                "memory_total_mb": mem.total / 2**20,
            }
            # clocks and throttle reasons are optional: not every GPU (or driver) reports them
            for key, clock in (("sm_clock_mhz", pynvml.NVML_CLOCK_SM), ("mem_clock_mhz", pynvml.NVML_CLOCK_MEM)):
                with contextlib.suppress(Exception):
                    info[key] = int(pynvml.nvmlDeviceGetClockInfo(h, clock))
                    info[key.replace("_mhz", "_max_mhz")] = int(pynvml.nvmlDeviceGetMaxClockInfo(h, clock))
            with contextlib.suppress(Exception):
                info["throttle_reasons"] = int(pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(h))
            out.append(info)
        return {"gpus": out}
    finally:
        pynvml.nvmlShutdown()


def gpu_used_mb() -> float | None:
    info = gpu_info()
    if not info or not info["gpus"]:
        return None
    return float(sum(g["memory_used_mb"] for g in info["gpus"]))


def environment() -> dict[str, Any]:
    """Where a measurement ran: CPU, cores, providers, library versions (and GPUs, if any)."""
    from importlib.metadata import PackageNotFoundError, version

    import onnxruntime as ort

    def ver(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    env: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "providers": ort.get_available_providers(),
        "versions": {
            name: ver(name)
            for name in ("edgefmp", "numpy", "onnxruntime", "opencv-python-headless", "torch", "pydantic", "easy-vqa")
        },
    }
    commit = source_commit()
    if commit is not None:
        env["commit"] = commit
    gpu = gpu_info()
    if gpu is not None:
        env["gpu"] = gpu
    return env


def source_commit() -> str | None:
    """The git commit of the edgefmp checkout that measured, with "+dirty" when the package's
    tracked files differ from it (results and suites written since do not count), so a
    committed result names the code that made it; None for an installed package or no git."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "edgefmp"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}+dirty" if dirty else head


__all__ = ["environment", "gpu_info", "source_commit", "gpu_used_mb", "peak_rss_mb", "reset_peak_rss", "rss_mb"]
