"""What this machine offers edgefmp, and the command that adds what is missing."""

from __future__ import annotations

import glob
import importlib.util
import platform
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

POWERCAP_ROOT = Path("/sys/class/powercap")


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    ok: bool
    detail: str
    fix: str = ""


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "?"


def check_providers() -> list[Check]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    out = [Check("onnxruntime", "version", True, f"{ort.__version__} ({ort.get_device()})")]
    wanted = {
        "TensorrtExecutionProvider": "pip install onnxruntime-gpu (with TensorRT libraries on the machine)",
        "CUDAExecutionProvider": "pip uninstall onnxruntime && pip install onnxruntime-gpu (needs an NVIDIA GPU)",
        "CPUExecutionProvider": "pip install onnxruntime",
    }
    for provider, fix in wanted.items():
        ok = provider in available
        out.append(Check("onnxruntime", provider, ok, "available" if ok else "not available", "" if ok else fix))
    others = [p for p in available if p not in wanted]
    if others:
        out.append(Check("onnxruntime", "other providers", True, ", ".join(others)))
    return out


def check_gpu() -> list[Check]:
    out = []
    smi = shutil.which("nvidia-smi")
    out.append(
        Check("gpu", "nvidia-smi", smi is not None, smi or "not found", "" if smi else "install the NVIDIA driver")
    )
    jetson = bool(glob.glob("/etc/nv_tegra_release"))
    out.append(Check("gpu", "jetson", jetson, "Jetson (L4T) detected" if jetson else "not a Jetson"))
    has_trt = _has_module("tensorrt")
    out.append(
        Check(
            "gpu",
            "tensorrt",
            has_trt,
            _version("tensorrt") if has_trt else "not installed",
            "" if has_trt else "pip install 'edgefmp[trt]' (on a machine with an NVIDIA GPU and TensorRT)",
        )
    )
    return out


def check_meters(powercap_root: Path = POWERCAP_ROOT) -> list[Check]:
    from edgefmp.cost import meters

    describe = getattr(meters, "describe_meters", None)
    if describe is None:
        return [Check("energy", "estimated", True, "power model x latency (labelled 'estimated')")]
    return [
        Check("energy", name, ok, reason, "" if ok or name == "estimated" else _meter_fix(name, powercap_root))
        for name, ok, reason in describe(rapl_root=powercap_root)
    ]


def _meter_fix(name: str, powercap_root: Path = POWERCAP_ROOT) -> str:
    if name == "rapl":
        return _rapl_fix(powercap_root)
    return {
        "nvml": "pip install 'edgefmp[gpu]' on a machine with an NVIDIA GPU (Volta or newer)",
        "jetson": "pip install 'edgefmp[jetson]' on a Jetson",
    }.get(name, "")


def _rapl_fix(root: Path) -> str:
    """What to do about RAPL depends on what is missing: the whole powercap tree (no driver, or
    no RAPL hardware), its zones (a CPU or kernel without RAPL) or only read access."""
    if not root.is_dir():
        return (
            f"no RAPL here: {root} is missing, so the intel_rapl driver is not loaded or this machine has no "
            "RAPL (not x86, or a VM/container that hides it); on x86 Linux try `sudo modprobe intel_rapl_common`, "
            "else CPU energy stays estimated"
        )
    if not any(p.name.startswith("intel-rapl:") for p in root.iterdir()):
        return f"no RAPL zone under {root}: this CPU or kernel exposes none, so CPU energy stays estimated"
    return f"make the RAPL counters readable: sudo chmod a+r {root}/intel-rapl:*/energy_uj (until reboot)"


def check_video() -> list[Check]:
    import cv2

    info = cv2.getBuildInformation()
    section = info.split("Video I/O:", 1)[-1].split("\n\n", 1)[0]
    out = [Check("video", "opencv", True, cv2.__version__)]
    for backend in ("FFMPEG", "GStreamer", "V4L/V4L2"):
        match = re.search(rf"^\s*{re.escape(backend)}:\s*(\S+)", section, re.MULTILINE)
        ok = bool(match and match.group(1).upper() not in ("NO", "OFF"))
        fix = ""
        if not ok and backend == "GStreamer":
            fix = "optional: build OpenCV with GStreamer for hardware decoding on Jetson"
        out.append(Check("video", backend, ok, match.group(1) if match else "not built in", fix))
    cams = sorted(glob.glob("/dev/video*"))
    out.append(
        Check(
            "video",
            "cameras",
            bool(cams),
            ", ".join(cams) if cams else "no /dev/video* device",
            "" if cams else "plug in a camera, or use a video file / RTSP URL as --source",
        )
    )
    return out


def check_extras() -> list[Check]:
    extras = [
        ("torch", "torch", "policy 'paper', the zoo, export from torch", "pip install torch==2.13.0"),
        ("optimum", "optimum", "export from Hugging Face models", "pip install 'edgefmp[export]'"),
        ("onnx", "onnx", "export and verification", "pip install 'edgefmp[export]'"),
        ("fastapi", "fastapi", "edgefmp serve", "pip install 'edgefmp[serve]'"),
        ("matplotlib", "matplotlib", "bench plots", "pip install 'edgefmp[bench]'"),
    ]
    out = []
    for name, module, use, fix in extras:
        ok = _has_module(module)
        out.append(
            Check("extras", name, ok, f"{_version(name)} ({use})" if ok else f"missing ({use})", "" if ok else fix)
        )
    return out


def run_checks() -> list[Check]:
    machine = Check(
        "machine", "platform", True, f"{platform.system()} {platform.machine()}, Python {platform.python_version()}"
    )
    return [machine, *check_providers(), *check_gpu(), *check_meters(), *check_video(), *check_extras()]
