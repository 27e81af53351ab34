"""Strom's configuration: the one table of every key, its default and what it allows.

Keys use Flink's names where Flink has one. ``conf/strom-conf.yaml`` may write them as flat
dotted keys (``jobmanager.rpc.port: 6123``) or as nested maps (``jobmanager: {rpc: {port: 6123}}``).
An unknown key or a bad value raises :class:`ConfigurationError` naming the key, the value and
what is allowed.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from strom.errors import ConfigurationError

CONF_FILE_NAME = "strom-conf.yaml"


@dataclass(frozen=True)
class ConfigOption:
    key: str
    default: Any
    parse: Callable[[Any], Any]
    allowed: str
    description: str


_DURATION_UNITS_MS = {
    "ms": 1,
    "milli": 1,
    "millis": 1,
    "millisecond": 1,
    "milliseconds": 1,
    "s": 1000,
    "sec": 1000,
    "secs": 1000,
    "second": 1000,
    "seconds": 1000,
    "min": 60_000,
    "m": 60_000,
    "minute": 60_000,
    "minutes": 60_000,
    "h": 3_600_000,
    "hour": 3_600_000,
    "hours": 3_600_000,
    "d": 86_400_000,
    "day": 86_400_000,
    "days": 86_400_000,
}
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


def parse_duration_ms(value: Any) -> int:
    """A duration as Flink writes it (``100 ms``, ``10 s``, ``1 min``) or a number of millis."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(value)
        return value
    match = _DURATION_RE.match(str(value))
    if not match:
        raise ValueError(value)
    number, unit = int(match.group(1)), match.group(2).lower() or "ms"
    if unit not in _DURATION_UNITS_MS:
        raise ValueError(value)
    return number * _DURATION_UNITS_MS[unit]


_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "bytes": 1,
    "k": 1024,
    "kb": 1024,
    "kibibytes": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mebibytes": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gibibytes": 1024**3,
}


