"""``bin/jps``: the Strom processes of every host of the cluster, the way ``jps`` lists JVMs.

For each host of ``conf/masters`` (the host part of ``host[:webui-port]``) and then
``conf/slaves`` (or ``conf/workers``), each host once, it prints::

    ===========     root@host1 All Processes         ===========
    4242 StromJobManager
    4301 StromTaskManager
    4377 StromTaskSlot

(``StromTaskSlot``: a TaskManager's slot process, running one job's subtasks in one slot.)

Hosts that are this machine are listed directly; others run ``bin/jps --local`` of the same
installation path over ``ssh -n`` (with ``$STROM_SSH_OPTS``). An unreachable host gets the
header and a line ``(unreachable: <reason>)``, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import psutil

from strom.process_identity import role_of

STROM_HOME = Path(__file__).resolve().parent.parent
SSH_TIMEOUT_SECONDS = 30.0


def header(user: str, host: str) -> str:
    return f"===========     {user}@{host} All Processes         ==========="


def read_hosts_file(path: Path) -> list[str]:
    """The entries of a hosts file: ``#`` comments, blank lines and whitespace removed."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    entries = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries.append(entry)
    return entries


def host_part(entry: str) -> str:
    """The host of ``host``, ``host:port``, ``[v6-address]:port`` or a bare IPv6 address."""
    if entry.startswith("["):
        return entry[1:].split("]", 1)[0]
    if entry.count(":") == 1:
        return entry.split(":", 1)[0]
    return entry


def slaves_file(conf_dir: Path) -> Path:
    """``conf/slaves``, or ``conf/workers`` when there is no slaves file."""
    slaves = conf_dir / "slaves"
    workers = conf_dir / "workers"
    if not slaves.exists() and workers.exists():
        return workers
    return slaves


def cluster_hosts(conf_dir: Path) -> list[str]:
    """Every host of masters then slaves, in order of first appearance, each once."""
    entries = read_hosts_file(conf_dir / "masters") + read_hosts_file(slaves_file(conf_dir))
    hosts: list[str] = []
    for entry in entries:
        host = host_part(entry)
        if host.lower() not in (known.lower() for known in hosts):
            hosts.append(host)
    return hosts


def local_names() -> set[str]:
    """This host's names and addresses, lower case (what ``bin/config.sh`` also accepts)."""
    names = {"localhost", "::1"}
    hostname = socket.gethostname()
    names.add(hostname)
    names.add(hostname.split(".", 1)[0])
    try:
        names.add(socket.getfqdn())
    except OSError:
        pass
    try:
        for addresses in psutil.net_if_addrs().values():
            for address in addresses:
                if address.family in (socket.AF_INET, socket.AF_INET6):
                    names.add(address.address.split("%", 1)[0])
    except OSError:
        pass
    return {name.lower() for name in names if name}


def is_local_host(host: str, names: Iterable[str] | None = None) -> bool:
    """Whether a host of the conf files is this machine."""
    host = host.strip().lower()
    if not host:
        return False
    if host in ("localhost", "::1") or host.startswith("127."):
        return True
    try:
        if ipaddress.ip_address(host).is_loopback:
            return True
    except ValueError:
        pass
    return host in set(names if names is not None else local_names())


def group_hosts(hosts: list[str], names: Iterable[str] | None = None) -> list[tuple[str, bool]]:
    """``(host, is_local)`` in order; all names of this machine collapse into its first one."""
    names = set(names if names is not None else local_names())
    result: list[tuple[str, bool]] = []
    local_seen = False
    for host in hosts:
        if is_local_host(host, names):
            if not local_seen:
                result.append((host, True))
                local_seen = True
        else:
            result.append((host, False))
    return result


def strom_processes() -> list[tuple[int, str]]:
    """``(pid, role)`` of the Strom processes of this machine, by pid."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            role = role_of(process.name(), process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if role is not None:
            found.append((process.pid, role))
    return sorted(found)


def local_listing(host: str) -> str:
    lines = [header(getpass.getuser(), host)]
    lines += [f"{pid} {role}" for pid, role in strom_processes()]
    return "\n".join(lines) + "\n"


def remote_listing(host: str) -> tuple[str, bool]:
    """The listing of a remote host through ssh, and whether the host answered."""
    command = " ".join(
        shlex.quote(part)
        for part in [str(STROM_HOME / "bin" / "jps"), "--local", "--header-host", host]
    )
    ssh = ["ssh", "-n", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
    ssh += shlex.split(os.environ.get("STROM_SSH_OPTS", ""))
    ssh += [host, "--", command]
    try:
        result = subprocess.run(
            ssh, capture_output=True, text=True, timeout=SSH_TIMEOUT_SECONDS, check=False
        )
    except FileNotFoundError:
        reason = "ssh is not installed"
    except subprocess.TimeoutExpired:
        reason = f"no answer within {SSH_TIMEOUT_SECONDS:g} s"
    else:
        if result.returncode == 0:
            output = result.stdout
            return (output if output.endswith("\n") else output + "\n"), True
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"ssh exited with code {result.returncode}"
    return f"{header(getpass.getuser(), host)}\n(unreachable: {reason})\n", False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="jps",
        description="List the Strom processes (JobManager, TaskManager, slot processes) per host.",
    )
    parser.add_argument("--local", action="store_true", help="list this host only")
    parser.add_argument(
        "--header-host",
        default=None,
        help="the host name for the header (default: this host's name)",
    )
    parser.add_argument(
        "--conf-dir",
        default=None,
        help="folder of masters and slaves (default: $STROM_CONF_DIR, else conf/)",
    )
    args = parser.parse_args(argv)

    if args.local:
        sys.stdout.write(local_listing(args.header_host or socket.gethostname()))
        return 0

    conf_dir = Path(args.conf_dir or os.environ.get("STROM_CONF_DIR") or STROM_HOME / "conf")
    hosts = cluster_hosts(conf_dir)
    if not hosts:
        print(f"No hosts in {conf_dir}/masters or {slaves_file(conf_dir)}.", file=sys.stderr)
        return 1
    status = 0
    for host, local in group_hosts(hosts):
        if local:
            sys.stdout.write(local_listing(host))
        else:
            output, reachable = remote_listing(host)
            sys.stdout.write(output)
            if not reachable:
                status = 1
        sys.stdout.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())
