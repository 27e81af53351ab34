"""Two inputs: ``connect`` with Co-functions and broadcast state, embedded and on the
2-TaskManager cluster, checked against plain Python."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
from test_checkpointing import checkpointed_env, completed_checkpoints

from strom.common import Types, WatermarkStrategy
from strom.datastream import (
    BroadcastProcessFunction,
    CoFlatMapFunction,
    CoMapFunction,
    CoProcessFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    ListStateDescriptor,
    MapFunction,
    MapStateDescriptor,
    OutputTag,
    StreamExecutionEnvironment,
    ValueStateDescriptor,
)

ORDERS = [(f"o{i}", f"c{i % 7}", i * 10) for i in range(200)]  # (order, customer, amount)
CUSTOMERS = [(f"c{i}", f"name-{i}") for i in range(7)]


def env_with(parallelism: int) -> StreamExecutionEnvironment:
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(parallelism)
    return env


def stamped(env, data, at):
    """``data`` with event timestamps from ``at(record)``."""
    strategy = WatermarkStrategy.for_monotonous_timestamps().with_timestamp_assigner(
        lambda record, _: at(record)
    )
    return env.from_collection(data).assign_timestamps_and_watermarks(strategy)


class Label(CoMapFunction):
    def map1(self, value):
        return "order", value[0]

    def map2(self, value):
        return "customer", value[0]


class Explode(CoFlatMapFunction):
    def flat_map1(self, value):
        yield from value[0]  # a generator

    def flat_map2(self, value):
        return [value[1], value[1]]  # a list


def test_co_map_and_co_flat_map(mode):
    env = env_with(2)
    orders = env.from_collection(ORDERS)
    customers = env.from_collection(CUSTOMERS)
    labelled = orders.connect(customers).map(Label())
    exploded = orders.connect(customers.rebalance()).flat_map(Explode())
    results = mode.collect(labelled.map(lambda v: ("map", v)).union(exploded))
    expected = [("map", ("order", o[0])) for o in ORDERS]
    expected += [("map", ("customer", c[0])) for c in CUSTOMERS]
    expected += [ch for o in ORDERS for ch in o[0]] + [c[1] for c in CUSTOMERS for _ in (1, 2)]
    assert Counter(results) == Counter(expected)


class Enrich(KeyedCoProcessFunction):
    """Joins orders with their customer's name: whichever comes first waits in keyed state,
    and an event-time timer at the end reports the total per customer."""

    def open(self, runtime_context):
        self.name = runtime_context.get_state(ValueStateDescriptor("name", Types.STRING()))
        self.waiting = runtime_context.get_list_state(
            ListStateDescriptor("waiting", Types.PICKLED_BYTE_ARRAY())
        )
        self.total = runtime_context.get_state(ValueStateDescriptor("total", Types.LONG()))

    def process_element1(self, order, ctx):
        assert ctx.get_current_key() == order[1]
        self.total.update((self.total.value() or 0) + order[2])
        ctx.timer_service().register_event_time_timer(10**6)
        name = self.name.value()
        if name is None:
            self.waiting.add(order)
        else:
            yield order[0], name

    def process_element2(self, customer, ctx):
        assert ctx.get_current_key() == customer[0]
        self.name.update(customer[1])
        for order in self.waiting.get():
            yield order[0], customer[1]
        self.waiting.clear()

    def on_timer(self, timestamp, ctx):
        yield "total", ctx.get_current_key(), self.total.value()


@pytest.mark.parametrize("how", ["connect-then-key_by", "connect-keyed-streams"])
def test_keyed_co_process_joins_both_inputs_by_key(mode, how):
    env = env_with(2)
    orders = stamped(env, ORDERS, lambda o: o[2])
    customers = stamped(env, CUSTOMERS, lambda c: 0)
    if how == "connect-then-key_by":
        connected = orders.connect(customers).key_by(lambda o: o[1], lambda c: c[0])
    else:
        connected = orders.key_by(lambda o: o[1]).connect(customers.key_by(lambda c: c[0]))
    results = mode.collect(connected.process(Enrich()))
    names = dict(CUSTOMERS)
    totals = Counter()
    for _, customer, amount in ORDERS:
        totals[customer] += amount
    expected = [(o[0], names[o[1]]) for o in ORDERS]
    expected += [("total", c, t) for c, t in totals.items()]
    assert Counter(results) == Counter(expected)


class Tagged(CoProcessFunction):
    def process_element1(self, value, ctx):
        yield "first", value, ctx.timestamp()

    def process_element2(self, value, ctx):
        ctx.output(OutputTag("second"), (value, ctx.timestamp()))


def test_co_process_function_with_timestamps_and_a_side_output(mode):
    env = env_with(2)
    first = stamped(env, list(range(50)), lambda v: v * 2)
    second = env.from_collection(list(range(10)))  # no timestamps
    result = first.connect(second).process(Tagged())
    side = result.get_side_output(OutputTag("second"))
    results = mode.collect(result.union(side.map(lambda v: ("second", v))))
    no_timestamp = -(2**63)  # Long.MIN_VALUE, as PyFlink's ctx.timestamp() gives
    expected = [("first", v, v * 2) for v in range(50)]
    expected += [("second", (v, no_timestamp)) for v in range(10)]
    assert Counter(results) == Counter(expected)


def test_keyed_co_process_function_needs_keyed_inputs():
    env = env_with(1)
    with pytest.raises(TypeError, match="both inputs keyed"):
        env.from_collection([1]).connect(env.from_collection([2])).process(Enrich())
    with pytest.raises(TypeError, match="CoMapFunction"):
        env.from_collection([1]).connect(env.from_collection([2])).map(lambda v: v)


# ------------------------------------------------------------------ broadcast state

RATES = MapStateDescriptor("rates", Types.STRING(), Types.DOUBLE())
LIMITS = MapStateDescriptor("limits", Types.STRING(), Types.LONG())
RATE_UPDATES = [("c0", 1.5), ("c3", 2.0), ("c5", 0.5)]


class Convert(KeyedBroadcastProcessFunction):
    """Orders wait in keyed state until the end of input (an event-time timer), then are
    converted with the broadcast rate of their customer: the result does not depend on
    whether rates or orders arrive first."""

    def open(self, runtime_context):
        self.orders = runtime_context.get_list_state(
            ListStateDescriptor("orders", Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, order, ctx):
        assert ctx.get_current_key() == order[1]
        self.orders.add(order)
        ctx.timer_service().register_event_time_timer(10**6)
        return []

    def process_broadcast_element(self, update, ctx):
        ctx.get_broadcast_state(RATES).put(update[0], update[1])
        ctx.get_broadcast_state(LIMITS).put(
            "updates", (ctx.get_broadcast_state(LIMITS).get("updates") or 0) + 1
        )

        def count_waiting(key, state):
            seen.append((key, len(list(state.get()))))

        seen: list = []
        ctx.apply_to_keyed_state(
            ListStateDescriptor("orders", Types.PICKLED_BYTE_ARRAY()), count_waiting
        )
        assert all(n > 0 for _, n in seen)

    def on_timer(self, timestamp, ctx):
        rates = ctx.get_broadcast_state(RATES)
        assert ctx.get_broadcast_state(LIMITS).get("updates") == len(RATE_UPDATES)
        for order in self.orders.get():
            yield order[0], order[2] * (rates.get(order[1]) or 1.0)


def test_keyed_broadcast_process_function_sees_every_broadcast_record(mode):
    env = env_with(2)
    orders = stamped(env, ORDERS, lambda o: o[2]).key_by(lambda o: o[1])
    rates = stamped(env, RATE_UPDATES, lambda r: 0).broadcast(RATES, LIMITS)
    results = mode.collect(orders.connect(rates).process(Convert()))
    final = dict(RATE_UPDATES)
    assert Counter(results) == Counter((o[0], o[2] * final.get(o[1], 1.0)) for o in ORDERS)


class Route(BroadcastProcessFunction):
    """A non-keyed stream reading broadcast state; writing it there is refused."""

    def process_element(self, value, ctx):
        state = ctx.get_broadcast_state(RATES)
        yield value, ctx.get_broadcast_state(RATES).get("c0") is not None or state.is_empty()

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(RATES).put(value[0], value[1])


class WritesWhereItMustNot(Route):
    def process_element(self, value, ctx):
        ctx.get_broadcast_state(RATES).put("c0", 0.0)


def test_broadcast_process_function(mode):
    env = env_with(2)
    results = mode.collect(
        env.from_collection(list(range(20)))
        .rebalance()
        .connect(env.from_collection(RATE_UPDATES).broadcast(RATES))
        .process(Route())
    )
    assert sorted(v for v, _ in results) == list(range(20))
    assert all(flag for _, flag in results)  # c0 is there as soon as anything is


def test_broadcast_state_is_read_only_for_the_regular_input(mode):
    env = env_with(1)
    stream = (
        env.from_collection([1])
        .connect(env.from_collection(RATE_UPDATES).broadcast(RATES))
        .process(WritesWhereItMustNot())
    )
    with pytest.raises(Exception, match="read-only"):
        mode.collect(stream)


def test_broadcast_needs_map_state_descriptors():
    env = env_with(1)
    with pytest.raises(TypeError, match="MapStateDescriptor"):
        env.from_collection([1]).broadcast(ValueStateDescriptor("x", Types.INT()))


# ------------------------------------------------------------------ through a failure

FACTORS = MapStateDescriptor("factors", Types.STRING(), Types.INT())


class FailAfterCheckpoint(MapFunction):
    """Passes records on, slowly enough for checkpoints to complete meanwhile; in the first
    attempt it fails at the first record after a checkpoint holds the state of the job, so the
    restart must restore it."""

    def __init__(self, checkpoints: str) -> None:
        self.checkpoints = checkpoints

    def open(self, runtime_context):
        self.attempt = runtime_context.get_attempt_number()

    def map(self, value):
        if self.attempt == 0 and value % 50 == 0:
            time.sleep(0.01)  # a throttle, not a wait: checkpoints come every 250 ms
            if completed_checkpoints(Path(self.checkpoints)) >= 1:
                raise RuntimeError("injected failure")
        return value


class PassOn(CoMapFunction):
    def map1(self, value):
        return value

    def map2(self, value):
        return value


class CountWithFactors(KeyedBroadcastProcessFunction):
    def open(self, runtime_context):
        self.attempt = runtime_context.get_attempt_number()
        self.count = runtime_context.get_state(ValueStateDescriptor("count", Types.LONG()))

    def process_element(self, value, ctx):
        self.count.update((self.count.value() or 0) + 1)
        ctx.timer_service().register_event_time_timer(2**62)
        return []

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(FACTORS).put(f"f{value}", value)

    def on_timer(self, timestamp, ctx):
        factors = sorted(ctx.get_broadcast_state(FACTORS).values())
        yield ctx.get_current_key(), self.count.value(), tuple(factors), self.attempt


def test_two_input_state_survives_a_restart_from_a_checkpoint(mode, tmp_path):
    from strom.datastream.connectors.number_seq import NumberSequenceSource

    count = 20_000
    checkpoints = tmp_path / "checkpoints"
    env = checkpointed_env(checkpoints)
    numbers = env.from_source(NumberSequenceSource(1, count), None, "numbers")
    few = env.from_source(NumberSequenceSource(1, 3), None, "factors")
    # The slow source keeps running; the other one ends early, and after the restart only
    # the checkpoint has what it sent.
    slow = numbers.map(FailAfterCheckpoint(str(checkpoints)))
    passed = slow.connect(few).map(PassOn())
    keyed = passed.key_by(lambda v: v % 5)
    factors = few.map(lambda v: v).broadcast(FACTORS)
    results = mode.collect(keyed.connect(factors).process(CountWithFactors()))
    numbers_and_few = list(range(1, count + 1)) + [1, 2, 3]
    expected = Counter(v % 5 for v in numbers_and_few)
    assert sorted(r[:3] for r in results) == sorted((k, n, (1, 2, 3)) for k, n in expected.items())
    assert all(r[3] >= 1 for r in results), "the job was not restarted"
