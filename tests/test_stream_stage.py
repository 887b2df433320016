"""The stream stage without a network: packets in, Pick messages out."""

from __future__ import annotations

import numpy as np
import pytest

from firstmotion.messages import Pick
from stream.buffer import NS_PER_S
from stream.detect import DetectParams
from stream.stage import Packet, StageParams, StreamStage

T0_NS = 1_700_000_000 * NS_PER_S
RATE_HZ = 100.0


def _packets(x: np.ndarray, *, channel: str = "HHZ", size: int = 300, t0_ns: int = T0_NS):
    for i in range(0, x.size, size):
        start = t0_ns + round(i * NS_PER_S / RATE_HZ)
        yield Packet("XX", "STA", "00", channel, start, RATE_HZ, x[i : i + size], sequence=i)


def _trace(onsets_s=(), spikes_s=(), duration_s=90.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * RATE_HZ)) / RATE_HZ
    x = rng.normal(0, 1, t.size) + 2000.0
    for onset in onsets_s:
        tau = t - onset
        on = tau >= 0
        x[on] += 25 * np.sin(2 * np.pi * 5 * tau[on]) * np.exp(-tau[on] / 1.0)
    for spike in spikes_s:
        x[int(spike * RATE_HZ)] += 150.0
    return x


def _run(stage: StreamStage, x: np.ndarray, **kw) -> list[Pick]:
    picks = []
    for packet in _packets(x, **kw):
        picks += stage.process(packet)[1]
    return picks


def test_onset_becomes_a_pick_with_its_window():
    stage = StreamStage(StageParams(window_before_s=10.0, window_after_s=4.0))
    stage.coordinates = {"XX.STA": (18.1, -66.5, 300.0)}
    picks = _run(stage, _trace(onsets_s=[40.123]))
    assert len(picks) == 1
    p = picks[0]
    assert abs(p.time_epoch_s - (T0_NS / NS_PER_S + 40.123)) <= 0.03
    assert p.station_id == "XX.STA.00.HHZ" and p.pick_id.startswith("XX.STA.00.HHZ:")
    assert (p.latitude_deg, p.longitude_deg, p.elevation_m) == (18.1, -66.5, 300.0)
    assert p.samples.size == 1401 and p.pick_index == 1000
    # raw counts: the window is the data itself, DC offset and all
    assert abs(float(np.median(p.samples[:900])) - 2000.0) < 1.0
    assert Pick.from_json(p.to_json()) == p


def test_spikes_do_not_become_picks_and_other_components_are_ignored():
    stage = StreamStage()
    picks = _run(stage, _trace(onsets_s=[60.0], spikes_s=[20.0, 33.3, 47.0]))
    assert [round(p.time_epoch_s - T0_NS / NS_PER_S) for p in picks] == [60]
    assert stage.glitches_repaired == 3 and stage.glitches == 0  # repaired before detection
    # a spike before the repair has its noise scale (a segment's first 8 s) triggers, and its
    # detection is dropped as a glitch
    stage = StreamStage(StageParams(detect=DetectParams(lta_s=5.0)))
    picks = _run(stage, _trace(onsets_s=[60.0], spikes_s=[7.5]))
    assert [round(p.time_epoch_s - T0_NS / NS_PER_S) for p in picks] == [60]
    assert stage.glitches_repaired == 0 and stage.glitches == 1
    assert _run(stage, _trace(onsets_s=[60.0]), channel="HHN") == []


def test_a_large_glitch_before_an_onset_no_longer_blinds_the_detector(monkeypatch):
    """One sample 1,000 times the onset's size 5 s before it (a telemetry bit error) raised
    the STA/LTA's long-term average so far that the onset was missed; repaired, the onset is
    picked where the clean record has it, and the pick's window keeps the data as received."""
    import stream.detect
    from firstmotion.glitches import GlitchStream

    clean = _trace(onsets_s=[60.0])
    x = clean.copy()
    x[5500] += 25_000.0
    want = [round(p.time_epoch_s, 3) for p in _run(StreamStage(), clean)]
    stage = StreamStage(StageParams(window_before_s=10.0))
    picks = _run(stage, x)
    assert [round(p.time_epoch_s, 3) for p in picks] == want and stage.glitches_repaired == 1
    at = round((T0_NS / NS_PER_S + 55.0 - picks[0].start_time_epoch_s) * RATE_HZ)
    assert picks[0].samples[at] == np.float32(x[5500])

    class AsReceived(GlitchStream):
        def feed(self, x):
            self.received += len(x)
            self.emitted += len(x)
            return np.asarray(x, dtype=np.float64)

    monkeypatch.setattr(stream.detect, "GlitchStream", AsReceived)
    assert _run(StreamStage(), x) == []


def test_repeat_after_restart_is_suppressed_by_last_pick_time():
    x = _trace(onsets_s=[30.0, 70.0])
    first = StreamStage()
    picks = _run(first, x)
    assert len(picks) == 2
    again = StreamStage(last_pick_epoch_s=first.last_pick_epoch_s)
    assert _run(again, x) == [] and again.suppressed == 2


