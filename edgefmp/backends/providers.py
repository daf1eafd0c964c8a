"""Which ONNX Runtime execution providers a session uses, and with what options.

An edge box may or may not have TensorRT, CUDA or another accelerator, and the same catalog
should run on all of them. So the default is "the fastest that this machine offers":
TensorRT -> CUDA -> CPU, filtered by `onnxruntime.get_available_providers()`. A catalog may
override the order (`providers: [CUDA, CPU]`); short names are accepted. A name onnxruntime
has never heard of is a typo, so it is a ConfigError listing the real names; a real provider
this machine lacks is only a warning (the catalog may have been written for another device)
and the session falls back to what remains, always ending with CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnxruntime as ort

from edgefmp.errors import ConfigError

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
DEFAULT_ORDER: tuple[str, ...] = (TENSORRT, CUDA, CPU)

# Short names people type that are not just the full name without "ExecutionProvider".
_ALIASES: dict[str, str] = {
    "trt": TENSORRT,
    "gpu": CUDA,
    "directml": "DmlExecutionProvider",
    "rocm": "ROCMExecutionProvider",
}
_SUFFIX = "executionprovider"


@dataclass(frozen=True)
class TensorRTSettings:
    """Options of the TensorRT execution provider that the catalog controls.

    The engine cache matters on edge devices: building a TensorRT engine takes minutes, so it
    is built once and reused from `engine_cache` on later runs.
    """

    engine_cache: Path | None = None
    fp16: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def provider_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"trt_fp16_enable": self.fp16}
        if self.engine_cache is not None:
            opts["trt_engine_cache_enable"] = True
            opts["trt_engine_cache_path"] = str(self.engine_cache)
            opts["trt_timing_cache_enable"] = True
            opts["trt_timing_cache_path"] = str(self.engine_cache)
        opts.update(self.extra)
        return opts


def known_providers() -> list[str]:
    """Every provider name this onnxruntime build knows about (available here or not)."""
    return list(ort.get_all_providers())


def available_providers() -> list[str]:
    """The providers this machine can use now."""
    return list(ort.get_available_providers())


def canonical_name(name: str, known: Sequence[str] | None = None) -> str:
    """The full provider name for `name` ("cpu", "TensorRT", "CUDAExecutionProvider" ...).

    Raises ConfigError listing the real names when `name` matches none.
    """
    known = list(known) if known is not None else known_providers()
    key = name.strip().lower()
    if key in _ALIASES:
        return _ALIASES[key]
    for full in known:
        low = full.lower()
        if key in (low, low.removesuffix(_SUFFIX)):
            return full
    short = ", ".join(sorted(k.removesuffix("ExecutionProvider") for k in known))
    raise ConfigError(
        f"unknown execution provider {name!r}; onnxruntime knows: {short} "
        f"(available on this machine: {', '.join(available_providers())})"
    )


def select_providers(
    requested: Sequence[str] | None,
    *,
    available: Sequence[str] | None = None,
    known: Sequence[str] | None = None,
    where: str = "providers",
) -> list[str]:
    """The provider names to pass to a session, in priority order, always ending with CPU.

    `requested` None means the default order. `where` names the option in messages.
    """
    available = list(available) if available is not None else available_providers()
    if requested is None:
        chosen = [p for p in DEFAULT_ORDER if p in available]
    else:
        if not requested:
            raise ConfigError(f"{where}: empty list; leave it out to use the default order or name at least one")
        try:
            wanted = [canonical_name(n, known) for n in requested]
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc
        missing = [p for p in wanted if p not in available]
        if missing:
            log.warning(
                "%s: %s not available on this machine (available: %s); falling back",
                where,
                ", ".join(missing),
                ", ".join(available),
            )
        chosen = list(dict.fromkeys(p for p in wanted if p in available))
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


def session_providers(names: Sequence[str], trt: TensorRTSettings) -> list[str | tuple[str, dict[str, Any]]]:
    """`names` in the form InferenceSession takes, with options attached where we set them."""
    out: list[str | tuple[str, dict[str, Any]]] = []
    for name in names:
        if name == TENSORRT:
            if trt.engine_cache is not None:
                trt.engine_cache.mkdir(parents=True, exist_ok=True)
            out.append((name, trt.provider_options()))
        else:
            out.append(name)
    return out
