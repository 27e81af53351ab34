"""The rest of the API surface, each item run embedded and on the 2-TaskManager cluster."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from strom.common import Encoder, Types
from strom.datastream import RuntimeExecutionMode, StreamExecutionEnvironment
from strom.datastream.connectors.file_system import (
    FileSink,
    FileSource,
    OutputFileConfig,
    RollingPolicy,
    StreamFormat,
)
from strom.datastream.connectors.number_seq import NumberSequenceSource


def env_with(parallelism: int = 1) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


def test_chaining_controls_shape_the_plan_and_keep_results(mode):
    env = env_with(2)
    numbers = env.from_source(NumberSequenceSource(1, 50), None, "numbers")
    a = numbers.map(lambda x: x + 1, output_type=Types.LONG()).name("plus one").uid("plus-one")
    b = a.map(lambda x: x * 2).start_new_chain().name("double")
    c = b.filter(lambda x: x % 3 != 0).disable_chaining().name("no threes")
    d = c.map(lambda x: x).slot_sharing_group("other").name("own group")
    plan = json.loads(env.get_execution_plan())
    contents = [node["contents"] for node in plan["nodes"]]
    assert contents[0] == "Source: numbers -> plus one"
    assert "double" in contents and "no threes" in contents and "own group" in contents
    groups = {node["contents"]: node["slot_sharing_group"] for node in plan["nodes"]}
    assert groups["own group"] == "other"
    uids = [op["uid"] for node in plan["nodes"] for op in node["operators"]]
    assert "plus-one" in uids
    results = mode.collect(d)
    assert sorted(results) == sorted(v for v in ((x + 1) * 2 for x in range(1, 51)) if v % 3)


def test_disable_operator_chaining_and_buffer_timeouts(mode):
    for timeout in (0, 5, -1):
        env = env_with(2)
        env.disable_operator_chaining()
        env.set_buffer_timeout(timeout)
        assert env.get_buffer_timeout() == timeout
        out = env.from_collection(list(range(100))).map(lambda x: x * 3).filter(lambda x: x % 2)
        plan = json.loads(env.get_execution_plan())
        assert len(plan["nodes"]) == 3  # nothing chained
        assert sorted(mode.collect(out)) == [x * 3 for x in range(100) if (x * 3) % 2]


def test_runtime_mode_batch_and_execute_async(mode):
    env = env_with(1)
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    env.from_collection([1, 2, 3]).map(lambda x: x).add_sink(lambda value: None)
    with mode.active():
        client = env.execute_async("async job")
        assert len(client.get_job_id()) == 32
        result = client.get_job_execution_result()
    assert result.get_job_id() == client.get_job_id()
    assert client.get_job_status() == "FINISHED"


def test_file_source_over_a_directory_split_across_subtasks_into_a_file_sink(mode, tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    words = []
    for index in range(4):
        lines = [f"f{index} line{n} common" for n in range(500)]
        words += [w for line in lines for w in line.split()]
        (folder / f"part{index}.txt").write_text("\n".join(lines) + "\n")
    (folder / ".hidden").write_text("never read\n")
    env = env_with(2)
    source = FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(folder))
    lines = env.from_source(source.build(), None, "files")
    counts = (
        lines.flat_map(lambda line: [(w, 1) for w in line.split()])
        .key_by(lambda p: p[0])
        .reduce(lambda a, b: (a[0], a[1] + b[1]))
        .filter(lambda p: p[0] == "common" or p[1] == 1)
        .map(lambda p: f"{p[0]},{p[1]}")
    )
    output = tmp_path / "output"
    sink = (
        FileSink.for_row_format(str(output), Encoder.simple_string_encoder())
        .with_output_file_config(
            OutputFileConfig.builder().with_part_prefix("counts").with_part_suffix(".csv").build()
        )
        .with_rolling_policy(RollingPolicy.default_rolling_policy(part_size=4096))
        .build()
    )
    counts.sink_to(sink)
    mode.execute(env, "files")
    parts = [p for p in output.rglob("*") if p.is_file()]
    assert parts and all(p.name.startswith("counts-") and p.suffix == ".csv" for p in parts)
    assert not [p for p in parts if p.name.startswith(".")]  # nothing left in progress
    assert len(parts) > 2  # rolled by size, from two subtasks
    finals: dict = {}
    for part in parts:
        for line in part.read_text().splitlines():
            word, count = line.rsplit(",", 1)
            finals[word] = max(finals.get(word, 0), int(count))
    expected = Counter(words)
    assert finals["common"] == expected["common"] == 2000
    assert {w for w in finals if w != "common"} == {w for w in expected if w != "common"}


def test_print_prefixes_subtask_numbers_when_parallel(mode, capfd):
    if mode.name != "embedded":
        pytest.skip("on a cluster print() writes to the TaskManagers' .out files (test_jobs)")
    env = env_with(2)
    env.from_collection(["a", "b", "c", "d"]).rebalance().print()
    env.execute("print parallel")
    lines = [line for line in capfd.readouterr().out.splitlines() if line]
    assert sorted(line[3:] for line in lines) == ["a", "b", "c", "d"]
    assert {line[:3] for line in lines} <= {"1> ", "2> "}
    env = env_with(1)
    env.from_collection(["x"]).print()
    env.execute("print single")
    assert capfd.readouterr().out.splitlines() == ["x"]


def test_mistakes_raise_at_the_call_site_with_a_hint():
    env = env_with(1)
    stream = env.from_collection([1, 2])
    with pytest.raises(TypeError, match="callable"):
        stream.map(42)
    with pytest.raises(TypeError, match="KeySelector"):
        stream.key_by("field")
    with pytest.raises(ValueError, match="non-parallel"):
        stream.set_parallelism(2)
    with pytest.raises(TypeError, match="partitions"):
        stream.key_by(lambda x: x).set_parallelism(2)
    with pytest.raises(TypeError, match="FileSink"):
        stream.sink_to(lambda x: x)
    with pytest.raises(ValueError, match="forward"):
        stream.map(lambda x: x).forward().map(lambda x: x).set_parallelism(3)
        env.get_execution_plan()
    empty = env_with(1)
    with pytest.raises(RuntimeError, match="no operators"):
        empty.execute()