def test_snapshot_restore_continues_exactly():
    x = _trace(onsets_s=[25.0, 52.5, 80.0], duration_s=100.0, seed=3)
    whole = _run(StreamStage(), x)
    assert len(whole) == 3
    stage = StreamStage()
    cut = 4500  # mid-way, between packets
    head = _run(stage, x[:cut])
    snap = stage.snapshot("XX.STA.00.HHZ")
    resumed = StreamStage(
        resume_channels={"XX.STA.00.HHZ": snap}, last_pick_epoch_s=stage.last_pick_epoch_s
    )
    tail = _run(resumed, x[cut:], t0_ns=T0_NS + round(cut * NS_PER_S / RATE_HZ))
    got = [(p.station_id, p.time_epoch_s, p.snr) for p in head + tail]
    assert got == [(p.station_id, p.time_epoch_s, p.snr) for p in whole]
    # a snapshot taken under other detector settings is not continued: a fresh segment
    other = StreamStage(
        StageParams(detect=DetectParams(sta_s=0.3)), resume_channels={"XX.STA.00.HHZ": snap}
    )
    other.process(next(_packets(x[cut:], t0_ns=T0_NS + round(cut * NS_PER_S / RATE_HZ))))
    assert other.channels["XX.STA.00.HHZ"].detector.received == 300


def test_snapshot_restore_keeps_watching_a_rejected_trigger():
    """A snapshot taken while a rejected trigger is watched (a noise rise from 29 s holds it):
    the restarted stage still picks the clear onset at 39 s inside it, as one never stopped."""
    rng = np.random.default_rng(4)
    t = np.arange(int(70 * RATE_HZ)) / RATE_HZ
    x = rng.normal(0, 1, t.size) * np.interp(t, [29, 31, 50, 52], [1, 2.3, 2.3, 1]) + 2000.0
    tau = t - 39.0
    x[tau >= 0] += 25 * np.sin(2 * np.pi * 5 * tau[tau >= 0]) * np.exp(-tau[tau >= 0] / 1.0)
    whole = _run(StreamStage(), x)
    assert [round(p.time_epoch_s - T0_NS / NS_PER_S, 1) for p in whole] == [39.0]
    stage = StreamStage()
    cut = 3600  # the rise's own onset rejected, the trigger still active and watched
    assert _run(stage, x[:cut]) == []
    snap = stage.snapshot("XX.STA.00.HHZ")
    assert snap["detector"]["watch"] is not None
    resumed = StreamStage(resume_channels={"XX.STA.00.HHZ": snap})
    tail = _run(resumed, x[cut:], t0_ns=T0_NS + round(cut * NS_PER_S / RATE_HZ))
    assert [(p.time_epoch_s, p.snr) for p in tail] == [(p.time_epoch_s, p.snr) for p in whole]


def test_stage_params_validate():
    with pytest.raises(ValueError, match="buffer_s"):
        StageParams(buffer_s=10.0)
    with pytest.raises(ValueError, match="window_after_s"):
        StageParams(window_after_s=0.0)


def test_clock_going_back_resets_the_channel_and_its_repeat_guard():
    x = _trace(onsets_s=[40.0], duration_s=70.0)
    stage = StreamStage()
    assert len(_run(stage, x)) == 1
    # the digitizer's clock jumps back by ten minutes: the same samples, earlier times
    picks = _run(stage, x, t0_ns=T0_NS - 600 * NS_PER_S)
    assert len(picks) == 1 and stage.suppressed == 0
    assert abs(picks[0].time_epoch_s - (T0_NS / NS_PER_S - 600 + 40.0)) < 0.05


def test_sampling_rate_change_starts_a_new_detector_at_the_new_rate():
    stage = StreamStage()
    x100 = _trace(duration_s=40.0, seed=1)
    assert _run(stage, x100) == []
    rng = np.random.default_rng(2)
    t = np.arange(int(60 * 200)) / 200.0
    x200 = rng.normal(0, 1, t.size) + 2000.0
    on = t >= 35.0
    x200[on] += 25 * np.sin(2 * np.pi * 5 * (t[on] - 35.0)) * np.exp(-(t[on] - 35.0))
    start = T0_NS + 40 * NS_PER_S
    picks = []
    for i in range(0, x200.size, 600):
        packet = Packet("XX", "STA", "00", "HHZ", start + i * 5_000_000, 200.0, x200[i : i + 600])
        picks += stage.process(packet)[1]
    assert len(picks) == 1 and picks[0].sampling_rate_hz == 200.0
    assert abs(picks[0].time_epoch_s - (T0_NS / NS_PER_S + 75.0)) < 0.03


def test_pick_window_keeps_every_count_on_a_large_dc_offset():
    """A datalogger's DC offset beyond float32's integers (2**24): the pick's window is the
    counts less a whole-number offset, so a first motion of a count or two survives the
    wire's float32."""
    x = np.round(_trace(onsets_s=[40.0])) + 30_000_001.0
    (p,) = _run(StreamStage(), x)
    start = round((p.start_time_epoch_s - T0_NS / NS_PER_S) * RATE_HZ)
    diff = p.samples.astype(np.float64) - x[start : start + p.samples.size]
    assert np.ptp(diff) == 0 and diff[0] < -29_000_000
