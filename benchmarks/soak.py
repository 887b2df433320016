"""Hours of data through every stage: does any process's memory (or Redis's) grow with time?

Run from the repository root::

    .venv/bin/python benchmarks/soak.py [--n-stations 30] [--n-events 120] \\
        [--duration-s 7200] [--speed 20] [--plot docs/figures/soak.png] [--json F]

A synthetic scenario (:mod:`stream.scenario`, events spread over ``--duration-s`` of data) is
served by the replay SeedLink server at ``--speed`` times real time, and ``firstmotion
stream`` (learned picker), ``worker polarity``, ``worker associate``, ``worker mechanism`` and
``worker catalog`` run as in ``firstmotion demo``, each its own process on a real Redis.
Every ``--sample-s`` of wall time the resident memory of each process (``VmRSS``) and of
redis-server, Redis's ``used_memory`` and its key count are sampled against the data time the
replay has reached. Reported per process: memory after the first tenth of the data (warm-up:
models loaded, buffers full), at half and at the end, and the least-squares slope over the
second half in MB per hour of data. A process whose memory keeps a slope holds something per
pick, event or packet that it never lets go; a flat line is what a process that runs for
months needs. The events found and mechanisms published are printed too, so a run that
starved a stage (and so grew nothing) shows.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

STAGE_NAMES = ("stream", "polarity", "associate", "mechanism", "catalog")


def rss_mb(pid: int) -> float:
    """Resident memory of a process (MB), NaN once it has gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def growth(data_s: np.ndarray, mb: np.ndarray) -> dict:
    """Memory at a tenth, half and the end of the data, and the slope (MB per data hour) of a
    least-squares line over the second half."""
    ok = np.isfinite(mb)
    t, m = data_s[ok], mb[ok]
    if t.size < 4:
        return {}
    end = float(t.max())

    def at(frac: float) -> float:
        return float(m[np.argmin(np.abs(t - frac * end))])

    late = t >= 0.5 * end
    slope = float(np.polyfit(t[late] / 3600.0, m[late], 1)[0]) if late.sum() >= 3 else np.nan
    return {"mb_at_10pct": at(0.1), "mb_at_50pct": at(0.5), "mb_at_end": at(1.0),
            "slope_mb_per_data_hour": slope}  # fmt: skip


def plot(path: str, series: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    for name, (t, mb) in series.items():
        ax.plot(t / 3600.0, mb, label=name, lw=1.2)
    ax.set_xlabel("data time replayed (h)")
    ax.set_ylabel("resident memory (MB)")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"figure: {path}")


