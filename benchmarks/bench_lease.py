"""Takeover: time from a worker's death (kill -9) to its messages being handled by another.

Run from the repository root::

    .venv/bin/python benchmarks/bench_lease.py [--n 20] [--baseline-lease-ms 60000]

On a private ``redis-server``: ``--n`` picks are published; a worker process (a real
:class:`firstmotion.bus.Consumer`) takes them in one batch and is killed with SIGKILL while
it handles them, after holding them for twice the lease (its heartbeat keeps them meanwhile);
a second consumer, running the whole time with the same settings, takes them over. The time
is measured from the kill to the moment every pick is acknowledged by the second consumer.
Measured for the default lease (``redis.lease_ms``, with the heartbeat) and, in the same run,
for the baseline lease of ``--baseline-lease-ms`` (the former default, one minute), and their
ratio is printed. The baseline case takes about a minute by construction.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from firstmotion.bus import Bus  # noqa: E402
from firstmotion.config import RedisSettings  # noqa: E402
from firstmotion.messages import Pick, Polarity, make_pick_id  # noqa: E402
from firstmotion.redis_server import RedisServer  # noqa: E402

VICTIM = textwrap.dedent(
    """
    import sys, time
    from firstmotion.bus import Bus

    def stuck(batch):
        print("holding", len(batch), flush=True)
        time.sleep(3600)

    bus = Bus.from_url(sys.argv[1], prefix=sys.argv[2])
    bus.consumer("picks", "g", stuck, name="victim", batch_size=1000,
                 lease_ms=int(sys.argv[3])).run()
    """
)


def pick(i: int) -> Pick:
    station = f"XX.S{i % 7}..HHZ"
    t = 1.7e9 + i
    return Pick(
        pick_id=make_pick_id(station, t), station_id=station, time_epoch_s=t,
        sampling_rate_hz=100.0, start_time_epoch_s=t - 1, pick_index=100,
        samples=np.zeros(200, np.float32), snr=3.0, amplitude=1.0, created_epoch_s=t,
    )  # fmt: skip


def polarity_of(batch):
    return [
        ("polarities", Polarity(
            pick_id=d.message.pick_id, station_id=d.message.station_id,
            time_epoch_s=d.message.time_epoch_s, polarity=1, probabilities=(1.0, 0.0, 0.0),
            confidence=1.0, model_version="bench",
        ))
        for d in batch
    ]  # fmt: skip


def takeover_s(url: str, prefix: str, lease_ms: int, n: int) -> float:
    bus = Bus.from_url(url, prefix)
    for i in range(n):
        bus.publish("picks", pick(i))
    proc = subprocess.Popen(
        [sys.executable, "-c", VICTIM, url, prefix, str(lease_ms)], cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)), stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = proc.stdout.readline().split()
        assert line == ["holding", str(n)], line
        survivor = bus.consumer("picks", "g", polarity_of, name="survivor", lease_ms=lease_ms)
        hold_until = time.monotonic() + 2 * lease_ms / 1000 if lease_ms < 30_000 else 0
        while time.monotonic() < hold_until:  # the survivor polls; the heartbeat wins
            survivor.run_once(block_ms=100)
        assert bus.length("polarities") == 0, "a held batch was taken over while alive"
        proc.kill()
        t_kill = time.monotonic()
        proc.wait(10)
        while bus.pending_count("picks", "g") or bus.length("polarities") < n:
            survivor.run_once(block_ms=100)
        took = time.monotonic() - t_kill
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        bus.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=20, help="picks held by the killed worker")
    parser.add_argument("--baseline-lease-ms", type=int, default=60_000)
    args = parser.parse_args()
    lease_ms = RedisSettings().lease_ms
    with RedisServer() as server:
        ours = takeover_s(server.url, "ours:", lease_ms, args.n)
        base = takeover_s(server.url, "base:", args.baseline_lease_ms, args.n)
    print(f"takeover after kill -9, {args.n} picks held:")
    print(f"  lease {lease_ms} ms with heartbeat : {ours:6.1f} s")
    print(f"  lease {args.baseline_lease_ms} ms (baseline)    : {base:6.1f} s")
    print(f"  ratio baseline/ours            : {base / ours:6.1f}x")


if __name__ == "__main__":
    main()
