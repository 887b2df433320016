"""Continuous three-component ground velocity of a scenario: P and S pulses on ambient noise.

For each (event, station) pair (Aki & Richards 2002, eq. 4.97 for a smoothly varying medium):

* far-field amplitude ``A = F M0 / (4 pi sqrt(rho_src rho_rcv v_src^5 v_rcv) R)`` with ``F`` the
  double-couple radiation factor (:mod:`firstmotion.radiation`) at the ray's takeoff angle and
  azimuth, ``R`` the hypocentral distance (1/R spreading for direct rays and head waves alike:
  a simplification), ``rho``/``v`` at the source and at the surface;
* the pulse: :func:`firstmotion.synth.p_pulse` (``normalize=False``: Brune moment rate with the
  causal t* operator) in ground velocity, ``t* = travel time / Q``; P corner frequency from
  Brune's formula, S corner frequency 1.5 times lower (Madariaga 1976);
* the free surface: P, SV and SH through the exact free-surface coefficients
  (:mod:`stream.scenario.free_surface`; Aki & Richards 2002, sec. 5.2.5: P ``2`` on Z and SV
  ``2`` on the radial at vertical incidence, SH ``2`` on the transverse only), evaluated with
  the site velocities (``ScenarioConfig.site_vp_km_s``/``site_vs_km_s``, the angle at the
  surface ``asin(p v_site)``; the amplitudes keep the top layer's impedance);
* optional scattered coda after each direct pulse (random, exponentially decaying, starting
  after the pulse's first lobe so the first motion is untouched);
* noise: :func:`firstmotion.synth.ambient_noise` with a per-station level (horizontals 1.4x),
  plus 1 count RMS of white digitizer noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

from firstmotion.radiation import p_radiation, s_radiation
from firstmotion.synth import (
    ambient_noise,
    brune_corner_frequency_hz,
    detrended_rms,
    first_lobe_peak,
    p_pulse,
)
from firstmotion.velocity import VelocityModel
from stream.scenario.config import ScenarioConfig
from stream.scenario.events import Event
from stream.scenario.free_surface import apply_coefficient, surface_motion, to_zne
from stream.scenario.geometry import PairGeometry
from stream.scenario.network import Station
from stream.scenario.sensors import Sensor, apply_response

HORIZONTAL_NOISE_FACTOR = 1.4
ACCELEROMETER_NOISE_PER_VELOCITY_NOISE = 2 * np.pi * 5.0 * 3.0  # 1/s
DIGITIZER_NOISE_COUNTS = 1.0  # white digitizer noise (RMS counts), part of the noise
INT32_MAX = 2**31 - 1
P_CODA_RATIO, S_CODA_RATIO = 0.25, 0.35
P_CODA_DECAY_S, S_CODA_DECAY_S = 1.5, 3.0
CODA_DECAYS = 6.0  # coda segments last this many decay times (e^-6 = 0.25% at the end)
MAX_PULSE_S = 30.0


@dataclass(frozen=True, eq=False)
class PairAmplitudes:
    """Arrays (n_events, n_stations): what the truth file reports per pair."""

    p_radiation: np.ndarray
    sv_radiation: np.ndarray
    sh_radiation: np.ndarray
    p_tstar_s: np.ndarray
    s_tstar_s: np.ndarray
    p_corner_frequency_hz: np.ndarray
    p_displacement_area_m_s: np.ndarray  # far-field P: area of the displacement pulse (m s)
    first_motion: np.ndarray  # signed first-lobe peak of clean P on Z (sensor units: m/s, m/s^2)
    noise_rms: np.ndarray  # RMS about the trend of the Z noise in the 1 s before P (same units)
    emergence_s: np.ndarray
    p_in_data: np.ndarray  # the P onset lies inside the window and outside any gap


def free_surface_p(
    ray_parameter_s_km: np.ndarray, vp_km_s: float, vs_km_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """(radial, vertical-up) surface displacement per unit incident P amplitude.

    ``W_x = 4 a p ea eb / (b^2 D)``, ``W_z = 2 a ea (b^-2 - 2 p^2) / (b^2 D)``,
    ``D = (b^-2 - 2 p^2)^2 + 4 p^2 ea eb`` with ``ea, eb`` the vertical slownesses (Aki &
    Richards 2002, sec. 5.2.5); W_z = 2 at vertical incidence, both vanish at grazing incidence.
    """
    p = np.asarray(ray_parameter_s_km, dtype=float)
    a, b = vp_km_s, vs_km_s
    ea = np.sqrt(np.clip(1.0 / a**2 - p**2, 0.0, None))
    eb = np.sqrt(np.clip(1.0 / b**2 - p**2, 0.0, None))
    q = 1.0 / b**2 - 2.0 * p**2
    den = q**2 + 4.0 * p**2 * ea * eb
    return 4.0 * a * p * ea * eb / (b**2 * den), 2.0 * a * ea * q / (b**2 * den)


def _coda_kernel(n: int, start: int, decay_samples: float, rng: np.random.Generator) -> np.ndarray:
    """Random scattering impulse response: 0 before ``start``, then exp-decaying white noise."""
    h = np.zeros(n)
    if start >= n:
        return h
    k = np.arange(n - start)
    ramp = np.minimum(1.0, k / max(0.2 * decay_samples, 1.0))
    h[start:] = rng.standard_normal(n - start) * np.exp(-k / decay_samples) * ramp
    return h


def _with_coda(
    pulse: np.ndarray, fs: float, ratio: float, decay_s: float, rng: np.random.Generator
) -> np.ndarray:
    """``pulse`` plus a scattered coda that starts after its first lobe; coda RMS over the first
    second ~ ``ratio`` x the pulse peak."""
    peak, i0 = first_lobe_peak(pulse[None])
    if peak[0] == 0:
        return pulse
    sign = np.sign(pulse[i0[0]])
    after = np.nonzero(pulse[i0[0] :] * sign <= 0)[0]
    lobe_end = int(i0[0] + (after[0] if after.size else 0))
    h = _coda_kernel(pulse.size, max(lobe_end - int(i0[0]) + 1, 1), decay_s * fs, rng)
    coda = fftconvolve(pulse, h)[: pulse.size]
    window = coda[lobe_end : lobe_end + int(fs)]
    rms = np.sqrt(np.mean(window**2)) if window.size else 0.0
    if rms == 0:
        return pulse
    return pulse + coda * (ratio * np.abs(pulse).max() / rms)


def _add(trace: np.ndarray, start: int, seg: np.ndarray) -> None:
    """trace[start:start+len(seg)] += seg, cropped to the trace."""
    lo, hi = max(start, 0), min(start + seg.size, trace.size)
    if lo < hi:
        trace[lo:hi] += seg[lo - start : hi - start]


def _add_zne(traces: np.ndarray, start: int, zne: tuple[np.ndarray, ...]) -> None:
    """Add the (Z, N, E) segments to the station's three traces from sample ``start``."""
    for c, seg in enumerate(zne):
        _add(traces[c], start, seg)


