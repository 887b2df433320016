"""`firstmotion scenario`: the truth agrees with the physics and with the files written."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from firstmotion.cli import main
from firstmotion.radiation import p_radiation
from firstmotion.synth import first_lobe_peak as synth_first_lobe_peak
from firstmotion.velocity import VelocityModel, taup_model
from stream.scenario import ScenarioConfig, make_scenario, write_scenario
from stream.scenario.network import spread_points_km
from stream.scenario.waveforms import free_surface_p

SMALL = {"n_stations": 10, "n_events": 2, "duration_s": 120.0, "region_km": 60.0}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    config = ScenarioConfig(seed=7, magnitude_range=(2.5, 3.2), **SMALL)
    sc = make_scenario(config)
    out = tmp_path_factory.mktemp("scenario")
    paths = write_scenario(sc, out)
    return sc, out, paths


def _pairs(truth):
    for ev in truth["events"]:
        for row in ev["stations"]:
            yield ev, row


def test_vertical_strike_slip_gives_four_quadrants():
    sc = make_scenario(ScenarioConfig(seed=3, mechanism=(0.0, 90.0, 0.0), **SMALL))
    n_checked = 0
    for _, row in _pairs(sc.truth):
        az, takeoff = np.radians(row["azimuth_deg"]), np.radians(row["takeoff_deg"])
        # Aki & Richards 4.89 for strike 0, dip 90, rake 0: F_P = sin^2(i) sin(2 az)
        expect = np.sin(takeoff) ** 2 * np.sin(2 * az)
        assert row["p_radiation"] == pytest.approx(expect, abs=1e-5)
        if row["polarity"] != 0:
            assert row["polarity"] == np.sign(np.sin(2 * az))
            n_checked += 1
    assert n_checked >= 10


def test_truth_radiation_matches_radiation_module(written):
    sc, _, _ = written
    for ev, row in _pairs(sc.truth):
        r = p_radiation(ev["strike"], ev["dip"], ev["rake"], row["azimuth_deg"], row["takeoff_deg"])
        assert row["p_radiation"] == pytest.approx(float(r), abs=1e-5)


def test_takeoff_angles_and_p_times_match_taup(written, tmp_path):
    sc, _, _ = written
    tm = taup_model(VelocityModel.default(), cache_dir=tmp_path)
    for ev, row in list(_pairs(sc.truth))[::3]:
        arrivals = tm.get_travel_times(
            ev["depth_km"], row["distance_km"] / 111.19492664455873, phase_list=["p", "P", "Pn"]
        )
        first = min(arrivals, key=lambda a: a.time)
        travel = row["p_time_s"] - ev["origin_time_s"]
        assert travel == pytest.approx(first.time, abs=0.1)
        best = min(arrivals, key=lambda a: abs(180.0 - a.takeoff_angle - row["takeoff_deg"]))
        assert 180.0 - best.takeoff_angle == pytest.approx(row["takeoff_deg"], abs=1.0)


def _z_trace(out: Path, station: str, channel: str = "HHZ"):
    from obspy import read

    st = read(str(out / "mseed" / f"FM.{station}..{channel}.*.mseed"))
    st.merge()
    return st[0]


def _check_onsets_and_first_motions(sc, out: Path) -> int:
    """At every high-SNR station: an energy jump within 0.05 s of the truth P time (causal 1 Hz
    high-pass), and the first sample well above the trend-removed noise has the truth sign."""
    from obspy import UTCDateTime

    t0 = UTCDateTime(sc.truth["start_time"])
    fs = sc.config.sampling_rate_hz
    sos = butter(2, 1.0, "highpass", fs=fs, output="sos")  # causal: keeps the onset time
    n_checked = 0
    for _, row in _pairs(sc.truth):
        if row["polarity"] == 0 or (row["snr"] or 0) < 20:
            continue
        tr = _z_trace(out, row["station"], sc.truth["channels"][0])
        one_s = int(fs)
        k_p = int(round((t0 + row["p_time_s"] - tr.stats.starttime) * fs))
        x = sosfilt(sos, tr.data.astype(float))
        thresh = 5.0 * np.std(x[k_p - one_s : k_p - 2])
        after = np.nonzero(np.abs(x[k_p - one_s :]) > thresh)[0]
        onset = (after[0] - one_s) / fs
        assert -0.02 <= onset <= 0.05, (row["station"], onset)
        raw = tr.data.astype(float)
        pre = raw[k_p - one_s : k_p]
        t = np.arange(pre.size)
        slope, icpt = np.polyfit(t, pre, 1)
        seg = raw[k_p : k_p + one_s] - (icpt + slope * (pre.size + np.arange(one_s)))
        resid = pre - (icpt + slope * t)
        big = np.nonzero(np.abs(seg) > 3 * np.std(resid))[0]
        assert np.sign(seg[big[0]]) == row["recorded_polarity"], row["station"]
        n_checked += 1
    return n_checked


def test_p_onsets_and_first_motions_in_the_miniseed(written):
    sc, out, _ = written
    assert _check_onsets_and_first_motions(sc, out) >= 5


def test_an_emergent_p_is_a_slower_source_not_a_ramped_recording():
    """An emergent onset releases the same moment more slowly: the far-field displacement
    keeps one sign and its area (the moment), and the velocity's first lobe is not a small
    precursor of a larger opposite swing, as a ramp on the recorded velocity made it."""
    from stream.scenario.waveforms import _pulse_segment

    fs = 100.0
    for fc_hz in (2.0, 8.0):
        start, sharp = _pulse_segment(10.0, fs, fc_hz, 0.01)
        start_slow, slow = _pulse_segment(10.0, fs, fc_hz, 0.01, emergence_s=0.3)
        assert start_slow == start and slow.size >= sharp.size
        disp_sharp, disp_slow = np.cumsum(sharp) / fs, np.cumsum(slow) / fs
        assert disp_slow.sum() == pytest.approx(disp_sharp.sum(), rel=0.02)  # the same moment
        assert disp_slow.min() >= -1e-3 * disp_slow.max()
        (peak,), _ = synth_first_lobe_peak(slow[None])
        assert np.abs(slow).max() <= 1.5 * peak
        (sharp_peak,), _ = synth_first_lobe_peak(sharp[None])
        # the onset rises more slowly: half the first lobe's peak comes later
        half_slow = np.argmax(slow >= 0.5 * peak)
        assert half_slow >= np.argmax(sharp >= 0.5 * sharp_peak) + 0.03 * fs


def test_emergent_onsets_keep_their_first_motion_in_the_miniseed(tmp_path):
    config = ScenarioConfig(seed=7, magnitude_range=(2.5, 3.2), emergent_fraction=1.0, **SMALL)
    sc = make_scenario(config)
    write_scenario(sc, tmp_path)
    assert all(row["emergence_s"] > 0 for _, row in _pairs(sc.truth))
    assert _check_onsets_and_first_motions(sc, tmp_path) >= 5


@pytest.mark.parametrize("rate_hz", [40.0, 200.0])
def test_other_sampling_rates(rate_hz, tmp_path):
    config = ScenarioConfig(seed=8, sampling_rate_hz=rate_hz, magnitude_range=(2.5, 3.2), **SMALL)
    sc = make_scenario(config)
    write_scenario(sc, tmp_path)
    tr = _z_trace(tmp_path, "S002", "HHZ" if rate_hz >= 80 else "BHZ")
    assert tr.stats.sampling_rate == rate_hz
    assert tr.stats.npts == int(SMALL["duration_s"] * rate_hz)
    assert _check_onsets_and_first_motions(sc, tmp_path) >= 3


def test_files_are_512_byte_steim2_int32(written):
    from obspy.io.mseed.util import get_record_information

    _, out, paths = written
    files = paths["mseed"]
    assert len(files) == 3 * SMALL["n_stations"]
    for f in files[:6]:
        assert f.stat().st_size % 512 == 0
        info = get_record_information(str(f))
        assert info["record_length"] == 512
        assert info["encoding"] == 11  # STEIM2
        assert ".HH" in f.name and f.name.endswith(".00.mseed")
    tr = _z_trace(out, "S001")
    assert tr.data.dtype == np.int32
    assert tr.stats.npts == int(SMALL["duration_s"] * 100)


def test_stationxml_and_quakeml_readable(written):
    from obspy import read_events, read_inventory

    sc, out, _ = written
    inv = read_inventory(str(out / "stations.xml"))
    truth = json.loads((out / "truth.json").read_text())
    for s in truth["stations"]:
        coords = inv.get_coordinates(f"FM.{s['station']}..HHZ")
        assert coords["latitude"] == pytest.approx(s["latitude"])
        assert coords["longitude"] == pytest.approx(s["longitude"])
    ch = inv.select(station="S001", channel="HHZ")[0][0][0]
    assert ch.dip == -90.0 and ch.sample_rate == 100.0
    assert ch.response.instrument_sensitivity.value == pytest.approx(6.0e8)
    assert inv.select(station="S001", channel="HHE")[0][0][0].azimuth == 90.0
    cat = read_events(str(out / "truth.xml"))
    assert len(cat) == SMALL["n_events"]
    for ev, qev in zip(truth["events"], cat, strict=True):
        np1 = qev.focal_mechanisms[0].nodal_planes.nodal_plane_1
        assert (np1.strike, np1.dip, np1.rake) == pytest.approx(
            (ev["strike"], ev["dip"], ev["rake"])
        )
        assert qev.origins[0].depth == pytest.approx(ev["depth_km"] * 1e3)
        pols = {p.waveform_id.station_code: p.polarity for p in qev.picks if p.phase_hint == "P"}
        for row in ev["stations"]:
            expect = {1: "positive", -1: "negative", 0: "undecidable"}[row["polarity"]]
            assert pols[row["station"]] == expect
    model = VelocityModel.from_file(out / "velocity_model.txt")
    np.testing.assert_allclose(model.vp_km_s, sc.model.vp_km_s)


def test_labels_follow_the_documented_rule(written):
    sc, _, _ = written
    for _, row in _pairs(sc.truth):
        snr = abs(row["first_motion_counts"]) / row["noise_rms_counts"]
        expect = int(np.sign(row["p_radiation"])) if row["p_in_data"] and snr >= 1 else 0
        assert row["polarity"] == expect
        assert np.sign(row["first_motion_counts"]) in (np.sign(row["p_radiation"]), 0)


def test_same_seed_same_data_other_seed_other_data():
    a = make_scenario(ScenarioConfig(seed=5, **SMALL))
    b = make_scenario(ScenarioConfig(seed=5, **SMALL))
    c = make_scenario(ScenarioConfig(seed=6, **SMALL))
    np.testing.assert_array_equal(a.counts, b.counts)
    assert a.truth["events"] == b.truth["events"]
    assert not np.array_equal(a.counts, c.counts)


def test_gaps_split_traces_and_unknown_labels_in_gaps():
    sc = make_scenario(ScenarioConfig(seed=2, gaps=True, spikes=True, n_stations=12, n_events=2,
                                      duration_s=120.0))  # fmt: skip
    assert sc.gaps.any()
    st = sc.stream()
    assert len(st) > 3 * 12  # channels with gaps come in several pieces
    in_gap = ~sc.amplitudes.p_in_data
    labels = np.array([[r["polarity"] for r in e["stations"]] for e in sc.truth["events"]])
    assert np.all(labels[in_gap] == 0)


def test_reversed_stations_flip_the_recorded_first_motion(tmp_path):
    config = ScenarioConfig(seed=7, magnitude_range=(2.5, 3.2), reversed_stations=4, **SMALL)
    sc = make_scenario(config)
    paths = write_scenario(sc, tmp_path)
    flipped = [s.code for s in sc.stations if s.reversed]
    assert len(flipped) == 4
    lines = paths["reversals"].read_text().splitlines()
    assert lines[0] == "network,station,location,channel,start_time,end_time"
    assert sorted(line.split(",")[1] for line in lines[1:]) == sorted(flipped)
    rows = [r for _, r in _pairs(sc.truth) if r["station"] in flipped and r["polarity"] != 0]
    assert rows and all(r["recorded_polarity"] == -r["polarity"] for r in rows)
    # the miniSEED carries the flipped sign at reversed stations, the true one elsewhere
    assert _check_onsets_and_first_motions(sc, tmp_path) >= 5
    plain = make_scenario(ScenarioConfig(seed=7, magnitude_range=(2.5, 3.2), **SMALL))
    j = [s.code for s in sc.stations].index(flipped[0])
    np.testing.assert_array_equal(sc.counts[j, 0], -plain.counts[j, 0])


@pytest.mark.parametrize(
    "sensor,z_code,units",
    [
        ("short_period", "EHZ", "M/S"),
        ("geophone", "EPZ", "M/S"),
        ("accelerometer", "HNZ", "M/S**2"),
    ],
)
def test_sensor_kinds(sensor, z_code, units, tmp_path):
    from obspy import read_inventory

    config = ScenarioConfig(seed=7, magnitude_range=(2.5, 3.2), sensor=sensor, **SMALL)
    sc = make_scenario(config)
    write_scenario(sc, tmp_path)
    assert sc.truth["channels"][0] == z_code and sc.truth["data_units"] == units
    inv = read_inventory(str(tmp_path / "stations.xml"))
    ch = inv.select(station="S001", channel=z_code)[0][0][0]
    assert ch.dip == -90.0
    assert ch.response.instrument_sensitivity.input_units == units
    assert _check_onsets_and_first_motions(sc, tmp_path) >= 5


def test_free_surface_coefficients():
    wx, wz = free_surface_p(np.array([0.0, 0.1, 1 / 5.5]), 5.5, 3.175)
    assert wz[0] == pytest.approx(2.0) and wx[0] == pytest.approx(0.0)
    assert 0 < wz[1] < 2 and wx[1] > 0
    assert wz[2] == pytest.approx(0.0, abs=1e-9)  # grazing incidence


def test_station_layout_is_not_clustered():
    rng = np.random.default_rng(0)
    north, east = spread_points_km(40, 100.0, rng)
    assert np.all(np.abs(north) <= 50) and np.all(np.abs(east) <= 50)
    d = np.hypot(north[:, None] - north[None], east[:, None] - east[None])
    np.fill_diagonal(d, np.inf)
    # uniform random points would typically have a nearest pair < 2 km; spread ones > 7 km
    assert d.min() > 7.0


def test_cli_writes_scenario_and_plot(tmp_path):
    out = tmp_path / "sc"
    args = ["--n-stations", "6", "--n-events", "1", "--duration-s", "60"]
    args += ["--mechanism", "30/60/90", "--seed", "4", "--plot"]
    rc = main(["scenario", "--out", str(out), *args])
    assert rc == 0
    truth = json.loads((out / "truth.json").read_text())
    ev = truth["events"][0]
    assert (ev["strike"], ev["dip"], ev["rake"]) == (30.0, 60.0, 90.0)
    png = out / "scenario.png"
    assert png.stat().st_size > 10_000
    png.unlink()
    assert main(["scenario", "plot", str(out)]) == 0
    assert png.exists()
    assert main(["scenario", "--out", str(out), "--mechanism", "30/60"]) == 2


def test_hour_files_split_at_the_hour_without_gaps_or_overlaps(tmp_path):
    from obspy import UTCDateTime, read

    config = ScenarioConfig(seed=1, n_stations=1, n_events=1, duration_s=150.0,
                            start_time="2025-03-01T00:59:00Z")  # fmt: skip
    sc = make_scenario(config)
    paths = write_scenario(sc, tmp_path)
    names = sorted(p.name for p in paths["mseed"])
    assert names == sorted(
        f"FM.S001..{c}.2025.060.{h}.mseed" for c in ("HHZ", "HHN", "HHE") for h in ("00", "01")
    )
    first = read(str(tmp_path / "mseed" / "FM.S001..HHZ.2025.060.00.mseed"))
    second = read(str(tmp_path / "mseed" / "FM.S001..HHZ.2025.060.01.mseed"))
    assert first[0].stats.endtime < UTCDateTime("2025-03-01T01:00:00Z")
    assert second[0].stats.starttime == UTCDateTime("2025-03-01T01:00:00Z")
    both = (first + second).merge()
    assert len(both) == 1 and not np.ma.is_masked(both[0].data)
    np.testing.assert_array_equal(both[0].data, sc.counts[0, 0])


def test_no_events_is_just_noise():
    sc = make_scenario(ScenarioConfig(seed=1, n_stations=3, n_events=0, duration_s=30.0))
    assert sc.truth["events"] == [] and sc.counts.shape == (3, 3, 3000)
    assert np.abs(sc.counts).max() > 0


@pytest.mark.parametrize("sdr", [(114.0, 53.0, 98.0), (231.0, 63.0, 28.0), (10.0, 30.0, -90.0)])
def test_plotted_polarities_fall_in_the_beachball_quadrants(sdr):
    """The station projection of the plot agrees with obspy's beachball: compressional rays
    (up- and down-going) land inside the filled patch."""
    import matplotlib

    matplotlib.use("Agg")
    from obspy.imaging.beachball import beach

    from stream.scenario.plot import lower_hemisphere_xy

    rng = np.random.default_rng(0)
    az, takeoff = rng.uniform(0, 360, 2000), rng.uniform(0, 180, 2000)
    x, y = lower_hemisphere_xy(az, takeoff)
    r = p_radiation(*sdr, az, takeoff)
    filled = beach(sdr, xy=(0, 0), width=2.0).get_paths()[0]
    inside = filled.contains_points(np.column_stack([x, y]))
    clear = np.abs(r) > 0.2
    assert np.all(inside[clear] == (r[clear] > 0))


def test_low_gain_sensor_noise_is_not_quantized_to_zero():
    """Regression: a geophone's ambient noise (~0.1 count) rounded to flat zeros; the
    digitizer's own 1-count noise keeps every channel alive."""
    sc = make_scenario(ScenarioConfig(seed=7, sensor="geophone", n_stations=4, n_events=0,
                                      duration_s=20.0))  # fmt: skip
    per_channel = sc.counts.reshape(-1, sc.counts.shape[-1])
    assert np.all(np.std(per_channel, axis=1) >= 0.8)
    assert np.all(np.mean(per_channel == 0, axis=1) < 0.6)


