"""``firstmotion demo``: the main job, end to end, on an embedded default scenario.

The demo is a process orchestrator, like ``firstmotion run``: every stage runs as its own
``firstmotion`` process, and they meet only through Redis and SeedLink, exactly as in
production. What it does:

1. writes a synthetic scenario (``firstmotion scenario``) with known mechanisms;
2. starts a real Redis (``REDIS_URL`` if set, else a private ``redis-server``);
3. starts the replay SeedLink server on the scenario's miniSEED;
4. receives the vertical channels over SeedLink (obspy's client) and cuts a P window at each
   station's P arrival. Until the stream stage's detector lands, the pick times are the
   scenario's true P times plus a picker-like error, and the demo publishes them as ``Pick``
   messages to ``fm:picks``;
5. runs the polarity worker (``firstmotion worker polarity --drain``);
6. publishes origins with the scenario's takeoff angles and azimuths (until the associator
   lands) and runs the mechanism worker (``firstmotion worker mechanism --drain``);
7. prints a table per event against the truth (polarity accuracy, Kagan angle, quality) and
   draws the beachballs (truth and estimate, with the polarities) to ``demo.png``.

Each worker serves Prometheus ``/metrics`` while it runs; the demo prints their addresses.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from firstmotion.messages import Arrival, Origin, Pick, make_pick_id

PICK_WINDOW_BEFORE_S = 10.0
PICK_WINDOW_AFTER_S = 4.0
NOT_BUILT = (
    "stream ingest + detector (picks are cut at the true P times plus a picker-like error)",
    "associator (origins carry the true hypocentre, takeoff angles and azimuths)",
    "live catalog, web page and alert hooks",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="working folder")
    parser.add_argument("--seed", type=int, default=7, help="scenario seed")
    parser.add_argument("--n-stations", type=int, default=30)
    parser.add_argument("--n-events", type=int, default=4)
    parser.add_argument("--duration-s", type=float, default=360.0)
    parser.add_argument("--region-km", type=float, default=60.0, help="network aperture")
    parser.add_argument("--depths", default="6/15", help="min/max hypocentre depth, km")
    parser.add_argument(
        "--pick-error-s", type=float, default=0.02, help="std of the simulated pick error"
    )
    parser.add_argument("--metrics-port", type=int, default=9400, help="first worker's port")


def _step(n: int, total: int, text: str) -> None:
    print(f"[{n}/{total}] {text}", flush=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "firstmotion.cli", *args]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s} s")


@contextmanager
def _process(cmd: Sequence[str], log_path: Path):
    """A child process whose output goes to ``log_path``; terminated on exit."""
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _run_stage(cmd: Sequence[str], log_path: Path, what: str) -> float:
    """Run a drain-mode stage to completion; returns its wall time (s)."""
    t0 = time.perf_counter()
    with _process(cmd, log_path) as proc:
        rc = proc.wait()
    if rc != 0:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{what} exited with {rc}; log {log_path}:\n{tail}")
    return time.perf_counter() - t0


@dataclass(frozen=True)
class StationWindow:
    """A P window cut from data received over SeedLink."""

    event_id: str
    station_id: str
    pick: Pick
    true_polarity: int


def receive_vertical(host: str, port: int, truth: dict[str, Any]):
    """Fetch every station's Z channel over SeedLink (TIME/FETCH); returns an obspy Stream."""
    from obspy import Stream, UTCDateTime
    from obspy.clients.seedlink.basic_client import Client

    logging.getLogger("obspy.clients.seedlink").setLevel(logging.WARNING)
    client = Client(host, port, timeout=20)
    start, end = UTCDateTime(truth["start_time"]), UTCDateTime(truth["end_time"])
    st = Stream()
    for sta in truth["stations"]:
        st += client.get_waveforms(sta["network"], sta["station"], "*", "??Z", start, end)
    st.merge(method=1, fill_value=None)
    return st


