"""The Redis Streams bus on a real Redis: at-least-once, dead letters, trimming, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import redis

from firstmotion.bus import Bus, BusError, Consumer, Delivery, as_text, check_redis_url
from firstmotion.messages import Pick, Polarity, make_pick_id
from firstmotion.metrics import registry

REPO = Path(__file__).resolve().parents[1]


def pick(i: int) -> Pick:
    station = f"XX.S{i % 7}..HHZ"
    t = 1.7e9 + i
    return Pick(
        pick_id=make_pick_id(station, t),
        station_id=station,
        time_epoch_s=t,
        sampling_rate_hz=100.0,
        start_time_epoch_s=t - 1,
        pick_index=100,
        samples=np.full(200, float(i)),
        snr=3.0,
        amplitude=1.0,
        created_epoch_s=t,
    )


def to_polarity(p: Pick) -> Polarity:
    """Idempotent: the output depends only on the input."""
    return Polarity(
        pick_id=p.pick_id,
        station_id=p.station_id,
        time_epoch_s=p.time_epoch_s,
        polarity=1,
        probabilities=(1.0, 0.0, 0.0),
        confidence=1.0,
        model_version="test",
        created_epoch_s=p.time_epoch_s,
    )


def classify(batch: list[Delivery]):
    return [("polarities", to_polarity(d.message)) for d in batch]


@pytest.fixture
def bus(redis_client, redis_url):
    b = Bus.from_url(redis_url, prefix="t:")
    yield b
    b.close()


def output_ids(bus: Bus) -> Counter:
    return Counter(m.pick_id for _, m in bus.messages("polarities"))


def sample(name: str, stage: str) -> float:
    return registry().get_sample_value(name, {"stage": stage}) or 0.0


# --------------------------------------------------------------------------- URLs, publish


@pytest.mark.parametrize("url", ["", None, "localhost:6379", "http://x:1/0", "redis://"])
def test_from_url_refuses_bad_or_missing_urls(url):
    with pytest.raises(ValueError, match="redis.url"):
        Bus.from_url(url)


def test_from_url_password_and_tls_come_from_the_url():
    bus = Bus.from_url("rediss://:s3cret@redis.example:6380/2")  # lazy: no connection made
    pool = bus.client.connection_pool
    assert pool.connection_kwargs["password"] == "s3cret"
    assert pool.connection_kwargs["db"] == 2
    assert pool.connection_class is redis.SSLConnection
    assert check_redis_url("redis://:pw@h:1/0") == "redis://:pw@h:1/0"


def test_publish_round_trip(bus):
    ids = [bus.publish("picks", pick(i)) for i in range(3)]
    got = bus.messages("picks")
    assert [i for i, _ in got] == ids
    assert [m for _, m in got] == [pick(i) for i in range(3)]
    assert bus.client.exists("t:picks") == 1


def test_publish_many_in_one_transaction(bus):
    ids = bus.publish_many("picks", [pick(i) for i in range(5)])
    assert len(ids) == 5 and [i for i, _ in bus.messages("picks")] == ids
    assert bus.publish_many("picks", []) == []


def test_publish_trims_to_about_maxlen(bus):
    p = pick(0)
    for _ in range(600):
        bus.publish("picks", p, maxlen=50)
    n = bus.length("picks")
    assert 50 <= n < 600


def test_trim_by_minid_and_age(bus):
    client = bus.client
    now_ms = int(time.time() * 1000)
    for k, age_ms in enumerate([50_000, 40_000, 10, 0]):
        client.xadd(
            "t:picks", {"type": "Pick", "data": pick(k).to_json()}, id=f"{now_ms - age_ms}-0"
        )
    assert bus.trim_older_than("picks", 30.0, now_s=now_ms / 1000, approximate=False) == 2
    assert bus.length("picks") == 2
    assert bus.trim_minid("picks", f"{now_ms}-0", approximate=False) == 1
    assert bus.length("picks") == 1


# --------------------------------------------------------------------------- consuming


def test_consumer_drains_and_commits_outputs_with_acks(bus):
    for i in range(25):
        bus.publish("picks", pick(i))
    before_in = sample("firstmotion_stage_items_in_total", "t_basic")
    c = bus.consumer("picks", "g", classify, name="a", batch_size=10, stage="t_basic")
    assert c.run(drain=True, timeout_s=20) == 25
    assert output_ids(bus) == Counter({pick(i).pick_id: 1 for i in range(25)})
    assert bus.pending_count("picks", "g") == 0
    assert sample("firstmotion_stage_items_in_total", "t_basic") - before_in == 25
    assert sample("firstmotion_stage_items_out_total", "t_basic") >= 25
    assert sample("firstmotion_stage_last_processed_timestamp_seconds", "t_basic") > 0
    assert sample("firstmotion_stage_in_flight", "t_basic") == 0


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing may catch and ack it."""


