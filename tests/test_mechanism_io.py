"""Mechanism I/O: reversal lists, `firstmotion invert` (JSONL and SKHASH CSV), beachball plots."""

import csv
import datetime as dt
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from firstmotion.cli import main
from firstmotion.kagan import kagan_angle_deg
from firstmotion.plot import project_lower_hemisphere
from firstmotion.radiation import p_polarity
from workers.mechanism.reversals import Reversal, ReversalList, read_reversals, station_code

HASH1 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "hash1"


def _day(y, m, d):
    return dt.datetime(y, m, d, tzinfo=dt.timezone.utc).timestamp()


def test_hash_reversal_file_dates_and_matching(tmp_path):
    f = tmp_path / "rev.txt"
    f.write_text("AQUA 19920101 19921231\nBAHA 19940101 0 \nCSP  0        19960628\n")
    rev = read_reversals(f)
    assert len(rev) == 3
    assert rev.is_reversed("AQUA.VHZ", _day(1992, 6, 1))
    assert rev.is_reversed("AQUA.VHZ", _day(1992, 12, 31) + 3600)  # end day inclusive
    assert not rev.is_reversed("AQUA.VHZ", _day(1993, 1, 1) + 1)
    assert rev.is_reversed("CI.BAHA..HHZ", _day(2030, 1, 1))  # open end
    assert not rev.is_reversed("CI.BAHA..HHZ", _day(1993, 12, 31))
    assert rev.is_reversed("CSP", _day(1950, 1, 1))  # open start
    assert not rev.is_reversed("XX.AQUAX..HHZ", _day(1992, 6, 1))
    np.testing.assert_array_equal(
        rev.apply(["AQUA.VHZ", "ZZZ.VHZ"], _day(1992, 6, 1), [1, -1]), [-1, -1]
    )
    assert station_code("CI.PAS..HHZ") == "PAS" and station_code("IR2.VHZ") == "IR2"


def test_csv_reversal_file(tmp_path):
    f = tmp_path / "rev.csv"
    f.write_text("network,station,location,channel,start_time,end_time\nCI,PAS,,HHZ,2020-01-01,0\n")
    rev = read_reversals(f)
    assert rev.is_reversed("CI.PAS..HHZ", _day(2021, 1, 1))
    assert not rev.is_reversed("CI.PAS..HHZ", _day(2019, 1, 1))
    assert not rev.is_reversed("CI.PASA..HHZ", _day(2021, 1, 1))


def test_picks_without_a_time_take_only_reversals_open_at_both_ends(tmp_path, caplog):
    """SKHASH's polarity file carries no event time: a station reversed for a period cannot
    be told reversed or not, so its picks are left as read (they were flipped whatever their
    date: 289 flips instead of 79 on HASH's example) and it is said; one reversed at every
    time is flipped."""
    f = tmp_path / "rev.csv"
    f.write_text("network,station,location,channel,start_time,end_time\n"
                 "CI,PAS,,HHZ,2020-01-01,2020-06-30\nCI,ALW,,HHZ,0,0\n")  # fmt: skip
    rev = read_reversals(f)
    ids = ["CI.PAS..HHZ", "CI.ALW..HHZ", "CI.PAS..HHZ"]
    with caplog.at_level("WARNING", logger="workers.mechanism.reversals"):
        got = rev.apply(ids, [None, None, _day(2020, 3, 1)], [1.0, 1.0, 1.0])
    assert got.tolist() == [1.0, -1.0, -1.0]
    assert "CI.PAS..HHZ is reversed for a time only" in caplog.text
    assert rev.apply(ids, None, [1.0, 1.0, 1.0]).tolist() == [1.0, -1.0, 1.0]


def test_scenario_reversal_csv_open_ended_and_header_only(tmp_path):
    """The format `firstmotion scenario` writes: open-ended (0, 0), header only when none."""
    f = tmp_path / "reversals.csv"
    f.write_text("network,station,location,channel,start_time,end_time\nXX,S01,,HHZ,0,0\n")
    rev = read_reversals(f)
    assert rev.is_reversed("XX.S01..HHZ", _day(1990, 1, 1))
    assert rev.is_reversed("XX.S01..HHZ", _day(2090, 1, 1))
    assert not rev.is_reversed("XX.S02..HHZ", _day(2020, 1, 1))
    f.write_text("network,station,location,channel,start_time,end_time\n")
    assert len(read_reversals(f)) == 0
    f.write_text("network,station,location\nXX,S01,\n")
    with pytest.raises(ValueError, match="start_time"):
        read_reversals(f)


