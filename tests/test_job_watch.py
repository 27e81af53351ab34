"""What the attached client says about its job, driven directly with JobDetails messages."""

from __future__ import annotations

import io
import json

from client.progress import JobWatch
from strom.rpc import cluster_pb2 as pb

PLAN = json.dumps(
    {
        "nodes": [
            {"id": "src", "pact": "Data Source", "parallelism": 1, "predecessors": []},
            {"id": "map", "pact": "Operator", "parallelism": 3, "predecessors": [{"id": "src"}]},
        ]
    }
).encode()


def details(state: str, message: str = "", restarts: int = 0, causes=(), read=0, written=0):
    return pb.JobDetails(
        summary=pb.JobSummary(job_id="j" * 32, state=state),
        status_message=message,
        restarts=restarts,
        plan=PLAN,
        exceptions=[pb.JobException(exception=c, location="map[0]") for c in causes],
        vertices=[
            pb.VertexDetails(id="src", parallelism=1, records_out=read),
            pb.VertexDetails(id="map", parallelism=3, records_in=written),
        ],
    )


def test_waiting_for_slots_is_said_once_per_change():
    out = io.StringIO()
    free = [1]
    watch = JobWatch("j" * 32, lambda: free[0], stream=out)
    waiting = details("CREATED", "waiting for 3 free slot(s); the cluster has 1 free of 1")
    watch.update(waiting)
    watch.update(waiting)
    free[0] = 2
    watch.update(waiting)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert "waiting for 3 slots, 1 available" in lines[0]
    assert "waiting for 3 slots, 2 available" in lines[1]


def test_each_restart_is_told_with_its_cause_even_when_polls_miss_one():
    out = io.StringIO()
    watch = JobWatch("j" * 32, lambda: 1, stream=out)
    watch.update(details("RESTARTING", causes=["Traceback\nValueError: one"]))
    watch.update(details("RUNNING", restarts=1, causes=["Traceback\nValueError: one"]))
    watch.update(details("RUNNING", restarts=3, causes=["x\nValueError: one"] * 3))
    lines = out.getvalue().splitlines()
    assert [line.split("(restart ")[1][0] for line in lines] == ["1", "2", "3"]
    assert all(line.endswith("ValueError: one") and "in map[0]" in line for line in lines)


def test_progress_plain_lines_every_interval_off_a_terminal():
    out = io.StringIO()
    now = [0.0]
    watch = JobWatch("j" * 32, lambda: 1, interval_s=10, stream=out, clock=lambda: now[0])
    for second in range(0, 31, 5):
        now[0] = second
        watch.update(details("RUNNING", read=second * 100, written=second * 50))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3  # at 10, 20 and 30 s
    assert lines[-1].endswith("running 0:30: records in 3000, records out 1500")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_one_line_redrawn_on_a_terminal():
    out = Terminal()
    watch = JobWatch("j" * 32, lambda: 1, stream=out)
    watch.update(details("RUNNING", read=5, written=1))
    watch.update(details("RUNNING", read=50_000, written=20_000))
    watch.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 1
    assert "records in 50.0k, records out 20.0k" in text


def test_progress_tells_the_share_of_input_file_sources_have_read():
    out = io.StringIO()
    now = [0.0]
    watch = JobWatch("j" * 32, lambda: 1, interval_s=1, stream=out, clock=lambda: now[0])
    for second, read in ((1, 0), (2, 430), (3, 1000)):
        now[0] = second
        update = details("RUNNING", read=second)
        update.vertices[0].input_bytes_read = read
        update.vertices[0].input_bytes_total = 1000
        watch.update(update)
    now[0] = 4
    watch.update(details("RUNNING", read=4))  # a source that knows no size: no share told
    lines = out.getvalue().splitlines()
    assert [line.rsplit(", ", 1)[-1] for line in lines[:3]] == [
        "reading input: 0 %",
        "reading input: 43 %",
        "reading input: 100 %",
    ]
    assert "reading input" not in lines[3]
