"""Waveform physics of a P onset: source pulse, attenuation, ambient noise, labelled windows.

Pure numpy; nothing here does I/O. The same functions feed the scenario generator
(``firstmotion scenario``) and the polarity model's training set, so a pulse in a training
window and a pulse in a synthetic miniSEED trace are the same physics.

Conventions (see :mod:`firstmotion.radiation`): a positive amplitude is compression, i.e. the
ground's first motion is UP on a vertical sensor. Every pulse returned by :func:`p_pulse` has a
POSITIVE first motion and a first lobe of peak 1; multiply it by a signed amplitude.

The pulse
---------
Far-field displacement is proportional to the moment rate. Brune's (1970) omega-square source
gives ``u(t) = t exp(-2 pi fc t) H(t)`` (spectrum ``1 / (2 pi fc + i w)^2``). Anelastic
attenuation along the path multiplies the spectrum by ``exp(-pi f t*)``; to keep the operator
causal we use its minimum-phase version (computed by the folded real cepstrum, Oppenheim &
Schafer 2010, sec. 13.9), which is the causal constant-Q operator of Futterman (1962) / Azimi et
al. (1968) up to a pure delay. The product is built on a grid 8+ times finer than the output and
brought to the output rate by averaging over each sample interval (an integrating digitizer),
which is causal, anti-aliasing and fractional-sample accurate: the first non-zero sample is the
first one after ``onset_s``.

.. seealso:: Brune, J. N. (1970), JGR 75, 4997-5009; Futterman, W. I. (1962), JGR 67,
   5279-5291; Azimi, S. A. et al. (1968), Izv. Phys. Solid Earth 2, 88-93;
   Peterson, J. (1993), USGS Open-File Report 93-322 (NLNM/NHNM).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

OUTPUTS = ("displacement", "velocity", "acceleration")
PROFILES = ("broadband", "short_period", "accelerometer", "geophone")

# Peterson (1993) NLNM/NHNM mean in dB: (period_s, acceleration PSD dB re 1 (m/s^2)^2/Hz)
_PETERSON_MEAN_DB = np.array(
    [
        (0.1, -129.8), (0.15, -130.8), (0.2, -131.7), (0.3, -137.5), (0.5, -141.3),
        (0.7, -143.7), (1.0, -141.6), (1.5, -135.2), (2.0, -129.9), (3.0, -123.5),
        (4.0, -119.8), (5.0, -119.4), (6.0, -124.6), (7.0, -130.1), (8.0, -135.5),
        (10.0, -139.7), (13.0, -141.7), (16.0, -143.0), (20.0, -155.8), (30.0, -160.3),
        (50.0, -161.0), (70.0, -160.3), (100.0, -158.3), (200.0, -157.2), (500.0, -153.3),
        (1000.0, -145.1),
    ]
)  # fmt: skip


def brune_corner_frequency_hz(
    magnitude: float, stress_drop_mpa: float = 3.0, beta_km_s: float = 3.5
) -> float:
    """Brune (1970) corner frequency of an earthquake of moment magnitude ``magnitude``.

    ``fc = 0.4906 beta (stress_drop / M0)^(1/3)`` (Brune 1970 with Madariaga's constant as used by
    Boore 1983), M0 from Hanks & Kanamori (1979): ``log10 M0[N m] = 1.5 Mw + 9.1``.
    """
    if stress_drop_mpa <= 0 or beta_km_s <= 0:
        raise ValueError(
            f"stress_drop_mpa and beta_km_s must be > 0, got {stress_drop_mpa}, {beta_km_s}"
        )
    m0_nm = 10.0 ** (1.5 * float(magnitude) + 9.1)
    beta_m_s = beta_km_s * 1e3
    return float(0.4906 * beta_m_s * (stress_drop_mpa * 1e6 / m0_nm) ** (1.0 / 3.0))


@lru_cache(maxsize=32)
def _min_phase_log_spectrum(n_fft: int, dt_s: float) -> np.ndarray:
    """Complex log spectrum (rfft bins) of the minimum-phase operator with |A| = exp(-pi f t*),
    for t* = 1 s: the operator for any t* is ``exp(t* * this)`` (its log is linear in t*)."""
    f_hz = np.fft.rfftfreq(n_fft, dt_s)
    log_amp = -np.pi * f_hz
    ceps = np.fft.irfft(log_amp, n_fft)
    fold = np.zeros(n_fft)
    fold[0] = ceps[0]
    fold[1 : n_fft // 2] = 2.0 * ceps[1 : n_fft // 2]
    fold[n_fft // 2] = ceps[n_fft // 2]
    out = np.fft.rfft(fold)
    out.flags.writeable = False
    return out


def _rise_kernel_spectrum(n_fft: int, dt_s: float, rise_s: np.ndarray) -> np.ndarray:
    """Spectra (rows) of unit-area rise kernels, (pi / 2E) sin(pi t / E) on [0, E]: the
    derivative of the ``sin^2`` ramp of :func:`_ramp`, so a moment rate convolved with it
    builds up over E (a unit impulse where E is shorter than a sample)."""
    t = np.arange(n_fft) * dt_s
    rise = np.asarray(rise_s, dtype=float)[:, None]
    safe = np.where(rise > dt_s, rise, 1.0)
    k = np.where((rise > dt_s) & (t < safe), np.sin(np.pi * t / safe), 0.0)
    area = np.sum(k, axis=1, keepdims=True)
    k = np.where(area > 0, k / np.where(area > 0, area, 1.0), 0.0)
    k[:, 0] = np.where(area[:, 0] > 0, k[:, 0], 1.0)  # no rise: the identity
    return np.fft.rfft(k, n_fft, axis=1)


def _fine_displacement(
    t_fine_s: np.ndarray,
    fc_hz: np.ndarray,
    tstar_s: np.ndarray,
    dt_fine_s: float,
    emergence_s: np.ndarray | None = None,
) -> np.ndarray:
    """Brune displacement (its moment rate convolved with a rise over ``emergence_s``, when
    given: the same moment released more slowly) convolved with the min-phase t* operator,
    rows (n, len(t_fine))."""
    n_t = t_fine_s.size
    wc = 2.0 * np.pi * fc_hz[:, None]
    brune = t_fine_s[None, :] * np.exp(-wc * t_fine_s[None, :])
    rising = emergence_s is not None and np.any(np.asarray(emergence_s) > dt_fine_s)
    if not np.any(tstar_s > 0) and not rising:
        return brune
    n_fft = 1 << int(np.ceil(np.log2(2 * n_t)))
    log_a = _min_phase_log_spectrum(n_fft, dt_fine_s)
    spec = np.fft.rfft(brune, n_fft, axis=1) * np.exp(tstar_s[:, None] * log_a[None, :])
    if rising:  # a source whose moment rate builds up slowly
        spec = spec * _rise_kernel_spectrum(n_fft, dt_fine_s, np.asarray(emergence_s))
    out = np.fft.irfft(spec, n_fft, axis=1)[:, :n_t]
    # cepstral aliasing leaves ~1e-12 ripples of either sign ahead of the smooth causal rise:
    # zero everything before the operator's response first exceeds 1e-9 of its peak
    peak = np.max(np.abs(out), axis=1, keepdims=True)
    started = np.cumsum(out > 1e-9 * peak, axis=1) > 0
    return np.where(started, out, 0.0)


def _interp_rows(y: np.ndarray, dt_s: float, t_s: np.ndarray) -> np.ndarray:
    """Linear interpolation of each row of ``y`` (sampled at 0, dt, ...) at times ``t_s``
    (same number of rows); zero before 0, last value held after the end."""
    n, m = y.shape
    x = np.clip(t_s / dt_s, 0.0, m - 1.0)
    i0 = np.minimum(np.floor(x).astype(np.int64), m - 2)
    frac = x - i0
    rows = np.arange(n)[:, None]
    out = y[rows, i0] * (1.0 - frac) + y[rows, i0 + 1] * frac
    return np.where(t_s > 0.0, out, 0.0)


def first_lobe_peak(x: np.ndarray, rel_threshold: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Signed peak of the first lobe of each row of ``x`` (n, L), and the index of its first sample.

    The first lobe starts at the first sample with ``|x| > rel_threshold * max|x|`` and ends
    before the first later sample of the opposite sign (or zero). Rows that are all zero give
    peak 0 and index -1.
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    amax = np.max(np.abs(x), axis=1, keepdims=True)
    live = np.abs(x) > rel_threshold * np.where(amax > 0, amax, np.inf)
    has = live.any(axis=1)
    i0 = np.where(has, np.argmax(live, axis=1), -1)
    rows = np.arange(x.shape[0])
    sign = np.where(has, np.sign(x[rows, np.maximum(i0, 0)]), 0.0)
    idx = np.arange(x.shape[1])[None, :]
    after = idx >= i0[:, None]
    broken = after & (x * sign[:, None] <= 0)
    within = after & (np.cumsum(broken, axis=1) == 0) & has[:, None]
    peak = np.max(np.where(within, np.abs(x), 0.0), axis=1) * sign
    return peak, i0


def _ramp(tau_s: np.ndarray, emergence_s: np.ndarray) -> np.ndarray:
    """sin^2 ramp from 0 at tau = 0 to 1 at tau = emergence_s (1 everywhere if emergence 0)."""
    em = np.asarray(emergence_s, dtype=float)
    safe = np.where(em > 0, em, 1.0)
    rising = np.sin(0.5 * np.pi * np.clip(tau_s / safe, 0.0, 1.0)) ** 2
    return np.where((em > 0) & (tau_s < em), rising, 1.0)


def emergence_ramp(
    n_samples: int, sampling_rate_hz: float, onset_s: float, emergence_s: float
) -> np.ndarray:
    """The ``sin^2`` onset ramp of ``emergence_s`` (0 before the onset, rising to 1 over
    ``emergence_s``) on the sample grid (:func:`p_pulse` builds the source's moment rate up
    with its derivative): applied to the arrivals after the direct P, their energy builds up
    with it."""
    tau = np.arange(n_samples) / sampling_rate_hz - onset_s
    return np.where(tau > 0, _ramp(tau, np.float64(emergence_s)), 0.0)


def _pulses(
    n_samples: int,
    sampling_rate_hz: float,
    onset_s: np.ndarray,
    fc_hz: np.ndarray,
    tstar_s: np.ndarray,
    order: np.ndarray,
    emergence_s: np.ndarray,
    normalize: bool = True,
) -> np.ndarray:
    """Batch of causal pulses, first-lobe-normalised or (``normalize=False``) for a unit-area
    displacement pulse (unit seismic moment); ``order`` 0/1/2 = disp/vel/acc."""
    dt = 1.0 / sampling_rate_hz
    # fine grid resolving the corner frequency and the t* operator's band (~1 / (pi t*))
    tstar_min = float(np.min(np.where(tstar_s > 0, tstar_s, np.inf)))
    f_top = max(float(np.max(fc_hz)), 1.0 / (np.pi * max(tstar_min, 1e-4)))
    oversample = int(max(8, np.ceil(8.0 * min(f_top, 2.0 * sampling_rate_hz) * dt)))
    dt_f = dt / oversample
    # support: the pulse has died out after ~25/fc + 30 t* (+ emergence); keep the window short
    span_s = float(np.max(25.0 / fc_hz + 30.0 * tstar_s + emergence_s)) + 3 * dt
    span_s = min(span_s, n_samples * dt - float(np.min(onset_s)) + 3 * dt)
    n_f = int(np.ceil(span_s / dt_f)) + 2
    t_f = np.arange(n_f) * dt_f
    disp = _fine_displacement(t_f, fc_hz, tstar_s, dt_f, emergence_s)
    integral = np.concatenate(
        [
            np.zeros((disp.shape[0], 1)),
            np.cumsum(0.5 * (disp[:, 1:] + disp[:, :-1]), axis=1) * dt_f,
        ],
        axis=1,
    )
    tau = np.arange(n_samples)[None, :] * dt - onset_s[:, None]  # time since onset
    out = np.empty((fc_hz.size, n_samples))
    for k in (0, 1, 2):
        sel = order == k
        if not np.any(sel):
            continue
        tk = tau[sel]
        if k == 0:  # mean of u over (t - dt, t]
            y = (
                _interp_rows(integral[sel], dt_f, tk) - _interp_rows(integral[sel], dt_f, tk - dt)
            ) / dt
        elif k == 1:  # mean of du/dt over (t - dt, t]
            y = (_interp_rows(disp[sel], dt_f, tk) - _interp_rows(disp[sel], dt_f, tk - dt)) / dt
        else:  # twice-averaged d2u/dt2 (second backward difference)
            u0 = _interp_rows(disp[sel], dt_f, tk)
            u1 = _interp_rows(disp[sel], dt_f, tk - dt)
            u2 = _interp_rows(disp[sel], dt_f, tk - 2 * dt)
            y = (u0 - 2 * u1 + u2) / dt**2
        # past the computed support the pulse is ~0; drop the held last value of the interp
        y = np.where(tk > span_s, 0.0, y)
        out[sel] = y
    out[tau <= 0] = 0.0
    if not normalize:  # t exp(-wc t) has area 1 / wc^2
        return out * (2.0 * np.pi * fc_hz[:, None]) ** 2
    peak, _ = first_lobe_peak(out, rel_threshold=1e-4)
    peak = np.where(peak == 0, 1.0, peak)
    return out / peak[:, None]


def p_pulse(
    n_samples: int,
    sampling_rate_hz: float,
    onset_s: float,
    corner_frequency_hz: float,
    tstar_s: float,
    *,
    output: str = "velocity",
    emergence_s: float = 0.0,
    normalize: bool = True,
) -> np.ndarray:
    """A causal far-field P pulse: Brune source convolved with a causal t* operator.

    Samples are at ``k / sampling_rate_hz``; every sample at or before ``onset_s`` is exactly 0
    and the first non-zero sample is positive (first motion up). The first lobe (from the first
    non-zero sample to the first sign change) has peak 1. ``output`` is the ground motion kind
    (``"displacement"``, ``"velocity"``, ``"acceleration"``). ``emergence_s > 0`` convolves the
    source's moment rate (the Brune pulse, before attenuation and differentiation) with a
    smooth rise of that duration (the derivative of a ``sin^2`` ramp, unit area): the same
    moment released over a longer rise time, whose onset rises slowly in every output. The
    far-field displacement of a rupture keeps one sign, so the first lobe of its velocity and
    acceleration keeps the source's sign and is not made small against the swings after it
    (a ramp on the velocity itself would imply a displacement that changes sign: slip
    reversing, not a slow onset).

    ``normalize=False`` returns the physical shape instead: the far-field displacement pulse
    scaled to unit area (the moment-rate function of a unit moment, 1/s, with or without an
    emergence), or its derivatives (1/s^2, 1/s^3), so ``M0 * R / (4 pi rho v^3 r) * pulse`` is
    ground motion in SI units.

    .. seealso:: Brune (1970); Azimi et al. (1968); module docstring.
    """
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if n_samples < 1 or sampling_rate_hz <= 0:
        raise ValueError(
            f"need n_samples >= 1 and sampling_rate_hz > 0, got {n_samples}, {sampling_rate_hz}"
        )
    if corner_frequency_hz <= 0 or tstar_s < 0 or emergence_s < 0:
        raise ValueError(
            "need corner_frequency_hz > 0, tstar_s >= 0, emergence_s >= 0, got "
            f"{corner_frequency_hz}, {tstar_s}, {emergence_s}"
        )
    return _pulses(
        int(n_samples),
        float(sampling_rate_hz),
        np.array([float(onset_s)]),
        np.array([float(corner_frequency_hz)]),
        np.array([float(tstar_s)]),
        np.array([OUTPUTS.index(output)]),
        np.array([float(emergence_s)]),
        normalize=normalize,
    )[0]


def noise_psd_shape(f_hz: np.ndarray, profile: str) -> np.ndarray:
    """Relative power spectral density of ambient noise as recorded by a sensor type.

    Ground noise is the geometric mean of Peterson's NLNM and NHNM (acceleration PSD), turned
    into velocity by dividing by (2 pi f)^2, held flat in velocity above 10 Hz (cultural noise).
    ``broadband``: ground velocity, flat response to 1/120 Hz (secondary microseism peak at
    ~0.2 Hz, rising long-period drift below ~0.01 Hz). ``short_period``: a 1 Hz, 0.7-damped
    velocity sensor (microseism strongly suppressed). ``geophone``: 4.5 Hz geophone plus
    doubled high-frequency site noise (surface/industrial deployments). ``accelerometer``: ground
    acceleration plus a white self-noise floor that dominates above ~0.5 Hz.
    Output units are the sensor's (velocity or acceleration), arbitrary scale.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    f = np.maximum(np.asarray(f_hz, dtype=float), 1e-4)
    period = 1.0 / f
    p_tab, db_tab = _PETERSON_MEAN_DB[:, 0], _PETERSON_MEAN_DB[:, 1]
    acc_db = np.interp(np.log(np.clip(period, p_tab[0], p_tab[-1])), np.log(p_tab), db_tab)
    acc = 10.0 ** (acc_db / 10.0)
    vel = acc / (2.0 * np.pi * f) ** 2
    vel_10hz = 10.0 ** (-129.8 / 10.0) / (2.0 * np.pi * 10.0) ** 2
    vel = np.where(f > 10.0, vel_10hz, vel)
    if profile == "accelerometer":
        ground = np.where(f > 10.0, 10.0 ** (-129.8 / 10.0), acc)
        floor = 10.0 ** (-125.0 / 10.0)  # flat self-noise (MEMS / FBA class), m^2/s^4/Hz
        return ground + floor
    if profile == "broadband":
        x = f * 120.0
        return vel * x**4 / ((1 - x**2) ** 2 + (2 * 0.707 * x) ** 2)
    f0, site = (1.0, 1.0) if profile == "short_period" else (4.5, 2.0)
    x = f / f0
    resp = x**4 / ((1 - x**2) ** 2 + (2 * 0.7 * x) ** 2)
    return resp * np.where(f > 5.0, site * vel, vel)


