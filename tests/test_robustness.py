"""Poison entries, leases, Redis failures and corrupt replay data, on a real Redis.

A poison entry (too deep, too big, of the wrong type for its stream, with absurd values, or
one whose handling or commit raises) ends in the dead-letter stream and the consumer goes on;
a busy consumer keeps its entries while a dead one's move to another after the lease.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import redis

from firstmotion.bus import (
    Bus,
    Consumer,
    describe_redis_error,
    redis_check,
    run_loop,
    transient_redis_error,
)
from firstmotion.messages import (
    MAX_ENTRY_BYTES,
    MAX_JSON_DEPTH,
    MAX_SAMPLES,
    MessageError,
    Origin,
    Pick,
    decode,
    encode,
    json_depth,
    make_pick_id,
)
from firstmotion.metrics import registry
from tests.test_bus import classify, output_ids, pick

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def bus(redis_client, redis_url):
    b = Bus.from_url(redis_url, prefix="t:")
    yield b
    b.close()


def _slow_depth(text: str) -> int:
    """The obviously-right twin of :func:`json_depth`: one character at a time."""
    depth = deepest = 0
    inside = False
    run = 0  # backslashes just before this character
    for c in text:
        if c == '"' and run % 2 == 0:
            inside = not inside
        elif not inside and c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif not inside and c in "]}":
            depth -= 1
        run = run + 1 if c == "\\" else 0
    return deepest


def origin(event_id: str = "ev1", **kw) -> Origin:
    base = dict(
        event_id=event_id, revision=0, time_epoch_s=1.7e9, latitude_deg=10.0,
        longitude_deg=20.0, depth_km=8.0, created_epoch_s=1.7e9,
    )  # fmt: skip
    base.update(kw)
    return Origin(**base)


def _tampered(message, **changes) -> dict[str, bytes]:
    """Stream fields of ``message`` with ``changes`` written into its JSON (as a hostile or
    broken producer would, past the constructor's checks)."""
    obj = json.loads(message.to_json())
    obj.update(changes)
    return {"type": type(message).__name__.encode(), "data": json.dumps(obj).encode()}


# --------------------------------------------------------------------------- decoding limits


def test_json_depth_matches_its_slow_twin_and_ignores_brackets_in_strings():
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice('[]{}"\\a,') for _ in range(rng.randint(0, 40)))
        assert json_depth(text) == _slow_depth(text), text
    assert json_depth('{"a": "[[[[", "b": [{}]}') == 3
    assert json_depth("[" * 100_000) == 100_000
    assert json_depth('["\\\\", ["]"]]') == 2  # an escaped backslash ends before the quote


def test_deep_huge_and_absurd_entries_are_refused_before_or_while_parsing():
    with pytest.raises(MessageError, match="nested 100000 deep"):
        decode({"type": "Pick", "data": "[" * 100_000})
    with pytest.raises(MessageError, match=f"more than {MAX_ENTRY_BYTES}"):
        decode({"type": "Pick", "data": b" " * (MAX_ENTRY_BYTES + 1)})
    for changes, field in (
        ({"event_id": "e" * 1_000_000}, "Origin.event_id"),
        ({"event_id": "bad\nid"}, "Origin.event_id"),
        ({"depth_km": 1e6}, "Origin.depth_km"),
        ({"time_epoch_s": 1e12}, "Origin.time_epoch_s"),
        ({"magnitude": 99.0}, "Origin.magnitude"),
        ({"revision": 10**12}, "Origin.revision"),
    ):
        with pytest.raises(MessageError, match=field):
            decode(_tampered(origin(), **changes))
    # the largest legitimate entry (a pick window of MAX_SAMPLES) is well within the limits
    big = pick(0)
    big = Pick(**{**{n: getattr(big, n) for n in big._checks}, "samples": np.ones(MAX_SAMPLES)})
    fields = encode(big)
    assert sum(len(v) for v in fields.values()) < MAX_ENTRY_BYTES
    assert decode(fields) == big
    assert json_depth(encode(origin(arrivals=())).get("data")) < MAX_JSON_DEPTH


