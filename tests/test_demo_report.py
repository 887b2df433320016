"""``firstmotion demo --report``: the per-event objects and the summary, on hand-made inputs."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace as NS

import pytest

from firstmotion.demo_report import build_report, match_picks, percentiles

T = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _iso(t: float) -> str:
    from obspy import UTCDateTime

    return str(UTCDateTime(t))


TRUTH = {
    "events": [
        {"event_id": "e1", "stations": [
            {"station_id": "FM.A..HHZ", "p_time": _iso(T + 3.0)},
            {"station_id": "FM.B..HHZ", "p_time": _iso(T + 4.0)},
            {"station_id": "FM.C..HHZ", "p_time": _iso(T + 5.0), "p_in_data": False},
        ]},
        {"event_id": "e2", "stations": [
            {"station_id": "FM.A..HHZ", "p_time": _iso(T + 103.0)},
            {"station_id": "FM.B..HHZ", "p_time": _iso(T + 104.0)},
        ]},
    ]
}  # fmt: skip


def _pick(pid, sta, t, created):
    return NS(pick_id=pid, station_id=sta, time_epoch_s=t, created_epoch_s=created, phase="P")


PICKS = [
    _pick("p1", "FM.A..EHZ", T + 3.2, 1000.0),  # another channel of the same station: counts
    _pick("p2", "FM.B..HHZ", T + 4.6, 1001.0),  # 0.6 s late: not a match
    _pick("p3", "FM.A..HHZ", T + 103.0, 2000.0),
    _pick("p4", "FM.Z..HHZ", T + 50.0, 1500.0),  # no true P near it
]
ORIGINS = [
    NS(event_id="c1", created_epoch_s=1004.0, arrivals=(NS(pick_id="p1"), NS(pick_id="p2"))),
    NS(event_id="c1", created_epoch_s=1010.0, arrivals=(NS(pick_id="p1"),)),  # a revision
]
MECHANISMS = [NS(event_id="c1", created_epoch_s=1009.0), NS(event_id="c1", created_epoch_s=1020.0)]
ROWS = [
    {"event_id": "e1", "magnitude": 2.0, "truth_sdr": (10, 50, 90), "detected": True,
     "catalog_id": "c1", "epicentre_error_km": 3.0, "depth_error_km": -4.0, "n_picks": 2,
     "polarity_correct": 9, "polarity_wrong": 1, "polarity_unknown": 2, "polarity_accuracy": 0.9,
     "estimate_sdr": (12, 48, 85), "kagan_deg": 7.5, "quality": "B", "n_polarities": 10,
     "fault_plane_uncertainty_deg": 20.0, "revisions": 2, "mechanism": object()},
    {"event_id": "e2", "magnitude": 1.5, "truth_sdr": (0, 90, 0), "detected": False,
     "n_picks": 0, "polarity_correct": 0, "polarity_wrong": 0, "polarity_unknown": 0,
     "polarity_accuracy": float("nan")},
]  # fmt: skip


def test_picks_match_true_p_arrivals_by_station_within_tolerance():
    assert match_picks(TRUTH, PICKS) == (4, 2, 2)  # C's P is not in the data
    assert match_picks(TRUTH, PICKS, tolerance_s=1.0) == (4, 3, 3)


def test_report_has_one_object_per_true_event_and_a_summary():
    report = build_report(TRUTH, ROWS, picks=PICKS, origins=ORIGINS, mechanisms=MECHANISMS,
                          false_events=1)  # fmt: skip
    json.dumps(report, allow_nan=False)  # strict JSON: no NaN anywhere
    e1, e2 = report["events"]
    assert e1["origin_error_km"] == pytest.approx(5.0)  # hypot(3, 4)
    assert (e1["kagan_deg"], e1["quality"], e1["n_polarities"]) == (7.5, "B", 10)
    assert e1["polarity_accuracy"] == 0.9 and e1["estimate_sdr"] == [12, 48, 85]
    # first origin at 1004 from picks created at 1000 and 1001; first mechanism at 1009
    assert e1["latency_s"] == {"first_pick_to_location": 4.0, "location_to_mechanism": 5.0,
                               "first_pick_to_mechanism": 9.0}  # fmt: skip
    assert not e2["detected"] and e2["origin_error_km"] is None and e2["kagan_deg"] is None
    assert e2["polarity_accuracy"] is None and e2["estimate_sdr"] is None
    s = report["summary"]
    assert (s["n_true_events"], s["n_detected"], s["n_false_events"]) == (2, 1, 1)
    assert s["n_with_mechanism"] == 1 and s["quality_counts"] == {"B": 1}
    assert s["pick_recall"] == 0.5 and s["pick_precision"] == 0.5 and s["n_picks"] == 4
    assert s["polarity"] == {"correct": 9, "wrong": 1, "unknown": 2, "accuracy": 0.9}
    assert s["latency_s"]["first_pick_to_mechanism"] == {"n": 1, "p50": 9.0, "p90": 9.0,
                                                         "max": 9.0}  # fmt: skip
    assert s["origin_error_km"]["n"] == 1


def test_percentiles_ignore_missing_values():
    p = percentiles([1.0, None, 3.0, float("nan"), 2.0])
    assert p["n"] == 3 and p["p50"] == 2.0 and p["max"] == 3.0
    assert math.isclose(p["p90"], 2.8)
    assert percentiles([]) == {"n": 0, "p50": None, "p90": None, "max": None}


def test_pipeline_rows_judge_p_arrivals_only():
    """A P-labelled pick the associator took as the S arrival has a polarity read (the polarity
    stage reads every P-labelled pick), but it is not a first motion: not counted."""
    from firstmotion.demo import summarise_pipeline

    truth = {"events": [{
        "event_id": "e1", "origin_time": _iso(T), "latitude": 10.0, "longitude": 20.0,
        "depth_km": 5.0, "magnitude": 2.0, "strike": 10.0, "dip": 50.0, "rake": 90.0,
        "stations": [{"station_id": "FM.A..HHZ", "polarity": 1},
                     {"station_id": "FM.B..HHZ", "polarity": -1}],
    }]}  # fmt: skip
    arrivals = (
        NS(pick_id="pA", station_id="FM.A..HHZ", phase="P"),
        NS(pick_id="pB", station_id="FM.B..HHZ", phase="P"),
        NS(pick_id="pA2", station_id="FM.A..HHZ", phase="S"),  # a P-labelled pick at the S
    )
    origin = NS(event_id="c1", time_epoch_s=T + 0.2, latitude_deg=10.0, longitude_deg=20.0,
                depth_km=5.5, arrivals=arrivals)  # fmt: skip
    pols = [NS(pick_id="pA", polarity=1), NS(pick_id="pB", polarity=-1),
            NS(pick_id="pA2", polarity=-1)]  # fmt: skip
    rows, false_events = summarise_pipeline(truth, [(origin, None)], pols, [])
    assert false_events == 0 and rows[0]["detected"]
    assert (rows[0]["polarity_correct"], rows[0]["polarity_wrong"]) == (2, 0)
    assert rows[0]["n_picks"] == 3
