"""The swarm proxy's pieces: real noise under scenarios, bursts, velocity files with a vp_vs
line, and one-to-one event matching."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from firstmotion.messages import Origin
from firstmotion.velocity import VelocityModel
from stream.scenario.config import ScenarioConfig
from stream.scenario.events import burst_times_s, make_events

SHARED = Path(os.environ.get("FIRSTMOTION_SHARED", Path(__file__).resolve().parents[2] / "shared"))
NOISE = SHARED / "data" / "pr2017_noise"


def _write_noise(folder: Path, n: int = 3000, fs: float = 100.0) -> None:
    from obspy import Stream, Trace, UTCDateTime

    rng = np.random.default_rng(0)
    st = Stream()
    for cha, scale in (("EHZ", 100.0), ("EHN", 300.0), ("EHE", 50.0)):
        tr = Trace(rng.normal(0.0, scale, n) + 1000.0)
        tr.stats.update({"network": "XX", "station": "AB", "channel": cha, "sampling_rate": fs,
                         "starttime": UTCDateTime(2020, 1, 1)})  # fmt: skip
        st += tr
    folder.mkdir(parents=True, exist_ok=True)
    st.write(str(folder / "noise.mseed"), format="MSEED")
    (folder / "README.txt").write_text("not miniSEED\n")


def test_real_noise_is_unit_rms_per_channel_and_differs_between_stations(tmp_path):
    from stream.scenario.real_noise import load_noise

    _write_noise(tmp_path / "noise")
    lib = load_noise(tmp_path / "noise", 100.0)
    assert lib.sources == ("XX.AB",)
    rng = np.random.default_rng(1)
    a, b = lib.segment(0, 1000, rng), lib.segment(1, 1000, rng)
    assert a.shape == (3, 1000)
    for c in range(3):  # zero mean, unit RMS (white noise: nearly all above 1 Hz)
        assert abs(np.mean(lib.data[0][c])) < 0.05
        assert 0.9 < np.sqrt(np.mean(lib.data[0][c] ** 2)) < 1.1
    assert not np.allclose(a, b)  # stations sharing a source start at different times
    long = lib.segment(0, 7000, rng)  # longer than the record: repeated
    assert long.shape == (3, 7000) and np.all(np.isfinite(long))


def test_real_noise_without_three_components_is_an_error(tmp_path):
    from obspy import Trace

    from stream.scenario.real_noise import load_noise

    tr = Trace(np.zeros(5000))
    tr.stats.update({"station": "Z1", "channel": "EHZ", "sampling_rate": 100.0})
    tmp_path.joinpath("n").mkdir()
    tr.write(str(tmp_path / "n" / "z.mseed"), format="MSEED")
    with pytest.raises(ValueError, match="three-component"):
        load_noise(tmp_path / "n", 100.0)


def test_scenario_with_real_noise_scales_it_to_each_station(tmp_path):
    from stream.scenario import make_scenario

    _write_noise(tmp_path / "noise", n=12000)
    cfg = ScenarioConfig(n_stations=3, n_events=0, duration_s=60.0,
                         noise_dir=str(tmp_path / "noise"),
                         noise_level_range_m_s=(1e-7, 1e-6), seed=2)  # fmt: skip
    sc = make_scenario(cfg)
    sens = cfg.sensor_spec().sensitivity
    for j, st in enumerate(sc.stations):
        z = sc.counts[j, 0].astype(float) / sens
        assert 0.7 < np.std(z) / st.noise_rms_m_s < 1.4  # the station's level (white noise)
    assert not np.allclose(sc.counts[0, 0], sc.counts[1, 0])


@pytest.mark.skipif(not NOISE.exists(), reason="needs the shared noise hour")
def test_the_shared_noise_hour_loads():
    from stream.scenario.real_noise import load_noise

    lib = load_noise(NOISE, 100.0)
    assert len(lib.sources) == 3 and lib.data[0].shape[0] == 3


def test_bursts_and_swarm_radius():
    rng = np.random.default_rng(3)
    t = burst_times_s(27, 540.0, 0.4, 6.0, rng)
    gaps = np.diff(t)
    assert t.size == 27 and np.all(gaps >= 0) and t.max() < 540.0
    assert np.count_nonzero(gaps <= 6.0) >= 9  # 11 followers, each 1.8-6 s after another
    cfg = ScenarioConfig(n_events=40, region_km=40.0, swarm_radius_km=4.0, burst_fraction=0.4)
    ev = make_events(cfg, np.random.default_rng(4))
    assert max(np.hypot(e.north_km, e.east_km) for e in ev) <= 4.0
    with pytest.raises(ValueError):
        ScenarioConfig(burst_fraction=1.0)
    with pytest.raises(ValueError):
        ScenarioConfig(swarm_radius_km=0.0)


def test_two_column_model_with_vp_vs_line():
    text = "# vp_vs: 1.80\n0 3.0\n2 5.0\n10 6.0\n"
    m = VelocityModel.from_text(text)
    assert np.allclose(m.vp_km_s / m.vs_km_s, 1.80)
    assert np.allclose(VelocityModel.from_text(text.split("\n", 1)[1]).vp_km_s
                       / VelocityModel.from_text(text.split("\n", 1)[1]).vs_km_s, 1.73)  # fmt: skip
    with pytest.raises(ValueError):
        VelocityModel.from_text("# vp_vs: 0.9\n0 3.0\n")


def _origin(eid: str, t: float, lat: float, lon: float) -> Origin:
    return Origin(event_id=eid, revision=1, time_epoch_s=t, latitude_deg=lat,
                  longitude_deg=lon, depth_km=5.0, arrivals=())  # fmt: skip


def test_match_events_is_one_to_one_and_maximal():
    from obspy import UTCDateTime

    from firstmotion.demo import match_events

    t0 = UTCDateTime("2025-01-01T00:01:00").timestamp

    def ev(eid, dt):
        return {"event_id": eid, "origin_time": str(UTCDateTime(t0 + dt)),
                "latitude": 18.0, "longitude": -66.5}  # fmt: skip

    truth = {"events": [ev("a", 0.0), ev("b", 2.5)]}
    # catalog "x" is closest to a AND within reach of b; "y" reaches a only. Greedy in truth
    # order would give a -> x and leave b unmatched; one-to-one maximal gives a -> y, b -> x.
    catalog = [(_origin("x", t0 + 1.0, 18.0, -66.5), None),
               (_origin("y", t0 - 1.5, 18.01, -66.5), None)]  # fmt: skip
    m = match_events(truth, catalog)
    assert m["a"][0].event_id == "y" and m["b"][0].event_id == "x"
    assert match_events(truth, [catalog[0]]) in (
        {"a": catalog[0], "b": None}, {"a": None, "b": catalog[0]},
    )  # fmt: skip
    far = [(_origin("z", t0 + 10.0, 18.0, -66.5), None)]
    assert match_events(truth, far) == {"a": None, "b": None}