def test_poison_entries_are_dead_lettered_at_once_and_the_consumer_goes_on(bus):
    poisons = {
        "deep": {"type": "Pick", "data": "[" * 100_000},
        "huge": {"type": "Pick", "data": b"0" * (MAX_ENTRY_BYTES + 10)},
        "wrong type": encode(origin()),
        "absurd": _tampered(pick(1), time_epoch_s=1e12),
    }
    for fields in poisons.values():
        bus.client.xadd("t:picks", fields)
    bus.publish("picks", pick(2))
    before = registry().get_sample_value(
        "firstmotion_stage_dead_letters_total", {"stage": "t_poison_at_once"}
    )
    c = bus.consumer("picks", "polarity", classify, name="a", stage="t_poison_at_once")
    c.run(drain=True, timeout_s=20)
    assert output_ids(bus) == Counter({pick(2).pick_id: 1})
    dead = bus.dead_letters()
    assert len(dead) == 4 and all(d.delivery_count == 1 for d in dead)
    errors = [d.error for d in dead]
    assert "nested 100000 deep" in errors[0]
    assert f"more than {MAX_ENTRY_BYTES}" in errors[1]
    assert errors[2] == "wrong type on t:picks: expected Pick, got Origin"
    assert "Pick.time_epoch_s" in errors[3]
    after = registry().get_sample_value(
        "firstmotion_stage_dead_letters_total", {"stage": "t_poison_at_once"}
    )
    assert after - (before or 0) == 4
    assert bus.pending_count("picks", "polarity") == 0


def test_a_wrong_type_is_a_dead_letter_in_every_group(bus):
    bus.publish("picks", origin())  # an Origin on the picks stream
    bus.publish("picks", pick(0))
    seen = {}
    for group in ("polarity", "associate"):

        def handler(batch, group=group):
            seen.setdefault(group, []).extend(type(d.message).__name__ for d in batch)
            return []

        bus.consumer("picks", group, handler, name=group).run(drain=True, timeout_s=20)
    assert seen == {"polarity": ["Pick"], "associate": ["Pick"]}  # neither handler saw it
    dead = bus.dead_letters()
    assert sorted(d.group for d in dead) == ["associate", "polarity"]
    assert all(bus.pending_count("picks", g) == 0 for g in ("polarity", "associate"))


def test_a_commit_that_raises_is_retried_then_dead_lettered_and_the_loop_goes_on(bus):
    for i in range(3):
        bus.publish("picks", pick(i))

    class FragileCommit(Consumer):
        def commit(self, batch, outputs):
            if any(d.message.pick_id == pick(1).pick_id for d in batch):
                raise RecursionError("maximum recursion depth exceeded")
            return super().commit(batch, outputs)

    c = FragileCommit(bus, "picks", "g", classify, name="a", lease_ms=50, max_deliveries=2)
    c.run(drain=True, timeout_s=20)
    assert output_ids(bus) == Counter({pick(0).pick_id: 1, pick(2).pick_id: 1})
    (dead,) = bus.dead_letters()
    assert dead.error.startswith("RecursionError") and dead.delivery_count == 2
    assert dead.message() == pick(1)


def test_a_redis_outage_inside_the_handler_blames_no_message(bus):
    bus.publish("picks", pick(0))

    def handler(batch):
        raise redis.ConnectionError("Connection reset by peer")

    c = bus.consumer("picks", "g", handler, name="a", lease_ms=50, max_deliveries=1)
    with pytest.raises(redis.ConnectionError):
        c.run_once(block_ms=100)  # up to the loop, which waits the outage out
    assert bus.pending_count("picks", "g") == 1
    assert not bus.dead_letters()
    assert transient_redis_error(redis.ResponseError("LOADING Redis is loading the dataset"))
    assert not transient_redis_error(redis.ResponseError("WRONGTYPE Operation against a key"))


# --------------------------------------------------------------------------- leases


def test_a_busy_consumer_keeps_its_entries_past_the_lease(bus):
    """The heartbeat extends the lease of the batch in hand: another consumer polling all the
    while never reclaims it, so nothing is handled twice."""
    n = 6
    for i in range(n):
        bus.publish("picks", pick(i))
    deliveries: list[tuple[str, str, int]] = []

    def slow(batch):
        deliveries.extend(("a", d.entry_id, d.delivery_count) for d in batch)
        time.sleep(2.4)  # three times the lease
        return classify(batch)

    a = bus.consumer("picks", "g", slow, name="a", batch_size=n, lease_ms=800)
    worker = threading.Thread(target=a.run_once, kwargs={"block_ms": 100})
    worker.start()
    time.sleep(0.1)

    def other(batch):
        deliveries.extend(("b", d.entry_id, d.delivery_count) for d in batch)
        return classify(batch)

    b = bus.consumer("picks", "g", other, name="b", lease_ms=800)
    t0 = time.monotonic()
    while worker.is_alive() and time.monotonic() - t0 < 10:
        b.run_once(block_ms=50)
    worker.join()
    assert [who for who, _, _ in deliveries] == ["a"] * n
    assert all(count == 1 for _, _, count in deliveries)
    assert output_ids(bus) == Counter({pick(i).pick_id: 1 for i in range(n)})
    assert a.lease.beats >= 2 and not a.lease.held


