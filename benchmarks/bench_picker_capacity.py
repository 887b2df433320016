"""Capacity of the learned picker: how many 3-component 100 Hz stations one CPU core (and one
GPU, when present) keeps up with in real time.

Run from the repository root::

    .venv/bin/python benchmarks/bench_picker_capacity.py [--cpu-stations 150] \\
        [--gpu-stations 3000] [--seconds 30] [--stride-s 2.0] [--latency-s 0]

Two measurements per device, in the same run:

* **network**: windows per second of PhaseNet alone (30 s x 3 components, batches of
  ``--batch``, normalisation and high-pass included: :meth:`stream.picker.PhaseNetModel.
  predict`); with one window per station every ``stride_s`` seconds of data, it keeps up with
  ``windows/s x stride_s`` stations;
* **stage**: :class:`stream.phase_stage.PhaseStage` fed ``--seconds`` of synthetic noise
  (3 s packets of every channel of every station per round, :meth:`~stream.phase_stage.
  PhaseStage.process_many`: buffers, resampling onto the grid, windows, batched forward
  passes, peak picking, pick assembly): stations x data seconds / wall seconds is the number
  of stations it keeps up with. The first 30 s of data only fill the buffers, so the
  figure counts the data after them.

* **latency** (``--latency-s``, 0 to skip): a scenario (``--latency-stations`` stations, 2
  events) replayed in real time by the replay SeedLink server, ``firstmotion stream``'s
  process (learned picker, ``*_*``) publishing to a real Redis; per P pick, its creation time
  minus the wall time at which the replay released the record holding the onset (p50/p95),
  and minus the wall time the replay clock passed the onset (record fill included).

The CPU figures are for one thread (``torch.set_num_threads(1)``); the GPU ones use one
device (the CPU thread feeding it is part of the stage figure). The CPU baseline is measured
in the same run; the ratio GPU/CPU is printed. The machine may be shared: rerun when quiet.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from stream.phase_stage import PhaseStage
from stream.picker import PhaseNetModel, PickerParams
from stream.stage import Packet, StageParams


def network_rate(model: PhaseNetModel, batch: int, seconds: float, highpass_hz: float) -> float:
    """Windows per second of :meth:`PhaseNetModel.predict` over ``seconds`` of wall time."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 3, 3000)).astype(np.float32)
    model.predict(x, batch, highpass_hz)  # warm-up
    if model.device.type == "cuda":
        torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        model.predict(x, batch, highpass_hz)
        n += batch
    return n / (time.perf_counter() - t0)


def stage_rate(model: PhaseNetModel, n_stations: int, data_s: float, stride_s: float) -> dict:
    """Stations kept up with by the stage fed ``data_s`` of noise for ``n_stations``."""
    rate, packet_s = 100.0, 3.0
    params = StageParams(picker_params=PickerParams(stride_s=stride_s, batch_size=1024))
    stage = PhaseStage(params, model=model)
    rng = np.random.default_rng(1)
    t0_ns = 1_700_000_000 * 10**9
    n_packet = int(packet_s * rate)
    noise = rng.standard_normal((8, 3, n_packet)) * 100.0
    warm_rounds = int(np.ceil(35.0 / packet_s))
    rounds = warm_rounds + int(np.ceil(data_s / packet_s))
    timed_s, timed_data_s = 0.0, 0.0
    for r in range(rounds):
        start = t0_ns + int(r * packet_s * 1e9)
        packets = [
            Packet("XX", f"S{i:05d}", "", f"HH{c}", start, rate, noise[(r + i) % 8, k])
            for i in range(n_stations)
            for k, c in enumerate("ENZ")
        ]
        t = time.perf_counter()
        stage.process_many(packets)
        if r >= warm_rounds:
            timed_s += time.perf_counter() - t
            timed_data_s += packet_s
    return {
        "stations": n_stations,
        "data_s": timed_data_s,
        "wall_s": timed_s,
        "windows": stage.windows_run,
        "realtime_stations": n_stations * timed_data_s / timed_s,
    }


