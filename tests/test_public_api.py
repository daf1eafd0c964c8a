"""The public surface is exactly `edgefmp.__all__`: adding or removing a name is a decision."""

from __future__ import annotations

import edgefmp

EXPECTED = {
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
}


def test_all_is_exact_and_importable() -> None:
    assert set(edgefmp.__all__) == EXPECTED
    for name in edgefmp.__all__:
        assert getattr(edgefmp, name) is not None


def test_errors_form_one_tree() -> None:
    for name in ("BackendError", "ConfigError", "ExportError", "PolicyError", "ProgramError", "SourceError"):
        assert issubclass(getattr(edgefmp, name), edgefmp.EdgeFMPError)
    assert issubclass(edgefmp.BackendTimeout, edgefmp.BackendError)
    assert issubclass(edgefmp.BudgetExceeded, edgefmp.ProgramError)
