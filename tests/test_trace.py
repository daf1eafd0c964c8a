"""Cost arithmetic: sums keep their meters' labels as a set."""

from __future__ import annotations

from edgefmp.trace import Cost


def test_summed_energy_labels_stay_a_set_of_meters() -> None:
    call = Cost(latency_ms=1.0, energy_j=0.5, energy_source="nvml+estimated")
    total = Cost(energy_source="none")
    for source in ("nvml", "nvml+estimated", "estimated", "none"):
        total = total + Cost(latency_ms=1.0, energy_j=0.1, energy_source=source) + call
    assert total.energy_source == "estimated+nvml"
    assert abs(total.energy_j - 2.4) < 1e-9 and total.latency_ms == 8.0


def test_a_sum_of_nothing_measured_says_none() -> None:
    assert (Cost(energy_source="none") + Cost(energy_source="none")).energy_source == "none"
