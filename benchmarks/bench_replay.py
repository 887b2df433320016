"""Replay server throughput: SeedLink packets per second to loopback clients.

Run from the repository root::

    .venv/bin/python benchmarks/bench_replay.py [--clients 4] [--repeats 3]

Data: the nine one-hour 100 Hz FLOAT64 channels of ../shared/data/pr2017_noise (56,844 records;
falls back to synthetic Steim2 data when absent). Timed in the same run:

* ``baseline``: a bare asyncio server writing the same pre-framed packets (``SL`` + sequence +
  record) to one raw-socket client: the loopback ceiling;
* ``replay 1 client``: :class:`stream.replay.ReplayServer` (as fast as possible) serving a
  raw-socket client that sends STATION/SELECT/FETCH/END and reads until ``END``;
* ``replay K clients``: K such clients at once (aggregate packets/s);
* ``obspy SLClient``: one obspy ``SLClient`` consuming and decoding every packet (what the
  ingest stage pays per packet) — a client-side figure;
* ``pacing``: at ``--speed`` (default 60), how late each packet reaches a raw DATA client
  after its scheduled release (end of record on the replay clock), against the baseline of
  the record-fill time itself (record duration / speed), the latency a real digitizer adds.

Printed: packets/s, the ratio to the baseline, and the real-time factor (how many times faster
than real time the whole recording is delivered). Medians of ``--repeats`` runs. The machine may
be shared: rerun when quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import statistics
import threading
import time
from pathlib import Path

import numpy as np

from stream import seedlink_protocol as slp
from stream.replay import ReplayPlan, ReplayServer, ReplayThread
from stream.replay_records import RecordTable, load_table

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "pr2017_noise"


def _records():
    if DATA.exists():
        return load_table([DATA]), "pr2017_noise (9 ch x 1 h, FLOAT64)"
    from obspy import Stream, Trace, UTCDateTime

    rng = np.random.default_rng(0)
    st = Stream()
    for k in range(9):
        tr = Trace(np.cumsum(rng.integers(-500, 500, 360000)).astype(np.int32))
        tr.stats.update(dict(network="XX", station=f"S{k}", channel="HHZ", sampling_rate=100))
        tr.stats.starttime = UTCDateTime(2020, 1, 1)
        st += tr
    buf = io.BytesIO()
    st.write(buf, format="MSEED", reclen=512, encoding="STEIM2")
    return RecordTable.from_bytes(buf.getvalue()), "synthetic (9 ch x 1 h, STEIM2)"


def _read_exactly(sock: socket.socket, n: int) -> None:
    got = 0
    while got < n:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed early")
        got += len(chunk)


def _fetch_all(host: str, port: int, n: int) -> None:
    sock = socket.create_connection((host, port), timeout=30)
    buf = b""
    for line in (b"STATION * *", b"SELECT ???", b"FETCH"):
        sock.sendall(line + b"\r")
        while b"\r\n" not in buf:
            buf += sock.recv(4096)
        reply, buf = buf.split(b"\r\n", 1)
        assert reply == b"OK", reply
    sock.sendall(b"END\r")
    _read_exactly(sock, n * 520 + 3 - len(buf))
    sock.close()


def time_baseline(plan: ReplayPlan) -> float:
    blob = b"".join(slp.data_packet(i + 1, plan.record_at(i)[0]) for i in range(len(plan)))
    ready = threading.Event()
    box: dict[str, object] = {}

    async def serve():
        async def handle(reader, writer):
            writer.write(blob)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        box["port"] = server.sockets[0].getsockname()[1]
        box["loop"] = asyncio.get_running_loop()
        box["stop"] = asyncio.Event()
        ready.set()
        await box["stop"].wait()
        server.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    ready.wait()
    t = time.perf_counter()
    sock = socket.create_connection(("127.0.0.1", box["port"]))
    _read_exactly(sock, len(blob))
    elapsed = time.perf_counter() - t
    sock.close()
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join()
    return elapsed


def time_replay(plan_records, n: int, clients: int) -> float:
    runner = ReplayThread(ReplayServer(plan_records, port=0, speed=None))
    host, port = runner.start()
    try:
        threads = [
            threading.Thread(target=_fetch_all, args=(host, port, n)) for _ in range(clients)
        ]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return time.perf_counter() - t
    finally:
        runner.stop()


def time_obspy(plan_records, n: int) -> float:
    from obspy.clients.seedlink.slclient import SLClient
    from obspy.clients.seedlink.slpacket import SLPacket

    runner = ReplayThread(ReplayServer(plan_records, port=0, speed=None))
    host, port = runner.start()
    try:
        client = SLClient(timeout=10)
        client.slconn.set_sl_address(f"{host}:{port}")
        client.slconn.netto, client.slconn.netdly = 10, 1
        client.slconn.dialup = True
        stations = sorted({(net, sta) for net, sta, _, _ in plan_records.streams})
        client.multiselect = ",".join(f"{net}_{sta}:???" for net, sta in stations)
        client.initialize()
        count = [0]

        def handler(_, packet):
            if isinstance(packet, SLPacket) and packet.get_type() not in (-101, -102):
                packet.get_trace()
                count[0] += 1
            return False

        t = time.perf_counter()
        client.run(packet_handler=handler)
        elapsed = time.perf_counter() - t
        assert count[0] == n, (count[0], n)
        return elapsed
    finally:
        runner.stop()


def time_pacing(records, speed: float, wall_s: float) -> tuple[np.ndarray, float]:
    """Lateness (s) of each packet after its scheduled release, and the median fill time."""
    server = ReplayServer(records, port=0, speed=speed)
    plan = server.plan
    runner = ReplayThread(server)
    host, port = runner.start()
    late = []
    try:
        sock = socket.create_connection((host, port), timeout=10)
        buf = b""
        for line in (b"STATION * *", b"SELECT ???", b"DATA"):
            sock.sendall(line + b"\r")
            while b"\r\n" not in buf:
                buf += sock.recv(4096)
            _, buf = buf.split(b"\r\n", 1)
        sock.sendall(b"END\r")
        t_end = time.monotonic() + wall_s
        while time.monotonic() < t_end:
            chunk = sock.recv(1 << 16)
            now = time.monotonic()
            buf += chunk
            while len(buf) >= 520:
                seq = int(buf[2:8], 16)
                buf = buf[520:]
                due = (
                    server.clock_origin_s
                    + (plan.release_clock_s(seq - 1) - plan.clock_start_s) / speed
                )
                late.append(now - due)
        sock.close()
    finally:
        runner.stop()
    fill_s = float(np.median(plan.end_ns - plan.start_ns)) / 1e9 / speed
    return np.array(late), fill_s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--pacing-seconds", type=float, default=5.0)
    args = ap.parse_args()
    records, label = _records()
    plan = ReplayPlan.build(records)
    n = len(plan)
    data_s = (int(plan.end_ns.max()) - int(plan.start_ns.min())) / 1e9
    print(f"data: {label}: {n} records, {data_s:.0f} s of data")

    def report(name: str, seconds: list[float], packets: int, base: float | None) -> float:
        med = statistics.median(seconds)
        rate = packets / med
        ratio = "" if base is None else f"  x{rate / base:.2f} of baseline"
        rt = data_s * packets / n / med
        print(f"{name:<22} {rate:>11,.0f} packets/s  real-time x{rt:,.0f}{ratio}")
        return rate

    base = report(
        "baseline (bare asyncio)", [time_baseline(plan) for _ in range(args.repeats)], n, None
    )
    report("replay 1 client", [time_replay(records, n, 1) for _ in range(args.repeats)], n, base)
    k = args.clients
    report(
        f"replay {k} clients",
        [time_replay(records, n, k) for _ in range(args.repeats)],
        k * n,
        base,
    )
    report("obspy SLClient (decode)", [time_obspy(records, n) for _ in range(1)], n, base)
    late, fill_s = time_pacing(records, args.speed, args.pacing_seconds)
    p50, p99 = np.percentile(late, [50, 99])
    print(
        f"pacing at {args.speed:g}x: {late.size} packets, late by median {p50 * 1e3:.1f} ms, "
        f"p99 {p99 * 1e3:.1f} ms; record fill {fill_s * 1e3:.1f} ms "
        f"(lateness/fill: median x{p50 / fill_s:.3f}, p99 x{p99 / fill_s:.3f})"
    )


if __name__ == "__main__":
    main()
