"""The circuit breaker's state machine, stepped with a fake clock (no sleeping)."""

from __future__ import annotations

import pytest

from edgefmp.backends.circuit import CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_and_half_opens_after_cooldown() -> None:
    clock = FakeClock()
    cb = CircuitBreaker(3, 10.0, clock=clock)
    for _ in range(2):
        assert cb.try_acquire()
        cb.record_failure()
    assert cb.state == "closed"
    assert cb.try_acquire()
    cb.record_failure()
    assert cb.state == "open" and not cb.available() and not cb.try_acquire()
    assert cb.retry_in_s() == pytest.approx(10.0)
    clock.now += 10.0
    assert cb.state == "half-open" and cb.available()
    assert cb.try_acquire()  # the one trial
    assert not cb.try_acquire() and not cb.available()  # nobody else meanwhile
    cb.record_success()
    assert cb.state == "closed" and cb.try_acquire()


def test_failed_trial_reopens_for_a_fresh_cooldown() -> None:
    clock = FakeClock()
    cb = CircuitBreaker(1, 5.0, clock=clock)
    cb.record_failure()
    clock.now += 5.0
    assert cb.try_acquire()
    cb.record_failure()
    assert cb.state == "open"
    clock.now += 4.9
    assert not cb.available()
    clock.now += 0.1
    assert cb.available()


def test_success_resets_the_count() -> None:
    cb = CircuitBreaker(2, 1.0, clock=FakeClock())
    cb.record_failure()
    cb.record_success()
    cb.record_failure()
    assert cb.state == "closed"


def test_release_frees_the_trial() -> None:
    clock = FakeClock()
    cb = CircuitBreaker(1, 1.0, clock=clock)
    cb.record_failure()
    clock.now += 1.0
    assert cb.try_acquire()
    cb.release()
    assert cb.try_acquire()


@pytest.mark.parametrize(("threshold", "cooldown"), [(0, 1.0), (1, -1.0)])
def test_bad_settings_are_rejected(threshold: int, cooldown: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, cooldown)
