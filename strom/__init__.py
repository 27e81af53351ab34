"""Strom: a stateful stream processor for Python in the architecture of Apache Flink."""

import os as _os

# gRPC's C core logs connection teardown (GOAWAY) at INFO on stderr; keep user output clean.
_os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

__version__ = "0.1.0"

__all__ = ["__version__"]