def _shaped_noise(
    n_rows: int,
    n_samples: int,
    sampling_rate_hz: float,
    rng: np.random.Generator,
    profile: str,
    min_segment_s: float = 100.0,
) -> np.ndarray:
    """Rows of Gaussian noise with the profile's spectrum, scaled to unit expected RMS above 1 Hz.

    Generated on a segment of at least ``min_segment_s`` (so the microseism and drift have their
    natural size in a short window) and cropped at a random offset.
    """
    n_gen = max(n_samples, int(np.ceil(min_segment_s * sampling_rate_hz)))
    n_gen = 1 << int(np.ceil(np.log2(n_gen)))
    f = np.fft.rfftfreq(n_gen, 1.0 / sampling_rate_hz)
    psd = noise_psd_shape(f, profile)
    psd[0] = 0.0
    hf = f >= 1.0
    # Parseval: irfft(rfft(white) * amp) has mean square (2 / n_gen) * sum(amp^2) (one-sided bins)
    amp = np.sqrt(psd / (2.0 / n_gen * np.sum(psd[hf])))
    white = rng.standard_normal((n_rows, n_gen))
    full = np.fft.irfft(np.fft.rfft(white, axis=1) * amp[None, :], n_gen, axis=1)
    start = rng.integers(0, n_gen - n_samples + 1, size=n_rows)
    idx = start[:, None] + np.arange(n_samples)[None, :]
    return np.take_along_axis(full, idx, axis=1)


