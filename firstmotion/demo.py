"""``firstmotion demo``: the main job, end to end, on an embedded default scenario.

The demo is a process orchestrator, like ``firstmotion run``: every stage runs as its own
``firstmotion`` process, and they meet only through SeedLink and Redis, exactly as in
production. The default (``--mode pipeline``):

1. writes a synthetic scenario (``firstmotion scenario``) with known mechanisms;
2. starts a real Redis (``REDIS_URL`` if set, else a private ``redis-server``);
3. starts the replay SeedLink server on the scenario's miniSEED (accelerated real time);
4. starts every stage: ``firstmotion stream`` (SeedLink ingest, STA/LTA + AIC picks),
   ``worker polarity``, ``worker associate``, ``worker mechanism`` and ``worker catalog``
   (which serves the live page); each serves Prometheus ``/metrics``;
5. waits until the stream has read all data and every consumer group is idle, then stops the
   stages with SIGTERM (graceful drain);
6. reads the live catalog from Redis and prints a table per scenario event against the truth
   (detection, location error, polarity accuracy, Kagan angle, quality, revisions) and draws
   the beachballs (truth and estimate, with the polarities) to ``demo.png``.

``--mode truth`` isolates the polarity model and the inversion: picks are cut at the true P
times (plus a picker-like error) from data received over SeedLink, and origins carry the true
takeoff angles and azimuths; the polarity and mechanism workers run in drain mode.
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

from firstmotion.bus import as_text
from firstmotion.messages import Arrival, Origin, Pick, make_pick_id
from firstmotion.run import stop_processes

PICK_WINDOW_BEFORE_S = 10.0
PICK_WINDOW_AFTER_S = 4.0
STAGES = ("picks", "polarities", "origins", "mechanisms")
GROUPS = (("picks", "polarity"), ("picks", "associate"), ("polarities", "mechanism"),
          ("origins", "mechanism"), ("origins", "catalog"), ("mechanisms", "catalog"))  # fmt: skip
MATCH_TIME_S = 3.0
MATCH_DISTANCE_KM = 25.0


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
    parser.add_argument(
        "--mode",
        choices=("pipeline", "truth"),
        default="pipeline",
        help="pipeline: every stage from SeedLink on (default); truth: picks at the true P "
        "times and true origins, to judge the polarity model and the inversion alone",
    )
    parser.add_argument("--speed", type=float, default=20.0, help="replay speed (x real time)")
    parser.add_argument(
        "--picker",
        choices=("stalta", "phasenet"),
        default="phasenet",
        help="the stream's picker (default phasenet, on every component; stalta on the "
        "verticals only; docs/picker.md)",
    )
    parser.add_argument("--metrics-port", type=int, default=9400, help="first stage's port")
    parser.add_argument("--web-port", type=int, default=8080, help="live catalog page")
    parser.add_argument(
        "--serve", action="store_true", help="keep the page and stages up until Ctrl-C"
    )
    parser.add_argument(
        "--report", type=Path, default=None,
        help="write the results as JSON here: one object per true event and a summary "
        "(pick recall, latency percentiles, counts); see firstmotion.demo_report",
    )  # fmt: skip


def _step(n: int, total: int, text: str) -> None:
    print(f"[{n}/{total}] {text}", flush=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "firstmotion.cli", *args]


def _port_or_free(port: int) -> int:
    """``port`` if nothing listens on it on loopback, else a free one (the demo must run)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return _free_port()
    return port


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


def _event_row(event: dict[str, Any]) -> dict[str, Any]:
    """The truth columns of an event's row, with empty polarity counts."""
    return {
        "event_id": event["event_id"],
        "magnitude": event["magnitude"],
        "truth_sdr": (event["strike"], event["dip"], event["rake"]),
        "n_true_polarities": sum(1 for a in event["stations"] if int(a["polarity"]) != 0),
        "n_picks": 0, "polarity_correct": 0, "polarity_wrong": 0, "polarity_unknown": 0,
        "polarity_accuracy": float("nan"),
    }  # fmt: skip


def _count_polarities(row: dict[str, Any], judged: list[tuple[int, Any]]) -> None:
    """Add (true label, Polarity or None) pairs to the row's counts; labels 0 are not judged."""
    for label, p in judged:
        if p is None or label == 0:
            continue
        key = "unknown" if p.polarity == 0 else "correct" if p.polarity == label else "wrong"
        row[f"polarity_{key}"] += 1
    n = row["polarity_correct"] + row["polarity_wrong"]
    row["polarity_accuracy"] = row["polarity_correct"] / n if n else float("nan")


