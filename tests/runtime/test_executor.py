"""The executor: routing per call, fallback on failure, traces that keep everything."""

from __future__ import annotations

import numpy as np
import pytest

from edgefmp.backends.callable import CallableBackend
from edgefmp.backends.catalog import Catalog
from edgefmp.errors import BackendError, BackendTimeout, ConfigError
from edgefmp.frame import Frame
from edgefmp.policies import create
from edgefmp.policies.base import Decision, DecisionContext, Policy, SiteInfo
from edgefmp.program import compile_program
from edgefmp.program.api import WorkBudget
from edgefmp.results import Detections, Verdict
from edgefmp.runtime.executor import Executor, fallback_order

PROGRAM = """
def execute_command(image):
    circles = image.find("circle")
    for circle in circles:
        if circle.verify_property("circle", "red"):
            return "yes"
    return "no"
"""


def _frame(i: int = 0, image: np.ndarray | None = None) -> Frame:
    return Frame(frame_id=f"f{i}", ts=float(i), image=np.zeros((48, 64, 3), np.uint8) if image is None else image)


def _detector(name: str, n: int = 1) -> CallableBackend:
    def detect(req):  # one box at (10, 5)-(20, 15) of the crop
        return Detections(boxes=[[10, 5, 20, 15]] * n, scores=[0.9] * n, labels=["circle"] * n)

    return CallableBackend.wrap(name, "detect", detect)


def _failing(name: str, function: str, exc: Exception) -> CallableBackend:
    def fail(req):
        raise exc

    return CallableBackend.wrap(name, function, fail)


def _verifier(name: str, value: bool) -> CallableBackend:
    return CallableBackend.wrap(name, function="verify", fn=lambda req: Verdict(value=value, confidence=0.8))


def _executor(detect: list, verify: list, policy: str = "static:0", **kw) -> Executor:
    catalog = Catalog.from_backends({"detect": detect, "verify": verify})
    return Executor(compile_program(PROGRAM), catalog, create(policy), **kw)


class _Down(CallableBackend):
    """A backend that is down for a stated reason (as a remote one with its circuit open)."""

    def available(self) -> bool:
        return False

    def unavailable_reason(self) -> str | None:
        return "circuit open until 12:00:00 (in 30 s) after: connection refused"


def test_a_site_with_no_backend_available_says_why_for_each() -> None:
    down = _Down.wrap("remote-big", "detect", lambda req: Detections(boxes=[], scores=[], labels=[]))
    trace = _executor([down], [_verifier("v0", True)]).run_frame(_frame())
    assert trace.error is not None and "no backend of 'detect' is available now" in trace.error
    assert "remote-big: circuit open until 12:00:00 (in 30 s) after: connection refused" in trace.error


def test_routes_every_call_and_records_costs() -> None:
    ex = _executor([_detector("small"), _detector("big")], [_verifier("v0", True), _verifier("v1", False)])
    trace = ex.run_frame(_frame())
    assert trace.error is None
    assert trace.answer == "yes"
    assert [c.function for c in trace.calls] == ["detect", "verify"]
    assert [c.backend for c in trace.calls] == ["small", "v0"]
    for call in trace.calls:
        assert call.policy == "static:0"
        assert call.cost.latency_ms > 0
        assert call.cost.energy_source == "estimated"
        assert call.decision_us >= 0
    assert trace.wall_ms >= trace.backend_ms > 0


def test_static_policy_index_selects_backend() -> None:
    ex = _executor([_detector("small"), _detector("big")], [_verifier("v0", True), _verifier("v1", False)], "static:1")
    trace = ex.run_frame(_frame())
    assert [c.backend for c in trace.calls] == ["big", "v1"]
    assert trace.answer == "no"


def test_failing_backend_falls_back_and_trace_keeps_both() -> None:
    ex = _executor(
        [_failing("flaky", "detect", BackendTimeout("took too long")), _detector("big")],
        [_verifier("v0", True)],
    )
    trace = ex.run_frame(_frame())
    assert trace.error is None and trace.answer == "yes"
    detect = trace.calls[0]
    assert detect.backend == "big" and detect.backend_index == 1
    assert [a.backend for a in detect.attempts] == ["flaky"]
    assert "took too long" in detect.attempts[0].error
    assert trace.to_json()["calls"][0]["attempts"][0]["backend"] == "flaky"


def test_remote_failure_falls_back_to_best_local() -> None:
    assert fallback_order(3, [True, True, True, True]) == [3, 2, 1, 0]
    assert fallback_order(1, [True, True, False, True]) == [1, 3, 0]


def test_every_backend_failing_costs_the_frame_not_the_stream() -> None:
    ex = _executor([_failing("a", "detect", BackendError("boom"))], [_verifier("v0", True)])
    bad = ex.run_frame(_frame(0))
    assert bad.error is not None and "boom" in bad.error
    assert bad.calls[0].error is not None
    good_ex = _executor([_detector("small")], [_verifier("v0", True)])
    assert good_ex.run_frame(_frame(1)).answer == "yes"