def latency(
    duration_s: float, n_stations: int, streams: str = "*_*", picker: PickerParams | None = None
) -> dict:
    """P-pick latency at real-time replay (see the module docstring)."""
    import glob
    import io
    import tempfile
    import threading
    from pathlib import Path

    from obspy import read

    from firstmotion.bus import Bus
    from firstmotion.messages import decode
    from firstmotion.redis_server import RedisServer
    from stream.ingest import IngestParams, StreamProcess
    from stream.replay import ReplayServer, ReplayThread
    from stream.scenario import ScenarioConfig, make_scenario, write_scenario

    with tempfile.TemporaryDirectory() as tmp:
        cfg = ScenarioConfig(
            n_stations=n_stations, n_events=2, duration_s=duration_s, region_km=60.0, seed=5
        )
        write_scenario(make_scenario(cfg), tmp)
        files = sorted(glob.glob(f"{tmp}/mseed/*.mseed"))
        records: dict[str, list[tuple[float, float]]] = {}
        picker = picker or PickerParams()
        for path in files:
            raw = Path(path).read_bytes()
            for i in range(0, len(raw), 512):
                tr = read(io.BytesIO(raw[i : i + 512]))[0]
                end = tr.stats.endtime.timestamp + tr.stats.delta
                records.setdefault(tr.id, []).append((tr.stats.starttime.timestamp, end))
        server = RedisServer().start()
        try:
            replay = ReplayThread(ReplayServer(files, port=0))
            host, port = replay.start()
            proc = StreamProcess(
                IngestParams(f"{host}:{port}", streams=(streams,), selectors="???", netto_s=10,
                             netdly_s=1),
                StageParams(picker_params=picker), Bus.from_url(server.url), exit_when_idle_s=5.0,
            )  # fmt: skip
            thread = threading.Thread(target=proc.run, daemon=True)
            thread.start()
            thread.join(duration_s + 120)
            origin_wall_s = replay.server.started_ns / 1e9
            data_start_s = float(replay.server.plan.start_ns.min()) / 1e9
            replay.stop()
            picks = [decode(f) for _, f in Bus.from_url(server.url).client.xrange("fm:picks")]
        finally:
            server.stop()
    from_record, from_onset = [], []
    parts: dict[str, list[float]] = {"buffering": [], "grid": [], "processing": []}

    def released(channel: str, t: float) -> float | None:
        """Data time at which ``channel``'s record holding data time ``t`` ends (released)."""
        ends = [e for _, e in records.get(channel, []) if e >= t]
        return min(ends) if ends else None

    for p in picks:
        if p.phase != "P":
            continue
        ends = [e for s0, e in records.get(p.station_id, []) if s0 <= p.time_epoch_s < e]
        from_onset.append(p.created_epoch_s - (origin_wall_s + p.time_epoch_s - data_start_s))
        if not ends:
            continue
        from_record.append(p.created_epoch_s - (origin_wall_s + ends[0] - data_start_s))
        # the parts: the records that bring pick + tail on every component (buffering), the
        # records that bring the end of the first grid window holding it (grid), the rest
        base = p.station_id[:-1]
        chans = [c for c in records if c.startswith(base) and len(c) == len(p.station_id)]
        anchor = min(s0 for s0, _ in records[p.station_id])
        need = p.time_epoch_s + picker.tail_s
        step = picker.stride_s
        if picker.hot_stride_n and p.probability >= picker.hot_pick_p:
            step = picker.hot_stride_s  # a clear P: picked by a hot-stride window
        k = math.ceil((need - anchor - picker.window_s) / step + 1e-9)
        grid_end = anchor + k * step + picker.window_s
        have = [released(c, need) for c in chans]
        have_grid = [released(c, grid_end) for c in chans]
        if None in have or None in have_grid:
            continue
        t_rec, t_need, t_grid = ends[0], max(have), max(have_grid)
        t_made = p.created_epoch_s - origin_wall_s + data_start_s
        parts["buffering"].append(max(0.0, t_need - t_rec))
        parts["grid"].append(max(0.0, t_grid - max(t_need, t_rec)))
        parts["processing"].append(t_made - max(t_grid, t_rec))
    rec, ons = np.asarray(from_record), np.asarray(from_onset)
    durations = [e - s0 for recs in records.values() for s0, e in recs]
    out = {
        "p_picks": int(ons.size),
        "from_record_p50_s": float(np.median(rec)),
        "from_record_p95_s": float(np.percentile(rec, 95)),
        "from_onset_p50_s": float(np.median(ons)),
        "from_onset_p95_s": float(np.percentile(ons, 95)),
        "record_s_p50": float(np.median(durations)),
        **{f"{k}_p50_s": float(np.median(v)) for k, v in parts.items() if v},
        **{f"{k}_p95_s": float(np.percentile(v, 95)) for k, v in parts.items() if v},
        "samples_s": {"from_record": rec.tolist(), "from_onset": ons.tolist(), **parts},
    }
    print(f"latency ({streams}; stride {picker.stride_s:g} s, tail {picker.tail_s:g} s, "
          f"window after {picker.window_after_s:g} s): {ons.size} P picks, {n_stations} "
          f"stations, {duration_s:g} s real-time replay (records of "
          f"{out['record_s_p50']:.1f} s p50): "
          f"record holding the onset received -> pick in Redis p50 "
          f"{out['from_record_p50_s']:.2f} s, p95 {out['from_record_p95_s']:.2f} s; onset -> "
          f"pick p50 {out['from_onset_p50_s']:.2f} s, "
          f"p95 {out['from_onset_p95_s']:.2f} s")  # fmt: skip
    if parts["processing"]:
        print("  parts p50 / p95 (s): " + "; ".join(
            f"{k} {out[f'{k}_p50_s']:.2f} / {out[f'{k}_p95_s']:.2f}" for k in parts
        ) + "  (buffering: records bringing pick + tail on every component; grid: records "
            "bringing the end of the window that picks it, on the stride or, for a P of at "
            "least hot_pick_p, the hot stride; processing: the rest)")  # fmt: skip
    return out


