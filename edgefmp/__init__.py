"""edgefmp: run foundation-model programs on edge devices, every neural call routed.

Only the names in `__all__` are the public API; everything else may change.
"""

from __future__ import annotations

from edgefmp.errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BudgetExceeded,
    ConfigError,
    EdgeFMPError,
    ExportError,
    PolicyError,
    ProgramError,
    SourceError,
)
from edgefmp.frame import Frame
from edgefmp.results import Answer, Detections, Text, Verdict
from edgefmp.trace import CallRecord, Cost, Trace

__version__ = "0.1.0"

__all__ = [
    "Answer",
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BudgetExceeded",
    "CallRecord",
    "ConfigError",
    "Cost",
    "Detections",
    "EdgeFMPError",
    "ExportError",
    "Frame",
    "PolicyError",
    "ProgramError",
    "SourceError",
    "Text",
    "Trace",
    "Verdict",
    "__version__",
]
