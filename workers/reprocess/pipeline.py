"""``firstmotion reprocess``: polarities and mechanisms for an existing catalog, from its archive.

The events (origins + P picks: QuakeML or another event format obspy reads, HYPO71 phase
cards or a CSV pair, see
:mod:`firstmotion.event_catalogs`) are taken in chunks of about ``--chunk-picks`` picks, in
origin-time order. For each chunk a reader thread cuts the P windows from the archive
(:mod:`firstmotion.archive`: each file or SDS station-day read once, readers in
parallel) while the previous chunk is in the workers. Then, through the same Redis streams and
workers as the live system:

1. a :class:`~firstmotion.messages.Pick` per window goes to ``<prefix>picks``; the polarity
   workers (group ``polarity``, any number, local or elsewhere) publish Polarity messages;
2. once every pick of an event has its polarity, the event's
   :class:`~firstmotion.messages.Origin` goes to ``<prefix>origins``, its arrivals carrying
   each pick's id with the azimuth (station coordinates from the StationXML, or derived from
   the QuakeML arrivals) and the takeoff angle traced in the 1-D model
   (:func:`firstmotion.velocity.trace_rays`). The associator is not involved: the origin is
   known. Publishing the origin after the polarities makes the mechanism worker (group
   ``mechanism``, which joins polarities to origins by pick id) invert each event once;
3. the event is done when the mechanism worker has acknowledged its origin (its Mechanism,
   if it had enough polarities, is published in the same transaction). This command reads
   ``<prefix>polarities`` and ``<prefix>mechanisms`` in a consumer group of its own
   (``reprocess``) and appends each done event to ``DIR/journal.jsonl``.

``--resume`` skips the events already in the journal (after a kill); the outputs are always
written from the whole journal, sorted by origin time and event id, so a killed and resumed
run gives the same files as one run. Without ``--redis`` a private redis-server and local
workers start (``--polarity-replicas`` polarity workers and ``--mechanism-replicas`` mechanism
workers, each its own
``firstmotion worker`` process, as in the demo); with ``--redis URL`` the same local workers
start unless ``--external-workers`` says workers already run elsewhere (several machines, the
Kubernetes manifests).

Outputs in DIR: ``catalog.xml``, ``polarities.csv``, ``mechanisms.csv``, ``beachballs/``,
``skhash/`` (see :mod:`workers.reprocess.outputs`) and ``report.json`` (counts and every
problem: picks without waveform, unreadable files, stations missing from the inventory).
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from firstmotion.archive import (
    ArchiveReport,
    Request,
    cut_windows,
    expand_paths,
    index_files,
    is_sds_root,
    named_paths,
)
from firstmotion.bus import Bus, as_text
from firstmotion.event_catalogs import EventRecord, read_events, stations_from_arrivals
from firstmotion.messages import Arrival, Mechanism, Origin, Pick, Polarity, decode, make_pick_id

log = logging.getLogger(__name__)

GROUP = "reprocess"
JOURNAL = "journal.jsonl"
DEFAULT_CHUNK_PICKS = 2000
STALL_TIMEOUT_S = 300.0
MAX_LISTED = 100  # opposite readings named in report.json (all are counted)


# --------------------------------------------------------------------------- geometry (pure)


def read_station_coordinates(path: str | Path) -> dict[tuple[str, str], tuple[float, float, float]]:
    """(network, station) -> (latitude, longitude, elevation_m) of a StationXML file."""
    from firstmotion.inventory import read_sites

    return {
        (s.network, s.station): (s.latitude, s.longitude, s.elevation_m)
        for s in read_sites(path)
        if s.channel is None
    }


def event_arrivals(
    event: EventRecord,
    picks: list[tuple[str, str, float]],
    coords: dict[tuple[str, str], tuple[float, float, float]],
    model: Any,
) -> tuple[list[Arrival], list[str]]:
    """Arrivals (azimuth, takeoff from vertical-up, distance) for ``picks`` of a located event.

    ``picks``: (pick_id, station_id, time) with station ids NET.STA.LOC.CHA. Returns the
    arrivals and the station ids without coordinates.
    """
    from firstmotion.geodesy import distance_azimuth
    from firstmotion.velocity import trace_rays

    rows, missing = [], []
    for pick_id, station_id, t in picks:
        net, sta = station_id.split(".")[:2]
        c = coords.get((net, sta))
        if c is None:
            missing.append(station_id)
            continue
        rows.append((pick_id, station_id, c, t))
    if not rows:
        return [], missing
    lat = np.array([c[0] for _, _, c, _ in rows])
    lon = np.array([c[1] for _, _, c, _ in rows])
    dist_km, az, _ = distance_azimuth(event.latitude_deg, event.longitude_deg, lat, lon)
    depth = max(float(model.model_depth_km(event.depth_km)), 0.0)  # below the model's top
    rays = trace_rays(model, dist_km, np.full(dist_km.shape, depth), "P")
    out = [
        Arrival(
            pick_id=pid,
            station_id=sid,
            azimuth_deg=float(a) % 360.0,
            takeoff_deg=float(t),
            distance_km=float(d),
            time_epoch_s=float(when) if when is not None else None,
        )
        for (pid, sid, _, when), a, t, d in zip(rows, az, rays.takeoff_deg, dist_km, strict=True)
    ]
    return out, missing


def window_pick(win, method: str = "reprocess") -> Pick:
    """The Pick message of a cut window, cut to the unbroken record holding the pick
    (:meth:`firstmotion.archive.Window.around_pick`), at the pick's own time (its first motion
    read at the nearest sample; SNR: peak of the first second over pre-pick std)."""
    win = win.around_pick()
    x = win.samples.astype(np.float64)
    k, fs = win.pick_index, win.sampling_rate_hz
    noise = x[max(0, k - int(2 * fs)) : max(k - 2, 1)]
    noise = noise[np.isfinite(noise)]
    sig = x[k : k + int(fs)]
    sig = sig[np.isfinite(sig)]
    mean = float(noise.mean()) if noise.size else 0.0
    rms = float(noise.std()) if noise.size else 0.0
    amp = float(np.max(np.abs(sig - mean))) if sig.size else 0.0
    t_pick = win.pick_time_epoch_s
    if t_pick is None:
        t_pick = win.start_epoch_s + k / fs
    return Pick(
        pick_id=make_pick_id(win.station_id, t_pick),
        station_id=win.station_id,
        time_epoch_s=t_pick,
        sampling_rate_hz=fs,
        start_time_epoch_s=win.start_epoch_s,
        pick_index=k,
        samples=win.samples,
        snr=amp / rms if rms > 0 else 0.0,
        amplitude=amp,
        method=method,
    )


# --------------------------------------------------------------------------- state


@dataclass
class EventWork:
    """An event in flight: its picks (pick id -> record) and what came back."""

    event: EventRecord
    picks: dict[str, dict] = field(default_factory=dict)  # pick_id -> row
    problems: list[str] = field(default_factory=list)
    waiting: set[str] = field(default_factory=set)  # pick ids without polarity yet
    origin_entry: str | None = None
    last_polarity_entry: tuple[int, int] = (0, 0)
    origin: Origin | None = None
    mechanism: Mechanism | None = None


def journal_row(w: EventWork) -> dict:
    e = w.event
    return {
        "event_id": e.event_id,
        "time_epoch_s": e.time_epoch_s,
        "latitude_deg": e.latitude_deg,
        "longitude_deg": e.longitude_deg,
        "depth_km": e.depth_km,
        "magnitude": e.magnitude,
        "picks": sorted(w.picks.values(), key=lambda r: (r["time_epoch_s"], r["station_id"])),
        "origin": w.origin.to_dict() if w.origin is not None else None,
        "mechanism": w.mechanism.to_dict() if w.mechanism is not None else None,
        "problems": sorted(w.problems),
    }


def read_journal(path: Path) -> dict[str, dict]:
    """event_id -> journal row (a torn last line from a kill is ignored)."""
    out: dict[str, dict] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        out[row["event_id"]] = row
    return out


# --------------------------------------------------------------------------- run


@dataclass
class Options:
    events: list[str]
    waveforms: list[str]
    output: Path
    inventory: str | None = None
    origins: str | None = None
    velocity_model: str | None = None
    redis: str | None = None
    prefix: str = "fm:"
    polarity_replicas: int = 1
    mechanism_replicas: int = 1
    device: str = "auto"
    resume: bool = False
    external_workers: bool = False
    readers: int = 2
    chunk_picks: int = DEFAULT_CHUNK_PICKS
    max_plots: int | None = None
    progress: bool = True
    config: str | None = None
    fir_correction: bool = False


def _start_workers(opts: Options, url: str, log_dir: Path) -> dict[str, subprocess.Popen]:
    from firstmotion.redis_server import _die_with_parent_hook

    log_dir.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "firstmotion.cli"]
    cfg = ["--config", opts.config] if opts.config else []
    cmds = {
        f"polarity-{i}": [
            *base,
            "worker",
            "polarity",
            "--redis",
            url,
            "--device",
            opts.device,
            *cfg,
            *(["--inventory", str(opts.inventory)] if opts.inventory else []),
            *(["--fir-correction"] if opts.fir_correction else []),
        ]
        for i in range(opts.polarity_replicas)
    }
    for i in range(opts.mechanism_replicas):
        cmds[f"mechanism-{i}"] = [
            *base, "worker", "mechanism", "--redis", url, *cfg,
            *(["--inventory", str(opts.inventory)] if opts.inventory else []),
        ]  # fmt: skip
    import os

    env = {**os.environ, "FIRSTMOTION_REDIS__PREFIX": opts.prefix}  # the workers' key prefix
    procs = {}
    for name, cmd in cmds.items():
        fh = open(log_dir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        procs[name] = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent_hook()
        )
    return procs


class Reprocessor:
    """Drives one reprocessing run (see the module docstring)."""

    def __init__(self, opts: Options, bus: Bus) -> None:
        from firstmotion.velocity import VelocityModel

        self.opts = opts
        self.bus = bus
        self.model = (
            VelocityModel.from_file(opts.velocity_model)
            if opts.velocity_model
            else VelocityModel.default()
        )
        self.report: dict[str, Any] = {
            "events": 0, "events_skipped_resume": 0, "picks": 0, "picks_classified": 0,
            "picks_without_waveform": {}, "bad_files": {}, "stations_missing_from_inventory": {},
            "events_without_origin": [], "mechanisms": 0,
        }  # fmt: skip
        self.work: dict[str, EventWork] = {}
        self.pick_owner: dict[str, str] = {}
        self.origin_owner: dict[str, str] = {}

    # -- stream plumbing
    def _ensure_groups(self) -> None:
        for stream in ("polarities", "mechanisms"):
            self.bus.ensure_group(stream, GROUP, start_id="$")
        for stream, group in (
            ("picks", "polarity"), ("origins", "mechanism"), ("polarities", "mechanism")
        ):  # fmt: skip
            self.bus.ensure_group(stream, group, start_id="$")

    def _read_results(self, block_ms: int) -> int:
        keys = {self.bus.key("polarities"): ">", self.bus.key("mechanisms"): ">"}
        resp = self.bus.client.xreadgroup(  # BLOCK 0 would wait forever: no BLOCK then
            GROUP, "reprocess", keys, count=5000, block=block_ms or None
        )
        n = 0
        for key, rows in resp or []:
            ids = []
            for entry_id, fields in rows:
                ids.append(entry_id)
                try:
                    msg = decode(fields)
                except ValueError:
                    continue
                n += 1
                if isinstance(msg, Polarity):
                    self._on_polarity(msg, _id_tuple(as_text(entry_id)))
                elif isinstance(msg, Mechanism):
                    w = self.work.get(msg.event_id)
                    if w is not None and (
                        w.mechanism is None or msg.revision > w.mechanism.revision
                    ):
                        w.mechanism = msg
            if ids:
                self.bus.client.xack(as_text(key), GROUP, *ids)
        return n

    def _on_polarity(self, p: Polarity, entry: tuple[int, int]) -> None:
        eid = self.pick_owner.get(p.pick_id)
        w = self.work.get(eid) if eid else None
        if w is None or p.pick_id not in w.waiting:
            return
        w.last_polarity_entry = max(w.last_polarity_entry, entry)
        row = w.picks[p.pick_id]
        row.update(
            polarity=p.polarity,
            p_up=round(p.probabilities[0], 6),
            p_down=round(p.probabilities[1], 6),
            p_unknown=round(p.probabilities[2], 6),
            model_version=p.model_version,
            reason=p.reason,
        )
        w.waiting.discard(p.pick_id)
        self.report["picks_classified"] += 1

    def _origin_acked(self, entry_ids: list[str]) -> set[str]:
        """The origin entries the mechanism group has read and acknowledged."""
        if not entry_ids:
            return set()
        key = self.bus.key("origins")
        info = {as_text(g["name"]): g for g in self.bus.client.xinfo_groups(key)}.get("mechanism")
        if info is None:
            return set()
        last = _id_tuple(as_text(info.get("last-delivered-id", b"0-0")))
        pending = {
            as_text(p["message_id"])
            for p in self.bus.client.xpending_range(
                key, "mechanism", min="-", max="+", count=100_000
            )
        }
        return {e for e in entry_ids if _id_tuple(e) <= last and e not in pending}

    # -- chunk intake
    def _intake(self, events: list[EventRecord], windows, arch: ArchiveReport) -> int:
        picks_out: list[Pick] = []
        for e in events:
            w = EventWork(e)
            self.work[e.event_id] = w
        for win in windows:
            eid, idx = win.key.rsplit("/", 1)
            w = self.work[eid]
            rec = w.event.picks[int(idx)]
            pick = window_pick(win)
            if pick.pick_id in self.pick_owner or pick.pick_id in w.picks:
                w.problems.append(f"{win.station_id}: duplicate pick at the same time, skipped")
                continue
            self.pick_owner[pick.pick_id] = eid
            w.picks[pick.pick_id] = {
                "pick_id": pick.pick_id,
                "station_id": pick.station_id,
                "time_epoch_s": pick.time_epoch_s,
                "input_time_epoch_s": rec.time_epoch_s,
                "analyst_polarity": rec.analyst_polarity,
                "onset": rec.onset,
                "snr": round(pick.snr, 3),
            }
            w.waiting.add(pick.pick_id)
            picks_out.append(pick)
        for key, why in arch.missing.items():
            eid, idx = key.rsplit("/", 1)
            rec = self.work[eid].event.picks[int(idx)]
            text = f"{rec.label}: {why}"
            self.work[eid].problems.append(text)
            self.report["picks_without_waveform"][f"{eid} {rec.label}"] = why
        self.report["bad_files"].update(arch.bad_files)
        self.report["files_read"] = self.report.get("files_read", 0) + arch.files_read
        for i in range(0, len(picks_out), 500):
            self.bus.publish_many("picks", picks_out[i : i + 500])
        return len(picks_out)

    def _mechanism_has_polarities_until(self) -> tuple[int, int]:
        """The newest polarities entry id up to which the mechanism group has stored every
        polarity (read and acknowledged)."""
        key = self.bus.key("polarities")
        info = {as_text(g["name"]): g for g in self.bus.client.xinfo_groups(key)}.get("mechanism")
        if info is None:
            return (0, 0)
        last = _id_tuple(as_text(info.get("last-delivered-id", b"0-0")))
        summary = self.bus.client.xpending(key, "mechanism")
        if int(summary.get("pending", 0)) and summary.get("min"):
            first_pending = _id_tuple(as_text(summary["min"]))
            last = min(last, (first_pending[0], first_pending[1] - 1))
        return last

    def _publish_origins(self, coords) -> None:
        ready = [w for w in self.work.values() if not w.waiting and w.origin_entry is None]
        if any(w.event.located for w in ready):
            stored_until = self._mechanism_has_polarities_until()
            ready = [
                w for w in ready if not w.event.located or w.last_polarity_entry <= stored_until
            ]
        for w in ready:
            e = w.event
            if not e.located:
                w.origin_entry = "-"  # nothing to invert: polarities only
                continue
            picks = [(pid, r["station_id"], r["time_epoch_s"]) for pid, r in w.picks.items()]
            arrivals, missing = event_arrivals(e, picks, coords, self.model)
            for sid in missing:
                w.problems.append(f"{sid}: station missing from the inventory (no azimuth)")
                self.report["stations_missing_from_inventory"].setdefault(sid, 0)
                self.report["stations_missing_from_inventory"][sid] += 1
            by_pick = {a.pick_id: a for a in arrivals}
            for pid, r in w.picks.items():
                a = by_pick.get(pid)
                if a is not None:
                    r.update(
                        azimuth_deg=round(a.azimuth_deg, 4),
                        takeoff_deg=round(a.takeoff_deg, 4),
                        distance_km=round(a.distance_km, 4),
                    )
            w.origin = Origin(
                event_id=e.event_id,
                revision=1,
                time_epoch_s=e.time_epoch_s,
                latitude_deg=e.latitude_deg,
                longitude_deg=e.longitude_deg,
                depth_km=e.depth_km,
                magnitude=e.magnitude,
                arrivals=tuple(sorted(arrivals, key=lambda a: a.pick_id)),
                method="reprocess",
                created_epoch_s=e.time_epoch_s if e.time_epoch_s > 0 else 0.0,
            )
            w.origin_entry = self.bus.publish("origins", w.origin)
            self.origin_owner[w.origin_entry] = e.event_id

    def _finish_done(self, journal) -> list[str]:
        waiting = [e for e in self.origin_owner]
        acked = self._origin_acked(waiting)
        if acked:
            self._read_results(0)  # the Mechanism was published with the ack: take it now
        done = []
        for w in list(self.work.values()):
            if w.waiting or w.origin_entry is None:
                continue
            if w.origin_entry != "-" and w.origin_entry not in acked:
                continue
            if w.origin_entry != "-":
                self.origin_owner.pop(w.origin_entry, None)
            if w.mechanism is None and w.origin is not None:
                w.mechanism = self._stored_mechanism(w.event.event_id)
            if w.mechanism is not None:
                self.report["mechanisms"] += 1
            if not w.event.located:
                self.report["events_without_origin"].append(w.event.event_id)
            journal.write(json.dumps(journal_row(w), separators=(",", ":")) + "\n")
            done.append(w.event.event_id)
            for pid in w.picks:
                self.pick_owner.pop(pid, None)
            del self.work[w.event.event_id]
        if done:
            journal.flush()
        return done

    def _stored_mechanism(self, event_id: str) -> Mechanism | None:
        """The mechanism worker's last published Mechanism of an event: it publishes none
        when an origin it already inverted (an earlier, interrupted run on the same Redis)
        gives the same answer again."""
        raw = self.bus.client.hget(self.bus.key(f"mech:event:{event_id}"), "mechanism")
        return Mechanism.from_json(raw) if raw else None

    def run(self, events: list[EventRecord], coords) -> dict[str, Any]:
        from tqdm import tqdm

        opts = self.opts
        self._ensure_groups()
        index = None
        if not (len(opts.waveforms) == 1 and is_sds_root(opts.waveforms[0])):
            index, bad = index_files(expand_paths(opts.waveforms))
            self.report["bad_files"].update(bad)
        q: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.5)
                    return True
                except queue.Full:
                    continue
            return False

        def reader() -> None:
            try:
                for day in days_of(events):  # each day's files are read once
                    reqs = [
                        Request(f"{e.event_id}/{i}", p.network, p.station, p.location,
                                p.channel, p.time_epoch_s)
                        for e in day for i, p in enumerate(e.picks)
                    ]  # fmt: skip
                    wins, arch = cut_windows(
                        reqs, opts.waveforms, readers=opts.readers, index=index
                    )
                    for part in split_chunks(day, wins, arch, opts.chunk_picks):
                        if not put(part):
                            return
            except BaseException as exc:  # surfaced in the main thread
                q.put(exc)
                return
            q.put(None)

        thread = threading.Thread(target=reader, name="archive-reader", daemon=True)
        thread.start()
        total_picks = sum(len(e.picks) for e in events)
        self.report["events"] += len(events)
        self.report["picks"] += total_picks
        bar = tqdm(total=len(events), unit="event", disable=not opts.progress, smoothing=0.1)
        t0 = time.monotonic()
        classified0 = self.report["picks_classified"]
        journal_path = opts.output / JOURNAL
        reading_done = False
        last_progress = time.monotonic()
        with open(journal_path, "a") as journal:
            try:
                while not (reading_done and not self.work):
                    in_flight = sum(len(w.waiting) for w in self.work.values())
                    if not reading_done and in_flight < 2 * opts.chunk_picks:
                        try:
                            item = q.get(timeout=0.05 if self.work else 5.0)
                        except queue.Empty:
                            item = False
                        if isinstance(item, BaseException):
                            raise item
                        if item is None:
                            reading_done = True
                        elif item is not False:
                            self._intake(*item)
                            last_progress = time.monotonic()
                    if self._read_results(100 if self.work else 0):
                        last_progress = time.monotonic()
                    self._publish_origins(coords)
                    done = self._finish_done(journal)
                    if done:
                        last_progress = time.monotonic()
                        bar.update(len(done))
                        rate = (self.report["picks_classified"] - classified0) / max(
                            time.monotonic() - t0, 1e-6
                        )
                        bar.set_postfix_str(f"{rate:,.0f} picks/s", refresh=False)
                    if self.work and time.monotonic() - last_progress > STALL_TIMEOUT_S:
                        raise TimeoutError(
                            f"no progress for {STALL_TIMEOUT_S:.0f} s with {len(self.work)} "
                            f"events in flight: are the polarity and mechanism workers running "
                            f"on {self.opts.redis or 'the embedded Redis'}? (dead letters: "
                            f"{self.bus.length('dead')})"
                        )
            finally:
                stop.set()
                bar.close()
        dt = time.monotonic() - t0
        self.report["seconds"] = round(dt, 3)
        n_cls = self.report["picks_classified"] - classified0
        self.report["picks_per_s"] = round(n_cls / dt, 1) if dt > 0 else None
        return self.report


def analyst_agreement(rows: list[dict]) -> dict[str, Any]:
    """Our polarities against the input's analyst first motions (where it has them)."""
    out: dict[str, Any] = {"labelled": 0, "agree": 0, "wrong": 0, "unknown": 0, "wrong_picks": []}
    for r in rows:
        for p in r["picks"]:
            if "polarity" not in p or not p.get("analyst_polarity"):
                continue
            out["labelled"] += 1
            if p["polarity"] == 0:
                out["unknown"] += 1
            elif p["polarity"] == p["analyst_polarity"]:
                out["agree"] += 1
            else:
                out["wrong"] += 1
                if len(out["wrong_picks"]) < MAX_LISTED:
                    out["wrong_picks"].append(f"{r['event_id']} {p['station_id']}")
    return out


