"""Connectors without a cluster: every subtask's share of a source, exact resume from a
position, and the file sink's two-phase commit."""

from __future__ import annotations

import bz2
import datetime
import gzip
import os
import pickle
import random
import re
from collections import Counter

import cloudpickle
import pytest
from harness import poll_for

from strom.common import Duration, Encoder
from strom.datastream.connectors import DeliveryGuarantee, Sink, Source, file_system
from strom.datastream.connectors.collection import CollectionSource
from strom.datastream.connectors.file_system import (
    BucketAssigner,
    FileSink,
    FileSource,
    OutputFileConfig,
    RollingPolicy,
    StreamFormat,
    compute_splits,
    enumerate_files,
)
from strom.datastream.connectors.number_seq import NumberSequenceSource

PARALLELISMS = [1, 2, 3, 4]


def read_subtask(source: Source, subtask: int, parallelism: int, batch: int = 7) -> list:
    reader = source.create_reader(subtask, parallelism)
    out: list = []
    try:
        while True:
            values = reader.read_batch(batch)
            if values is None:
                return out
            assert values, "a bounded reader returns values or None, never []"
            assert len(values) <= batch
            out.extend(values)
    finally:
        reader.close()


def read_all(source: Source, parallelism: int, batch: int = 7) -> list[list]:
    return [read_subtask(source, i, parallelism, batch) for i in range(parallelism)]


def union(parts: list[list]) -> Counter:
    return Counter(v for part in parts for v in part)


def assert_resumes_exactly(source: Source, subtask: int, parallelism: int, batch: int = 3):
    """Snapshot after every batch; a fresh reader restored there reads exactly the rest."""
    expected = read_subtask(source, subtask, parallelism, batch)
    reader = source.create_reader(subtask, parallelism)
    done: list = []
    cut_points = 0
    while True:
        position = pickle.loads(pickle.dumps(reader.snapshot_position()))
        resumed = source.create_reader(subtask, parallelism)
        resumed.restore_position(position)
        rest: list = []
        while (values := resumed.read_batch(batch)) is not None:
            rest.extend(values)
        resumed.close()
        assert done + rest == expected, f"resumed wrongly from {position!r}"
        cut_points += 1
        values = reader.read_batch(batch)
        if values is None:
            break
        done.extend(values)
    reader.close()
    assert done == expected
    return cut_points


# ---------------------------------------------------------------------- base


def test_delivery_guarantee_and_bases():
    assert {g.name for g in DeliveryGuarantee} == {"AT_LEAST_ONCE", "EXACTLY_ONCE", "NONE"}
    with pytest.raises(TypeError):
        Source()
    with pytest.raises(TypeError):
        Sink()


# ---------------------------------------------------------------------- number sequence


@pytest.mark.parametrize("parallelism", PARALLELISMS)
@pytest.mark.parametrize("start,end", [(1, 100), (0, 0), (-5, 5), (10, 12)])
def test_number_sequence_splits_exactly(start, end, parallelism):
    source = NumberSequenceSource(start, end)
    assert source.is_bounded()
    parts = read_all(source, parallelism)
    assert union(parts) == Counter(range(start, end + 1))
    for part in parts:  # contiguous ranges, in order
        assert part == list(range(part[0], part[0] + len(part))) if part else True
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_number_sequence_large_batches_are_ranges():
    reader = NumberSequenceSource(0, 9_999).create_reader(0, 1)
    assert reader.read_batch(10_000) == list(range(10_000))
    assert reader.read_batch(10) is None


@pytest.mark.parametrize("parallelism", [1, 3])
def test_number_sequence_resumes(parallelism):
    source = NumberSequenceSource(1, 50)
    for subtask in range(parallelism):
        assert assert_resumes_exactly(source, subtask, parallelism) > 3


def test_number_sequence_rejects_bad_ranges():
    with pytest.raises(ValueError):
        NumberSequenceSource(5, 1)
    with pytest.raises(ValueError):
        NumberSequenceSource(1, 5).create_reader(2, 2)
    reader = NumberSequenceSource(1, 5).create_reader(0, 1)
    with pytest.raises(ValueError):
        reader.restore_position(99)


# ---------------------------------------------------------------------- collection