def _add_spikes(
    x: np.ndarray,
    sampling_rate_hz: float,
    rng: np.random.Generator,
    spikes_per_hour: float,
    level: float,
) -> None:
    """Add single-sample glitches (Poisson in time, 20-200x ``level``, random sign) in place."""
    n_rows, n = x.shape
    expected = spikes_per_hour * n / sampling_rate_hz / 3600.0
    counts = rng.poisson(expected, size=n_rows)
    for row, c in enumerate(counts):
        if c:
            where = rng.integers(0, n, size=c)
            x[row, where] += rng.choice([-1.0, 1.0], size=c) * rng.uniform(20, 200, size=c) * level


def ambient_noise(
    n_samples: int,
    sampling_rate_hz: float,
    rng: np.random.Generator,
    *,
    profile: str = "broadband",
    level: float = 1.0,
    spikes_per_hour: float = 0.0,
) -> np.ndarray:
    """Coloured ambient seismic noise as recorded by a sensor type (see :func:`noise_psd_shape`).

    Gaussian noise shaped by FFT to the profile's PSD; ``level`` is the expected RMS of the part
    above 1 Hz (the band of small-earthquake first motions), so the microseism and long-period
    drift come on top of it at their natural size (for ``broadband`` they dominate the total).
    ``spikes_per_hour`` adds Poisson-distributed single-sample spikes of 20-200 x ``level``.

    .. seealso:: Peterson (1993), USGS OFR 93-322.
    """
    if n_samples < 1 or sampling_rate_hz <= 0:
        raise ValueError(
            f"need n_samples >= 1 and sampling_rate_hz > 0, got {n_samples}, {sampling_rate_hz}"
        )
    if level < 0 or spikes_per_hour < 0:
        raise ValueError(f"level and spikes_per_hour must be >= 0, got {level}, {spikes_per_hour}")
    x = _shaped_noise(1, int(n_samples), float(sampling_rate_hz), rng, profile) * level
    if spikes_per_hour > 0:
        _add_spikes(x, sampling_rate_hz, rng, spikes_per_hour, level)
    return x[0]


