"""bin/start-zookeeper-quorum.sh and bin/stop-zookeeper-quorum.sh with conf/zoo.cfg as shipped
(ports and dataDir changed to free ones): a real ZooKeeper peer through strom-daemon.sh."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from harness import REPO_ROOT, free_port, poll_for

from jobmanager.ha import zookeeper_server


def test_start_and_stop_zookeeper_quorum_scripts(tmp_path):
    try:
        zookeeper_server.classpath()
        zookeeper_server.java_binary()
    except zookeeper_server.ZooKeeperNotInstalled as error:
        pytest.skip(str(error))
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "strom-conf.yaml").write_text("")
    port = free_port()
    zoo_cfg = (REPO_ROOT / "conf" / "zoo.cfg").read_text()
    zoo_cfg = zoo_cfg.replace("clientPort=2181", f"clientPort={port}")
    zoo_cfg = zoo_cfg.replace(
        "server.1=localhost:2888:3888", f"server.1=localhost:{free_port()}:{free_port()}"
    )
    zoo_cfg = zoo_cfg.replace("# dataDir=/tmp/zookeeper", f"dataDir={tmp_path / 'data'}")
    (conf / "zoo.cfg").write_text(zoo_cfg)
    env = dict(
        os.environ,
        STROM_CONF_DIR=str(conf),
        STROM_LOG_DIR=str(tmp_path / "log"),
        STROM_PID_DIR=str(tmp_path),
        STROM_PYTHON=sys.executable,
    )

    def run(script: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(REPO_ROOT / "bin" / script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    started = run("start-zookeeper-quorum.sh")
    try:
        assert started.returncode == 0, started.stderr
        assert "Starting zookeeper daemon" in started.stdout
        poll_for(lambda: zookeeper_server.is_serving("127.0.0.1", port), timeout=60)
        log = next((tmp_path / "log").glob("strom-*-zookeeper-0-*.log"))
        poll_for(lambda: " started" in log.read_text(), what="the peer to log that it started")
        assert (tmp_path / "data" / "zoo-1.cfg").exists()
    finally:
        stopped = run("stop-zookeeper-quorum.sh")
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopping zookeeper daemon" in stopped.stdout
    poll_for(lambda: not zookeeper_server.is_serving("127.0.0.1", port), what="ZooKeeper to stop")
    assert not (tmp_path / f"strom-{os.environ.get('USER', 'root')}-zookeeper.pid").exists()


def test_start_cluster_with_two_masters_elects_one_leader_that_runs_jobs(tmp_path):
    """conf/masters with two lines and high-availability.type: zookeeper: the scripts start
    ZooKeeper and both JobManagers, one leads, the CLI and the TaskManager find it."""
    pytest.importorskip("kazoo", reason="the kazoo client is not installed (pip install kazoo)")
    try:
        zookeeper_server.classpath()
        zookeeper_server.java_binary()
    except zookeeper_server.ZooKeeperNotInstalled as error:
        pytest.skip(str(error))
    import textwrap

    import yaml
    from test_checkpointing import committed_output, expected_output
    from test_jobmanager_loss import JOB

    from jobmanager.ha.services import find_leader_address
    from strom.configuration import load_configuration

    conf = tmp_path / "conf"
    conf.mkdir()
    port = free_port()
    (conf / "zoo.cfg").write_text(
        f"tickTime=500\ninitLimit=10\nsyncLimit=5\ndataDir={tmp_path / 'zk'}\n"
        f"clientPort={port}\nserver.1=localhost:{free_port()}:{free_port()}\n"
    )
    config = {
        # Each master's host from conf/masters replaces this address (what it publishes).
        "jobmanager.rpc.address": "127.0.0.2",
        "jobmanager.rpc.port": 0,  # any free port: TaskManagers and clients ask ZooKeeper
        "taskmanager.host": "127.0.0.1",
        "taskmanager.numberOfTaskSlots": 2,
        "heartbeat.interval": "200 ms",
        "heartbeat.timeout": "2 s",
        "cluster.registration.max-timeout": "500 ms",
        "high-availability.type": "zookeeper",
        "high-availability.zookeeper.quorum": f"127.0.0.1:{port}",
        "high-availability.storageDir": str(tmp_path / "ha"),
        "high-availability.zookeeper.client.session-timeout": "2 s",
    }
    (conf / "strom-conf.yaml").write_text(yaml.safe_dump(config))
    rest_ports = [free_port(), free_port()]
    (conf / "masters").write_text("".join(f"localhost:{p}\n" for p in rest_ports))
    (conf / "slaves").write_text("localhost\n")
    env = dict(
        os.environ,
        STROM_CONF_DIR=str(conf),
        STROM_LOG_DIR=str(tmp_path / "log"),
        STROM_PID_DIR=str(tmp_path),
        STROM_PYTHON=sys.executable,
    )

    def run(*command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            list(command), env=env, capture_output=True, text=True, timeout=180, cwd=REPO_ROOT
        )

    try:
        started = run("bash", str(REPO_ROOT / "bin" / "start-zookeeper-quorum.sh"))
        assert started.returncode == 0, started.stderr
        poll_for(lambda: zookeeper_server.is_serving("127.0.0.1", port), timeout=60)
        started = run("bash", str(REPO_ROOT / "bin" / "start-cluster.sh"))
        assert started.returncode == 0, started.stdout + started.stderr
        assert started.stdout.count("Starting jobmanager daemon") == 2

        settings = load_configuration(str(conf))
        leader = poll_for(lambda: find_leader_address(settings, timeout=5), timeout=60)
        assert leader.startswith("localhost:")
        logs = lambda: "".join(p.read_text() for p in (tmp_path / "log").glob("*jobmanager*.log"))  # noqa: E731
        poll_for(lambda: "leads (fencing token" in logs(), what="a JobManager to lead")
        standby = next(
            line.split("contending for leadership as ")[1].strip()
            for line in logs().splitlines()
            if "contending for leadership as " in line
            and line.split("contending for leadership as ")[1].strip() != leader
        )
        refused = run(sys.executable, "-m", "client.cli", "list", "-m", standby)
        assert refused.returncode == 1, refused.stderr
        assert f"this JobManager ({standby}) stands by; the leader is at {leader}" in (
            refused.stderr
        )
        assert "is the cluster running" not in refused.stderr

        job = tmp_path / "job" / "job.py"
        job.parent.mkdir()
        job.write_text(textwrap.dedent(JOB))
        output = tmp_path / "out"
        arguments = [str(job), str(output), str(tmp_path / "checkpoints"), "2000"]
        ran = run(sys.executable, "-m", "client.cli", "run", "-p", "2", *arguments)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert committed_output(output) == expected_output(2000)
    finally:
        run("bash", str(REPO_ROOT / "bin" / "stop-cluster.sh"))
        run("bash", str(REPO_ROOT / "bin" / "stop-zookeeper-quorum.sh"))
