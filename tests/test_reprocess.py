"""firstmotion reprocess: input formats, archive reading, outputs, problems, kill + resume."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from firstmotion.archive import Request, cut_windows, is_sds_root
from firstmotion.event_catalogs import (
    destination,
    parse_hypo71_card,
    read_csv_pair,
    read_events,
    read_hypo71,
    read_quakeml,
    stations_from_arrivals,
)
from firstmotion.messages import BINARY_SAMPLES_FIELD, Pick, decode, encode, make_pick_id
from firstmotion.velocity import VelocityModel
from workers.reprocess.outputs import MECHANISM_COLUMNS, POLARITY_COLUMNS

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z


def _trace(sta="ABC", cha="HHZ", net="XX", loc="", rate=100.0, n=6000, start=T0, seed=0):
    from obspy import Trace, UTCDateTime

    rng = np.random.default_rng(seed)
    tr = Trace(rng.normal(0, 10, n).astype(np.float32))
    tr.stats.update(
        dict(network=net, station=sta, location=loc, channel=cha, sampling_rate=rate,
             starttime=UTCDateTime(start))
    )  # fmt: skip
    return tr


# --------------------------------------------------------------------------- wire format


def test_pick_entry_carries_raw_float32_bytes_and_old_json_entries_still_decode():
    x = np.random.default_rng(1).normal(0, 1, 700).astype(np.float32)
    pick = Pick(
        pick_id=make_pick_id("XX.ABC..HHZ", T0), station_id="XX.ABC..HHZ", time_epoch_s=T0,
        sampling_rate_hz=100.0, start_time_epoch_s=T0 - 5, pick_index=500, samples=x,
        snr=3.0, amplitude=1.0,
    )  # fmt: skip
    fields = encode(pick)
    assert fields[BINARY_SAMPLES_FIELD] == x.astype("<f4").tobytes()
    assert b"samples" not in fields["data"]  # no base64 copy inside the JSON
    back = decode({k.encode(): v for k, v in fields.items()})
    assert back == pick and back.samples.dtype == np.float32
    old = encode(pick, binary=False)
    assert BINARY_SAMPLES_FIELD not in old and decode(old) == pick
    bad = dict(fields, **{BINARY_SAMPLES_FIELD: b"abc"})
    with pytest.raises(ValueError, match="float32"):
        decode(bad)
    # the window limit holds for raw bytes too (250,000 samples decoded before)
    huge = dict(fields, **{BINARY_SAMPLES_FIELD: np.zeros(250_000, "<f4").tobytes()})
    with pytest.raises(ValueError, match="250000 samples is more than 100000"):
        decode(huge)


# --------------------------------------------------------------------------- events


def test_hypo71_card_seconds_past_sixty_and_first_motion():
    rec = parse_hypo71_card("T107IPD0 110113195961.25       43.93ISN1\r\n")
    from obspy import UTCDateTime

    assert rec.station == "T107" and rec.analyst_polarity == -1 and rec.onset == "impulsive"
    assert rec.time_epoch_s == pytest.approx(UTCDateTime(2011, 1, 13, 20, 0, 1.25).timestamp)
    assert parse_hypo71_card("                 10") is None  # terminator


def test_hypo71_cards_give_their_s_readings_when_asked(tmp_path):
    """Columns 32-36 hold the S seconds from the card's minute, 37 its onset, 38 ``S``; the
    readers give S picks only for ``phases`` with S (reprocessing reads P)."""
    from obspy import UTCDateTime

    from firstmotion.event_catalogs import parse_hypo71_s

    card = "T107IPD0 110113195961.25       63.93ISN1"
    s = parse_hypo71_s(card, parse_hypo71_card(card))
    assert s.phase == "S" and s.station == "T107" and s.onset == "impulsive"
    assert s.analyst_polarity == 0  # a first motion belongs to the P
    assert s.time_epoch_s == pytest.approx(UTCDateTime(2011, 1, 13, 20, 0, 3.93).timestamp)
    assert parse_hypo71_s("ABCDEPU0 231114221322.50", parse_hypo71_card(
        "ABCDEPU0 231114221322.50")) is None  # fmt: skip
    (tmp_path / "ev1.dat").write_text(card + "\r\nABCDEPU0 110113195962.00\n")
    assert [p.phase for p in read_hypo71(tmp_path / "ev1.dat")[0].picks] == ["P", "P"]
    both = read_hypo71(tmp_path / "ev1.dat", phases=("P", "S"))[0].picks
    assert [(p.station, p.phase) for p in both] == [("T107", "P"), ("T107", "S"), ("ABCD", "P")]
    assert read_events([str(tmp_path / "ev1.dat")], phases=("S",))[0].picks[0].phase == "S"


def test_hypo71_folder_with_origins_from_csv(tmp_path):
    (tmp_path / "ph").mkdir()
    (tmp_path / "ph" / "ev1.dat").write_text(
        "ABCDEPU0 231114221322.50\r\nEFGHIPD0 231114221323.00\n                 10\n"
    )
    (tmp_path / "events.csv").write_text(
        "event_id,time,latitude,longitude,depth_km\nev1,2023-11-14T22:13:20Z,42.0,13.0,8.5\n"
    )
    evs = read_events([str(tmp_path / "ph")], origins=str(tmp_path / "events.csv"))
    assert [e.event_id for e in evs] == ["ev1"]
    assert evs[0].depth_km == 8.5 and [p.analyst_polarity for p in evs[0].picks] == [1, -1]
    # no origins: polarities only
    bare = read_hypo71(tmp_path / "ph")
    assert not bare[0].located and bare[0].time_epoch_s == pytest.approx(T0 + 2.5)


def test_csv_pair_and_unknown_event(tmp_path):
    ev = tmp_path / "events.csv"
    ev.write_text("event_id,time,latitude,longitude,depth_km\ne1,1700000000,34,-118,5\n")
    pk = tmp_path / "picks.csv"
    pk.write_text(
        "event_id,station_id,phase,time\ne1,XX.ABC..HHZ,P,2023-11-14T22:13:22Z\n"
        "e1,XX.ABC..HHZ,S,2023-11-14T22:13:24Z\n"
    )
    evs = read_csv_pair(ev, pk)
    assert len(evs[0].picks) == 1 and evs[0].picks[0].channel == "HHZ"
    pk.write_text("event_id,station_id,phase,time\ne9,XX.ABC..HHZ,P,1700000002\n")
    with pytest.raises(ValueError, match="e9"):
        read_csv_pair(ev, pk)


def test_a_picks_csv_alone_gives_events_without_origins(tmp_path):
    """A list of analyst picks (station_id, phase, time, polarity) without an events file:
    one event per event_id, or without that column, picks more than 2 minutes apart start a
    new one; no origins; U / D and +1 / -1 read as first motions; an events file alone is
    still refused."""
    pk = tmp_path / "labels.csv"
    pk.write_text(
        "station_id,phase,time,polarity\n"
        "XX.ABC..HHZ,P,2023-11-14T22:13:22Z,U\n"
        "XX.DEF..HHZ,P,2023-11-14T22:13:23.5Z,-1\n"
        "XX.ABC..HHN,S,2023-11-14T22:13:25Z,\n"
        "XX.ABC..HHZ,P,2023-11-14T22:20:00Z,D\n"
    )
    evs = read_events([str(pk)])
    assert [len(e.picks) for e in evs] == [2, 1] and not any(e.located for e in evs)
    assert [p.analyst_polarity for e in evs for p in e.picks] == [1, -1, -1]
    assert evs[0].event_id == "20231114T221322.00"
    assert evs[0].time_epoch_s == pytest.approx(T0 + 2.0)
    both = read_events([str(pk)], phases=("P", "S"))
    assert [p.phase for p in both[0].picks] == ["P", "P", "S"]
    pk.write_text(
        "event_id,station_id,phase,time,polarity\n"
        "a,XX.ABC..HHZ,P,1700000002,+1\nb,XX.DEF..HHZ,P,1700000003,-1\n"
    )
    assert [(e.event_id, len(e.picks)) for e in read_events([str(pk)])] == [("a", 1), ("b", 1)]
    ev = tmp_path / "events.csv"
    ev.write_text("event_id,time,latitude,longitude,depth_km\ne1,1700000000,34,-118,5\n")
    with pytest.raises(ValueError, match="takes two files"):
        read_events([str(ev)])


def test_quakeml_picks_and_station_positions_from_arrivals(tmp_path):
    from obspy import UTCDateTime
    from obspy.core.event import Arrival, Catalog, Event, Origin, Pick, WaveformStreamID

    p = Pick(time=UTCDateTime(T0 + 3), waveform_id=WaveformStreamID("XX", "ABC", "", "HHZ"),
             phase_hint="P", polarity="positive")  # fmt: skip
    s = Pick(time=UTCDateTime(T0 + 5), waveform_id=WaveformStreamID("XX", "ABC", "", "HHN"),
             phase_hint="S")  # fmt: skip
    o = Origin(time=UTCDateTime(T0), latitude=30.0, longitude=-100.0, depth=5000.0)
    o.arrivals = [Arrival(pick_id=p.resource_id, phase="P", azimuth=90.0, distance=0.5)]
    cat = Catalog([Event(origins=[o], picks=[p, s])])
    cat.write(str(tmp_path / "c.xml"), format="QUAKEML")
    evs = read_quakeml(tmp_path / "c.xml")
    assert len(evs[0].picks) == 1 and evs[0].picks[0].analyst_polarity == 1
    assert evs[0].event_id == str(cat[0].resource_id).split("/")[-1]  # the file's own id
    xml = (tmp_path / "c.xml").read_text()
    (tmp_path / "no_id.xml").write_text(xml.replace(f'publicID="{cat[0].resource_id}"', ""))
    reads = [[e.event_id for e in read_quakeml(tmp_path / "no_id.xml")] for _ in range(2)]
    assert reads == [["no_id"], ["no_id"]]  # an event without an id: its file's name, each read
    lat, lon = stations_from_arrivals(evs)[("XX", "ABC")]
    assert lat == pytest.approx(destination(30.0, -100.0, 90.0, 0.5)[0])
    assert lon > -100.0 and lon == pytest.approx(-100.0 + 0.5 / np.cos(np.radians(30)), abs=0.01)


def _nordic_event(t0, picks):
    """An obspy Event located at ``t0`` with (station, channel, phase, dt, polarity, onset)
    picks, as a SEISAN S-file would hold it."""
    from obspy import UTCDateTime
    from obspy.core.event import Event, Origin, Pick, WaveformStreamID

    ev = Event(origins=[Origin(time=UTCDateTime(t0), latitude=42.0, longitude=13.0, depth=8e3)])
    for sta, cha, phase, dt, pol, onset in picks:
        wid = WaveformStreamID("", sta, None, cha)
        ev.picks.append(Pick(time=UTCDateTime(t0 + dt), phase_hint=phase, polarity=pol,
                             onset=onset, waveform_id=wid))  # fmt: skip
    return ev


def test_nordic_s_files_give_first_motions_onsets_and_s_picks(tmp_path):
    """SEISAN's Nordic S-files (no XML, no known suffix) are read through obspy: C / D first
    motions, I / E onsets, the two-letter component; a folder of them is one event per file,
    other files in it named and left out."""
    import warnings

    from obspy.core.event import Catalog

    from firstmotion.event_catalogs import detect_format

    one = _nordic_event(T0, [("ABC", "HHZ", "P", 3.0, "positive", "impulsive"),
                             ("DEFG", "EHZ", "P", 4.5, "negative", "emergent"),
                             ("DEFG", "EHN", "S", 7.25, None, "emergent"),
                             ("HIJ", "HHZ", "P", 5.0, None, "emergent")])  # fmt: skip
    two = _nordic_event(T0 + 600, [("ABC", "HHZ", "P", 2.0, "negative", "impulsive")])
    folder = tmp_path / "REA"
    month = folder / "TEST_" / "2023" / "11"  # a SEISAN database's layout
    month.mkdir(parents=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # obspy's writer on unset evaluation modes
        Catalog([one]).write(str(month / "14-2213-20L.S202311"), format="NORDIC")
        Catalog([two]).write(str(month / "14-2223-20L.S202311"), format="NORDIC")
    (month / "notes").write_text("not an S-file\n")
    sfile = month / "14-2213-20L.S202311"
    assert detect_format(sfile) == "quakeml" and detect_format(folder) == "quakeml"

    (ev,) = read_events([str(sfile)])
    got = {(p.station, p.channel, p.analyst_polarity, p.onset): p.time_epoch_s for p in ev.picks}
    assert got == pytest.approx({("ABC", "HZ", 1, "impulsive"): T0 + 3.0,
                                 ("DEFG", "EZ", -1, "emergent"): T0 + 4.5,
                                 ("HIJ", "HZ", 0, "emergent"): T0 + 5.0}, abs=0.01)  # fmt: skip
    assert ev.time_epoch_s == pytest.approx(T0, abs=0.1) and ev.latitude_deg == pytest.approx(42.0)
    with_s = read_events([str(sfile)], phases=("P", "S"))[0].picks
    assert [(p.station, p.phase) for p in with_s if p.phase == "S"] == [("DEFG", "S")]

    both = read_events([str(folder)])
    assert [len(e.picks) for e in both] == [3, 1]
    assert [e.event_id for e in both] == ["20231114221320", "20231114222320"]  # SEISAN's ID
    assert both[1].picks[0].analyst_polarity == -1

    # phase cards beside their origins' QuakeML stay a HYPO71 folder
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "e1.dat").write_text("ABC IPU0 2311142213 23.00\n")
    Catalog([two]).write(str(cards / "a_origins.xml"), format="QUAKEML")
    assert detect_format(cards) == "hypo71"


def test_a_nordic_two_letter_component_takes_its_band_s_vertical(tmp_path):
    """Nordic's "SZ" / "HZ" (band code and orientation) resolves to the station's vertical of
    that band when it has several."""
    from obspy import Stream

    Stream([_trace("ABC", "HHZ"), _trace("ABC", "SHZ", seed=1, rate=200.0, n=12000)]).write(
        str(tmp_path / "a.mseed"), format="MSEED"
    )
    reqs = [Request(k, "", "ABC", "", f"{k.upper()}Z", T0 + 20.0) for k in ("h", "s")]
    wins, rep = cut_windows(reqs, [str(tmp_path)])
    assert {w.key: w.station_id for w in wins} == {"h": "XX.ABC..HHZ", "s": "XX.ABC..SHZ"}
    assert not rep.missing


def test_nonlinloc_hyp_is_read_by_content_not_its_suffix(tmp_path):
    """A NonLinLoc hypocentre-phase file shares HYPO71's ``.hyp`` suffix; its content decides
    (obspy's reader), so its P arrivals and first motions come through."""
    from firstmotion.event_catalogs import detect_format

    hyp = tmp_path / "loc.hyp"  # a NonLinLoc 6-7 location of two P first motions and an S
    hyp.write_text((Path(__file__).parent / "data" / "nonlinloc_loc.hyp").read_text())
    assert detect_format(hyp) == "quakeml"
    (ev,) = read_events([str(hyp)])
    assert ev.event_id == "loc"  # no id in the file: its name, the same on every read
    assert ev.depth_km == pytest.approx(5.0, abs=0.01)
    assert {(p.station, p.analyst_polarity) for p in ev.picks} == {("ABC", 1), ("DEF", -1)}


def test_two_column_velocity_model():
    m = VelocityModel.from_text("0.0 5.5\n5.5 6.3\n16.0 6.7\n32.0 7.8\n32.0 7.9\n")
    assert list(m.depth_km) == [0.0, 5.5, 16.0, 32.0] and m.vp_km_s[-1] == 7.9
    assert np.allclose(m.vp_km_s / m.vs_km_s, 1.73)
    with pytest.raises(ValueError, match="mix"):
        VelocityModel.from_text("0 5.5\n5 6.3 3.6 2.7\n")


# --------------------------------------------------------------------------- archive


def test_archive_windows_bad_file_and_missing_pick(tmp_path):
    from obspy import Stream

    Stream([_trace("ABC"), _trace("ABC", "HHN", seed=2)]).write(
        str(tmp_path / "a.mseed"), format="MSEED"
    )
    Stream([_trace("T0107", "HNZ", rate=80.0, n=4800)]).write(str(tmp_path / "b.sac"), format="SAC")
    (tmp_path / "notes.txt").write_text("not seismic data\n")
    reqs = [
        Request("e/0", "", "ABC", "", "", T0 + 20.0),
        Request("e/1", "", "T107", "", "", T0 + 30.0),  # HYPO71 4-letter code
        Request("e/2", "XX", "NOPE", "", "", T0 + 20.0),
    ]
    wins, rep = cut_windows(reqs, [str(tmp_path)])
    got = {w.key: w for w in wins}
    assert set(got) == {"e/0", "e/1"}
    assert got["e/0"].station_id == "XX.ABC..HHZ" and got["e/0"].samples.size == 700
    assert got["e/0"].pick_index == 500
    assert got["e/1"].sampling_rate_hz == 80.0 and got["e/1"].pick_index == 400
    assert "e/2" in rep.missing and "no waveform" in rep.missing["e/2"]
    assert list(rep.bad_files) == [str(tmp_path / "notes.txt")]
    # a station with a seismometer and a faster accelerometer: the seismometer, unless the
    # pick names the accelerometer's band
    Stream([_trace("T0107", "EHZ", rate=100.0, n=6000)]).write(
        str(tmp_path / "c.mseed"), format="MSEED"
    )
    reqs = [Request("e/1", "", "T107", "", "", T0 + 30.0),
            Request("e/3", "", "T107", "", "HN", T0 + 30.0)]  # fmt: skip
    got = {w.key: w.station_id for w in cut_windows(reqs, [str(tmp_path)])[0]}
    assert got == {"e/1": "XX.T0107..EHZ", "e/3": "XX.T0107..HNZ"}


def test_file_index_reads_only_files_serving_the_requests(tmp_path):
    from obspy import Stream

    from firstmotion.archive import expand_paths, index_files

    Stream([_trace("ABC")]).write(str(tmp_path / "z.mseed"), format="MSEED")
    Stream([_trace("ABC", "HHN")]).write(str(tmp_path / "n.mseed"), format="MSEED")
    Stream([_trace("ABC", start=T0 + 86400)]).write(str(tmp_path / "day2.mseed"), format="MSEED")
    Stream([_trace("XYZ")]).write(str(tmp_path / "other.mseed"), format="MSEED")
    (tmp_path / "notes.txt").write_text("not seismic data\n")
    index, bad = index_files(expand_paths([str(tmp_path)]))
    assert list(bad) == [str(tmp_path / "notes.txt")] and len(index) == 4
    req = [Request("e/0", "", "ABC", "", "", T0 + 20.0)]
    wins, rep = cut_windows(req, [str(tmp_path)], index=index)
    assert rep.files_read == 1 and len(wins) == 1  # z.mseed only
    wins_all, rep_all = cut_windows(req, [str(tmp_path)])
    assert rep_all.files_read == 4 and np.array_equal(wins_all[0].samples, wins[0].samples)


def test_sds_archive_read_per_station_day(tmp_path):
    from obspy import Stream

    tr = _trace("ABC")
    day = tr.stats.starttime
    folder = tmp_path / str(day.year) / "XX" / "ABC" / "HHZ.D"
    folder.mkdir(parents=True)
    Stream([tr]).write(str(folder / f"XX.ABC..HHZ.D.{day.year}.{day.julday:03d}"), format="MSEED")
    assert is_sds_root(tmp_path)
    reqs = [
        Request("e/0", "XX", "ABC", "", "HHZ", T0 + 20),
        Request("e/1", "XX", "ABC", "", "", T0 + 21),
    ]
    wins, rep = cut_windows(reqs, [str(tmp_path)])
    assert len(wins) == 2 and rep.files_read == 1
    x = np.asarray(tr.data, dtype=np.float32)
    assert np.array_equal(wins[0].samples, x[1500:2200])
    # HYPO71's 4-letter code names the archive's T0107 (zeros removed)
    folder = tmp_path / str(day.year) / "XX" / "T0107" / "EHZ.D"
    folder.mkdir(parents=True)
    name = f"XX.T0107..EHZ.D.{day.year}.{day.julday:03d}"
    Stream([_trace("T0107", "EHZ", seed=3)]).write(str(folder / name), format="MSEED")
    (w,), rep = cut_windows([Request("e/2", "", "T107", "", "", T0 + 20)], [str(tmp_path)])
    assert w.station_id == "XX.T0107..EHZ" and not rep.missing


# --------------------------------------------------------------------------- end to end


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "firstmotion.cli", *args]


