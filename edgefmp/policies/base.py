"""The routing-policy interface.

The executor asks the policy at every neural call, as the program runs:
`choose(site, context) -> Decision`. After a frame, when its feedback arrives (at once, later,
or never), the runtime calls `update(trace, reward)`. State goes to JSON-able dicts with numpy
arrays allowed (saved as JSON + npz, never pickle).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from edgefmp.frame import Frame
from edgefmp.results import Request
from edgefmp.trace import CallRecord, Cost, Trace


@dataclass(frozen=True)
class BackendInfo:
    """What a policy may know about a backend without touching it."""

    name: str
    location: str
    prior: Cost | None = None
    params: float | None = None
    accuracy: float | None = None  # offline-measured share of right answers (catalog `accuracy:`)


@dataclass(frozen=True)
class SiteInfo:
    """A call site of the program: `site_id` is stable across runs of the same source."""

    site_id: str
    function: str
    backends: tuple[BackendInfo, ...]
    local_only: bool = False


@dataclass
class DecisionContext:
    """Everything known when a call is about to be made.

    `available[i]` is False for a backend that cannot be used now (remote circuit open, or a
    remote backend at a local_only site); a policy must not choose it.
    """

    frame: Frame
    request: Request
    calls_so_far: list[CallRecord]
    available: list[bool]
    frame_index: int = 0
    cache: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """The chosen backend index, the probability the policy had of choosing it (for off-policy
    evaluation), and optionally the features it decided on (stored in the trace)."""

    index: int
    propensity: float = 1.0
    features: tuple[float, ...] | None = None


class Policy(ABC):
    """Chooses a backend per call; learns from rewards."""

    name: str = ""

    @abstractmethod
    def choose(self, site: SiteInfo, context: DecisionContext) -> Decision:
        """Pick a backend index for this call among the available ones."""

    def update(self, trace: Trace, reward: float) -> None:
        """Learn from a frame's reward; credit goes only to the sites that ran in `trace`."""

    def observe(self, trace: Trace) -> None:
        """See a frame's measured costs as soon as it finishes, before (or without) feedback.

        Budgets need every frame's cost even when its label comes late or never; the runtime
        calls this once per frame. Default: nothing.
        """

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.name}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""


def preference_order(preferred: int, n: int) -> list[int]:
    """`preferred`, then the more capable backends in order, then the cheaper ones from the most
    capable down: where to go when a backend is unavailable or fails (a failing remote model
    lands on the best local one)."""
    return [preferred, *range(preferred + 1, n), *range(preferred - 1, -1, -1)]


def first_available(available: list[bool], preferred: int) -> int:
    """The first available backend in `preference_order`, or `preferred` if none is."""
    preferred = min(max(preferred, 0), len(available) - 1)
    return next((i for i in preference_order(preferred, len(available)) if available[i]), preferred)
