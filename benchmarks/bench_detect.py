"""The P detector: pick-time accuracy, false picks on real noise, throughput.

Run from the repository root::

    .venv/bin/python benchmarks/bench_detect.py [--stations 30] [--events 8] [--repeats 3] \\
        [--latency-s 60] [--plot detect.png]

Measured in the same run:

* **accuracy** on a synthetic scenario (``--stations`` x ``--events``, 600 s, 60 km region,
  100 Hz broadband; :mod:`stream.scenario`): every vertical channel's miniSEED records fed in
  release order through :class:`stream.stage.StreamStage` (buffers, streaming detector, pick
  windows, as ``firstmotion stream`` runs them); for each true P arrival in the data, the
  nearest pick on its channel: recall within 0.1 s and the median / p90 absolute error, for
  arrivals with first-motion SNR >= 10 and for all;
* **real data**: the manual P picks of the two TexNet events in ../shared/data/texnet2017
  (25 vertical channels with a P pick; 40 and 200 Hz): how many the detector picks within
  0.5 s and 0.1 s of the analyst (skipped if absent);
* **false picks** on the real Puerto Rico noise hour (../shared/data/pr2017_noise, EHZ of 3
  stations): picks per station-hour (the hour holds a few real small events as well);
* **throughput** in samples per second on the same noise hour, one channel at a time:
  ``baseline`` = obspy's ``classic_sta_lta`` (C) + ``trigger_onset`` on a band-passed copy,
  one pass, no refinement; ``obspy_recursive`` = obspy's ``recursive_sta_lta`` (C) +
  ``trigger_onset``, one pass; ``detector_one_pass`` = :func:`stream.detect.detect_once`
  (causal band-pass, recursive STA/LTA with frozen LTA, AIC refinement, SNR);
  ``detector_packets`` = :class:`stream.detect.ChannelDetector` fed 3 s packets (the real-time
  path); ``stage_packets`` = :class:`stream.stage.StreamStage` on the same packets (buffers and
  pick windows too). Ratios are against ``baseline``; medians of ``--repeats``;
* **latency** (``--latency-s``, 0 to skip): a ``--latency-s`` scenario (10 stations, 2
  events) replayed in real time by the replay SeedLink server, ``firstmotion stream``'s
  process reading it and publishing to a real Redis; per pick, publish wall time minus the
  wall time at which the replay clock passed the pick's data time (record fill, detector
  look-ahead, the pick window's ``window_after_s`` and processing). Baseline: the pick
  window's ``window_after_s`` itself, the floor of any design that ships the window.

The machine may be shared with other jobs: rerun when quiet.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from obspy import UTCDateTime, read
from obspy.signal.trigger import classic_sta_lta, recursive_sta_lta, trigger_onset

from stream.detect import (
    ChannelDetector,
    DetectParams,
    bandpass_causal,
    design_bandpass,
    detect_once,
    nearest_onsets,
)
from stream.stage import Packet, StreamStage

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _packets(paths: list[str]) -> list[Packet]:
    out = []
    for path in paths:
        raw = Path(path).read_bytes()
        for i in range(0, len(raw), 512):
            out.append(Packet.from_trace(read(io.BytesIO(raw[i : i + 512]))[0]))
    out.sort(key=lambda p: (p.end_ns, p.seed_id))
    return out


def accuracy(n_stations: int, n_events: int) -> tuple[np.ndarray, np.ndarray]:
    from stream.scenario import ScenarioConfig, make_scenario, write_scenario

    with tempfile.TemporaryDirectory() as tmp:
        cfg = ScenarioConfig(
            n_stations=n_stations, n_events=n_events, duration_s=600.0, region_km=60.0, seed=7
        )
        write_scenario(make_scenario(cfg), tmp)
        truth = json.loads(Path(tmp, "truth.json").read_text())
        stage = StreamStage()
        picks = []
        for packet in _packets(sorted(glob.glob(f"{tmp}/mseed/*Z.*.mseed"))):
            picks += stage.process(packet)[1]
    by_channel: dict[str, np.ndarray] = {}
    for p in picks:
        by_channel.setdefault(p.station_id, []).append(p.time_epoch_s)  # type: ignore[attr-defined]
    by_channel = {k: np.asarray(v) for k, v in by_channel.items()}
    rows = []
    for event in truth["events"]:
        for s in event["stations"]:
            if not s["p_in_data"]:
                continue
            times = by_channel.get(s["station_id"], np.zeros(0))
            tp = UTCDateTime(s["p_time"]).timestamp
            err = float(times[np.argmin(np.abs(times - tp))] - tp) if times.size else np.inf
            rows.append((s["snr"], err))
    snr = np.array([r[0] for r in rows])
    err = np.array([r[1] for r in rows])
    print(f"accuracy: scenario {n_stations} stations x {n_events} events, 600 s: "
          f"{len(picks)} picks, {len(rows)} true P arrivals in the data")  # fmt: skip
    for label, mask in (("snr >= 10", snr >= 10), ("snr >= 3", snr >= 3), ("all", snr >= 0)):
        e = err[mask]
        hit = np.abs(e) <= 0.1
        near = np.abs(e[hit])
        print(
            f"  {label:>9}: n={mask.sum():4d}  picked within 0.1 s: {hit.mean():6.1%}  "
            f"median |err| {np.median(near):.4f} s  p90 {np.percentile(near, 90):.4f} s  "
            f"median signed {np.median(e[hit]):+.4f} s"
        )
    return snr, err


def texnet() -> None:
    base = SHARED / "texnet2017"
    if not base.is_dir():
        print(f"texnet: skipped ({base} not found)")
        return
    from obspy import read_events

    errors, total = [], 0
    for name in ("texnet2017cvmt", "texnet2017dfac"):
        st = read(str(base / f"{name}.mseed"))
        event = read_events(str(base / f"{name}.qml"))[0]
        for pick in event.picks:
            if pick.phase_hint not in ("P", "Pg", "Pn"):
                continue
            w = pick.waveform_id
            traces = [t for t in st.select(network=w.network_code, station=w.station_code)
                      if t.stats.channel.endswith("Z")]  # fmt: skip
            if not traces:
                continue
            tr, total = traces[0], total + 1
            rate = tr.stats.sampling_rate
            dets = detect_once(tr.data.astype(float), rate, DetectParams())
            tp = (pick.time - tr.stats.starttime) * rate
            if dets:
                errors.append((nearest_onsets(dets, [tp])[0] - tp) / rate)
    e = np.abs(np.asarray(errors))
    print(f"texnet: {total} manual P picks on Z channels: picked within 0.5 s: "
          f"{np.sum(e <= 0.5)}, within 0.1 s: {np.sum(e <= 0.1)}; median |err| of those within "
          f"0.5 s: {np.median(e[e <= 0.5]):.3f} s")  # fmt: skip


def onsets_read_by_us() -> None:
    """Detector onsets against the clear onsets we read: firstmotion/data/pr2017_onsets.json
    (Puerto Rico hour) and uh2010_onsets.json (Unterhaching, obspy's test waveforms; the
    records longer than a minute: UH1's 10 s snippets are shorter than the LTA warm-up)."""
    from workers.polarity.evaluate import load_pr2017_onsets, load_uh2010_onsets

    for name, onsets in (("pr2017", load_pr2017_onsets(SHARED)),
                         ("uh2010", load_uh2010_onsets())):  # fmt: skip
        onsets = [o for o in onsets if len(o["data"]) / o["sampling_rate_hz"] > 60]
        if not onsets:
            print(f"{name} onsets: skipped (waveforms not found)")
            continue
        found_on: dict[str, list] = {}  # one detector pass per trace
        errors = []
        for o in onsets:
            rate = o["sampling_rate_hz"]
            if o["station_id"] not in found_on:
                found_on[o["station_id"]] = detect_once(o["data"], rate, DetectParams())
            nearest = nearest_onsets(found_on[o["station_id"]], [o["pick_index"]])[0]
            errors.append((nearest - o["pick_index"]) / rate)
        e = np.asarray(errors)
        near = e[np.abs(e) <= 0.1]
        print(f"{name}: {e.size} clear onsets read by us: picked within 0.1 s: {near.size}; "
              f"detector minus our onset: median {np.median(near):+.3f} s, "
              f"range {near.min():+.3f} .. {near.max():+.3f} s")  # fmt: skip


def noise_and_throughput(repeats: int) -> None:
    base = SHARED / "pr2017_noise"
    if not base.is_dir():
        print(f"noise/throughput: skipped ({base} not found)")
        return
    traces = [read(p)[0] for p in sorted(glob.glob(str(base / "*EHZ*")))]
    params = DetectParams()
    rate = traces[0].stats.sampling_rate
    n_total = sum(t.stats.npts for t in traces)

    def packets_of(tr):
        step = int(3 * rate)
        return [
            Packet(*tr.id.split("."), tr.stats.starttime.ns + round(i * 1e9 / rate), rate,
                   tr.data[i : i + step])
            for i in range(0, tr.stats.npts, step)
        ]  # fmt: skip

    all_packets = [packets_of(t) for t in traces]
    n_picks = {}

    def baseline():
        sos = design_bandpass(params.freqmin_hz, params.freqmax_hz, rate)
        for tr in traces:
            y, _ = bandpass_causal(tr.data.astype(float), sos)
            cft = classic_sta_lta(y, int(params.sta_s * rate), int(params.lta_s * rate))
            trigger_onset(cft, params.trigger_on, params.trigger_off)

    def obspy_recursive():
        sos = design_bandpass(params.freqmin_hz, params.freqmax_hz, rate)
        for tr in traces:
            y, _ = bandpass_causal(tr.data.astype(float), sos)
            cft = recursive_sta_lta(y, int(params.sta_s * rate), int(params.lta_s * rate))
            trigger_onset(cft, params.trigger_on, params.trigger_off)

    def one_pass():
        n_picks["one_pass"] = sum(len(detect_once(t.data.astype(float), rate)) for t in traces)

    def detector_packets():
        n = 0
        for packets in all_packets:
            det = ChannelDetector(params, rate)
            for p in packets:
                n += len(det.feed(p.samples))
        n_picks["detector_packets"] = n

    def stage_packets():
        stage = StreamStage()
        n_picks["stage_packets"] = sum(
            len(stage.process(p)[1]) for packets in all_packets for p in packets
        )

    timings = {}
    for name, fn in (("baseline", baseline), ("obspy_recursive", obspy_recursive),
                     ("detector_one_pass", one_pass), ("detector_packets", detector_packets),
                     ("stage_packets", stage_packets)):  # fmt: skip
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        timings[name] = statistics.median(times)
    hours = n_total / rate / 3600
    print(f"false picks: PR noise, {len(traces)} EHZ channels, {hours:.2f} station-hours: "
          f"{n_picks['stage_packets']} picks = {n_picks['stage_packets'] / hours:.1f} per "
          f"station-hour (one pass: {n_picks['one_pass']}, packets: "
          f"{n_picks['detector_packets']})")  # fmt: skip
    print(f"throughput ({n_total:,} samples, median of {repeats}):")
    for name, t in timings.items():
        print(f"  {name:>18}: {n_total / t / 1e6:7.2f} M samples/s  "
              f"({timings['baseline'] / t:5.2f} x baseline; "
              f"{n_total / rate / t:,.0f} channels of this rate in real time)")  # fmt: skip


def latency(duration_s: float) -> np.ndarray:
    import threading

    from firstmotion.bus import Bus
    from firstmotion.messages import decode
    from firstmotion.redis_server import RedisServer
    from stream.ingest import IngestParams, StreamProcess
    from stream.replay import ReplayServer, ReplayThread
    from stream.scenario import ScenarioConfig, make_scenario, write_scenario
    from stream.stage import StageParams

    with tempfile.TemporaryDirectory() as tmp:
        cfg = ScenarioConfig(
            n_stations=10, n_events=2, duration_s=duration_s, region_km=60.0, seed=5
        )
        write_scenario(make_scenario(cfg), tmp)
        server = RedisServer().start()
        try:
            replay = ReplayThread(ReplayServer(sorted(glob.glob(f"{tmp}/mseed/*.mseed")), port=0))
            host, port = replay.start()
            params = StageParams()
            proc = StreamProcess(
                IngestParams(f"{host}:{port}", streams=("*_*:??Z",), netto_s=10, netdly_s=1),
                params, Bus.from_url(server.url), exit_when_idle_s=5.0,
            )  # fmt: skip
            thread = threading.Thread(target=proc.run, daemon=True)
            thread.start()
            thread.join(duration_s + 60)
            origin_wall_s = replay.server.started_ns / 1e9
            data_start_s = float(replay.server.plan.start_ns.min()) / 1e9
            replay.stop()
            client = Bus.from_url(server.url).client
            picks = [decode(f) for _, f in client.xrange("fm:picks")]
        finally:
            server.stop()
    lat = np.array([p.created_epoch_s - (origin_wall_s + p.time_epoch_s - data_start_s)
                    for p in picks])  # fmt: skip
    floor = params.window_after_s
    print(
        f"latency: {len(picks)} picks from a {duration_s:g} s real-time replay: median "
        f"{np.median(lat):.2f} s, p90 {np.percentile(lat, 90):.2f} s, max {lat.max():.2f} s "
        f"(window_after_s floor {floor:g} s: median {np.median(lat) / floor:.2f} x floor)"
    )
    return lat


def plot(path: str, snr: np.ndarray, err: np.ndarray, lat: np.ndarray | None) -> None:
    """Pick-time errors (SNR >= 10 and all within 0.1 s) and pick latency histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2 if lat is not None else 1, figsize=(11, 4), squeeze=False)
    ax = axes[0, 0]
    bins = np.linspace(-0.1, 0.1, 41)
    near = np.abs(err) <= 0.1
    ax.hist(err[near] * 1e3, bins=bins * 1e3, color="0.7", label=f"all ({near.sum()})")
    strong = near & (snr >= 10)
    ax.hist(err[strong] * 1e3, bins=bins * 1e3, color="C0", label=f"SNR >= 10 ({strong.sum()})")
    ax.set_xlabel("pick time - true P onset (ms)")
    ax.set_ylabel("picks")
    ax.set_title("stream detector: pick-time error (synthetic scenario)")
    ax.legend()
    if lat is not None:
        ax = axes[0, 1]
        ax.hist(lat, bins=np.arange(0, max(10.0, float(lat.max()) + 0.5), 0.25), color="C1")
        ax.set_xlabel("publish time - P time (s), real-time replay")
        ax.set_ylabel("picks")
        ax.set_title(f"pick latency (median {np.median(lat):.2f} s)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"figure: {path}")


def save_pick_errors(
    path: str, snr: np.ndarray, err: np.ndarray, n_stations: int, n_events: int
) -> None:
    """The detector's signed errors (pick - true P, s) within 0.1 s, with each arrival's SNR."""
    hit = np.abs(err) <= 0.1
    order = np.argsort(err[hit])
    doc = {
        "description": "signed P pick errors (pick minus true P time, seconds) of firstmotion's "
        "stream stage (STA/LTA + AIC) on a synthetic scenario, arrivals picked within 0.1 s",
        "command": "python benchmarks/bench_detect.py --stations "
        f"{n_stations} --events {n_events} --save-pick-errors {path}",
        "n_arrivals": int(err.size),
        "n_within_0.1_s": int(hit.sum()),
        "signed_errors_s": [round(float(v), 5) for v in err[hit][order]],
        "snr": [round(float(v), 2) for v in snr[hit][order]],
    }
    Path(path).write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {hit.sum()} pick errors to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stations", type=int, default=30)
    parser.add_argument("--events", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--latency-s", type=float, default=60.0, help="0: skip (real time)")
    parser.add_argument("--plot", help="write the error and latency histograms to this PNG")
    parser.add_argument(
        "--save-pick-errors",
        metavar="JSON",
        help="write the signed pick errors within 0.1 s (the polarity sampler's table) and stop",
    )
    args = parser.parse_args()
    snr, err = accuracy(args.stations, args.events)
    if args.save_pick_errors:
        save_pick_errors(args.save_pick_errors, snr, err, args.stations, args.events)
        return
    texnet()
    onsets_read_by_us()
    noise_and_throughput(args.repeats)
    lat = latency(args.latency_s) if args.latency_s > 0 else None
    if args.plot:
        plot(args.plot, snr, err, lat)


if __name__ == "__main__":
    main()
