"""P-onset waveform physics: causality, first-motion sign, normalisation, noise, labels."""

import numpy as np
import pytest
from scipy.signal import butter, sosfiltfilt, welch

from firstmotion import synth
from firstmotion.radiation import p_radiation

FS = 100.0
CASES = [
    (out, fc, tstar)
    for out in synth.OUTPUTS
    for fc in (1.0, 5.0, 20.0)
    for tstar in (0.0, 0.005, 0.05)
]


def test_brune_corner_frequency_scales_as_moment_to_minus_one_third():
    fc3 = synth.brune_corner_frequency_hz(3.0)
    assert 4.0 < fc3 < 12.0  # M3 with 3 MPa: several Hz
    # two magnitude units = 10**3 in moment = 10x in corner frequency
    assert synth.brune_corner_frequency_hz(1.0) / fc3 == pytest.approx(10.0, rel=1e-9)
    # stress drop x8 -> fc x2
    assert synth.brune_corner_frequency_hz(3.0, stress_drop_mpa=24.0) / fc3 == pytest.approx(2.0)
    with pytest.raises(ValueError, match="stress_drop"):
        synth.brune_corner_frequency_hz(3.0, stress_drop_mpa=0.0)


@pytest.mark.parametrize("output,fc,tstar", CASES)
def test_pulse_is_causal_positive_and_normalised(output, fc, tstar):
    onset_s = 1.2345
    x = synth.p_pulse(400, FS, onset_s, fc, tstar, output=output)
    t = np.arange(400) / FS
    assert x.shape == (400,)
    assert np.all(x[t <= onset_s] == 0.0), "motion before the onset"
    big = np.abs(x) > 1e-3 * np.abs(x).max()
    first = int(np.argmax(big))
    assert t[first] > onset_s
    assert x[first] > 0, "first motion must be up (compression)"
    peak, _ = synth.first_lobe_peak(x[None])
    assert peak[0] == pytest.approx(1.0, abs=1e-9)
    assert np.all(x[:first] > -1e-3 * np.abs(x).max())


def test_first_nonzero_sample_is_the_one_after_a_fractional_onset():
    for onset_s in (0.5, 0.503, 0.5099):
        x = synth.p_pulse(200, FS, onset_s, 5.0, 0.0, output="velocity")
        assert int(np.nonzero(x)[0][0]) == int(np.floor(onset_s * FS)) + 1


def test_fractional_onset_shifts_the_pulse_by_the_fraction():
    """Centroid of the displacement pulse moves by exactly the onset shift (sub-sample)."""
    t = np.arange(600) / FS
    a = synth.p_pulse(600, FS, 1.0, 4.0, 0.01, output="displacement")
    for shift_samples in (0.25, 0.5, 0.8):
        b = synth.p_pulse(600, FS, 1.0 + shift_samples / FS, 4.0, 0.01, output="displacement")
        ca, cb = np.sum(t * a) / np.sum(a), np.sum(t * b) / np.sum(b)
        assert (cb - ca) * FS == pytest.approx(shift_samples, abs=0.02)


def test_attenuation_broadens_the_pulse():
    def width(x):
        return np.sum(x > 0.5 * x.max())

    sharp = synth.p_pulse(400, FS, 1.0, 10.0, 0.0, output="displacement")
    broad = synth.p_pulse(400, FS, 1.0, 10.0, 0.05, output="displacement")
    assert width(broad) > 2 * width(sharp)


def test_emergent_onset_is_slower_but_still_positive():
    sharp = synth.p_pulse(400, FS, 1.0, 3.0, 0.01)
    slow = synth.p_pulse(400, FS, 1.0, 3.0, 0.01, emergence_s=0.3)
    i = int(1.0 * FS) + 3
    assert 0 < slow[i] < sharp[i]
    assert synth.first_lobe_peak(slow[None])[0][0] == pytest.approx(1.0)


@pytest.mark.parametrize("fc_hz", [1.0, 3.0, 10.0])
@pytest.mark.parametrize("emergence_s", [0.05, 0.3])
def test_emergent_source_keeps_a_one_signed_displacement(fc_hz, emergence_s):
    """A slow onset is a source whose moment rate builds up slowly: the far-field displacement
    (the running sum of the velocity, the double sum of the acceleration) never changes sign,
    so the velocity's first lobe is not a small precursor of a larger opposite swing."""
    for output, sums in (("velocity", 1), ("acceleration", 2)):
        x = synth.p_pulse(800, FS, 1.0, fc_hz, 0.01, output=output, emergence_s=emergence_s)
        disp = x
        for _ in range(sums):
            disp = np.cumsum(disp)
        assert disp.min() >= -1e-3 * np.abs(disp).max(), output
    vel = synth.p_pulse(800, FS, 1.0, fc_hz, 0.01, emergence_s=emergence_s)
    peak, _ = synth.first_lobe_peak(vel[None])
    assert np.abs(vel).max() <= 1.5 * peak[0]  # the first lobe is the largest, or nearly


