"""The web dashboard in headless Chromium against a real cluster running real jobs.

Chromium (Debian's ``chromium``; ``tests/browser/install-chromium.sh`` installs it) is driven
over the Chrome DevTools Protocol on its websocket. The test opens each page, waits for what a
person would look for, and writes a screenshot of it to ``$STROM_SCREENSHOT_DIR`` (default: a
folder under pytest's tmp dir; the path is printed). No fixed sleeps: every wait polls with a
deadline.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from harness import http_json, poll_for
from jobs_support import remote
from rest_support import SlowSink, Ticker, failing_job, first, observed_cluster_class, parity

from strom.datastream import StreamExecutionEnvironment
from strom.datastream.connectors.number_seq import NumberSequenceSource
from strom.errors import JobExecutionError

websocket = pytest.importorskip("websocket", reason="websocket-client is a test dependency")

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")
VIEWPORT = (1400, 900)


def chromium_path() -> str | None:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    return None


class Browser:
    """A headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, executable: str, profile: Path) -> None:
        self._ids = itertools.count(1)
        self.errors: list[str] = []
        self.stderr = profile.parent / "chromium.stderr"
        with open(self.stderr, "wb") as stderr:
            self.process = subprocess.Popen(
                [
                    executable,
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--hide-scrollbars",
                    f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
                    f"--user-data-dir={profile}",
                    "--remote-debugging-address=127.0.0.1",
                    "--remote-debugging-port=0",
                    "about:blank",
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        port_file = profile / "DevToolsActivePort"

        def endpoint() -> list[str] | None:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self.process.returncode}")
            lines = port_file.read_text().splitlines() if port_file.exists() else []
            return lines if len(lines) >= 2 else None

        port, path = poll_for(endpoint, timeout=30, what="chromium's DevToolsActivePort")[:2]
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}{path}", timeout=30, suppress_origin=True
        )
        self.session: str | None = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=VIEWPORT[0],
            height=VIEWPORT[1],
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if self.session is not None:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, event: dict[str, Any]) -> None:
        if event.get("method") == "Runtime.exceptionThrown":
            details = event["params"]["exceptionDetails"]
            text = (details.get("exception") or {}).get("description") or details.get("text")
            self.errors.append(f"uncaught: {text}")
        elif event.get("method") == "Runtime.consoleAPICalled":
            if event["params"].get("type") == "error":
                args = event["params"].get("args", [])
                self.errors.append(
                    "console.error: " + " ".join(str(a.get("value", a)) for a in args)
                )

    def evaluate(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def wait_for(self, expression: str, what: str, timeout: float = 15) -> Any:
        return poll_for(lambda: self.evaluate(expression), timeout=timeout, what=what)

    def text(self, selector: str) -> str:
        return self.evaluate(
            f"(document.querySelector({json.dumps(selector)}) || {{}}).textContent || ''"
        )

    def click(self, selector: str) -> None:
        """Click the element's centre with the mouse, as a person would."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " if (!e) return null; e.scrollIntoView({block: 'center', inline: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"
        )
        assert box, f"nothing to click at {selector}"
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box["x"],
                y=box["y"],
                button="left" if kind != "mouseMoved" else "none",
                clickCount=1 if kind != "mouseMoved" else 0,
            )

    def screenshot(self, path: Path) -> Path:
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": max(VIEWPORT[0], int(size["width"])),
            "height": min(max(VIEWPORT[1], int(size["height"])), 4000),
            "scale": 1,
        }
        shot = self.call(
            "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    executable = chromium_path()
    if executable is None:
        pytest.skip("chromium is not installed; run tests/browser/install-chromium.sh")
    profile = tmp_path_factory.mktemp("chromium") / "profile"
    profile.mkdir()
    try:
        browser = Browser(executable, profile)
    except Exception as error:  # cannot start here: say why, do not fail the suite
        stderr = profile.parent / "chromium.stderr"
        tail = stderr.read_text(errors="replace")[-1500:] if stderr.exists() else ""
        pytest.skip(f"chromium could not be started ({error}): {tail}")
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = os.environ.get("STROM_SCREENSHOT_DIR")
    path = Path(folder) if folder else tmp_path_factory.mktemp("dashboard-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\ndashboard screenshots: {path}", file=sys.stderr)
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dashboard-cluster")
    cluster = observed_cluster_class()(tmp, slots=2, **{"state.checkpoints.dir": str(tmp / "cp")})
    try:
        cluster.start(taskmanagers=2)
        yield cluster
    finally:
        cluster.stop()


def slow_add(value):
    time.sleep(0.004)
    return value + 1


@pytest.fixture(scope="module")
def jobs(cluster):
    """A finished job (checkpointing while it ran, where Strom checkpoints), a failed one and
    a running one."""
    ids = {}
    with remote(cluster.address):
        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        env.enable_checkpointing(100)
        numbers = env.from_source(NumberSequenceSource(0, 399), None, "Numbers").name("Numbers")
        numbers.map(slow_add).name("Slow Add").key_by(lambda v: v % 4).add_sink(lambda v: None)
        ids["finished"] = env.execute("dashboard finished job").get_job_id()

        env = StreamExecutionEnvironment.get_execution_environment()
        failing_job(env)
        client = env.execute_async("dashboard failing job")
        ids["failed"] = client.get_job_id()
        with pytest.raises(JobExecutionError):
            client.get_job_execution_result()

        env = StreamExecutionEnvironment.get_execution_environment()
        env.set_parallelism(2)
        source = env.add_source(Ticker()).name("Ticker").set_parallelism(1)
        source.map(parity).name("Tag").key_by(first).add_sink(SlowSink()).name("Slow Sink")
        running = env.execute_async("dashboard running job")
        ids["running"] = running.get_job_id()
    poll_for(
        lambda: http_json(f"{cluster.rest_url}/jobs/{ids['running']}")["state"] == "RUNNING",
        what="the running job to run",
    )
    yield ids
    try:
        running.cancel()
    except Exception:
        pass


# ---------------------------------------------------------------- the pages


def test_dashboard_pages(browser, cluster, jobs, screenshots):
    url = cluster.rest_url + "/"
    rest = cluster.rest_url
    running, finished, failed = jobs["running"], jobs["finished"], jobs["failed"]

    # Overview: task managers, slots, jobs.
    browser.open(url + "#/overview")
    browser.wait_for(
        "document.querySelector('#tm-count')?.textContent === '2'", "2 task managers shown"
    )
    assert browser.text("#slots-total") == "4"
    assert browser.text("#slots-available") == str(http_json(rest + "/overview")["slots-available"])
    assert int(browser.text("#cpu-cores")) >= 2
    assert browser.text("#jobs-running") == "1" and browser.text("#jobs-failed") == "1"
    browser.wait_for(
        f"!!document.querySelector('#running-jobs tr[data-jid=\"{running}\"]')",
        "the running job in the running list",
    )
    completed = browser.text("#completed-jobs")
    assert "dashboard finished job" in completed and "dashboard failing job" in completed
    assert browser.evaluate(
        f"!!document.querySelector('#completed-jobs tr[data-jid=\"{finished}\"]')"
    )
    browser.screenshot(screenshots / "01-overview.png")

    # A running job's graph: one SVG vertex per job vertex, edges labelled with partitioners.
    browser.click(f'#running-jobs tr[data-jid="{running}"] a')
    browser.wait_for(f"location.hash === '#/jobs/{running}'", "the job page")
    vertices = http_json(f"{rest}/jobs/{running}")["vertices"]
    names = [v["name"] for v in vertices]
    browser.wait_for(
        f"document.querySelectorAll('#job-graph g.vertex').length === {len(vertices)}",
        "the job graph",
    )
    graph_text = browser.text("#job-graph")
    for name in names:
        assert name in graph_text
    assert "REBALANCE" in graph_text and "HASH" in graph_text
    assert browser.evaluate("document.querySelectorAll('#job-graph path.edge').length") == 2
    browser.wait_for(
        "[...document.querySelectorAll('#job-graph text')].some(t =>"
        " t.textContent.startsWith('Backpressure: HIGH'))",
        "back pressure shown on the graph",
        timeout=20,
    )
    # Live: the records a vertex read grow while the page is open.
    reads = (
        "[...document.querySelectorAll('#job-graph g.vertex')].map(g =>"
        " g.querySelector('text:nth-of-type(4)').textContent).join('|')"
    )
    before = browser.evaluate(reads)
    browser.wait_for(f"{reads} !== {json.dumps(before)}", "the graph to refresh", timeout=10)
    browser.click("#job-graph g.vertex[data-id='{}']".format(vertices[1]["id"]))
    browser.wait_for(
        "document.querySelectorAll('#subtask-table tbody tr').length === 2", "Tag's subtasks"
    )
    assert "127.0.0.1" in browser.text("#subtask-table")
    browser.screenshot(screenshots / "02-running-job-graph.png")

    browser.click("#tab-configuration")
    browser.wait_for("!!document.querySelector('#execution-config')", "the configuration tab")
    assert "job-parallelism" in browser.text("#execution-config")
    browser.screenshot(screenshots / "03-running-job-configuration.png")

    # A finished job's checkpoints: the counts the REST API reports, and its history.
    browser.open(f"{url}#/jobs/{finished}/checkpoints")
    browser.wait_for("!!document.querySelector('#checkpoint-counts')", "the checkpoint counts")
    stats = http_json(f"{rest}/jobs/{finished}/checkpoints")
    shown = browser.evaluate(
        "Object.fromEntries([...document.querySelectorAll('#checkpoint-counts [data-count]')]"
        ".map(e => [e.dataset.count, Number(e.textContent)]))"
    )
    assert stats["counts"]["completed"] >= 1, "the finished job took checkpoints"
    assert shown["completed"] == stats["counts"]["completed"]
    assert shown["failed"] == stats["counts"]["failed"]
    rows = browser.evaluate(
        "document.querySelectorAll('#checkpoint-history tbody tr[data-checkpoint]').length"
    )
    assert rows == len(stats["history"])
    assert "FINISHED" in browser.text("#job-name")
    assert not browser.evaluate("!!document.querySelector('#cancel-job')"), "no cancel: it ended"
    browser.screenshot(screenshots / "04-finished-job-checkpoints.png")

    # A failed job's exceptions: the user's traceback.
    browser.open(f"{url}#/jobs/{failed}/exceptions")
    browser.wait_for("!!document.querySelector('#exceptions pre')", "the exceptions")
    trace = browser.text("#exceptions")
    assert "ValueError" in trace and "boom at record" in trace and "explode" in trace
    browser.screenshot(screenshots / "05-failed-job-exceptions.png")

    # Task managers: host, slots, CPU, memory; their log and stdout.
    browser.open(url + "#/taskmanagers")
    browser.wait_for(
        "document.querySelectorAll('#tm-table tbody tr[data-tm]').length === 2", "2 TMs listed"
    )
    assert "127.0.0.1" in browser.text("#tm-table")
    browser.screenshot(screenshots / "06-taskmanagers.png")
    tm_id = http_json(rest + "/taskmanagers")["taskmanagers"][0]["id"]
    browser.click(f'#tm-table tr[data-tm="{tm_id}"] a.mono')
    browser.wait_for(
        "[...document.querySelectorAll('#tm-tasks tbody tr')].some(r =>"
        " r.textContent.includes('Slow Sink'))",
        "the TaskManager's running tasks",
    )
    assert "1 / 2" in browser.text("#tm-summary")
    browser.screenshot(screenshots / "07-taskmanager-metrics.png")
    browser.click("#tab-log")
    browser.wait_for(
        "(document.querySelector('#log-view')?.textContent || '').includes('started on')",
        "the TaskManager's log",
    )
    browser.screenshot(screenshots / "08-taskmanager-log.png")
    browser.open(f"{url}#/taskmanagers/{urllib.parse.quote(tm_id, safe='')}/stdout")
    browser.wait_for(
        "!(document.querySelector('#stdout-view')?.textContent || 'Loading').startsWith('Loading')",
        "the TaskManager's stdout",
    )
    assert "Could not load" not in browser.text("#stdout-view")

    # Job manager: configuration and log.
    browser.open(url + "#/jobmanager/config")
    browser.wait_for(
        "(document.querySelector('#jm-config')?.textContent || '').includes('rest.port')",
        "the JobManager's configuration",
    )
    assert str(cluster.rest_port) in browser.text("#jm-config")
    browser.screenshot(screenshots / "09-jobmanager-config.png")
    browser.open(url + "#/jobmanager/log")
    browser.wait_for(
        "(document.querySelector('#jm-log')?.textContent || '').includes('JobManager')",
        "the JobManager's log",
    )
    browser.screenshot(screenshots / "10-jobmanager-log.png")

    # Cancel from the page cancels the job.
    browser.open(f"{url}#/jobs/{running}")
    browser.wait_for("!!document.querySelector('#cancel-job')", "the cancel button")
    browser.click("#cancel-job")
    browser.wait_for("!!document.querySelector('#confirm-cancel')", "the confirmation")
    browser.click("#confirm-cancel")
    poll_for(
        lambda: http_json(f"{rest}/jobs/{running}")["state"] == "CANCELED",
        timeout=20,
        what="the job to be cancelled from the page",
    )
    browser.wait_for(
        "(document.querySelector('#job-name')?.textContent || '').includes('CANCELED')",
        "the page to show CANCELED",
    )
    assert not browser.evaluate("!!document.querySelector('#cancel-job')")
    browser.screenshot(screenshots / "11-cancelled-job.png")

    assert not browser.errors, browser.errors
    written = sorted(p.name for p in screenshots.glob("*.png"))
    assert len(written) == 11, written
    print(f"dashboard screenshots in {screenshots}: {', '.join(written)}", file=sys.stderr)


def test_cancel_from_the_page_asks_for_the_access_token(
    browser, tmp_path, screenshots, monkeypatch
):
    """With security.rest.token set, the page's cancel asks for the token once per session."""
    from harness import LocalCluster

    token = "dashboard-secret-token"
    cluster = LocalCluster(tmp_path / "cluster", slots=2, **{"security.rest.token": token})
    try:
        cluster.start(taskmanagers=1)
        monkeypatch.setenv("STROM_CONF_DIR", str(cluster.conf_dir))  # the client's token
        with remote(cluster.address):
            env = StreamExecutionEnvironment.get_execution_environment()
            source = env.add_source(Ticker()).name("Ticker").set_parallelism(1)
            source.map(parity).name("Tag").add_sink(SlowSink()).name("Slow Sink")
            job_id = env.execute_async("token job").get_job_id()
        job_url = f"{cluster.rest_url}/jobs/{job_id}"
        poll_for(lambda: http_json(job_url)["state"] == "RUNNING", what="the job to run")

        browser.open(f"{cluster.rest_url}/#/jobs/{job_id}")
        browser.evaluate("sessionStorage.clear()")
        browser.wait_for("!!document.querySelector('#cancel-job')", "the cancel button")
        browser.click("#cancel-job")
        browser.wait_for("!!document.querySelector('#confirm-cancel')", "the confirmation")
        browser.click("#confirm-cancel")
        browser.wait_for("!!document.querySelector('#login-token')", "the token prompt")
        assert http_json(job_url)["state"] == "RUNNING", "cancelled without the token"
        browser.screenshot(screenshots / "12-token-prompt.png")

        browser.evaluate(f"document.querySelector('#login-token').value = {json.dumps(token)}")
        browser.click("#login-submit")
        poll_for(
            lambda: http_json(job_url)["state"] == "CANCELED",
            what="the job to be cancelled once the token was given",
        )
        assert browser.evaluate("sessionStorage.getItem('strom.rest.token')") == token
        assert not browser.evaluate("!!document.querySelector('#login')")
        assert not browser.errors, browser.errors
    finally:
        cluster.stop()
