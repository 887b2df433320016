"""Bus throughput: picks per second through a consumer group on a real Redis.

Run from the repository root::

    .venv/bin/python benchmarks/bench_bus.py [--n 2000] [--repeats 3]

Timed in the same run, on the same private ``redis-server`` (started by
:mod:`firstmotion.redis_server`; ``REDIS_URL`` to use another):

* ``codec``: ``Pick.to_json`` + ``decode(encode(...))`` per message (4 s at 100 Hz window);
* ``publish``: ``Bus.publish`` one XADD per message;
* ``consume batch=B``: a :class:`firstmotion.bus.Consumer` with a trivial idempotent handler
  (Pick -> Polarity) draining N picks, for B in 1 (baseline: one read, one MULTI/EXEC per
  message), 16, 64, 256; the ratio against batch=1 is printed.

Each figure is the median of ``--repeats`` runs. The machine may be shared: rerun when quiet.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import redis

from firstmotion.bus import Bus
from firstmotion.messages import Pick, Polarity, decode, encode, make_pick_id
from firstmotion.redis_server import redis_url


def make_pick(i: int) -> Pick:
    station = f"XX.S{i % 50:03d}..HHZ"
    t = 1.7e9 + i * 0.5
    rng = np.random.default_rng(i)
    return Pick(
        pick_id=make_pick_id(station, t),
        station_id=station,
        time_epoch_s=t,
        sampling_rate_hz=100.0,
        start_time_epoch_s=t - 2.0,
        pick_index=200,
        samples=rng.normal(0, 100, 400),
        snr=5.0,
        amplitude=300.0,
        created_epoch_s=t,
    )


def handler(batch):
    return [
        (
            "polarities",
            Polarity(
                pick_id=d.message.pick_id,
                station_id=d.message.station_id,
                time_epoch_s=d.message.time_epoch_s,
                polarity=1,
                probabilities=(0.9, 0.05, 0.05),
                confidence=0.9,
                model_version="bench",
                created_epoch_s=d.message.time_epoch_s,
            ),
        )
        for d in batch
    ]


def time_consume(bus: Bus, picks: list[Pick], batch_size: int) -> float:
    bus.client.flushdb()
    pipe = bus.client.pipeline(transaction=False)
    for p in picks:
        pipe.xadd(bus.key("picks"), encode(p))
    pipe.execute()
    consumer = bus.consumer("picks", "polarity", handler, name="bench", batch_size=batch_size)
    t0 = time.perf_counter()
    done = consumer.run(drain=True, timeout_s=600)
    elapsed = time.perf_counter() - t0
    assert done == len(picks) and bus.length("polarities") == len(picks)
    assert bus.pending_count("picks", "polarity") == 0
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="picks per run")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    bus = Bus.from_url(redis_url(), prefix="bench:")
    version = bus.client.info("server")["redis_version"]
    picks = [make_pick(i) for i in range(args.n)]
    size = len(picks[0].to_json())
    print(f"redis {version}; {args.n} picks of {size} bytes on the wire; median of {args.repeats}")

    codec = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for p in picks:
            decode(encode(p))
        codec.append((time.perf_counter() - t0) / args.n)
    print(f"codec (encode + decode)   {statistics.median(codec) * 1e6:8.1f} us/pick")

    pub = []
    for _ in range(args.repeats):
        bus.client.flushdb()
        t0 = time.perf_counter()
        for p in picks:
            bus.publish("picks", p)
        pub.append(args.n / (time.perf_counter() - t0))
    print(f"publish (one XADD each)   {statistics.median(pub):8.0f} picks/s")

    base = None
    for batch_size in (1, 16, 64, 256):
        rates = [args.n / time_consume(bus, picks, batch_size) for _ in range(args.repeats)]
        rate = statistics.median(rates)
        base = base or rate
        ratio = rate / base
        print(
            f"consume batch={batch_size:<4}        {rate:8.0f} picks/s   x{ratio:5.1f} vs batch=1"
        )
    bus.client.flushdb()
    bus.close()


if __name__ == "__main__":
    try:
        main()
    except redis.ConnectionError as exc:  # pragma: no cover
        raise SystemExit(f"bench_bus: cannot reach Redis: {exc}") from None