@pytest.mark.parametrize("parallelism", PARALLELISMS)
def test_collection_source_splits_exactly(parallelism):
    values = [f"v{i}" for i in range(23)] + ["dup", "dup", None]
    source = CollectionSource(values)
    parts = read_all(source, parallelism, batch=4)
    assert union(parts) == Counter(values)
    assert parts[0][:2] == [values[0], values[parallelism]]


def test_collection_source_keeps_order_and_resumes():
    values = list(range(20))
    assert read_all(CollectionSource(values), 1) == [values]
    assert assert_resumes_exactly(CollectionSource(values), 0, 1) > 5
    assert assert_resumes_exactly(CollectionSource(values), 1, 3) > 2
    assert read_all(CollectionSource([]), 2) == [[], []]


def test_sources_travel_with_cloudpickle():
    source = pickle.loads(cloudpickle.dumps(CollectionSource([Ellipsis, 1])))
    assert read_all(source, 1) == [[Ellipsis, 1]]


_LOADS: list = []


def _load_counted() -> str:
    _LOADS.append(1)
    return "loaded"


class _CountsItsLoads:
    def __reduce__(self):
        return (_load_counted, ())


def test_collection_values_are_unpickled_only_by_the_subtask_that_reads_them():
    # A TaskManager loads a job graph once per subtask; only the source's reader needs them.
    copies = [pickle.loads(cloudpickle.dumps(CollectionSource([_CountsItsLoads()]))) for _ in "abc"]
    assert _LOADS == []
    assert read_all(copies[0], 1) == [["loaded"]]
    assert len(_LOADS) == 1


# ---------------------------------------------------------------------- file source


