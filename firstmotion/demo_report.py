"""The demo's results as one JSON document (``firstmotion demo --report FILE.json``).

Pure functions over the scenario's truth, the demo's per-event rows
(:func:`firstmotion.demo.summarise_pipeline` or :func:`~firstmotion.demo.summarise`) and the
messages the pipeline wrote (picks, origins, mechanisms). The document::

    {"events": [{"event_id", "detected", "catalog_id", "origin_error_km",
                 "epicentre_error_km", "depth_error_km", "kagan_deg", "polarity_accuracy",
                 "quality", "n_polarities", ...}, ...],
     "summary": {"n_true_events", "n_detected", "n_false_events", "n_with_mechanism",
                 "quality_counts", "n_true_p", "n_picks", "n_picks_matched", "pick_recall",
                 "pick_precision", "polarity": {"correct", "wrong", "unknown", "accuracy"},
                 "kagan_deg": {percentiles}, "origin_error_km": {percentiles},
                 "latency_s": {"first_pick_to_location", "location_to_mechanism",
                               "first_pick_to_mechanism": {percentiles}}}}

Missing values are ``null`` (an undetected event has no location error; a JSON number is
never NaN). A pick *matches* a true P arrival at the same ``NET.STA`` within
``PICK_MATCH_S`` seconds. Latencies are wall-clock seconds between the messages' creation
times (``created_epoch_s``), so they mean the same at any replay speed: from the earliest
pick of an event's first origin to that origin, from the first origin to the first
mechanism, and from the earliest pick to the first mechanism.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

PICK_MATCH_S = 0.5
PERCENTILES = (50, 90, 100)


def _station(station_id: str) -> str:
    return ".".join(station_id.split(".")[:2])


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def percentiles(values: Iterable[float]) -> dict[str, float | int | None]:
    """``{"n", "p50", "p90", "max"}`` of the finite values (``None`` when there are none);
    linear interpolation between order statistics (numpy's default)."""
    import numpy as np

    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    out: dict[str, float | int | None] = {"n": int(v.size)}
    for q in PERCENTILES:
        key = "max" if q == 100 else f"p{q}"
        out[key] = float(np.percentile(v, q)) if v.size else None
    return out


def match_picks(
    truth: dict[str, Any], picks: Sequence[Any], tolerance_s: float = PICK_MATCH_S
) -> tuple[int, int, int]:
    """``(n_true_p, n_true_p_picked, n_picks_matched)``: true P arrivals in the data, those
    with a pick at the same ``NET.STA`` within ``tolerance_s``, and picks near a true P."""
    from obspy import UTCDateTime

    true_p: dict[str, list[float]] = {}
    for event in truth["events"]:
        for arr in event["stations"]:
            if arr.get("p_in_data", True):
                t = float(UTCDateTime(arr["p_time"]).timestamp)
                true_p.setdefault(_station(arr["station_id"]), []).append(t)
    by_station: dict[str, list[float]] = {}
    for p in picks:
        if getattr(p, "phase", "P") == "P":
            by_station.setdefault(_station(p.station_id), []).append(p.time_epoch_s)
    picked = sum(
        1
        for sta, times in true_p.items()
        for t in times
        if any(abs(t - x) <= tolerance_s for x in by_station.get(sta, ()))
    )
    matched = sum(
        1
        for sta, times in by_station.items()
        for x in times
        if any(abs(t - x) <= tolerance_s for t in true_p.get(sta, ()))
    )
    n_true = sum(len(v) for v in true_p.values())
    return n_true, picked, matched


def event_latencies(
    catalog_id: str, picks: Sequence[Any], origins: Sequence[Any], mechanisms: Sequence[Any]
) -> dict[str, float | None]:
    """Wall-clock latencies of one catalog event (see the module doc)."""
    first_origin = min(
        (o for o in origins if o.event_id == catalog_id),
        key=lambda o: o.created_epoch_s,
        default=None,
    )
    first_mech = min(
        (m for m in mechanisms if m.event_id == catalog_id),
        key=lambda m: m.created_epoch_s,
        default=None,
    )
    out: dict[str, float | None] = {
        "first_pick_to_location": None,
        "location_to_mechanism": None,
        "first_pick_to_mechanism": None,
    }
    if first_origin is None:
        return out
    created = {p.pick_id: p.created_epoch_s for p in picks}
    pick_times = [created[a.pick_id] for a in first_origin.arrivals if a.pick_id in created]
    first_pick = min(pick_times) if pick_times else None
    if first_pick is not None:
        out["first_pick_to_location"] = first_origin.created_epoch_s - first_pick
    if first_mech is not None:
        out["location_to_mechanism"] = first_mech.created_epoch_s - first_origin.created_epoch_s
        if first_pick is not None:
            out["first_pick_to_mechanism"] = first_mech.created_epoch_s - first_pick
    return out


EVENT_KEYS = (
    "event_id", "magnitude", "detected", "catalog_id", "epicentre_error_km", "depth_error_km",
    "kagan_deg", "quality", "n_polarities", "n_picks", "polarity_correct", "polarity_wrong",
    "polarity_unknown", "fault_plane_uncertainty_deg", "revisions",
)  # fmt: skip


def event_report(row: dict[str, Any], latencies: dict[str, float | None]) -> dict[str, Any]:
    """One true event's object: the row's values (NaN as ``null``) plus
    ``origin_error_km`` (hypocentral: epicentre and depth errors combined), the truth and
    estimated strike/dip/rake and the latencies."""
    out: dict[str, Any] = {}
    for key in EVENT_KEYS:
        value = row.get(key)
        out[key] = _finite(value) if isinstance(value, float) else value
    out["detected"] = bool(row.get("detected", True))
    epi, dep = _finite(row.get("epicentre_error_km")), _finite(row.get("depth_error_km"))
    out["origin_error_km"] = None if epi is None or dep is None else math.hypot(epi, dep)
    out["polarity_accuracy"] = _finite(row.get("polarity_accuracy"))
    out["truth_sdr"] = list(row["truth_sdr"])
    out["estimate_sdr"] = list(row["estimate_sdr"]) if "estimate_sdr" in row else None
    out["latency_s"] = latencies
    return out


def build_report(
    truth: dict[str, Any],
    rows: Sequence[dict[str, Any]],
    *,
    picks: Sequence[Any] = (),
    origins: Sequence[Any] = (),
    mechanisms: Sequence[Any] = (),
    false_events: int = 0,
    mode: str = "pipeline",
) -> dict[str, Any]:
    """The report document (see the module doc)."""
    events = []
    for row in rows:
        cid = row.get("catalog_id") or row["event_id"]  # truth mode: the true event id
        events.append(event_report(row, event_latencies(cid, picks, origins, mechanisms)))
    n_true, picked, matched = match_picks(truth, picks)
    n_picks = sum(1 for p in picks if getattr(p, "phase", "P") == "P")
    correct = sum(int(r.get("polarity_correct", 0)) for r in rows)
    wrong = sum(int(r.get("polarity_wrong", 0)) for r in rows)
    unknown = sum(int(r.get("polarity_unknown", 0)) for r in rows)
    qualities: dict[str, int] = {}
    for e in events:
        if e["quality"]:
            qualities[e["quality"]] = qualities.get(e["quality"], 0) + 1
    summary = {
        "mode": mode,
        "n_true_events": len(events),
        "n_detected": sum(e["detected"] for e in events),
        "n_false_events": int(false_events),
        "n_with_mechanism": sum(e["estimate_sdr"] is not None for e in events),
        "quality_counts": dict(sorted(qualities.items())),
        "n_true_p": n_true,
        "n_true_p_picked": picked,
        "n_picks": n_picks,
        "n_picks_matched": matched,
        "pick_recall": picked / n_true if n_true else None,
        "pick_precision": matched / n_picks if n_picks else None,
        "polarity": {
            "correct": correct,
            "wrong": wrong,
            "unknown": unknown,
            "accuracy": correct / (correct + wrong) if correct + wrong else None,
        },
        "kagan_deg": percentiles(e["kagan_deg"] for e in events),
        "origin_error_km": percentiles(e["origin_error_km"] for e in events),
        "latency_s": {
            key: percentiles(e["latency_s"][key] for e in events)
            for key in (
                "first_pick_to_location",
                "location_to_mechanism",
                "first_pick_to_mechanism",
            )
        },  # fmt: skip
    }
    return {"events": events, "summary": summary}
