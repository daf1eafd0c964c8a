"""NvmlMeter: GPU energy from NVML's cumulative counter (nvidia-ml-py).

`nvmlDeviceGetTotalEnergyConsumption` returns millijoules since the driver loaded (Volta and
newer); a call's energy is the difference of two reads, summed over the metered GPUs. The
counter updates every 20-100 ms, so a shorter call may read zero and is then estimated (and
labelled so). It measures the whole GPU: concurrent work on it is included.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from edgefmp.cost.meters import DEFAULT_JOULES_PER_BYTE, HardwareMeter, MeterUnavailable

log = logging.getLogger(__name__)

_INSTALL = "install nvidia-ml-py (pip install 'edgefmp[gpu]')"


class NvmlMeter(HardwareMeter):
    """Energy of NVIDIA GPUs `devices` (all when None) from NVML's energy counter."""

    name = "nvml"

    def __init__(self, devices: Sequence[int] | None = None, joules_per_byte: float = DEFAULT_JOULES_PER_BYTE) -> None:
        super().__init__(joules_per_byte)
        try:
            import pynvml
        except ImportError as exc:
            raise MeterUnavailable(f"nvml: the NVML bindings are not installed; {_INSTALL}") from exc
        self._nvml: Any = pynvml
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise MeterUnavailable(
                f"nvml: cannot initialise NVML ({exc}); it needs an NVIDIA GPU with its driver "
                "loaded (check that nvidia-smi works)"
            ) from exc
        try:
            self._handles, self._labels = self._open_devices(pynvml, devices)
        except BaseException:
            pynvml.nvmlShutdown()
            raise
        self._closed = False

    @staticmethod
    def _open_devices(pynvml: Any, devices: Sequence[int] | None) -> tuple[list[Any], list[str]]:
        count = int(pynvml.nvmlDeviceGetCount())
        if count == 0:
            raise MeterUnavailable("nvml: NVML sees no GPU; check nvidia-smi and CUDA_VISIBLE_DEVICES")
        indices = list(range(count)) if devices is None else list(devices)
        handles, labels = [], []
        for i in indices:
            if not 0 <= i < count:
                raise MeterUnavailable(f"nvml: GPU index {i} does not exist; this machine has {count} GPU(s)")
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            try:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            except pynvml.NVMLError as exc:
                raise MeterUnavailable(
                    f"nvml: GPU {i} ({name}) does not report its energy counter ({exc}); "
                    "it needs a Volta or newer data-centre / workstation GPU"
                ) from exc
            handles.append(handle)
            labels.append(f"GPU {i} ({name})")
        return handles, labels

    def _sample(self) -> object:
        return sum(int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self._handles)

    def _joules(self, start: object, stop: object, latency_s: float) -> float:
        if not isinstance(start, int) or not isinstance(stop, int):
            return 0.0
        return (stop - start) / 1000.0  # mJ -> J

    def describe(self) -> str:
        return "NVML total energy counter of " + ", ".join(self._labels)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as exc:
                log.debug("nvmlShutdown failed: %s", exc)