def test_pulse_rejects_bad_input():
    with pytest.raises(ValueError, match="output"):
        synth.p_pulse(100, FS, 0.1, 5.0, 0.01, output="strain")
    with pytest.raises(ValueError, match="corner_frequency_hz"):
        synth.p_pulse(100, FS, 0.1, -5.0, 0.01)


def test_broadband_noise_has_secondary_microseism_peak_and_unit_hf_level():
    rng = np.random.default_rng(3)
    fs = 20.0
    x = synth.ambient_noise(int(3600 * fs), fs, rng, profile="broadband", level=2.0)
    f, p = welch(x, fs, nperseg=4096)
    band = (f > 0.04) & (f < 2.0)
    f_peak = f[band][np.argmax(p[band])]
    assert 0.1 <= f_peak <= 0.3
    p_micro = p[(f > 0.1) & (f < 0.3)].max()
    assert p_micro > 1000 * p[np.argmin(np.abs(f - 5.0))]
    hf = sosfiltfilt(butter(4, 1.0, "highpass", fs=fs, output="sos"), x)
    assert np.std(hf) == pytest.approx(2.0, rel=0.1)
    assert np.std(x) > 3 * np.std(hf)  # microseism dominates a broadband record


def test_noise_profiles_differ_like_sensors():
    rng = np.random.default_rng(4)
    ratios = {}
    for profile in synth.PROFILES:
        x = synth.ambient_noise(int(600 * FS), FS, rng, profile=profile)
        f, p = welch(x, FS, nperseg=4096)
        ratios[profile] = p[(f > 0.1) & (f < 0.3)].mean() / p[(f > 5) & (f < 10)].mean()
    # microseism relative to the high band: broadband >> short period >> geophone
    assert ratios["broadband"] > 30 * ratios["short_period"]
    assert ratios["short_period"] > 30 * ratios["geophone"]
    assert ratios["accelerometer"] < 10  # self-noise floor: nearly white


def test_noise_is_reproducible_and_spikes_appear():
    a = synth.ambient_noise(6000, FS, np.random.default_rng(7), profile="geophone")
    b = synth.ambient_noise(6000, FS, np.random.default_rng(7), profile="geophone")
    np.testing.assert_array_equal(a, b)
    s = synth.ambient_noise(
        360000, FS, np.random.default_rng(7), profile="short_period", spikes_per_hour=20
    )
    n_spikes = np.sum(np.abs(s) > 15)
    assert 5 <= n_spikes <= 40


def test_labelled_windows_shapes_labels_and_rule():
    rng = np.random.default_rng(11)
    x, label, info = synth.labelled_p_windows(600, FS, 400, rng, return_clean=True)
    assert x.shape == (600, 400) and x.dtype == np.float32
    assert label.shape == (600,) and label.dtype == np.int8
    assert set(np.unique(label)) == {-1, 0, 1}
    # the documented rule for 0
    expect = np.where(
        ~info["noise_only"] & (np.abs(info["radiation"]) * 10 ** (info["snr_db"] / 20) >= 1),
        np.sign(info["radiation"]),
        0,
    )
    np.testing.assert_array_equal(label, expect)
    assert np.all(label[info["noise_only"]] == 0)
    # the radiation factor is the A&R pattern of the drawn mechanism and ray
    r = p_radiation(
        info["strike_deg"], info["dip_deg"], info["rake_deg"], info["azimuth_deg"],
        info["takeoff_deg"],
    )  # fmt: skip
    np.testing.assert_allclose(info["radiation"], r, atol=1e-12)
    # labels agree with the sign of the clean pulse's first lobe, whose peak is |amplitude|
    peak, i0 = synth.first_lobe_peak(info["clean"].astype(float))
    nz = label != 0
    np.testing.assert_array_equal(np.sign(peak[nz]), label[nz])
    np.testing.assert_allclose(np.abs(peak[nz]), np.abs(info["amplitude"][nz]), rtol=1e-3)
    # onsets near the centre, never before the onset sample
    onset_idx = np.floor(info["onset_s"] * FS).astype(int)
    assert np.all(i0[nz] > onset_idx[nz])
    assert np.all(np.abs(onset_idx - 200) <= 100)
    # x is noise + clean
    assert np.abs(info["clean"][~nz & ~info["noise_only"]]).max() > 0


