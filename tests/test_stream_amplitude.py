"""Three-component pick amplitudes (stream.amplitude) and their way onto the Pick message."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from obspy import UTCDateTime

from firstmotion.messages import Pick, decode, encode
from stream.amplitude import AmplitudeParams, span_samples, vector_amplitude

RATE = 100.0


def _burst(n, at, amp, freq=8.0, dur=0.4):
    t = (np.arange(n) - at) / RATE
    return np.where((t >= 0) & (t < dur), amp * np.sin(2 * np.pi * freq * t), 0.0)


def _traces(amp=1000.0, noise=1.0, seed=0):
    before, after = span_samples(AmplitudeParams(), RATE)
    n = before + after
    rng = np.random.default_rng(seed)
    sig = _burst(n, before, amp)
    x = rng.normal(0, noise, (3, n))
    x[0] += 0.6 * sig  # E
    x[1] += 0.8 * sig  # N
    return x + 500.0, before  # an offset the demeaning removes


def test_peak_vector_amplitude_of_a_burst_and_the_noise_before_it():
    x, pick = _traces()
    amp, noise = vector_amplitude(x, RATE, pick)
    assert amp == pytest.approx(1000.0, rel=0.1)  # 8 Hz is in the 2-20 Hz pass band
    assert 0.5 < noise < 10.0  # peak of the band-passed vector noise (sigma 1)
    quiet, _ = _traces(amp=0.0)
    a0, n0 = vector_amplitude(quiet, RATE, pick)
    assert a0 / n0 < 3.0  # noise alone does not pass HASH's ratmin


def test_vector_amplitude_does_not_depend_on_the_horizontals_orientation():
    x, pick = _traces(seed=1)
    c, s = np.cos(np.radians(30)), np.sin(np.radians(30))
    rot = x.copy()
    rot[0], rot[1] = c * x[0] - s * x[1], s * x[0] + c * x[1]
    np.testing.assert_allclose(vector_amplitude(rot, RATE, pick), vector_amplitude(x, RATE, pick))


def test_vector_amplitude_needs_its_windows_and_reads_nan_as_the_mean():
    x, pick = _traces(seed=2)
    with pytest.raises(ValueError, match="do not hold"):
        vector_amplitude(x[:, 50:], RATE, pick - 50)
    with pytest.raises(ValueError, match="do not hold"):
        vector_amplitude(x[:, :-5], RATE, pick)
    y = x.copy()
    y[2, 10] = np.nan
    amp, noise = vector_amplitude(y, RATE, pick)
    assert np.isfinite(amp) and np.isfinite(noise)
    assert amp == pytest.approx(vector_amplitude(x, RATE, pick)[0], rel=0.02)


def test_pick_carries_the_amplitudes_and_older_picks_still_parse():
    pick = Pick(pick_id="p1", station_id="FM.S001..HHZ", time_epoch_s=1.7e9,
                sampling_rate_hz=100.0, start_time_epoch_s=1.7e9 - 1, pick_index=100,
                samples=np.zeros(200, dtype=np.float32), snr=10.0, amplitude=5.0,
                vector_amplitude=123.5, vector_noise=2.5)  # fmt: skip
    back = decode(encode(pick))
    assert back.vector_amplitude == 123.5 and back.vector_noise == 2.5
    old = json.loads(pick.to_json())
    del old["vector_amplitude"], old["vector_noise"]
    parsed = Pick.from_dict(old)
    assert parsed.vector_amplitude is None and parsed.vector_noise is None
    with pytest.raises(ValueError, match="vector_amplitude"):
        Pick.from_dict({**old, "vector_amplitude": -1.0})


@pytest.fixture(scope="module")
def staged_picks():
    from stream.phase_stage import PhaseStage
    from stream.picker import PhaseNetModel
    from stream.scenario import ScenarioConfig, make_scenario
    from stream.stage import Packet, StageParams

    torch.set_num_threads(1)
    sc = make_scenario(
        ScenarioConfig(n_stations=6, n_events=1, duration_s=120.0, region_km=40.0, seed=3)
    )
    packets = []
    for tr in sc.stream():
        rate = tr.stats.sampling_rate
        for i in range(0, tr.stats.npts, 200):
            start = tr.stats.starttime.ns + round(i * 1e9 / rate)
            packets.append(Packet(*tr.id.split("."), start, rate, tr.data[i : i + 200]))
    packets.sort(key=lambda p: (p.end_ns, p.seed_id))
    stage = PhaseStage(StageParams(), model=PhaseNetModel.load(device="cpu"))
    picks = []
    for pk in packets:
        picks += stage.process(pk)[1]
    return picks, sc.truth["events"][0]["stations"]


def test_phasenet_picks_carry_three_component_amplitudes(staged_picks):
    picks, rows = staged_picks
    assert picks
    for p in picks:
        assert p.vector_amplitude is not None and p.vector_noise is not None
        assert p.vector_amplitude > 0 and p.vector_noise > 0
    matched = 0
    for r in rows:
        at = {ph: UTCDateTime(r[f"{ph.lower()}_time"]).timestamp for ph in ("P", "S")}
        got = {}
        for p in picks:
            if p.station_id == r["station_id"] and abs(p.time_epoch_s - at[p.phase]) < 0.3:
                got[p.phase] = p
        if len(got) < 2:
            continue
        matched += 1
        p_pick, s_pick = got["P"], got["S"]
        assert p_pick.vector_amplitude / p_pick.vector_noise > 100  # a clear scenario event
        measured = np.log10(s_pick.vector_amplitude / p_pick.vector_amplitude)
        s_rad = np.hypot(r["sv_radiation"], r["sh_radiation"])
        predicted = np.log10(4.9 * s_rad / abs(r["p_radiation"]))
        assert abs(measured - predicted) < 0.7, (r["station_id"], measured, predicted)
    assert matched >= 4