VICTIM = textwrap.dedent(
    """
    import sys, time
    from firstmotion.bus import Bus
    from tests.test_bus import classify

    def stuck(batch):
        print("holding", len(batch), flush=True)
        time.sleep(3600)

    bus = Bus.from_url(sys.argv[1], prefix="t:")
    bus.consumer("picks", "g", stuck, name="victim", batch_size=10).run()
    """
)


@pytest.mark.timeout(60)
def test_a_killed_workers_entries_are_handled_by_another_within_seconds(bus, redis_url):
    """kill -9 of a worker holding entries (its heartbeat had kept them through a long
    handler): the default lease moves them to another worker in seconds, far inside the old
    one-minute lease."""
    from firstmotion.config import RedisSettings

    lease_ms = RedisSettings().lease_ms
    n = 10
    for i in range(n):
        bus.publish("picks", pick(i))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", VICTIM, redis_url], cwd=REPO, env=env,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout.readline().split() == ["holding", str(n)]
        time.sleep(2 * lease_ms / 1000)  # held past the lease: the heartbeat keeps it
        assert bus.client.xpending("t:picks", "g")["consumers"] == [
            {"name": b"victim", "pending": n}
        ]
        proc.kill()
        t_kill = time.monotonic()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    survivor = bus.consumer("picks", "g", classify, name="survivor", settings=RedisSettings())
    while bus.pending_count("picks", "g") or bus.length("polarities") < n:
        survivor.run_once()
        assert time.monotonic() - t_kill < 20
    took_s = time.monotonic() - t_kill
    print(f"entries of a killed worker handled by another after {took_s:.1f} s")
    assert took_s < lease_ms / 1000 + 5.0 < 60.0
    assert output_ids(bus) == Counter({pick(i).pick_id: 1 for i in range(n)})


# --------------------------------------------------------------------------- Redis failures


@pytest.fixture(scope="module")
def locked_redis():
    from firstmotion.redis_server import RedisServer

    server = RedisServer(password="right horse").start()
    yield server
    server.stop()


def test_a_wrong_password_is_said_in_one_line_and_in_the_health(locked_redis, caplog):
    url = locked_redis.url.replace("right%20horse", "wrong")
    assert url != locked_redis.url
    bus = Bus.from_url(url, prefix="t:")
    ok, detail = redis_check(bus)()
    assert not ok
    assert detail.startswith(f"redis at 127.0.0.1:{locked_redis.port}: authentication failed")
    assert "wrong" not in detail  # the password is never shown
    stop = threading.Event()
    calls = []

    def step():
        calls.append(1)
        if len(calls) >= 4:
            stop.set()
        return bus.client.ping()

    with caplog.at_level("DEBUG", logger="firstmotion.bus"):
        run_loop(step, stop=stop)
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(calls) == 4 and len(errors) == 1  # said once, retried with backoff
    assert "authentication failed" in errors[0].getMessage() and "\n" not in errors[0].message
    bus.close()


def test_catalog_export_says_what_went_wrong_in_one_line(locked_redis, capsys):
    from firstmotion.cli import main
    from firstmotion.redis_server import free_port

    bad = locked_redis.url.replace("right%20horse", "wrong")
    down = f"redis://127.0.0.1:{free_port()}/0"
    for url, what in ((bad, "authentication failed"), (down, "unreachable")):
        assert main(["catalog", "export", "--redis", url, "--format", "json"]) == 1
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and what in err and "Traceback" not in err, err
    assert describe_redis_error(redis.TimeoutError("t"), down).endswith("timed out (t)")