def test_handler_dying_mid_batch_is_redelivered_to_another_consumer(bus):
    n = 20
    for i in range(n):
        bus.publish("picks", pick(i))
    seen_by_a: list[str] = []

    def dies_midway(batch):
        for k, d in enumerate(batch):
            if k == len(batch) // 2:
                raise Crash("killed mid-batch")
            seen_by_a.append(d.message.pick_id)
        raise AssertionError("unreachable")

    a = bus.consumer("picks", "g", dies_midway, name="a", batch_size=8, lease_ms=300)
    with pytest.raises(Crash):
        a.run()
    assert seen_by_a  # it really was mid-batch
    assert bus.pending_count("picks", "g") == 8  # nothing acked by the dead consumer
    assert not bus.messages("polarities")

    counts: list[int] = []

    def record(batch):
        counts.extend(d.delivery_count for d in batch)
        return classify(batch)

    b = bus.consumer("picks", "g", record, name="b", batch_size=8, lease_ms=300)
    assert b.run(drain=True, timeout_s=20) == n
    assert output_ids(bus) == Counter({pick(i).pick_id: 1 for i in range(n)})
    assert bus.client.xpending("t:picks", "g")["pending"] == 0
    assert sorted(counts) == [1] * (n - 8) + [2] * 8  # the 8 reclaimed were redelivered
    # acking again acknowledges nothing: each entry was acked exactly once
    ids = [i for i, _ in bus.messages("picks")]
    assert bus.client.xack("t:picks", "g", *ids) == 0


def test_poison_message_is_isolated_and_dead_lettered_after_max_deliveries(bus):
    poison = pick(3)
    for i in range(6):
        bus.publish("picks", pick(i))

    def fragile(batch):
        if any(d.message.pick_id == poison.pick_id for d in batch):
            raise ValueError("poison pill in this batch")
        return classify(batch)

    before = sample("firstmotion_stage_dead_letters_total", "t_poison")
    c = bus.consumer(
        "picks", "g", fragile, name="a", batch_size=6, lease_ms=50, max_deliveries=3,
        stage="t_poison",
    )  # fmt: skip
    c.run(drain=True, timeout_s=20)
    assert output_ids(bus) == Counter({pick(i).pick_id: 1 for i in range(6) if i != 3})
    assert bus.pending_count("picks", "g") == 0
    (dead,) = bus.dead_letters()
    assert "ValueError: poison pill" in dead.error
    assert dead.delivery_count == 3
    assert dead.stream == "t:picks" and dead.group == "g"
    assert dead.message() == poison
    assert sample("firstmotion_stage_dead_letters_total", "t_poison") - before == 1
    assert sample("firstmotion_stage_errors_total", "t_poison") >= 3


def test_failure_below_max_deliveries_is_left_pending_not_acked(bus):
    bus.publish("picks", pick(0))

    def always_fails(batch):
        raise RuntimeError("flaky downstream")

    c = bus.consumer("picks", "g", always_fails, name="a", lease_ms=60_000, max_deliveries=5)
    c.run_once(block_ms=100)
    assert bus.pending_count("picks", "g") == 1
    assert not bus.dead_letters()


def _dead_letters_beside_one_good_pick(bus) -> list:
    """Publish one good pick after the entries already in ``t:picks``, drain a consumer: the
    good pick alone is handled; the dead letters."""
    bus.publish("picks", pick(1))
    seen = []

    def handler(batch):
        seen.extend(d.message.pick_id for d in batch)
        return classify(batch)

    bus.consumer("picks", "g", handler, name="a").run(drain=True, timeout_s=20)
    assert seen == [pick(1).pick_id]
    return bus.dead_letters()


