"""The edge's per-user token bucket, on a clock the test moves (no dependence on machine speed)."""

from __future__ import annotations

import pytest

from services.edge.auth import RateLimited, RateLimiter


class FakeClock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_admitted_and_the_next_request_is_limited_with_a_retry_time() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=2.0, burst=5, clock=clock)
    for _ in range(5):
        limiter.check("alice")
    with pytest.raises(RateLimited) as raised:
        limiter.check("alice")
    assert raised.value.retry_after == pytest.approx(0.5)


def test_tokens_refill_at_the_configured_rate_and_never_past_the_burst() -> None:
    clock = FakeClock()
    limiter = RateLimiter(per_second=2.0, burst=3, clock=clock)
    for _ in range(3):
        limiter.check("alice")
    clock.now += 0.5  # one token back
    limiter.check("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")
    clock.now += 3600  # an hour idle refills to the burst, not beyond
    for _ in range(3):
        limiter.check("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")


def test_one_users_limit_does_not_touch_another_user() -> None:
    limiter = RateLimiter(per_second=1.0, burst=1, clock=FakeClock())
    limiter.check("alice")
    with pytest.raises(RateLimited):
        limiter.check("alice")
    limiter.check("bob")