def test_bad_reversal_line_raises(tmp_path):
    f = tmp_path / "rev.txt"
    f.write_text("AQUA 19920101\n")
    with pytest.raises(ValueError, match="expected"):
        read_reversals(f)


def _parse_north1(path):
    """HASH driver-1 phase file: {event_id: (origin epoch s, {station: polarity})}."""
    events, cur = {}, None
    for line in path.open():
        if len(line.rstrip()) > 100 and line[0:2].isdigit():
            t = dt.datetime(
                1900 + int(line[0:2]),
                int(line[2:4]),
                int(line[4:6]),
                int(line[6:8].strip() or 0),
                int(line[8:10].strip() or 0),
                tzinfo=dt.timezone.utc,
            ).timestamp()
            cur = line.split()[-2]
            events[cur] = (t, {})
        elif cur and len(line) > 6 and line[6] in "UD":
            events[cur][1].setdefault(line[0:4].strip(), 1 if line[6] == "U" else -1)
    return events


def test_scsn_reverse_reproduces_skhash_inputs():
    """Applying scsn.reverse to north1.phase gives exactly the polarities SKHASH inverted."""
    if not (HASH1 / "scsn.reverse").exists():
        pytest.skip(f"shared data absent: {HASH1}")
    rev = read_reversals(HASH1 / "scsn.reverse")
    raw = _parse_north1(HASH1 / "north1.phase")
    compared = flipped = 0
    for line in (HASH1 / "inputs.jsonl").open():
        e = json.loads(line)
        t, pols = raw[e["event_id"]]
        picks = [p for p in e["picks"] if station_code(p["station"]) in pols]
        base = [pols[station_code(p["station"])] for p in picks]
        applied = rev.apply([p["station"] for p in picks], t, base)
        np.testing.assert_array_equal(applied, [p["polarity"] for p in picks])
        compared += len(picks)
        flipped += int(np.sum(applied != np.array(base)))
    assert compared > 1000 and flipped > 50


def _synthetic_events(n_events=3, n_sta=25):
    rng = np.random.default_rng(4)
    events, truth = [], {}
    for k in range(n_events):
        sdr = (rng.uniform(0, 360), rng.uniform(30, 80), rng.uniform(-150, 150))
        i = np.arange(n_sta) + 0.5  # evenly spread rays (Fibonacci lattice, lower hemisphere)
        az = np.mod(i * 137.50776405 + rng.uniform(0, 360), 360.0)
        to = np.degrees(np.arccos(-i / n_sta))
        pol = p_polarity(*sdr, az, to)
        picks = [
            {
                "station": f"XX.S{i:02d}..HHZ",
                "azimuth_deg": float(az[i]),
                "takeoff_deg": float(to[i]),
                "polarity": int(pol[i]),
                "weight": 1.0,
            }
            for i in range(n_sta)
        ]
        events.append({"event_id": f"ev{k}", "origin_time": "2024-05-01T00:00:00Z", "picks": picks})
        truth[f"ev{k}"] = sdr
    return events, truth


def test_cli_jsonl_round_trip_with_plots_and_reversals(tmp_path):
    events, truth = _synthetic_events()
    # station S00 is wired upside down in the data and listed in the reversal file
    for e in events:
        e["picks"][0]["polarity"] *= -1
    inp = tmp_path / "events.jsonl"
    inp.write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "rev.txt").write_text("S00 20240101 0\n")
    out = tmp_path / "mechs.jsonl"
    rc = main(
        [
            "invert",
            "--input",
            str(inp),
            "--output",
            str(out),
            "--plot-dir",
            str(tmp_path / "plots"),
            "--reversals",
            str(tmp_path / "rev.txt"),
            "--no-progress",
        ]
    )
    assert rc == 0
    rows = [json.loads(line) for line in out.open()]
    assert [r["event_id"] for r in rows] == ["ev0", "ev1", "ev2"]
    for r in rows:
        assert r["quality"] in "ABCD" and r["n_polarities"] == 25
        assert kagan_angle_deg(r["strike"], r["dip"], r["rake"], *truth[r["event_id"]]) < 25
        assert r["misfit"] < 0.05  # the reversal was applied: no systematic misfit at S00
        png = tmp_path / "plots" / f"{r['event_id']}.png"
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"