@pytest.mark.timeout(120)
def test_the_associator_waits_out_a_redis_that_is_down_at_start(tmp_path):
    """It used to load its state before its loop and exit with a traceback."""
    from firstmotion.redis_server import find_redis_server, free_port

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "firstmotion.cli", "worker", "associate", "--redis", url,
         "--drain"],
        cwd=REPO, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    server = None
    try:
        time.sleep(6)
        assert proc.poll() is None, proc.stderr.read()
        server = subprocess.Popen(
            [str(find_redis_server()), "--port", str(port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        bus = Bus.from_url(url)
        deadline = time.monotonic() + 10
        while True:
            try:
                bus.publish("picks", pick(0))
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        err = proc.communicate(timeout=90)[1]
        assert proc.returncode == 0, err
        assert bus.pending_count("picks", "associate") == 0
        bus.close()
    finally:
        for p in (proc, server):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert "Traceback" not in err
    assert f"redis at 127.0.0.1:{port}: unreachable" in err  # one line, said once
    assert err.count(" ERROR ") == 1  # said once, not once per retry
    assert "redis available again" in err


# --------------------------------------------------------------------------- replay data


def _write_mseed(path: Path, station: str, reclen: int = 512) -> bytes:
    import io

    import obspy

    trace = obspy.Trace(
        np.random.default_rng(0).normal(0, 100, 6000).astype(np.int32),
        header=dict(network="XX", station=station, channel="HHZ", sampling_rate=100.0,
                    starttime=obspy.UTCDateTime(2024, 1, 1)),
    )  # fmt: skip
    buf = io.BytesIO()
    trace.write(buf, format="MSEED", reclen=reclen)
    path.write_bytes(buf.getvalue())
    return buf.getvalue()


def corrupt_mseed(path: Path) -> None:
    """A miniSEED file whose Steim2 frames are overwritten with garbage (obspy refuses it)."""
    raw = bytearray(_write_mseed(path, "BAD", reclen=4096))
    raw[5000:9000] = b"\xff" * 4000
    path.write_bytes(bytes(raw))


def test_replay_skips_a_corrupt_file_and_serves_the_rest(tmp_path, caplog):
    from stream.replay import ReplayServer

    _write_mseed(tmp_path / "good.mseed", "GOOD")
    raw = _write_mseed(tmp_path / "cut.mseed", "CUT")
    (tmp_path / "cut.mseed").write_bytes(raw[: len(raw) // 2 + 100])  # truncated mid-record
    corrupt_mseed(tmp_path / "bad.mseed")
    with caplog.at_level("ERROR", logger="stream.replay_records"):
        server = ReplayServer([tmp_path], port=0)
    assert [s[1] for s in server.plan.streams] == ["CUT", "GOOD"]
    assert [p.name for p, _ in server.skipped] == ["bad.mseed"]
    assert any("skipping" in r.getMessage() and "bad.mseed" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    cut = server.plan.stream_index == server.plan.streams.index(("XX", "CUT", "", "HHZ"))
    assert 0 < cut.sum() < (server.plan.stream_index != cut).sum()  # its whole records only


def test_replay_command_with_only_corrupt_files_says_so_without_a_traceback(tmp_path):
    corrupt_mseed(tmp_path / "bad.mseed")
    proc = subprocess.run(
        [sys.executable, "-m", "firstmotion.cli", "replay", "--data", str(tmp_path),
         "--port", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )  # fmt: skip
    assert proc.returncode == 1
    assert "skipping" in proc.stderr and "nothing to replay" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_make_pick_id_is_bounded_like_the_messages():
    with pytest.raises(MessageError):
        make_pick_id("XX.S1..HHZ", 1e12)


def test_dead_letters_command_lists_requeues_and_drops(bus, redis_url, capsys, monkeypatch):
    from firstmotion.cli import main

    monkeypatch.setenv("FIRSTMOTION_REDIS__PREFIX", "t:")
    bus.client.xadd("t:picks", {"type": "Pick", "data": "[" * 1000})
    bus.client.xadd("t:origins", encode(pick(0)))
    bus.consumer("picks", "polarity", classify, name="a").run(drain=True, timeout_s=20)
    bus.consumer("origins", "catalog", classify, name="a").run(drain=True, timeout_s=20)
    assert main(["dead-letters", "list", "--redis", redis_url]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2
    assert "t:picks [polarity]" in out[0] and "nested 1000 deep" in out[0]
    assert "t:origins [catalog]" in out[1] and "expected Origin or CatalogEvent" in out[1]
    assert main(["dead-letters", "list", "--redis", redis_url, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["type"] for r in rows] == ["Pick", "Pick"] and rows[0]["data_bytes"] == 1000
    assert main(["dead-letters", "requeue", "--redis", redis_url]) == 2  # says which
    assert main(["dead-letters", "requeue", "--redis", redis_url, "--stream", "origins"]) == 0
    assert bus.length("origins") == 2 and len(bus.dead_letters()) == 1
    assert main(["dead-letters", "drop", "--redis", redis_url, "--all"]) == 0
    assert not bus.dead_letters()