def main(argv: list[str] | None = None) -> None:
    import redis
    from pipeline_processes import (
        add_scenario_arguments,
        start_stages,
        warn_tracebacks,
        write_scenario_files,
    )

    from firstmotion.bus import Bus
    from firstmotion.demo import _wait_quiet
    from firstmotion.redis_server import RedisServer
    from stream.replay import ReplayServer, ReplayThread

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_scenario_arguments(ap, n_events=120, duration_s=7200.0, speed=20.0, seed=3)
    ap.add_argument("--sample-s", type=float, default=2.0, help="wall seconds between samples")
    ap.add_argument("--plot", help="memory against data time (PNG)")
    ap.add_argument("--json", help="the samples and the summary as JSON")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        out = Path(tmp)
        t0 = time.monotonic()
        files = write_scenario_files(args, out)
        print(f"scenario: {args.n_stations} stations, {args.n_events} events, "
              f"{args.duration_s:g} s ({time.monotonic() - t0:.0f} s to make)")  # fmt: skip
        server = stack.enter_context(RedisServer())
        bus = Bus.from_url(server.url)
        client = redis.Redis.from_url(server.url)
        inventory = str(out / "stations.xml")
        conf = ["--config", args.config] if args.config else []
        replay = ReplayThread(ReplayServer(files, port=0, speed=args.speed))
        procs = start_stages(stack, server.url, inventory, out, replay, conf, exit_when_idle_s=10)
        redis_pid = int(client.info("server")["process_id"])
        samples: list[dict] = []
        start = time.monotonic()
        limit = args.duration_s / args.speed + 600.0
        last_print = 0.0
        while procs["stream"].poll() is None and time.monotonic() - start < limit:
            wall = time.monotonic() - start
            mem = client.info("memory")
            row = {"data_s": min(wall * args.speed, args.duration_s),
                   "redis_used_mb": mem["used_memory"] / 2**20, "redis_keys": client.dbsize(),
                   "redis-server": rss_mb(redis_pid)}  # fmt: skip
            row.update({name: rss_mb(p.pid) for name, p in procs.items()})
            samples.append(row)
            if wall - last_print >= 60.0:
                last_print = wall
                print(f"  data {row['data_s'] / 3600:.2f} h: "
                      + ", ".join(f"{n} {row[n]:.0f} MB" for n in (*STAGE_NAMES, "redis-server")),
                      flush=True)  # fmt: skip
            time.sleep(args.sample_s)
        _wait_quiet(bus, {k: v for k, v in procs.items() if k != "stream"}, 4.0, 300.0)
        replay.stop()
        origins = {o.event_id for _, o in bus.messages("origins")}
        mechanisms = [m for _, m in bus.messages("mechanisms")]
        n_picks = bus.length("picks")
        families: dict[str, list[int]] = {}  # key family -> [keys, with a TTL, bytes]
        for key in client.scan_iter(count=1000):
            parts = key.decode(errors="replace").split(":")
            fam = ":".join(parts[:2]) + (":*" if len(parts) > 2 else "")
            n = families.setdefault(fam, [0, 0, 0])
            n[0] += 1
            n[1] += int(client.ttl(key) >= 0)
            n[2] += int(client.memory_usage(key, samples=0) or 0)
            if client.type(key) == b"stream":
                n.append(int(client.xlen(key)))  # its entries
        warn_tracebacks(out, STAGE_NAMES)

    data_s = np.array([s["data_s"] for s in samples])
    names = (*STAGE_NAMES, "redis-server", "redis_used_mb")
    summary = {n: growth(data_s, np.array([s[n] for s in samples], dtype=float)) for n in names}
    print(f"\n{args.duration_s / 3600:g} h of data at {args.speed:g}x, {args.n_stations} "
          f"stations: {n_picks} picks, {len(origins)} events located (of {args.n_events}), "
          f"{len({m.event_id for m in mechanisms})} with a mechanism, {len(samples)} samples; "
          f"Redis keys at the end {samples[-1]['redis_keys'] if samples else 0}")  # fmt: skip
    print("  Redis by key family: keys (with a TTL), MB, bytes per pick[, a stream's entries "
          "and bytes per entry]")  # fmt: skip
    for k, (n, t, b, *entries) in sorted(families.items(), key=lambda kv: -kv[1][2]):
        line = f"    {k:<18} {n:>7} ({t:>7}) {b / 2**20:>8.2f} MB {b / max(n_picks, 1):>8.0f}"
        if entries:
            line += f" {entries[0]:>9} {b / max(entries[0], 1):>8.0f}"
        print(line)
    print(f"  {'process':<16} {'MB at 10%':>10} {'at 50%':>8} {'at end':>8} {'MB / data hour':>15}")
    for n in names:
        g = summary[n]
        if g:
            print(f"  {n:<16} {g['mb_at_10pct']:>10.1f} {g['mb_at_50pct']:>8.1f} "
                  f"{g['mb_at_end']:>8.1f} {g['slope_mb_per_data_hour']:>+15.2f}")  # fmt: skip
    if args.plot:
        series = {n: (data_s, np.array([s[n] for s in samples], dtype=float))
                  for n in (*STAGE_NAMES, "redis-server")}  # fmt: skip
        plot(args.plot, series, f"{args.duration_s / 3600:g} h of a {args.n_stations}-station "
             f"scenario ({args.n_events} events) at {args.speed:g}x: resident memory")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "summary": summary,
                                               "redis_key_families": families,
                                               "samples": samples}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