def test_cli_skips_small_events(tmp_path):
    events, _ = _synthetic_events(1, 5)
    inp = tmp_path / "events.jsonl"
    inp.write_text(json.dumps(events[0]) + "\n")
    out = tmp_path / "mechs.jsonl"
    assert main(["invert", "--input", str(inp), "--output", str(out), "--no-progress"]) == 0
    assert out.read_text() == ""


def test_cli_an_event_with_bad_values_is_skipped_and_the_batch_goes_on(tmp_path, capfd):
    """A NaN takeoff or a polarity of 2 in one event: that event is skipped with its reason,
    the events after it are inverted (one bad event stopped the batch with a traceback)."""
    events, _ = _synthetic_events(3)
    events[1]["picks"][0]["takeoff_deg"] = float("nan")
    events[2]["picks"][3]["polarity"] = 2
    events.append(_synthetic_events(1)[0][0] | {"event_id": "ev3"})
    inp = tmp_path / "events.jsonl"
    inp.write_text("".join(json.dumps(e) + "\n" for e in events))
    out = tmp_path / "mechs.jsonl"
    assert main(["invert", "--input", str(inp), "--output", str(out), "--no-progress"]) == 0
    assert [json.loads(line)["event_id"] for line in out.open()] == ["ev0", "ev3"]
    err = capfd.readouterr().err
    assert "event ev1: takeoff_deg contains NaN" in err and "event ev2: polarity must be" in err


def test_cli_reads_skhash_csv(tmp_path):
    events, truth = _synthetic_events(2)
    lines = [
        "event_id,network,station,location,channel,p_polarity,azimuth,takeoff,"
        "azimuth_uncertainty,takeoff_uncertainty"
    ]
    for e in events:
        for p in e["picks"]:
            net, sta, loc, cha = p["station"].split(".")
            lines.append(
                f"{e['event_id']},{net},{sta},{loc},{cha},{p['polarity'] * p['weight']},"
                f"{p['azimuth_deg']},{p['takeoff_deg']},5,10"
            )
    inp = tmp_path / "pol.csv"
    inp.write_text("\n".join(lines) + "\n")
    out = tmp_path / "mechs.jsonl"
    assert main(["invert", "--input", str(inp), "--output", str(out), "--no-progress"]) == 0
    rows = [json.loads(line) for line in out.open()]
    assert len(rows) == 2
    for r in rows:
        assert kagan_angle_deg(r["strike"], r["dip"], r["rake"], *truth[r["event_id"]]) < 25
    # SKHASH's blank location '--' is the SEED id's empty one: a reversal list names it so
    from workers.mechanism.cli import read_skhash_csv

    inp.write_text(inp.read_text().replace(",,HHZ,", ",--,HHZ,"))
    assert ",--,HHZ," in inp.read_text()
    (ev0, _) = read_skhash_csv(inp)
    assert "--" not in ",".join(ev0.station) and ev0.station[0].count(".") == 3
    first = ev0.station[0]
    (tmp_path / "rev.csv").write_text(
        f"network,station,location,channel,start_time,end_time\n{first.replace('.', ',')},0,0\n"
    )
    flipped = tmp_path / "flipped.jsonl"
    assert main(["invert", "--input", str(inp), "--output", str(flipped), "--reversals",
                 str(tmp_path / "rev.csv"), "--no-progress"]) == 0  # fmt: skip
    assert flipped.read_text() != out.read_text()  # the listed station was flipped


def test_projection_is_lower_hemisphere_equal_area():
    x, y = project_lower_hemisphere(np.array([0.0, 90.0, 0.0, 0.0]), np.array([180, 90, 90, 60]))
    np.testing.assert_allclose(np.hypot(x, y), [0.0, 1.0, 1.0, np.sqrt(2) * np.sin(np.radians(30))])
    assert y[2] == pytest.approx(1.0) and x[1] == pytest.approx(1.0)
    assert y[3] < 0  # an upgoing ray to the north plots at its antipode, to the south


def test_reversal_list_empty_and_length_mismatch():
    rev = ReversalList((Reversal("A", 0.0, 1.0),))
    with pytest.raises(ValueError, match="station ids"):
        rev.apply(["A"], None, [1, 1])
    assert len(ReversalList()) == 0


