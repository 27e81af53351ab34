"""connect with Co-functions, a keyed join of two streams, and broadcast state."""

from pyflink.common import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.datastream.functions import (
    CoFlatMapFunction,
    CoMapFunction,
    KeyedBroadcastProcessFunction,
    KeyedCoProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, ValueStateDescriptor

RATES = MapStateDescriptor("rates", Types.STRING(), Types.DOUBLE())


class Label(CoMapFunction):
    def map1(self, value):
        return f"number {value}"

    def map2(self, value):
        return f"word {value}"


class Explode(CoFlatMapFunction):
    def flat_map1(self, value):
        yield from range(value)

    def flat_map2(self, value):
        yield from (len(value), -len(value))


class JoinOrders(KeyedCoProcessFunction):
    """Joins orders with their customer, whichever arrives first."""

    def open(self, runtime_context: RuntimeContext):
        self.customer = runtime_context.get_state(ValueStateDescriptor("customer", Types.STRING()))
        self.waiting = runtime_context.get_list_state(
            ListStateDescriptor("waiting", Types.TUPLE([Types.STRING(), Types.INT()]))
        )

    def process_element1(self, order, ctx):
        name = self.customer.value()
        if name is None:
            self.waiting.add((order[0], order[2]))
        else:
            yield name, order[0], order[2]

    def process_element2(self, customer, ctx):
        self.customer.update(customer[1])
        for order in self.waiting.get():
            yield customer[1], order[0], order[1]
        self.waiting.clear()


class Convert(KeyedBroadcastProcessFunction):
    """Prices in euro once every rate is known (timers fire after the rate stream ends)."""

    def open(self, runtime_context: RuntimeContext):
        self.prices = runtime_context.get_list_state(ListStateDescriptor("prices", Types.DOUBLE()))

    def process_element(self, value, ctx):
        self.prices.add(value[1])
        ctx.timer_service().register_event_time_timer(1)

    def process_broadcast_element(self, value, ctx):
        ctx.get_broadcast_state(RATES).put(value[0], value[1])

    def on_timer(self, timestamp, ctx):
        rate = ctx.get_broadcast_state(RATES).get(ctx.get_current_key())
        for price in self.prices.get():
            yield f"{ctx.get_current_key()} {price} -> {round(price * rate, 2)} EUR"


def main():
    env = StreamExecutionEnvironment.get_execution_environment()
    env.set_parallelism(1)
    numbers = env.from_collection([3, 1], type_info=Types.INT())
    words = env.from_collection(["hi", "there"], type_info=Types.STRING())
    numbers.connect(words).map(Label()).print("co-map")
    numbers.connect(words).flat_map(Explode(), output_type=Types.INT()).print("co-flat-map")

    orders = env.from_collection(
        [("o1", "c1", 10), ("o2", "c2", 20), ("o3", "c1", 30)],
        type_info=Types.TUPLE([Types.STRING(), Types.STRING(), Types.INT()]),
    )
    customers = env.from_collection(
        [("c1", "Alice"), ("c2", "Bob")], type_info=Types.TUPLE([Types.STRING(), Types.STRING()])
    )
    orders.key_by(lambda o: o[1]).connect(customers.key_by(lambda c: c[0])).process(
        JoinOrders()
    ).print("joined")

    prices = env.from_collection(
        [("USD", 10.0), ("GBP", 4.0), ("USD", 2.5)],
        type_info=Types.TUPLE([Types.STRING(), Types.DOUBLE()]),
    )
    rates = env.from_collection(
        [("USD", 0.9), ("GBP", 1.2)], type_info=Types.TUPLE([Types.STRING(), Types.DOUBLE()])
    )
    prices.key_by(lambda p: p[0]).connect(rates.broadcast(RATES)).process(
        Convert(), output_type=Types.STRING()
    ).print("converted")
    env.execute("connect and broadcast")


if __name__ == "__main__":
    main()