def days_of(events: list[EventRecord]) -> list[list[EventRecord]]:
    """Events (in time order) grouped by the UTC day of their origin time."""
    out: list[list[EventRecord]] = []
    last = None
    for e in events:
        day = int(e.time_epoch_s // 86400)
        if day != last:
            out.append([])
            last = day
        out[-1].append(e)
    return out


def split_chunks(events: list[EventRecord], windows, arch: ArchiveReport, chunk_picks: int):
    """(events, windows, report) parts of about ``chunk_picks`` picks, in event order."""
    by_event: dict[str, list] = {}
    for w in windows:
        by_event.setdefault(w.key.rsplit("/", 1)[0], []).append(w)
    missing: dict[str, dict[str, str]] = {}
    for key, why in arch.missing.items():
        missing.setdefault(key.rsplit("/", 1)[0], {})[key] = why
    cur: list[EventRecord] = []
    n = 0
    first = True
    for i, e in enumerate(events):
        cur.append(e)
        n += len(e.picks)
        if n >= chunk_picks or i == len(events) - 1:
            rep = ArchiveReport(files_read=arch.files_read if first else 0)
            if first:
                rep.bad_files.update(arch.bad_files)
            for ev in cur:
                rep.missing.update(missing.get(ev.event_id, {}))
            yield cur, [w for ev in cur for w in by_event.get(ev.event_id, [])], rep
            cur, n, first = [], 0, False


def _id_tuple(entry_id: str) -> tuple[int, int]:
    a, _, b = entry_id.partition("-")
    return int(a), int(b or 0)


def reprocess(opts: Options) -> dict[str, Any]:
    """Run a reprocessing (see the module docstring); returns the report (also in DIR)."""
    from contextlib import ExitStack

    from firstmotion.run import stop_processes
    from workers.reprocess.outputs import write_outputs

    events = read_events(opts.events, origins=opts.origins)
    named_paths(opts.waveforms)  # a waveform path that is not there fails before any work
    opts.output.mkdir(parents=True, exist_ok=True)
    journal_path = opts.output / JOURNAL
    if not opts.resume and journal_path.exists():
        journal_path.unlink()
    done = read_journal(journal_path) if opts.resume else {}
    todo = [e for e in events if e.event_id not in done]
    if opts.inventory:
        coords = read_station_coordinates(opts.inventory)
    else:
        coords = {k: (lat, lon, 0.0) for k, (lat, lon) in stations_from_arrivals(events).items()}
        log.info("no inventory: %d station positions derived from the arrivals", len(coords))
    report: dict[str, Any]
    with ExitStack() as stack:
        url = opts.redis
        if url is None:
            from firstmotion.redis_server import RedisServer

            url = stack.enter_context(RedisServer()).url
        bus = Bus.from_url(url, opts.prefix)
        stack.callback(bus.close)
        procs: dict[str, subprocess.Popen] = {}
        if not opts.external_workers:
            procs = _start_workers(opts, url, opts.output / "logs")
            stack.callback(stop_processes, procs, 30.0)
        rp = Reprocessor(opts, bus)
        rp.report["events_skipped_resume"] = len(events) - len(todo)
        report = rp.run(todo, coords)
    rows = read_journal(journal_path)
    ordered = sorted(rows.values(), key=lambda r: (r["time_epoch_s"], r["event_id"]))
    report["outputs"] = write_outputs(ordered, opts.output, max_plots=opts.max_plots)
    report["events_total_in_journal"] = len(ordered)
    report["analyst_agreement"] = analyst_agreement(ordered)
    (opts.output / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    return report


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--events", nargs="+", required=True,
        help="QuakeML or another event format obspy reads (SEISAN S-files, NonLinLoc .hyp; a "
             "file or folder), HYPO71 phase file(s)/folder, the CSV pair events.csv picks.csv, "
             "or a picks CSV alone (events without origins)",
    )  # fmt: skip
    parser.add_argument("--origins", help="origins for HYPO71 phases (QuakeML or events CSV)")
    parser.add_argument(
        "--waveforms", nargs="+", required=True,
        help="files, folders, globs obspy reads, or an SDS archive root",
    )  # fmt: skip
    parser.add_argument(
        "--inventory", help="StationXML (default: station positions from the QuakeML arrivals)"
    )
    parser.add_argument("--velocity-model", help="1-D model: 4 columns, or depth_km vp_km_s")
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    parser.add_argument("--redis", help="Redis URL (default: a private embedded redis-server)")
    parser.add_argument(
        "--prefix", default="fm:",
        help="Redis key prefix (local workers get it too); on a live Redis use a prefix of its "
        "own, or the live associator and catalog would see the reprocessed picks and origins",
    )  # fmt: skip
    parser.add_argument("--polarity-replicas", type=int, default=1, help="local polarity workers")
    parser.add_argument(
        "--mechanism-replicas", type=int, default=1,
        help="local mechanism workers (safe here: each origin is published once, after its "
        "polarities are stored)",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="polarity device: auto, cpu, cuda[:N]")
    parser.add_argument(
        "--fir-correction", action="store_true",
        help="local polarity workers remove each channel's linear-phase FIR precursor (the "
        "--inventory responses' FIR stages) before reading",
    )  # fmt: skip
    parser.add_argument("--resume", action="store_true", help="skip events done before a kill")
    parser.add_argument(
        "--external-workers", action="store_true",
        help="start no local workers: they run elsewhere on --redis",
    )  # fmt: skip
    parser.add_argument("--readers", type=int, default=2, help="parallel archive readers")
    parser.add_argument("--chunk-picks", type=int, default=DEFAULT_CHUNK_PICKS)
    parser.add_argument("--max-plots", type=int, default=None, help="beachball PNGs (default all)")
    parser.add_argument("--config", default=None, help="TOML config for the workers")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.polarity_replicas < 0:
        print("firstmotion reprocess: --polarity-replicas must be >= 0", file=sys.stderr)
        return 2
    opts = Options(
        events=args.events, waveforms=args.waveforms, output=args.output,
        inventory=args.inventory, origins=args.origins, velocity_model=args.velocity_model,
        redis=args.redis, prefix=args.prefix, polarity_replicas=args.polarity_replicas,
        mechanism_replicas=max(1, args.mechanism_replicas),
        device=args.device, resume=args.resume, external_workers=args.external_workers,
        readers=args.readers, chunk_picks=args.chunk_picks, max_plots=args.max_plots,
        progress=not args.no_progress, config=args.config, fir_correction=args.fir_correction,
    )  # fmt: skip
    if args.fir_correction and not args.inventory:
        print("firstmotion reprocess: --fir-correction needs --inventory (the responses)",
              file=sys.stderr)  # fmt: skip
        return 2
    report = reprocess(opts)  # an input missing or of the wrong form: one line (cli), exit 2
    print(summary_text(report))
    return 0


def summary_text(report: dict[str, Any]) -> str:
    lines = [
        f"events {report['events']} (+{report['events_skipped_resume']} done before), "
        f"picks {report['picks']}, classified {report['picks_classified']}, "
        f"mechanisms {report['mechanisms']}, {report.get('picks_per_s') or 0:,.0f} picks/s",
    ]
    nw = report["picks_without_waveform"]
    if nw:
        lines.append(f"{len(nw)} pick(s) without waveform, e.g. " + "; ".join(
            f"{k}: {v}" for k, v in list(nw.items())[:3]))  # fmt: skip
    if report["bad_files"]:
        lines.append(f"{len(report['bad_files'])} file(s) skipped, e.g. " + "; ".join(
            f"{k}: {v}" for k, v in list(report["bad_files"].items())[:3]))  # fmt: skip
    miss = report["stations_missing_from_inventory"]
    if miss:
        lines.append(
            f"{len(miss)} station(s) missing from the inventory (polarities read, not used in "
            f"mechanisms): {', '.join(sorted(miss)[:10])}"
        )
    if report["events_without_origin"]:
        lines.append(f"{len(report['events_without_origin'])} event(s) without origin: "
                     "polarities only")  # fmt: skip
    agree = report.get("analyst_agreement") or {}
    if agree.get("labelled"):
        lines.append(
            f"against the analysts' first motions: {agree['agree']} agree, {agree['wrong']} "
            f"opposite, {agree['unknown']} unknown of {agree['labelled']}"
        )
    lines.append("details: report.json")
    return "\n".join(lines)
