"""The exception tree of edgefmp.

Callers catch `EdgeFMPError` to handle anything the library raises on purpose; engine errors
(onnxruntime, OpenCV, httpx) are re-raised as one of these with `from exc` so the cause stays
visible in the traceback.
"""

from __future__ import annotations


class EdgeFMPError(Exception):
    """Base of every error edgefmp raises on purpose."""


class ConfigError(EdgeFMPError):
    """A file or option the user wrote is invalid (catalog, manifest, preset, suite)."""


class ProgramError(EdgeFMPError):
    """A program was rejected by the validator or failed while it ran.

    `line` is the 1-based source line where the problem is, when known.
    """

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class BudgetExceeded(ProgramError):
    """A program used more work than its per-frame budget allows."""


class BackendError(EdgeFMPError):
    """A backend call failed; the executor falls back to another backend."""


class BackendTimeout(BackendError):
    """A backend did not answer within its deadline."""


class BackendUnavailable(BackendError):
    """A backend cannot be used now (missing provider, circuit open, server down)."""


class SourceError(EdgeFMPError):
    """A frame source cannot be opened or read."""


class ExportError(EdgeFMPError):
    """A model could not be exported or failed its verification."""


class PolicyError(EdgeFMPError):
    """A routing policy was misconfigured or its saved state is unusable."""


__all__ = [
    "BackendError",
    "BackendTimeout",
    "BackendUnavailable",
    "BudgetExceeded",
    "ConfigError",
    "EdgeFMPError",
    "ExportError",
    "PolicyError",
    "ProgramError",
    "SourceError",
]
