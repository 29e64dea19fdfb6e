"""Redis health as a circuit breaker: after a failure Redis is skipped for a moment.

A Redis that is down or hung would otherwise cost every request its timeout.
Whoever reads a cache through Redis shares one ``RedisHealth`` per process and
Redis (the thread store's cache and change feed, ``GrpcThreadStore``'s page
revalidation) and falls back to the source of truth while it is open.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from prometheus_client import Counter

log = logging.getLogger(__name__)

REDIS_FAILURES = Counter("switchboard_redis_failures_total", "Redis calls that failed and fell back.", ["op"])


@dataclass
class RedisHealth:
    """A small circuit breaker shared by everything that talks to one Redis.

    After a failure Redis is skipped for ``cooldown`` seconds, so a dead Redis
    costs one timeout, not one per request.
    """

    cooldown: float = 1.0
    down_until: float = 0.0
    failures: int = field(default=0)

    @property
    def available(self) -> bool:
        """Whether Redis may be tried now."""
        return time.monotonic() >= self.down_until

    def failed(self, op: str, error: BaseException) -> None:
        """Record a failure and open the breaker."""
        self.failures += 1
        REDIS_FAILURES.labels(op).inc()
        if self.available:
            log.warning("Redis %s failed (%s: %s); falling back", op, type(error).__name__, error)
        self.down_until = time.monotonic() + self.cooldown
