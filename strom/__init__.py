"""Strom: a stateful stream processor for Python in the architecture of Apache Flink."""

__version__ = "0.1.0"

__all__ = ["__version__"]