def test_undecodable_entries_go_to_dead_letters_at_once(bus):
    bus.client.xadd("t:picks", {"type": "Pick", "data": b"{not json"})
    bus.client.xadd("t:picks", {"foo": "bar"})
    bus.client.xadd("t:picks", {"type": "Pick", "data": b'{"schema_version": 99}'})
    dead = _dead_letters_beside_one_good_pick(bus)
    assert len(dead) == 3
    assert all(d.delivery_count == 1 and d.error.startswith("undecodable") for d in dead)
    assert "not valid JSON" in dead[0].error
    assert "missing field 'type'" in dead[1].error
    assert "schema_version: expected 1, got 99" in dead[2].error
    assert dead[1].fields == {"foo": b"bar"}
    assert bus.pending_count("picks", "g") == 0


def test_entries_of_stray_bytes_are_dead_lettered_and_listed_not_a_crash(bus, capsys, monkeypatch):
    """A field name or a type that is not UTF-8 (an entry written by something else): the
    entry is dead-lettered on its first delivery and the consumer goes on, and the operator's
    listing shows it (every worker reading it crashed, and again after each restart)."""
    from firstmotion import cli

    bus.client.xadd("t:picks", {b"\xff\xfe": b"x", "type": "Pick", "data": "{}"})
    bus.client.xadd("t:picks", {"type": b"\xff\xfe", "data": "{}"})
    dead = _dead_letters_beside_one_good_pick(bus)
    assert len(dead) == 2 and all(d.delivery_count == 1 for d in dead)
    assert "\\xff\\xfe" in dead[0].fields and bus.pending_count("picks", "g") == 0
    monkeypatch.setenv("FIRSTMOTION_REDIS__PREFIX", "t:")
    assert cli.main(["dead-letters", "list", "--redis", bus.url]) == 0
    assert "\\xff\\xfe" in capsys.readouterr().out


def test_bad_handler_output_is_a_failure_not_an_ack(bus):
    bus.publish("picks", pick(0))
    c = bus.consumer("picks", "g", lambda batch: [("polarities", "oops")], name="a")
    c.run_once(block_ms=100)
    assert bus.pending_count("picks", "g") == 1
    assert not bus.messages("polarities")
    with pytest.raises(BusError, match="expected \\(stream name, message\\)"):
        c._call([])
    c.handler = lambda batch: None
    with pytest.raises(BusError, match="returned None"):
        c._call([])


def test_pending_entries_trimmed_away_are_acked(bus):
    for i in range(3):
        bus.publish("picks", pick(i))
    bus.ensure_group("picks", "g")
    bus.client.xreadgroup("g", "ghost", {"t:picks": ">"}, count=10)  # delivered, never acked
    assert bus.pending_count("picks", "g") == 3
    bus.trim_minid("picks", "99999999999999-0", approximate=False)
    c = bus.consumer("picks", "g", classify, name="a", lease_ms=50)
    c.run(drain=True, timeout_s=20)
    assert bus.pending_count("picks", "g") == 0
    assert not bus.messages("polarities")


def test_backlog_and_pending_gauges(bus):
    for i in range(12):
        bus.publish("picks", pick(i))
    c = bus.consumer("picks", "g", classify, name="a", batch_size=5, stage="t_lag")
    c.bus.ensure_group("picks", "g")
    assert c.report_lag() == (12, 0)
    bus.client.xreadgroup("g", "other", {"t:picks": ">"}, count=5)
    assert c.report_lag() == (7, 5)
    assert sample("firstmotion_stage_backlog_messages", "t_lag") == 7
    assert sample("firstmotion_stage_pending_messages", "t_lag") == 5


def test_bus_and_consumer_from_settings(redis_url, redis_client):
    from firstmotion.config import load_settings

    env = {"FIRSTMOTION_REDIS__URL": redis_url, "FIRSTMOTION_REDIS__PREFIX": "s:"}
    settings = load_settings(environ=env | {"FIRSTMOTION_REDIS__LEASE_MS": "1234"})
    bus = Bus.from_settings(settings.redis)
    assert bus.prefix == "s:" and bus.maxlen == settings.redis.stream_maxlen
    c = bus.consumer("picks", "g", classify, settings=settings.redis, max_deliveries=2)
    assert c.lease_ms == 1234 and c.max_deliveries == 2 and c.key == "s:picks"
    bus.close()