def _pulse_segment(
    arrival_s: float,
    fs: float,
    fc_hz: float,
    tstar_s: float,
    min_length_s: float = 0.0,
    sensor: Sensor | None = None,
    emergence_s: float = 0.0,
) -> tuple[int, np.ndarray]:
    """(start sample, pulse for a unit moment as the sensor records it: ground velocity or
    acceleration through its causal response) with the onset at ``arrival_s``; the segment is
    long enough for the pulse (and at least ``min_length_s``, room for a coda). An
    ``emergence_s`` ramps the source's moment rate up over that time (the same moment), so the
    onset rises slowly in every output and the first lobe keeps its sign and size."""
    start = int(np.floor(arrival_s * fs)) - 2
    length_s = min(
        MAX_PULSE_S, max(25.0 / fc_hz + 30.0 * tstar_s + 1.0 + emergence_s, min_length_s)
    )
    seg = p_pulse(int(length_s * fs), fs, arrival_s - start / fs, fc_hz, tstar_s,
                  output=sensor.output if sensor else "velocity", emergence_s=emergence_s,
                  normalize=False)  # fmt: skip
    if sensor is not None:
        seg = apply_response(seg, sensor, fs)
    return start, seg


def _gap_mask(n: int, fs: float, rng: np.random.Generator) -> np.ndarray:
    """True where data are missing: 1-2 gaps of 2-30 s."""
    mask = np.zeros(n, dtype=bool)
    for _ in range(int(rng.integers(1, 3))):
        length = int(rng.uniform(2.0, 30.0) * fs)
        start = int(rng.integers(0, max(n - length, 1)))
        mask[start : start + length] = True
    return mask


