"""``firstmotion catalog export``: QuakeML through obspy's reader, JSON and CSV round trips."""

from __future__ import annotations

import csv
import io
import json
import warnings

import pytest
from test_catalog import T0, make_mechanism, make_origin

from firstmotion.bus import Bus
from firstmotion.messages import CatalogEvent
from firstmotion.quakeml import pick_time_epoch_s
from workers.catalog import CatalogWorker, retract_origin
from workers.catalog_export import CSV_COLUMNS, export


@pytest.fixture
def filled(redis_client, redis_url):
    """A catalog with one event with a mechanism, one without, one retracted."""
    bus = Bus.from_url(redis_url)
    o1 = make_origin("evM", magnitude=2.7)
    bus.publish("origins", o1)
    bus.publish("mechanisms", make_mechanism("evM", quality="B", strike=123.0, origin=o1))
    bus.publish("origins", make_origin("evN", t=T0 + 30, magnitude=None))
    gone = make_origin("evX", t=T0 + 60)
    bus.publish("origins", gone)
    retract_origin(bus, gone)
    CatalogWorker(bus, block_ms=50).run(drain=True, timeout_s=20)
    bus.close()
    return redis_url


def _run(redis_url, tmp_path, fmt, *extra):
    from firstmotion.cli import main

    out = tmp_path / f"cat.{fmt}"
    rc = main(["catalog", "export", "--redis", redis_url, "--format", fmt, "--output", str(out),
               *extra])  # fmt: skip
    assert rc == 0
    return out


def test_quakeml_round_trips_through_obspy(filled, tmp_path):
    from obspy import read_events

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = _run(filled, tmp_path, "quakeml")
    assert not [w for w in caught if "QuakeML" in str(w.message)]  # valid resource ids
    cat = read_events(str(out), format="QUAKEML")
    assert [str(e.resource_id).rsplit("/", 1)[-1] for e in cat] == ["evN", "evM"]  # newest first
    ev = cat[1]
    fm = ev.preferred_focal_mechanism()
    np1, np2 = fm.nodal_planes.nodal_plane_1, fm.nodal_planes.nodal_plane_2
    assert (np1.strike, np1.dip, np1.rake) == pytest.approx((123.0, 60.0, 90.0))
    assert (np2.strike, np2.dip, np2.rake) == pytest.approx((303.0, 30.0, 90.0))
    assert fm.nodal_planes.preferred_plane == 1
    assert "quality=B" in fm.comments[0].text
    assert fm.station_polarity_count == 6 and fm.misfit == pytest.approx(0.05)
    origin = ev.preferred_origin()
    assert origin.time.timestamp == pytest.approx(T0)
    assert origin.depth == pytest.approx(8000.0)
    assert ev.preferred_magnitude().mag == pytest.approx(2.7)
    # the polarities as picks + arrivals, tied together, signs and takeoff convention kept
    mech = make_mechanism("evM", quality="B", strike=123.0, origin=make_origin("evM"))
    want = {p.station_id: p for p in mech.picks}
    assert len(ev.picks) == len(want) == len(origin.arrivals)
    by_id = {str(p.resource_id): p for p in ev.picks}
    for arr in origin.arrivals:
        pick = by_id[str(arr.pick_id)]
        src = want[pick.waveform_id.get_seed_string()]
        assert pick.polarity == ("positive" if src.polarity > 0 else "negative")
        assert pick.time.timestamp == pytest.approx(pick_time_epoch_s(src.pick_id))
        assert arr.takeoff_angle == pytest.approx(180.0 - src.takeoff_deg)  # from down
        assert arr.azimuth == pytest.approx(src.azimuth_deg)
    assert cat[0].focal_mechanisms == []  # evN has none


