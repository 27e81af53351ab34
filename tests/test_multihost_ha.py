"""High availability across the network-namespace hosts of the multi-host tests: ZooKeeper
on host 3 (bin/start-zookeeper-quorum.sh over ssh), JobManagers on hosts 1 and 2 (two lines
in conf/masters, bin/start-cluster.sh), TaskManagers on hosts 2 and 3. SIGKILL of the leading
JobManager during an attached checkpointed FileSink job: the JobManager on the other host
takes over, the client follows it, and the committed output is exactly the expected one.
Needs root; elsewhere it is skipped with the reason, as are hosts without ZooKeeper."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import yaml
from harness import REPO_ROOT, poll_for, python_env
from test_checkpointing import committed_output, completed_checkpoints, expected_output
from test_jobmanager_loss import JOB
from test_multihost import BIN, SCRIPT_TIMEOUT_S, USER, hosts  # noqa: F401 - the fixture

from jobmanager.ha import zookeeper_server
from strom.configuration import load_configuration
from strom.process_identity import JOBMANAGER, role_of

pytestmark = pytest.mark.timeout(240)
COUNT = 40_000


def test_leader_killed_on_one_host_the_other_hosts_jobmanager_takes_over(hosts, tmp_path):  # noqa: F811
    pytest.importorskip("kazoo", reason="the kazoo client is not installed (pip install kazoo)")
    try:
        zookeeper_server.classpath()
        zookeeper_server.java_binary()
    except zookeeper_server.ZooKeeperNotInstalled as error:
        pytest.skip(str(error))
    from jobmanager.ha.services import find_leader_address

    h1, h2, h3 = hosts
    conf_dir, log_dir, pid_dir = tmp_path / "conf", tmp_path / "log", tmp_path / "pid"
    conf_dir.mkdir()
    hosts.make_private(pid_dir)
    zk_port = h3.free_port()
    (conf_dir / "zoo.cfg").write_text(
        f"tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={tmp_path / 'zk'}\n"
        f"clientPort={zk_port}\nserver.1={h3.name}:{h3.free_port()}:{h3.free_port()}\n"
    )
    config = {
        "jobmanager.rpc.address": h1.name,  # each master's own host replaces it
        "jobmanager.rpc.port": h1.free_port(),
        "rest.port": h1.free_port(),
        "taskmanager.numberOfTaskSlots": 2,
        "heartbeat.interval": "200 ms",
        "heartbeat.timeout": "2 s",
        "cluster.registration.max-timeout": "500 ms",
        "high-availability.type": "zookeeper",
        "high-availability.zookeeper.quorum": f"{h3.name}:{zk_port}",
        "high-availability.storageDir": str(tmp_path / "ha"),
        "high-availability.zookeeper.client.session-timeout": "2 s",
    }
    (conf_dir / "strom-conf.yaml").write_text(yaml.safe_dump(config))
    (conf_dir / "masters").write_text(f"{h1.name}\n{h2.name}\n")
    (conf_dir / "slaves").write_text(f"{h2.name}\n{h3.name}\n")
    env = python_env(
        STROM_CONF_DIR=str(conf_dir),
        STROM_LOG_DIR=str(log_dir),
        STROM_PID_DIR=str(pid_dir),
        STROM_SSH_OPTS=hosts.ssh_opts,
        USER=USER,
    )

    def script(name: str) -> str:
        result = subprocess.run(
            [str(BIN / name)],
            env=env,
            cwd=str(tmp_path),
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT_S,
        )
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"
        return result.stdout

    def jobmanager_on(host):
        return [p for p in host_processes(host) if role_of(p.name(), p.cmdline()) == JOBMANAGER]

    def host_processes(host):
        import psutil

        found = []
        for pid in host.pids():
            try:
                found.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        return found

    client = None
    try:
        script("start-zookeeper-quorum.sh")
        poll_for(lambda: zookeeper_server.is_serving(h3.address, zk_port), timeout=60)
        out = script("start-cluster.sh")
        assert f"Starting jobmanager daemon on host {h1.name}." in out
        assert f"Starting jobmanager daemon on host {h2.name}." in out
        settings = load_configuration(str(conf_dir))
        leader = poll_for(lambda: find_leader_address(settings, timeout=5), timeout=60)
        leading, standing_by = (h1, h2) if leader.startswith(h1.name) else (h2, h1)
        assert leader == f"{leading.name}:{config['jobmanager.rpc.port']}"

        job = tmp_path / "job" / "job.py"
        job.parent.mkdir()
        job.write_text(textwrap.dedent(JOB))
        output, checkpoints = tmp_path / "out", tmp_path / "checkpoints"
        client = subprocess.Popen(
            [sys.executable, "-m", "client.cli", "run", "-p", "2", str(job)]
            + [str(output), str(checkpoints), str(COUNT)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=str(REPO_ROOT),
            env=env,
        )
        poll_for(lambda: completed_checkpoints(checkpoints) >= 2, timeout=120)
        for process in jobmanager_on(leading):
            process.kill()
        new = poll_for(
            lambda: (a := find_leader_address(settings, timeout=5)) != leader and a, timeout=60
        )
        assert new.startswith(standing_by.name)
        stdout, stderr = client.communicate(timeout=180)
        assert client.returncode == 0, stdout + stderr
        assert committed_output(output) == expected_output(COUNT)
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.communicate()
        for name in ("stop-cluster.sh", "stop-zookeeper-quorum.sh"):
            subprocess.run([str(BIN / name)], env=env, capture_output=True, timeout=60)
