"""Errors that Strom shows to users; each message says what is wrong and what would fix it."""

from __future__ import annotations


class StromError(Exception):
    """Base of Strom's own errors."""


class ConfigurationError(StromError):
    """A configuration key or value is not allowed; the message names key, value and rule."""


class ClusterUnreachableError(StromError):
    """No JobManager answers at the configured address."""


class JobExecutionError(StromError):
    """A job failed; ``remote_traceback`` holds the failure as the cluster saw it."""

    def __init__(self, message: str, remote_traceback: str = "") -> None:
        super().__init__(message)
        self.remote_traceback = remote_traceback

    def __str__(self) -> str:
        text = super().__str__()
        if self.remote_traceback:
            return f"{text}\n\n{self.remote_traceback.rstrip()}"
        return text


class UnsupportedFeatureError(StromError, NotImplementedError):
    """A PyFlink name that Strom does not provide (e.g. a connector that is a JVM library);
    the message starts with ``not supported in Strom:`` and says why and what to use instead."""
