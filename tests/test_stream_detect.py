"""Detector numerics: fast functions against slow twins, synthetic onsets, streaming == one pass."""

from __future__ import annotations

import numpy as np
import pytest
from obspy.signal.trigger import recursive_sta_lta

from firstmotion.onsets import aic_curve, aic_curve_py, aic_onset, aic_onsets
from stream.detect import (
    ChannelDetector,
    DetectParams,
    bandpass_causal,
    design_bandpass,
    detect_once,
    kurtosis_onset,
    single_sample_glitch,
    snr_and_amplitude,
    sta_lta_triggers,
    sta_lta_triggers_py,
)

RATE_HZ = 100.0


def _onset_trace(
    onset_s: float, *, duration_s: float = 60.0, rate_hz: float = RATE_HZ, snr: float = 20.0,
    seed: int = 0, polarity: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """White noise (RMS 1) plus a 6 Hz damped wavelet starting exactly at ``onset_s``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * rate_hz)) / rate_hz
    x = rng.normal(0.0, 1.0, t.size) + 1000.0  # a DC offset, as raw counts have
    tau = t - onset_s
    on = tau >= 0
    x[on] += polarity * snr * np.sin(2 * np.pi * 6.0 * tau[on]) * np.exp(-tau[on] / 1.5)
    return x


def test_sta_lta_matches_obspy_and_slow_twin_without_triggers():
    rng = np.random.default_rng(1)
    y = rng.normal(size=5000)
    y[0] = 0.0  # obspy's recursion starts at sample 1
    onsets, cft, _ = sta_lta_triggers(y, 50, 1000, on=np.inf, off=1e300, dead_samples=0)
    assert onsets.size == 0
    np.testing.assert_allclose(cft, recursive_sta_lta(y, 50, 1000), rtol=1e-9, atol=1e-12)
    _, cft_py = sta_lta_triggers_py(y, 50, 1000, on=np.inf, off=1e300, dead_samples=0)
    np.testing.assert_allclose(cft, cft_py, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sta_lta_triggers_equal_slow_twin_with_frozen_lta(seed):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=30_000)
    for start in rng.integers(2000, 28_000, 8):  # bursts that trigger
        y[start : start + 300] *= rng.uniform(3, 30)
    fast, cft, _ = sta_lta_triggers(y, 50, 1000, 3.0, 1.5, dead_samples=200)
    slow, cft_py = sta_lta_triggers_py(y, 50, 1000, 3.0, 1.5, dead_samples=200)
    assert len(slow) >= 3
    assert fast.tolist() == slow
    np.testing.assert_allclose(cft, cft_py, rtol=1e-8, atol=1e-12)


def test_trigger_held_by_a_lasting_noise_rise_is_released_after_max_active():
    rng = np.random.default_rng(4)
    y = rng.normal(size=40_000)
    y[10_000:] *= 5  # the noise level steps up for good (wind, a pump)
    y[30_000:30_300] *= 20  # a later event
    args = (50, 1000, 3.0, 1.5, 200)
    held, _, _ = sta_lta_triggers(y, *args)
    assert len(held) == 1 and 10_000 <= held[0] < 10_100  # stuck: the later event is missed
    released, _, state = sta_lta_triggers(y, *args, max_active_samples=3000)
    assert 30_000 <= released[-1] < 30_100  # released: the later event is seen
    slow, _ = sta_lta_triggers_py(y, *args, max_active_samples=3000)
    assert released.tolist() == slow
    got, state = [], None
    for chunk in np.array_split(y, 17):
        onsets, _, state = sta_lta_triggers(chunk, *args, state, max_active_samples=3000)
        got += onsets.tolist()
    assert got == slow


def test_sta_lta_triggers_in_chunks_equal_one_pass():
    rng = np.random.default_rng(5)
    y = rng.normal(size=20_000)
    y[6000:6400] *= 20
    y[15_000:15_200] *= 10
    whole, cft_whole, _ = sta_lta_triggers(y, 50, 1000, 3.0, 1.5, 200)
    got, parts, state = [], [], None
    for chunk in np.array_split(y, [7, 512, 6100, 6101, 9000, 15_100]):
        onsets, cft, state = sta_lta_triggers(chunk, 50, 1000, 3.0, 1.5, 200, state)
        got += onsets.tolist()
        parts.append(cft)
    assert got == whole.tolist() and len(got) == 2
    np.testing.assert_allclose(np.concatenate(parts), cft_whole, rtol=1e-9)


def test_sta_lta_rejects_bad_arguments():
    with pytest.raises(ValueError, match="nsta < nlta"):
        sta_lta_triggers(np.zeros(10), 100, 50, 3.0, 1.0, 0)
    with pytest.raises(ValueError, match="off < on"):
        sta_lta_triggers(np.zeros(10), 5, 50, 1.0, 3.0, 0)


def test_aic_curve_equals_slow_twin():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(0, 1, 150), rng.normal(0, 8, 100)]) + 5e4
    np.testing.assert_allclose(aic_curve(x), aic_curve_py(x), rtol=1e-7)


def test_aic_curves_and_onsets_of_many_rows_are_each_rows_own():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, (12, 120)) + rng.normal(0, 1e4, (12, 1))
    for i, k in enumerate(rng.integers(20, 100, 12)):
        x[i, k:] *= 6
    curves = aic_curve(x)
    for row, curve in zip(x, curves, strict=True):
        np.testing.assert_array_equal(curve, aic_curve(row))
    np.testing.assert_array_equal(aic_onsets(x), [aic_onset(row) for row in x])


@pytest.mark.parametrize("onset", [40, 101, 173])
def test_aic_onset_finds_a_variance_change(onset):
    rng = np.random.default_rng(onset)
    x = rng.normal(0, 1, 250)
    x[onset:] *= 10
    assert abs(aic_onset(x) - onset) <= 1.5


def test_kurtosis_onset_finds_an_impulsive_onset():
    x = _onset_trace(2.0, duration_s=4.0, snr=30.0, seed=4) - 1000.0
    assert abs(kurtosis_onset(x, 25) - 200) <= 3


def test_snr_and_amplitude():
    y = np.concatenate([np.full(100, 0.5) * (-1) ** np.arange(100), np.full(50, 4.0)])
    snr, amp = snr_and_amplitude(y, 100, 80, 50)
    assert snr == pytest.approx(8.0) and amp == pytest.approx(4.0)


@pytest.mark.parametrize("onset_s,polarity", [(23.37, 1.0), (31.012, -1.0), (44.5, 1.0)])
def test_synthetic_onset_is_picked_within_a_few_samples(onset_s, polarity):
    x = _onset_trace(onset_s, polarity=polarity, seed=int(onset_s))
    dets = detect_once(x, RATE_HZ)
    assert len(dets) == 1
    err_samples = dets[0].onset_index - onset_s * RATE_HZ
    assert abs(err_samples) <= 3, err_samples
    assert dets[0].snr > 5 and dets[0].amplitude > 5


def test_no_pick_on_pure_noise():
    rng = np.random.default_rng(11)
    x = rng.normal(0, 1, int(600 * RATE_HZ)) + 300
    assert detect_once(x, RATE_HZ) == []


def test_streaming_chunks_give_the_same_picks_as_one_pass():
    onsets = [25.0, 41.3, 70.05, 88.8]
    x = sum(_onset_trace(t, duration_s=110.0, seed=i) - 1000 for i, t in enumerate(onsets)) / 4
    whole = detect_once(x, RATE_HZ)
    assert len(whole) == len(onsets)
    rng = np.random.default_rng(0)
    det = ChannelDetector(DetectParams(), RATE_HZ, history_s=30.0)
    got = []
    cuts = np.sort(rng.choice(np.arange(1, x.size), 60, replace=False))
    for chunk in np.split(x, cuts):  # packets of 1..~500 samples, triggers across boundaries
        got += det.feed(chunk)
    assert got == whole


def test_no_duplicate_pick_for_one_long_onset():
    # a slowly growing, long event: STA/LTA can re-trigger in its coda; one pick only
    rng = np.random.default_rng(2)
    t = np.arange(int(80 * RATE_HZ)) / RATE_HZ
    env = np.where(t > 30, np.minimum((t - 30) / 2.0, 1.0) * np.exp(-(t - 30) / 20), 0)
    x = rng.normal(0, 1, t.size) * (1 + 40 * env)
    dets = detect_once(x, RATE_HZ)
    assert len(dets) == 1
    assert abs(dets[0].onset_index / RATE_HZ - 30) < 1.0


def test_bandpass_causal_in_chunks_equals_one_pass_and_ignores_dc():
    sos = design_bandpass(1.0, 20.0, RATE_HZ)
    x = _onset_trace(10.0, duration_s=20.0)
    whole, _ = bandpass_causal(x, sos)
    a, zi = bandpass_causal(x[:777], sos)
    b, _ = bandpass_causal(x[777:], sos, zi)
    np.testing.assert_allclose(np.concatenate([a, b]), whole, rtol=1e-10, atol=1e-9)
    assert np.abs(whole[:900]).max() < 10  # no step response from the 1000-count offset
    hot = design_bandpass(1.0, 20.0, 40.0)  # a 40 Hz channel: corner clipped below Nyquist
    assert hot.shape == (4, 6)


def test_detect_params_validate():
    with pytest.raises(ValueError, match="detect.refine"):
        DetectParams(refine="magic")
    with pytest.raises(ValueError, match="detect.sta_s"):
        DetectParams(sta_s=20.0)
    from firstmotion.config import DetectSettings

    assert DetectParams.from_settings(DetectSettings(sta_s=0.3)).sta_s == 0.3


def test_single_sample_glitch_is_told_from_an_onset():
    rng = np.random.default_rng(9)
    noise = rng.normal(0, 1, 400) + np.sin(np.arange(400) / 60.0) * 50  # microseism-like swell
    spiky = noise.copy()
    spiky[200] += 60.0
    assert single_sample_glitch(spiky, 200, 150, 100)
    assert single_sample_glitch(spiky, 203, 150, 100)  # onset refined a few samples off
    onset = _onset_trace(2.0, duration_s=4.0, snr=10.0, seed=9)
    assert not single_sample_glitch(onset, 200, 150, 100)
    weak = _onset_trace(2.0, duration_s=4.0, snr=2.5, seed=10)
    assert not single_sample_glitch(weak, 200, 150, 100)
    assert not single_sample_glitch(noise, 200, 150, 100)  # nothing there: not a glitch either


def _onset_in_a_noise_rise(seed: int, *, onset_s: float | None = 32.0) -> np.ndarray:
    """Noise whose level rises 2.3x from 29 to 31 s and stays until 45 s (it triggers, but its
    own onset is too weak to pick) and, unless ``onset_s`` is None, a clear onset inside it."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(60 * RATE_HZ)) / RATE_HZ
    x = rng.normal(0.0, 1.0, t.size) * np.interp(t, [29, 31, 45, 47], [1, 2.3, 2.3, 1])
    if onset_s is not None:
        tau = t - onset_s
        on = tau >= 0
        x[on] += 20.0 * np.sin(2 * np.pi * 6.0 * tau[on]) * np.exp(-tau[on] / 1.5)
    return x + 1000.0


@pytest.mark.parametrize("seed", range(1, 10))
def test_an_onset_inside_a_rejected_trigger_is_picked(seed):
    """A trigger whose pick is rejected (too weak) no longer blinds the detector while it stays
    active: the clear onset 1-3 s later, inside it, is picked (it was missed before), in one
    pass and in packets alike; the noise rise alone gives no pick."""
    x = _onset_in_a_noise_rise(seed)
    whole = detect_once(x, RATE_HZ)
    assert len(whole) == 1, whole
    assert abs(whole[0].onset_index / RATE_HZ - 32.0) <= 0.05, whole
    assert whole[0].snr > 5
    det = ChannelDetector(DetectParams(), RATE_HZ, history_s=30.0)
    got = []
    for chunk in np.array_split(x, 97):
        got += det.feed(chunk)
    assert got == whole
    assert detect_once(_onset_in_a_noise_rise(seed, onset_s=None), RATE_HZ) == []


def test_a_picked_onset_does_not_pick_its_stronger_later_arrival():
    """Only a rejected trigger watches for a later rise: after a picked P, the S wave five
    times stronger 3 s later inside the same trigger is not picked as another P."""
    rng = np.random.default_rng(5)
    t = np.arange(int(60 * RATE_HZ)) / RATE_HZ
    x = rng.normal(0.0, 1.0, t.size)
    for onset, amp in ((30.0, 10.0), (33.0, 50.0)):
        tau = t - onset
        on = tau >= 0
        x[on] += amp * np.sin(2 * np.pi * 5.0 * tau[on]) * np.exp(-tau[on] / 2.0)
    dets = detect_once(x, RATE_HZ)
    assert [round(d.onset_index / RATE_HZ) for d in dets] == [30]


def test_a_chunk_longer_than_the_history_gives_the_one_pass_picks():
    """A packet longer than the detector's history (a 4096-byte record of quiet 40 Hz data
    holds minutes) is fed in parts: the same picks as one pass, no 'values not held' error."""
    onsets = [12.0, 25.0, 41.3, 70.05, 88.8]
    x = sum(_onset_trace(t, duration_s=110.0, seed=i) - 1000 for i, t in enumerate(onsets)) / 5
    whole = detect_once(x, RATE_HZ)
    assert len(whole) == len(onsets)
    det = ChannelDetector(DetectParams(), RATE_HZ, history_s=20.0)
    got = det.feed(x[:4500]) + det.feed(x[4500:])  # 45 s and 65 s against 20 s of history
    assert got == whole


def test_random_noise_rises_and_onsets_in_random_packets_give_the_one_pass_picks():
    """Streaming equals one pass with watched triggers in play: noise rises that trigger and
    are rejected, onsets inside and outside them, packets of random length (80 traces; in
    some a watched trigger gives the pick: one whose trigger_index is no STA/LTA trigger)."""
    watched_in = 0
    for seed in range(80):
        rng = np.random.default_rng(seed)
        n = int(120 * RATE_HZ)
        t = np.arange(n) / RATE_HZ
        gain = np.ones(n)
        for _ in range(rng.integers(1, 5)):
            a = rng.uniform(12, 100)
            rise = [a, a + rng.uniform(0.2, 2), a + rng.uniform(3, 20), a + 25]
            gain *= np.interp(t, rise, [1, rng.uniform(1.5, 3), rng.uniform(1.5, 3), 1])
        x = rng.normal(0, 1, n) * gain
        for _ in range(rng.integers(0, 4)):
            tau = t - rng.uniform(12, 110)
            on = tau >= 0
            wavelet = np.sin(2 * np.pi * rng.uniform(3, 10) * tau[on]) * np.exp(-tau[on] / 1.5)
            x[on] += rng.uniform(3, 40) * wavelet
        whole = detect_once(x, RATE_HZ)
        det = ChannelDetector(DetectParams(), RATE_HZ, history_s=30.0)
        got = []
        for chunk in np.split(x, np.sort(rng.choice(np.arange(1, n), 100, replace=False))):
            got += det.feed(chunk)
        assert got == whole, seed
        y, _ = bandpass_causal(x, det._sos)
        triggers, _, _ = sta_lta_triggers(
            y, det._nsta, det._nlta, 3.5, 1.5, det._dead, max_active_samples=det._max_active
        )
        watched_in += any(d.trigger_index not in set(triggers.tolist()) for d in whole)
    assert watched_in >= 5


def test_nearest_onsets_scores_a_picker_on_reference_picks():
    from stream.detect import Detection, nearest_onsets

    dets = [Detection(t, t + 0.5, 5.0, 1.0, "aic") for t in (100, 400, 900)]
    np.testing.assert_array_equal(
        nearest_onsets(dets, [90, 380, 700, 2000]), [100.5, 400.5, 900.5, 900.5]
    )
    assert np.isinf(nearest_onsets([], [10, 20])).all()