def write(path, text: str | bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = text.encode() if isinstance(text, str) else text
    with open(path, "wb") as handle:
        handle.write(data)
    return str(path)


def text_source(*paths, min_split_size: int | None = None, charset: str = "UTF-8"):
    builder = FileSource.for_record_stream_format(StreamFormat.text_line_format(charset), *paths)
    source = builder.build()
    source.min_split_size = min_split_size
    return source


def varied_lines(count: int, seed: int = 1) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        length = rng.choice([0, 1, 5, 30, 90, 250])
        lines.append(f"{i}:" + "".join(rng.choice("abcdé€ xyz") for _ in range(length)))
    return lines


@pytest.mark.parametrize("parallelism", PARALLELISMS)
def test_file_lines_straddling_split_boundaries(tmp_path, parallelism):
    lines = varied_lines(400)
    path = write(tmp_path / "data.txt", "\n".join(lines) + "\n")
    source = text_source(path, min_split_size=97)
    splits = compute_splits(enumerate_files([path]), parallelism, 97)
    assert len(splits) >= 4 * parallelism
    data = open(path, "rb").read()
    assert any(data[s.start - 1 : s.start] != b"\n" for s in splits[1:]), "no line straddles"
    parts = read_all(source, parallelism, batch=13)
    assert union(parts) == Counter(lines)
    if parallelism == 1:
        assert parts[0] == lines  # one reader reads its splits in file order


def test_module_split_size_parameter(tmp_path, monkeypatch):
    lines = varied_lines(200, seed=2)
    path = write(tmp_path / "data.txt", "\n".join(lines) + "\n")
    monkeypatch.setattr(file_system, "MIN_SPLIT_SIZE", 128)
    assert len(compute_splits(enumerate_files([path]), 2)) == 8
    assert union(read_all(text_source(path), 2)) == Counter(lines)


def test_split_size_formula(tmp_path):
    files = [("a", 10 * 2**20), ("b", 2**19), ("c.gz", 5 * 2**20)]
    splits = compute_splits(files, 2)
    # total splittable bytes 10.5 MiB over 2*4 -> splits of ceil(10.5 MiB / 8) bytes.
    size = -(-(10 * 2**20 + 2**19) // 8)
    assert [s.end - s.start for s in splits if s.path == "a"][0] == size
    assert [s for s in splits if s.path == "b"] == [file_system.FileSplit("b", 0, 2**19, False)]
    assert [s.compressed for s in splits if s.path == "c.gz"] == [True]
    assert compute_splits([("a", 100)], 4) == [file_system.FileSplit("a", 0, 100, False)]


def test_every_line_belongs_to_the_split_where_it_starts(tmp_path):
    lines = ["", "a", "bb", "", "ccc€", "dddd\r", "e" * 17, "", "ü"]
    data = "\n".join(lines).encode()  # no trailing newline
    path = write(tmp_path / "f.txt", data)
    starts = [0] + [i + 1 for i, byte in enumerate(data) if byte == ord("\n")]
    for size in range(1, len(data) + 2):
        got: list = []
        for start in range(0, len(data), size):
            split = file_system.FileSplit(path, start, min(start + size, len(data)), False)
            reader = file_system._LineRange(split, "utf-8")
            mine: list = []
            while (values := reader.read_lines(2)) is not None:
                mine.extend(values)
            reader.close()
            owned = [s for s in starts if start <= s < start + size]
            assert len(mine) == len(owned), (size, start)
            got.extend(mine)
        assert got == [line.rstrip("\r") for line in lines], size


@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_small_read_chunks_and_long_lines(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(file_system, "READ_CHUNK_BYTES", chunk)
    lines = ["x" * 300, "", "short", "ü" * 40, "end"]
    path = write(tmp_path / "long.txt", "\n".join(lines) + "\n")
    for parallelism in (1, 3):
        parts = read_all(text_source(path, min_split_size=16), parallelism)
        assert union(parts) == Counter(lines)


@pytest.mark.parametrize("parallelism", PARALLELISMS)
def test_directory_recursive_skips_hidden(tmp_path, parallelism):
    expected = []
    for name in ["b.txt", "a.txt", "sub/c.txt", "sub/deeper/d.log"]:
        lines = [f"{name}-{i}" for i in range(30)]
        expected += lines
        write(tmp_path / "in" / name, "\n".join(lines) + "\n")
    write(tmp_path / "in" / ".hidden.txt", "hidden\n")
    write(tmp_path / "in" / "_SUCCESS", "marker\n")
    write(tmp_path / "in" / ".git" / "x.txt", "in a hidden dir\n")
    write(tmp_path / "in" / "_tmp" / "y.txt", "in an underscore dir\n")
    write(tmp_path / "in" / "empty.txt", "")
    source = text_source(str(tmp_path / "in"), min_split_size=50)
    assert union(read_all(source, parallelism)) == Counter(expected)
    names = [os.path.relpath(p, tmp_path / "in") for p, _ in enumerate_files([tmp_path / "in"])]
    assert names == sorted(names)
    assert ".hidden.txt" not in names and "_SUCCESS" not in names


def test_line_endings_empty_lines_and_no_trailing_newline(tmp_path):
    crlf = write(tmp_path / "crlf.txt", "one\r\ntwo\r\n\r\nthree\r\n")
    bare = write(tmp_path / "bare.txt", "alpha\n\nbeta")
    empty = write(tmp_path / "empty.txt", "")
    only_newline = write(tmp_path / "nl.txt", "\n")
    for parallelism in PARALLELISMS:
        assert union(read_all(text_source(crlf, min_split_size=3), parallelism)) == Counter(
            ["one", "two", "", "three"]
        )
        assert union(read_all(text_source(bare, min_split_size=2), parallelism)) == Counter(
            ["alpha", "", "beta"]
        )
        assert read_all(text_source(empty), parallelism) == [[]] * parallelism
        assert union(read_all(text_source(only_newline), parallelism)) == Counter([""])
    assert read_all(text_source(bare), 1) == [["alpha", "", "beta"]]


def test_crlf_straddling_a_split_boundary(tmp_path):
    lines = [f"line {i}" for i in range(100)]
    path = write(tmp_path / "crlf.txt", "\r\n".join(lines) + "\r\n")
    for size in (7, 8, 9, 10, 11):
        for parallelism in (1, 2, 3):
            assert union(read_all(text_source(path, min_split_size=size), parallelism)) == Counter(
                lines
            ), (size, parallelism)


@pytest.mark.parametrize("parallelism", PARALLELISMS)
def test_compressed_files_are_read_whole_once(tmp_path, parallelism):
    lines = varied_lines(300, seed=3)
    data = ("\n".join(lines) + "\n").encode()
    os.makedirs(tmp_path / "in")
    with gzip.open(tmp_path / "in" / "a.txt.gz", "wb") as f:
        f.write(data)
    with bz2.open(tmp_path / "in" / "b.bz2", "wb") as f:
        f.write(b"bz one\nbz two")
    write(tmp_path / "in" / "c.txt", "plain\n")
    source = text_source(str(tmp_path / "in"), min_split_size=64)
    splits = compute_splits(enumerate_files([str(tmp_path / "in")]), parallelism, 64)
    assert [s.compressed for s in splits] == [True, True, False]
    assert union(read_all(source, parallelism)) == Counter(lines + ["bz one", "bz two", "plain"])


@pytest.mark.parametrize("parallelism", [1, 2, 3])
def test_file_source_resumes_exactly(tmp_path, parallelism, monkeypatch):
    monkeypatch.setattr(file_system, "READ_CHUNK_BYTES", 200)
    lines = varied_lines(120, seed=4)
    write(tmp_path / "in" / "a.txt", "\n".join(lines[:60]) + "\n")
    write(tmp_path / "in" / "b.txt", "\r\n".join(lines[60:100]))
    with gzip.open(tmp_path / "in" / "c.gz", "wb") as f:
        f.write(("\n".join(lines[100:]) + "\n").encode())
    source = text_source(str(tmp_path / "in"), min_split_size=300)
    for subtask in range(parallelism):
        assert assert_resumes_exactly(source, subtask, parallelism, batch=4) > 3
    assert union(read_all(source, parallelism)) == Counter(lines)


def test_file_source_position_shape(tmp_path):
    path = write(tmp_path / "a.txt", "a\nbb\nccc\n")
    reader = text_source(path).create_reader(0, 1)
    assert reader.snapshot_position() == (0, None)
    assert reader.read_batch(2) == ["a", "bb"]
    assert reader.snapshot_position() == (0, 5)
    assert reader.read_batch(2) == ["ccc"]
    assert reader.read_batch(2) is None
    assert reader.snapshot_position() == (None, None)
    done = text_source(path).create_reader(0, 1)
    done.restore_position((None, None))
    assert done.read_batch(5) is None
    with pytest.raises(ValueError):
        done.restore_position((7, 0))


def test_file_source_paths_and_errors(tmp_path):
    path = write(tmp_path / "a.txt", "x\ny\n")
    assert read_all(text_source("file://" + path), 1) == [["x", "y"]]
    with pytest.raises(FileNotFoundError, match="missing"):
        read_all(text_source(str(tmp_path / "missing")), 1)
    with pytest.raises(ValueError, match="only local paths"):
        text_source("s3://bucket/key")
    with pytest.raises(ValueError):
        StreamFormat.text_line_format("utf-16")
    with pytest.raises(ValueError):
        StreamFormat.text_line_format("no-such-charset")
    bad = write(tmp_path / "bad.txt", b"ok\n\xff\xfe\n")
    with pytest.raises(ValueError, match="bad.txt"):
        read_all(text_source(bad), 1)
    latin = write(tmp_path / "latin.txt", "café\n".encode("latin-1"))
    assert read_all(text_source(latin, charset="latin-1"), 1) == [["café"]]


def test_file_source_travels_with_cloudpickle(tmp_path):
    path = write(tmp_path / "a.txt", "x\ny\n")
    source = pickle.loads(cloudpickle.dumps(text_source(path)))
    assert source.is_bounded()
    assert read_all(source, 2) == [["x", "y"], []]


def test_continuous_file_source(tmp_path):
    folder = tmp_path / "watch"
    write(folder / "first.txt", "1\n2\n")
    source = (
        FileSource.for_record_stream_format(StreamFormat.text_line_format(), str(folder))
        .monitor_continuously(Duration.of_millis(1))
        .build()
    )
    assert not source.is_bounded()
    readers = [source.create_reader(i, 2) for i in range(2)]

    def drain(expected: int, wait: float = 2.0) -> list:
        """Poll every reader until ``expected`` values arrived, then read once more."""
        out: list = []

        def read_all() -> bool:
            for reader in readers:
                values = reader.read_batch(100)
                assert values is not None, "an unbounded reader never ends"
                out.extend(values)
            return len(out) >= expected

        if expected:
            poll_for(read_all, timeout=wait, interval=0.002, what=f"{expected} values")
        read_all()
        return out

    assert sorted(drain(2)) == ["1", "2"]
    assert drain(0, wait=0.05) == []
    write(folder / ".second.txt.tmp", "3\n4\n5\n")
    os.rename(folder / ".second.txt.tmp", folder / "second.txt")
    write(folder / "third.txt", "6\n")
    assert sorted(drain(4)) == ["3", "4", "5", "6"]
    # Resume: take a position half-way through a new file; nothing is read twice or lost.
    write(folder / "fourth.txt", "7\n8\n9\n")
    owner = next(r for r in readers if r._is_mine(str(folder / "fourth.txt")))
    first: list = poll_for(lambda: owner.read_batch(1), timeout=2, interval=0.002)
    position = pickle.loads(pickle.dumps(owner.snapshot_position()))
    restored = source.create_reader(readers.index(owner), 2)
    restored.restore_position(position)
    rest: list = []
    poll_for(
        lambda: rest.extend(restored.read_batch(100)) or len(rest) >= 2, timeout=2, interval=0.002
    )
    rest.extend(restored.read_batch(100))
    assert first + rest == ["7", "8", "9"]
    for reader in readers + [restored]:
        reader.close()


# ---------------------------------------------------------------------- file sink


def listing(root) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, n), root) for d, _, names in os.walk(root) for n in names
    )


