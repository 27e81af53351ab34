"""bin/ scripts and bin/jps, with real daemons on free loopback ports.

Every test gets its own conf, log and pid folders; a finalizer stops whatever the scripts
started (stop-cluster.sh, then the pids of the pid files, then any Strom process whose
STROM_CONF_DIR is the test's), also when the test fails. No fixed sleeps: ``poll_for`` waits.
"""

from __future__ import annotations

import os
import pwd
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import yaml
from harness import REPO_ROOT, free_port, http_json, poll_for, python_env

from client import jps
from strom.process_identity import JOBMANAGER, TASKMANAGER, role_of

BIN = REPO_ROOT / "bin"
USER = pwd.getpwuid(os.getuid()).pw_name
HOSTNAME = socket.gethostname()
HEARTBEAT_TIMEOUT_S = 2.0
SCRIPT_TIMEOUT_S = 60.0

FAKE_SSH = r"""#!/usr/bin/env bash
# Records its arguments, then runs the remote command here (or fails for host "deadhost").
printf '%s\n' "$*" >>"$FAKE_SSH_LOG"
host=""
while [ "$#" -gt 0 ]; do
    case "$1" in
        --) shift; break ;;
        -o | -p | -i | -l) shift 2 ;;
        -*) shift ;;
        *) if [ -z "$host" ]; then host="$1"; shift; else break; fi ;;
    esac
done
if [ "$host" = deadhost ]; then
    echo "ssh: connect to host deadhost port 22: Connection refused" >&2
    exit 255
fi
exec bash -c "$*"
"""


@dataclass
class Scripts:
    """A temporary installation setup for the scripts: conf, log and pid folders, env."""

    root: Path
    conf_dir: Path
    log_dir: Path
    pid_dir: Path
    rest_port: int
    rpc_port: int
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, script: str, *args: str, cwd: Path | None = None, bin_dir: Path = BIN
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(bin_dir / script), *args],
            env=self.env,
            cwd=str(cwd or self.root),
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
            check=False,
        )

    def ok(self, script: str, *args: str, **kwargs) -> str:
        result = self.run(script, *args, **kwargs)
        assert result.returncode == 0, (
            f"{script} {' '.join(args)} failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}\n{self.logs()}"
        )
        return result.stdout

    def write_conf(self, masters: str = "localhost\n", slaves: str = "localhost\nlocalhost\n"):
        (self.conf_dir / "masters").write_text(masters)
        (self.conf_dir / "slaves").write_text(slaves)

    def overview(self) -> dict:
        return http_json(f"http://127.0.0.1:{self.rest_port}/overview", timeout=2)

    def wait_for_taskmanagers(self, count: int, timeout: float = 15.0) -> dict:
        def check():
            overview = self.overview()
            return overview if overview["taskmanagers"] == count else None

        return poll_for(check, timeout=timeout, what=f"{count} TaskManagers in /overview")

    def pid_file(self, role: str) -> Path:
        return self.pid_dir / f"strom-{USER}-{role}.pid"

    def pids(self, role: str) -> list[int]:
        path = self.pid_file(role)
        if not path.exists():
            return []
        return [int(line) for line in path.read_text().split()]

    def processes(self) -> list[psutil.Process]:
        """Live Strom processes started with this test's STROM_CONF_DIR."""
        return strom_processes_of(self.conf_dir)

    def logs(self) -> str:
        if not self.log_dir.exists():
            return ""
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.log_dir.iterdir())
            if path.is_file()
        )


