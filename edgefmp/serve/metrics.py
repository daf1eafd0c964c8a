"""Prometheus metrics of one server, in the text exposition format (no client library needed).

Per endpoint and model: requests by status code, a latency histogram, and errors by reason
(bad_request, unauthorized, not_found, too_large, model_error, unavailable, internal); per
endpoint: the requests in flight (the model of a chat request is known only once its body is
read, so the gauge, set when a request arrives, has no model label). The
`model` label holds only served names ("-" otherwise), so a client cannot grow the label set
by sending made-up names. One `Metrics` object per app; it is thread-safe.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from edgefmp.serve.errors import reason_for

BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
PREFIX = "edgefmp_serve"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    total: float = 0.0
    n: int = 0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.n += 1


class Metrics:
    """Counters and histograms of the requests one app answered."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._errors: dict[tuple[str, str, str], int] = defaultdict(int)
        self._latency: dict[tuple[str, str], _Histogram] = defaultdict(_Histogram)
        self._in_flight: dict[str, int] = defaultdict(int)

    def started(self, endpoint: str) -> None:
        with self._lock:
            self._in_flight[endpoint] += 1

    def observe(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        """Record one finished request (`started(endpoint)` must have been called for it)."""
        with self._lock:
            self._in_flight[endpoint] -= 1
            self._requests[(endpoint, model, str(status))] += 1
            self._latency[(endpoint, model)].observe(seconds)
            if status >= 400:
                self._errors[(endpoint, model, reason_for(status))] += 1

    def render(self) -> str:
        """The text exposition format (version 0.0.4)."""
        with self._lock:
            requests = dict(self._requests)
            errors = dict(self._errors)
            latency = {k: _Histogram(list(h.counts), h.total, h.n) for k, h in self._latency.items()}
            in_flight = dict(self._in_flight)
        lines = [
            f"# HELP {PREFIX}_requests_total Requests answered, by endpoint, model and HTTP status.",
            f"# TYPE {PREFIX}_requests_total counter",
        ]
        for (endpoint, model, code), n in sorted(requests.items()):
            lines.append(f"{PREFIX}_requests_total{{{_labels(endpoint=endpoint, model=model, code=code)}}} {n}")
        lines += [
            f"# HELP {PREFIX}_errors_total Requests that failed, by endpoint, model and reason.",
            f"# TYPE {PREFIX}_errors_total counter",
        ]
        for (endpoint, model, reason), n in sorted(errors.items()):
            lines.append(f"{PREFIX}_errors_total{{{_labels(endpoint=endpoint, model=model, reason=reason)}}} {n}")
        lines += [
            f"# HELP {PREFIX}_request_duration_seconds Time from request to response.",
            f"# TYPE {PREFIX}_request_duration_seconds histogram",
        ]
        for (endpoint, model), hist in sorted(latency.items()):
            base = _labels(endpoint=endpoint, model=model)
            cumulative = 0
            for bound, count in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'{PREFIX}_request_duration_seconds_bucket{{{base},le="{le}"}} {cumulative}')
            lines.append(f"{PREFIX}_request_duration_seconds_sum{{{base}}} {hist.total:.6f}")
            lines.append(f"{PREFIX}_request_duration_seconds_count{{{base}}} {hist.n}")
        lines += [
            f"# HELP {PREFIX}_requests_in_flight Requests being answered now, by endpoint.",
            f"# TYPE {PREFIX}_requests_in_flight gauge",
        ]
        for endpoint, n in sorted(in_flight.items()):
            lines.append(f"{PREFIX}_requests_in_flight{{{_labels(endpoint=endpoint)}}} {n}")
        return "\n".join(lines) + "\n"
