"""``JobClient``, as ``pyflink.common.job_client`` (defined with the environment)."""

from strom.datastream.stream_execution_environment import JobClient

__all__ = ["JobClient"]