def part_number(name: str) -> int:
    return int(re.search(r"-(\d+)(?:\.[a-z]+)?$", name).group(1))


def base_sink(path, **kwargs) -> FileSink:
    builder = FileSink.for_row_format(str(path), Encoder.simple_string_encoder())
    builder.with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
    if "policy" in kwargs:
        builder.with_rolling_policy(kwargs["policy"])
    if "config" in kwargs:
        builder.with_output_file_config(kwargs["config"])
    return builder.build()


def test_in_progress_files_are_hidden_until_commit(tmp_path):
    config = OutputFileConfig.builder().with_part_prefix("pre").with_part_suffix(".txt").build()
    writer = base_sink(tmp_path, config=config).create_writer(1, 2)
    writer.write_batch(["a", "b"])
    writer.write_batch([3])
    names = listing(tmp_path)
    assert len(names) == 1 and names[0].startswith(".pre-")
    assert re.fullmatch(r"\.pre-[0-9a-f-]{36}-1-0\.txt\.inprogress\.[0-9a-f-]{36}", names[0])
    committables = writer.prepare_commit(1)
    assert committables == [
        (str(tmp_path / names[0]), str(tmp_path / names[0][1:].split(".inprogress")[0]))
    ]
    assert all(n.startswith(".") for n in listing(tmp_path))
    pickle.loads(pickle.dumps(committables))
    writer.commit(committables)
    final = listing(tmp_path)
    assert len(final) == 1 and re.fullmatch(r"pre-[0-9a-f-]{36}-1-0\.txt", final[0])
    assert (tmp_path / final[0]).read_bytes() == b"a\nb\n3\n"
    writer.commit(committables)  # idempotent
    assert listing(tmp_path) == final
    writer.close()


