"""Focal-mechanism inversion from P first-motion polarities: HASH as array algebra.

Pipeline (Hardebeck & Shearer 2002, as implemented by SKHASH 1.1.5, Skoumal et al. 2024):

1. trials: perturbed azimuth/takeoff copies of every ray (given, or drawn from Gaussian
   uncertainties with trial 0 unperturbed);
2. grid search (:mod:`workers.mechanism.search`): weighted misfit of the 5-degree grid's 31,032
   mechanisms in every trial; accepted set = mechanisms with misfit <= max(min + nextra, ntotal)
   in at least one trial; with S/P amplitude ratios (:mod:`workers.mechanism.amplitude`,
   HASH's second data type) the amplitude misfit must be acceptable in the same trial too;
3. probability (SKHASH ``mech_probability``): average the accepted set, keep those within
   ``cangle`` of the average, re-average; the fraction kept is the probability; the rest are
   averaged again for up to five multiple solutions while their probability >= ``prob_max``;
   fault- and auxiliary-plane uncertainties are the RMS angles of the accepted normals/slips;
4. misfit fraction and station distribution ratio (HASH ``get_misf``) on the unperturbed rays,
   each polarity weighted by sqrt(|P radiation|);
5. quality A-D from probability, mean plane uncertainty, misfit and STDR (SKHASH's table),
   forced to D for azimuthal gap > 90, takeoff gap > 60 or fewer than 8 polarities.

.. seealso:: Hardebeck, J. L. & Shearer, P. M. (2002), BSSA 92(6), 2264-2276;
   Skoumal, R. J., Hardebeck, J. L. & Shearer, P. M. (2024), SRL 95(4), 2519-2526.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from numpy.typing import ArrayLike

try:  # numba is a declared dependency; numpy twins keep the module usable without it
    import numba as _numba
except ImportError:  # pragma: no cover
    _numba = None

from firstmotion.kagan import sdr_from_vectors
from firstmotion.radiation import p_radiation
from workers.mechanism.amplitude import (
    MIN_AMP,
    QBADFRAC,
    QBADMIN,
    amplitude_allowances,
    amplitude_misfit_table,
    joint_accepted_mask,
    log_ratio_from_projections,
)
from workers.mechanism.grid import focal_grid
from workers.mechanism.search import (
    accepted_mask,
    accepted_set,
    misfit_allowances,
    misfit_table,
    misfit_table_numpy,
    misfit_table_torch,
    rays_from_angles,
)

QUALITY_LETTERS = ("A", "B", "C", "D")
QUALITY_PROBABILITY = (0.8, 0.6, 0.5, 0.0)  # >=
QUALITY_PLANE_UNCERTAINTY_DEG = (25.0, 35.0, 45.0, np.inf)  # <=, mean of fault and aux
QUALITY_MISFIT = (0.15, 0.20, 0.30, np.inf)  # <=
QUALITY_STDR = (0.5, 0.4, 0.3, 0.0)  # >=
QUALITY_MAX_AZIMUTHAL_GAP_DEG = 90.0
QUALITY_MAX_TAKEOFF_GAP_DEG = 60.0
QUALITY_MIN_POLARITIES = 8


@dataclass(frozen=True)
class Solution:
    """One (preferred or multiple) solution; angles in degrees (Aki & Richards)."""

    strike: float
    dip: float
    rake: float
    aux_strike: float
    aux_dip: float
    aux_rake: float
    probability: float
    fault_plane_uncertainty_deg: float
    aux_plane_uncertainty_deg: float
    misfit: float
    station_distribution_ratio: float
    quality: str


@dataclass(frozen=True)
class Mechanism:
    """Result of :func:`invert`: the preferred solution's fields plus the whole set.

    ``solutions`` holds every solution, preferred first (more than one when the accepted set
    splits: SKHASH's multiple solutions); ``n_accepted`` is the size of the accepted set.
    """

    strike: float
    dip: float
    rake: float
    aux_strike: float
    aux_dip: float
    aux_rake: float
    quality: str
    fault_plane_uncertainty_deg: float
    aux_plane_uncertainty_deg: float
    misfit: float
    probability: float
    station_distribution_ratio: float
    n_polarities: int
    n_accepted: int
    n_trials: int
    azimuthal_gap_deg: float
    takeoff_gap_deg: float
    solutions: tuple[Solution, ...] = field(default_factory=tuple)
    n_sp_ratios: int = 0
    sp_misfit_log10: float | None = None  # mean |observed - predicted| log10(S/P)
    amplitude_criterion_loosened: bool = False

    @property
    def multiple(self) -> bool:
        """True when the accepted set split into more than one solution."""
        return len(self.solutions) > 1

    def to_dict(self) -> dict:
        """JSON-ready dict (plain floats, solutions as a list of dicts)."""
        out = asdict(self)
        out["solutions"] = [asdict(s) for s in self.solutions]
        out["multiple"] = self.multiple
        return out


# --------------------------------------------------------------------------------------------
# rotation and averaging of double couples (HASH MECH_ROT / MECH_AVG / MECH_PROB)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a x b for (..., 3) arrays (np.cross without its axis bookkeeping)."""
    return np.stack(
        [
            a[..., 1] * b[..., 2] - a[..., 2] * b[..., 1],
            a[..., 2] * b[..., 0] - a[..., 0] * b[..., 2],
            a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0],
        ],
        axis=-1,
    )


