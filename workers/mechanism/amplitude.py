"""S/P amplitude ratios in the HASH grid search (Hardebeck & Shearer 2003; SKHASH 1.1.5).

HASH's second data type: at a station with both a P and an S amplitude, the observed
log10(S/P) is compared with the ratio a mechanism predicts on the ray,
``log10(4.9 S / P)`` (4.9 ~ (Vp/Vs)^3: far-field amplitudes scale as 1/v^3), where P = |P
radiation| and S = sqrt(SV^2 + SH^2) the total S radiation of a unit double couple. In the
frame of a mechanism (normal n, slip s) with a = p.n and b = p.s for the unit ray p, P = |2 a b|
and S = sqrt(a^2 + b^2 - 4 a^2 b^2) (Aki & Richards eq. 4.84-4.89; SKHASH's table
``sin 2t cos f`` and ``sqrt((cos 2t cos f)^2 + (cos t sin f)^2)`` with t = arccos(a), the
same functions). Radiation factors below ``min_amp`` count as nodal: log ratio 4.0 when P is
nodal, -2.0 when S is (SKHASH's and HASH's fixed values). SKHASH looks the factors up in a
1/180-step table; here they are exact.

The amplitude misfit of a mechanism in a trial is sum |observed - predicted| over the ratios
(log10 units). Acceptance (SKHASH ``focal_gridsearch``, Python): a mechanism is acceptable in a
trial when its polarity misfit <= max(min + nextra, ntotal) AND its amplitude misfit <=
max(min + qextra, qtotal) of that trial, with qextra = max(N qbadfrac / 2, qbadmin) and
qtotal = max(N qbadfrac, qbadmin) for N ratios (qbadfrac 0.3: a factor of 2 per ratio;
qbadmin 2.0). When fewer than ``min_solutions`` (10) mechanisms are acceptable in any trial,
or fewer than ``min_trial_fraction`` (half) of the trials have one, the amplitude criterion
is loosened: per trial, the least amplitude misfit among the polarity-acceptable mechanisms
plus nextra (SKHASH's Python adds nextra here; HASH's Fortran adds qextra and loosens only
a trial with no solution), floored at qtotal.

A free level (``free_level``; not in HASH or SKHASH): the misfit of a mechanism is taken
about the level that fits the event's ratios best, sum |r_i - median(r)| with r = observed -
predicted, instead of about zero. A constant offset of every observed ratio of an event (the
S pulse's lower corner frequency and stronger attenuation, an uncalibrated network, the
event's own size) then changes nothing; what is compared is how the ratio varies from station
to station, which the radiation pattern sets. One degree of freedom fewer, no calibration.

Observed ratios: SKHASH takes amplitudes with their noise, keeps a station only when both
S/N >= ``ratmin`` (3), clamps S/P to [min_sp, max_sp] = [0.0005, 2000] and takes log10
(:func:`observed_log_ratio`).

.. seealso:: Hardebeck, J. L. & Shearer, P. M. (2003), Using S/P amplitude ratios to constrain
   the focal mechanisms of small earthquakes, BSSA 93(6), 2434-2444; Skoumal, R. J.,
   Hardebeck, J. L. & Shearer, P. M. (2024), SRL 95(4), 2519-2526.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from firstmotion.radiation import p_radiation, s_radiation
from workers.mechanism.grid import FocalGrid

try:  # numba is a declared dependency; the numpy twin keeps the module usable without it
    import numba as _numba
except ImportError:  # pragma: no cover
    _numba = None

SP_VELOCITY_FACTOR = 4.9  # (Vp/Vs)^3 with Vp/Vs ~ 1.7, as HASH and SKHASH
MIN_AMP = 0.0005  # SKHASH min_amp: radiation factors below count as nodal
LOG_RATIO_P_NODAL = 4.0
LOG_RATIO_S_NODAL = -2.0
RATMIN = 3.0  # SKHASH ratmin: minimum S/N of both amplitudes
MIN_SP = 0.0005
MAX_SP = 2000.0
QBADFRAC = 0.3
QBADMIN = 2.0
MIN_SOLUTIONS = 10  # SKHASH min_num_sp_solutions
MIN_TRIAL_FRACTION = 0.5  # SKHASH min_ratio_trial_solutions


def observed_log_ratio(
    amp_p: ArrayLike,
    amp_s: ArrayLike,
    noise_p: ArrayLike | None = None,
    noise_s: ArrayLike | None = None,
    *,
    ratmin: float = RATMIN,
    min_sp: float = MIN_SP,
    max_sp: float = MAX_SP,
) -> np.ndarray:
    """log10(S/P) per station, NaN where unusable (SKHASH ``read_amp_file``).

    Amplitudes and noise are absolute values in the same unit (e.g. counts). A station is
    unusable when either S/N < ``ratmin`` (noise given), an amplitude is not positive and
    finite, or the ratio rounds to 0 at two decimals (SKHASH rounds S/P to 0.01 and drops 0);
    the ratio is clamped to [min_sp, max_sp].
    """
    ap = np.abs(np.asarray(amp_p, dtype=float))
    as_ = np.abs(np.asarray(amp_s, dtype=float))
    ok = np.isfinite(ap) & np.isfinite(as_) & (ap > 0) & (as_ > 0)
    if noise_p is not None or noise_s is not None:
        npn = np.abs(np.asarray(noise_p if noise_p is not None else 0.0, dtype=float))
        nsn = np.abs(np.asarray(noise_s if noise_s is not None else 0.0, dtype=float))
        with np.errstate(divide="ignore", invalid="ignore"):
            ok &= (ap >= ratmin * npn) & (as_ >= ratmin * nsn)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.round(np.where(ok, as_ / np.where(ok, ap, 1.0), np.nan), 2)
    ok &= ratio != 0
    ratio = np.clip(ratio, min_sp, max_sp) if max_sp > 0 else np.maximum(ratio, min_sp)
    return np.where(ok, np.log10(np.where(ok, ratio, 1.0)), np.nan)


def log_ratio_from_projections(
    a: np.ndarray, b: np.ndarray, min_amp: float = MIN_AMP
) -> np.ndarray:
    """Predicted log10(4.9 S/P) from a = p.n and b = p.s (any matching shapes)."""
    p_amp = np.abs(2.0 * a * b)
    a2, b2 = a * a, b * b
    s_amp = np.sqrt(np.maximum(a2 + b2 - 4.0 * a2 * b2, 0.0))
    p_nodal = p_amp < min_amp
    s_nodal = s_amp < min_amp
    safe = ~(p_nodal | s_nodal)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log10(SP_VELOCITY_FACTOR * s_amp / np.where(safe, p_amp, 1.0))
    return np.where(p_nodal, LOG_RATIO_P_NODAL, np.where(s_nodal, LOG_RATIO_S_NODAL, ratio))


_TABLE_N = 180  # SKHASH's amplitude table: 1/180 steps in the direction cosines, 1 degree


def log_ratio_skhash_table(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, min_amp: float = MIN_AMP
) -> np.ndarray:
    """As :func:`log_ratio_from_projections` through SKHASH's lookup tables (its grid search:
    theta = arccos(p.n) and phi = atan2 of the ray's projection on the (slip, null) plane, each
    rounded to its table, the radiation factors read at whole degrees); ``c`` = p.null. Only to
    reproduce SKHASH exactly in comparisons: the exact factors are the default."""
    astep = 1.0 / _TABLE_N
    bbb = -1.0 + np.arange(2 * _TABLE_N + 1) * astep
    plen = np.sqrt(np.maximum(1.0 - a * a, 0.0))  # |p - (p.n) n| for unit p
    with np.errstate(divide="ignore", invalid="ignore"):
        pp_b1 = b / plen
        pp_b2 = c / plen
    theta = np.arccos(bbb)[np.round((a + 1.0) / astep).astype(int)]
    i = np.round((pp_b2 + 1.0) / astep).astype(int)
    j = np.round((pp_b1 + 1.0) / astep).astype(int)
    phi = np.arctan2(bbb[i], bbb[j])
    phi = np.where(phi < 0, phi + 2 * np.pi, phi)
    ip = np.round(phi / (np.pi * astep)).astype(int)
    ip[ip > 2 * _TABLE_N - 1] = 0
    jt = np.round(theta / (np.pi * astep)).astype(int)
    jt[jt > _TABLE_N - 1] = 0
    th, ph = jt * np.pi * astep, ip * np.pi * astep
    p_amp = np.abs(np.sin(2 * th) * np.cos(ph))
    s_amp = np.sqrt((np.cos(2 * th) * np.cos(ph)) ** 2 + (np.cos(th) * np.sin(ph)) ** 2)
    if min_amp > 0:
        p_amp = np.where(p_amp < min_amp, 0.0, p_amp)
        s_amp = np.where(s_amp < min_amp, 0.0, s_amp)
    safe = (p_amp != 0) & (s_amp != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log10(SP_VELOCITY_FACTOR * s_amp / np.where(safe, p_amp, 1.0))
    return np.where(p_amp == 0, LOG_RATIO_P_NODAL, np.where(s_amp == 0, LOG_RATIO_S_NODAL, ratio))


def predicted_log_ratio(
    strike_deg: ArrayLike,
    dip_deg: ArrayLike,
    rake_deg: ArrayLike,
    azimuth_deg: ArrayLike,
    takeoff_deg: ArrayLike,
) -> np.ndarray:
    """log10(4.9 S/P) of a mechanism on rays (broadcasting), from the radiation patterns of
    :mod:`firstmotion.radiation` (P: |P radiation|; S: sqrt(SV^2 + SH^2)); no nodal floor
    (SKHASH ``calculate_misfit``). Takeoff from vertical-up."""
    p = np.abs(p_radiation(strike_deg, dip_deg, rake_deg, azimuth_deg, takeoff_deg))
    sv, sh = s_radiation(strike_deg, dip_deg, rake_deg, azimuth_deg, takeoff_deg)
    with np.errstate(divide="ignore"):
        return np.log10(SP_VELOCITY_FACTOR * np.hypot(sv, sh) / p)


def amplitude_allowances(n_ratios: int, qbadfrac: float = QBADFRAC, qbadmin: float = QBADMIN):
    """(qextra, qtotal): amplitude misfit allowed above each trial's minimum, and the floor
    (SKHASH: max(N qbadfrac / 2, qbadmin), max(N qbadfrac, qbadmin); no rounding)."""
    return float(max(n_ratios * qbadfrac * 0.5, qbadmin)), float(max(n_ratios * qbadfrac, qbadmin))


def amplitude_misfit_table_numpy(
    rays: np.ndarray,
    log_ratio: np.ndarray,
    grid: FocalGrid,
    *,
    min_amp: float = MIN_AMP,
    table: bool = False,
    free_level: bool = False,
    chunk: int = 8192,
) -> np.ndarray:
    """Amplitude misfit (n_trials, n_mech): sum over ratios of |observed - predicted| log10
    (``free_level``: about the median of observed - predicted, module docstring).

    ``rays`` (3, n_ratios, n_trials) unit vectors (N, E, D) of the stations with a ratio;
    ``log_ratio`` (n_ratios,) observed log10(S/P). ``table``: SKHASH's lookup tables
    (:func:`log_ratio_skhash_table`) instead of the exact radiation factors.
    """
    _, n_sp, n_trials = rays.shape
    afit = np.zeros((n_trials, grid.n_mech))
    for lo in range(0, grid.n_mech, chunk):
        hi = min(lo + chunk, grid.n_mech)
        normal, slip = grid.normal[lo:hi].T, grid.slip[lo:hi].T
        null = grid.null[lo:hi].T
        res = np.empty((n_sp, n_trials, hi - lo))
        for i in range(n_sp):
            r = rays[:, i, :].T  # (n_trials, 3)
            if table:
                pred = log_ratio_skhash_table(r @ normal, r @ slip, r @ null, min_amp)
            else:
                pred = log_ratio_from_projections(r @ normal, r @ slip, min_amp)
            res[i] = log_ratio[i] - pred
        if free_level and n_sp:
            res -= np.median(res, axis=0)
        afit[:, lo:hi] = np.abs(res).sum(axis=0)
    return afit


def _afit_kernel_py(px, py, pz, obs, nrm, b1, b2, cz, sz, min_amp, free, afit):  # pragma: no cover
    # amplitude_misfit_table_numpy's arithmetic per (normal, trial, ratio, slip): p.s of the
    # normal's slips is cos(zeta) (p.b1) + sin(zeta) (p.b2), as in the polarity kernels; the
    # residuals of a (normal, trial) are summed over the ratios in order, about zero or (free)
    # about each slip's median (an insertion sort of the few ratios); afit starts at zero
    n_sp, nt = px.shape
    n_slip = cz.shape[0]
    c_log = np.log10(SP_VELOCITY_FACTOR)
    res = np.empty((n_sp, n_slip))
    level = np.zeros(n_slip)
    buf = np.empty(n_sp)
    for j in range(nrm.shape[0]):
        n0, n1, n2 = nrm[j, 0], nrm[j, 1], nrm[j, 2]
        u0, u1, u2 = b1[j, 0], b1[j, 1], b1[j, 2]
        v0, v1, v2 = b2[j, 0], b2[j, 1], b2[j, 2]
        base = j * n_slip
        for t in range(nt):
            for i in range(n_sp):
                x = px[i, t]
                y = py[i, t]
                z = pz[i, t]
                a = x * n0 + y * n1 + z * n2
                c1 = x * u0 + y * u1 + z * u2
                c2 = x * v0 + y * v1 + z * v2
                a2 = a * a
                o = obs[i]
                for k in range(n_slip):  # branch-free, so the loop vectorises
                    b = cz[k] * c1 + sz[k] * c2
                    pa = abs(2.0 * a * b)
                    bb = b * b
                    sa = np.sqrt(max(a2 + bb - 4.0 * a2 * bb, 0.0))
                    ratio = c_log + np.log10(max(sa, 1e-300) / max(pa, 1e-300))
                    pred = ratio if sa >= min_amp else LOG_RATIO_S_NODAL
                    pred = pred if pa >= min_amp else LOG_RATIO_P_NODAL
                    if free:  # loop-invariant: compiled as two loops
                        res[i, k] = o - pred
                    else:
                        afit[t, base + k] += abs(o - pred)
            if not free:
                continue
            h = n_sp // 2
            for k in range(n_slip):
                for i in range(n_sp):
                    v = res[i, k]
                    m = i
                    while m > 0 and buf[m - 1] > v:
                        buf[m] = buf[m - 1]
                        m -= 1
                    buf[m] = v
                level[k] = buf[h] if n_sp % 2 else 0.5 * (buf[h - 1] + buf[h])
            for i in range(n_sp):
                for k in range(n_slip):
                    afit[t, base + k] += abs(res[i, k] - level[k])


_afit_kernel = _numba.njit(cache=True, nogil=True)(_afit_kernel_py) if _numba is not None else None


def amplitude_misfit_table(
    rays: np.ndarray,
    log_ratio: np.ndarray,
    grid: FocalGrid,
    *,
    min_amp: float = MIN_AMP,
    table: bool = False,
    free_level: bool = False,
) -> np.ndarray:
    """As :func:`amplitude_misfit_table_numpy` (its obviously-right twin, tested to agree),
    compiled with numba when available; ``table`` always takes the numpy path."""
    _, n_sp, n_trials = rays.shape
    if table or _afit_kernel is None or not n_sp:
        return amplitude_misfit_table_numpy(rays, log_ratio, grid, min_amp=min_amp, table=table,
                                            free_level=free_level)  # fmt: skip
    afit = np.zeros((n_trials, grid.n_mech))
    _afit_kernel(
        np.ascontiguousarray(rays[0]), np.ascontiguousarray(rays[1]),
        np.ascontiguousarray(rays[2]), np.ascontiguousarray(log_ratio, dtype=float),
        grid.normal_of_normal, grid.base1, grid.base2, np.cos(grid.zeta_rad),
        np.sin(grid.zeta_rad), float(min_amp), bool(free_level), afit,
    )  # fmt: skip
    return afit


def joint_accepted_mask(
    fit: np.ndarray,
    afit: np.ndarray,
    nextra: float,
    ntotal: float,
    qextra: float,
    qtotal: float,
    *,
    min_solutions: int = MIN_SOLUTIONS,
    min_trial_fraction: float = MIN_TRIAL_FRACTION,
) -> tuple[np.ndarray, bool]:
    """(mechanisms (n_mech,) acceptable in at least one trial by polarities AND amplitudes,
    whether the amplitude criterion was loosened) — SKHASH ``focal_gridsearch`` (module
    docstring). ``fit``/``afit`` (n_trials, n_mech). A tolerance of 1e-9 absorbs summation
    rounding, as :func:`workers.mechanism.search.accepted_mask`."""
    tol = 1e-9
    pol_ok = fit <= np.maximum(fit.min(axis=1) + nextra, ntotal)[:, None] + tol
    thr = np.maximum(afit.min(axis=1) + qextra, qtotal)
    good = pol_ok & (afit <= thr[:, None] + tol)
    trial_fraction = float(np.any(good, axis=1).mean())
    accepted = np.any(good, axis=0)
    if int(accepted.sum()) >= min_solutions and trial_fraction >= min_trial_fraction:
        return accepted, False
    least = np.where(pol_ok, afit, np.inf).min(axis=1)
    thr = np.maximum(least + nextra, qtotal)
    good = pol_ok & (afit <= thr[:, None] + tol)
    return np.any(good, axis=0), True
