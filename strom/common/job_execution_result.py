"""``JobExecutionResult``, as ``pyflink.common.job_execution_result`` (defined with the
environment)."""

from strom.datastream.stream_execution_environment import JobExecutionResult

__all__ = ["JobExecutionResult"]