def strom_processes_of(conf_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if role_of(process.name(), process.cmdline()) is None:
                continue
            if process.environ().get("STROM_CONF_DIR") == str(conf_dir):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def kill_if_strom(pid: int) -> None:
    try:
        process = psutil.Process(pid)
        if role_of(process.name(), process.cmdline()) is not None:
            process.kill()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        pass


@pytest.fixture
def scripts(tmp_path):
    root = tmp_path
    conf_dir, log_dir, pid_dir = root / "conf", root / "log", root / "pid"
    conf_dir.mkdir()
    fake_bin = root / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "ssh").write_text(FAKE_SSH)
    (fake_bin / "ssh").chmod(0o755)
    setup = Scripts(root, conf_dir, log_dir, pid_dir, free_port(), free_port())
    config = {
        "jobmanager.rpc.address": "127.0.0.1",
        "jobmanager.rpc.port": setup.rpc_port,
        "rest.port": setup.rest_port,
        "taskmanager.numberOfTaskSlots": 2,
        "heartbeat.interval": "200 ms",
        "heartbeat.timeout": f"{HEARTBEAT_TIMEOUT_S:g} s",
        "cluster.registration.max-timeout": "500 ms",
    }
    (conf_dir / "strom-conf.yaml").write_text(yaml.safe_dump(config))
    setup.write_conf()
    setup.env = python_env(
        STROM_CONF_DIR=str(conf_dir),
        STROM_LOG_DIR=str(log_dir),
        STROM_PID_DIR=str(pid_dir),
        STROM_PYTHON=sys.executable,
        USER=USER,
        FAKE_SSH_LOG=str(root / "ssh.log"),
        PATH=f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    setup.env.pop("STROM_SSH_OPTS", None)
    try:
        yield setup
    finally:
        try:
            setup.run("stop-cluster.sh")
        except Exception:  # the kills below clean up regardless
            pass
        if pid_dir.exists():
            for path in pid_dir.glob("*.pid"):
                for word in path.read_text().split():
                    if word.isdigit():
                        kill_if_strom(int(word))
        for process in strom_processes_of(conf_dir):
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def jps_lines(output: str) -> dict[int, str]:
    roles = {}
    for line in output.splitlines():
        pid, _, role = line.partition(" ")
        if pid.isdigit():
            roles[int(pid)] = role
    return roles


def header(host: str) -> str:
    return f"===========     {USER}@{host} All Processes         ==========="


# ------------------------------------------------------------------------- cluster scripts


def test_start_cluster_jps_logs_and_stop(scripts):
    out = scripts.ok("start-cluster.sh")
    assert out.count(f"Starting taskmanager daemon on host {HOSTNAME}.") == 2
    assert f"Starting jobmanager daemon on host {HOSTNAME}." in out

    overview = scripts.wait_for_taskmanagers(2)
    assert overview["slots-total"] == 4

    assert len(scripts.pids("jobmanager")) == 1
    taskmanagers = scripts.pids("taskmanager")
    assert len(taskmanagers) == 2
    (jobmanager,) = scripts.pids("jobmanager")
    for role, n in [("jobmanager", 0), ("taskmanager", 0), ("taskmanager", 1)]:
        for suffix in ("log", "out"):
            assert (scripts.log_dir / f"strom-{USER}-{role}-{n}-{HOSTNAME}.{suffix}").is_file()
    assert "started" in (scripts.log_dir / f"strom-{USER}-jobmanager-0-{HOSTNAME}.log").read_text()

    listing = scripts.ok("jps")
    assert listing.splitlines()[0] == header("localhost")
    assert listing.count("All Processes") == 1  # masters and slaves name one local host
    roles = jps_lines(listing)
    ours = {pid: roles.get(pid) for pid in [jobmanager, *taskmanagers]}
    assert ours == {jobmanager: JOBMANAGER, **dict.fromkeys(taskmanagers, TASKMANAGER)}
    mine = {p.pid for p in scripts.processes()}
    assert sorted(roles[pid] for pid in mine) == [JOBMANAGER, TASKMANAGER, TASKMANAGER]
    assert list(roles) == sorted(roles)

    local = scripts.ok("jps", "--local")
    assert local.splitlines()[0] == header(HOSTNAME)
    assert set(jps_lines(local)) >= {jobmanager, *taskmanagers}

    out = scripts.ok("stop-cluster.sh")
    assert out.count("Stopping taskmanager daemon") == 2
    assert scripts.processes() == []
    assert not scripts.pid_file("taskmanager").exists()
    # Stopping again is not an error.
    out = scripts.ok("stop-cluster.sh")
    assert f"No taskmanager daemon to stop on host {HOSTNAME}." in out
    assert f"No jobmanager daemon to stop on host {HOSTNAME}." in out


def test_killed_taskmanager_is_noticed_and_replaced(scripts):
    scripts.ok("start-cluster.sh")
    scripts.wait_for_taskmanagers(2)
    victim = scripts.pids("taskmanager")[0]
    os.kill(victim, signal.SIGKILL)
    scripts.wait_for_taskmanagers(1, timeout=HEARTBEAT_TIMEOUT_S + 3)

    out = scripts.ok("taskmanager.sh", "start")
    assert "1 instance(s) of taskmanager are already running" in out
    scripts.wait_for_taskmanagers(2)
    pids = scripts.pids("taskmanager")
    assert len(pids) == 2 and victim not in pids
    # Instance 1 still runs, so the new one must not share its files.
    assert (scripts.log_dir / f"strom-{USER}-taskmanager-2-{HOSTNAME}.log").is_file()


def test_jobmanager_restart_taskmanagers_register_again(scripts):
    scripts.ok("start-cluster.sh")
    scripts.wait_for_taskmanagers(2)
    first = scripts.pids("jobmanager")
    out = scripts.ok("jobmanager.sh", "stop")
    assert f"Stopping jobmanager daemon (pid: {first[0]})" in out
    assert not psutil.pid_exists(first[0]) or psutil.Process(first[0]).status() == "zombie"

    scripts.ok("jobmanager.sh", "start")
    assert scripts.pids("jobmanager") != first
    overview = scripts.wait_for_taskmanagers(2, timeout=HEARTBEAT_TIMEOUT_S + 15)
    assert overview["slots-total"] == 4


def test_stop_cluster_after_a_taskmanager_was_killed(scripts):
    scripts.ok("start-cluster.sh")
    scripts.wait_for_taskmanagers(2)
    os.kill(scripts.pids("taskmanager")[-1], signal.SIGKILL)
    out = scripts.ok("stop-cluster.sh")
    assert "Stopping jobmanager daemon" in out
    assert scripts.processes() == []
    assert not scripts.pid_file("taskmanager").exists()
    assert not scripts.pid_file("jobmanager").exists()


def test_scripts_from_another_cwd_and_through_symlinks(scripts, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    linked_bin = tmp_path / "links" / "bin"
    linked_bin.parent.mkdir()
    linked_bin.symlink_to(BIN)  # a link to the folder
    # A chain of relative links to single scripts.
    (tmp_path / "links" / "tm.sh").symlink_to(Path("bin") / "taskmanager.sh")
    (elsewhere / "taskmanager").symlink_to(Path("..") / "links" / "tm.sh")
    (elsewhere / "jps").symlink_to(BIN / "jps")

    scripts.ok("jobmanager.sh", "start", cwd=elsewhere, bin_dir=linked_bin)
    poll_for(scripts.overview, what="the JobManager")
    scripts.ok("taskmanager", "start", cwd=elsewhere, bin_dir=elsewhere)
    scripts.wait_for_taskmanagers(1)
    assert header("localhost") in scripts.ok("jps", cwd=elsewhere, bin_dir=elsewhere)
    assert len(scripts.pids("jobmanager")) == 1
    assert (scripts.log_dir / f"strom-{USER}-taskmanager-0-{HOSTNAME}.out").is_file()

    scripts.ok("taskmanager", "stop-all", cwd=elsewhere, bin_dir=elsewhere)
    scripts.ok("jobmanager.sh", "stop-all", cwd=elsewhere, bin_dir=linked_bin)
    assert scripts.processes() == []


def test_bad_config_key_fails_the_start_with_its_name(scripts):
    conf = scripts.conf_dir / "strom-conf.yaml"
    conf.write_text(conf.read_text() + "rest.prot: 8081\n")
    result = scripts.run("jobmanager.sh", "start")
    assert result.returncode != 0
    assert "rest.prot" in result.stdout + result.stderr
    assert scripts.pids("jobmanager") == []
    assert scripts.processes() == []


def test_bad_arguments_are_usage_errors(scripts):
    result = scripts.run("taskmanager.sh", "restart")
    assert result.returncode != 0 and "Usage" in result.stderr
    result = scripts.run("strom-daemon.sh", "start", "historyserver")
    assert result.returncode != 0 and "historyserver" in result.stderr
    out = scripts.ok("taskmanager.sh", "stop")
    assert out.strip() == f"No taskmanager daemon to stop on host {HOSTNAME}."


def test_remote_hosts_go_through_ssh(scripts):
    """A fake ``ssh`` first on PATH runs the command here and records how it was called."""
    scripts.write_conf(masters=f"remotehost:{scripts.rest_port}\n", slaves="remotehost\n")
    scripts.env["STROM_SSH_OPTS"] = "-o StrictHostKeyChecking=no -p 22"
    scripts.ok("start-cluster.sh")
    scripts.wait_for_taskmanagers(1)
    calls = (scripts.root / "ssh.log").read_text().splitlines()
    assert len(calls) == 2
    for call, script in zip(calls, ["jobmanager.sh", "taskmanager.sh"], strict=True):
        assert call.startswith("-n -o StrictHostKeyChecking=no -p 22 remotehost -- ")
        assert f"STROM_CONF_DIR={scripts.conf_dir}" in call
        assert f"STROM_PID_DIR={scripts.pid_dir}" in call
        assert f"{BIN}/{script} start" in call
    assert f"rest.port={scripts.rest_port}" in calls[0]

    scripts.write_conf(
        masters="remotehost\n", slaves="remotehost\nlocalhost\n127.0.0.1\ndeadhost\n"
    )
    result = scripts.run("jps")
    assert result.returncode == 1
    blocks = result.stdout.split("===========     ")[1:]
    assert [block.split(" ", 1)[0] for block in blocks] == [
        f"{USER}@remotehost",
        f"{USER}@localhost",
        f"{USER}@deadhost",
    ]
    assert len(jps_lines(blocks[0]).keys() & set(scripts.pids("taskmanager"))) == 1
    assert "(unreachable: ssh: connect to host deadhost port 22: Connection refused)" in blocks[2]

    scripts.write_conf(masters="remotehost\n", slaves="remotehost\n")
    scripts.ok("stop-cluster.sh")
    assert scripts.processes() == []
    stops = [c for c in (scripts.root / "ssh.log").read_text().splitlines() if c.endswith(" stop")]
    assert len(stops) == 2


# --------------------------------------------------------------------------------- jps


def test_jps_finds_python_m_and_main_called_from_python_c(scripts):
    env = dict(scripts.env)
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "taskmanager", "--conf-dir", str(scripts.conf_dir)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from taskmanager.entrypoint import main; main()",
                "--conf-dir",
                str(scripts.conf_dir),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        pids = {process.pid for process in started}

        def found():
            roles = dict(jps.strom_processes())
            return all(roles.get(pid) == TASKMANAGER for pid in pids)

        poll_for(found, timeout=15, what="both TaskManagers in jps")
        roles = jps_lines(scripts.ok("jps", "--local"))
        assert {pid: roles.get(pid) for pid in pids} == dict.fromkeys(pids, TASKMANAGER)
    finally:
        for process in started:
            process.kill()
            process.wait(timeout=10)


def test_jps_local_main(capsys):
    assert jps.main(["--local", "--header-host", "somehost"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == header("somehost")


def test_hosts_files(tmp_path):
    (tmp_path / "masters").write_text("# the JobManager\n\n  jm1:8081  # web ui\n")
    (tmp_path / "workers").write_text("w1\n\n# comment\n  w2 \nw1\nJM1\n\t\n[fe80::1]:22\n")
    assert jps.read_hosts_file(tmp_path / "masters") == ["jm1:8081"]
    assert jps.slaves_file(tmp_path) == tmp_path / "workers"
    assert jps.cluster_hosts(tmp_path) == ["jm1", "w1", "w2", "fe80::1"]
    (tmp_path / "slaves").write_text("s1\n")
    assert jps.slaves_file(tmp_path) == tmp_path / "slaves"
    assert jps.cluster_hosts(tmp_path) == ["jm1", "s1"]
    assert jps.read_hosts_file(tmp_path / "missing") == []


@pytest.mark.parametrize(
    "entry, host",
    [
        ("host1", "host1"),
        ("host1:8081", "host1"),
        ("10.0.0.1:8081", "10.0.0.1"),
        ("[::1]:8081", "::1"),
        ("fe80::1", "fe80::1"),
    ],
)
def test_host_part(entry, host):
    assert jps.host_part(entry) == host


def test_local_hosts_are_listed_once():
    names = {"box", "box.example.org", "10.1.2.3"}
    hosts = ["localhost", "box", "w1", "127.0.0.1", "10.1.2.3", "w2", "BOX.example.org", "::1"]
    assert jps.group_hosts(hosts, names) == [("localhost", True), ("w1", False), ("w2", False)]
    assert not jps.is_local_host("w1", names)
    assert not jps.is_local_host("", names)
    assert jps.is_local_host("127.5.5.5", names)
    assert jps.is_local_host(HOSTNAME)
    assert jps.is_local_host(socket.getfqdn())


def test_config_sh_agrees_with_jps(scripts):
    """The shell and Python readers of the conf files and the local-host rule agree."""
    scripts.write_conf(
        masters="# jm\n  box:9000 \n", slaves="w1\n\n# c\n w2\t# two\nw1\n[fe80::1]:22\n"
    )
    (scripts.conf_dir / "strom-conf.yaml").write_text("env.log.dir: 'relative/logs' # here\n")
    env = {k: v for k, v in scripts.env.items() if k not in ("STROM_LOG_DIR", "STROM_PID_DIR")}
    probe = f"""
        set -euo pipefail
        . {BIN}/config.sh
        strom_read_masters; strom_read_slaves
        echo "masters=${{MASTERS[*]}} ports=${{WEBUIPORTS[*]}} slaves=${{SLAVES[*]}}"
        echo "home=$STROM_HOME log=$STROM_LOG_DIR pid=$STROM_PID_DIR python=$PYTHON"
        for h in localhost 127.0.0.9 ::1 "$(hostname)" {HOSTNAME.upper()} w1 example.invalid; do
            if strom_is_local_host "$h"; then echo "local $h"; else echo "remote $h"; fi
        done
    """
    result = subprocess.run(
        ["bash", "-c", probe], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "masters=box ports=9000 slaves=w1 w2 w1 fe80::1"
    assert lines[1] == (
        f"home={REPO_ROOT} log={REPO_ROOT}/relative/logs pid=/tmp python={sys.executable}"
    )
    assert lines[2:] == [
        "local localhost",
        "local 127.0.0.9",
        "local ::1",
        f"local {HOSTNAME}",
        f"local {HOSTNAME.upper()}",
        "remote w1",
        "remote example.invalid",
    ]
    for line in lines[2:]:
        verdict, host = line.split(" ", 1)
        assert jps.is_local_host(host) == (verdict == "local"), host


# ------------------------------------------------------------------ process identity


@pytest.mark.parametrize(
    "name, cmdline, role",
    [
        ("strom-jm", [], JOBMANAGER),
        ("strom-tm", ["python3", "-c", "pass"], TASKMANAGER),
        ("python3", ["/venv/bin/python3", "-m", "jobmanager"], JOBMANAGER),
        ("python3", ["python3.12", "-u", "-m", "taskmanager", "-D", "a=b"], TASKMANAGER),
        ("strom-jobmanage", ["/venv/bin/strom-jobmanager", "--conf-dir", "c"], JOBMANAGER),
        ("python", ["/usr/bin/python", "/venv/bin/strom-taskmanager"], TASKMANAGER),
        ("python", ["python", "/repo/taskmanager/__main__.py"], TASKMANAGER),
        ("python", ["python", "-m", "pytest", "tests/test_taskmanager.py"], None),
        ("python", ["python", "-m", "jobmanager.tools"], None),
        ("python", ["python", "-c", "from taskmanager.entrypoint import main; main()"], None),
        ("bash", ["bash", "/repo/bin/taskmanager.sh", "start"], None),
        ("python", [], None),
        ("vim", ["vim", "jobmanager"], None),
    ],
)
def test_role_of(name, cmdline, role):
    assert role_of(name, cmdline) == role
