"""A circuit breaker for remote backends.

When a server is down, waiting for every call to time out (times its retries) would stall the
stream for seconds per frame. The breaker counts consecutive failed calls; after
`failure_threshold` of them it opens, and for `cooldown_s` the backend reports itself
unavailable and refuses calls without touching the network, so the executor falls back at once.
After the cooldown one trial call is let through (half-open): success closes the circuit,
failure opens it for another cooldown.

Thread-safe: the executor may call one backend from several threads.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Literal

log = logging.getLogger(__name__)

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Consecutive-failure breaker with a cooldown and a single half-open trial.

    `clock` is injectable (seconds, monotonic) so tests can step time instead of sleeping.
    `name` only labels log lines.
    """

    def __init__(
        self,
        failure_threshold: int,
        cooldown_s: float,
        *,
        name: str = "circuit",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if cooldown_s < 0:
            raise ValueError(f"cooldown_s must be >= 0, got {cooldown_s}")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    def _state_locked(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.cooldown_s:
            return "half-open"
        return "open"

    @property
    def state(self) -> State:
        with self._lock:
            return self._state_locked()

    def available(self) -> bool:
        """True when a call would be let through now (does not reserve the half-open trial)."""
        with self._lock:
            state = self._state_locked()
            return state == "closed" or (state == "half-open" and not self._trial_in_flight)

    def retry_in_s(self) -> float:
        """Seconds until the next trial is allowed (0 when not open)."""
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def try_acquire(self) -> bool:
        """Ask to make a call. In half-open state only the first caller gets the trial."""
        with self._lock:
            state = self._state_locked()
            if state == "closed":
                return True
            if state == "half-open" and not self._trial_in_flight:
                self._trial_in_flight = True
                log.info("%s: half-open, letting one trial call through", self.name)
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("%s: trial call succeeded, circuit closed", self.name)
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            if self._trial_in_flight or self._opened_at is not None:
                # A failed half-open trial (or a call that was already under way when the
                # circuit opened) re-opens it for a fresh cooldown.
                what = "trial call" if self._trial_in_flight else "call in flight"
                self._opened_at = self._clock()
                self._trial_in_flight = False
                log.warning("%s: %s failed, circuit open for %.1f s", self.name, what, self.cooldown_s)
                return
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._opened_at = self._clock()
                log.warning(
                    "%s: %d consecutive failures, circuit open for %.1f s",
                    self.name,
                    self._failures,
                    self.cooldown_s,
                )

    def release(self) -> None:
        """End a call that neither succeeded nor failed the server (e.g. a bad answer):
        frees a half-open trial without changing the state."""
        with self._lock:
            self._trial_in_flight = False
