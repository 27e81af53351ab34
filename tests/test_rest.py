"""The REST API against a real cluster running real jobs.

Every answer is checked against ``jobmanager/web/openapi.yaml``; the last test fails when an
operation described there was never exercised. The Prometheus endpoints (the JobManager's, a
TaskManager's through the JobManager, and the TaskManager's own) are parsed with
``prometheus_client``'s parser.
"""

from __future__ import annotations

import json
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from harness import REPO_ROOT, poll_for
from jobs_support import remote
from rest_support import (
    STDOUT_MARKER,
    bounded_job,
    failing_job,
    observed_cluster_class,
    running_job,
)

from strom.datastream import StreamExecutionEnvironment
from strom.errors import JobExecutionError

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a test dependency")
prometheus_parser = pytest.importorskip(
    "prometheus_client.parser", reason="prometheus_client is a test dependency"
)

SPEC_PATH = REPO_ROOT / "jobmanager" / "web" / "openapi.yaml"


# ---------------------------------------------------------------- OpenAPI checking


class OpenApi:
    """Finds the operation and response schema of an answer and validates the answer."""

    def __init__(self, path: Path) -> None:
        self.spec = yaml.safe_load(path.read_text())
        templates = sorted(
            self.spec["paths"], key=lambda t: (t.count("{"), -len(t))
        )  # literal paths before parameterised ones: /jobs/overview before /jobs/{jobid}
        self.templates = [
            (t, re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", t) + "/?$")) for t in templates
        ]
        self.covered: set[tuple[str, str]] = set()

    def operations(self) -> set[tuple[str, str]]:
        methods = {"get", "post", "patch", "put", "delete"}
        return {
            (template, method.upper())
            for template, item in self.spec["paths"].items()
            for method in item
            if method in methods
        }

    def _resolve(self, node: dict) -> dict:
        while "$ref" in node and len(node) == 1:
            *_, section, name = node["$ref"].split("/")
            node = self.spec["components"][section][name]
        return node

    def check(self, method: str, path: str, status: int, content_type: str, body: Any) -> None:
        path = path.split("?", 1)[0]
        for template, pattern in self.templates:
            if pattern.match(path) and method.lower() in self.spec["paths"][template]:
                break
        else:
            if status in (404, 405):  # unknown paths and methods answer the error shape
                jsonschema.validate(body, self.spec["components"]["schemas"]["Errors"])
                return
            raise AssertionError(f"{method} {path} is not described in openapi.yaml")
        operation = self.spec["paths"][template][method.lower()]
        responses = operation["responses"]
        assert str(status) in responses, (
            f"{method} {template} answered {status}, which openapi.yaml does not list "
            f"({sorted(responses)}): {body!r:.300}"
        )
        self.covered.add((template, method))
        response = self._resolve(responses[str(status)])
        media = content_type.split(";", 1)[0].strip()
        content = response.get("content") or {}
        assert media in content, f"{method} {template} {status}: {media} not in {list(content)}"
        schema = content[media].get("schema")
        if media == "application/json" and schema:
            document = {**schema, "components": self.spec["components"]}
            validator = jsonschema.Draft202012Validator(document)
            errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
            assert not errors, (
                f"{method} {path} {status} does not match openapi.yaml: "
                + "; ".join(f"{list(e.path)}: {e.message:.200}" for e in errors[:5])
            )
        elif schema:
            assert isinstance(body, str)


@dataclass
class Answer:
    status: int
    headers: Any
    text: str

    @property
    def json(self) -> Any:
        return json.loads(self.text)

    @property
    def error(self) -> str:
        return " ".join(self.json["errors"])


class RestClient:
    def __init__(self, base: str, api: OpenApi) -> None:
        self.base = base
        self.api = api

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        expect: int | tuple[int, ...] = 200,
    ) -> Answer:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                answer = Answer(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            answer = Answer(error.code, error.headers, error.read().decode())
        expected = (expect,) if isinstance(expect, int) else expect
        assert answer.status in expected, f"{method} {path}: {answer.status} {answer.text[:500]}"
        content_type = answer.headers.get("Content-Type", "")
        parsed = answer.json if content_type.startswith("application/json") else answer.text
        self.api.check(method, path, answer.status, content_type, parsed)
        if answer.status >= 400:
            assert answer.json["errors"] and all(answer.json["errors"]), answer.text
        return answer

    def get(self, path: str, expect: int | tuple[int, ...] = 200) -> Answer:
        return self.call("GET", path, expect=expect)


def families(text: str) -> dict[str, Any]:
    """Prometheus text parsed by prometheus_client: family name -> family."""
    return {
        family.name: family for family in prometheus_parser.text_string_to_metric_families(text)
    }


def samples(family: Any, **labels: str) -> list[Any]:
    return [s for s in family.samples if all(s.labels.get(k) == v for k, v in labels.items())]


# ---------------------------------------------------------------- the cluster and its jobs


@pytest.fixture(scope="module")
def openapi() -> OpenApi:
    return OpenApi(SPEC_PATH)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rest-cluster")
    cluster = observed_cluster_class()(
        tmp,
        slots=2,
        **{
            "metrics.reporter.prom.port": "0",
            "state.savepoints.dir": str(tmp / "savepoints"),
        },
    )
    try:
        cluster.start(taskmanagers=2)
        yield cluster
    except BaseException:
        print(cluster.logs(), file=sys.stderr)
        raise
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def rest(cluster, openapi) -> RestClient:
    return RestClient(cluster.rest_url, openapi)


@pytest.fixture(scope="module")
def jobs(cluster):
    """A finished, a failed and a running job, submitted with the Python API."""
    ids = {}
    with remote(cluster.address):
        env = StreamExecutionEnvironment.get_execution_environment()
        bounded_job(env)
        ids["finished"] = env.execute("rest finished job").get_job_id()
        env = StreamExecutionEnvironment.get_execution_environment()
        failing_job(env)
        client = env.execute_async("rest failing job")
        ids["failed"] = client.get_job_id()
        with pytest.raises(JobExecutionError):
            client.get_job_execution_result()
        env = StreamExecutionEnvironment.get_execution_environment()
        running_job(env)
        running = env.execute_async("rest running job")
        ids["running"] = running.get_job_id()
    yield ids
    try:
        running.cancel()
    except Exception:
        pass


def wait_for_state(rest: RestClient, job_id: str, state: str, timeout: float = 20) -> dict:
    """The job's details once it is in ``state``; for RUNNING, once every task runs too (as in
    Flink, a job is RUNNING while its tasks are still being deployed)."""

    def reached() -> dict | None:
        job = rest.get(f"/jobs/{job_id}").json
        if job["state"] != state:
            return None
        if state == "RUNNING" and any(v["status"] != "RUNNING" for v in job["vertices"]):
            return None
        return job

    return poll_for(reached, timeout=timeout, what=f"job {job_id} to be {state}")


def quoted(tm_id: str) -> str:
    return urllib.parse.quote(tm_id, safe="")


# ---------------------------------------------------------------- cluster endpoints


def test_overview_and_dashboard_config(rest, jobs):
    overview = rest.get("/overview").json
    assert overview["taskmanagers"] == 2
    assert overview["slots-total"] == 4
    assert overview["jobs-finished"] >= 1 and overview["jobs-failed"] >= 1
    config = rest.get("/config").json
    assert config["refresh-interval"] > 0 and config["strom-version"]


def test_taskmanagers_with_resources_slots_and_metrics(rest, jobs):
    listed = rest.get("/taskmanagers").json["taskmanagers"]
    assert len(listed) == 2
    wait_for_state(rest, jobs["running"], "RUNNING")
    for item in listed:
        assert item["slotsNumber"] == 2 and item["hardware"]["cpuCores"] >= 1
        details = rest.get(f"/taskmanagers/{quoted(item['id'])}").json
        assert "metricsError" not in details, details.get("metricsError")
        assert details["metrics"]["memoryRss"] > 0 and details["metrics"]["threads"] > 0
        assert details["metricsPort"] > 0, "metrics.reporter.prom.port: 0 takes a free port"
        assert {s["jobId"] for s in details["allocatedSlots"]} <= set(jobs.values())

    def used_tasks() -> list[dict]:
        return [
            task
            for item in listed
            for task in rest.get(f"/taskmanagers/{quoted(item['id'])}").json["tasks"]
        ]

    # RUNNING comes with the deployment, before the slot processes have started the tasks.
    used = poll_for(lambda: len(found := used_tasks()) == 5 and found, what="the job's tasks")
    assert {t["name"] for t in used} == {"Ticker", "Tag", "Slow Sink"}
    assert all(t["jobId"] == jobs["running"] for t in used)
    rest.get("/taskmanagers/no-such-taskmanager", expect=404)
    assert "nope" in rest.get("/taskmanagers/nope/metrics", expect=404).error


def test_taskmanager_prometheus_metrics_through_jobmanager_and_own_endpoint(rest, jobs):
    wait_for_state(rest, jobs["running"], "RUNNING")
    listed = rest.get("/taskmanagers").json["taskmanagers"]
    records: dict[str, float] = {}
    for item in listed:
        text = rest.get(f"/taskmanagers/{quoted(item['id'])}/metrics").text
        parsed = families(text)
        assert samples(parsed["strom_taskmanager_Status_NumberOfSlots"])[0].value == 2
        assert samples(parsed["strom_taskmanager_Status_Process_Memory_RSS"])[0].value > 0
        for sample in samples(
            parsed["strom_taskmanager_job_task_numRecordsIn"], job_id=jobs["running"]
        ):
            key = f"{sample.labels['task_name']}[{sample.labels['subtask_index']}]"
            records[key] = sample.value
        assert "strom_taskmanager_job_task_buffers_inPoolUsage" in parsed
        own_port = rest.get(f"/taskmanagers/{quoted(item['id'])}").json["metricsPort"]
        with urllib.request.urlopen(f"http://127.0.0.1:{own_port}/metrics", timeout=5) as answer:
            assert answer.headers["Content-Type"].startswith("text/plain")
            own = families(answer.read().decode())
        assert samples(own["strom_taskmanager_Status_NumberOfSlots"])[0].value == 2
    assert set(records) == {"Ticker[0]", "Tag[0]", "Tag[1]", "Slow Sink[0]", "Slow Sink[1]"}


def test_taskmanager_log_and_stdout(rest, jobs):
    wait_for_state(rest, jobs["running"], "RUNNING")
    listed = rest.get("/taskmanagers").json["taskmanagers"]
    for item in listed:
        base = f"/taskmanagers/{quoted(item['id'])}"
        log_text = rest.get(f"{base}/logs").text
        assert f"TaskManager {item['id']} started" in log_text
        assert rest.get(f"{base}/log").headers["X-Strom-Log-Available"] == "true"
        tail = rest.get(f"{base}/logs?bytes=120").text
        assert 0 < len(tail.encode()) <= 120 and log_text.endswith(tail)
        assert "bytes" in rest.get(f"{base}/logs?bytes=lots", expect=400).error

    def markers() -> bool:
        outs = [rest.get(f"/taskmanagers/{quoted(i['id'])}/stdout").text for i in listed]
        return any(STDOUT_MARKER in out for out in outs)

    poll_for(markers, timeout=20, what="the sink's prints in a TaskManager's stdout")


def test_jobmanager_config_and_logs(rest, cluster):
    entries = rest.get("/jobmanager/config").json
    config = {entry["key"]: entry["value"] for entry in entries}
    assert config["rest.port"] == str(cluster.rest_port)
    assert config["jobmanager.rpc.port"] == str(cluster.rpc_port)
    assert config["taskmanager.numberOfTaskSlots"] == "2"
    log_text = rest.get("/jobmanager/logs").text
    assert "JobManager" in log_text and "started" in log_text
    assert rest.get("/jobmanager/log?bytes=64").headers["X-Strom-Log-Available"] == "true"
    rest.get("/jobmanager/stdout")
    assert "bytes" in rest.get("/jobmanager/logs?bytes=0", expect=400).error


def test_jobmanager_prometheus_metrics(rest, jobs):
    wait_for_state(rest, jobs["running"], "RUNNING")
    answer = rest.get("/metrics")
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    parsed = families(answer.text)
    assert samples(parsed["strom_jobmanager_numRegisteredTaskManagers"])[0].value == 2
    assert samples(parsed["strom_jobmanager_taskSlotsTotal"])[0].value == 4
    assert samples(parsed["strom_jobmanager_jobs"], state="FINISHED")[0].value >= 1
    assert samples(parsed["strom_jobmanager_jobs"], state="FAILED")[0].value >= 1
    assert samples(parsed["strom_jobmanager_jobs"], state="RUNNING")[0].value >= 1
    restarts = samples(parsed["strom_jobmanager_job_numRestarts"], job_id=jobs["finished"])
    assert restarts[0].value == 0 and restarts[0].labels["job_name"] == "rest finished job"
    read = samples(
        parsed["strom_jobmanager_job_task_numRecordsIn"],
        job_id=jobs["finished"],
        task_name="Add One",
    )
    assert read[0].value == 200
    uptime = samples(parsed["strom_jobmanager_job_uptime"], job_id=jobs["running"])
    assert uptime[0].value > 0


# ---------------------------------------------------------------- jobs


def test_jobs_overview_lists_every_job(rest, jobs):
    listed = {job["jid"]: job for job in rest.get("/jobs/overview").json["jobs"]}
    assert listed[jobs["finished"]]["state"] == "FINISHED"
    assert listed[jobs["failed"]]["state"] == "FAILED"
    assert listed[jobs["running"]]["state"] in ("CREATED", "RUNNING")
    assert listed[jobs["finished"]]["name"] == "rest finished job"
    ids = {job["id"]: job["status"] for job in rest.get("/jobs").json["jobs"]}
    assert ids[jobs["finished"]] == "FINISHED"


def test_running_job_shows_vertices_records_and_back_pressure(rest, jobs):
    job_id = jobs["running"]
    wait_for_state(rest, job_id, "RUNNING")

    def held_back() -> dict | None:
        job = rest.get(f"/jobs/{job_id}").json
        by_name = {v["name"]: v for v in job["vertices"]}
        ticker, sink = by_name["Ticker"], by_name["Slow Sink"]
        busy = ticker["metrics"]["backpressure-level"] != "ok"
        return job if busy and sink["metrics"]["read-records"] > 0 else None

    # Back pressure is sampled over a window once asked for; a loaded machine takes longer.
    job = poll_for(held_back, timeout=60, what="the slow sink to hold the ticker back")
    by_name = {v["name"]: v for v in job["vertices"]}
    assert by_name["Ticker"]["parallelism"] == 1 and by_name["Tag"]["parallelism"] == 2
    assert by_name["Ticker"]["metrics"]["write-records"] > 0
    assert by_name["Tag"]["metrics"]["read-records"] > 0
    assert by_name["Slow Sink"]["metrics"]["busy-ratio"] > 0
    assert all(v["status"] == "RUNNING" for v in job["vertices"])
    assert job["isStoppable"] is True and job["end-time"] == -1

    plan = rest.get(f"/jobs/{job_id}/plan").json["plan"]
    nodes = {node["description"]: node for node in plan["nodes"]}
    assert nodes["Tag"]["inputs"][0]["ship_strategy"] == "REBALANCE"
    assert nodes["Slow Sink"]["inputs"][0]["ship_strategy"] == "HASH"
    assert nodes["Ticker"]["inputs"] == []

    tag = by_name["Tag"]["id"]
    vertex = rest.get(f"/jobs/{job_id}/vertices/{tag}").json
    assert [s["subtask"] for s in vertex["subtasks"]] == [0, 1]
    assert all(s["host"] == "127.0.0.1" and s["status"] == "RUNNING" for s in vertex["subtasks"])
    assert len({s["taskmanager-id"] for s in vertex["subtasks"]}) == 2, "spread over both TMs"
    assert sum(s["metrics"]["read-records"] for s in vertex["subtasks"]) > 0
    pressure = rest.get(f"/jobs/{job_id}/vertices/{by_name['Ticker']['id']}/backpressure").json
    assert pressure["status"] == "ok" and len(pressure["subtasks"]) == 1
    assert isinstance(rest.get(f"/jobs/{job_id}/vertices/{tag}/watermarks").json, list)
    assert "nope" in rest.get(f"/jobs/{job_id}/vertices/nope", expect=404).error

    config = rest.get(f"/jobs/{job_id}/config").json
    assert config["name"] == "rest running job"
    assert config["execution-config"]["job-parallelism"] == 2


def test_finished_job_details(rest, jobs):
    job = rest.get(f"/jobs/{jobs['finished']}").json
    assert job["state"] == "FINISHED" and job["end-time"] >= job["start-time"] > 0
    assert job["isStoppable"] is False
    by_name = {v["name"]: v for v in job["vertices"]}
    assert by_name["Add One"]["metrics"]["read-records"] == 200
    assert by_name["Add One"]["metrics"]["write-records"] == 200
    assert sum(v["metrics"]["read-records"] for v in job["vertices"]) == 400  # map + sink
    assert all(v["status"] == "FINISHED" for v in job["vertices"])
    # Each subtask's times, as Flink shows them: within the job's, and its duration between;
    # a vertex's from its first start to its last end.
    # The job's times and its subtasks' come from one clock (the events' times): the job starts
    # when its subtasks are deployed and ends with its last subtask, to the millisecond.
    every = []
    for vertex in job["vertices"]:
        subtasks = rest.get(f"/jobs/{jobs['finished']}/vertices/{vertex['id']}").json["subtasks"]
        for s in subtasks:
            assert job["start-time"] <= s["start-time"] <= s["end-time"] <= job["end-time"]
            assert s["duration"] == s["end-time"] - s["start-time"]
        assert vertex["start-time"] == min(s["start-time"] for s in subtasks)
        assert vertex["end-time"] == max(s["end-time"] for s in subtasks)
        assert vertex["duration"] == vertex["end-time"] - vertex["start-time"]
        every += subtasks
    assert job["start-time"] == min(s["start-time"] for s in every)
    assert job["end-time"] == max(s["end-time"] for s in every)
    exceptions = rest.get(f"/jobs/{jobs['finished']}/exceptions").json
    assert exceptions["root-exception"] is None and exceptions["exceptionHistory"]["entries"] == []


def test_a_finished_sources_records_out_counts_each_record_once(rest, jobs):
    job = rest.get(f"/jobs/{jobs['finished']}").json
    by_name = {v["name"]: v for v in job["vertices"]}
    assert by_name["Numbers"]["metrics"]["write-records"] == 200


def test_failed_job_exceptions_carry_the_users_traceback(rest, jobs):
    job_id = jobs["failed"]
    job = rest.get(f"/jobs/{job_id}").json
    assert job["state"] == "FAILED" and "boom at record" in job["failure"]
    answer = rest.get(f"/jobs/{job_id}/exceptions").json
    assert "boom at record" in answer["root-exception"]
    assert "explode" in answer["root-exception"], "the traceback names the user's function"
    entry = answer["exceptionHistory"]["entries"][0]
    assert entry["exceptionName"] == "ValueError" and entry["timestamp"] > 0
    assert answer["all-exceptions"][0]["exception"] == entry["stacktrace"]
    assert rest.get(f"/jobs/{job_id}/exceptions?maxExceptions=1").json["truncated"] is False
    assert "maxExceptions" in rest.get(f"/jobs/{job_id}/exceptions?maxExceptions=0", 400).error
    rest.get(f"/jobs/{job_id}/exceptions?maxExceptions=many", expect=400)


def test_checkpoint_endpoints(rest, jobs):
    for job_id in jobs.values():
        stats = rest.get(f"/jobs/{job_id}/checkpoints").json
        counts = stats["counts"]
        assert counts["completed"] + counts["failed"] + counts["in_progress"] <= counts["total"]
        config = rest.get(f"/jobs/{job_id}/checkpoints/config").json
        assert config["mode"] in ("exactly_once", "at_least_once", "disabled")
        for entry in stats["history"][:2]:
            details = rest.get(f"/jobs/{job_id}/checkpoints/details/{entry['id']}").json
            assert details["id"] == entry["id"]
    missing = rest.get(f"/jobs/{jobs['finished']}/checkpoints/details/987654", expect=404)
    assert "987654" in missing.error
    rest.get(f"/jobs/{jobs['finished']}/checkpoints/details/latest-ish", expect=400)


def test_savepoint_and_stop_requests(rest, jobs, cluster):
    job_id = jobs["running"]
    wait_for_state(rest, job_id, "RUNNING")
    base = f"/jobs/{job_id}"
    assert "JSON" in rest.call("POST", f"{base}/savepoints", raw=b"{nope", expect=400).error
    assert "object" in rest.call("POST", f"{base}/savepoints", body=[1], expect=400).error
    bad = rest.call("POST", f"{base}/savepoints", body={"cancel-job": "yes"}, expect=400)
    assert "cancel-job" in bad.error
    rest.call("POST", f"{base}/stop", body={"drain": "no"}, expect=400)
    rest.call("POST", f"/jobs/{'0' * 32}/savepoints", body={}, expect=404)

    target = str(cluster.conf_dir.parent / "savepoints-rest")
    answer = rest.call(
        "POST", f"{base}/savepoints", body={"target-directory": target}, expect=(202, 503)
    )
    if answer.status == 503:
        assert answer.error == "savepoints are not available yet"
        rest.get(f"{base}/savepoints/some-trigger", expect=503)
        rest.call("POST", f"{base}/stop", body={}, expect=503)
        return
    trigger = answer.json["request-id"]
    assert trigger
    status = rest.get(f"{base}/savepoints/{trigger}").json
    assert status["status"]["id"] in ("IN_PROGRESS", "COMPLETED")
    rest.get(f"{base}/savepoints/no-such-trigger", expect=404)
    # A finished job cannot stop with a savepoint any more.
    rest.call("POST", f"/jobs/{jobs['finished']}/stop", body={}, expect=400)


def test_errors_name_what_is_wrong(rest, jobs):
    unknown = "0123456789abcdef0123456789abcdef"
    answer = rest.get(f"/jobs/{unknown}", expect=404)
    assert answer.error == f"Job {unknown} not found"
    assert "32 lowercase hexadecimal" in rest.get("/jobs/not-a-job-id", expect=404).error
    for suffix in ("/plan", "/exceptions", "/checkpoints", "/checkpoints/config", "/config"):
        assert unknown in rest.get(f"/jobs/{unknown}{suffix}", expect=404).error
    rest.call("PATCH", f"/jobs/{unknown}?mode=cancel", expect=404)
    assert "Not found" in rest.get("/no/such/path", expect=404).error

    wrong = rest.call("POST", "/overview", body={}, expect=405)
    assert wrong.headers["Allow"] == "GET" and "POST" in wrong.error
    wrong = rest.call("DELETE", f"/jobs/{jobs['finished']}", expect=405)
    assert wrong.headers["Allow"] == "GET, PATCH"
    rest.call("PUT", "/taskmanagers", body={}, expect=405)

    bad_mode = rest.call("PATCH", f"/jobs/{jobs['running']}?mode=stop", expect=400)
    assert "mode" in bad_mode.error
    malformed = rest.call("PATCH", f"/jobs/{jobs['running']}", raw=b"[1, 2", expect=400)
    assert malformed.error.startswith("Bad request")
    assert rest.get(f"/jobs/{jobs['running']}").json["state"] == "RUNNING"


def test_dashboard_files_are_served(rest, openapi):
    page = rest.get("/").text
    assert "web/app.js" in page and "web/style.css" in page
    assert "function drawGraph" in rest.get("/web/app.js").text
    assert "#job-graph" in rest.get("/web/style.css").text
    assert yaml.safe_load(rest.get("/web/openapi.yaml").text) == openapi.spec
    rest.get("/web/nothing-here.js", expect=404)
    rest.get("/web/..%2Fservice.py", expect=404)
    rest.get("/web/.hidden", expect=404)


def test_cancel_running_job(rest, jobs):
    job_id = jobs["running"]
    wait_for_state(rest, job_id, "RUNNING")
    assert rest.call("PATCH", f"/jobs/{job_id}?mode=cancel", expect=202).json == {}
    job = wait_for_state(rest, job_id, "CANCELED")
    # Every vertex has ended (a subtask that lost its peer first may say FAILED).
    ended = {v["name"]: v["status"] for v in job["vertices"]}
    assert set(ended.values()) <= {"CANCELED", "FAILED", "FINISHED"}, ended
    rest.call("PATCH", f"/jobs/{job_id}", expect=202)  # again: nothing left to do
    assert rest.get("/overview").json["jobs-cancelled"] == 1


def test_prometheus_text_escapes_label_values_and_help():
    from jobmanager import metrics as jm_metrics
    from taskmanager import observability

    name = 'a "quoted" name\\ with\na newline'
    for render, family_type in (
        (jm_metrics.render, jm_metrics.MetricFamily),
        (observability.render_prometheus, observability.MetricFamily),
    ):
        family = family_type("strom_test_value", "help with \\ and\nnewline")
        family.add(1.5, job_name=name)
        family.add(float("nan"), job_name="nan")
        family.add(7, job_name="int")
        parsed = families(render([family]))["strom_test_value"]
        by_name = {s.labels["job_name"]: s.value for s in parsed.samples}
        assert by_name[name] == 1.5 and by_name["int"] == 7
        assert by_name["nan"] != by_name["nan"]  # NaN
        assert parsed.documentation == "help with \\ and\nnewline"


def test_prometheus_port_setting_names_what_is_allowed():
    from strom.errors import ConfigurationError
    from taskmanager.observability import parse_port_range

    assert parse_port_range(None) is None
    assert parse_port_range("0") == range(0, 1)
    assert parse_port_range("9249-9251") == range(9249, 9252)
    for bad in ("9260-9249", "70000", "port", "1-2-3"):
        with pytest.raises(ConfigurationError, match="metrics.reporter.prom.port"):
            parse_port_range(bad)


def test_every_operation_in_openapi_was_exercised(openapi, request):
    module = request.node.module
    selected = {item.name for item in request.session.items if item.module is module}
    defined = {name for name in dir(module) if name.startswith("test_")}
    if selected != defined:
        pytest.skip("only meaningful when the whole module runs")
    missing = sorted(openapi.operations() - openapi.covered)
    assert not missing, f"operations in openapi.yaml no test exercised: {missing}"