def test_json_and_csv_exports(filled, tmp_path):
    events = [
        CatalogEvent.from_dict(d) for d in json.loads(_run(filled, tmp_path, "json").read_text())
    ]
    assert [e.event_id for e in events] == ["evN", "evM"]
    assert events[1].mechanism.strike == 123.0 and events[1].mechanism.quality == "B"
    rows = list(csv.DictReader(io.StringIO(_run(filled, tmp_path, "csv").read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r["event_id"] for r in rows] == ["evN", "evM"]
    assert rows[1]["strike"] == "123.0" and rows[1]["quality"] == "B"
    assert rows[0]["strike"] == "" and rows[0]["magnitude"] == ""
    assert rows[1]["origin_time_utc"].startswith("2023-11-14T22:13:20")


def test_export_a_span_of_origin_times(filled, tmp_path):
    """--since / --before keep the events with an origin time in [since, before) (UTC)."""
    from obspy import UTCDateTime

    def ids(*extra):
        out = _run(filled, tmp_path, "json", *extra)
        return [e["event_id"] for e in json.loads(out.read_text())]

    at = lambda dt: str(UTCDateTime(T0 + dt))  # noqa: E731
    assert ids("--before", at(30)) == ["evM"]  # evN's origin is T0 + 30: not before it
    assert ids("--since", at(30)) == ["evN"]
    assert ids("--since", at(-1), "--before", at(31)) == ["evN", "evM"]
    assert ids("--since", at(31)) == []
    from firstmotion.cli import main

    assert main(["catalog", "export", "--redis", filled, "--since", "last week"]) == 2


def test_include_deleted(filled, redis_client):
    from workers.catalog import CatalogReader

    reader = CatalogReader(redis_client)
    assert [e.event_id for e in reader.all_events()] == ["evN", "evM"]
    everything = reader.all_events(include_deleted=True)
    assert [(e.event_id, e.status) for e in everything][0] == ("evX", "deleted")
    from obspy import read_events

    cat = read_events(io.BytesIO(export(everything, "quakeml")), format="QUAKEML")
    assert cat[0].event_type == "not existing"


def test_unknown_format_is_a_value_error():
    with pytest.raises(ValueError, match="format"):
        export([], "xml")


def test_invert_reads_the_json_export_to_check_the_stations(filled, tmp_path):
    """The live catalog's JSON export is an input of `firstmotion invert` (told by its
    content): each event with a mechanism gives the polarities that mechanism used, so
    `--station-check` runs on what the network's own pipeline read."""
    from firstmotion.cli import main
    from workers.mechanism.cli import read_catalog_json

    exported = _run(filled, tmp_path, "json")
    events = read_catalog_json(exported)
    assert [e.event_id for e in events] == ["evM"]  # evN has no mechanism
    everything = json.loads(exported.read_text())
    evm = next(e for e in everything if e["event_id"] == "evM")
    gone = dict(evm, status="deleted")  # as `--include-deleted` exports a retracted event
    (tmp_path / "with_deleted.json").write_text(json.dumps([gone]))
    assert read_catalog_json(tmp_path / "with_deleted.json") == []
    (tmp_path / "with_deleted.json").write_text(json.dumps([*everything, gone]))
    assert [e.event_id for e in read_catalog_json(tmp_path / "with_deleted.json")] == ["evM"]
    want = make_mechanism("evM", quality="B", strike=123.0, origin=make_origin("evM")).picks
    assert events[0].station == tuple(p.station_id for p in want)
    assert events[0].polarity.tolist() == [p.polarity for p in want]
    assert events[0].time_s == pytest.approx(T0)
    out, report = tmp_path / "m.jsonl", tmp_path / "stations.csv"
    rc = main(["invert", "--input", str(exported), "--output", str(out), "--min-polarities", "4",
               "--station-check", str(report), "--no-progress"])  # fmt: skip
    assert rc == 0
    assert [json.loads(line)["n_polarities"] for line in out.open()] == [len(want)]
    assert next(csv.reader(report.open()))[:3] == ["station", "agree", "disagree"]
    bad = tmp_path / "bad.json"
    bad.write_text('[{"event_id": "x"}]')
    assert main(["invert", "--input", str(bad), "--output", str(out), "--no-progress"]) == 2


def test_invert_warns_that_a_catalog_export_has_its_reversals_applied(filled, tmp_path, capsys):
    """The export's polarities are those the mechanisms used, the live reversal list and
    StationXML reversals applied: a reversal list given again flips its stations back, so
    `invert` says so (and still applies it: the list may hold reversals the stages lacked)."""
    from firstmotion.cli import main
    from workers.mechanism.cli import read_catalog_json

    exported = _run(filled, tmp_path, "json")
    first = read_catalog_json(exported)[0]
    listed = tmp_path / "reversals.csv"
    listed.write_text(f"station,start_time,end_time\n{first.station[0]},0,0\n")
    out = tmp_path / "m.jsonl"
    capsys.readouterr()
    rc = main(["invert", "--input", str(exported), "--output", str(out), "--min-polarities",
               "4", "--reversals", str(listed), "--no-progress"])  # fmt: skip
    assert rc == 0
    assert "reversal list and StationXML reversals applied" in capsys.readouterr().err
    main(["invert", "--input", str(exported), "--output", str(out), "--min-polarities", "4",
          "--no-progress"])  # fmt: skip
    assert "reversals applied" not in capsys.readouterr().err


def test_station_delays_from_the_live_catalog(redis_client, redis_url, tmp_path):
    """`firstmotion catalog station-delays --redis`: the standing events' arrivals (a
    retracted event's left out), per station the median residual less the median over
    stations, as from an exported file."""
    from dataclasses import replace

    from firstmotion.cli import main
    from firstmotion.station_delays import read_station_delays

    bus = Bus.from_url(redis_url)
    late = {"XX.S00": 0.30, "XX.S01": -0.10, "XX.S02": 0.0}
    for k, eid in enumerate(("evA", "evB", "evC", "evGone", "evReprocessed")):
        o = make_origin(eid, t=T0 + 60 * k, n=3)
        arrivals = tuple(replace(a, residual_s=late[a.station_id[:6]] + 0.01 * k)
                         for a in o.arrivals)  # fmt: skip
        if eid == "evReprocessed":  # located elsewhere: arrivals without residuals
            arrivals = tuple(replace(a, residual_s=None) for a in arrivals)
        if eid == "evGone":
            arrivals = tuple(replace(a, residual_s=0.9) for a in arrivals)
        o = replace(o, arrivals=arrivals)
        bus.publish("origins", o)
        if eid == "evGone":
            retract_origin(bus, o)
    CatalogWorker(bus, block_ms=50).run(drain=True, timeout_s=20)
    bus.close()
    out = tmp_path / "delays.csv"
    assert main(["catalog", "station-delays", "--redis", redis_url, "--output", str(out),
                 "--min-arrivals", "3"]) == 0  # fmt: skip
    got = read_station_delays(out)
    assert got["XX.S00"] == pytest.approx((0.30, 0.0), abs=1e-6)
    assert got["XX.S01"] == pytest.approx((-0.10, 0.0), abs=1e-6)
    assert got["XX.S02"] == pytest.approx((0.0, 0.0), abs=1e-6)
    assert main(["catalog", "station-delays", "--redis", "redis://127.0.0.1:1/0", "--output",
                 str(out)]) == 1  # fmt: skip


def test_quakeml_picks_carry_their_times_from_the_arrival_or_the_stream_pick_id(
    redis_client, redis_url, tmp_path
):
    """Every exported pick has its time: from the arrival (to the microsecond), else from
    the pick id in any of the stream's forms (``ID@t``, the STA/LTA stage's ``ID:t``, the
    learned picker's ``ID:P:t``); the live catalog's picks were exported with an empty time,
    invalid QuakeML."""
    from dataclasses import replace

    from obspy import read_events

    assert pick_time_epoch_s("XX.A..HHZ@1700000003.250") == 1700000003.25
    assert pick_time_epoch_s("XX.A..HHZ:1700000003.250") == 1700000003.25
    assert pick_time_epoch_s("XX.A..HHZ:S:1700000003.250") == 1700000003.25
    o = make_origin("evT")
    stamped = [
        replace(o.arrivals[0], pick_id="XX.S00..HHZ:1700000003.250"),
        replace(o.arrivals[1], pick_id="XX.S01..HHZ:P:1700000004.500"),
        replace(o.arrivals[2], time_epoch_s=T0 + 5.123456),
    ]
    o = replace(o, arrivals=(*stamped, *o.arrivals[3:]))
    bus = Bus.from_url(redis_url)
    bus.publish("origins", o)
    CatalogWorker(bus, block_ms=50).run(drain=True, timeout_s=20)
    bus.close()
    (ev,) = read_events(str(_run(redis_url, tmp_path, "quakeml")), format="QUAKEML")
    times = {p.waveform_id.station_code: p.time.timestamp for p in ev.picks}
    assert None not in times.values() and len(times) == 6
    assert times["S00"] == pytest.approx(1700000003.25, abs=1e-6)
    assert times["S01"] == pytest.approx(1700000004.5, abs=1e-6)
    assert times["S02"] == pytest.approx(T0 + 5.123456, abs=1e-6)