def test_rolling_by_size_gives_several_parts(tmp_path):
    lines = [f"record-{i:04d}" for i in range(500)]  # 12 bytes each
    writer = base_sink(tmp_path, policy=RollingPolicy.default_rolling_policy(part_size=1000))
    writer = writer.create_writer(0, 1)
    for start in range(0, len(lines), 37):
        writer.write_batch(lines[start : start + 37])
    writer.finish()
    writer.close()
    names = listing(tmp_path)
    assert len(names) >= 5
    assert not any(n.startswith(".") for n in names)
    names.sort(key=part_number)
    assert [part_number(n) for n in names] == list(range(len(names)))
    data = b"".join((tmp_path / n).read_bytes() for n in names)
    assert data.decode().splitlines() == lines
    sizes = [os.path.getsize(tmp_path / n) for n in names]
    assert all(size <= 1000 + 13 for size in sizes)


def test_checkpoints_roll_parts_and_commit_only_what_was_prepared(tmp_path):
    writer = base_sink(tmp_path).create_writer(0, 1)
    writer.write_batch(["one"])
    first = writer.prepare_commit(1)
    writer.write_batch(["two"])
    second = writer.prepare_commit(2)
    assert len(second) == 2 and first[0] in second  # not yet committed: handed out again
    writer.commit(first)
    visible = [n for n in listing(tmp_path) if not n.startswith(".")]
    assert [(tmp_path / n).read_text() for n in visible] == ["one\n"]
    assert writer.prepare_commit(3) == [second[1]]
    writer.commit(second)
    assert sorted((tmp_path / n).read_text() for n in listing(tmp_path)) == ["one\n", "two\n"]