def synthesize(
    config: ScenarioConfig,
    stations: list[Station],
    events: list[Event],
    geometry: PairGeometry,
    model: VelocityModel,
    rng: np.random.Generator,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, PairAmplitudes]:
    """Recorded counts (n_stations, 3 [Z, N, E], n_samples) int32 (ground velocity or
    acceleration through the sensor's response times its sensitivity; Z negated at reversed
    stations), a gap mask of the same shape (True =
    missing), and the per-pair amplitudes (see the module docstring). Works one station at a
    time, so memory is the int32 counts plus one station's float64 traces."""
    from tqdm import tqdm

    fs = config.sampling_rate_hz
    n = int(round(config.duration_s * fs))
    n_ev, n_st = len(events), len(stations)
    src_layer = model.source_layer_index([e.depth_km for e in events])
    vp_src, vs_src = model.vp_km_s[src_layer], model.vs_km_s[src_layer]
    rho_src = model.rho_g_cm3[src_layer]
    vp0, vs0, rho0 = model.vp_km_s[0], model.vs_km_s[0], model.rho_g_cm3[0]

    strike = np.array([e.strike_deg for e in events])[:, None]
    dip = np.array([e.dip_deg for e in events])[:, None]
    rake = np.array([e.rake_deg for e in events])[:, None]
    g = geometry
    rad_p = p_radiation(strike, dip, rake, g.azimuth_deg, g.p_takeoff_deg)
    rad_sv, rad_sh = s_radiation(strike, dip, rake, g.azimuth_deg, g.s_takeoff_deg)
    m0 = np.array([e.moment_nm for e in events])[:, None]
    r_m = g.hypocentral_distance_km * 1e3
    denom_p = 4 * np.pi * np.sqrt(rho_src[:, None] * rho0 * 1e6 * (vp_src[:, None] * 1e3) ** 5
                                  * vp0 * 1e3)  # fmt: skip
    denom_s = 4 * np.pi * np.sqrt(rho_src[:, None] * rho0 * 1e6 * (vs_src[:, None] * 1e3) ** 5
                                  * vs0 * 1e3)  # fmt: skip
    amp_p = rad_p * m0 / (denom_p * r_m)
    amp_sv, amp_sh = rad_sv * m0 / (denom_s * r_m), rad_sh * m0 / (denom_s * r_m)
    tstar_p, tstar_s = g.p_travel_time_s / config.q_p, g.s_travel_time_s / config.q_s
    fc_p = np.array(
        [brune_corner_frequency_hz(e.magnitude, config.stress_drop_mpa, vs_src[k])
         for k, e in enumerate(events)]
    )  # fmt: skip
    fc_s = fc_p / 1.5
    site_vp = config.site_vp_km_s if config.site_vp_km_s is not None else vp0
    site_vs = config.site_vs_km_s if config.site_vs_km_s is not None else vs0
    wx, _, wz = surface_motion("P", g.p_ray_parameter_s_km, site_vp, site_vs)
    svx, _, svz = surface_motion("SV", g.s_ray_parameter_s_km, site_vp, site_vs)
    emergent = rng.random((n_ev, n_st)) < config.emergent_fraction
    emergence = np.where(emergent, rng.uniform(0.05, 0.3, (n_ev, n_st)), 0.0)
    origin = np.array([e.origin_time_s for e in events])[:, None]
    t_p, t_s = origin + g.p_travel_time_s, origin + g.s_travel_time_s
    spikes = 20.0 if config.spikes else 0.0
    sensor = config.sensor_spec()
    noise_profile = config.noise_profile or sensor.kind
    acc_factor = ACCELEROMETER_NOISE_PER_VELOCITY_NOISE if sensor.output == "acceleration" else 1.0

    real_noise = None
    if config.noise_dir:
        from stream.scenario.real_noise import load_noise

        real_noise = load_noise(config.noise_dir, fs)
    counts = np.zeros((n_st, 3, n), dtype=np.int32)
    data = np.zeros((1, 3, n))  # the current station's ground velocity (m/s)
    gaps = np.zeros((n_st, 3, n), dtype=bool)
    first_motion = np.zeros((n_ev, n_st))
    noise_rms = np.zeros((n_ev, n_st))
    p_in_data = np.zeros((n_ev, n_st), dtype=bool)
    for j, st in enumerate(tqdm(stations, desc="scenario", unit="station", disable=not progress)):
        jd = 0  # row of `data` holding this station
        real = None if real_noise is None else real_noise.segment(j, n, rng)
        for c in range(3):
            level = st.noise_rms_m_s * (1.0 if c == 0 else HORIZONTAL_NOISE_FACTOR)
            if real is not None:
                data[jd, c] = real[c] * (level * acc_factor)
            else:
                data[jd, c] = ambient_noise(
                    n, fs, rng, profile=noise_profile, level=level * acc_factor,
                    spikes_per_hour=spikes,
                )  # fmt: skip
            data[jd, c] += rng.normal(0.0, DIGITIZER_NOISE_COUNTS / sensor.sensitivity, n)
            if config.gaps and rng.random() < 0.15:
                gaps[j, c] = _gap_mask(n, fs, rng)
        for i in range(n_ev):
            k0 = int(np.floor(t_p[i, j] * fs))
            pre = data[jd, 0, max(k0 - int(fs) + 1, 0) : max(k0 + 1, 0)]
            noise_rms[i, j] = float(detrended_rms(pre)[0]) if pre.size >= 3 else float("nan")
        baz = g.back_azimuth_deg[:, j]
        for i in range(n_ev):
            coda_s = CODA_DECAYS * P_CODA_DECAY_S if config.coda else 0.0
            # emergent: the source's moment rate builds up (the coda scatters what it radiates)
            start, u = _pulse_segment(
                t_p[i, j], fs, fc_p[i], tstar_p[i, j], coda_s, sensor, emergence[i, j]
            )
            if config.coda:
                uz = _with_coda(u, fs, P_CODA_RATIO, P_CODA_DECAY_S, rng)
                ur = _with_coda(u, fs, P_CODA_RATIO, P_CODA_DECAY_S, rng)
                ut = _with_coda(u, fs, P_CODA_RATIO, P_CODA_DECAY_S, rng) - u
            else:
                uz, ur, ut = u, u, np.zeros_like(u)
            up = apply_coefficient(amp_p[i, j] * uz, wz[i, j])
            first_motion[i, j] = first_lobe_peak(up[None])[0][0]
            radial = apply_coefficient(amp_p[i, j] * ur, wx[i, j])
            _add_zne(data[jd], start, to_zne(up, radial, 0.5 * amp_p[i, j] * ut, baz[i]))
            # S: SV and SH through the free surface (SH: transverse only)
            coda_s = CODA_DECAYS * S_CODA_DECAY_S if config.coda else 0.0
            start, u = _pulse_segment(t_s[i, j], fs, fc_s[i], tstar_s[i, j], coda_s, sensor)
            if config.coda:
                u = _with_coda(u, fs, S_CODA_RATIO, S_CODA_DECAY_S, rng)
            up = apply_coefficient(amp_sv[i, j] * u, svz[i, j])
            radial = apply_coefficient(amp_sv[i, j] * u, svx[i, j])
            _add_zne(data[jd], start, to_zne(up, radial, 2.0 * amp_sh[i, j] * u, baz[i]))
            k = int(np.floor(t_p[i, j] * fs)) + 1
            p_in_data[i, j] = 0 <= k < n and not gaps[j, 0, max(k - int(fs), 0) : k + 1].any()
        if st.reversed:  # a sensor wired upside down: the metadata still says dip -90
            data[jd, 0] *= -1.0
        scaled = np.round(data[jd] * sensor.sensitivity)
        counts[j] = np.clip(scaled, -INT32_MAX, INT32_MAX).astype(np.int32)
    amps = PairAmplitudes(
        rad_p, rad_sv, rad_sh, tstar_p, tstar_s, np.broadcast_to(fc_p[:, None], rad_p.shape),
        amp_p, first_motion, noise_rms, emergence, p_in_data,
    )  # fmt: skip
    return counts, gaps, amps
