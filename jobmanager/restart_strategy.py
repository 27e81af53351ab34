"""Restart strategies, with Flink's names and options: when a failed job runs again.

``on_failure(now)`` answers the delay before the next attempt, or None when the job must
fail for good. Pure: the caller passes the time.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping
from typing import Any

from strom.configuration import parse_duration_ms


class RestartStrategy:
    name = "none"

    def on_failure(self, now: float) -> float | None:
        return None

    def describe(self) -> str:
        return "Restart deactivated."


class NoRestart(RestartStrategy):
    pass


class FixedDelay(RestartStrategy):
    name = "fixed-delay"

    def __init__(self, attempts: int, delay_s: float) -> None:
        self.attempts, self.delay_s, self.used = attempts, delay_s, 0

    def on_failure(self, now: float) -> float | None:
        if self.used >= self.attempts:
            return None
        self.used += 1
        return self.delay_s

    def describe(self) -> str:
        return f"Restart with fixed delay ({self.delay_s} s); attempts: {self.attempts}."


class FailureRate(RestartStrategy):
    name = "failure-rate"

    def __init__(self, max_failures: int, interval_s: float, delay_s: float) -> None:
        self.max_failures, self.interval_s, self.delay_s = max_failures, interval_s, delay_s
        self.failures: deque[float] = deque()

    def on_failure(self, now: float) -> float | None:
        while self.failures and now - self.failures[0] > self.interval_s:
            self.failures.popleft()
        if len(self.failures) >= self.max_failures:
            return None
        self.failures.append(now)
        return self.delay_s

    def describe(self) -> str:
        return (
            f"Failure rate restart with at most {self.max_failures} failure(s) in "
            f"{self.interval_s} s; delay {self.delay_s} s."
        )


class ExponentialDelay(RestartStrategy):
    name = "exponential-delay"

    def __init__(
        self,
        initial_s: float,
        max_s: float,
        multiplier: float,
        reset_threshold_s: float,
        jitter: float,
        attempts: int | None = None,
    ) -> None:
        self.initial_s, self.max_s, self.multiplier = initial_s, max_s, multiplier
        self.reset_threshold_s, self.jitter, self.attempts = reset_threshold_s, jitter, attempts
        self.current = initial_s
        self.last_failure: float | None = None
        self.used = 0

    def on_failure(self, now: float) -> float | None:
        if self.attempts is not None and self.used >= self.attempts:
            return None
        if self.last_failure is not None and now - self.last_failure > self.reset_threshold_s:
            self.current = self.initial_s
        elif self.last_failure is not None:
            self.current = min(self.current * self.multiplier, self.max_s)
        self.last_failure = now
        self.used += 1
        spread = self.current * self.jitter
        return max(0.0, self.current + random.uniform(-spread, spread))

    def describe(self) -> str:
        return f"Exponential delay restart from {self.initial_s} s up to {self.max_s} s."


def _ms(config: Mapping[str, Any], key: str, default: str) -> float:
    return parse_duration_ms(config.get(key, default)) / 1000.0


def from_config(config: Mapping[str, Any], checkpointing: bool) -> RestartStrategy:
    """The strategy Flink's keys describe; with checkpointing and no strategy set,
    Flink's default: fixed delay, practically unlimited attempts, 1 s apart."""
    kind = str(config.get("restart-strategy.type") or config.get("restart-strategy") or "")
    kind = kind.strip().lower().replace("fixeddelay", "fixed-delay")
    kind = kind.replace("failurerate", "failure-rate").replace(
        "exponentialdelay", "exponential-delay"
    )
    if not kind:
        kind = "fixed-delay" if checkpointing else "none"
    if kind in ("none", "off", "disable"):
        return NoRestart()
    if kind == "fixed-delay":
        attempts = int(config.get("restart-strategy.fixed-delay.attempts", 2**31 - 1))
        return FixedDelay(attempts, _ms(config, "restart-strategy.fixed-delay.delay", "1 s"))
    if kind == "failure-rate":
        return FailureRate(
            int(config.get("restart-strategy.failure-rate.max-failures-per-interval", 1)),
            _ms(config, "restart-strategy.failure-rate.failure-rate-interval", "1 min"),
            _ms(config, "restart-strategy.failure-rate.delay", "1 s"),
        )
    if kind == "exponential-delay":
        attempts = config.get("restart-strategy.exponential-delay.attempts-before-reset-backoff")
        return ExponentialDelay(
            _ms(config, "restart-strategy.exponential-delay.initial-backoff", "1 s"),
            _ms(config, "restart-strategy.exponential-delay.max-backoff", "1 min"),
            float(config.get("restart-strategy.exponential-delay.backoff-multiplier", 2.0)),
            _ms(config, "restart-strategy.exponential-delay.reset-backoff-threshold", "1 h"),
            float(config.get("restart-strategy.exponential-delay.jitter-factor", 0.1)),
            int(attempts) if attempts is not None else None,
        )
    raise ValueError(f"unknown restart strategy '{kind}'")