def cut_picks(
    stream, truth: dict[str, Any], pick_error_s: float, rng: np.random.Generator
) -> list[StationWindow]:
    """P windows at each station's true P time plus a picker-like (Laplacian) error."""
    from obspy import UTCDateTime

    coords = {s["station"]: s for s in truth["stations"]}
    out = []
    for event in truth["events"]:
        for arr in event["stations"]:
            if not arr.get("p_in_data", True):
                continue
            net, sta, loc, cha = arr["station_id"].split(".")
            traces = stream.select(network=net, station=sta, channel=cha)
            if not traces:
                continue
            tr = traces[0]
            t_pick = UTCDateTime(arr["p_time"]) + float(rng.laplace(0.0, pick_error_s / 2**0.5))
            seg = tr.slice(t_pick - PICK_WINDOW_BEFORE_S, t_pick + PICK_WINDOW_AFTER_S)
            data = np.ma.filled(seg.data.astype(np.float64), np.nan)
            if data.size < 10:
                continue
            fs = float(tr.stats.sampling_rate)
            pick_index = int(round((t_pick - seg.stats.starttime) * fs))
            noise = data[: max(pick_index - 10, 1)]
            signal = data[pick_index : pick_index + int(fs)]
            noise_rms = float(np.nanstd(noise)) or 1.0
            amp = float(np.nanmax(np.abs(signal - np.nanmean(noise)))) if signal.size else 0.0
            station_id = arr["station_id"]
            c = coords.get(sta, {})
            pick = Pick(
                pick_id=make_pick_id(station_id, float(t_pick.timestamp)),
                station_id=station_id,
                time_epoch_s=float(t_pick.timestamp),
                sampling_rate_hz=fs,
                start_time_epoch_s=float(seg.stats.starttime.timestamp),
                pick_index=pick_index,
                samples=data.astype(np.float32),
                snr=amp / noise_rms,
                amplitude=amp,
                latitude_deg=c.get("latitude"),
                longitude_deg=c.get("longitude"),
                elevation_m=c.get("elevation_m", c.get("elevation")),
                method="truth+error",
            )
            out.append(StationWindow(event["event_id"], station_id, pick, int(arr["polarity"])))
    return out


def truth_origins(truth: dict[str, Any], windows: list[StationWindow]) -> list[Origin]:
    """Origins carrying the true hypocentre and each pick's true takeoff angle and azimuth."""
    from obspy import UTCDateTime

    by_event: dict[str, dict[str, Pick]] = {}
    for w in windows:
        by_event.setdefault(w.event_id, {})[w.station_id] = w.pick
    origins = []
    for event in truth["events"]:
        picks = by_event.get(event["event_id"], {})
        arrivals = tuple(
            Arrival(
                pick_id=picks[a["station_id"]].pick_id,
                station_id=a["station_id"],
                azimuth_deg=float(a["azimuth_deg"]) % 360.0,
                takeoff_deg=float(a["takeoff_deg"]),
                distance_km=float(a["distance_km"]),
            )
            for a in event["stations"]
            if a["station_id"] in picks
        )
        origins.append(
            Origin(
                event_id=event["event_id"],
                revision=1,
                time_epoch_s=float(UTCDateTime(event["origin_time"]).timestamp),
                latitude_deg=float(event["latitude"]),
                longitude_deg=float(event["longitude"]),
                depth_km=float(event["depth_km"]),
                magnitude=float(event["magnitude"]),
                arrivals=arrivals,
                method="truth",
            )
        )
    return origins