def best_combination_numpy(
    normal_ref: np.ndarray,
    slip_ref: np.ndarray,
    normals: np.ndarray,
    slips: np.ndarray,
    nulls: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotation angles (deg) from a reference mechanism and the matching vector combination.

    Each mechanism (normal, slip) (k, 3) is equivalent to (-n, -s), (s, n) and (-s, -n); the one
    reached by the smallest rotation from the reference is returned with that angle (the Kagan
    angle), like HASH's ``mech_rot``. The angle of the rotation between two right-handed frames
    (n, s, n x s) is arccos((trace - 1) / 2). ``nulls`` = n x s may be passed precomputed.
    """
    b_ref = _cross(normal_ref, slip_ref)
    if nulls is None:
        nulls = _cross(normals, slips)
    nn = normals @ normal_ref
    ss = slips @ slip_ref
    ns = normals @ slip_ref
    sn = slips @ normal_ref
    bb = nulls @ b_ref
    # traces of the four combinations: (n,s), (-n,-s), (s,n), (-s,-n); b flips sign accordingly
    traces = np.empty((normals.shape[0], 4))
    traces[:, 0] = nn + ss + bb
    traces[:, 1] = bb - nn - ss
    traces[:, 2] = sn + ns - bb
    traces[:, 3] = -sn - ns - bb
    pick = np.argmax(traces, axis=1)
    best = traces[np.arange(traces.shape[0]), pick]
    angle = np.degrees(np.arccos(np.clip((best - 1.0) / 2.0, -1.0, 1.0)))
    swap = (pick >= 2)[:, None]
    flip = np.where((pick == 1) | (pick == 3), -1.0, 1.0)[:, None]
    n_out = np.where(swap, slips, normals) * flip
    s_out = np.where(swap, normals, slips) * flip
    return angle, n_out, s_out


def _best_combination_py(
    nref, sref, bref, normals, slips, nulls, with_angle=True
):  # pragma: no cover
    # with_angle=False skips the arccos (angle left 0) where only the vectors are used
    k = normals.shape[0]
    angle = np.zeros(k)
    n_out = np.empty((k, 3))
    s_out = np.empty((k, 3))
    for m in range(k):
        nn = normals[m, 0] * nref[0] + normals[m, 1] * nref[1] + normals[m, 2] * nref[2]
        ss = slips[m, 0] * sref[0] + slips[m, 1] * sref[1] + slips[m, 2] * sref[2]
        ns = normals[m, 0] * sref[0] + normals[m, 1] * sref[1] + normals[m, 2] * sref[2]
        sn = slips[m, 0] * nref[0] + slips[m, 1] * nref[1] + slips[m, 2] * nref[2]
        bb = nulls[m, 0] * bref[0] + nulls[m, 1] * bref[1] + nulls[m, 2] * bref[2]
        best = nn + ss + bb
        pick = 0
        tr = bb - nn - ss
        if tr > best:
            best, pick = tr, 1
        tr = sn + ns - bb
        if tr > best:
            best, pick = tr, 2
        tr = -sn - ns - bb
        if tr > best:
            best, pick = tr, 3
        if with_angle:
            c = (best - 1.0) / 2.0
            c = min(1.0, max(-1.0, c))
            angle[m] = np.degrees(np.arccos(c))
        f = -1.0 if (pick == 1 or pick == 3) else 1.0
        for d in range(3):
            if pick >= 2:
                n_out[m, d] = slips[m, d] * f
                s_out[m, d] = normals[m, d] * f
            else:
                n_out[m, d] = normals[m, d] * f
                s_out[m, d] = slips[m, d] * f
    return angle, n_out, s_out


_best_combination_kernel = (
    _numba.njit(cache=True, nogil=True)(_best_combination_py) if _numba is not None else None
)


def best_combination(
    normal_ref: np.ndarray,
    slip_ref: np.ndarray,
    normals: np.ndarray,
    slips: np.ndarray,
    nulls: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As :func:`best_combination_numpy` (same arithmetic, ties to the first combination),
    compiled with numba when available."""
    if _best_combination_kernel is None:  # pragma: no cover
        return best_combination_numpy(normal_ref, slip_ref, normals, slips, nulls)
    if nulls is None:
        nulls = _cross(normals, slips)
    return _best_combination_kernel(
        np.ascontiguousarray(normal_ref, dtype=float),
        np.ascontiguousarray(slip_ref, dtype=float),
        _cross(normal_ref, slip_ref),
        np.ascontiguousarray(normals, dtype=float),
        np.ascontiguousarray(slips, dtype=float),
        np.ascontiguousarray(nulls, dtype=float),
    )


def _rms_angles_rad(
    n_avg: np.ndarray,
    s_avg: np.ndarray,
    normals: np.ndarray,
    slips: np.ndarray,
    nulls: np.ndarray | None = None,
) -> tuple[float, float]:
    _, t1, t2 = best_combination(n_avg, s_avg, normals, slips, nulls)
    a11 = np.arccos(np.clip(t1 @ n_avg, -1.0, 1.0))
    a22 = np.arccos(np.clip(t2 @ s_avg, -1.0, 1.0))
    return float(np.sqrt(np.mean(a11**2))), float(np.sqrt(np.mean(a22**2)))


def average_mechanism_numpy(
    normals: np.ndarray, slips: np.ndarray, nulls: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Average of mechanisms (k, 3) (HASH ``mech_avg``): vectors matched to the first, summed,
    normalised, then made orthogonal again, turning the worse-constrained vector more."""
    if normals.shape[0] == 1:
        return normals[0].copy(), slips[0].copy()
    if nulls is None:
        nulls = _cross(normals, slips)
    _, t1, t2 = best_combination(normals[0], slips[0], normals[1:], slips[1:], nulls[1:])
    n_avg = normals[0] + t1.sum(axis=0)
    s_avg = slips[0] + t2.sum(axis=0)
    n_avg = n_avg / np.linalg.norm(n_avg)
    s_avg = s_avg / np.linalg.norm(s_avg)
    avang1, avang2 = _rms_angles_rad(n_avg, s_avg, normals, slips, nulls)
    if avang1 + avang2 >= 0.0001:
        fract1 = avang1 / (avang1 + avang2)
        for _ in range(100):
            misf = 90.0 - np.degrees(np.arccos(np.clip(n_avg @ s_avg, -1.0, 1.0)))
            if abs(misf) <= 0.01:
                break
            theta1 = np.deg2rad(misf * fract1)
            theta2 = np.deg2rad(misf * (1.0 - fract1))
            temp = n_avg
            n_avg = n_avg - s_avg * np.sin(theta1)
            s_avg = s_avg - temp * np.sin(theta2)
            n_avg = n_avg / np.linalg.norm(n_avg)
            s_avg = s_avg / np.linalg.norm(s_avg)
    return n_avg, s_avg


def _rms_rad_py(n_avg, s_avg, normals, slips, nulls):  # pragma: no cover - jitted
    b_ref = np.empty(3)
    b_ref[0] = n_avg[1] * s_avg[2] - n_avg[2] * s_avg[1]
    b_ref[1] = n_avg[2] * s_avg[0] - n_avg[0] * s_avg[2]
    b_ref[2] = n_avg[0] * s_avg[1] - n_avg[1] * s_avg[0]
    _, t1, t2 = _best_combination_kernel(n_avg, s_avg, b_ref, normals, slips, nulls, False)
    k = normals.shape[0]
    q1 = 0.0
    q2 = 0.0
    for m in range(k):
        d1 = t1[m, 0] * n_avg[0] + t1[m, 1] * n_avg[1] + t1[m, 2] * n_avg[2]
        d2 = t2[m, 0] * s_avg[0] + t2[m, 1] * s_avg[1] + t2[m, 2] * s_avg[2]
        a1 = np.arccos(min(1.0, max(-1.0, d1)))
        a2 = np.arccos(min(1.0, max(-1.0, d2)))
        q1 += a1 * a1
        q2 += a2 * a2
    return np.sqrt(q1 / k), np.sqrt(q2 / k)


def _average_py(normals, slips, nulls):  # pragma: no cover - jitted
    k = normals.shape[0]
    n_avg = normals[0].copy()
    s_avg = slips[0].copy()
    if k == 1:
        return n_avg, s_avg
    b_ref = nulls[0].copy()
    _, t1, t2 = _best_combination_kernel(
        n_avg, s_avg, b_ref, normals[1:], slips[1:], nulls[1:], False
    )
    for d in range(3):
        n_avg[d] += t1[:, d].sum()
        s_avg[d] += t2[:, d].sum()
    n_avg = n_avg / np.sqrt(np.sum(n_avg * n_avg))
    s_avg = s_avg / np.sqrt(np.sum(s_avg * s_avg))
    avang1, avang2 = _rms_rad_py(n_avg, s_avg, normals, slips, nulls)
    if avang1 + avang2 >= 0.0001:
        fract1 = avang1 / (avang1 + avang2)
        for _ in range(100):
            dot = n_avg[0] * s_avg[0] + n_avg[1] * s_avg[1] + n_avg[2] * s_avg[2]
            misf = 90.0 - np.degrees(np.arccos(min(1.0, max(-1.0, dot))))
            if abs(misf) <= 0.01:
                break
            theta1 = np.deg2rad(misf * fract1)
            theta2 = np.deg2rad(misf * (1.0 - fract1))
            temp = n_avg
            n_avg = n_avg - s_avg * np.sin(theta1)
            s_avg = s_avg - temp * np.sin(theta2)
            n_avg = n_avg / np.sqrt(np.sum(n_avg * n_avg))
            s_avg = s_avg / np.sqrt(np.sum(s_avg * s_avg))
    return n_avg, s_avg


if _numba is not None:
    _rms_rad_py = _numba.njit(cache=True, nogil=True)(_rms_rad_py)
    _average_kernel = _numba.njit(cache=True, nogil=True)(_average_py)
else:  # pragma: no cover
    _average_kernel = None


def average_mechanism(
    normals: np.ndarray, slips: np.ndarray, nulls: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """As :func:`average_mechanism_numpy`, compiled with numba when available."""
    if _average_kernel is None:  # pragma: no cover
        return average_mechanism_numpy(normals, slips, nulls)
    if nulls is None:
        nulls = _cross(normals, slips)
    return _average_kernel(
        np.ascontiguousarray(normals, dtype=float),
        np.ascontiguousarray(slips, dtype=float),
        np.ascontiguousarray(nulls, dtype=float),
    )


@dataclass(frozen=True)
class _Cluster:
    normal: np.ndarray
    slip: np.ndarray
    probability: float
    fault_rms_deg: float
    aux_rms_deg: float


def mechanism_probability_numpy(
    normals: np.ndarray, slips: np.ndarray, cangle_deg: float = 45.0, prob_max: float = 0.25
) -> list[_Cluster]:
    """Preferred and multiple solutions from the accepted set (SKHASH ``mech_probability``,
    non-iterative averaging), sorted by probability, highest first. The readable twin of
    :func:`mechanism_probability` (same steps in Python, compiled pieces inside)."""
    nf = normals.shape[0]
    if nf == 0:
        raise ValueError("no accepted mechanisms to average")
    if nf == 1:
        return [_Cluster(normals[0], slips[0], 1.0, 0.0, 0.0)]
    out: list[_Cluster] = []
    nulls = _cross(normals, slips)
    idx = np.arange(nf)
    for imult in range(5):
        n_avg, s_avg = average_mechanism(normals[idx], slips[idx], nulls[idx])
        rota, _, _ = best_combination(n_avg, s_avg, normals[idx], slips[idx], nulls[idx])
        near = idx[np.abs(rota) <= cangle_deg]
        if near.size == 0:
            break
        n_avg, s_avg = average_mechanism(normals[near], slips[near], nulls[near])
        rota, _, _ = best_combination(n_avg, s_avg, normals[idx], slips[idx], nulls[idx])
        keep = np.abs(rota) <= cangle_deg
        kept = idx[keep]
        if kept.size == 0:
            break
        n_avg, s_avg = average_mechanism(normals[kept], slips[kept], nulls[kept])
        unused = idx[~keep]
        prob = keep.sum() / nf
        if imult > 0 and prob < prob_max:
            break
        rms1, rms2 = _rms_angles_rad(n_avg, s_avg, normals, slips, nulls)
        out.append(_Cluster(n_avg, s_avg, float(prob), np.degrees(rms1), np.degrees(rms2)))
        if unused.size == 0:
            break
        idx = unused
    out.sort(key=lambda c: -c.probability)  # stable, like SKHASH's argsort on distinct probs
    return out


def _mechanism_probability_py(normals, slips, nulls, cangle_deg, prob_max, out):  # pragma: no cover
    # mechanism_probability_numpy's loop, compiled; out rows: normal (3), slip (3),
    # probability, fault rms (rad), aux rms (rad). Returns the number of solutions.
    nf = normals.shape[0]
    idx = np.arange(nf)
    n_out = 0
    for imult in range(5):
        n_avg, s_avg = _average_kernel(normals[idx], slips[idx], nulls[idx])
        rota, _, _ = _best_combination_kernel(
            n_avg, s_avg, _cross3(n_avg, s_avg), normals[idx], slips[idx], nulls[idx]
        )
        near = idx[np.abs(rota) <= cangle_deg]
        if near.size == 0:
            break
        n_avg, s_avg = _average_kernel(normals[near], slips[near], nulls[near])
        rota, _, _ = _best_combination_kernel(
            n_avg, s_avg, _cross3(n_avg, s_avg), normals[idx], slips[idx], nulls[idx]
        )
        keep = np.abs(rota) <= cangle_deg
        kept = idx[keep]
        if kept.size == 0:
            break
        n_avg, s_avg = _average_kernel(normals[kept], slips[kept], nulls[kept])
        unused = idx[~keep]
        prob = keep.sum() / nf
        if imult > 0 and prob < prob_max:
            break
        rms1, rms2 = _rms_rad_py(n_avg, s_avg, normals, slips, nulls)
        out[n_out, 0:3] = n_avg
        out[n_out, 3:6] = s_avg
        out[n_out, 6] = prob
        out[n_out, 7] = rms1
        out[n_out, 8] = rms2
        n_out += 1
        if unused.size == 0:
            break
        idx = unused
    return n_out


def _cross3_py(a, b):  # pragma: no cover - jitted
    out = np.empty(3)
    out[0] = a[1] * b[2] - a[2] * b[1]
    out[1] = a[2] * b[0] - a[0] * b[2]
    out[2] = a[0] * b[1] - a[1] * b[0]
    return out


if _numba is not None:
    _cross3 = _numba.njit(cache=True, nogil=True)(_cross3_py)
    _mechanism_probability_kernel = _numba.njit(cache=True, nogil=True)(_mechanism_probability_py)
else:  # pragma: no cover
    _mechanism_probability_kernel = None


def mechanism_probability(
    normals: np.ndarray, slips: np.ndarray, cangle_deg: float = 45.0, prob_max: float = 0.25
) -> list[_Cluster]:
    """As :func:`mechanism_probability_numpy`, the whole loop compiled (one call instead of
    ~30 from Python: most of its time was call overhead)."""
    nf = normals.shape[0]
    if nf == 0:
        raise ValueError("no accepted mechanisms to average")
    if nf == 1 or _mechanism_probability_kernel is None:
        return mechanism_probability_numpy(normals, slips, cangle_deg, prob_max)
    normals = np.ascontiguousarray(normals, dtype=float)
    slips = np.ascontiguousarray(slips, dtype=float)
    out = np.empty((5, 9))
    n = _mechanism_probability_kernel(
        normals, slips, _cross(normals, slips), float(cangle_deg), float(prob_max), out
    )
    clusters = [
        _Cluster(r[0:3].copy(), r[3:6].copy(), float(r[6]), np.degrees(r[7]), np.degrees(r[8]))
        for r in out[:n]
    ]
    clusters.sort(key=lambda c: -c.probability)
    return clusters


# --------------------------------------------------------------------------------------------
# misfit, station distribution ratio, gaps, quality


def misfit_and_stdr(
    strike_deg: float,
    dip_deg: float,
    rake_deg: float,
    azimuth_deg: np.ndarray,
    takeoff_deg: np.ndarray,
    weight: np.ndarray,
    *,
    sp_azimuth_deg: np.ndarray | None = None,
    sp_takeoff_deg: np.ndarray | None = None,
) -> tuple[float, float]:
    """(misfit fraction, station distribution ratio) of a mechanism (HASH ``get_misf``).

    Each polarity counts r = sqrt(|P radiation|) (near-nodal rays count little): misfit =
    sum(r over wrongly predicted) / sum(r); STDR = sum(r |w|) / sum(|w|). As in SKHASH's
    ``calculate_misfit``, the polarity weights enter the STDR but not the misfit fraction.
    Rays with an S/P ratio (``sp_azimuth_deg``/``sp_takeoff_deg``) enter the STDR too, each
    with weight 1: (sum(r |w|) + sum(r_sp)) / (sum(|w|) + n_sp), as SKHASH.
    """
    amp = p_radiation(strike_deg, dip_deg, rake_deg, azimuth_deg, takeoff_deg)
    r = np.sqrt(np.abs(amp))
    wrong = amp * weight < 0
    total = r.sum()
    mfrac = float(r[wrong].sum() / total) if total > 0 else 0.0
    num = float((r * np.abs(weight)).sum())
    den = float(np.abs(weight).sum())
    if sp_azimuth_deg is not None and len(sp_azimuth_deg):
        amp_sp = p_radiation(strike_deg, dip_deg, rake_deg, sp_azimuth_deg, sp_takeoff_deg)
        num += float(np.sqrt(np.abs(amp_sp)).sum())
        den += float(len(sp_azimuth_deg))
    stdr = num / den if den > 0 else 0.0
    return mfrac, stdr


def max_gaps_deg(azimuth_deg: np.ndarray, takeoff_deg: np.ndarray) -> tuple[float, float]:
    """Largest azimuthal and takeoff ("plungal") gaps, rays folded onto the upper hemisphere
    (SKHASH ``determine_max_gap``)."""
    az = np.asarray(azimuth_deg, dtype=float).copy()
    to = np.asarray(takeoff_deg, dtype=float).copy()
    down = to > 90
    az[down] -= 180
    to[down] = 180 - to[down]
    az[az < 0] += 360
    az = np.sort(az)
    to = np.sort(to)
    agap = max(np.max(np.diff(az), initial=0.0), az[0] + 360 - az[-1])
    pgap = max(np.max(np.diff(to), initial=0.0), to[0], 90 - to[-1])
    return float(agap), float(pgap)


def quality_letter(
    probability: float,
    fault_plane_uncertainty_deg: float,
    aux_plane_uncertainty_deg: float,
    misfit: float,
    station_distribution_ratio: float,
    azimuthal_gap_deg: float,
    takeoff_gap_deg: float,
    n_polarities: int,
    *,
    max_azimuthal_gap_deg: float = QUALITY_MAX_AZIMUTHAL_GAP_DEG,
    max_takeoff_gap_deg: float = QUALITY_MAX_TAKEOFF_GAP_DEG,
    min_polarities: int = QUALITY_MIN_POLARITIES,
) -> str:
    """Quality A-D: the worst of four graded criteria (SKHASH's table, HASH 2002 Table 3);
    D whenever a gap exceeds its maximum or there are fewer than ``min_polarities``."""

    def grade(value: float, limits: tuple[float, ...], at_least: bool) -> int:
        for i, lim in enumerate(limits):
            if (value >= lim) if at_least else (value <= lim):
                return i
        return len(limits) - 1

    mean_unc = 0.5 * (fault_plane_uncertainty_deg + aux_plane_uncertainty_deg)
    worst = max(
        grade(probability, QUALITY_PROBABILITY, True),
        grade(mean_unc, QUALITY_PLANE_UNCERTAINTY_DEG, False),
        grade(misfit, QUALITY_MISFIT, False),
        grade(station_distribution_ratio, QUALITY_STDR, True),
    )
    if (
        azimuthal_gap_deg > max_azimuthal_gap_deg
        or takeoff_gap_deg > max_takeoff_gap_deg
        or n_polarities < min_polarities
    ):
        worst = len(QUALITY_LETTERS) - 1
    return QUALITY_LETTERS[worst]


# --------------------------------------------------------------------------------------------
# trials and the public entry point


def draw_trials(
    azimuth_deg: np.ndarray,
    takeoff_deg: np.ndarray,
    n_trials: int,
    azimuth_unc_deg: ArrayLike,
    takeoff_unc_deg: ArrayLike,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Perturbed (n_picks, n_trials) azimuths and takeoffs; trial 0 unperturbed (SKHASH
    ``perturb_azimuth_takeoff``: Gaussian, azimuth wrapped to [0, 360], takeoff clipped to
    (0, 180])."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    rng = np.random.default_rng(seed)
    n = azimuth_deg.shape[0]
    ra = rng.normal(size=(n, n_trials))
    rt = rng.normal(size=(n, n_trials))
    ra[:, 0] = 0.0
    rt[:, 0] = 0.0
    az_unc = np.broadcast_to(np.asarray(azimuth_unc_deg, dtype=float), (n,))
    to_unc = np.broadcast_to(np.asarray(takeoff_unc_deg, dtype=float), (n,))
    az = np.mod(azimuth_deg[:, None] + az_unc[:, None] * ra, 360.0)
    to = takeoff_deg[:, None] + to_unc[:, None] * rt
    to = np.clip(to, 1e-6, 180.0)
    return az, to


def _as_1d(name: str, values: ArrayLike, n: int | None = None) -> np.ndarray:
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if n is not None and a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} values, expected {n}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def invert(
    azimuth_deg: ArrayLike,
    takeoff_deg: ArrayLike,
    polarity: ArrayLike,
    weight: ArrayLike | None = None,
    *,
    azimuth_trials: ArrayLike | None = None,
    takeoff_trials: ArrayLike | None = None,
    n_trials: int = 30,
    azimuth_unc_deg: ArrayLike = 5.0,
    takeoff_unc_deg: ArrayLike = 10.0,
    dang_deg: float = 5.0,
    badfrac: float = 0.1,
    badmin: float = 2.0,
    cangle_deg: float = 45.0,
    prob_max: float = 0.25,
    seed: int | None = 0,
    backend: str = "numba",
    threads: int = 1,
    max_azimuthal_gap_deg: float = QUALITY_MAX_AZIMUTHAL_GAP_DEG,
    max_takeoff_gap_deg: float = QUALITY_MAX_TAKEOFF_GAP_DEG,
    sp_log_ratio: ArrayLike | None = None,
    qbadfrac: float = QBADFRAC,
    qbadmin: float = QBADMIN,
    min_amp: float = MIN_AMP,
    sp_table: bool = False,
    sp_free_level: bool = False,
) -> Mechanism:
    """Focal mechanism from P first-motion polarities (and optionally S/P amplitude ratios)
    by the HASH grid search.

    Parameters
    ----------
    azimuth_deg, takeoff_deg : (n,) source-to-station azimuth (clockwise from north) and takeoff
        angle from vertical-UP (0 up, 90 horizontal, 180 down: SKHASH's convention), degrees.
    polarity : (n,) +1 up (compression), -1 down; 0 entries are ignored.
    weight : (n,) non-negative weights (default 1); e.g. a classifier's confidence (see
        :func:`weight_from_probabilities`). Zero-weight picks are ignored.
    azimuth_trials, takeoff_trials : (n, n_trials) perturbed copies for the uncertainty search
        (column 0 is normally the unperturbed ray). Without them, ``n_trials`` trials are drawn
        from ``azimuth_unc_deg`` / ``takeoff_unc_deg`` (scalars or (n,)) with ``seed``.
    dang_deg, badfrac, badmin, cangle_deg, prob_max : HASH/SKHASH parameters (defaults as in
        HASH example 1 and SKHASH).
    max_azimuthal_gap_deg, max_takeoff_gap_deg : beyond these gaps the quality is D (SKHASH's
        max_agap / max_pgap; SKHASH skips such events, here they are graded D).
    backend : "numba" (compiled kernel, default), "numpy" (dense reference) or "torch" (the
        dense algebra on a CUDA device when available, else CPU); identical answers.
    threads : threads for the "numba" grid search (the normals are split between them);
        identical answers. 1 (default) suits a worker process per core.
    sp_log_ratio : (n,) observed log10(S/P amplitude) per row, NaN where none (see
        :func:`workers.mechanism.amplitude.observed_log_ratio`). A row may carry a ratio with
        polarity 0. Without ratios (None or all NaN) the inversion is polarities only.
    qbadfrac, qbadmin, min_amp : the amplitude misfit allowances and nodal floor (SKHASH's
        defaults 0.3, 2.0, 0.0005; :mod:`workers.mechanism.amplitude`).
    sp_table : predict ratios through SKHASH's 1-degree lookup tables instead of exactly (to
        reproduce SKHASH in comparisons).
    sp_free_level : compare the ratios about the level that fits them best (the median of
        observed - predicted) instead of about zero: a constant offset of the event's ratios
        changes nothing (:mod:`workers.mechanism.amplitude`; not in HASH or SKHASH).

    Returns
    -------
    Mechanism (frozen): strike/dip/rake and the auxiliary plane, quality, uncertainties,
    misfit, probability, station distribution ratio, every solution.
    """
    az = _as_1d("azimuth_deg", azimuth_deg)
    n = az.shape[0]
    to = _as_1d("takeoff_deg", takeoff_deg, n)
    pol = _as_1d("polarity", polarity, n)
    w = np.ones(n) if weight is None else _as_1d("weight", weight, n)
    if np.any(w < 0):
        raise ValueError("weight must be non-negative (the sign lives in polarity)")
    if not np.all(np.isin(pol, (-1.0, 0.0, 1.0))):
        raise ValueError("polarity must be +1 (up), -1 (down) or 0 (unknown)")
    if np.any((to < 0) | (to > 180)):
        raise ValueError("takeoff_deg must be within [0, 180] (from vertical-up)")
    if backend not in ("numba", "numpy", "torch"):
        raise ValueError(f"backend must be 'numba', 'numpy' or 'torch', got {backend!r}")

    if (azimuth_trials is None) != (takeoff_trials is None):
        raise ValueError("give both azimuth_trials and takeoff_trials, or neither")
    if azimuth_trials is not None:
        az_tr = np.asarray(azimuth_trials, dtype=float)
        to_tr = np.asarray(takeoff_trials, dtype=float)
        if az_tr.ndim != 2 or az_tr.shape[0] != n or az_tr.shape != to_tr.shape:
            raise ValueError(
                f"azimuth_trials/takeoff_trials must both be (n_picks={n}, n_trials), got "
                f"{az_tr.shape} and {to_tr.shape}"
            )
    else:
        az_tr, to_tr = draw_trials(az, to, n_trials, azimuth_unc_deg, takeoff_unc_deg, seed)

    use = (pol != 0) & (w > 0)
    n_pol = int(use.sum())
    if n_pol == 0:
        raise ValueError("no usable polarities (all unknown or zero weight)")
    if sp_log_ratio is None:
        has_sp = np.zeros(n, dtype=bool)
        sp = np.full(n, np.nan)
    else:
        sp = np.asarray(sp_log_ratio, dtype=float)
        if sp.shape != (n,):
            raise ValueError(f"sp_log_ratio has shape {sp.shape}, expected ({n},)")
        if np.any(np.isinf(sp)):
            raise ValueError("sp_log_ratio contains infinite values (NaN marks no ratio)")
        has_sp = np.isfinite(sp)
    n_sp = int(has_sp.sum())
    sp_az, sp_to, sp_obs = az[has_sp], to[has_sp], sp[has_sp]
    sp_az_tr, sp_to_tr = az_tr[has_sp], to_tr[has_sp]
    # the gaps span every ray used, polarity or ratio (SKHASH: every row of the event)
    gap_rows = use | has_sp
    agap, pgap = max_gaps_deg(az[gap_rows], to[gap_rows])
    az, to, signed = az[use], to[use], (pol * w)[use]
    az_tr, to_tr = az_tr[use], to_tr[use]

    grid = focal_grid(dang_deg)
    rays = rays_from_angles(az_tr, to_tr)
    nextra, ntotal = misfit_allowances(float(np.abs(signed).sum()), badfrac, badmin)
    loosened = False
    if n_sp:
        if backend == "torch":
            fit = misfit_table_torch(rays, signed, grid)
        elif backend == "numpy":
            fit = misfit_table_numpy(rays, signed, grid)
        else:
            fit = misfit_table(rays, signed, grid)
        afit = amplitude_misfit_table(
            rays_from_angles(sp_az_tr, sp_to_tr),
            sp_obs,
            grid,
            min_amp=min_amp,
            table=sp_table,
            free_level=sp_free_level,
        )
        qextra, qtotal = amplitude_allowances(n_sp, qbadfrac, qbadmin)
        mask, loosened = joint_accepted_mask(fit, afit, nextra, ntotal, qextra, qtotal)
        accepted = np.flatnonzero(mask)
    elif backend == "numba":
        accepted, _ = accepted_set(rays, signed, grid, nextra, ntotal, threads=threads)
    else:
        if backend == "torch":
            fit = misfit_table_torch(rays, signed, grid)
        else:
            fit = misfit_table_numpy(rays, signed, grid)
        accepted = np.flatnonzero(accepted_mask(fit, nextra, ntotal))
    clusters = mechanism_probability(
        grid.normal[accepted], grid.slip[accepted], cangle_deg, prob_max
    )

    solutions = []
    sp_misfits = []
    for c in clusters:
        strike, dip, rake = (float(v) for v in sdr_from_vectors(c.normal, c.slip))
        aux = [float(v) for v in sdr_from_vectors(c.slip, c.normal)]
        mfrac, stdr = misfit_and_stdr(
            strike, dip, rake, az, to, signed, sp_azimuth_deg=sp_az, sp_takeoff_deg=sp_to
        )
        if n_sp:
            sp_pred = _predicted_log_ratio_vectors(c.normal, c.slip, sp_az, sp_to, min_amp)
            r = sp_obs - sp_pred
            sp_misfits.append(float(np.mean(np.abs(r - (np.median(r) if sp_free_level else 0)))))
        q = quality_letter(
            c.probability,
            c.fault_rms_deg,
            c.aux_rms_deg,
            mfrac,
            stdr,
            agap,
            pgap,
            n_pol,
            max_azimuthal_gap_deg=max_azimuthal_gap_deg,
            max_takeoff_gap_deg=max_takeoff_gap_deg,
        )
        solutions.append(
            Solution(
                strike=strike,
                dip=dip,
                rake=rake,
                aux_strike=aux[0],
                aux_dip=aux[1],
                aux_rake=aux[2],
                probability=c.probability,
                fault_plane_uncertainty_deg=float(c.fault_rms_deg),
                aux_plane_uncertainty_deg=float(c.aux_rms_deg),
                misfit=mfrac,
                station_distribution_ratio=stdr,
                quality=q,
            )
        )
    best = solutions[0]
    return Mechanism(
        strike=best.strike,
        dip=best.dip,
        rake=best.rake,
        aux_strike=best.aux_strike,
        aux_dip=best.aux_dip,
        aux_rake=best.aux_rake,
        quality=best.quality,
        fault_plane_uncertainty_deg=best.fault_plane_uncertainty_deg,
        aux_plane_uncertainty_deg=best.aux_plane_uncertainty_deg,
        misfit=best.misfit,
        probability=best.probability,
        station_distribution_ratio=best.station_distribution_ratio,
        n_polarities=n_pol,
        n_accepted=int(accepted.size),
        n_trials=int(az_tr.shape[1]),
        azimuthal_gap_deg=agap,
        takeoff_gap_deg=pgap,
        solutions=tuple(solutions),
        n_sp_ratios=n_sp,
        sp_misfit_log10=sp_misfits[0] if sp_misfits else None,
        amplitude_criterion_loosened=loosened,
    )


def _predicted_log_ratio_vectors(
    normal: np.ndarray, slip: np.ndarray, azimuth_deg, takeoff_deg, min_amp: float
) -> np.ndarray:
    """Predicted log10(4.9 S/P) on rays for a mechanism given by its vectors."""
    rays = rays_from_angles(azimuth_deg, takeoff_deg).T  # (n, 3)
    return log_ratio_from_projections(rays @ normal, rays @ slip, min_amp)


def weight_from_probabilities(probabilities: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(polarity, weight) from classifier probabilities (n, 3) [up, down, unknown].

    polarity = +1 if p_up > p_down else -1, weight = |p_up - p_down|: a pick the classifier
    calls up with 0.99 (down 0.01) weighs 0.98, one at 0.6 / 0.4 weighs 0.2, and a coin flip
    weighs 0. Picks whose most likely class is "unknown" get polarity 0 (excluded).
    """
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"probabilities must be (n, 3) [up, down, unknown], got {p.shape}")
    diff = p[:, 0] - p[:, 1]
    polarity = np.where(diff >= 0, 1, -1).astype(np.int8)
    polarity[np.argmax(p, axis=1) == 2] = 0
    return polarity, np.abs(diff)


# The reader's wrong-sign rate measured on real analyst first motions (2 of 110 at the
# analysts' picks, 13 of 400 at the pipeline's own picks of the swarm proxy): no read is
# trusted beyond it, however sure the classifier says it is (docs/mechanism.md).
READ_ERROR_FLOOR = 0.02
MISFIT_FLOOR_CONFIDENCE = 0.95


def read_error_probability(probabilities: ArrayLike, floor: float = READ_ERROR_FLOOR) -> np.ndarray:
    """Each read's chance of having the wrong sign, from classifier probabilities (n, 3)
    [up, down, unknown]: the opposite sign's share of the signed probability,
    min(p_up, p_down) / (p_up + p_down) (0.5 where both are 0), at least ``floor``."""
    p = np.asarray(probabilities, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3:
        raise ValueError(f"probabilities must be (n, 3) [up, down, unknown], got {p.shape}")
    if not 0.0 <= floor <= 0.5:
        raise ValueError(f"floor must be within [0, 0.5], got {floor}")
    signed = p[:, 0] + p[:, 1]
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.where(signed > 0, np.minimum(p[:, 0], p[:, 1]) / signed, 0.5)
    return np.maximum(q, floor)


def misfit_floor_from_reads(p_wrong: ArrayLike, confidence: float = MISFIT_FLOOR_CONFIDENCE) -> int:
    """The misfit floor (``badmin``) the reads themselves justify: the fewest wrong
    polarities k such that more than k of them are wrong with probability at most
    1 - ``confidence``, the reads independent, read i wrong with ``p_wrong[i]`` (the
    Poisson-binomial distribution, computed exactly).

    HASH's fixed floor of 2 assumes hand-read polarities; twelve reads each 2% likely wrong
    give 1 (two or more wrong: 2.3%), twenty give 2, and uncertain reads more.
    """
    q = np.asarray(p_wrong, dtype=float).ravel()
    if np.any((q < 0) | (q > 1)) or not np.all(np.isfinite(q)):
        raise ValueError("p_wrong must be probabilities in [0, 1]")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {confidence}")
    dist = np.ones(1)
    for qi in q:  # P(K = k) after each read
        dist = np.concatenate([dist * (1.0 - qi), [0.0]]) + np.concatenate([[0.0], dist * qi])
    tail = 1.0 - np.cumsum(dist)  # P(K > k)
    return int(np.argmax(tail <= 1.0 - confidence + 1e-12))
