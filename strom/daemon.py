"""What the JobManager and TaskManager processes share: arguments, logging, signals, errors."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Protocol, TextIO

from strom.configuration import StromConfig, load_configuration, parse_dynamic_properties
from strom.errors import StromError
from strom.process_identity import set_process_role

LOG_FORMAT = "%(asctime)s %(levelname)-5s [%(threadName)s] %(name)s: %(message)s"


class Service(Protocol):
    def start(self) -> None: ...
    def stop(self) -> None: ...


def configure_logging(log_file: str | None, level: str = "INFO") -> None:
    """Log to ``log_file`` (the scripts pass ``log/strom-...log``), else to stderr."""
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file)
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class LineAtomicWriter:
    """A text stream whose lines are never mixed with another thread's.

    ``print(x)`` writes ``x`` and the newline in two calls, so two task threads printing at
    once could produce ``1> a2> b`` in a TaskManager's ``.out`` file. Each thread's text is kept
    until it ends a line and whole lines are written under one lock, as Java's ``println`` is.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending = threading.local()

    def write(self, text: str) -> int:
        held = getattr(self._pending, "text", "")
        if "\n" not in text:
            self._pending.text = held + text
            return len(text)
        end = text.rindex("\n") + 1
        self._pending.text = text[end:]
        with self._lock:
            self._stream.write(held + text[:end])
        return len(text)

    def flush(self) -> None:
        held = getattr(self._pending, "text", "")
        with self._lock:
            if held:
                self._pending.text = ""
                self._stream.write(held)
            self._stream.flush()

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def untrusted_network_warning(config: StromConfig, service: object) -> str | None:
    """What a daemon logs at start while its gRPC ports take any caller; None once internal
    TLS (``security.ssl.internal.enabled``) authenticates its peers."""
    if config.get("security.ssl.internal.enabled"):
        return None
    ports = sorted({p for n in ("rpc_port", "port") if (p := getattr(service, n, 0))})
    listed = ", ".join(str(port) for port in ports) or "its ports"
    return (
        f"Internal TLS is off (security.ssl.internal.enabled): anyone who can reach ports "
        f"{listed} of this host can run code in this cluster (job graphs and records travel "
        "as pickles). Keep the cluster's ports on a trusted network, or turn on internal TLS."
    )


def run_daemon(
    role: str, description: str, argv: list[str] | None, build: Callable[[StromConfig], Service]
) -> int:
    """Parse arguments, start the service and block until SIGTERM/SIGINT; returns exit code."""
    set_process_role(role)
    parser = argparse.ArgumentParser(prog=role, description=description)
    parser.add_argument(
        "--conf-dir",
        "-c",
        default=None,
        help="folder of strom-conf.yaml (default: $STROM_CONF_DIR, else conf/)",
    )
    parser.add_argument(
        "-D",
        dest="dynamic",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a configuration key, overriding strom-conf.yaml",
    )
    args = parser.parse_args(argv)
    sys.stdout = LineAtomicWriter(sys.stdout)  # type: ignore[assignment]
    # `kill -USR1 <pid>` writes every thread's stack to the .out file (as jstack for Flink).
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    configure_logging(os.environ.get("STROM_LOG_FILE"), os.environ.get("STROM_LOG_LEVEL", "INFO"))
    log = logging.getLogger(role)
    try:
        config = load_configuration(args.conf_dir, parse_dynamic_properties(args.dynamic))
        service = build(config)
        service.start()
    except (StromError, OSError) as error:
        print(f"{role} could not start: {error}", file=sys.stderr)
        log.error("could not start: %s", error)
        return 1
    warning = untrusted_network_warning(config, service)
    if warning:
        log.warning(warning)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop.wait(1.0):
        pass
    service.stop()
    log.info("%s exited", role)
    return 0
