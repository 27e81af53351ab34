"""What exchanging records by key costs on this machine, without Strom's runtime: the least a
runtime that exchanges in Python pays, and so a ceiling for its speed-up.

    python bench/exchange_ceiling.py [--job wordcount|keyed] [--processes 2] [--rounds 7]

``ceiling.py`` splits a job's work over P processes with no exchange at all: each keys and
counts its own share. A keyed job cannot do that: every record goes to the process that owns
its key. Here the job's user functions run in P processes that do exchange, with nothing of
Strom but its partitioner (``KeyGroupPartitioner``: the compiled loop where it is built) and its
record-batch codec (``elements.encode``/``decode``), over a socket pair between each two
processes, on one thread per process: it reads 1,024 lines at a time, splits them (the user's
function), keys and partitions the records, counts its own share at once and sends the others'
share in batches of up to 1,024 records, then counts what has arrived. No thread hand-off, no
flow control, no checkpoints: what is left is the exchange's own per-record work.

It runs in one process (the partitioner has one channel: no exchange) and in P, and every
round also runs ``ceiling.py``'s plain loop, so the speed-ups come from the same minutes. The
CPU seconds of the P processes against the one's are what the exchange costs. Interpreter
start-up and reading the input are not timed.
"""

from __future__ import annotations

import argparse
import functools
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import ceiling  # noqa: E402
import keyed_cpu  # noqa: E402
import wordcount  # noqa: E402
from handoff import keyed_step  # noqa: E402

from strom.graph.partitioning import DEFAULT_MAX_PARALLELISM, KeyGroupPartitioner  # noqa: E402
from taskmanager.network.elements import decode, encode, records  # noqa: E402

LINES_PER_READ = 1024  # what Strom's file source reads at a time
BATCH = 1024  # records per batch, as Strom's record writer sends them
_FRAME = struct.Struct("<I")


def _keyed_lines(line: str) -> list:
    return [keyed_cpu.work(line)]


#: per job: the user's function from a line to records, its key selector, its reduce, its sink
JOBS = {
    "wordcount": (wordcount.split, wordcount.word_of, wordcount.add, wordcount.Drop),
    "keyed": (_keyed_lines, keyed_cpu.key_of, keyed_cpu.add, keyed_cpu.Drop),
}


class _Counter:
    """The keyed step (``handoff.keyed_step``), counting the records it took."""

    def __init__(self, job: str) -> None:
        _, self.key_of, self.add, sink = JOBS[job]
        self.table: dict = {}
        self.sink = sink()
        self.records = 0

    def count(self, values: list, keys: list) -> None:
        self.records += len(values)
        keyed_step(values, keys, self.table, self.sink, self.add)

    def count_encoded(self, data: bytes) -> None:
        values = decode(data)[1]
        key_of = self.key_of
        self.count(values, [key_of(v) for v in values])


def _reads(job: str, lines: list[str]):
    """The records of each read of ``LINES_PER_READ`` lines."""
    to_records = JOBS[job][0]
    for start in range(0, len(lines), LINES_PER_READ):
        values: list = []
        extend = values.extend
        for line in lines[start : start + LINES_PER_READ]:
            extend(to_records(line))
        yield values


def _pieces(values: list, keys: list):
    for start in range(0, len(values), BATCH):
        yield values[start : start + BATCH], keys[start : start + BATCH]


def _frame(values: list) -> bytes:
    payload = encode(records(values))
    return _FRAME.pack(len(payload)) + payload


class _FrameReader:
    """Frames out of a byte stream; a frame of length 0 is the peer's end."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def frames(self, data: bytes):
        buffer = self.buffer
        buffer += data
        offset = 0
        while len(buffer) - offset >= 4:
            (size,) = _FRAME.unpack_from(buffer, offset)
            if len(buffer) - offset - 4 < size:
                break
            yield bytes(buffer[offset + 4 : offset + 4 + size])
            offset += 4 + size
        del buffer[:offset]


def exchange(job: str, lines: list[str], index: int, peers: dict[int, socket.socket]) -> int:
    """This process's share of the job, exchanging with ``peers``; the records it counted."""
    n = len(peers) + 1
    partitioner = KeyGroupPartitioner(JOBS[job][1], DEFAULT_MAX_PARALLELISM)
    partitioner.setup(index, n, n)
    counter = _Counter(job)
    outgoing = {peer: bytearray() for peer in peers}
    readers = {peer: _FrameReader() for peer in peers}
    open_peers = set(peers)
    for sock in peers.values():
        sock.setblocking(False)

    def pump(wait: bool) -> None:
        # Send what is buffered and count what has arrived; with ``wait`` (only at the end),
        # first block until a socket can move.
        if wait:
            select.select(
                [peers[peer] for peer in open_peers],
                [peers[peer] for peer, out in outgoing.items() if out],
                [],
            )
        for peer, out in outgoing.items():
            if out:
                try:
                    del out[: peers[peer].send(out)]
                except BlockingIOError:
                    pass
        for peer in list(open_peers):
            frames = readers[peer].frames
            while peer in open_peers:
                try:
                    data = peers[peer].recv(1 << 20)
                except BlockingIOError:
                    break
                if not data:
                    raise RuntimeError("a peer closed before its end frame")
                for frame in frames(data):
                    if not frame:
                        open_peers.discard(peer)
                        break
                    counter.count_encoded(frame)

    for values in _reads(job, lines):
        for channel, share, _, keys in partitioner.split_with_keys(values, None):
            if channel == index:
                for piece, piece_keys in _pieces(share, keys):
                    counter.count(piece, piece_keys)
            else:
                out = outgoing[channel]
                for piece, _ in _pieces(share, keys):
                    out += _frame(piece)
        if peers:
            pump(wait=False)
    for out in outgoing.values():
        out += _FRAME.pack(0)
    while open_peers or any(outgoing.values()):
        pump(wait=True)
    return counter.records