def parse_memory_bytes(value: Any) -> int:
    """A memory size as Flink writes it (``64 mb``, ``1 gb``, ``512k``) or a number of bytes."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(value)
        return value
    match = _DURATION_RE.match(str(value))
    if not match or match.group(2).lower() not in _MEMORY_UNITS:
        raise ValueError(value)
    return int(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()]


def _int_in(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(value)
        number = int(str(value).strip()) if not isinstance(value, int) else value
        if number < low or (high is not None and number > high):
            raise ValueError(value)
        return number

    return parse


def _text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)):
        raise ValueError(value)
    text = str(value).strip()
    if not text:
        raise ValueError(value)
    return text


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_optional(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return parse(value)

    return parse_optional


def _one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in choices:
            raise ValueError(value)
        return text

    return parse


def _origins(value: Any) -> str:
    """Web origins (``scheme://host[:port]``), comma-separated; ``*`` is refused."""
    origins = [part.strip().rstrip("/") for part in _text(value).split(",") if part.strip()]
    if not origins or any(not re.match(r"^https?://[^/\s*]+$", origin) for origin in origins):
        raise ValueError(value)
    return ",".join(origins)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError(value)


_PORT = _int_in(0, 65535)
_DURATION = "a duration such as 500 ms, 10 s or 1 min (a bare number is millis)"

OPTIONS: dict[str, ConfigOption] = {
    option.key: option
    for option in [
        ConfigOption(
            "jobmanager.rpc.address",
            "localhost",
            _text,
            "a host name or address",
            "Where TaskManagers and clients reach the JobManager's gRPC server.",
        ),
        ConfigOption(
            "jobmanager.rpc.port",
            6123,
            _PORT,
            "a port number from 0 to 65535",
            "The JobManager's gRPC port.",
        ),
        ConfigOption(
            "jobmanager.bind-host",
            None,
            _optional(_text),
            "a host name or address to bind to (default: jobmanager.rpc.address)",
            "The address the JobManager's gRPC server binds to.",
        ),
        ConfigOption(
            "rest.address",
            None,
            _optional(_text),
            "a host name or address (default: jobmanager.rpc.address)",
            "Where clients reach the REST API and dashboard.",
        ),
        ConfigOption(
            "rest.bind-address",
            None,
            _optional(_text),
            "a host name or address to bind to (default: rest.address)",
            "The address the REST server binds to.",
        ),
        ConfigOption(
            "rest.port",
            8081,
            _PORT,
            "a port number from 0 to 65535",
            "The port of the REST API and web dashboard.",
        ),
        ConfigOption(
            "rest.server.numThreads",
            8,
            _int_in(1, 256),
            "an integer from 1 to 256",
            "Threads that answer REST requests; at most 32 requests per thread wait for one, "
            "more are answered 503 at once.",
        ),
        ConfigOption(
            "rest.server.max-content-length",
            1_048_576,
            _int_in(1),
            "a number of bytes of at least 1",
            "The largest request body the REST server reads; a larger one is answered 413.",
        ),
        ConfigOption(
            "rest.server.max-connections",
            1000,
            _int_in(1, 1_000_000),
            "an integer of at least 1",
            "Open REST connections beyond this many are closed as soon as they are accepted.",
        ),
        ConfigOption(
            "rest.server.header-timeout",
            10_000,
            parse_duration_ms,
            _DURATION,
            "A REST connection that has not sent a whole request (headers and body) within "
            "this time is closed.",
        ),
        ConfigOption(
            "rest.server.idle-timeout",
            60_000,
            parse_duration_ms,
            _DURATION,
            "A REST connection idle for this long between requests is closed.",
        ),
        ConfigOption(
            "web.access-control-allow-origin",
            None,
            _optional(_origins),
            "comma-separated origins such as https://ops.example.com (never *; unset: "
            "same-origin only)",
            "Other web origins whose pages may call the REST API from a browser.",
        ),
        ConfigOption(
            "security.rest.token",
            None,
            _optional(_text),
            "a secret string",
            "The access token that requests changing jobs (REST cancel, stop, savepoint; gRPC "
            "submit, cancel, savepoint) must send as 'Authorization: Bearer <token>'; the CLI "
            "sends it from its configuration. Unset: no token is asked for.",
        ),
        ConfigOption(
            "security.rest.token-file",
            None,
            _optional(_text),
            "the path of a file holding the token",
            "Like security.rest.token, read from a file (keeps the secret out of the config).",
        ),
        ConfigOption(
            "security.ssl.rest.enabled",
            False,
            _boolean,
            "true or false",
            "Serve the REST API and dashboard over HTTPS.",
        ),
        ConfigOption(
            "security.ssl.rest.keystore",
            None,
            _optional(_text),
            "the path of a PEM file with the server's certificate chain and private key",
            "The REST server's certificate and key (PEM, not a Java keystore).",
        ),
        ConfigOption(
            "security.ssl.rest.key-password",
            None,
            _optional(_text),
            "the password of the keystore's private key",
            "Decrypts an encrypted private key in security.ssl.rest.keystore.",
        ),
        ConfigOption(
            "security.ssl.internal.enabled",
            False,
            _boolean,
            "true or false",
            "Mutual TLS on every gRPC connection of the cluster (JobManager, TaskManagers, "
            "slot processes, their data exchange, clients): a peer without a certificate "
            "signed by security.ssl.internal.trust-cert is refused at the handshake.",
        ),
        ConfigOption(
            "security.ssl.internal.cert",
            None,
            _optional(_text),
            "the path of a PEM file with this node's certificate (chain); {host} in it stands "
            "for this host's name",
            "This process's certificate for internal TLS (Flink's internal keystore, as PEM).",
        ),
        ConfigOption(
            "security.ssl.internal.key",
            None,
            _optional(_text),
            "the path of a PEM file with the certificate's private key (unencrypted); {host} "
            "in it stands for this host's name",
            "The private key of security.ssl.internal.cert.",
        ),
        ConfigOption(
            "security.ssl.internal.trust-cert",
            None,
            _optional(_text),
            "the path of a PEM file with the cluster's CA certificate",
            "The CA whose certificates internal TLS accepts (Flink's internal truststore, as "
            "PEM); 'bin/strom certs' makes one.",
        ),
        ConfigOption(
            "taskmanager.numberOfTaskSlots",
            1,
            _int_in(1, 1024),
            "an integer from 1 to 1024",
            "How many task slots each TaskManager offers.",
        ),
        ConfigOption(
            "taskmanager.cpu-affinity",
            True,
            _boolean,
            "true or false",
            "Each slot process (and an embedded mini-cluster) keeps its task threads on one "
            "CPU that no other Strom process on the host claimed, while one is free: threads "
            "that take turns under the GIL then share a core's cache instead of moving each "
            "batch between cores. Set false when user functions run parallel work on threads "
            "of their own (they inherit the CPU).",
        ),
        ConfigOption(
            "taskmanager.slot-process.prestart",
            True,
            _boolean,
            "true or false",
            "Each free slot keeps a slot process started (forked from the template and "
            "serving) before any job comes: a deployment takes it and tells it its job, "
            "instead of waiting for a process to start. It has loaded nothing of any job. "
            "False starts each job's slot processes when the job is deployed.",
        ),
        ConfigOption(
            "taskmanager.network.shared-memory",
            True,
            _boolean,
            "true or false",
            "Records between slot processes of one host go through shared-memory rings in "
            "/dev/shm instead of gRPC (taskmanager/network/shared_rings.py); false sends "
            "them over gRPC as between hosts. A process set false neither offers nor takes "
            "rings.",
        ),
        ConfigOption(
            "python.executable",
            None,
            _optional(_text),
            "an absolute path of a Python interpreter of the client's version, on every "
            "TaskManager",
            "The interpreter a job's user functions run in (Flink's key; strom run -pyexec): "
            "its slot processes start with it instead of forking from the TaskManager's, and "
            "see its packages after Strom's. Unset: the TaskManager's own.",
        ),
        ConfigOption(
            "taskmanager.testing.prepare-slots-gate",
            None,
            _optional(_text),
            "a file path",
            "For tests only, never in production: a TaskManager with this key holds every "
            "deployment's first phase (PrepareSlots) until this file exists (at most 60 s), "
            "after writing '<path>.reached', so that a test can act while a deployment is "
            "under way.",
        ),
        ConfigOption(
            "task.cancellation.timeout",
            180000,
            parse_duration_ms,
            _DURATION,
            "How long a cancelled task may take to end before its slot process is killed "
            "(Flink's watchdog); 0 waits for ever.",
        ),
        ConfigOption(
            "taskmanager.host",
            None,
            _optional(_text),
            "a host name or address (default: the address that reaches the JobManager)",
            "The address a TaskManager advertises to the JobManager and other TaskManagers.",
        ),
        ConfigOption(
            "taskmanager.bind-host",
            None,
            _optional(_text),
            "a host name or address to bind to (default: taskmanager.host)",
            "The address a TaskManager's gRPC server binds to.",
        ),
        ConfigOption(
            "taskmanager.rpc.port",
            0,
            _PORT,
            "a port number from 0 to 65535 (0: any free port)",
            "The TaskManager's gRPC port, for control and data.",
        ),
        ConfigOption(
            "taskmanager.resource-id",
            None,
            _optional(_text),
            "a string (default: generated from host and a random suffix)",
            "The TaskManager's id in the cluster.",
        ),
        ConfigOption(
            "heartbeat.interval",
            10_000,
            parse_duration_ms,
            _DURATION,
            "How often TaskManagers send heartbeats to the JobManager (Flink's default); "
            "while tasks run, their metrics go with a heartbeat at least every second.",
        ),
        ConfigOption(
            "heartbeat.timeout",
            50_000,
            parse_duration_ms,
            _DURATION,
            "A TaskManager or JobManager silent for this long is declared lost (Flink's "
            "default); one whose process dies is lost at once, as its connection breaks.",
        ),
        ConfigOption(
            "cluster.registration.initial-timeout",
            100,
            parse_duration_ms,
            _DURATION,
            "The first back-off of a TaskManager retrying its registration.",
        ),
        ConfigOption(
            "cluster.registration.max-timeout",
            2000,
            parse_duration_ms,
            _DURATION,
            "The longest back-off of a TaskManager retrying its registration.",
        ),
        ConfigOption(
            "parallelism.default",
            1,
            _int_in(1, 32768),
            "an integer of at least 1",
            "The parallelism of jobs that set none.",
        ),
        ConfigOption(
            "pipeline.max-parallelism",
            128,
            _int_in(1, 32768),
            "an integer from 1 to 32768",
            "The number of key groups of keyed operators that set none.",
        ),
        ConfigOption(
            "execution.buffer-timeout",
            100,
            parse_duration_ms,
            _DURATION,
            "How long a record batch may wait before it is sent; 0 sends every record at once.",
        ),
        ConfigOption(
            "execution.runtime-mode",
            "streaming",
            _one_of("streaming", "batch", "automatic"),
            "streaming, batch or automatic",
            "How jobs run: STREAMING, BATCH (bounded input only; final results, no "
            "checkpoints) or AUTOMATIC (BATCH when every source is bounded).",
        ),
        ConfigOption(
            "execution.sorted-inputs.memory",
            128 * 1024**2,
            parse_memory_bytes,
            "a memory size such as 64 mb or 1 gb (a bare number is bytes)",
            "In BATCH mode, how much memory one keyed operator subtask may use to group its "
            "input by key before it spills the rest to disk (under TMPDIR); Flink's key.",
        ),
        ConfigOption(
            "slot.request.timeout",
            300_000,
            parse_duration_ms,
            _DURATION,
            "How long a job waits for enough free slots before it fails.",
        ),
        ConfigOption(
            "execution.checkpointing.interval",
            None,
            _optional(parse_duration_ms),
            _DURATION + " (unset: no checkpoints)",
            "How often checkpoints are triggered.",
        ),
        ConfigOption(
            "state.checkpoints.dir",
            None,
            _optional(_text),
            "a folder path or file:// URI",
            "Where checkpoints are written.",
        ),
        ConfigOption(
            "state.savepoints.dir",
            None,
            _optional(_text),
            "a folder path or file:// URI",
            "The default folder for savepoints.",
        ),
        ConfigOption(
            "state.checkpoints.num-retained",
            1,
            _int_in(1),
            "an integer of at least 1",
            "How many completed checkpoints are kept.",
        ),
        ConfigOption(
            "high-availability.type",
            "none",
            _one_of("none", "zookeeper"),
            "none or zookeeper",
            "With zookeeper, every host of conf/masters runs a JobManager, one is elected "
            "leader and the others stand by; job graphs and checkpoint pointers outlive them.",
        ),
        ConfigOption(
            "high-availability.zookeeper.quorum",
            None,
            _optional(_text),
            "host:port pairs separated by commas, such as zk1:2181,zk2:2181",
            "The ZooKeeper servers (required with high-availability.type: zookeeper).",
        ),
        ConfigOption(
            "high-availability.storageDir",
            None,
            _optional(_text),
            "a folder path or file:// URI every JobManager reaches",
            "Where job graphs are kept for a new leader (required with high availability); "
            "ZooKeeper holds only pointers to them.",
        ),
        ConfigOption(
            "high-availability.cluster-id",
            "/default",
            _text,
            "a name such as /default or /prod-cluster",
            "Separates the clusters that share one ZooKeeper and one storage folder.",
        ),
        ConfigOption(
            "high-availability.zookeeper.path.root",
            "/strom",
            _text,
            "a ZooKeeper path such as /strom",
            "The ZooKeeper node under which all clusters keep their state.",
        ),
        ConfigOption(
            "high-availability.zookeeper.client.session-timeout",
            6000,
            parse_duration_ms,
            _DURATION + " (ZooKeeper holds it to 2 to 20 of its ticks)",
            "How long ZooKeeper keeps a JobManager's leadership after losing contact with it: "
            "a killed leader's standby takes over after this long (Flink's default is 60 s).",
        ),
        ConfigOption(
            "high-availability.zookeeper.client.retry-wait",
            5000,
            parse_duration_ms,
            _DURATION,
            "The longest pause between two attempts to reach ZooKeeper once it was lost (the "
            "pauses double from 100 ms up to this): how soon JobManagers lead again after "
            "ZooKeeper comes back.",
        ),
        ConfigOption(
            "restart-strategy.type",
            None,
            _optional(
                _one_of(
                    "none",
                    "off",
                    "disable",
                    "fixed-delay",
                    "fixeddelay",
                    "failure-rate",
                    "failurerate",
                    "exponential-delay",
                    "exponentialdelay",
                )
            ),
            "none, fixed-delay, failure-rate or exponential-delay",
            "How failed jobs restart.",
        ),
        ConfigOption(
            "execution.checkpointing.mode",
            "exactly_once",
            _one_of("exactly_once", "at_least_once"),
            "exactly_once or at_least_once",
            "Whether barriers are aligned (exactly once) or not (at least once).",
        ),
        ConfigOption(
            "execution.checkpointing.timeout",
            600_000,
            parse_duration_ms,
            _DURATION,
            "A checkpoint not complete after this long is aborted.",
        ),
        ConfigOption(
            "execution.checkpointing.min-pause",
            0,
            parse_duration_ms,
            _DURATION,
            "The least time between the end of one checkpoint and the start of the next.",
        ),
        ConfigOption(
            "execution.checkpointing.max-concurrent-checkpoints",
            1,
            _int_in(1),
            "an integer of at least 1",
            "How many checkpoints may be in progress at once.",
        ),
        ConfigOption(
            "execution.checkpointing.tolerable-failed-checkpoints",
            0,
            _int_in(0),
            "an integer of at least 0",
            "How many checkpoints may fail in a row before the job fails.",
        ),
        ConfigOption(
            "execution.checkpointing.externalized-checkpoint-retention",
            "DELETE_ON_CANCELLATION",
            lambda v: _one_of(
                "delete_on_cancellation", "retain_on_cancellation", "no_externalized_checkpoints"
            )(v).upper(),
            "DELETE_ON_CANCELLATION, RETAIN_ON_CANCELLATION or NO_EXTERNALIZED_CHECKPOINTS",
            "Whether a cancelled job's checkpoints are kept.",
        ),
        ConfigOption(
            "restart-strategy.fixed-delay.attempts",
            2**31 - 1,
            _int_in(0),
            "an integer of at least 0",
            "How often a job restarts under the fixed-delay strategy.",
        ),
        ConfigOption(
            "restart-strategy.fixed-delay.delay",
            1000,
            parse_duration_ms,
            _DURATION,
            "The pause before each restart under the fixed-delay strategy.",
        ),
        ConfigOption(
            "restart-strategy.failure-rate.max-failures-per-interval",
            1,
            _int_in(1),
            "an integer of at least 1",
            "The failures allowed within one interval before the job fails.",
        ),
        ConfigOption(
            "restart-strategy.failure-rate.failure-rate-interval",
            60_000,
            parse_duration_ms,
            _DURATION,
            "The interval the failure rate is measured over.",
        ),
        ConfigOption(
            "restart-strategy.failure-rate.delay",
            1000,
            parse_duration_ms,
            _DURATION,
            "The pause before each restart under the failure-rate strategy.",
        ),
        ConfigOption(
            "restart-strategy.exponential-delay.initial-backoff",
            1000,
            parse_duration_ms,
            _DURATION,
            "The first pause under the exponential-delay strategy.",
        ),
        ConfigOption(
            "restart-strategy.exponential-delay.max-backoff",
            60_000,
            parse_duration_ms,
            _DURATION,
            "The longest pause under the exponential-delay strategy.",
        ),
        ConfigOption(
            "restart-strategy.exponential-delay.backoff-multiplier",
            2.0,
            lambda v: float(v) if float(v) >= 1 else (_ for _ in ()).throw(ValueError(v)),
            "a number of at least 1",
            "How much each pause grows under the exponential-delay strategy.",
        ),
        ConfigOption(
            "restart-strategy.exponential-delay.reset-backoff-threshold",
            3_600_000,
            parse_duration_ms,
            _DURATION,
            "A job running this long without failure starts again from the first pause.",
        ),
        ConfigOption(
            "restart-strategy.exponential-delay.jitter-factor",
            0.1,
            lambda v: float(v) if 0 <= float(v) <= 1 else (_ for _ in ()).throw(ValueError(v)),
            "a number from 0 to 1",
            "The random share added to or taken from each pause.",
        ),
        ConfigOption(
            "restart-strategy.exponential-delay.attempts-before-reset-backoff",
            None,
            _optional(_int_in(0)),
            "an integer of at least 0 (unset: no limit)",
            "How often the job restarts under the exponential-delay strategy.",
        ),
        ConfigOption(
            "execution.savepoint.path",
            None,
            _optional(_text),
            "a savepoint or checkpoint folder",
            "Start the job from this savepoint (strom run -s).",
        ),
        ConfigOption(
            "execution.savepoint.ignore-unclaimed-state",
            False,
            _boolean,
            "true or false",
            "Start even if the savepoint has state of operators the job no longer has.",
        ),
        ConfigOption(
            "env.log.dir",
            None,
            _optional(_text),
            "a folder path",
            "Where the scripts write logs (overridden by STROM_LOG_DIR).",
        ),
        ConfigOption(
            "env.pid.dir",
            None,
            _optional(_text),
            "a folder path",
            "Where the scripts keep pid files (overridden by STROM_PID_DIR).",
        ),
        ConfigOption(
            "web.submit.enable",
            True,
            _boolean,
            "true or false",
            "Whether the dashboard may submit jobs.",
        ),
        ConfigOption(
            "jobstore.max-capacity",
            2**31 - 1,
            _int_in(0),
            "an integer of at least 0",
            "How many ended jobs the JobManager keeps in its history (the oldest go first).",
        ),
        ConfigOption(
            "jobstore.expiration-time",
            3_600_000,
            parse_duration_ms,
            _DURATION,
            "How long the JobManager keeps an ended job in its history.",
        ),
        ConfigOption(
            "client.progress.interval",
            10_000,
            parse_duration_ms,
            _DURATION,
            "How often an attached strom run prints a progress line when its output is not a "
            "terminal (on a terminal the line is redrawn in place).",
        ),
        ConfigOption(
            "client.job-files.max-size",
            64 * 1024**2,
            parse_memory_bytes,
            "a memory size such as 64 mb or 1 gb (a bare number is bytes)",
            "The most a job may ship to the TaskManagers: its script's folder and what "
            "-pyfs, -pyarch and -pyreq name.",
        ),
        ConfigOption(
            "metrics.reporter.prom.port",
            None,
            _optional(_text),
            "a port, a range such as 9249-9260 (the first free one is taken), or 0 for any "
            "free port (unset: no HTTP endpoint; the JobManager still serves the metrics)",
            "Where a TaskManager serves its metrics over HTTP in the Prometheus text format.",
        ),
    ]
}


#: Keys that one job may set (strom run -D, the job's own configuration), with Flink's
#: precedence: the job's code over -D over the cluster configuration.
JOB_KEYS = frozenset(
    key
    for key in OPTIONS
    if key.startswith(("execution.", "restart-strategy.", "state.", "pipeline."))
    or key in ("parallelism.default", "slot.request.timeout", "python.executable")
)
#: Keys the client reads to reach the cluster; they are not shipped with a job.
CLIENT_KEYS = frozenset(key for key in OPTIONS if key.startswith("client.")) | frozenset(
    ("jobmanager.rpc.address", "jobmanager.rpc.port", "rest.address", "rest.port")
)


def check_job_settings(settings: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Validate settings meant for one job; a key that configures the cluster rather than a
    job is an error naming it (it would otherwise be ignored in silence)."""
    for key, value in settings.items():
        validate(key, value, source)
        if key not in JOB_KEYS and key not in CLIENT_KEYS:
            raise ConfigurationError(
                f"The configuration key '{key}' given in {source} cannot apply to one job: it "
                "configures the cluster's processes. Set it in conf/strom-conf.yaml of the "
                "cluster and restart the processes it concerns."
            )
    return dict(settings)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Turn nested maps into flat dotted keys; a full key found on the way wins as it is."""
    flat: dict[str, Any] = {}
    for name, value in tree.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping) and key not in OPTIONS:
            flat.update(flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def validate(key: str, value: Any, source: str = "") -> Any:
    """Return the parsed value of one setting, or raise an error naming key, value and rule."""
    where = f" in {source}" if source else ""
    option = OPTIONS.get(key)
    if option is None:
        close = difflib.get_close_matches(key, OPTIONS, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ConfigurationError(
            f"Unknown configuration key '{key}'{where}.{hint} "
            f"Known keys are listed in strom/configuration.py."
        )
    try:
        return option.parse(value)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"Invalid value {value!r} for configuration key '{key}'{where}: "
            f"expected {option.allowed}."
        ) from None


class StromConfig(Mapping[str, Any]):
    """The validated settings of one process: every key of :data:`OPTIONS` has a value."""

    def __init__(self, values: Mapping[str, Any] | None = None, source: str = "") -> None:
        self._explicit: dict[str, Any] = {}
        for key, value in (values or {}).items():
            self._explicit[key] = validate(key, value, source)

    def __getitem__(self, key: str) -> Any:
        if key in self._explicit:
            return self._explicit[key]
        return OPTIONS[key].default

    def __iter__(self):
        return iter(OPTIONS)

    def __len__(self) -> int:
        return len(OPTIONS)

    def explicit(self) -> dict[str, Any]:
        """The settings that were given rather than defaulted."""
        return dict(self._explicit)

    def with_overrides(self, overrides: Mapping[str, Any], source: str = "") -> StromConfig:
        merged = StromConfig()
        merged._explicit = dict(self._explicit)
        for key, value in overrides.items():
            merged._explicit[key] = validate(key, value, source)
        return merged

    def as_strings(self) -> dict[str, str]:
        """The explicit settings as strings, for shipping to other processes."""
        return {key: str(value) for key, value in self._explicit.items() if value is not None}

    @property
    def jobmanager_address(self) -> str:
        return f"{self['jobmanager.rpc.address']}:{self['jobmanager.rpc.port']}"


def rest_token(config: Mapping[str, Any]) -> str | None:
    """The cluster's access token: ``security.rest.token``, else the content of
    ``security.rest.token-file``; None when neither is set."""
    token = config["security.rest.token"]
    path = config["security.rest.token-file"]
    if token and path:
        raise ConfigurationError(
            "Set one of 'security.rest.token' and 'security.rest.token-file', not both."
        )
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as error:
            raise ConfigurationError(
                f"Cannot read the token file '{path}' (security.rest.token-file): {error}"
            ) from None
        if not token:
            raise ConfigurationError(
                f"The token file '{path}' (security.rest.token-file) is empty."
            )
    return token or None


def parse_dynamic_properties(pairs: Iterable[str]) -> dict[str, str]:
    """``key=value`` strings (from ``-D``) as a dict; a malformed one is an error."""
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigurationError(f"Invalid dynamic property '{pair}': expected key=value.")
        result[key.strip()] = value.strip()
    return result


def default_conf_dir() -> Path:
    """``$STROM_CONF_DIR``, else the ``conf/`` folder of this installation."""
    env = os.environ.get("STROM_CONF_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "conf"


def load_configuration(
    conf_dir: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> StromConfig:
    """Read ``strom-conf.yaml`` of ``conf_dir`` (missing file: all defaults) plus overrides."""
    folder = Path(conf_dir) if conf_dir is not None else default_conf_dir()
    path = folder / CONF_FILE_NAME
    values: dict[str, Any] = {}
    if path.is_file():
        try:
            document = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigurationError(f"{path} is not valid YAML: {error}") from None
        if not isinstance(document, Mapping):
            raise ConfigurationError(f"{path} must hold a map of keys to values.")
        values = flatten(document)
    config = StromConfig(values, source=str(path))
    if overrides:
        config = config.with_overrides(overrides, source="the command line")
    return config