def test_dynamic_batching_waits_to_fill_the_batch(bus):
    import threading

    sizes: list[int] = []

    def record(batch):
        sizes.append(len(batch))
        return classify(batch)

    bus.publish("picks", pick(0))

    def late_publisher():
        for i in range(1, 8):
            time.sleep(0.02)
            bus.publish("picks", pick(i))

    c = bus.consumer("picks", "g", record, name="a", batch_size=8, max_wait_ms=2000)
    c.bus.ensure_group("picks", "g")
    t = threading.Thread(target=late_publisher)
    t.start()
    c.run_once(block_ms=1000)
    t.join()
    assert sizes == [8]  # one full batch, not eight single ones
    c2 = bus.consumer("picks", "g2", record, name="b", batch_size=8, max_wait_ms=0)
    bus.ensure_group("picks", "g2")
    c2.run_once(block_ms=100)
    assert sizes[-1] == 8  # all already there: no waiting needed


def test_requeued_dead_letters_are_processed_again(bus):
    poisoned = {"on": True}
    for i in range(3):
        bus.publish("picks", pick(i))

    def sometimes(batch):
        if poisoned["on"] and any(d.message.pick_id == pick(1).pick_id for d in batch):
            raise RuntimeError("downstream bug")
        return classify(batch)

    c = bus.consumer("picks", "g", sometimes, name="a", lease_ms=30, max_deliveries=2)
    c.run(drain=True, timeout_s=20)
    (dead,) = bus.dead_letters()
    assert "downstream bug" in dead.error
    poisoned["on"] = False  # the bug is fixed
    assert bus.requeue_dead_letters() == 1
    assert bus.dead_letters() == []
    c.run(drain=True, timeout_s=20)
    assert output_ids(bus) == Counter({pick(i).pick_id: 1 for i in range(3)})
    assert bus.requeue_dead_letters(["0-1"]) == 0


def test_run_stage_drains_with_health_checks_and_restores_signals(bus):
    from firstmotion.bus import run_stage
    from firstmotion.metrics import Health

    for i in range(4):
        bus.publish("picks", pick(i))
    before = signal.getsignal(signal.SIGTERM)
    health = Health()
    c = bus.consumer("picks", "g", classify, name="a")
    assert run_stage(c, drain=True, metrics_port=0, health=health, grace_s=1) == 4
    assert signal.getsignal(signal.SIGTERM) is before
    ok, results = health.run()
    assert ok and set(results) == {"redis", "loop"}
    c.last_poll_monotonic -= 3600  # a loop stuck for an hour is unhealthy
    assert health.run()[1]["loop"]["ok"] is False


def test_consumer_survives_dropped_redis_connections(bus, redis_client):
    import threading

    c = bus.consumer("picks", "g", classify, name="a", block_ms=100)
    t = threading.Thread(target=c.run, daemon=True)
    t.start()

    def wait_outputs(n: int) -> None:
        deadline = time.monotonic() + 20
        while bus.length("polarities") < n and time.monotonic() < deadline:
            time.sleep(0.02)

    try:
        for i in range(5):
            bus.publish("picks", pick(i))
        wait_outputs(5)
        assert redis_client.client_kill_filter(_type="normal", skipme=True) >= 1
        for i in range(5, 10):
            bus.publish("picks", pick(i))
        wait_outputs(10)
    finally:
        c.request_stop()
        t.join(timeout=10)
    assert not t.is_alive()
    assert output_ids(bus) == Counter({pick(i).pick_id: 1 for i in range(10)})
    assert bus.pending_count("picks", "g") == 0


def test_consumer_recreates_a_stream_deleted_under_it(bus):
    c = bus.consumer("picks", "g", classify, name="a", block_ms=50)
    c.run_once()
    bus.client.delete("t:picks")
    assert c.report_lag() == (0, 0)
    c.run_once()  # recreates stream and group
    bus.publish("picks", pick(0))
    assert c.run(drain=True, timeout_s=10) == 1


def test_consumer_rejects_bad_settings(bus):
    with pytest.raises(ValueError, match="batch_size"):
        Consumer(bus, "picks", "g", classify, batch_size=0)
    with pytest.raises(ValueError, match="max_deliveries"):
        Consumer(bus, "picks", "g", classify, max_deliveries=0)


# --------------------------------------------------------------------------- graceful stop