def test_labelled_windows_reproducible_with_seed_and_nodal_rays_are_small():
    a = synth.labelled_p_windows(50, FS, 300, np.random.default_rng(5))
    b = synth.labelled_p_windows(50, FS, 300, np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    _, _, info = synth.labelled_p_windows(
        400, FS, 300, np.random.default_rng(6), nodal_fraction=1.0
    )
    assert np.median(np.abs(info["radiation"])) < 0.2


def test_labelled_windows_reject_bad_arguments():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="profiles"):
        synth.labelled_p_windows(4, FS, 100, rng, profiles=("seismo",))
    with pytest.raises(ValueError, match="noise_only_fraction"):
        synth.labelled_p_windows(4, FS, 100, rng, noise_only_fraction=2.0)


def test_unnormalised_pulse_is_a_unit_moment_and_its_derivatives():
    disp = synth.p_pulse(3000, FS, 1.0, 2.0, 0.02, output="displacement", normalize=False)
    vel = synth.p_pulse(3000, FS, 1.0, 2.0, 0.02, output="velocity", normalize=False)
    assert disp.sum() / FS == pytest.approx(1.0, rel=2e-3)  # unit area: M0 = 1
    integrated = np.cumsum(vel) / FS  # point values of the displacement at the samples
    assert integrated.max() == pytest.approx(disp.max(), rel=0.05)
    assert abs(integrated[-1]) < 1e-3 * disp.max()
    assert abs(np.argmax(integrated) - np.argmax(disp)) <= 1
    # the same shape as the normalised pulse
    norm = synth.p_pulse(3000, FS, 1.0, 2.0, 0.02, output="velocity")
    np.testing.assert_allclose(vel / synth.first_lobe_peak(vel[None])[0][0], norm, atol=1e-12)


def test_batched_windows_match_single_pulses():
    """The batched pulse path against p_pulse row by row (the obviously-right twin)."""
    _, label, info = synth.labelled_p_windows(
        40, FS, 300, np.random.default_rng(9), profiles=("broadband",), return_clean=True,
        noise_only_fraction=0.0,
    )  # fmt: skip
    for k in np.flatnonzero(info["amplitude"] != 0)[:20]:
        single = synth.p_pulse(
            300, FS, info["onset_s"][k], info["fc_hz"][k], info["tstar_s"][k],
            output="velocity", emergence_s=info["emergence_s"][k],
        )  # fmt: skip
        np.testing.assert_allclose(
            info["clean"][k], info["amplitude"][k] * single, atol=1e-5 * abs(info["amplitude"][k])
        )


def test_broadband_noise_in_absolute_units_lies_between_peterson_nlnm_and_nhnm():
    from obspy.signal.spectral_estimation import get_nhnm, get_nlnm

    fs = 20.0
    f = np.linspace(1.0, fs / 2, 2000)
    level = np.sqrt(np.trapz(synth.noise_psd_shape(f, "broadband"), f))  # model's own HF RMS
    x = synth.ambient_noise(int(3600 * fs), fs, np.random.default_rng(1), level=level)
    ff, p = welch(x, fs, nperseg=8192)
    (p_lo, db_lo), (p_hi, db_hi) = get_nlnm(), get_nhnm()
    for period in (0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0):
        band = (ff > 0.8 / period) & (ff < 1.25 / period)
        acc_db = 10 * np.log10(np.median(p[band] * (2 * np.pi * ff[band]) ** 2))
        assert np.interp(period, p_lo[::-1], db_lo[::-1]) < acc_db
        assert acc_db < np.interp(period, p_hi[::-1], db_hi[::-1])
        model = np.median(synth.noise_psd_shape(ff[band], "broadband"))
        assert 10 * np.log10(np.median(p[band]) / model) == pytest.approx(0.0, abs=3.0)


@pytest.mark.parametrize(
    "fs,output", [(40.0, "sensor"), (200.0, "acceleration"), (100.0, "displacement")]
)
def test_labelled_windows_other_rates_and_outputs(fs, output):
    x, label, info = synth.labelled_p_windows(
        200, fs, int(4 * fs), np.random.default_rng(12), output=output, return_clean=True
    )
    assert x.shape == (200, int(4 * fs)) and np.all(np.isfinite(x))
    peak, _ = synth.first_lobe_peak(info["clean"].astype(float))
    nz = label != 0
    assert nz.sum() > 50
    np.testing.assert_array_equal(np.sign(peak[nz]), label[nz])
    np.testing.assert_allclose(np.abs(peak[nz]), np.abs(info["amplitude"][nz]), rtol=1e-3)