def _events_with_biased_ratios(n_events: int, bias: float) -> tuple[list[dict], dict]:
    """12-station JSONL events whose ratios are ``bias`` log10 off the truth (0.1 scatter)."""
    from workers.mechanism.amplitude import predicted_log_ratio

    rng = np.random.default_rng(21)
    events, truth = [], {}
    for k in range(n_events):
        sdr = (rng.uniform(0, 360), rng.uniform(30, 85), rng.uniform(-170, 170))
        az, to = np.sort(rng.uniform(0, 360, 12)), rng.uniform(95, 150, 12)
        pol = p_polarity(*sdr, az, to)
        sp = predicted_log_ratio(*sdr, az, to) + bias + rng.normal(0, 0.1, 12)
        picks = [
            {"station": f"XX.S{i:02d}..HHZ", "azimuth_deg": float(az[i]),
             "takeoff_deg": float(to[i]), "polarity": int(pol[i]),
             "sp_log_ratio": None if i % 4 == 3 else float(sp[i])}
            for i in range(12)
        ]  # fmt: skip
        events.append({"event_id": f"ev{k}", "picks": picks})
        truth[f"ev{k}"] = sdr
    return events, truth


def test_cli_adds_the_sp_correction_to_every_ratio(tmp_path):
    """Ratios 0.4 log10 low everywhere (an uncorrected network effect): ``--sp-correction
    0.4`` undoes it, the mechanisms come closer to the truth, and each row says which
    correction its ratios had."""
    events, truth = _events_with_biased_ratios(12, -0.4)
    inp = tmp_path / "events.jsonl"
    inp.write_text("".join(json.dumps(e) + "\n" for e in events))
    runs = {}
    for corr in ("0", "0.4"):
        out = tmp_path / f"{corr}.jsonl"
        args = ["invert", "--input", str(inp), "--output", str(out), "--no-progress",
                "--sp-correction", corr]  # fmt: skip
        assert main(args) == 0
        runs[corr] = [json.loads(line) for line in out.open()]
        assert {r["sp_correction_log10"] for r in runs[corr]} == {float(corr)}
        assert all(r["n_sp_ratios"] == 9 for r in runs[corr])

    def kagan(rows):
        return np.median(
            [kagan_angle_deg(r["strike"], r["dip"], r["rake"], *truth[r["event_id"]]) for r in rows]
        )

    assert kagan(runs["0.4"]) < kagan(runs["0"])
    # events without ratios carry no correction field
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps(_synthetic_events(1)[0][0]) + "\n")
    out = tmp_path / "plain_out.jsonl"
    assert main(["invert", "--input", str(plain), "--output", str(out), "--no-progress",
                 "--sp-correction", "0.4"]) == 0  # fmt: skip
    assert "sp_correction_log10" not in json.loads(out.read_text())


def test_cli_free_level_gives_the_mechanisms_of_unbiased_ratios(tmp_path):
    """``--sp-free-level``: ratios 0.4 log10 low everywhere give the mechanisms the unbiased
    ratios give (each event's level is its own), and each row says so."""
    rows = {}
    for bias in (0.0, -0.4):
        events, _ = _events_with_biased_ratios(6, bias)
        inp = tmp_path / f"events{bias}.jsonl"
        inp.write_text("".join(json.dumps(e) + "\n" for e in events))
        out = tmp_path / f"out{bias}.jsonl"
        assert main(["invert", "--input", str(inp), "--output", str(out), "--no-progress",
                     "--sp-free-level"]) == 0  # fmt: skip
        rows[bias] = [json.loads(line) for line in out.open()]
        assert all(r["sp_free_level"] is True and r["n_sp_ratios"] == 9 for r in rows[bias])
    for a, b in zip(rows[0.0], rows[-0.4], strict=True):
        assert (a["strike"], a["dip"], a["rake"], a["quality"]) == (
            b["strike"], b["dip"], b["rake"], b["quality"]
        )  # fmt: skip


