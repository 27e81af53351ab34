"""What the JobManager and TaskManager processes share: arguments, logging, signals, errors."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Protocol

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
