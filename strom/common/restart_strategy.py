"""``RestartStrategies``, as PyFlink names them: how a failed job runs again."""

from __future__ import annotations

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


class RestartStrategies:
    """Example: ``env.set_restart_strategy(RestartStrategies.fixed_delay_restart(3, 1000))``"""

    NoRestartStrategyConfiguration = RestartStrategyConfiguration
    FixedDelayRestartStrategyConfiguration = RestartStrategyConfiguration
    FailureRateRestartStrategyConfiguration = RestartStrategyConfiguration
    FallbackRestartStrategyConfiguration = RestartStrategyConfiguration

    @staticmethod
    def no_restart() -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration({"restart-strategy.type": "none"}, "no restart")

    @staticmethod
    def fixed_delay_restart(
        restart_attempts: int, delay_between_attempts: Any
    ) -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration(
            {
                "restart-strategy.type": "fixed-delay",
                "restart-strategy.fixed-delay.attempts": str(restart_attempts),
                "restart-strategy.fixed-delay.delay": f"{_ms(delay_between_attempts)} ms",
            },
            f"fixed delay: {restart_attempts} attempts",
        )

    @staticmethod
    def failure_rate_restart(
        failure_rate: int, failure_interval: Any, delay_interval: Any
    ) -> RestartStrategyConfiguration:
        return RestartStrategyConfiguration(
            {
                "restart-strategy.type": "failure-rate",
                "restart-strategy.failure-rate.max-failures-per-interval": str(failure_rate),
                "restart-strategy.failure-rate.failure-rate-interval": (
                    f"{_ms(failure_interval)} ms"
                ),
                "restart-strategy.failure-rate.delay": f"{_ms(delay_interval)} ms",
            },
            f"failure rate: {failure_rate} per interval",
        )

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
        return RestartStrategyConfiguration({}, "the cluster's restart strategy")