def _worker(job: str, path: Path, index: int, processes: int, fds: str) -> None:
    lines = ceiling._share(path, index, processes)
    peers: dict[int, socket.socket] = {}
    for item in filter(None, fds.split(",")):
        peer, fd = item.split(":")
        peers[int(peer)] = socket.socket(fileno=int(fd))
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    started = time.process_time()
    counted = exchange(job, lines, index, peers)
    cpu = time.process_time() - started
    print("done", flush=True)
    print(counted, cpu, flush=True)  # after the timed part: what it counted, its CPU seconds


@functools.cache
def _records_in(job: str, path: Path) -> int:
    return sum(len(values) for values in _reads(job, ceiling._share(path, 0, 1)))


def wall(job: str, path: Path, processes: int) -> tuple[float, float]:
    """Seconds from the word go until the last of ``processes`` exchanging processes ended,
    and the CPU seconds they took."""
    pairs = [socket.socketpair() for _ in range(processes * (processes - 1) // 2)]
    ends: list[dict[int, int]] = [{} for _ in range(processes)]  # per process: peer -> fd
    pair = iter(pairs)
    for a in range(processes):
        for b in range(a + 1, processes):
            left, right = next(pair)
            ends[a][b], ends[b][a] = left.fileno(), right.fileno()
    workers = []
    try:
        for index, mine in enumerate(ends):
            fds = ",".join(f"{peer}:{fd}" for peer, fd in mine.items())
            argv = [sys.executable, __file__, "--worker", job, str(path), str(index)]
            workers.append(
                subprocess.Popen(
                    argv + [str(processes), fds],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    pass_fds=tuple(mine.values()),
                )
            )
        for left, right in pairs:
            left.close()
            right.close()
        elapsed = ceiling.go(workers)
        counted, cpu = 0, 0.0
        for worker in workers:
            records_, seconds = worker.stdout.readline().split()
            counted += int(records_)
            cpu += float(seconds)
        expected = _records_in(job, path)
        if counted != expected:
            raise RuntimeError(f"{processes} processes counted {counted} of {expected} records")
        return elapsed, cpu
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        job, path, index, processes, fds = sys.argv[2:7]
        _worker(job, Path(path), int(index), int(processes), fds)
        return
    parser = argparse.ArgumentParser(description="A keyed job's exchange without Strom's runtime")
    parser.add_argument("--job", choices=sorted(JOBS), default="wordcount")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    p = args.processes
    plain: dict[int, list[float]] = {1: [], p: []}
    exchanging: dict[int, list[float]] = {1: [], p: []}
    cpus: dict[int, list[float]] = {1: [], p: []}
    with tempfile.TemporaryDirectory(prefix="strom-exchange-") as tmp:
        path = Path(tmp) / "input.txt"
        ceiling.make_input(args.job, path)
        for _ in range(args.rounds):
            for processes in (1, p):
                plain[processes].append(ceiling.wall(args.job, path, processes))
                seconds, cpu = wall(args.job, path, processes)
                exchanging[processes].append(seconds)
                cpus[processes].append(cpu)
    print(f"{args.job}, {args.rounds} rounds; wall seconds, median (least); speed-up of medians")
    for name, walls in (("plain loop, no exchange", plain), ("exchanging", exchanging)):
        one, many = statistics.median(walls[1]), statistics.median(walls[p])
        ratios = " ".join(f"{a / b:.2f}" for a, b in zip(walls[1], walls[p], strict=True))
        print(
            f"  {name:<24} 1: {one:.3f} ({min(walls[1]):.3f})  {p}: {many:.3f} "
            f"({min(walls[p]):.3f})  speed-up {one / many:.2f}; by round {ratios}"
        )
    one_cpu, many_cpu = statistics.median(cpus[1]), statistics.median(cpus[p])
    print(
        f"  {'':<24} CPU seconds 1: {one_cpu:.3f}  {p}: {many_cpu:.3f} "
        f"({many_cpu / one_cpu:.2f}x: the exchange's own cost)"
    )


if __name__ == "__main__":
    main()
