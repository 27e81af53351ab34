"""``RestartStrategies``, as PyFlink names them: how a failed job runs again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any


def _ms(value: Any) -> int:
    to_ms = getattr(value, "to_milliseconds", None)
    if callable(to_ms):
        return int(to_ms())
    seconds = getattr(value, "total_seconds", None)
    if callable(seconds):
        return int(seconds() * 1000)
    return int(value)


class RestartStrategyConfiguration:
    """A restart strategy as Flink configuration keys."""

    def __init__(self, settings: dict[str, str], description: str) -> None:
        self.settings = settings
        self.description = description

    def to_configuration(self) -> dict[str, str]:
        return dict(self.settings)

    def get_description(self) -> str:
        return self.description

    def __repr__(self) -> str:
        return f"RestartStrategyConfiguration({self.description})"


class _NoRestart(RestartStrategyConfiguration):
    """No restarts: a failure fails the job."""

    def __init__(self) -> None:
        super().__init__({"restart-strategy.type": "none"}, "no restart")


class _FixedDelayRestart(RestartStrategyConfiguration):
    """Up to ``restart_attempts`` restarts, each after the delay."""

    def __init__(
        self, restart_attempts: int | None = None, delay_between_attempts_interval: Any = None
    ) -> None:
        self._attempts = restart_attempts
        self._delay = timedelta(milliseconds=_ms(delay_between_attempts_interval or 0))
        super().__init__(
            {
                "restart-strategy.type": "fixed-delay",
                "restart-strategy.fixed-delay.attempts": str(restart_attempts),
                "restart-strategy.fixed-delay.delay": f"{_ms(self._delay)} ms",
            },
            f"fixed delay: {restart_attempts} attempts",
        )

    def get_restart_attempts(self) -> int | None:
        return self._attempts

    def get_delay_between_attempts_interval(self) -> timedelta:
        return self._delay


class _FailureRateRestart(RestartStrategyConfiguration):
    """Restarts while fewer than ``max_failure_rate`` failures fall in ``failure_interval``."""

    def __init__(
        self,
        max_failure_rate: int | None = None,
        failure_interval: Any = None,
        delay_between_attempts_interval: Any = None,
    ) -> None:
        self._rate = max_failure_rate
        self._interval = timedelta(milliseconds=_ms(failure_interval or 0))
        self._delay = timedelta(milliseconds=_ms(delay_between_attempts_interval or 0))
        super().__init__(
            {
                "restart-strategy.type": "failure-rate",
                "restart-strategy.failure-rate.max-failures-per-interval": str(max_failure_rate),
                "restart-strategy.failure-rate.failure-rate-interval": (
                    f"{_ms(self._interval)} ms"
                ),
                "restart-strategy.failure-rate.delay": f"{_ms(self._delay)} ms",
            },
            f"failure rate: {max_failure_rate} per interval",
        )

    def get_max_failure_rate(self) -> int | None:
        return self._rate

    def get_failure_interval(self) -> timedelta:
        return self._interval

    def get_delay_between_attempts_interval(self) -> timedelta:
        return self._delay


class _FallbackRestart(RestartStrategyConfiguration):
    """The cluster's restart strategy."""

    def __init__(self) -> None:
        super().__init__({}, "the cluster's restart strategy")


class RestartStrategies:
    """Example: ``env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 1000))``"""

    NoRestartStrategyConfiguration = _NoRestart
    FixedDelayRestartStrategyConfiguration = _FixedDelayRestart
    FailureRateRestartStrategyConfiguration = _FailureRateRestart
    FallbackRestartStrategyConfiguration = _FallbackRestart

    @staticmethod
    def no_restart() -> RestartStrategyConfiguration:
        return _NoRestart()

    @staticmethod
    def fixed_delay_restart(
        restart_attempts: int, delay_between_attempts: Any
    ) -> RestartStrategyConfiguration:
        return _FixedDelayRestart(restart_attempts, delay_between_attempts)

    @staticmethod
    def failure_rate_restart(
        failure_rate: int, failure_interval: Any, delay_interval: Any
    ) -> RestartStrategyConfiguration:
        return _FailureRateRestart(failure_rate, failure_interval, delay_interval)

    @staticmethod
    def exponential_delay_restart(
        initial_backoff: Any,
        max_backoff: Any,
        backoff_multiplier: float,
        reset_backoff_threshold: Any,
        jitter_factor: float,
    ) -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration(
            {
                "restart-strategy.type": "exponential-delay",
                "restart-strategy.exponential-delay.initial-backoff": (
                    f"{_ms(initial_backoff)} ms"
                ),
                "restart-strategy.exponential-delay.max-backoff": f"{_ms(max_backoff)} ms",
                "restart-strategy.exponential-delay.backoff-multiplier": str(backoff_multiplier),
                "restart-strategy.exponential-delay.reset-backoff-threshold": (
                    f"{_ms(reset_backoff_threshold)} ms"
                ),
                "restart-strategy.exponential-delay.jitter-factor": str(jitter_factor),
            },
            "exponential delay",
        )

    @staticmethod
    def fall_back_restart() -> RestartStrategyConfiguration:
        return _FallbackRestart()
