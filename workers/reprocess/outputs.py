"""The files of a reprocessing run, written from its journal (one row per done event).

* ``polarities.csv``: :data:`POLARITY_COLUMNS`, one row per classified pick (polarity +1 up,
  -1 down, 0 unknown; the three probabilities of the polarity model; why a read is unknown or
  was re-read, the ``Polarity`` message's ``reason``);
* ``mechanisms.csv``: :data:`MECHANISM_COLUMNS`, one row per event with a mechanism;
* ``catalog.xml``: QuakeML 1.2 (through :func:`firstmotion.quakeml.to_obspy_catalog`): each
  event's origin with its arrivals, every classified P pick with ``polarity`` set and the
  probabilities in a comment (``p_up=...; p_down=...; p_unknown=...``), and the
  FocalMechanism (both nodal planes, quality, misfit, station polarity count, azimuthal gap);
  events without a known origin carry their picks only;
* ``beachballs/<event_id>.png``: the mechanism with the polarities used;
* ``skhash/polarities.csv`` and ``skhash/stations.csv``: SKHASH's polarity input (``p_polarity``
  = polarity x weight, with the precomputed ``azimuth``/``takeoff`` columns that ``firstmotion
  invert --format skhash-csv`` reads too) and station file.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

POLARITY_COLUMNS = (
    "event_id", "origin_time", "station_id", "pick_time", "polarity", "p_up", "p_down",
    "p_unknown", "reason",
)  # fmt: skip
MECHANISM_COLUMNS = (
    "event_id", "origin_time", "latitude_deg", "longitude_deg", "depth_km", "strike", "dip",
    "rake", "quality", "n_polarities", "misfit", "fault_plane_uncertainty_deg",
)  # fmt: skip
SKHASH_COLUMNS = (
    "event_id", "network", "station", "location", "channel", "p_polarity", "origin_latitude",
    "origin_longitude", "origin_depth_km", "azimuth", "takeoff", "azimuth_uncertainty",
    "takeoff_uncertainty",
)  # fmt: skip
SKHASH_STATION_COLUMNS = ("network", "station", "location", "channel", "latitude", "longitude")


def iso(epoch_s: float) -> str:
    """UTC ISO-8601 with microseconds and ``Z``."""
    t = datetime.fromtimestamp(epoch_s, tz=timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _classified(row: dict) -> list[dict]:
    return [p for p in row["picks"] if "polarity" in p]


def write_polarities_csv(rows: list[dict], path: Path) -> int:
    n = 0
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(POLARITY_COLUMNS)
        for r in rows:
            for p in _classified(r):
                w.writerow([
                    r["event_id"], iso(r["time_epoch_s"]), p["station_id"],
                    iso(p["time_epoch_s"]), int(p["polarity"]), f"{p['p_up']:.4f}",
                    f"{p['p_down']:.4f}", f"{p['p_unknown']:.4f}", p.get("reason", ""),
                ])  # fmt: skip
                n += 1
    return n


def write_mechanisms_csv(rows: list[dict], path: Path) -> int:
    n = 0
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MECHANISM_COLUMNS)
        for r in rows:
            m = r.get("mechanism")
            if not m:
                continue
            where = [r.get(k) for k in ("latitude_deg", "longitude_deg", "depth_km")]
            w.writerow([
                r["event_id"], iso(r["time_epoch_s"]),
                *("" if v is None else f"{v:.5f}" for v in where),
                f"{m['strike']:.1f}", f"{m['dip']:.1f}",
                f"{m['rake']:.1f}", m["quality"], m["n_polarities"], f"{m['misfit']:.4f}",
                f"{m['fault_plane_uncertainty_deg']:.1f}",
            ])  # fmt: skip
            n += 1
    return n


def write_skhash(rows: list[dict], folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    stations: dict[str, tuple] = {}
    n = 0
    with open(folder / "polarities.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SKHASH_COLUMNS)
        for r in rows:
            if r.get("latitude_deg") is None:
                continue
            for p in _classified(r):
                if not p["polarity"] or "azimuth_deg" not in p:
                    continue
                net, sta, loc, cha = p["station_id"].split(".")
                weight = abs(p["p_up"] - p["p_down"])
                w.writerow([
                    r["event_id"], net, sta, loc or "--", cha, f"{p['polarity'] * weight:.4f}",
                    r["latitude_deg"], r["longitude_deg"], r["depth_km"], p["azimuth_deg"],
                    p["takeoff_deg"], 5, 10,
                ])  # fmt: skip
                stations[p["station_id"]] = (net, sta, loc or "--", cha)
                n += 1
    positions = {}
    for r in rows:
        for a in (r.get("origin") or {}).get("arrivals", []):
            positions.setdefault(a["station_id"], a)
    with open(folder / "stations.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(SKHASH_STATION_COLUMNS)
        for sid, (net, sta, loc, cha) in sorted(stations.items()):
            lat, lon = _station_position(rows, sid)
            w.writerow([net, sta, loc, cha, f"{lat:.6f}", f"{lon:.6f}"])
    return n


def _station_position(rows: list[dict], station_id: str) -> tuple[float, float]:
    """Station position from the first event that has it (epicentre + azimuth + distance)."""
    from firstmotion.event_catalogs import destination

    for r in rows:
        for p in r["picks"]:
            if p["station_id"] == station_id and "azimuth_deg" in p:
                return destination(
                    r["latitude_deg"], r["longitude_deg"], p["azimuth_deg"],
                    p["distance_km"] / 111.19492664455873,
                )  # fmt: skip
    return float("nan"), float("nan")


def to_catalog(rows: list[dict]) -> Any:
    """The obspy Catalog of the run (see the module docstring)."""
    from obspy import UTCDateTime
    from obspy.core.event import Catalog, Comment, Event, Pick, ResourceIdentifier, WaveformStreamID

    from firstmotion.messages import CatalogEvent, Mechanism, Origin
    from firstmotion.quakeml import to_obspy_catalog, uri_part

    polarity_word = {1: "positive", -1: "negative", 0: "undecidable"}
    cat = Catalog()
    for r in rows:
        if r.get("origin"):
            ce = CatalogEvent(
                event_id=r["event_id"],
                revision=1,
                status="final",
                origin=Origin.from_dict(r["origin"]),
                mechanism=Mechanism.from_dict(r["mechanism"]) if r.get("mechanism") else None,
                updated_epoch_s=r["time_epoch_s"] if r["time_epoch_s"] > 0 else 0.0,
            )
            ev = to_obspy_catalog([ce])[0]
        else:
            ev = Event(resource_id=ResourceIdentifier(f"smi:firstmotion/{r['event_id']}"))
        base = str(ev.resource_id)
        by_id = {str(p.resource_id): p for p in ev.picks}
        for p in _classified(r):
            rid = f"{base}/pick/{uri_part(p['pick_id'])}"
            pick = by_id.get(rid)
            if pick is None:
                net, sta, loc, cha = p["station_id"].split(".")
                pick = Pick(
                    resource_id=ResourceIdentifier(rid),
                    time=UTCDateTime(p["time_epoch_s"]),
                    waveform_id=WaveformStreamID(net, sta, loc, cha),
                    phase_hint="P",
                    evaluation_mode="automatic",
                )
                ev.picks.append(pick)
            pick.polarity = polarity_word[int(p["polarity"])]
            pick.comments.append(
                Comment(
                    text=f"p_up={p['p_up']:.4f}; p_down={p['p_down']:.4f}; "
                    f"p_unknown={p['p_unknown']:.4f}; model={p.get('model_version', '')}",
                    resource_id=ResourceIdentifier(f"{rid}/probabilities"),
                )
            )
        cat.append(ev)
    return cat


def write_beachballs(rows: list[dict], folder: Path, max_plots: int | None = None) -> int:
    import numpy as np

    from firstmotion.plot import plot_mechanism

    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for r in rows:
        m = r.get("mechanism")
        if not m or (max_plots is not None and n >= max_plots):
            continue
        picks = m.get("picks", [])
        plot_mechanism(
            folder / f"{r['event_id']}.png",
            m["strike"], m["dip"], m["rake"],
            np.array([p["azimuth_deg"] for p in picks]),
            np.array([p["takeoff_deg"] for p in picks]),
            np.array([p["polarity"] for p in picks]),
            title=f"{r['event_id']} {iso(r['time_epoch_s'])[:19]}  {m['quality']}",
        )  # fmt: skip
        n += 1
    return n


def write_outputs(rows: list[dict], out: Path, *, max_plots: int | None = None) -> dict[str, int]:
    """Every output file of the run from its journal rows (sorted by the caller)."""
    counts = {
        "polarities_csv_rows": write_polarities_csv(rows, out / "polarities.csv"),
        "mechanisms_csv_rows": write_mechanisms_csv(rows, out / "mechanisms.csv"),
        "skhash_rows": write_skhash(rows, out / "skhash"),
    }
    cat = to_catalog(rows)
    cat.write(str(out / "catalog.xml"), format="QUAKEML")
    counts["catalog_events"] = len(cat)
    counts["beachballs"] = write_beachballs(rows, out / "beachballs", max_plots)
    return counts
