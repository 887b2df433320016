"""Polarity worker throughput through a real Redis: picks per second, CPU and CUDA.

Run from the repository root::

    .venv/bin/python benchmarks/bench_polarity_worker.py [--n 20000] [--batch 1024]

Timed in the same run, against the same private ``redis-server`` (started by
:mod:`firstmotion.redis_server`; ``REDIS_URL`` to use another), on synthetic 100 Hz P windows of
7 s (5 s before the pick, as ``firstmotion reprocess`` cuts them):

* ``cpu, JSON entries``: picks published as all-JSON entries (base64 samples inside the JSON,
  ``encode(..., binary=False)``, what older writers put on the bus) -- the baseline;
* ``cpu, binary entries``: the same picks with their samples as raw float32 bytes beside the
  JSON (``encode``'s default);
* ``cpu, binary, N row threads`` (with ``--threads N`` above 1): the worker as ``worker
  polarity --threads N`` runs it, blocks of each batch's rows read by N threads, each on one
  torch thread (the rows above run the network on N torch threads);
* ``cuda bf16, 1 worker`` (when a CUDA device is present): the worker on the GPU (bf16);
* ``cuda bf16, N workers``: ``--gpu-workers`` worker processes sharing the one GPU (default:
  CPU cores - 2, at most 12). One worker's Python path (decode, messages, Redis commands) costs
  ~100 us per pick whatever the device, so one process cannot feed a GPU; several processes
  per GPU are how a GPU host is run (``firstmotion reprocess --polarity-replicas N``, or N
  ``worker polarity`` processes). Their ratio against the single CPU worker of this run is
  printed.

Each row publishes ``--n`` picks (not timed), then drains them with one
:func:`workers.polarity.worker.build_consumer` worker (XREADGROUP, decode, classify, publish
the Polarity messages and XACK in one MULTI/EXEC) and reports picks / drain seconds. The
model is warmed up before timing. The machine may be shared: rerun when quiet.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from firstmotion.bus import Bus
from firstmotion.messages import Pick, encode, make_pick_id
from firstmotion.redis_server import RedisServer


def make_picks(n: int, rate: float = 100.0, before_s: float = 5.0, after_s: float = 2.0):
    """Noise plus a one-sided P pulse of random sign at the pick."""
    rng = np.random.default_rng(0)
    n_samples = int((before_s + after_s) * rate)
    k = int(before_s * rate)
    base = rng.normal(0.0, 1.0, (min(n, 512), n_samples)).astype(np.float32)
    t = np.arange(n_samples - k) / rate
    pulse = (np.sin(2 * np.pi * 5.0 * t) * np.exp(-t / 0.3)).astype(np.float32) * 20.0
    out = []
    for i in range(n):
        x = base[i % base.shape[0]].copy()
        x[k:] += pulse * (1 if i % 2 else -1)
        station = f"XX.S{i % 500:03d}..HHZ"
        t_pick = 1.7e9 + i * 0.01
        out.append(
            Pick(
                pick_id=make_pick_id(station, t_pick),
                station_id=station,
                time_epoch_s=t_pick,
                sampling_rate_hz=rate,
                start_time_epoch_s=t_pick - before_s,
                pick_index=k,
                samples=x,
                snr=20.0,
                amplitude=20.0,
                method="bench",
            )
        )
    return out


def publish(bus: Bus, picks: list[Pick], binary: bool) -> None:
    key = bus.key("picks")
    for i in range(0, len(picks), 1000):
        pipe = bus.client.pipeline(transaction=False)
        for p in picks[i : i + 1000]:
            pipe.xadd(key, encode(p, binary=binary))
        pipe.execute()


def drain(bus: Bus, clf, picks: list[Pick], binary: bool, batch: int) -> float:
    from workers.polarity.worker import build_consumer

    bus.client.flushall()
    publish(bus, picks, binary)
    consumer = build_consumer(bus, clf, max_batch=batch, max_wait_ms=0, name="bench")
    t0 = time.perf_counter()
    n = consumer.run(drain=True, timeout_s=600)
    dt = time.perf_counter() - t0
    assert n == len(picks), (n, len(picks))
    assert bus.length("polarities") == len(picks)
    return len(picks) / dt


def _gpu_worker(url: str, batch: int, device: str, ready, start, out) -> None:
    """One polarity worker process: load, warm up, wait for ``start``, drain, report."""
    import torch

    from workers.polarity import PolarityClassifier
    from workers.polarity.worker import build_consumer

    torch.set_num_threads(1)
    clf = PolarityClassifier.load(device=device, precision="bfloat16")
    warm = make_picks(batch)
    clf.classify(np.stack([p.samples for p in warm]), 100.0, [p.pick_index for p in warm])
    bus = Bus.from_url(url)
    consumer = build_consumer(bus, clf, max_batch=batch, max_wait_ms=0, name=f"gpu-{os.getpid()}")
    ready.set()
    start.wait()
    out.put(consumer.run(drain=True, timeout_s=600))
    bus.close()


def drain_processes(bus: Bus, url: str, picks, n_workers: int, batch: int, device: str) -> float:
    """Picks/s of ``n_workers`` worker processes draining ``picks`` together."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    bus.client.flushall()
    publish(bus, picks, True)
    bus.ensure_group("picks", "polarity")
    start, out = ctx.Event(), ctx.Queue()
    readies = [ctx.Event() for _ in range(n_workers)]
    procs = [
        ctx.Process(target=_gpu_worker, args=(url, batch, device, r, start, out)) for r in readies
    ]
    for p in procs:
        p.start()
    for r in readies:
        r.wait(300)
    t0 = time.perf_counter()
    start.set()
    done = sum(out.get(timeout=600) for _ in procs)
    dt = time.perf_counter() - t0
    for p in procs:
        p.join(60)
    assert done == len(picks), (done, len(picks))
    return len(picks) / dt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="picks per CPU row")
    parser.add_argument("--n-gpu", type=int, default=50_000, help="picks per CUDA row")
    parser.add_argument("--batch", type=int, default=1024, help="worker max batch")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--gpu-workers", type=int, default=max(1, min(12, (os.cpu_count() or 4) - 2)),
        help="worker processes sharing the GPU in the multi-worker row",
    )  # fmt: skip
    args = parser.parse_args()
    from workers.polarity import PolarityClassifier

    torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, "
        f"load average {os.getloadavg()[0]:.2f}, cuda {torch.cuda.is_available()}"
    )
    picks = make_picks(max(args.n, args.n_gpu if torch.cuda.is_available() else 0))
    rows: dict[str, float] = {}
    with RedisServer() as server:
        bus = Bus.from_url(server.url)
        cpu = PolarityClassifier.load(device="cpu")
        drain(bus, cpu, picks[:2000], True, args.batch)  # warm-up
        rows["cpu, JSON entries (baseline)"] = drain(bus, cpu, picks[: args.n], False, args.batch)
        rows["cpu, binary entries"] = drain(bus, cpu, picks[: args.n], True, args.batch)
        if args.threads > 1:  # `worker polarity --threads N`: it sets torch's threads to 1
            rowed = PolarityClassifier.load(device="cpu", threads=args.threads)
            drain(bus, rowed, picks[:2000], True, args.batch)  # warm-up
            rows[f"cpu, binary, {args.threads} row threads"] = drain(
                bus, rowed, picks[: args.n], True, args.batch
            )
            torch.set_num_threads(args.threads)
        if torch.cuda.is_available():
            gpu = PolarityClassifier.load(device="cuda", precision="bfloat16")
            big = max(args.batch, 4096)
            drain(bus, gpu, picks[:8192], True, big)  # warm-up
            rows["cuda bf16, 1 worker"] = drain(bus, gpu, picks[: args.n_gpu], True, big)
            del gpu
            rows[f"cuda bf16, {args.gpu_workers} workers"] = drain_processes(
                bus, server.url, picks[: args.n_gpu], args.gpu_workers, args.batch, "cuda"
            )
        bus.close()
    base = rows["cpu, JSON entries (baseline)"]
    cpu_bin = rows["cpu, binary entries"]
    print(f"{'worker':<32} {'picks/s':>10} {'x baseline':>11} {'x cpu worker':>13}")
    for name, rate in rows.items():
        print(f"{name:<32} {rate:>10,.0f} {rate / base:>10.1f}x {rate / cpu_bin:>12.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
