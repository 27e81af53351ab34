"""Several "hosts" on this one machine, made of Linux namespaces, for multi-host tests.

``NetnsHosts(count=3)`` makes ``count`` hosts joined by a bridge, each a real sshd that accepts
a key made for the run, so ``bin/start-cluster.sh`` and ``bin/jps`` reach them with ``ssh``
exactly as they reach separate machines::

    with NetnsHosts(3) as hosts:
        h1, h2, h3 = hosts
        env["STROM_SSH_OPTS"] = hosts.ssh_opts
        h1.name, h1.address          # "stromt-1a2b3c-h1", "10.213.47.2"
        h1.run("hostname")           # a command inside the host
        h2.link_down(); h2.link_up() # pull and plug in its cable

Needs root, ``ip``, ``unshare``/``nsenter`` and ``sshd`` (``install-deps.sh`` beside this file
installs them with apt-get; ``NetnsHosts`` runs it when something is missing). Where hosts
cannot be made, ``start()`` raises ``Unavailable`` with the reason; tests turn that into
``pytest.skip(reason)``.

How a host is made (host ``i`` of run ``<id>``, six random hex digits):

- Network: namespace ``stromt-<id>-h<i>`` (``ip netns``) with ``eth0``, one end of a veth pair
  whose other end, ``stt<id>h<i>``, is a port of the bridge ``stt<id>br``. The run takes a
  free /24 of 10.213.0.0/16 (10.213.47.0/24 first): the bridge is ``.1`` in this machine's
  own (root) namespace, so tests can talk to the hosts; host ``i`` is ``.(i+1)``. The hosts
  have no default route: they reach each other and this machine, nothing else.
- Names: the host name is the namespace name. Every host sees a hosts file of its own
  (``/etc/netns/<ns>/hosts``, which ``ip netns exec`` mounts over ``/etc/hosts``) with all
  hosts, ``stromt-<id>-gw`` for the bridge, and an empty ``resolv.conf`` (no DNS). This
  machine's own ``/etc/hosts`` gets the same names while the run lasts, each line marked
  ``# stromt-<id>``, so the scripts run here resolve them too.
- Processes: each host has its own UTS (``hostname``), PID and mount namespace (``unshare``):
  ``hostname``, ``ps``, psutil and ``bin/jps --local`` on a host see that host only, the way
  they would on a machine of its own. Its PID 1 is a small shell that starts
  ``/usr/sbin/sshd -D`` on ``<address>:22`` with a config of the run's own (host key,
  ``AuthorizedKeysFile`` = the run's public key, pid file, ``UsePAM no``, ``StrictModes no``)
  and reaps orphans. Everything started over ssh or with ``run()`` lives in those namespaces.
- Files: all hosts share this machine's file system (same install path everywhere, as a
  cluster with a shared home would). ``make_private(path)`` gives each host its own empty
  folder at ``path`` instead (a bind mount in the host's mount namespace), the way ``/tmp``
  is each machine's own: use it for ``STROM_PID_DIR``.

Teardown (``close()``) kills every process of the hosts (SIGKILL to each host's PID 1 ends
its PID namespace), deletes the veths, bridge, namespaces, ``/etc/netns/<ns>`` folders and the
``/etc/hosts`` lines, and is safe to call twice. It runs at the context manager's exit (also
on an exception) and from an ``atexit`` hook; should this process be killed outright, each
host's first process gets SIGKILL from its parent-death signal (which fires when the thread
that called ``start()`` ends, so start hosts from a thread that outlives them, e.g. the main
one). What a crashed run left behind is removed by the next run (``cleanup_leftovers()``, or
``python tests/netns/hosts.py --cleanup``): the things named ``stromt-<id>…``/``stt<id>…``
whose run's owner process is gone (state in ``/run/stromt/<id>.json``). Several runs at once
are fine: each takes its own id and subnet under a lock.

From a script outside tests/: ``sys.path.insert(0, "<repo>/tests")``, then
``from netns.hosts import NetnsHosts`` (as ``tests/netns/demo.py`` does).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

PREFIX = "stromt"
IFACE_PREFIX = "stt"  # interface names are at most 15 characters
STATE_DIR = Path("/run/stromt")
ETC_HOSTS = Path("/etc/hosts")
ETC_NETNS = Path("/etc/netns")
SSHD = "/usr/sbin/sshd"
INSTALL_DEPS = Path(__file__).resolve().with_name("install-deps.sh")
NETWORK = ipaddress.ip_network("10.213.0.0/16")
FIRST_SUBNET = 47  # 10.213.47.0/24 first, then the next free one
SETUP_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 60.0

_RUN_ID = re.compile(r"^[0-9a-f]{6}$")
_NETNS_NAME = re.compile(rf"^{PREFIX}-([0-9a-f]{{6}})-")
_IFACE_NAME = re.compile(rf"^{IFACE_PREFIX}([0-9a-f]{{6}})(br|h\d+)$")
_HOSTS_MARK = re.compile(rf"#\s*{PREFIX}-([0-9a-f]{{6}})\s*$")


class Unavailable(RuntimeError):
    """Hosts cannot be made here (not root, no namespaces, no sshd...); the message says why."""


# ------------------------------------------------------------------------------ helpers


def _sh(*args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT_S, **kw: Any):
    """Run a command of the root namespace; on failure raise with its output."""
    result = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False, **kw
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{shlex.join(args)} failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()}"
        )
    return result


try:
    _LIBC: Any = ctypes.CDLL(None, use_errno=True)  # loaded here: no dlopen after a fork
except OSError:
    _LIBC = None


def _set_parent_death_signal() -> None:
    """In a child before exec: SIGKILL it when the thread that started it ends."""
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


@contextlib.contextmanager
def _global_lock() -> Iterator[None]:
    """One lock for every run on this machine: ids, subnets, /etc/hosts, leftovers."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _process_alive(pid: int, create_time: float | None) -> bool:
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return create_time is None or abs(process.create_time() - create_time) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _live_run_ids() -> set[str]:
    """Runs whose owner process still lives (by their state files)."""
    live = set()
    for path in STATE_DIR.glob("*.json"):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _process_alive(state.get("owner_pid", -1), state.get("owner_create_time")):
            live.add(path.stem)
    return live


