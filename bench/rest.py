"""REST requests per second on ``GET /overview`` of a JobManager process, with and without a
crowd of idle connections held open beside the clients.

    python bench/rest.py [--clients 8] [--requests 300] [--rounds 3] [--idle 900]

Each client thread sends its requests over one keep-alive connection. Run it on the commit
before a change to the REST layer and after, in the same session: on a shared machine the
absolute figures swing, so compare rounds measured together.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_jobmanager(folder: Path) -> tuple[subprocess.Popen, int]:
    rpc, rest = free_port(), free_port()
    (folder / "strom-conf.yaml").write_text(
        f"jobmanager.rpc.address: 127.0.0.1\njobmanager.rpc.port: {rpc}\nrest.port: {rest}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "jobmanager", "--conf-dir", str(folder)],
        cwd=str(REPO),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{rest}/overview", timeout=2) as answer:
                json.loads(answer.read())
            return process, rest
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise SystemExit("the JobManager did not start") from None
            time.sleep(0.1)  # polling the JobManager's start


def client(port: int, requests: int, done: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for _ in range(requests):
        connection.request("GET", "/overview")
        answer = connection.getresponse()
        answer.read()
        if answer.status != 200:
            raise SystemExit(f"GET /overview answered {answer.status}")
    connection.close()
    done.append(requests)


def rate(port: int, clients: int, requests: int) -> float:
    done: list[int] = []
    threads = [threading.Thread(target=client, args=(port, requests, done)) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=int, default=900, help="idle connections held open")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        process, port = start_jobmanager(Path(tmp))
        try:
            for round_ in range(args.rounds):
                print(f"round {round_}: {rate(port, args.clients, args.requests):.0f} req/s")
            idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.idle)]
            for round_ in range(args.rounds):
                speed = rate(port, args.clients, args.requests)
                print(f"round {round_} beside {len(idle)} idle connections: {speed:.0f} req/s")
            for sock in idle:
                sock.close()
        finally:
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
