"""Shared-memory rings, the local transport between processes of one host (shared_rings.py).

The ring itself between two real processes (every size of element, wrapping, chunks larger
than the ring, both sides sleeping and waking each other); what a consumer refuses to attach
(a peer's offer is never trusted); a channel whose ring is refused going over gRPC instead;
rings switched off; a producer blocked on a full ring woken by a cancel; and the files a killed
producer leaves behind. The channel behaviours every transport shares run over rings too, in
test_network.py's ``ring`` variant; jobs on a local cluster use rings between slot processes.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import pytest
import test_transport_scale as scale
from harness import poll_for
from test_network import start_data_server, stop_data_server

from taskmanager.network import (
    END_OF_PARTITION,
    RECORDS,
    ChannelError,
    ChannelKey,
    InputGate,
    RemoteOutputChannel,
    close_all_channels,
    data_tokens,
    decoded,
    shared_rings,
)
from taskmanager.network.elements import encode
from taskmanager.network.shared_rings import Ring, RingRefused

REPO = Path(__file__).resolve().parent.parent
EOP = (END_OF_PARTITION,)

pytestmark = pytest.mark.skipif(
    not shared_rings.available(), reason="no compiled fence or no /dev/shm: no rings here"
)


def element(index: int) -> bytes:
    """The ``index``-th test element: sizes from 0 to several times a small ring's capacity."""
    size = (index * 7919) % 40_000 if index % 50 else 100_000 + index
    return (b"%08d" % index * (size // 8 + 1))[:size]


CONSUMER = textwrap.dedent(
    """
    import hashlib, select, sys
    sys.path.insert(0, sys.argv[1])
    from taskmanager.network.shared_rings import Ring, drain
    ring = Ring.attach(sys.argv[2])
    poller = select.poll()
    poller.register(ring.wake_consumer, select.POLLIN)
    digest, count = hashlib.sha256(), 0
    while count < int(sys.argv[3]):
        data = ring.take()
        if data is None:
            ring.set_waiting(True)
            if not ring.has_data():
                poller.poll(10_000)
            ring.set_waiting(False)
            drain(ring.wake_consumer)
            continue
        digest.update(len(data).to_bytes(8, "little") + data)
        count += 1
    ring.release()
    print(count, digest.hexdigest())
    """
)


def test_a_ring_carries_every_size_of_element_to_another_process_in_order():
    import hashlib

    count = 400
    ring = Ring.create(capacity=16 * 1024)  # small: it wraps, fills and chunks all the time
    consumer = subprocess.Popen(
        [sys.executable, "-c", CONSUMER, str(REPO), ring.path, str(count)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        digest = hashlib.sha256()
        for index in range(count):
            data = element(index)
            digest.update(len(data).to_bytes(8, "little") + data)
            ring.write(data, lambda need: ring.wait_for_room(need, 1.0))
        out, _ = consumer.communicate(timeout=60)
    finally:
        if consumer.poll() is None:
            consumer.kill()
        ring.release()
    assert consumer.returncode == 0
    assert out.split() == [str(count), digest.hexdigest()]
    assert not os.path.exists(ring.path)  # the consumer removed the files it took


@pytest.fixture
def offer(tmp_path):
    """Makes files a peer might name as its ring; removes what the test left."""
    made: list[str] = []

    def make(kind: str) -> str:
        name = f"strom-ring-{os.getpid()}-{uuid.uuid4().hex}"
        path = os.path.join(shared_rings.DIRECTORY, name)
        if kind == "outside":  # a real ring's files, named by a detour out of the folder
            ring = Ring.create()
            made.extend(ring.path + suffix for suffix in ("", ".c", ".p"))
            head, tail = os.path.split(ring.path)
            return f"{head}/../{os.path.basename(head)}/{tail}"
        if kind == "bad name":
            path = os.path.join(shared_rings.DIRECTORY, f"strom-ring-{uuid.uuid4().hex}")
            Path(path).write_bytes(b"\0" * 8192)
        elif kind == "symlink":
            target = tmp_path / "secret"
            target.write_bytes(b"\0" * 70_000)
            os.symlink(target, path)
        elif kind == "not a ring":
            Path(path).write_bytes(b"\0" * 70_000)  # no magic
        elif kind == "too small":
            Path(path).write_bytes(b"\0" * 100)
        made.append(path)
        return path

    yield make
    for path in made:
        try:
            os.unlink(path)
        except OSError:
            pass


@pytest.mark.parametrize("kind", ["outside", "bad name", "symlink", "not a ring", "too small"])
def test_a_consumer_refuses_an_offer_that_is_not_a_ring_of_this_host(offer, kind, tmp_path):
    path = offer(kind)
    before = {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(RingRefused):
        Ring.attach(path)
    # Nothing it named was removed or changed.
    assert os.path.lexists(path)
    assert {p: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


# ---------------------------------------------------------------------- channels over rings


@pytest.fixture
def data_server():
    """A data endpoint in this process: a consumer on this host, so it may attach rings."""
    data_tokens.admit("peer", "ring-test-data-token")
    served = start_data_server(lookup_timeout=10.0)
    yield served
    stop_data_server(served)
    close_all_channels()


def open_gate() -> tuple[tuple, InputGate]:
    return (uuid.uuid4().hex, 0, "consumer", 0), InputGate(1, 8)


def drain_gate(gate: InputGate) -> list:
    got = []
    while True:
        item = gate.poll(10.0)
        assert item is not None, f"nothing came after {got!r}"
        got.append(decoded(item[1]))
        if got[-1] == EOP:
            return got


def test_a_channel_whose_ring_the_consumer_refuses_goes_over_grpc(data_server):
    key, gate = open_gate()
    channel = RemoteOutputChannel(data_server.address, ChannelKey(*key, 0), shared_memory=True)
    ring = channel._ring
    assert ring is not None and os.path.exists(ring.path)
    # Spoil the offer before the consumer is there to take it: it is no ring of ours now.
    shared_rings._U32.pack_into(ring._memory, shared_rings._MAGIC_AT, 0)
    sent = [(RECORDS, [index, "x" * index], None) for index in range(50)]
    worker = threading.Thread(target=lambda: [channel.send(e) for e in [*sent, EOP]])
    worker.start()
    data_server.registry.register(*key, gate)
    try:
        assert drain_gate(gate) == [*sent, EOP]
        worker.join(10)
        channel.close()
        assert not channel.through_ring
        assert not os.path.exists(ring.path)  # the producer removed the offer no one took
    finally:
        gate.close()
        data_server.registry.unregister(*key)


def test_a_channel_goes_through_its_ring_and_leaves_no_files(data_server):
    key, gate = open_gate()
    data_server.registry.register(*key, gate)
    channel = RemoteOutputChannel(data_server.address, ChannelKey(*key, 0), shared_memory=True)
    path = channel._ring.path
    big = (RECORDS, ["y" * 3_000_000], None)  # larger than the ring: goes in chunks
    sent = [(RECORDS, [1], None), big, EOP]
    worker = threading.Thread(target=lambda: [channel.send(item) for item in sent])
    worker.start()
    try:
        assert drain_gate(gate) == sent
        worker.join(10)
        channel.close()
        assert channel.through_ring
    finally:
        gate.close()
        data_server.registry.unregister(*key)
    assert not any(os.path.exists(path + suffix) for suffix in ("", ".c", ".p"))


def test_with_shared_memory_off_no_ring_is_offered(data_server):
    shared_rings.configure({"taskmanager.network.shared-memory": "false"})
    try:
        assert not shared_rings.available()
        key, gate = open_gate()
        data_server.registry.register(*key, gate)
        channel = RemoteOutputChannel(data_server.address, ChannelKey(*key, 0), shared_memory=True)
        assert channel._ring is None
        channel.send(EOP)
        assert drain_gate(gate) == [EOP]
        channel.close()
        assert not channel.through_ring
        gate.close()
    finally:
        shared_rings.configure({})
    assert shared_rings.available()


def test_a_producer_blocked_on_a_full_ring_wakes_when_its_channel_is_cancelled(data_server):
    key, gate = open_gate()
    data_server.registry.register(*key, gate)
    channel = RemoteOutputChannel(data_server.address, ChannelKey(*key, 0), shared_memory=True)
    outcome = {}

    def produce() -> None:
        try:
            while True:  # nobody takes anything: the ring fills
                channel.send((RECORDS, ["z" * 10_000], None))
        except ChannelError as error:
            outcome["error"] = error

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        poll_for(
            lambda: channel.through_ring and channel.backpressured and gate.backpressured(0),
            timeout=20,
            what="the producer to block on its ring",
        )
        channel.abandon()
        worker.join(10)
        assert not worker.is_alive(), "the blocked producer did not wake up"
        assert "cancelled" in str(outcome["error"])
    finally:
        channel.cancel()
        gate.close()
        data_server.registry.unregister(*key)


KILLED_PRODUCER = textwrap.dedent(
    """
    import signal, sys
    sys.path.insert(0, sys.argv[1])
    from taskmanager.network.shared_rings import Ring
    rings = [Ring.create() for _ in range(3)]
    print("ready", flush=True)
    signal.pause()  # until the test kills it
    """
)


def test_the_rings_of_a_killed_producer_are_removed():
    producer = subprocess.Popen(
        [sys.executable, "-c", KILLED_PRODUCER, str(REPO)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert producer.stdout.readline().strip() == "ready"
        prefix = f"strom-ring-{producer.pid}-"
        left = [n for n in os.listdir(shared_rings.DIRECTORY) if n.startswith(prefix)]
        assert len(left) == 9  # three rings, each a file and two FIFOs
        producer.send_signal(signal.SIGKILL)
        producer.wait(10)
        # What a TaskManager does when one of its slot processes ends (slots.py).
        assert shared_rings.remove_rings_of(producer.pid) == 9
        assert not [n for n in os.listdir(shared_rings.DIRECTORY) if n.startswith(prefix)]
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait()


def test_a_gate_waiting_on_its_pipes_wakes_for_a_local_producer_and_a_mailbox_post():
    # A gate with a ring waits on file descriptors: its local channels and mailbox must wake
    # it there as they wake a gate without rings.
    producer = Ring.create()
    gate = InputGate(2, 4)
    gate.attach_ring(0, Ring.attach(producer.path))
    try:
        waiting = threading.Event()

        def later() -> None:
            waiting.wait(5)
            poll_for(lambda: gate._waiting_consumers, timeout=5, what="the consumer to wait")
            gate.put(1, "local")
            poll_for(lambda: gate._waiting_consumers, timeout=5, what="the consumer to wait")
            gate.post(lambda: None)

        helper = threading.Thread(target=later, daemon=True)
        helper.start()
        waiting.set()
        assert gate.poll(10.0) == (1, "local")
        channel, action = gate.poll(10.0)
        assert channel == -1 and callable(action)
        helper.join(5)
        assert select.select([producer.wake_producer], [], [], 0)[0] == []
    finally:
        gate.close()
        producer.release()


def test_a_consumer_with_shared_memory_off_declines_the_ring(data_server):
    key, gate = open_gate()
    channel = RemoteOutputChannel(data_server.address, ChannelKey(*key, 0), shared_memory=True)
    assert channel._ring is not None  # offered while this process still took rings
    shared_rings.configure({"taskmanager.network.shared-memory": False})
    try:
        data_server.registry.register(*key, gate)  # the receiver looks at the offer now
        channel.send(EOP)
        assert drain_gate(gate) == [EOP]
        channel.close()
        assert not channel.through_ring
    finally:
        shared_rings.configure({})
        gate.close()
        data_server.registry.unregister(*key)


def test_a_gate_channel_takes_one_ring():
    first, second = Ring.create(), Ring.create()
    gate = InputGate(1, 4)
    try:
        gate.attach_ring(0, Ring.attach(first.path))
        taken = Ring.attach(second.path)
        with pytest.raises(RingRefused):
            gate.attach_ring(0, taken)
        taken.release()
    finally:
        gate.close()
        first.release()
        second.release()


def test_a_gate_serves_its_rings_and_its_other_channels_in_turn():
    producer = Ring.create()
    gate = InputGate(2, 8)
    gate.attach_ring(0, Ring.attach(producer.path))
    try:
        for index in range(6):
            producer.write(encode((RECORDS, [index], None)), None)
            gate.put(1, index)
        order = [gate.poll(0)[0] for _ in range(12)]
        assert order == [0, 1] * 6, order  # neither waits for the other to run dry
    finally:
        gate.close()
        producer.release()


@pytest.mark.parametrize("shared_memory", ["true", "false"])
def test_a_keyed_job_across_two_taskmanagers_with_rings_on_and_off(
    local_cluster, tmp_path, shared_memory
):
    # The key is one a user sets in strom-conf.yaml; either way the job's result is the same.
    cluster = local_cluster(slots=1, **{"taskmanager.network.shared-memory": shared_memory}).start(
        taskmanagers=2
    )
    before = set(dead_rings())
    results = scale.run_keyed_count(cluster.address, 2, tmp_path / "out")
    assert results == [(key, scale.RECORDS // scale.KEYS) for key in range(scale.KEYS)]
    # No ring outlives its processes (other tests' processes on this host may hold some).
    poll_for(
        lambda: not set(dead_rings()) - before,
        timeout=30,
        what="the rings of ended processes to go",
    )


def dead_rings() -> list[str]:
    """Ring files in /dev/shm whose producer process is gone."""
    import psutil

    names = [n for n in os.listdir(shared_rings.DIRECTORY) if n.startswith("strom-ring-")]
    return [n for n in names if not psutil.pid_exists(int(n.split("-")[2]))]