def test_check_stations_counts_and_flags_only_what_the_counts_support():
    """The flag needs most predictions to disagree and a binomial probability under alpha
    over the stations checked: ten of ten disagreeing is flagged; two of two among fifty
    stations, or a station whose agreements outnumber its (many) disagreements, is not."""
    from firstmotion.stationcheck import check_stations

    rows = []
    for k in range(48):  # stations wired right: 1 disagreement in 20 each
        rows += [(f"OK{k:02d}", 1, 1, 0.0)] * 19 + [(f"OK{k:02d}", 1, -1, float(k))]
    rows += [("REV", 1, -1, 100.0 + i) for i in range(10)]
    rows += [("FEW", -1, 1, 5.0), ("FEW", 1, -1, 6.0), ("FEW", 0, 1, 7.0)]  # 0: no prediction
    rows += [("MIX", 1, 1, 0.0)] * 11 + [("MIX", 1, -1, 1.0)] * 9
    checks = {c.station: c for c in check_stations(rows)}
    assert len(checks) == 51
    rev = checks["REV"]
    assert (rev.agree, rev.disagree, rev.likely_reversed) == (0, 10, True)
    assert (rev.first_disagree_s, rev.last_disagree_s) == (100.0, 109.0)
    assert rev.p_value < 1e-10
    assert (checks["FEW"].n, checks["FEW"].likely_reversed) == (2, False)
    assert checks["MIX"].p_value < 1e-4 and not checks["MIX"].likely_reversed
    assert not any(c.likely_reversed for k, c in checks.items() if k.startswith("OK"))
    assert check_stations(rows)[0].station == "REV"  # least probable first


def test_invert_station_check_finds_a_reversed_station(tmp_path):
    """`invert --station-check`: with one station upside down in every event and 5% of the
    other polarities misread, that station alone is flagged (each event inverted without the
    pick it predicts); with it in the reversal list, none is."""
    events, _ = _synthetic_events(8)
    rng = np.random.default_rng(9)
    for e in events:
        e["picks"][3]["polarity"] *= -1
        for p in e["picks"][4:]:
            if rng.random() < 0.05:
                p["polarity"] *= -1
    inp = tmp_path / "events.jsonl"
    inp.write_text("".join(json.dumps(e) + "\n" for e in events))
    (tmp_path / "rev.txt").write_text("S03 20240101 0\n")
    for extra, flagged in (
        ([], {"XX.S03..HHZ"}),
        (["--reversals", str(tmp_path / "rev.txt")], set()),
    ):
        report = tmp_path / "stations.csv"
        rc = main(["invert", "--input", str(inp), "--output", str(tmp_path / "m.jsonl"),
                   "--station-check", str(report), "--no-progress", *extra])  # fmt: skip
        assert rc == 0
        rows = list(csv.DictReader(report.open()))
        assert len(rows) == 25
        assert {r["station"] for r in rows if r["likely_reversed"] == "1"} == flagged
    s03 = next(r for r in rows if r["station"] == "XX.S03..HHZ")
    assert int(s03["agree"]) > 0 and int(s03["disagree"]) == 0  # corrected by the list


def test_station_check_on_hash_example_1_finds_listed_reversals():
    """HASH's example 1 read without its reversal list (``scsn.reverse`` undone on the
    polarities SKHASH inverted): the stations flagged as likely reversed are stations the list
    reverses in that time span (SWM among them, read the wrong way in all 14 of its reliable
    predictions); with the list applied, no station is flagged."""
    if not (HASH1 / "scsn.reverse").exists():
        pytest.skip(f"shared data absent: {HASH1}")
    from firstmotion.stationcheck import check_stations
    from workers.mechanism.cli import _event_from_json, station_check_rows

    rev = read_reversals(HASH1 / "scsn.reverse")
    raw = _parse_north1(HASH1 / "north1.phase")
    fixed, undone, listed = [], [], set()
    for line in (HASH1 / "inputs.jsonl").open():
        e = json.loads(line)
        e["origin_time"] = raw[e["event_id"]][0]
        ev = _event_from_json(e, "inputs.jsonl")
        pol = rev.apply(ev.station, ev.time_s, ev.polarity)  # a reversal undone by itself
        listed |= {s for s, a, b in zip(ev.station, pol, ev.polarity, strict=True) if a != b}
        fixed.append(ev)
        undone.append(replace(ev, polarity=pol))
    params = {"n_trials": 30, "seed": 0}
    for events, expect_flags in ((undone, True), (fixed, False)):
        rows = []
        for ev in events:
            rows += station_check_rows(ev, None, 8, 0.0, **params)
        checks = check_stations(rows)
        flagged = {c.station for c in checks if c.likely_reversed}
        if expect_flags:
            assert "SWM.VHZ" in flagged and flagged <= listed, flagged
        else:
            assert flagged == set(), flagged
