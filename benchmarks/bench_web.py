"""The live page's answer time with 0 and with N Server-Sent-Events clients listening.

Starts a private Redis and ``firstmotion worker catalog`` (the page is served by it, as
deployed), fills the catalog with ``--events`` events with mechanisms, then times GET /,
/api/events and /api/health (``--requests`` each, sequential, loopback) first with no event
streams open (the baseline, same run), then with ``--clients`` streams open; and the time the
catalog takes to process ``--events`` more origins in both cases. Prints the medians, the
95th percentiles and the ratios loaded / baseline, and the Redis connections in use.

    python benchmarks/bench_web.py --clients 200
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from test_catalog import T0, make_mechanism, make_origin  # noqa: E402

from firstmotion.bus import Bus  # noqa: E402
from firstmotion.redis_server import RedisServer, free_port  # noqa: E402

PATHS = ("/", "/api/events", "/api/health")


def open_stream(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    got = b""
    while b": connected" not in got:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"stream refused: {got[:80]!r}")
        got += chunk
    return sock


def time_requests(port: int, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {p: [] for p in PATHS}
    for _ in range(n):
        for path in PATHS:
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
                r.read()
            out[path].append(time.perf_counter() - t0)
    return out


def process_time(bus: Bus, client, first: int, n: int) -> float:
    """Seconds until the catalog holds ``n`` new origins published now."""
    target = int(client.zcard("fm:catalog")) + n
    t0 = time.perf_counter()
    for i in range(n):
        bus.publish("origins", make_origin(f"b{first + i}", t=T0 + first + i))
    while int(client.zcard("fm:catalog")) < target:
        time.sleep(0.005)
    return time.perf_counter() - t0


def p95(values: list[float]) -> float:
    return sorted(values)[int(0.95 * (len(values) - 1))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--events", type=int, default=100)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()

    with RedisServer() as server:
        bus = Bus.from_url(server.url)
        client = bus.client
        for i in range(args.events):
            o = make_origin(f"e{i}", t=T0 + i, lat=35.0 + 0.01 * i)
            bus.publish("origins", o)
            bus.publish("mechanisms", make_mechanism(f"e{i}", quality="B", origin=o))
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "firstmotion.cli", "worker", "catalog", "--redis", server.url,
             "--web-port", str(port), "--metrics-port", str(free_port())],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        socks: list[socket.socket] = []
        try:
            while int(client.zcard("fm:catalog")) < args.events:
                time.sleep(0.1)
            time_requests(port, 2)  # warm-up
            base = time_requests(port, args.requests)
            base_proc = process_time(bus, client, 10_000, args.events)
            for _ in range(args.clients):
                socks.append(open_stream(port))
            conns = len(client.client_list())
            loaded = time_requests(port, args.requests)
            loaded_proc = process_time(bus, client, 20_000, args.events)
        finally:
            for s in socks:
                s.close()
            proc.terminate()
            proc.wait(20)
            bus.close()
    result = {
        "clients": args.clients,
        "events": args.events,
        "redis_connections": conns,
        "catalog_process_s": {"baseline": base_proc, "loaded": loaded_proc},
        "paths": {},
    }
    print(f"catalog with {args.events} events; {args.requests} requests per path, loopback")
    print(f"{'path':<14} {'median 0 / N ms':>18} {'p95 0 / N ms':>16} {'ratio':>6}")
    for path in PATHS:
        b, lo = statistics.median(base[path]), statistics.median(loaded[path])
        result["paths"][path] = {
            "baseline_median_s": b,
            "loaded_median_s": lo,
            "baseline_p95_s": p95(base[path]),
            "loaded_p95_s": p95(loaded[path]),
        }
        print(
            f"{path:<14} {1e3 * b:8.1f} / {1e3 * lo:7.1f} "
            f"{1e3 * p95(base[path]):7.1f} / {1e3 * p95(loaded[path]):6.1f} {lo / b:6.2f}"
        )
    print(f"{args.clients} streams open; Redis connections in use (all clients): {conns}")
    print(
        f"catalog: {args.events} origins processed in {base_proc:.2f} s without streams, "
        f"{loaded_proc:.2f} s with {args.clients} (ratio {loaded_proc / base_proc:.2f})"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
