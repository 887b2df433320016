"""firstmotion.bus.MultiConsumer and the Consumer commit hooks, on a real Redis."""

from __future__ import annotations

import pytest
from test_bus import pick
from test_bus import to_polarity as polarity

from firstmotion.bus import Bus, Consumer, Delivery, MultiConsumer
from firstmotion.messages import Pick, Polarity


@pytest.fixture
def bus(redis_client, redis_url):
    b = Bus.from_url(redis_url, prefix="tm:")
    yield b
    b.close()


class StateConsumer(Consumer):
    """Writes a hash per entry in the commit transaction and records the commits."""

    def __init__(self, *args, log: list, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.log = log

    def commit_writes(self, pipe, batch, outputs) -> None:
        for d in batch:
            pipe.hset(self.bus.key(f"state:{self.stream}:{d.entry_id}"), mapping={"n": 1})

    def committed(self, batch, outputs) -> None:
        self.log.append((self.stream, len(batch), len(outputs)))


def test_multi_consumer_reads_both_streams_in_order_and_drains(bus):
    for i in range(6):
        bus.publish("picks", pick(i))
        bus.publish("polarities", polarity(pick(100 + i)))
    seen: list[str] = []
    commits: list = []

    def handle(batch: list[Delivery]):
        seen.extend(type(d.message).__name__ for d in batch)
        return [("out", polarity(d.message)) for d in batch if isinstance(d.message, Pick)]

    kw = dict(name="a", batch_size=64, block_ms=50, log=commits)
    picks = StateConsumer(bus, "picks", "g", handle, **kw)
    pols = StateConsumer(bus, "polarities", "g", handle, **kw)
    cycles = []
    loop = MultiConsumer((picks, pols), on_cycle=lambda: cycles.append(1), label="t")
    assert loop.run(drain=True, timeout_s=20) == 12
    # one read took both streams; the first consumer's entries were handled first
    assert seen == ["Pick"] * 6 + ["Polarity"] * 6
    assert commits == [("picks", 6, 6), ("polarities", 6, 0)]
    assert bus.length("out") == 6
    assert bus.pending_count("picks", "g") == 0 and bus.pending_count("polarities", "g") == 0
    # the extra writes went in with the commit
    assert len(list(bus.client.scan_iter(match="tm:state:*"))) == 12
    assert len(cycles) >= 1
    assert loop.loop_alive()[0]


def test_multi_consumer_failing_item_stays_pending_then_dead_letters(bus):
    bus.publish("picks", pick(1))
    bus.publish("polarities", polarity(pick(2)))

    def handle(batch: list[Delivery]):
        if any(isinstance(d.message, Polarity) for d in batch):
            raise RuntimeError("boom")
        return []

    kw = dict(name="a", block_ms=50, lease_ms=30, max_deliveries=2)
    loop = MultiConsumer(
        (bus.consumer("picks", "g", handle, **kw), bus.consumer("polarities", "g", handle, **kw))
    )
    loop.run(drain=True, timeout_s=20)
    assert loop.processed == 1
    letters = bus.dead_letters()
    assert len(letters) == 1 and "boom" in letters[0].error
    assert letters[0].stream == "tm:polarities"


def test_multi_consumer_rejects_mixed_groups(bus):
    a = bus.consumer("picks", "g", lambda b: [], name="a")
    b = bus.consumer("polarities", "other", lambda b: [], name="a")
    with pytest.raises(ValueError, match="one bus, group and consumer name"):
        MultiConsumer((a, b))
    with pytest.raises(ValueError, match="at least one"):
        MultiConsumer(())
    with pytest.raises(ValueError, match="one consumer per stream"):
        MultiConsumer((a, bus.consumer("picks", "g", lambda b: [], name="a")))


def test_run_stage_serves_a_multi_consumer_and_tears_down_in_order(bus):
    import signal

    from firstmotion.bus import run_stage
    from firstmotion.metrics import Health

    for i in range(3):
        bus.publish("picks", pick(i))
    kw = dict(name="a", block_ms=50)
    loop = MultiConsumer(
        (bus.consumer("picks", "g", lambda b: [], **kw), bus.consumer("x", "g", lambda b: [], **kw))
    )
    done: list[str] = []

    class Server:
        def stop(self) -> None:
            done.append("server")

    before = signal.getsignal(signal.SIGTERM)
    health = Health()
    n = run_stage(
        loop,
        drain=True,
        metrics_port=0,
        health=health,
        grace_s=1,
        checks={"model": lambda: (True, "loaded")},
        servers=[Server()],
        on_exit=(lambda: done.append("first"), lambda: done.append("second")),
    )
    assert n == 3
    assert done == ["server", "first", "second"]
    assert signal.getsignal(signal.SIGTERM) is before
    ok, results = health.run()
    assert ok and list(results) == ["redis", "loop", "model"]
    health2 = Health()
    run_stage(loop, bus=bus, drain=True, metrics_port=0, health=health2, loop_check=False)
    assert list(health2.run()[1]) == ["redis"]


def test_run_loop_retries_redis_errors_recreates_groups_and_times_out():
    import threading

    import redis

    from firstmotion.bus import run_loop

    stop = threading.Event()
    events: list[str] = []
    script = iter([redis.ConnectionError("down"), redis.ResponseError("NOGROUP gone"), 0, 5])

    def step():
        item = next(script)
        if isinstance(item, Exception):
            raise item
        events.append(f"step {item}")
        return item

    run_loop(step, stop=stop, done=lambda n: n == 5, on_nogroup=lambda: events.append("forget"))
    assert events == ["forget", "step 0", "step 5"]
    with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
        run_loop(lambda: (_ for _ in ()).throw(redis.ResponseError("WRONGTYPE")), stop=stop)
    with pytest.raises(TimeoutError, match="my loop not drained after 0.05 s"):
        run_loop(lambda: 0, stop=stop, timeout_s=0.05, label="my loop")
    stop.set()
    run_loop(lambda: pytest.fail("a stopped loop must not step"), stop=stop)


def test_multi_consumer_of_builds_one_consumer_per_stream_in_order(bus):
    commits: list = []
    loop = MultiConsumer.of(
        bus,
        "g",
        {"polarities": lambda b: [], "picks": lambda b: []},
        consumer_cls=StateConsumer,
        label="built",
        batch_size=5,
        log=commits,
    )
    assert [c.stream for c in loop.consumers] == ["polarities", "picks"]
    assert all(isinstance(c, StateConsumer) and c.batch_size == 5 for c in loop.consumers)
    assert len({c.name for c in loop.consumers}) == 1 and loop.name
    bus.publish("picks", pick(1))
    assert loop.run(drain=True, timeout_s=20) == 1
    assert commits == [("picks", 1, 0)]