def _add_mechanism(row: dict[str, Any], m: Any, revisions: int) -> None:
    """The estimate's columns: strike/dip/rake, Kagan angle to the truth, quality."""
    from firstmotion.kagan import kagan_angle_deg

    row.update(
        estimate_sdr=(m.strike, m.dip, m.rake),
        kagan_deg=float(kagan_angle_deg(*row["truth_sdr"], m.strike, m.dip, m.rake)),
        quality=m.quality,
        fault_plane_uncertainty_deg=m.fault_plane_uncertainty_deg,
        n_polarities=m.n_polarities,
        revisions=revisions,
        mechanism=m,
    )


def _revision_counts(mechanisms: list) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in mechanisms:
        out[m.event_id] = out.get(m.event_id, 0) + 1
    return out


def summarise(
    truth: dict[str, Any], windows: list[StationWindow], polarities: list, mechanisms: list
) -> list[dict[str, Any]]:
    """One row per event: polarity accuracy and the newest mechanism against the truth."""
    pol_by_pick = {p.pick_id: p for p in polarities}
    latest: dict[str, Any] = {}
    for m in mechanisms:
        if m.event_id not in latest or m.revision >= latest[m.event_id].revision:
            latest[m.event_id] = m
    revisions = _revision_counts(mechanisms)
    rows = []
    for event in truth["events"]:
        row = _event_row(event)
        ev_windows = [w for w in windows if w.event_id == event["event_id"]]
        row["n_picks"] = len(ev_windows)
        _count_polarities(
            row, [(w.true_polarity, pol_by_pick.get(w.pick.pick_id)) for w in ev_windows]
        )
        m = latest.get(event["event_id"])
        if m is not None:
            _add_mechanism(row, m, revisions[event["event_id"]])
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
                    # lower-hemisphere equal-area, upgoing rays through the centre; above
                    # the beachball, whose collection obspy draws at zorder 100
                    az, to = np.radians(p.azimuth_deg), p.takeoff_deg
                    if to < 90:
                        az, to = az + np.pi, 180.0 - to
                    rad = np.sqrt(2) * np.sin(np.radians(180.0 - to) / 2)
                    x, y = rad * np.sin(az), rad * np.cos(az)
                    marker, color = ("^", "#c62828") if p.polarity > 0 else ("v", "#1565c0")
                    ax.plot(
                        x, y, marker, color=color, markeredgecolor="k", markersize=6, zorder=200
                    )
            ax.set_title(label, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scenario(args: argparse.Namespace, scen: Path) -> dict[str, Any]:
    subprocess.run(
        _cli(
            "scenario", "--out", str(scen), "--seed", str(args.seed),
            "--n-stations", str(args.n_stations), "--n-events", str(args.n_events),
            "--duration-s", str(args.duration_s), "--region-km", str(args.region_km),
            "--depths", args.depths, "--plot",
        ),
        check=True,
    )  # fmt: skip
    return json.loads((scen / "truth.json").read_text())


def _replay(stack: ExitStack, scen: Path, logs: Path, speed: float | None) -> int:
    port = _free_port()
    pace = ["--as-fast-as-possible"] if speed is None else ["--speed", str(speed)]
    cmd = _cli("replay", "--data", str(scen / "mseed"), "--port", str(port), *pace)
    proc = stack.enter_context(_process(cmd, logs / "replay.log"))
    _wait_port("127.0.0.1", port, 60, proc)
    return port


def _group_idle(bus: Any) -> bool:
    """True when every consumer group has read everything and acked it."""
    for stream, group in GROUPS:
        key = bus.key(stream)
        if not bus.client.exists(key):
            continue
        info = {as_text(g["name"]): g for g in bus.client.xinfo_groups(key)}.get(group)
        if info is None or int(info.get("pending", 0)):
            return False
        newest = bus.client.xrevrange(key, count=1)
        if newest and as_text(newest[0][0]) != as_text(info.get("last-delivered-id")):
            return False
    return True


def _wait_quiet(
    bus: Any, procs: dict[str, subprocess.Popen], quiet_s: float, timeout_s: float
) -> None:
    """Wait until all groups are idle and no stream grew for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    lengths: tuple[int, ...] = ()
    since = time.monotonic()
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None and proc.returncode != 0:
                raise RuntimeError(f"stage {name} exited with {proc.returncode}")
        now_lengths = tuple(bus.length(s) for s in STAGES)
        if now_lengths != lengths or not _group_idle(bus):
            lengths, since = now_lengths, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return
        time.sleep(0.5)
    raise TimeoutError(f"the pipeline did not settle within {timeout_s:.0f} s")


def read_catalog(bus: Any) -> list[tuple[Origin, Any]]:
    """The live catalog as (origin, mechanism or None), read from the Redis keys."""
    from firstmotion.messages import Mechanism

    out = []
    for eid in bus.client.zrange(bus.key("catalog"), 0, -1):
        eid = as_text(eid)
        fields = {as_text(k): v for k, v in bus.client.hgetall(bus.key(f"event:{eid}")).items()}
        if "origin" not in fields:
            continue
        mech = Mechanism.from_json(fields["mechanism"]) if fields.get("mechanism") else None
        out.append((Origin.from_json(fields["origin"]), mech))
    return out


def _distance_km(event: dict[str, Any], origin: Origin) -> float:
    from firstmotion.geodesy import distance_azimuth

    return float(
        distance_azimuth(
            event["latitude"], event["longitude"], origin.latitude_deg, origin.longitude_deg
        )[0]
    )


def match_events(
    truth: dict[str, Any], catalog: list[tuple[Origin, Any]]
) -> dict[str, tuple[Origin, Any] | None]:
    """Each truth event's catalog event, one to one: origin times within 3 s and epicentres
    within 25 km; the most pairs, then the smallest summed (time / 3 s + distance / 25 km).

    An optimal assignment (not a greedy pass in truth order): in a burst of earthquakes seconds
    apart, the first truth event must not take the catalog event of the second when that
    leaves the second without one.
    """
    from obspy import UTCDateTime
    from scipy.optimize import linear_sum_assignment

    events = truth["events"]
    out: dict[str, tuple[Origin, Any] | None] = {e["event_id"]: None for e in events}
    if not events or not catalog:
        return out
    cost = np.zeros((len(events), len(catalog)))
    ok = np.zeros(cost.shape, dtype=bool)
    for i, event in enumerate(events):
        t0 = UTCDateTime(event["origin_time"]).timestamp
        for j, (origin, _) in enumerate(catalog):
            dt = abs(origin.time_epoch_s - t0)
            if dt > MATCH_TIME_S:
                continue
            dist_km = _distance_km(event, origin)
            if dist_km <= MATCH_DISTANCE_KM:
                ok[i, j] = True
                # each pair's cost is below 2; the bonus makes one more pair always worth more
                cost[i, j] = dt / MATCH_TIME_S + dist_km / MATCH_DISTANCE_KM - 2.0 * cost.size
    rows, cols = linear_sum_assignment(cost)
    for i, j in zip(rows, cols, strict=True):
        if ok[i, j]:
            out[events[i]["event_id"]] = catalog[j]
    return out


def summarise_pipeline(
    truth: dict[str, Any], catalog: list[tuple[Origin, Any]], polarities: list, mechanisms: list
) -> tuple[list[dict[str, Any]], int]:
    """Rows per truth event (as :func:`summarise`) plus location errors; and false events."""
    pol_by_pick = {p.pick_id: p for p in polarities}
    revisions = _revision_counts(mechanisms)
    matches = match_events(truth, catalog)
    rows = []
    for event in truth["events"]:
        row = _event_row(event)
        row["detected"] = False
        hit = matches[event["event_id"]]
        if hit is not None:
            origin, mech = hit
            row.update(
                detected=True,
                catalog_id=origin.event_id,
                epicentre_error_km=_distance_km(event, origin),
                depth_error_km=origin.depth_km - event["depth_km"],
                n_picks=len(origin.arrivals),
            )
            labels = {a["station_id"]: int(a["polarity"]) for a in event["stations"]}
            _count_polarities(
                row,
                [  # P arrivals only: a P-labelled pick the associator took as the S has a
                    # polarity read, but it is not a first motion
                    (labels.get(a.station_id, 0), pol_by_pick.get(a.pick_id))
                    for a in origin.arrivals
                    if a.phase == "P"
                ],
            )
            if mech is not None:
                _add_mechanism(row, mech, revisions.get(origin.event_id, 0))
        rows.append(row)
    matched = {r["catalog_id"] for r in rows if r["detected"]}
    false_events = sum(1 for origin, _ in catalog if origin.event_id not in matched)
    return rows, false_events


def _finish(rows: list[dict[str, Any]], out: Path, scen: Path, logs: Path, t_start: float) -> None:
    print()
    print_table(rows)
    png = plot_results(rows, out / "demo.png")
    print()
    print(f"beachballs: {png}   station map: {scen / 'scenario.png'}")
    print(f"logs: {logs}/   total {time.perf_counter() - t_start:.0f} s")
    (out / "results.json").write_text(
        json.dumps(
            [{k: v for k, v in r.items() if k != "mechanism"} for r in rows],
            indent=1,
            default=float,
        )
    )


def _run_truth(args: argparse.Namespace, ctx: dict[str, Any]) -> list[dict[str, Any]]:
    bus, url, truth, logs, port = ctx["bus"], ctx["url"], ctx["truth"], ctx["logs"], ctx["port"]
    total = 7
    _step(4, total, "receive Z channels over SeedLink and cut P windows at the true P times")
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
    mport = _port_or_free(args.metrics_port)
    dt = _run_stage(
        _cli("worker", "polarity", "--redis", url, "--drain", "--metrics-port", str(mport)),
        logs / "polarity.log",
        "polarity worker",
    )
    polarities = [m for _, m in bus.messages("polarities")]
    print(f"      {len(polarities)} polarities in {dt:.1f} s (model load included)")
    _step(6, total, "origins (true hypocentres and rays) and mechanism worker (drain mode)")
    for origin in truth_origins(truth, windows):
        bus.publish("origins", origin)
    dt = _run_stage(
        _cli("worker", "mechanism", "--redis", url, "--drain", "--metrics-port", str(mport)),
        logs / "mechanism.log",
        "mechanism worker",
    )
    mechanisms = [m for _, m in bus.messages("mechanisms")]
    print(f"      {len(mechanisms)} mechanism revisions in {dt:.1f} s")
    _step(7, total, "results against the scenario's truth")
    ctx["report"] = {"picks": [w.pick for w in windows], "origins": [], "mechanisms": mechanisms}
    return summarise(truth, windows, polarities, mechanisms)


def _run_pipeline(
    args: argparse.Namespace, ctx: dict[str, Any], stack: ExitStack
) -> list[dict[str, Any]]:
    bus, url, logs, port, scen = ctx["bus"], ctx["url"], ctx["logs"], ctx["port"], ctx["scen"]
    total = 7
    _step(4, total, "start the stages (each its own process)")
    inventory = str(scen / "stations.xml")
    web_port = _port_or_free(args.web_port)
    commands = {
        "stream": _cli(
            "stream", "--seedlink", f"127.0.0.1:{port}",
            "--streams", "*_*" if args.picker == "phasenet" else "*_*:??Z",
            "--picker", args.picker,
            "--inventory", inventory, "--redis", url, "--exit-when-idle-s", "5",
            "--statefile", str(ctx["out"] / "seedlink.state"),
        ),
        "polarity": _cli("worker", "polarity", "--redis", url),
        "associate": _cli("worker", "associate", "--redis", url, "--inventory", inventory),
        "mechanism": _cli("worker", "mechanism", "--redis", url),
        "catalog": _cli("worker", "catalog", "--redis", url, "--web-port", str(web_port),
                        "--inventory", inventory),
    }  # fmt: skip
    procs: dict[str, subprocess.Popen] = {}
    for i, (name, cmd) in enumerate(commands.items()):
        mport = _port_or_free(args.metrics_port + i)
        cmd = [*cmd, "--metrics-port", str(mport)]
        procs[name] = stack.enter_context(_process(cmd, logs / f"{name}.log"))
        print(f"      {name:<10} metrics http://127.0.0.1:{mport}/metrics")
    print(f"      live catalog page: http://127.0.0.1:{web_port}/")

    _step(5, total, f"stream the scenario over SeedLink at {args.speed:g}x real time")
    span_s = float(args.duration_s) / args.speed
    t0 = time.perf_counter()
    stream_proc = procs["stream"]
    while stream_proc.poll() is None:
        elapsed = time.perf_counter() - t0
        counts = ", ".join(f"{s} {bus.length(s)}" for s in STAGES)
        print(f"      {elapsed:5.0f} s / ~{span_s:.0f} s   {counts}", flush=True)
        try:
            stream_proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
    if stream_proc.returncode != 0:
        tail = (logs / "stream.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"stream exited with {stream_proc.returncode}:\n{tail}")
    print("      stream has read everything; waiting for the workers to settle")
    _wait_quiet(bus, {k: v for k, v in procs.items() if k != "stream"}, 4.0, 300.0)
    counts = ", ".join(f"{s} {bus.length(s)}" for s in STAGES)
    print(f"      settled after {time.perf_counter() - t0:.0f} s: {counts}")
    if args.serve:
        print(f"      serving http://127.0.0.1:{web_port}/ until Ctrl-C")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
    _step(6, total, "stop the stages (SIGTERM, graceful drain)")
    stop_processes(procs, grace_s=20.0)
    for name, proc in procs.items():
        if proc.returncode not in (0, -15):
            print(f"      warning: {name} exited with {proc.returncode} (see {logs}/{name}.log)")

    _step(7, total, "the live catalog against the scenario's truth")
    catalog = read_catalog(bus)
    polarities = [m for _, m in bus.messages("polarities")]
    mechanisms = [m for _, m in bus.messages("mechanisms")]
    rows, false_events = summarise_pipeline(ctx["truth"], catalog, polarities, mechanisms)
    ctx["report"] = {
        "picks": [m for _, m in bus.messages("picks")],
        "origins": [m for _, m in bus.messages("origins") if isinstance(m, Origin)],
        "mechanisms": mechanisms,
        "false_events": false_events,
    }
    detected = sum(r["detected"] for r in rows)
    print(
        f"      catalog: {len(catalog)} events; {detected}/{len(rows)} scenario events found, "
        f"{false_events} not in the scenario"
    )
    for r in rows:
        if r["detected"]:
            print(
                f"      {r['event_id']} -> {r['catalog_id']}: epicentre off by "
                f"{r['epicentre_error_km']:.1f} km, depth by {r['depth_error_km']:+.1f} km"
            )
    return rows


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
    truth = _scenario(args, scen)
    with ExitStack() as stack:
        _step(2, total, "redis")
        url = os.environ.get("REDIS_URL")
        if url:
            print(f"      using REDIS_URL {url}")
        else:
            url = stack.enter_context(RedisServer()).url
            print(f"      started a private redis-server at {url}")
        bus = Bus.from_url(url)
        stale = list(bus.client.scan_iter(match=f"{bus.prefix}*", count=1000))
        if stale:
            bus.client.delete(*stale)
        state = out / "seedlink.state"
        state.unlink(missing_ok=True)

        speed = None if args.mode == "truth" else args.speed
        _step(3, total, "replay SeedLink server on the scenario's miniSEED")
        port = _replay(stack, scen, logs, speed)
        print(f"      serving on 127.0.0.1:{port}")
        ctx = {"bus": bus, "url": url, "truth": truth, "logs": logs, "port": port,
               "scen": scen, "out": out}  # fmt: skip
        if args.mode == "truth":
            rows = _run_truth(args, ctx)
        else:
            rows = _run_pipeline(args, ctx, stack)
        _finish(rows, out, scen, logs, t_start)
        if args.report is not None:
            write_report(args.report, truth, rows, ctx.get("report", {}), args.mode)
    return 0


def write_report(
    path: Path,
    truth: dict[str, Any],
    rows: list[dict[str, Any]],
    extra: dict[str, Any],
    mode: str,
) -> Path:
    """``--report``: the JSON document of :func:`firstmotion.demo_report.build_report`."""
    from firstmotion.demo_report import build_report

    report = build_report(truth, rows, mode=mode, **extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1))
    s = report["summary"]
    recall = "n/a" if s["pick_recall"] is None else f"{100 * s['pick_recall']:.0f}%"
    print(f"report: {path}  ({s['n_detected']}/{s['n_true_events']} events, pick recall "
          f"{recall}, {s['n_with_mechanism']} mechanisms)")  # fmt: skip
    return path