def test_a_model_above_sea_level_puts_stations_on_its_top(tmp_path):
    """With a model that starts 1.5 km above sea level the stations stand on its top (1,500 m
    elevation) and the truth's depths are below sea level: the model's depth range less
    1.5 km, each P time that of the ray from the model depth (depth + 1.5 km) to the top."""
    from firstmotion.velocity import trace_rays

    path = tmp_path / "volcano.txt"
    path.write_text("# vp_vs: 1.76\n-1.5 3.0\n1.0 4.8\n6.0 6.0\n")
    sc = make_scenario(
        ScenarioConfig(seed=4, velocity_model=str(path), depth_range_km=(3.0, 6.0), **SMALL)
    )
    assert sc.model.top_km == -1.5
    assert all(s.elevation_m == 1500.0 for s in sc.stations)
    for ev in sc.truth["events"]:
        assert 1.5 <= ev["depth_km"] <= 4.5
        row = ev["stations"][0]
        t = trace_rays(sc.model, [row["distance_km"]], ev["depth_km"] + 1.5, "P").time_s
        assert row["p_time_s"] - ev["origin_time_s"] == pytest.approx(float(t[0]), abs=1e-4)


def test_a_scenario_written_over_another_leaves_only_its_own_miniseed(tmp_path):
    """A folder written again (``firstmotion demo`` with other settings into the same
    ``--out``) holds only the new scenario's records: a replay of the folder must not serve
    an earlier scenario's stations beside it."""
    big = make_scenario(ScenarioConfig(seed=7, **{**SMALL, "n_stations": 12}))
    small = make_scenario(ScenarioConfig(seed=7, **{**SMALL, "n_stations": 4}))
    write_scenario(big, tmp_path)
    keep = tmp_path / "notes.txt"
    keep.write_text("an operator's file\n")
    paths = write_scenario(small, tmp_path)
    on_disk = sorted((tmp_path / "mseed").glob("*.mseed"))
    assert on_disk == sorted(paths["mseed"])
    assert len({p.name.split(".")[1] for p in on_disk}) == 4  # stations
    assert keep.exists()