def _netns_names() -> list[str]:
    result = _sh("ip", "netns", "list", check=False)
    return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]


def _link_names() -> list[str]:
    result = _sh("ip", "-o", "link", "show", check=False)
    names = []
    for line in result.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def _kill_netns_processes(netns: str) -> None:
    """SIGKILL every process in a network namespace and wait (briefly) for them to go."""
    for _ in range(50):
        result = _sh("ip", "netns", "pids", netns, check=False)
        pids = [int(word) for word in result.stdout.split() if word.isdigit()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


def _edit_etc_hosts(remove_runs: set[str], add: str = "") -> None:
    """Drop the lines of the given runs (marked ``# stromt-<id>``) and append ``add``.

    Written in place (not renamed over): /etc/hosts is often a bind mount in containers.
    Call with the global lock held.
    """
    try:
        text = ETC_HOSTS.read_text()
    except FileNotFoundError:
        text = ""
    kept = []
    for line in text.splitlines(keepends=True):
        mark = _HOSTS_MARK.search(line)
        if mark and mark.group(1) in remove_runs:
            continue
        kept.append(line)
    new = "".join(kept)
    if add:
        if new and not new.endswith("\n"):
            new += "\n"
        new += add
    if new != text:
        with open(ETC_HOSTS, "r+" if ETC_HOSTS.exists() else "w") as file:
            file.seek(0)
            file.write(new)
            file.truncate()


def _remove_run(run_id: str, state: dict[str, Any] | None) -> None:
    """Remove everything of one run that is gone (or is being closed). Idempotent."""
    namespaces = [n for n in _netns_names() if n.startswith(f"{PREFIX}-{run_id}-")]
    if state:
        namespaces = sorted(set(namespaces) | set(state.get("namespaces", [])))
    # Processes by namespace, never by a remembered pid (it may belong to someone else now).
    for netns in namespaces:
        if netns in _netns_names():
            _kill_netns_processes(netns)
    for name in _link_names():
        match = _IFACE_NAME.match(name)
        if match and match.group(1) == run_id:
            _sh("ip", "link", "del", name, check=False)
    for netns in namespaces:
        _sh("ip", "netns", "del", netns, check=False)
        shutil.rmtree(ETC_NETNS / netns, ignore_errors=True)
    for folder in ETC_NETNS.glob(f"{PREFIX}-{run_id}-*") if ETC_NETNS.is_dir() else []:
        shutil.rmtree(folder, ignore_errors=True)
    with contextlib.suppress(OSError):
        ETC_NETNS.rmdir()  # only when empty: it may hold other tools' namespaces
    _edit_etc_hosts({run_id})
    tmp = (state or {}).get("tmp_dir")
    if tmp and Path(tmp).name.startswith(f"{PREFIX}-") and not (state or {}).get("keep_dir"):
        shutil.rmtree(tmp, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (STATE_DIR / f"{run_id}.json").unlink()


def cleanup_leftovers() -> list[str]:
    """Remove what runs whose owner process is gone left behind; the ids of those runs.

    Takes the global lock; runs of live processes are left alone.
    """
    if os.geteuid() != 0 or not shutil.which("ip"):
        return []
    with _global_lock():
        return _cleanup_leftovers_locked()


def _cleanup_leftovers_locked() -> list[str]:
    live = _live_run_ids()
    states: dict[str, dict[str, Any] | None] = {}
    for path in STATE_DIR.glob("*.json"):
        if path.stem in live:
            continue
        try:
            states[path.stem] = json.loads(path.read_text())
        except (OSError, ValueError):
            states[path.stem] = None
    for netns in _netns_names():
        match = _NETNS_NAME.match(netns)
        if match and match.group(1) not in live:
            states.setdefault(match.group(1), None)
    for name in _link_names():
        match = _IFACE_NAME.match(name)
        if match and match.group(1) not in live:
            states.setdefault(match.group(1), None)
    if ETC_NETNS.is_dir():
        for folder in ETC_NETNS.iterdir():
            match = _NETNS_NAME.match(folder.name)
            if match and match.group(1) not in live:
                states.setdefault(match.group(1), None)
    with contextlib.suppress(OSError):
        for line in ETC_HOSTS.read_text().splitlines():
            mark = _HOSTS_MARK.search(line)
            if mark and mark.group(1) not in live:
                states.setdefault(mark.group(1), None)
    for run_id, state in states.items():
        if _RUN_ID.match(run_id):
            _remove_run(run_id, state)
    return sorted(states)


_DEPS_TRIED = False


def unavailable_reason() -> str | None:
    """Why hosts cannot be made here, or None when they can (installs sshd when missing)."""
    global _DEPS_TRIED
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux only (this is {sys.platform})"
    if os.geteuid() != 0:
        return "making network namespaces needs root (run the tests as root)"
    tools = ["ip", "unshare", "nsenter", "ssh", "ssh-keygen", "hostname", "mount"]

    def missing() -> list[str]:
        gone = [tool for tool in tools if not shutil.which(tool)]
        return gone + ([] if os.access(SSHD, os.X_OK) else [SSHD])

    if missing() and not _DEPS_TRIED:
        _DEPS_TRIED = True
        subprocess.run(["bash", str(INSTALL_DEPS)], capture_output=True, timeout=600, check=False)
    if missing():
        return f"{', '.join(missing())} missing and `bash {INSTALL_DEPS}` could not install them"
    # Namespaces, a bridge and a veth pair, all inside a throwaway namespace: nothing global.
    probe = _sh(
        "unshare", "--net", "--uts", "--pid", "--mount", "--fork", "--mount-proc",
        "sh", "-c",
        "hostname stromt-probe && ip link add b0 type bridge && "
        "ip link add v0 type veth peer name v1 && ip link set v0 master b0",
        check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"cannot make namespaces, a bridge or veths here: {probe.stderr.strip()}"
    return None


# -------------------------------------------------------------------------------- hosts


class NetnsHost:
    """One host: a network, UTS, PID and mount namespace running its own sshd."""

    def __init__(self, hosts: NetnsHosts, index: int, address: str) -> None:
        self._hosts = hosts
        self.index = index
        self.name = f"{PREFIX}-{hosts.run_id}-h{index}"
        self.netns = self.name
        self.address = address
        self.veth = f"{IFACE_PREFIX}{hosts.run_id}h{index}"  # this machine's end
        self.dir = hosts.tmp_dir / self.name
        self.init: subprocess.Popen | None = None
        self.init_pid: int | None = None  # the host's PID 1, as this machine numbers it

    def __repr__(self) -> str:
        return f"NetnsHost({self.name!r}, {self.address!r})"

    # -- commands
    def command(self, cmd: str | Sequence[str], cwd: str | os.PathLike | None = None) -> list:
        """The argv that runs ``cmd`` (a list, or a string for ``sh -c``) inside the host."""
        if self.init_pid is None:
            raise RuntimeError(f"host {self.name} is not running")
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else [str(part) for part in cmd]
        workdir = os.fspath(cwd) if cwd is not None else os.getcwd()
        return [
            "nsenter", f"--target={self.init_pid}", "--net", "--uts", "--pid", "--mount",
            f"--wd={workdir}", "--", *argv,
        ]  # fmt: skip

    def run(
        self,
        cmd: str | Sequence[str],
        *,
        check: bool = False,
        timeout: float = COMMAND_TIMEOUT_S,
        cwd: str | os.PathLike | None = None,
        **kw: Any,
    ) -> subprocess.CompletedProcess:
        """Run a command inside the host (its network, name, processes and private folders).

        Like ``ip netns exec <ns> cmd``, but also in the host's UTS, PID and mount namespaces
        (with ``nsenter``), so the command sees what a process started over ssh sees. Output
        is captured as text unless ``stdout``/``stderr``/``capture_output`` say otherwise.
        """
        if not any(key in kw for key in ("stdout", "stderr", "capture_output")):
            kw["capture_output"] = True
        kw.setdefault("text", True)
        return subprocess.run(self.command(cmd, cwd), check=check, timeout=timeout, **kw)

    def popen(self, cmd: str | Sequence[str], cwd=None, **kw: Any) -> subprocess.Popen:
        """Start a command inside the host without waiting for it."""
        return subprocess.Popen(self.command(cmd, cwd), **kw)

    def ssh(self, cmd: str, **kw: Any) -> subprocess.CompletedProcess:
        """Run a shell command on the host through its sshd, from this machine."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", COMMAND_TIMEOUT_S)
        return subprocess.run(
            ["ssh", "-n", *shlex.split(self._hosts.ssh_opts), self.name, "--", cmd],
            check=kw.pop("check", False),
            **kw,
        )

    def free_port(self) -> int:
        """A TCP port free on the host's address right now."""
        code = (
            "import socket; s = socket.socket(); "
            f"s.bind(({self.address!r}, 0)); print(s.getsockname()[1])"
        )
        return int(self.run([sys.executable, "-c", code], check=True).stdout)

    # -- processes
    def _pid_namespace(self) -> str | None:
        try:
            return os.readlink(f"/proc/{self.init_pid}/ns/pid")
        except (OSError, TypeError):
            return None

    def processes(self) -> list[psutil.Process]:
        """The processes of the host (not its PID 1), with this machine's pids."""
        namespace = self._pid_namespace()
        if namespace is None:
            return []
        found = []
        for process in psutil.process_iter():
            if process.pid == self.init_pid:
                continue
            try:
                if os.readlink(f"/proc/{process.pid}/ns/pid") == namespace:
                    found.append(process)
            except OSError:
                continue
        return found

    def pids(self) -> list[int]:
        return sorted(process.pid for process in self.processes())

    @staticmethod
    def ns_pid(pid: int) -> int:
        """The pid a process of this machine has inside its host (what ``ps`` there shows)."""
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
        raise LookupError(f"no NSpid for process {pid}")

    def sshd_pid(self) -> int | None:
        try:
            return int((self.dir / "sshd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def kill_all(self, sig: int = signal.SIGKILL, keep_sshd: bool = True) -> list[int]:
        """Send ``sig`` to every process of the host (but its PID 1 and, unless told, its
        sshd listener); the pids (this machine's) that got it."""
        sshd = self.sshd_pid()
        keep = set()
        if keep_sshd and sshd is not None:
            for process in self.processes():
                with contextlib.suppress(psutil.Error, LookupError, OSError):
                    if self.ns_pid(process.pid) == sshd:
                        keep.add(process.pid)
        hit = []
        for process in self.processes():
            if process.pid in keep:
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(sig)
                hit.append(process.pid)
        return hit

    # -- network
    def link_down(self) -> None:
        """Pull the host's cable: its veth's end at the bridge goes down (no carrier)."""
        _sh("ip", "link", "set", self.veth, "down")

    def link_up(self) -> None:
        _sh("ip", "link", "set", self.veth, "up")

    # -- private folders
    def private_path(self, path: str | os.PathLike) -> Path:
        """Where this machine sees the host's own copy of a ``make_private`` folder."""
        key = str(Path(path).resolve()).strip("/").replace("/", "%")
        return self.dir / "private" / key

    def make_private(self, path: str | os.PathLike) -> Path:
        """Give the host its own empty folder at ``path``; returns where it really is."""
        target = Path(path).resolve()
        target.mkdir(parents=True, exist_ok=True)
        source = self.private_path(target)
        source.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            ["nsenter", f"--target={self.init_pid}", "--mount", "--",
             "mount", "--bind", str(source), str(target)],
            capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"cannot bind {source} on {target} in {self.name}: {result.stderr}")
        return source


class NetnsHosts:
    """``count`` hosts as namespaces behind a bridge, each with its own sshd; see the module."""

    def __init__(
        self,
        count: int = 3,
        *,
        private_dirs: Sequence[str | os.PathLike] = (),
        keep_dir: bool = False,
    ) -> None:
        if count < 1 or count > 200:
            raise ValueError(f"count must be from 1 to 200, not {count}")
        self.count = count
        self.private_dirs = [Path(path) for path in private_dirs]
        self.keep_dir = keep_dir
        self.run_id = ""
        self.hosts: list[NetnsHost] = []
        self.subnet: ipaddress.IPv4Network | None = None
        self.gateway = ""  # the bridge's address: this machine as the hosts see it
        self.gateway_name = ""
        self.bridge = ""
        self.tmp_dir = Path()
        self.key = Path()
        self._started = False
        self._closed = False
        self._close_lock = threading.Lock()

    # -- access
    def __iter__(self) -> Iterator[NetnsHost]:
        return iter(self.hosts)

    def __len__(self) -> int:
        return len(self.hosts)

    def __getitem__(self, index: int) -> NetnsHost:
        return self.hosts[index]

    @property
    def ssh_opts(self) -> str:
        """ssh options that log in to the hosts (for ``STROM_SSH_OPTS``); no spaces in paths."""
        return (
            f"-i {self.key} -F /dev/null -o IdentitiesOnly=yes -o BatchMode=yes "
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
            "-o LogLevel=ERROR -o ConnectTimeout=5"
        )

    def hosts_file(self) -> str:
        """The hosts-file lines of the run (without markers)."""
        lines = [f"{self.gateway}\t{self.gateway_name}"]
        lines += [f"{host.address}\t{host.name}" for host in self.hosts]
        return "\n".join(lines) + "\n"

    def make_private(self, path: str | os.PathLike) -> None:
        """Give every host its own empty folder at ``path`` (see ``NetnsHost.make_private``)."""
        for host in self.hosts:
            host.make_private(path)

    # -- lifecycle
    def __enter__(self) -> NetnsHosts:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> NetnsHosts:
        if self._started:
            return self
        reason = unavailable_reason()
        if reason:
            raise Unavailable(reason)
        self._started = True
        atexit.register(self.close)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def _state(self) -> dict[str, Any]:
        me = psutil.Process()
        return {
            "run_id": self.run_id,
            "owner_pid": me.pid,
            "owner_create_time": me.create_time(),
            "subnet": str(self.subnet),
            "namespaces": [host.netns for host in self.hosts],
            "tmp_dir": str(self.tmp_dir),
            "keep_dir": self.keep_dir,
        }

    def _write_state(self) -> None:
        path = STATE_DIR / f"{self.run_id}.json"
        path.with_suffix(".tmp").write_text(json.dumps(self._state(), indent=1))
        path.with_suffix(".tmp").replace(path)

    def _choose_subnet(self) -> ipaddress.IPv4Network:
        used = []
        for args in (["-4", "-o", "addr", "show"], ["-4", "route", "show", "table", "all"]):
            for line in _sh("ip", *args, check=False).stdout.splitlines():
                for word in line.split():
                    with contextlib.suppress(ValueError):
                        used.append(ipaddress.ip_network(word, strict=False))
        for path in STATE_DIR.glob("*.json"):
            with contextlib.suppress(OSError, ValueError):
                used.append(ipaddress.ip_network(json.loads(path.read_text())["subnet"]))
        candidates = list(NETWORK.subnets(new_prefix=24))
        candidates = candidates[FIRST_SUBNET:] + candidates[:FIRST_SUBNET]
        for subnet in candidates:
            if not any(
                subnet.overlaps(other) for other in used if other.version == 4 and other.prefixlen
            ):
                return subnet
        raise Unavailable(f"no free /24 in {NETWORK} for the test hosts")

    def _setup(self) -> None:
        self.tmp_dir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-"))
        with _global_lock():
            _cleanup_leftovers_locked()
            while True:
                self.run_id = secrets.token_hex(3)
                if not (STATE_DIR / f"{self.run_id}.json").exists():
                    break
            self.subnet = self._choose_subnet()
            addresses = list(self.subnet.hosts())
            self.gateway = str(addresses[0])
            self.gateway_name = f"{PREFIX}-{self.run_id}-gw"
            self.bridge = f"{IFACE_PREFIX}{self.run_id}br"
            self.hosts = [NetnsHost(self, i, str(addresses[i])) for i in range(1, self.count + 1)]
            self._write_state()  # before anything exists, so a crash leaves nothing unnamed
            _sh("ip", "link", "add", self.bridge, "type", "bridge")
            _sh("ip", "addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
            _sh("ip", "link", "set", self.bridge, "up")
            marked = "".join(
                f"{line}\t# {PREFIX}-{self.run_id}\n" for line in self.hosts_file().splitlines()
            )
            _edit_etc_hosts(set(), marked)

        self._make_keys()
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation dir
        for host in self.hosts:
            self._make_host(host)
        self._write_state()
        for path in self.private_dirs:
            self.make_private(path)
        self._wait_for_sshd()

    def _make_keys(self) -> None:
        self.key = self.tmp_dir / "id_ed25519"
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{PREFIX}-{self.run_id}",
            "-f", str(self.key))  # fmt: skip
        self.host_key = self.tmp_dir / "ssh_host_ed25519_key"
        _sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.host_key))

    def _make_host(self, host: NetnsHost) -> None:
        host.dir.mkdir(parents=True)
        etc = ETC_NETNS / host.netns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" + self.hosts_file()
        )
        (etc / "resolv.conf").write_text("# stromt test host: no DNS, names are in /etc/hosts\n")

        _sh("ip", "netns", "add", host.netns)
        _sh("ip", "link", "add", host.veth, "type", "veth",
            "peer", "name", "eth0", "netns", host.netns)  # fmt: skip
        _sh("ip", "link", "set", host.veth, "master", self.bridge)
        _sh("ip", "link", "set", host.veth, "up")
        _sh("ip", "-n", host.netns, "link", "set", "lo", "up")
        _sh("ip", "-n", host.netns, "addr", "add",
            f"{host.address}/{self.subnet.prefixlen}", "dev", "eth0")  # fmt: skip
        _sh("ip", "-n", host.netns, "link", "set", "eth0", "up")

        config = host.dir / "sshd_config"
        config.write_text(
            f"ListenAddress {host.address}:22\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {host.dir / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.key}.pub\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "PrintLastLog no\n"
            "X11Forwarding no\n"
            "MaxStartups 100:30:200\n"
            "MaxSessions 100\n"
            "LogLevel ERROR\n"
        )
        # PID 1 of the host: name it, start sshd, reap orphans (`wait` does) until sshd ends.
        init = f'hostname "$1" || exit 1\n{SSHD} -D -e -f "$2" 2>>"$3" &\nwait\n'
        log = open(host.dir / "init.log", "wb")  # noqa: SIM115
        host.init = subprocess.Popen(
            ["ip", "netns", "exec", host.netns,
             "unshare", "--uts", "--pid", "--mount", "--fork", "--mount-proc", "--kill-child",
             "sh", "-c", init, "init", host.name, str(config), str(host.dir / "sshd.log")],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_set_parent_death_signal, start_new_session=True,
        )  # fmt: skip
        log.close()

        def init_pid() -> int | None:
            if host.init.poll() is not None:
                raise RuntimeError(
                    f"host {host.name} did not start: "
                    f"{(host.dir / 'init.log').read_text(errors='replace')}"
                )
            with contextlib.suppress(psutil.NoSuchProcess):
                children = psutil.Process(host.init.pid).children()
                if children:
                    return children[0].pid
            return None

        host.init_pid = _wait(init_pid, f"the first process of {host.name}")

    def _wait_for_sshd(self) -> None:
        def banner(host: NetnsHost) -> bool:
            with socket.create_connection((host.address, 22), timeout=2) as sock:
                return sock.recv(64).startswith(b"SSH-")

        for host in self.hosts:
            _wait(lambda host=host: banner(host), f"sshd on {host.name}", host=host)
        for host in self.hosts:
            result = host.ssh("hostname")
            if result.returncode != 0 or result.stdout.strip() != host.name:
                raise RuntimeError(
                    f"ssh to {host.name} failed ({result.returncode}): {result.stderr.strip()} "
                    f"{result.stdout.strip()}; sshd log: "
                    f"{(host.dir / 'sshd.log').read_text(errors='replace')}"
                )

    def close(self) -> None:
        """Kill everything of the hosts and remove the namespaces, links and names. Idempotent."""
        with self._close_lock:
            if self._closed or not self._started:
                return
            self._closed = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.close)
        for host in self.hosts:
            # While its parent (unshare) runs, the init pid is still the host's PID 1.
            if host.init_pid and host.init is not None and host.init.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(host.init_pid, signal.SIGKILL)  # ends the host's PID namespace
        for host in self.hosts:
            if host.init is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    host.init.wait(timeout=10)
        if self.run_id:
            with _global_lock():
                _remove_run(self.run_id, self._state())
        elif not self.keep_dir:
            shutil.rmtree(self.tmp_dir, ignore_errors=True)


def _wait(condition, what: str, timeout: float = SETUP_TIMEOUT_S, host: NetnsHost | None = None):
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = condition()
            if result:
                return result
        except RuntimeError:
            raise
        except Exception as error:  # not up yet
            last = error
        if time.monotonic() > deadline:
            detail = ""
            if host is not None:
                for name in ("init.log", "sshd.log"):
                    with contextlib.suppress(OSError):
                        detail += f"\n{name}: {(host.dir / name).read_text(errors='replace')}"
            raise RuntimeError(f"timed out after {timeout}s waiting for {what} ({last!r}){detail}")
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Test hosts made of network namespaces.")
    parser.add_argument(
        "--cleanup", action="store_true", help="remove what crashed runs left behind"
    )
    parser.add_argument("--check", action="store_true", help="say whether hosts can be made")
    args = parser.parse_args(argv)
    if args.check:
        reason = unavailable_reason()
        print(reason or "ok: hosts can be made here")
        return 1 if reason else 0
    if args.cleanup:
        removed = cleanup_leftovers()
        print(f"removed runs: {' '.join(removed)}" if removed else "nothing left over")
        return 0
    parser.print_help()
    return 2


if __name__ == "__main__":
    sys.exit(main())