def plot_latency(out: dict, path: str, title: str) -> None:
    """Cumulative distributions of the P-pick latencies and their parts (``latency``'s output)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    styles = {"from_record": ("record holding the onset -> pick in Redis", "k", "-"),
              "from_onset": ("onset -> pick in Redis", "0.5", "-"),
              "buffering": ("part: records bringing pick + tail", "tab:blue", "--"),
              "grid": ("part: window end on the grid", "tab:orange", "--"),
              "processing": ("part: processing", "tab:green", "--")}  # fmt: skip
    for key, (label, color, ls) in styles.items():
        v = np.sort(np.asarray(out["samples_s"].get(key, [])))
        if v.size:
            ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", color=color, ls=ls,
                    label=f"{label} (p95 {np.percentile(v, 95):.2f} s)")  # fmt: skip
    ax.axvline(3.0, color="tab:red", lw=0.8, ls=":", label="3 s")
    ax.set_xlabel("seconds")
    ax.set_ylabel("fraction of P picks")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"latency plot: {path}")


def run_device(device: str, n_stations: int, args) -> dict:
    model = PhaseNetModel.load(device=device)
    net = network_rate(model, args.batch, args.network_s, PickerParams().highpass_hz)
    if device == "cpu":  # the training-form module (batch norm apart, channels first)
        slow = PhaseNetModel.load(device=device, fast=False)
        base = network_rate(slow, args.batch, args.network_s, PickerParams().highpass_hz)
        print(f"cpu: network, training form {base:,.0f} windows/s, inference form "
              f"{net:,.0f} windows/s: {net / base:.2f} x")  # fmt: skip
    st = stage_rate(model, n_stations, args.seconds, args.stride_s)
    print(f"{device}: network {net:,.0f} windows/s -> {net * args.stride_s:,.0f} stations at a "
          f"{args.stride_s:g} s stride; stage: {st['stations']} stations x {st['data_s']:.0f} s "
          f"of data in {st['wall_s']:.1f} s ({st['windows']} windows): keeps up with "
          f"{st['realtime_stations']:,.0f} stations in real time")  # fmt: skip
    return {"network_windows_per_s": net, **st}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpu-stations", type=int, default=150)
    ap.add_argument("--gpu-stations", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=30.0, help="data seconds timed")
    ap.add_argument("--network-s", type=float, default=5.0, help="wall seconds per network test")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--stride-s", type=float, default=PickerParams.stride_s)
    ap.add_argument("--latency-s", type=float, default=0.0, help="real-time replay length")
    ap.add_argument("--latency-stations", type=int, default=10)
    ap.add_argument("--latency-streams", default="*_*", help="e.g. '*_*:??Z': vertical only")
    ap.add_argument("--tail-s", type=float, default=PickerParams.tail_s, help="latency run")
    ap.add_argument("--window-after-s", type=float, default=PickerParams.window_after_s)
    ap.add_argument("--plot", default="", help="latency run: cumulative distributions to PNG")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cpu = run_device("cpu", args.cpu_stations, args)
    if torch.cuda.is_available():
        args.batch = max(args.batch, 512)
        gpu = run_device("cuda", args.gpu_stations, args)
        net = gpu["network_windows_per_s"] / cpu["network_windows_per_s"]
        stage = gpu["realtime_stations"] / cpu["realtime_stations"]
        print(f"cuda / cpu: network {net:.1f} x, stage {stage:.1f} x")
    else:
        print("cuda: not available (CPU only)")
    if args.latency_s > 0:
        picker = PickerParams(
            stride_s=args.stride_s, tail_s=args.tail_s, window_after_s=args.window_after_s
        )
        out = latency(args.latency_s, args.latency_stations, args.latency_streams, picker)
        if args.plot:
            plot_latency(out, args.plot, f"P-pick latency: {out['p_picks']} picks, "
                         f"{args.latency_stations} stations replayed in real time, records of "
                         f"{out['record_s_p50']:.1f} s (p50)")  # fmt: skip


if __name__ == "__main__":
    main()