def summarise(
    truth: dict[str, Any], windows: list[StationWindow], polarities: list, mechanisms: list
) -> list[dict[str, Any]]:
    """One row per event: polarity accuracy and the mechanism against the truth."""
    from firstmotion.kagan import kagan_angle_deg

    pol_by_pick = {p.pick_id: p for p in polarities}
    latest: dict[str, Any] = {}
    revisions: dict[str, int] = {}
    for m in mechanisms:
        revisions[m.event_id] = revisions.get(m.event_id, 0) + 1
        if m.event_id not in latest or m.revision >= latest[m.event_id].revision:
            latest[m.event_id] = m
    rows = []
    for event in truth["events"]:
        ev_windows = [w for w in windows if w.event_id == event["event_id"]]
        n_true = sum(1 for w in ev_windows if w.true_polarity != 0)
        correct = wrong = unknown = 0
        for w in ev_windows:
            p = pol_by_pick.get(w.pick.pick_id)
            if p is None or w.true_polarity == 0:
                continue
            if p.polarity == 0:
                unknown += 1
            elif p.polarity == w.true_polarity:
                correct += 1
            else:
                wrong += 1
        row: dict[str, Any] = {
            "event_id": event["event_id"],
            "magnitude": event["magnitude"],
            "truth_sdr": (event["strike"], event["dip"], event["rake"]),
            "n_picks": len(ev_windows),
            "n_true_polarities": n_true,
            "polarity_correct": correct,
            "polarity_wrong": wrong,
            "polarity_unknown": unknown,
            "polarity_accuracy": correct / (correct + wrong) if correct + wrong else float("nan"),
        }
        m = latest.get(event["event_id"])
        if m is not None:
            row.update(
                estimate_sdr=(m.strike, m.dip, m.rake),
                kagan_deg=float(
                    kagan_angle_deg(
                        event["strike"], event["dip"], event["rake"], m.strike, m.dip, m.rake
                    )
                ),
                quality=m.quality,
                fault_plane_uncertainty_deg=m.fault_plane_uncertainty_deg,
                n_polarities=m.n_polarities,
                revisions=revisions[event["event_id"]],
                mechanism=m,
            )
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'event':<12} {'Mw':>4} {'picks':>5} {'pol ok/bad/unk':>15} {'acc':>6}  "
        f"{'truth s/d/r':>13}  {'estimate s/d/r':>14} {'Kagan':>6} {'Q':>2} {'FPU':>4} {'rev':>3}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        t = "/".join(f"{v:.0f}" for v in r["truth_sdr"])
        pol = f"{r['polarity_correct']}/{r['polarity_wrong']}/{r['polarity_unknown']}"
        line = (
            f"{r['event_id']:<12} {r['magnitude']:>4.1f} {r['n_picks']:>5} {pol:>15} "
            f"{100 * r['polarity_accuracy']:>5.1f}%  {t:>13}  "
        )
        if "estimate_sdr" in r:
            e = "/".join(f"{v:.0f}" for v in r["estimate_sdr"])
            line += (
                f"{e:>14} {r['kagan_deg']:>5.1f}° {r['quality']:>2} "
                f"{r['fault_plane_uncertainty_deg']:>4.0f} {r['revisions']:>3}"
            )
        else:
            line += f"{'(no mechanism)':>14}"
        print(line)