def detrended_rms(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """RMS about the least-squares line of each row of ``x`` over the samples where ``mask`` is
    True (all samples if None): the noise level an analyst sees around a trend, so a slow
    microseism swell through a short window does not count as wiggles. Rows with < 3 samples
    give NaN."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    m = np.ones(x.shape, dtype=bool) if mask is None else np.atleast_2d(mask)
    w = m.astype(float)
    n = w.sum(axis=1)
    idx = np.arange(x.shape[1], dtype=float)[None, :]
    safe_n = np.maximum(n, 1.0)
    t_mean = (w * idx).sum(axis=1) / safe_n
    x_mean = (w * x).sum(axis=1) / safe_n
    tc = (idx - t_mean[:, None]) * w
    xc = (x - x_mean[:, None]) * w
    stt = (tc**2).sum(axis=1)
    slope = (tc * xc).sum(axis=1) / np.where(stt > 0, stt, 1.0)
    resid = (xc - slope[:, None] * tc) * w
    rms = np.sqrt((resid**2).sum(axis=1) / safe_n)
    return np.where(n >= 3, rms, np.nan)


def _random_mechanisms(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Isotropic random double couples: strike U(0, 360), cos(dip) U(0, 1), rake U(-180, 180)."""
    strike = rng.uniform(0.0, 360.0, n)
    dip = np.degrees(np.arccos(rng.uniform(0.0, 1.0, n)))
    rake = rng.uniform(-180.0, 180.0, n)
    return strike, dip, rake


def _fault_normal(strike_deg: np.ndarray, dip_deg: np.ndarray) -> np.ndarray:
    """Unit normal of the fault plane in (N, E, D), Aki & Richards Box 4.4 (pointing up)."""
    phi, delta = np.radians(strike_deg), np.radians(dip_deg)
    return np.stack(
        [-np.sin(delta) * np.sin(phi), np.sin(delta) * np.cos(phi), -np.cos(delta)], axis=-1
    )


def _ray_angles(ray_ned: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(azimuth_deg, takeoff_deg from vertical-up) of unit vectors (N, E, D)."""
    az = np.degrees(np.arctan2(ray_ned[..., 1], ray_ned[..., 0])) % 360.0
    takeoff = np.degrees(np.arccos(np.clip(-ray_ned[..., 2], -1.0, 1.0)))
    return az, takeoff


def _sensor_highpass(x: np.ndarray, sampling_rate_hz: float, profile: str) -> np.ndarray:
    """Causal response of a short-period (1 Hz) or geophone (4.5 Hz) velocity sensor: a
    2nd-order 0.707-damped high-pass (bilinear); other profiles pass through."""
    if profile not in ("short_period", "geophone"):
        return x
    from scipy.signal import butter, lfilter

    f0 = 1.0 if profile == "short_period" else 4.5
    b, a = butter(2, f0, btype="highpass", fs=sampling_rate_hz)
    return lfilter(b, a, x, axis=-1)


def labelled_p_windows(
    n: int,
    sampling_rate_hz: float,
    window_samples: int,
    rng: np.random.Generator,
    *,
    snr_range_db: tuple[float, float] = (-5.0, 40.0),
    noise_only_fraction: float = 0.15,
    nodal_fraction: float = 0.1,
    pick_error_s: float = 0.05,
    fc_range_hz: tuple[float, float] = (1.0, 20.0),
    tstar_range_s: tuple[float, float] = (0.005, 0.05),
    emergent_fraction: float = 0.2,
    output: str = "velocity",
    profiles: tuple[str, ...] = PROFILES,
    min_first_motion_snr: float = 1.0,
    noise_window_s: float = 1.0,
    spikes_per_hour: float = 0.0,
    return_clean: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Labelled vertical-component windows with a P onset near the centre, for training.

    Each row: ambient noise of a random ``profiles`` entry (:func:`ambient_noise`, level 1 above
    1 Hz) plus ``A * p_pulse(...)`` whose onset is at the window centre
    (``pick_index = window_samples // 2``) shifted by a pick error ~ N(0, pick_error_s) (clipped
    to +-3 sigma and to a quarter window). ``A = r * 10**(snr_db / 20) * noise_rms`` with
    ``r = p_radiation(mechanism, ray)`` of an isotropically random double couple and ray, so
    near-nodal rays (small ``|r|``) occur naturally; a further ``nodal_fraction`` of rows gets a
    ray within ~9 degrees of a nodal plane; ``snr_db`` ~ U(snr_range_db); ``noise_rms`` is the
    RMS of the noise about its linear trend in the ``noise_window_s`` before the onset
    (:func:`detrended_rms`). Pulses use
    ``fc`` log-uniform in ``fc_range_hz``, ``t*`` log-uniform in ``tstar_range_s``, and for
    ``emergent_fraction`` of rows an emergent onset ramp of 0.05-0.4 s. ``output`` is the pulse's
    motion kind, or ``"sensor"`` for the sensor's own (acceleration for ``accelerometer``,
    velocity otherwise); short-period and geophone rows pass the pulse through the sensor's
    causal high-pass, and the pulse is renormalised after it.

    Label rule: ``label = sign(r)`` (+1 up / compression, -1 down) when the first-motion peak
    amplitude over the pre-onset noise RMS, ``|A| / noise_rms = |r| * 10**(snr_db / 20)``, is
    at least ``min_first_motion_snr`` (default 1); otherwise (and for the
    ``noise_only_fraction`` rows with no pulse at all) ``label = 0`` (unknown).

    Returns ``x`` float32 (n, window_samples), ``label`` int8 (n,) and ``info``: arrays
    (n,) of ``pick_index``, ``onset_s`` (from the window start), ``amplitude``, ``radiation``,
    ``snr_db``, ``first_motion_snr``, ``noise_rms``, ``fc_hz``, ``tstar_s``, ``emergence_s``,
    ``strike_deg``, ``dip_deg``, ``rake_deg``, ``azimuth_deg``, ``takeoff_deg``,
    ``noise_only`` (bool), ``profile`` (index into ``profiles``); plus ``clean`` (n,
    window_samples) float32 (the pulse without noise) when ``return_clean``.
    """
    if n < 0 or window_samples < 8 or sampling_rate_hz <= 0:
        raise ValueError(
            f"need n >= 0, window_samples >= 8, sampling_rate_hz > 0; got {n}, "
            f"{window_samples}, {sampling_rate_hz}"
        )
    if output not in (*OUTPUTS, "sensor"):
        raise ValueError(f"output must be one of {(*OUTPUTS, 'sensor')}, got {output!r}")
    bad = [p for p in profiles if p not in PROFILES]
    if bad or not profiles:
        raise ValueError(f"profiles must be a non-empty subset of {PROFILES}, got {profiles!r}")
    for name, frac in (
        ("noise_only_fraction", noise_only_fraction),
        ("nodal_fraction", nodal_fraction),
        ("emergent_fraction", emergent_fraction),
    ):
        if not 0.0 <= frac <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {frac}")
    if not (0 < fc_range_hz[0] <= fc_range_hz[1]) or not (0 < tstar_range_s[0] <= tstar_range_s[1]):
        raise ValueError(f"bad fc_range_hz {fc_range_hz} or tstar_range_s {tstar_range_s}")

    fs, w = float(sampling_rate_hz), int(window_samples)
    dt = 1.0 / fs
    pick_index = np.full(n, w // 2, dtype=np.int64)
    err_cap = min(3.0 * pick_error_s, 0.25 * w * dt)
    err = np.clip(
        rng.normal(0.0, pick_error_s, n) if pick_error_s > 0 else np.zeros(n), -err_cap, err_cap
    )
    onset_s = pick_index * dt + err
    strike, dip, rake = _random_mechanisms(n, rng)
    ray = rng.standard_normal((n, 3))
    ray /= np.linalg.norm(ray, axis=1, keepdims=True)
    nodal = rng.random(n) < nodal_fraction
    if np.any(nodal):  # a ray in the fault plane, tilted off it by up to ~9 degrees
        normal = _fault_normal(strike[nodal], dip[nodal])
        v = ray[nodal] - np.sum(ray[nodal] * normal, axis=1, keepdims=True) * normal
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        v += rng.uniform(-0.15, 0.15, (v.shape[0], 1)) * normal
        ray[nodal] = v / np.linalg.norm(v, axis=1, keepdims=True)
    azimuth, takeoff = _ray_angles(ray)
    from firstmotion.radiation import p_radiation

    radiation = p_radiation(strike, dip, rake, azimuth, takeoff)
    snr_db = rng.uniform(snr_range_db[0], snr_range_db[1], n)
    noise_only = rng.random(n) < noise_only_fraction
    fc = np.exp(rng.uniform(np.log(fc_range_hz[0]), np.log(fc_range_hz[1]), n))
    tstar = np.exp(rng.uniform(np.log(tstar_range_s[0]), np.log(tstar_range_s[1]), n))
    emergence = np.where(rng.random(n) < emergent_fraction, rng.uniform(0.05, 0.4, n), 0.0)
    profile_idx = rng.integers(0, len(profiles), n)

    noise = np.empty((n, w))
    clean = np.zeros((n, w))
    for k, prof in enumerate(profiles):
        rows = np.nonzero(profile_idx == k)[0]
        if rows.size == 0:
            continue
        noise[rows] = _shaped_noise(rows.size, w, fs, rng, prof, min_segment_s=40.0)
        if spikes_per_hour > 0:
            sub = noise[rows]
            _add_spikes(sub, fs, rng, spikes_per_hour, 1.0)
            noise[rows] = sub
        kind = "acceleration" if prof == "accelerometer" else "velocity"
        kind = kind if output == "sensor" else output
        order = np.full(rows.size, OUTPUTS.index(kind))
        pulse = _pulses(w, fs, onset_s[rows], fc[rows], tstar[rows], order, emergence[rows])
        if kind == "velocity" and prof in ("short_period", "geophone"):
            pulse = _sensor_highpass(pulse, fs, prof)
            peak, _ = first_lobe_peak(pulse)
            pulse /= np.where(peak == 0, 1.0, peak)[:, None]
        clean[rows] = pulse

    t = np.arange(w)[None, :] * dt
    pre = (t < onset_s[:, None]) & (t >= onset_s[:, None] - noise_window_s)
    noise_rms = detrended_rms(noise, pre)
    noise_rms = np.where(noise_rms > 0, noise_rms, 1.0)
    amplitude = np.where(noise_only, 0.0, radiation * 10.0 ** (snr_db / 20.0) * noise_rms)
    clean *= amplitude[:, None]
    fm_snr = np.abs(amplitude) / noise_rms
    label = np.where(fm_snr >= min_first_motion_snr, np.sign(radiation), 0).astype(np.int8)
    x = (noise + clean).astype(np.float32)
    info: dict[str, np.ndarray] = {
        "pick_index": pick_index,
        "onset_s": onset_s,
        "amplitude": amplitude,
        "radiation": radiation,
        "snr_db": snr_db,
        "first_motion_snr": fm_snr,
        "noise_rms": noise_rms,
        "fc_hz": fc,
        "tstar_s": tstar,
        "emergence_s": emergence,
        "strike_deg": strike,
        "dip_deg": dip,
        "rake_deg": rake,
        "azimuth_deg": azimuth,
        "takeoff_deg": takeoff,
        "noise_only": noise_only,
        "profile": profile_idx,
    }
    if return_clean:
        info["clean"] = clean.astype(np.float32)
    return x, label, info
