"""What one frame's execution produced: its calls, their costs, its answer.

The trace is the unit that flows to feedback, sinks, replay and benchmarks; its JSON form
(`Trace.to_json`) is versioned by `TRACE_VERSION`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

TRACE_VERSION = 1


@dataclass
class Cost:
    """Measured cost of one call (or a sum of calls).

    `energy_source` names the meter (nvml, jetson, rapl, estimated); an estimated figure always
    says so. `money` is in US dollars for paid APIs.
    """

    latency_ms: float = 0.0
    energy_j: float = 0.0
    energy_source: str = "estimated"
    bytes_up: int = 0
    bytes_down: int = 0
    money: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        # Labels are sets of meter names joined by "+": split them, or sums of sums grow
        # "rapl+rapl+estimated" instead of staying "estimated+rapl".
        sources = set(self.energy_source.split("+")) | set(other.energy_source.split("+"))
        sources -= {"none", ""}
        return Cost(
            latency_ms=self.latency_ms + other.latency_ms,
            energy_j=self.energy_j + other.energy_j,
            energy_source="+".join(sorted(sources)) if sources else "none",
            bytes_up=self.bytes_up + other.bytes_up,
            bytes_down=self.bytes_down + other.bytes_down,
            money=self.money + other.money,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cost:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass
class Attempt:
    """A backend call that failed before the call fell back to another backend."""

    backend: str
    error: str
    cost: Cost


@dataclass
class CallRecord:
    """One neural call of a frame: where in the program, which backend, what it cost."""

    site: str
    function: str
    backend: str | None
    backend_index: int | None
    args: dict[str, Any]
    result: Any = None
    confidence: float | None = None
    cost: Cost = field(default_factory=Cost)
    error: str | None = None
    policy: str = ""
    propensity: float | None = None
    decision_us: float = 0.0
    attempts: list[Attempt] = field(default_factory=list)
    features: list[float] | None = None

    @property
    def fell_back(self) -> bool:
        return bool(self.attempts)

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "site": self.site,
            "function": self.function,
            "backend": self.backend,
            "backend_index": self.backend_index,
            "args": self.args,
            "result": self.result,
            "confidence": None if self.confidence is None else round(float(self.confidence), 4),
            "cost": self.cost.to_json(),
            "error": self.error,
            "policy": self.policy,
            "propensity": self.propensity,
            "decision_us": round(self.decision_us, 2),
        }
        if self.attempts:
            d["attempts"] = [{"backend": a.backend, "error": a.error, "cost": a.cost.to_json()} for a in self.attempts]
        if self.features is not None:
            d["features"] = [round(float(x), 5) for x in self.features]
        return d

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallRecord:
        return cls(
            site=data["site"],
            function=data["function"],
            backend=data.get("backend"),
            backend_index=data.get("backend_index"),
            args=data.get("args", {}),
            result=data.get("result"),
            confidence=data.get("confidence"),
            cost=Cost.from_json(data.get("cost", {})),
            error=data.get("error"),
            policy=data.get("policy", ""),
            propensity=data.get("propensity"),
            decision_us=data.get("decision_us", 0.0),
            attempts=[
                Attempt(a["backend"], a["error"], Cost.from_json(a.get("cost", {}))) for a in data.get("attempts", [])
            ],
            features=data.get("features"),
        )


@dataclass
class Trace:
    """The record of one frame.

    `wall_ms` is the frame's whole execution time; `backend_ms` the part spent inside backends,
    so `wall_ms - backend_ms` is what the runtime itself cost.
    """

    frame_id: str
    ts: float
    calls: list[CallRecord] = field(default_factory=list)
    answer: Any = None
    error: str | None = None
    wall_ms: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def cost(self) -> Cost:
        total = Cost(energy_source="none")
        for call in self.calls:
            total = total + call.cost
            for attempt in call.attempts:
                total = total + attempt.cost
        return total

    @property
    def backend_ms(self) -> float:
        return self.cost.latency_ms

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": TRACE_VERSION,
            "frame_id": self.frame_id,
            "ts": self.ts,
            "answer": self.answer,
            "error": self.error,
            "wall_ms": round(self.wall_ms, 4),
            "backend_ms": round(self.backend_ms, 4),
            "cost": self.cost.to_json(),
            "calls": [c.to_json() for c in self.calls],
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trace:
        if data.get("version") != TRACE_VERSION:
            raise ValueError(
                f"trace version {data.get('version')!r} is not supported (this edgefmp reads {TRACE_VERSION})"
            )
        return cls(
            frame_id=data["frame_id"],
            ts=data["ts"],
            calls=[CallRecord.from_json(c) for c in data.get("calls", [])],
            answer=data.get("answer"),
            error=data.get("error"),
            wall_ms=data.get("wall_ms", 0.0),
            meta=data.get("meta", {}),
        )