def test_abort_removes_in_progress_but_keeps_prepared(tmp_path):
    writer = base_sink(tmp_path, policy=RollingPolicy.default_rolling_policy(part_size=4))
    writer = writer.create_writer(0, 1)
    writer.write_batch(["kept"])
    prepared = writer.prepare_commit(1)
    writer.write_batch(["lost-1", "lost-2", "lost-3"])  # rolls: several in-progress files
    assert len(listing(tmp_path)) == 4
    writer.abort()
    writer.close()
    assert listing(tmp_path) == [os.path.basename(prepared[0][0])]
    writer.commit(prepared)  # a completed checkpoint can still commit its part
    assert [(tmp_path / n).read_text() for n in listing(tmp_path)] == ["kept\n"]


def test_time_based_rolling(tmp_path, monkeypatch):
    clock = [1_000_000]
    monkeypatch.setattr(file_system, "_now_ms", lambda: clock[0])
    policy = RollingPolicy.default_rolling_policy(rollover_interval=100, inactivity_interval=50)
    writer = base_sink(tmp_path, policy=policy).create_writer(0, 1)
    writer.write_batch(["a"])
    clock[0] += 40
    writer.write_batch(["b"])  # same part: neither old nor inactive
    clock[0] += 40
    writer.write_batch(["c"])  # same part
    clock[0] += 30
    writer.write_batch(["d"])  # part is 110 ms old: rolls
    clock[0] += 60
    writer.write_batch(["e"])  # 60 ms without writes: rolls
    writer.finish()
    contents = [(tmp_path / n).read_text() for n in sorted(listing(tmp_path), key=part_number)]
    assert contents == ["a\nb\nc\n", "d\n", "e\n"]


def test_on_checkpoint_rolling_policy_never_rolls_on_size(tmp_path):
    writer = base_sink(tmp_path, policy=RollingPolicy.on_checkpoint_rolling_policy())
    writer = writer.create_writer(0, 1)
    for i in range(100):
        writer.write_batch([f"{i}" * 50])
    writer.finish()
    assert len(listing(tmp_path)) == 1


def test_default_buckets_are_date_time_hours(tmp_path):
    sink = FileSink.for_row_format(str(tmp_path), Encoder.simple_string_encoder()).build()
    before = datetime.datetime.now().strftime("%Y-%m-%d--%H")
    writer = sink.create_writer(0, 1)
    writer.write_batch(["x"])
    writer.finish()
    after = datetime.datetime.now().strftime("%Y-%m-%d--%H")
    (name,) = listing(tmp_path)
    bucket, file_name = os.path.split(name)
    assert bucket in (before, after)
    assert re.fullmatch(r"part-[0-9a-f-]{36}-0-0", file_name)


def test_date_time_bucket_formats_and_zones(tmp_path, monkeypatch):
    instant = int(datetime.datetime(2024, 3, 5, 7, 30, tzinfo=datetime.UTC).timestamp() * 1000)
    monkeypatch.setattr(file_system, "_now_ms", lambda: instant)
    java = BucketAssigner.date_time_bucket_assigner("yyyy-MM-dd--HH", "UTC")
    daily = BucketAssigner.date_time_bucket_assigner("%Y/%m/%d", "UTC")
    tokyo = BucketAssigner.date_time_bucket_assigner("yyyyMMddHHmm", "Asia/Tokyo")
    for assigner, bucket in [
        (java, "2024-03-05--07"),
        (daily, "2024/03/05"),
        (tokyo, "202403051630"),
    ]:
        root = tmp_path / bucket.replace("/", "_")
        builder = FileSink.for_row_format(str(root), Encoder.simple_string_encoder())
        sink = pickle.loads(cloudpickle.dumps(builder.with_bucket_assigner(assigner).build()))
        writer = sink.create_writer(0, 1)
        writer.write_batch(["x"])
        writer.finish()
        assert os.path.dirname(listing(root)[0]) == bucket
    with pytest.raises(ValueError):
        BucketAssigner.date_time_bucket_assigner(timezone_id="Nowhere/Atlantis")