CHILD = textwrap.dedent(
    """
    import sys, time
    from firstmotion.bus import Bus, install_signal_handlers
    from tests.test_bus import classify

    handler_s = float(sys.argv[2]) if len(sys.argv) > 2 else 0.4
    grace_s = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0

    def slow(batch):
        time.sleep(handler_s if classify.seen else 0.0)  # the first batch is quick
        classify.seen = True
        return classify(batch)

    classify.seen = False
    bus = Bus.from_url(sys.argv[1], prefix="t:")
    c = bus.consumer("picks", "g", slow, name="child", batch_size=5, block_ms=200)
    restore = install_signal_handlers(c, grace_s=grace_s)
    n = c.run()
    restore()
    print("processed", n, flush=True)
    """
)


def start_child_mid_batch(bus: Bus, redis_url: str, *args: str) -> subprocess.Popen:
    """A consumer process that is inside a batch (delivered, not yet acked) on return."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, redis_url, *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if bus.length("polarities") >= 5 and bus.pending_count("picks", "g") > 0:
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"child never got going: {proc.communicate()[1]}")


def test_sigterm_finishes_the_batch_in_hand_and_exits_0(bus, redis_url):
    for i in range(60):
        bus.publish("picks", pick(i))
    proc = start_child_mid_batch(bus, redis_url)
    try:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    processed = int(out.split()[-1])
    assert bus.pending_count("picks", "g") == 0  # the batch in hand was finished and acked
    assert bus.length("polarities") == processed
    assert 5 <= processed < 60  # it stopped reading


def test_sigkilled_worker_loses_nothing_and_duplicates_nothing(bus, redis_url):
    n = 40
    for i in range(n):
        bus.publish("picks", pick(i))
    proc = start_child_mid_batch(bus, redis_url)
    proc.kill()  # SIGKILL mid-batch: no cleanup at all
    proc.communicate(timeout=20)
    assert bus.pending_count("picks", "g") == 5  # the batch it held, unacked
    survivor = bus.consumer("picks", "g", classify, name="survivor", lease_ms=200)
    survivor.run(drain=True, timeout_s=30)
    assert output_ids(bus) == Counter({pick(i).pick_id: 1 for i in range(n)})
    assert bus.pending_count("picks", "g") == 0


def test_a_batch_stuck_past_the_grace_period_is_interrupted_and_left_pending(bus, redis_url):
    for i in range(20):
        bus.publish("picks", pick(i))
    proc = start_child_mid_batch(bus, redis_url, "60", "0.5")  # handler would take 60 s
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    assert time.monotonic() - t0 < 10
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    assert bus.pending_count("picks", "g") == 5  # not acked: another consumer will reclaim it
    assert bus.length("polarities") == 5  # only the first, finished batch was committed


def test_health_check_fails_fast_on_a_redis_that_does_not_answer():
    """A Redis that accepts connections but does not answer (SIGSTOP, swapping): the health
    check says so within seconds (it waited for the stage's 30 s timeout, past any probe)."""
    import socket

    from firstmotion.bus import HEALTH_TIMEOUT_S, redis_check

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)  # accepts, never answers
    try:
        bus = Bus.from_url(f"redis://127.0.0.1:{server.getsockname()[1]}/0")
        start = time.monotonic()
        ok, why = redis_check(bus)()
        assert not ok and time.monotonic() - start < 2 * HEALTH_TIMEOUT_S + 1
        assert "127.0.0.1" in why
    finally:
        server.close()


def test_a_restarted_worker_forgets_the_idle_consumers_of_stopped_processes(bus):
    """Consumers are named host-pid, so every restart left one behind in the group: one with
    nothing pending and idle for an hour is removed when a consumer starts; one holding
    entries stays (its entries are reclaimed by the lease, not dropped)."""
    for i in range(3):
        bus.publish("picks", pick(i))
    bus.ensure_group("picks", "g")
    bus.client.xreadgroup("g", "old-1", {"t:picks": ">"}, count=1)  # holds one entry
    bus.client.xreadgroup("g", "old-2", {"t:picks": ">"}, count=1)
    (held,) = bus.client.xpending_range("t:picks", "g", "-", "+", 10, "old-2")
    bus.client.xack("t:picks", "g", held["message_id"])  # old-2 finished its entry
    assert bus.forget_idle_consumers("picks", "g", idle_s=3600) == []  # not idle long enough
    time.sleep(0.05)
    assert bus.forget_idle_consumers("picks", "g", idle_s=0.01) == ["old-2"]
    names = [as_text(c["name"]) for c in bus.client.xinfo_consumers("t:picks", "g")]
    assert names == ["old-1"]
