"""Prometheus metrics of sessions and escalations.

Counters of transitions (not gauges of totals) so that every replica can count
its own and Prometheus sums them: active sessions are
``sum(switchboard_sessions_started_total) - sum(switchboard_sessions_finished_total)``,
the cancel rate is ``rate(..._finished_total{status="cancelled"}) / rate(..._started_total)``,
and the p50/p90 durations are ``histogram_quantile`` of ``switchboard_escalation_seconds``.
The exact figures from Postgres are the ``GetMetrics`` RPC.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SESSIONS_STARTED = Counter(
    "switchboard_sessions_started_total",
    "Sessions created, by channel and agent.",
    ["channel", "agent"],
)
SESSIONS_FINISHED = Counter(
    "switchboard_sessions_finished_total",
    "Sessions that left the active status, by final status, channel and agent.",
    ["status", "channel", "agent"],
)
ESCALATION_STEPS = Counter(
    "switchboard_escalation_steps_total",
    "Escalation steps taken: opened, claimed, resolved.",
    ["step"],
)
ESCALATION_SECONDS = Histogram(
    "switchboard_escalation_seconds",
    "Time to escalation (session start to opened), to claim and to resolution (both from opened),"
    " and handled by a human (claimed to resolved).",
    ["phase"],
    buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