def test_backend_returning_the_wrong_type_falls_back() -> None:
    wrong = CallableBackend.wrap("wrong", "detect", lambda req: Verdict(value=True))
    ex = _executor([wrong, _detector("ok")], [_verifier("v0", True)])
    trace = ex.run_frame(_frame())
    assert trace.calls[0].backend == "ok"
    assert "needs Detections" in trace.calls[0].attempts[0].error


def test_unreadable_frame_is_recorded() -> None:
    ex = _executor([_detector("small")], [_verifier("v0", True)])
    trace = ex.run_frame(Frame(frame_id="broken", ts=0.0, image=None, error="cannot decode x.png"))
    assert trace.error is not None and "cannot decode x.png" in trace.error and not trace.calls


def test_detection_boxes_are_reported_in_frame_pixels() -> None:
    nested = """
def execute_command(image):
    left = image.crop(32, 0, 64, 48)
    return len(left.find("circle"))
"""
    catalog = Catalog.from_backends({"detect": [_detector("d")]})
    ex = Executor(compile_program(nested), catalog, create("static:0"))
    trace = ex.run_frame(_frame())
    assert trace.answer == 1
    box = trace.calls[0].result[0]["box"]
    assert box[0] == pytest.approx(42.0) and box[2] == pytest.approx(52.0)


def test_local_only_site_never_uses_remote() -> None:
    remote = CallableBackend.wrap("cloud", "verify", lambda req: Verdict(value=False), location="remote")
    program = compile_program(PROGRAM)
    verify_site = next(s for s in program.sites if s.startswith("verify_property"))
    catalog = Catalog.from_backends({"detect": [_detector("d")], "verify": [_verifier("local", True), remote]})
    ex = Executor(program, catalog, create("static:1"), local_only_sites={verify_site})
    trace = ex.run_frame(_frame())
    assert trace.calls[1].backend == "local"


def test_catalog_missing_a_function_is_a_clear_error() -> None:
    catalog = Catalog.from_backends({"detect": [_detector("d")]})
    with pytest.raises(ConfigError, match="calls verify but catalog"):
        Executor(compile_program(PROGRAM), catalog, create("static:0"))


def test_trace_json_round_trip() -> None:
    from edgefmp.trace import Trace

    ex = _executor([_detector("small")], [_verifier("v0", True)])
    trace = ex.run_frame(_frame())
    again = Trace.from_json(trace.to_json())
    assert again.to_json() == trace.to_json()


def test_cascade_climbs_tiers_while_confidence_is_low() -> None:
    def unsure(name: str, confidence: float) -> CallableBackend:
        return CallableBackend.wrap(name, "verify", lambda req: Verdict(value=True, confidence=confidence))

    ex = _executor(
        [_detector("d")],
        [unsure("tiny", 0.1), unsure("small", 0.2), unsure("large", 0.95)],
        policy="cascade",
    )
    trace = ex.run_frame(_frame())
    assert [c.backend for c in trace.calls if c.function == "verify"] == ["tiny", "small", "large"]
    assert trace.answer == "yes"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowToDecide(Policy):
    """Stands in for a policy whose decisions are slow (paper's ResNet on a small CPU):
    each decision advances the executor's clock by 10 s."""

    name = "slow-to-decide"

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock

    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        self.clock.now += 10.0
        return Decision(0, 1.0)


def test_the_routers_decision_time_does_not_count_against_the_program() -> None:
    clock = FakeClock()
    catalog = Catalog.from_backends({"detect": [_detector("d")], "verify": [_verifier("v", True)]})
    ex = Executor(
        compile_program(PROGRAM), catalog, SlowToDecide(clock), budget=WorkBudget(max_seconds=5.0), clock=clock
    )
    trace = ex.run_frame(_frame())
    assert clock.now == 20.0  # two decisions, 10 s each, on a 5 s budget
    assert trace.error is None and trace.answer == "yes"


def test_a_frame_over_its_time_budget_says_where_the_time_went() -> None:
    clock = FakeClock()

    def slow_detect(req: object) -> Detections:
        clock.now += 7.0
        return Detections(boxes=[[10, 5, 20, 15]], scores=[0.9], labels=["circle"])

    catalog = Catalog.from_backends(
        {"detect": [CallableBackend.wrap("slow-det", "detect", slow_detect)], "verify": [_verifier("v", True)]}
    )
    ex = Executor(
        compile_program(PROGRAM), catalog, create("static:0"), budget=WorkBudget(max_seconds=5.0), clock=clock
    )
    trace = ex.run_frame(_frame())
    assert trace.error is not None and "max_seconds" in trace.error
    assert "7.00 s in 1 backend call(s)" in trace.error and "--max-seconds" in trace.error, trace.error


def test_unknown_local_only_sites_are_refused_listing_the_programs_sites() -> None:
    catalog = Catalog.from_backends({"detect": [_detector("d")], "verify": [_verifier("v", True)]})
    program = compile_program(PROGRAM)
    with pytest.raises(ConfigError, match="find@99:1") as info:
        Executor(program, catalog, create("static:0"), local_only_sites={"find@99:1"})
    assert all(site in str(info.value) for site in program.sites)