def test_custom_bucket_assigner_and_encoder(tmp_path):
    class ByParity(BucketAssigner):
        def get_bucket_id(self, element, context):
            assert context.current_processing_time() > 0
            return "even" if element % 2 == 0 else "odd"

    sink = (
        FileSink.for_row_format(str(tmp_path), Encoder(lambda v: f"<{v}>".encode()))
        .with_bucket_assigner(ByParity())
        .build()
    )
    writer = sink.create_writer(0, 1)
    writer.write_batch([1, 2, 3, 4])
    writer.finish()
    files = {os.path.dirname(n): (tmp_path / n).read_text() for n in listing(tmp_path)}
    assert files == {"odd": "<1><3>", "even": "<2><4>"}


def test_parallel_writers_never_collide(tmp_path):
    sink = base_sink(tmp_path, policy=RollingPolicy.default_rolling_policy(part_size=10))
    writers = [sink.create_writer(i, 3) for i in range(3)]
    for i, writer in enumerate(writers):
        writer.write_batch([f"w{i}-{j}" for j in range(20)])
    for writer in writers:
        writer.finish()
    lines = [line for n in listing(tmp_path) for line in (tmp_path / n).read_text().splitlines()]
    assert Counter(lines) == Counter(f"w{i}-{j}" for i in range(3) for j in range(20))


def test_commit_of_a_vanished_part_is_an_error(tmp_path):
    writer = base_sink(tmp_path).create_writer(0, 1)
    writer.write_batch(["x"])
    committables = writer.prepare_commit(1)
    os.remove(committables[0][0])
    with pytest.raises(FileNotFoundError):
        writer.commit(committables)


def test_file_sink_rejects_bad_arguments(tmp_path):
    with pytest.raises(TypeError):
        FileSink.for_row_format(str(tmp_path), "not an encoder").build()
    with pytest.raises(ValueError):
        RollingPolicy.default_rolling_policy(part_size=0)
    with pytest.raises(ValueError):
        OutputFileConfig.builder().with_part_prefix("a/b").build()
    with pytest.raises(TypeError):
        FileSink.for_row_format(str(tmp_path), Encoder.simple_string_encoder()).with_rolling_policy(
            5
        )


def test_number_sequence_restore_keeps_each_subtask_on_its_own_range_when_one_finished():
    # Subtask 0 had finished, subtask 1 had numbers left: at the same parallelism subtask 1
    # must read them (dealing the remaining ranges round-robin gave them to subtask 0, which
    # stays finished, and they were lost).
    from strom.datastream.connectors.base import FINISHED_POSITION

    source = NumberSequenceSource(0, 99)
    positions = {0: FINISHED_POSITION, 1: 80}
    first = source.restore_reader(positions, 2, 0, 2)
    second = source.restore_reader(positions, 2, 1, 2)
    assert first.read_batch(100) is None
    assert second.read_batch(100) == list(range(80, 100))


def test_a_bounded_file_reader_tells_the_share_of_its_input_read(tmp_path):
    """The progress the attached client shows: bytes of the reader's splits handed on, of
    all of them; a compressed file counts by its size on disk."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("".join(f"{i:07d}\n" for i in range(20_000)))
    with gzip.open(tmp_path / "in" / "b.txt.gz", "wb") as f:
        f.write(os.urandom(50_000).hex().encode() + b"\n" + b"tail\n")
    source = FileSource.for_record_stream_format(
        StreamFormat.text_line_format(), str(tmp_path / "in")
    ).build()
    total = 20_000 * 8 + os.path.getsize(tmp_path / "in" / "b.txt.gz")
    reader = source.create_reader(0, 1)
    assert reader.input_progress() == (0, total)
    seen = []
    while reader.read_batch(1000) is not None:
        seen.append(reader.input_progress())
    assert [read for read, _ in seen] == sorted(read for read, _ in seen)
    assert 0 < seen[0][0] < total and seen[-1] == (total, total)
    assert all(t == total for _, t in seen)