def plot_results(rows: list[dict[str, Any]], path: Path) -> Path:
    """Truth and estimated beachballs per event with the classified polarities."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from obspy.imaging.beachball import beach

    n = len(rows)
    fig, axes = plt.subplots(n, 2, figsize=(7, 3.4 * n), squeeze=False)
    for i, r in enumerate(rows):
        for j, (title, sdr) in enumerate(
            (("truth", r["truth_sdr"]), ("estimate", r.get("estimate_sdr")))
        ):
            ax = axes[i, j]
            ax.set_xlim(-1.1, 1.1)
            ax.set_ylim(-1.1, 1.1)
            ax.set_aspect("equal")
            ax.axis("off")
            if sdr is None:
                ax.set_title(f"{r['event_id']} {title}: none")
                continue
            ax.add_collection(
                beach(list(sdr), xy=(0, 0), width=2.0, facecolor="#f4a6a6", linewidth=1)
            )
            label = f"{r['event_id']} {title}\n{sdr[0]:.0f}/{sdr[1]:.0f}/{sdr[2]:.0f}"
            if j == 1:
                label += f"  Q {r['quality']}  Kagan {r['kagan_deg']:.0f}°"
                for p in r["mechanism"].picks:
                    # lower-hemisphere equal-area: upgoing rays mapped through the centre
                    az, to = np.radians(p.azimuth_deg), p.takeoff_deg
                    if to < 90:
                        az, to = az + np.pi, 180.0 - to
                    rad = np.sqrt(2) * np.sin(np.radians(180.0 - to) / 2)
                    x, y = rad * np.sin(az), rad * np.cos(az)
                    marker, color = ("^", "#c62828") if p.polarity > 0 else ("v", "#1565c0")
                    ax.plot(x, y, marker, color=color, markeredgecolor="k", markersize=6)
            ax.set_title(label, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> int:
    from firstmotion.bus import Bus
    from firstmotion.redis_server import RedisServer

    total = 7
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    logs = out / "logs"
    logs.mkdir(exist_ok=True)
    scen = out / "scenario"
    t_start = time.perf_counter()

    _step(1, total, f"scenario: {args.n_stations} stations, {args.n_events} events -> {scen}")
    subprocess.run(
        _cli(
            "scenario",
            "--out",
            str(scen),
            "--seed",
            str(args.seed),
            "--n-stations",
            str(args.n_stations),
            "--n-events",
            str(args.n_events),
            "--duration-s",
            str(args.duration_s),
            "--region-km",
            str(args.region_km),
            "--depths",
            args.depths,
            "--plot",
        ),
        check=True,
    )
    truth = json.loads((scen / "truth.json").read_text())

    with ExitStack() as stack:
        _step(2, total, "redis")
        url = os.environ.get("REDIS_URL")
        if url:
            print(f"      using REDIS_URL {url}")
        else:
            server = stack.enter_context(RedisServer())
            url = server.url
            print(f"      started a private redis-server at {url}")
        bus = Bus.from_url(url)
        bus.client.delete(*(bus.key(s) for s in ("picks", "polarities", "origins", "mechanisms")))

        _step(3, total, "replay SeedLink server on the scenario's miniSEED")
        port = _free_port()
        replay = stack.enter_context(
            _process(
                _cli(
                    "replay",
                    "--data",
                    str(scen / "mseed"),
                    "--port",
                    str(port),
                    "--as-fast-as-possible",
                ),
                logs / "replay.log",
            )
        )
        _wait_port("127.0.0.1", port, 60, replay)
        print(f"      serving on 127.0.0.1:{port}")

        _step(4, total, "receive Z channels over SeedLink and cut P windows")
        t0 = time.perf_counter()
        st = receive_vertical("127.0.0.1", port, truth)
        n_samples = sum(tr.stats.npts for tr in st)
        windows = cut_picks(st, truth, args.pick_error_s, np.random.default_rng(args.seed))
        for w in windows:
            bus.publish("picks", w.pick)
        print(
            f"      {len(st)} traces, {n_samples:,} samples over SeedLink in "
            f"{time.perf_counter() - t0:.1f} s; published {len(windows)} picks to fm:picks"
        )

        _step(5, total, "polarity worker (drain mode)")
        mport = args.metrics_port
        print(f"      metrics: http://127.0.0.1:{mport}/metrics")
        dt = _run_stage(
            _cli(
                "worker",
                "polarity",
                "--redis",
                url,
                "--drain",
                "--metrics-port",
                str(mport),
            ),
            logs / "polarity.log",
            "polarity worker",
        )
        polarities = [m for _, m in bus.messages("polarities")]
        print(f"      {len(polarities)} polarities in {dt:.1f} s (model load included)")

        _step(6, total, "origins (true hypocentres) and mechanism worker (drain mode)")
        for origin in truth_origins(truth, windows):
            bus.publish("origins", origin)
        print(f"      metrics: http://127.0.0.1:{mport + 1}/metrics")
        dt = _run_stage(
            _cli(
                "worker",
                "mechanism",
                "--redis",
                url,
                "--drain",
                "--metrics-port",
                str(mport + 1),
            ),
            logs / "mechanism.log",
            "mechanism worker",
        )
        mechanisms = [m for _, m in bus.messages("mechanisms")]
        print(f"      {len(mechanisms)} mechanism revisions in {dt:.1f} s")

        _step(7, total, "results against the scenario's truth")
        rows = summarise(truth, windows, polarities, mechanisms)
        print()
        print_table(rows)
        png = plot_results(rows, out / "demo.png")
        print()
        print(f"beachballs: {png}   station map: {scen / 'scenario.png'}")
        print(f"logs: {logs}/   total {time.perf_counter() - t_start:.0f} s")
        print("not built yet:")
        for item in NOT_BUILT:
            print(f"  - {item}")
        (out / "results.json").write_text(
            json.dumps(
                [{k: v for k, v in r.items() if k != "mechanism"} for r in rows],
                indent=1,
                default=float,
            )
        )
    return 0
