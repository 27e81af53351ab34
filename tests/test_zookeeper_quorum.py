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