def _env() -> dict[str, str]:
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("scen") / "s"
    subprocess.run(
        _cli("scenario", "--out", str(out), "--seed", "5", "--n-stations", "10",
             "--n-events", "3", "--duration-s", "100"),
        check=True, env=_env(), capture_output=True,
    )  # fmt: skip
    return out


def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        r = csv.DictReader(fh)
        return list(r.fieldnames or []), list(r)


@pytest.mark.slow
def test_reprocess_scenario_outputs_and_reported_problems(scenario, tmp_path, redis_url):
    from obspy import read_events as obspy_read_events
    from obspy import read_inventory

    truth = json.loads((scenario / "truth.json").read_text())
    # a station missing from the inventory, a pick with no waveform, a file that is not data
    inv = read_inventory(str(scenario / "stations.xml"))
    gone = inv[0][0].code
    inv[0].stations = inv[0].stations[1:]
    inv.write(str(tmp_path / "inv.xml"), format="STATIONXML")
    cat = obspy_read_events(str(scenario / "truth.xml"))
    extra = cat[0].picks[0].copy()
    extra.resource_id = extra.resource_id.__class__("smi:test/pick/ghost")
    extra.waveform_id.station_code = "GHOST"
    cat[0].picks.append(extra)
    cat.write(str(tmp_path / "events.xml"), format="QUAKEML")
    (tmp_path / "junk.mseed").write_bytes(b"this is not miniSEED" * 50)
    out = tmp_path / "out"
    proc = subprocess.run(
        _cli("reprocess", "--events", str(tmp_path / "events.xml"), "--waveforms",
             str(scenario / "mseed"), str(tmp_path / "junk.mseed"), "--inventory",
             str(tmp_path / "inv.xml"), "--velocity-model", str(scenario / "velocity_model.txt"),
             "--output", str(out), "--redis", redis_url, "--device", "cpu", "--no-progress"),
        env=_env(), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 pick(s) without waveform" in proc.stdout and "GHOST" in proc.stdout
    assert "1 file(s) skipped" in proc.stdout and "junk.mseed" in proc.stdout
    assert "1 station(s) missing from the inventory" in proc.stdout and gone in proc.stdout
    cols, pols = _read_csv(out / "polarities.csv")
    assert tuple(cols) == POLARITY_COLUMNS
    cols, mechs = _read_csv(out / "mechanisms.csv")
    assert tuple(cols) == MECHANISM_COLUMNS
    n_truth = sum(len(e["stations"]) for e in truth["events"])
    assert len(pols) == n_truth  # every pick with a waveform read, the missing station too
    true_pol = {
        (e["event_id"], a["station_id"]): a["polarity"]
        for e in truth["events"]
        for a in e["stations"]
    }
    read = [(int(p["polarity"]), true_pol[(p["event_id"], p["station_id"])]) for p in pols]
    decided = [(a, b) for a, b in read if a != 0]
    assert len(decided) >= 0.6 * len(read)
    unknown_why = {p["reason"] for p in pols if int(p["polarity"]) == 0}
    assert "" not in unknown_why  # every unknown read says why
    assert all(m["latitude_deg"] and m["longitude_deg"] for m in mechs)  # a stress map's
    assert sum(a == b for a, b in decided) >= 0.95 * len(decided)
    assert {m["event_id"] for m in mechs} <= {e["event_id"] for e in truth["events"]}
    assert len(mechs) >= 1
    qml = obspy_read_events(str(out / "catalog.xml"))
    assert len(qml) == 3
    ev = next(e for e in qml if e.focal_mechanisms)
    fm = ev.focal_mechanisms[0]
    assert fm.nodal_planes.nodal_plane_1 is not None and fm.nodal_planes.nodal_plane_2 is not None
    assert fm.station_polarity_count >= 8 and fm.azimuthal_gap is not None
    assert fm.misfit is not None
    assert any(p.polarity in ("positive", "negative") and "p_up=" in p.comments[0].text
               for p in ev.picks)  # fmt: skip
    assert any(p.waveform_id.station_code == gone for p in ev.picks)  # read, not inverted
    assert len(list((out / "beachballs").glob("*.png"))) == len(mechs)
    _, sk = _read_csv(out / "skhash" / "polarities.csv")
    assert sk and all(abs(float(r["p_polarity"])) <= 1 for r in sk)
    assert all(r["station"] != gone for r in sk)


@pytest.mark.slow
def test_reprocess_killed_and_resumed_equals_one_run(scenario, tmp_path):
    base = (
        "reprocess", "--events", str(scenario / "truth.xml"), "--waveforms",
        str(scenario / "mseed"), "--inventory", str(scenario / "stations.xml"),
        "--velocity-model", str(scenario / "velocity_model.txt"), "--device", "cpu",
        "--no-progress", "--chunk-picks", "5",
    )  # fmt: skip
    one = tmp_path / "one"
    subprocess.run(_cli(*base, "--output", str(one)), env=_env(), check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    two = tmp_path / "two"
    proc = subprocess.Popen(_cli(*base, "--output", str(two)), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    journal = two / "journal.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = journal.read_text().count("\n")
    assert 1 <= first < 3, "the kill came too late to test a resume"
    res = subprocess.run(_cli(*base, "--output", str(two), "--resume"), env=_env(),
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"+{first} done before" in res.stdout
    for name in ("polarities.csv", "mechanisms.csv", "skhash/polarities.csv"):
        assert (one / name).read_text() == (two / name).read_text(), name
    assert len((one / "polarities.csv").read_text().splitlines()) > 20


def test_cli_says_which_input_is_missing(tmp_path, capsys):
    from firstmotion.cli import main

    missing = tmp_path / "nowhere.xml"
    code = main(["reprocess", "--events", str(missing), "--waveforms", str(tmp_path),
                 "--output", str(tmp_path / "out"), "--no-progress"])  # fmt: skip
    assert code == 2
    assert f"firstmotion reprocess: {missing}: No such file or directory" in capsys.readouterr().err


def test_catalog_depths_below_sea_level_meet_a_model_above_it():
    """A catalog depth is below sea level; with a model whose top is 2 km above it the rays
    leave from 2 km deeper in the model (the same takeoff as a sea-level model 2 km deeper)."""
    from firstmotion.event_catalogs import EventRecord
    from firstmotion.velocity import trace_rays
    from workers.reprocess.pipeline import event_arrivals

    model = VelocityModel.from_text("-2.0 3.5\n3.0 5.0\n10.0 6.2\n")
    ev = EventRecord("ev1", 1.7e9, latitude_deg=19.4, longitude_deg=-155.3, depth_km=4.0)
    coords = {("HV", "A"): (19.45, -155.3, 1000.0), ("HV", "B"): (19.4, -155.2, 300.0)}
    picks = [("p1", "HV.A..HHZ", 1.7e9 + 2.0), ("p2", "HV.B..HHZ", 1.7e9 + 2.5)]
    arrivals, missing = event_arrivals(ev, picks, coords, model)
    assert not missing
    d = np.array([a.distance_km for a in arrivals])
    expect = trace_rays(model, d, np.full(2, 6.0), "P").takeoff_deg
    np.testing.assert_allclose([a.takeoff_deg for a in arrivals], expect)
    wrong = trace_rays(model, d, np.full(2, 4.0), "P").takeoff_deg  # depth taken from the top
    assert np.all(np.abs(expect - wrong) > 2.0)


def test_archive_odd_files_interleaved_two_rates_offsets_and_equal_channels(tmp_path, caplog):
    """What real archives hold: a SeedLink dump interleaving three channels record by record
    (indexed as holding the vertical), one channel at two rates (each rate's window whole,
    never one rate's samples on the other's grid), counts on a DC offset beyond float32's
    integers (a first motion of one count kept), and the same vertical under two location
    codes (the lowest taken whatever the files are called, and said)."""
    from obspy import Stream

    from firstmotion.archive import expand_paths, index_files

    mux = tmp_path / "mux"
    mux.mkdir()
    st = Stream([_trace("MUX", c, n=6500, seed=k) for k, c in enumerate(("HHE", "HHN", "HHZ"))])
    st[1:] = [tr.slice(endtime=tr.stats.starttime + 59.99) for tr in st[1:]]
    with open(mux / "dump.mseed", "wb") as fh:  # HHE, HHN, HHZ, HHE, ... HHE: first, last HHE
        for t in range(0, 65, 5):
            for tr in st.slice(st[0].stats.starttime + t, st[0].stats.starttime + t + 4.99):
                Stream([tr]).write(fh, format="MSEED", reclen=512, encoding="FLOAT32")
    index, bad = index_files(expand_paths([str(mux)]))
    assert not bad and {t[3] for t in index[0].traces} == {"HHE", "HHN", "HHZ"}
    wins, rep = cut_windows([Request("m", "", "MUX", "", "", T0 + 20.0)], [str(mux)], index=index)
    assert [w.station_id for w in wins] == ["XX.MUX..HHZ"] and not rep.missing

    rates = tmp_path / "rates"
    rates.mkdir()
    slow = _trace("TWO", n=6000, seed=4)
    fast = _trace("TWO", rate=200.0, n=12000, seed=5)
    Stream([slow]).write(str(rates / "a_100.mseed"), format="MSEED")
    Stream([fast]).write(str(rates / "b_200.mseed"), format="MSEED")
    (w,), _ = cut_windows([Request("t", "", "TWO", "", "", T0 + 20.0)], [str(rates)])
    assert w.sampling_rate_hz == 200.0
    np.testing.assert_array_equal(w.samples, fast.data[3000:4400])

    big = tmp_path / "offset"
    big.mkdir()
    tr = _trace("OFF", seed=6)
    counts = np.round(tr.data).astype(np.int32) + 30_000_001
    counts[2000:] += 1  # a one-count step at the pick
    tr.data = counts
    Stream([tr]).write(str(big / "off.mseed"), format="MSEED", encoding="STEIM2")
    (w,), _ = cut_windows([Request("o", "", "OFF", "", "", T0 + 20.0)], [str(big)])
    diff = w.samples.astype(np.float64) - counts[1500:2200]
    assert np.ptp(diff) == 0 and abs(diff[0]) > 29_000_000  # whole counts, less an offset

    locs = tmp_path / "locs"
    locs.mkdir()
    for name, loc in (("a", "10"), ("b", "00"), ("c", "")):
        Stream([_trace("LOC", loc=loc, seed=7)]).write(str(locs / f"{name}.mseed"), format="MSEED")
    with caplog.at_level("WARNING", logger="firstmotion.archive"):
        (w,), _ = cut_windows([Request("l", "", "LOC", "", "", T0 + 20.0)], [str(locs)])
    assert w.station_id == "XX.LOC..HHZ"
    assert "XX.LOC..HHZ over XX.LOC.00.HHZ, XX.LOC.10.HHZ" in caplog.text
    (w,), _ = cut_windows([Request("l", "XX", "LOC", "10", "", T0 + 20.0)], [str(locs)])
    assert w.station_id == "XX.LOC.10.HHZ"  # the pick's own code over the '' record

    sac = tmp_path / "sac"  # SAC files without network or location codes serve a pick
    sac.mkdir()  # naming them; a pick for another location, at 20 Hz: said why not
    Stream([_trace("NON", net="", seed=8)]).write(str(sac / "NON.HHZ.sac"), format="SAC")
    Stream([_trace("SLO", rate=20.0, n=1200)]).write(str(sac / "SLO.HHZ.sac"), format="SAC")
    Stream([_trace("LOC", loc="00")]).write(str(sac / "LOC.HHZ.sac"), format="SAC")
    reqs = [Request("n", "TX", "NON", "00", "HHZ", T0 + 20.0),
            Request("s", "", "SLO", "", "", T0 + 20.0),
            Request("l", "XX", "LOC", "10", "", T0 + 20.0)]  # fmt: skip
    wins, rep = cut_windows(reqs, [str(sac)])
    assert [w.station_id for w in wins] == [".NON..HHZ"]
    assert "XX.SLO..HHZ is sampled at 20 Hz, below the reader's 40 Hz" in rep.missing["s"]
    assert "XX.LOC.00.HHZ has location code '00', the pick's is '10'" in rep.missing["l"]


def test_first_arrivals_only_and_repeated_picks_read_once(tmp_path, caplog):
    """A pick's first motion is the direct P's: pP, sP, PP, PmP are not P picks (a pP with a
    polarity was scored as a P), Pg, Pn, Pb, P* are; a pick given twice (a file named twice)
    is read once, and said."""
    from firstmotion.event_catalogs import arrival_phase

    names = {"P": "P", "Pg": "P", "PN": "P", "Pb": "P", "P*": "P", "p": "P", "Sg": "S", "S": "S",
             "pP": "", "sP": "", "PP": "", "PmP": "", "PcP": "", "PKP": "", "": ""}  # fmt: skip
    assert {k: arrival_phase(k) for k in names} == names
    picks = tmp_path / "picks.csv"
    picks.write_text(
        "station_id,phase,time,polarity\n"
        "XX.A..HHZ,P,2020-01-01T00:00:01.00,U\n"
        "XX.A..HHZ,pP,2020-01-01T00:00:02.50,D\n"
        "XX.B..HHZ,Pg,2020-01-01T00:00:01.50,D\n"
    )
    (ev,) = read_events([str(picks)])
    assert [(p.station, p.phase, p.analyst_polarity) for p in ev.picks] == [
        ("A", "P", 1),
        ("B", "P", -1),
    ]
    (tmp_path / "a.dat").write_text("TEROIPU0 110113195943.58\n")
    with caplog.at_level("WARNING", logger="firstmotion.event_catalogs"):
        events = read_events([str(tmp_path / "a.dat"), str(tmp_path / "a.dat")])
    assert sum(len(e.picks) for e in events) == 1
    assert "1 pick(s) given more than once" in caplog.text


def test_a_window_is_read_on_the_unbroken_record_holding_its_pick():
    """A record starting 0.5 s before the pick, or a gap 0.3 s before it: the window given to
    the reader is the record from the gap on (NaN before it made the reader flag the window
    and read nothing, where `polarity show` of the same file reads the onset)."""
    from firstmotion.archive import Window
    from workers.reprocess.pipeline import window_pick

    x = np.arange(700, dtype=np.float32)
    x[:450] = np.nan  # the record starts 0.5 s before the pick (index 500)
    x[600:610] = np.nan  # and has a gap 1 s after it
    w = Window("k", "XX.A..HHZ", 100.0, T0, x, 500)
    cut = w.around_pick()
    assert (cut.pick_index, cut.samples.size, cut.start_epoch_s) == (50, 150, T0 + 4.5)
    assert np.isfinite(cut.samples).all() and cut.samples[cut.pick_index] == 500
    pick = window_pick(w)
    assert pick.pick_index == 50 and pick.time_epoch_s == pytest.approx(T0 + 5.0)
    # the pick keeps its own time (polarities.csv joins back to the input on it), not the
    # sample grid's
    pick = window_pick(Window("k", "XX.A..HHZ", 100.0, T0, x, 500, T0 + 5.0036))
    assert pick.pick_index == 50 and pick.time_epoch_s == T0 + 5.0036
    clean = Window("k", "XX.A..HHZ", 100.0, T0, np.ones(700, np.float32), 500)
    assert clean.around_pick() is clean


def test_label_files_of_several_formats_a_bom_and_the_option_named(tmp_path):
    """HYPO71 cards and QuakeML given together: each read by its own format (the first
    file's format was taken for all, the others read as nothing, silently); a picks CSV saved
    by a spreadsheet (a UTF-8 byte-order mark) is read; errors name the option typed."""
    from obspy import UTCDateTime
    from obspy.core.event import Catalog, Event, WaveformStreamID
    from obspy.core.event import Pick as QuakeMLPick

    from firstmotion.errors import InputError

    cards = tmp_path / "a.dat"
    cards.write_text("TEROIPU0 110113195943.58\n")
    qml = tmp_path / "b.xml"
    camp = WaveformStreamID("IV", "CAMP", "", "HHZ")
    pick = QuakeMLPick(time=UTCDateTime(2011, 1, 13, 19, 59, 44), phase_hint="P",
                       polarity="negative", waveform_id=camp)  # fmt: skip
    Catalog([Event(picks=[pick])]).write(str(qml), format="QUAKEML")
    for order in ([cards, qml], [qml, cards]):
        got = read_events([str(f) for f in order])
        assert sorted(p.station for e in got for p in e.picks) == ["CAMP", "TERO"]
    bom = tmp_path / "picks.csv"
    bom.write_bytes(b"\xef\xbb\xbfstation_id,phase,time,polarity\n"
                    b"XX.A..HHZ,P,2020-01-01T00:00:01,U\n")  # fmt: skip
    assert [p.station for p in read_events([str(bom)])[0].picks] == ["A"]
    with pytest.raises(InputError, match="--labels: the CSV pair or a picks CSV goes alone"):
        read_events([str(bom), str(cards)], option="--labels")
    (tmp_path / "x.xml").write_text("<not quakeml/>")
    with pytest.raises(InputError, match="^--labels .*x.xml: not an event file"):
        read_events([str(tmp_path / "x.xml")], option="--labels")
