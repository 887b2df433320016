"""The HASH grid search: weighted P-polarity misfit of every grid mechanism in every trial.

For a ray p (unit vector, N E D) and a mechanism with fault normal n and slip s, the P first
motion is compressional (up) when (p.n)(p.s) > 0 (radiation 2 (p.n)(p.s); Aki & Richards
eq. 4.84); HASH/SKHASH predict "down" exactly when one of p.n, p.s is negative. The misfit of a
mechanism in a trial is the summed |weight| of the polarities it predicts wrongly; a mechanism is
acceptable when, in at least one trial, its misfit <= max(min_misfit_of_trial + nextra, ntotal)
(Hardebeck & Shearer 2002; SKHASH ``focal_gridsearch``).

Implementations that must agree exactly (tests cross-check them):

* :func:`misfit_table_numpy`: the obviously-right dense version (matrix products, signs,
  weighted sums), chunked over mechanisms so memory stays bounded.
* :func:`misfit_table_direct`: a numba kernel that walks the grid normal by normal. The 36
  slips of a normal are cos(zeta) b1 + sin(zeta) b2, so p.s = cos(zeta) (p.b1) + sin(zeta)
  (p.b2): three dot products per (normal, ray) then two multiply-adds per slip.
* :func:`misfit_table` / :func:`accepted_set` (used by ``invert``): the crossing kernel. Along
  a normal's slips p.s = R cos(zeta - phi) changes sign once in 180 degrees, so the slips that
  predict a polarity wrongly are a prefix or a suffix of them: per (normal, pick, trial) it
  finds the boundary slip from an approximate arctan (SIMD over trials) and adds the weight to
  a difference table (O(1) instead of O(36)); where the sign change lies within 1e-4 rad of a
  grid slip, the slips' signs are evaluated with the direct kernel's expression, so every sign
  is the direct kernel's, bit for bit (ties included, tested). :func:`accepted_set` keeps only
  the (mechanism, trial) pairs under a running acceptance threshold instead of the table.

:func:`pruned_misfit_table` adds an exact branch and bound over grid normals (it prunes only
when the trials' rays are tightly clustered); :func:`misfit_table_torch` is the dense algebra
in torch for a GPU.

Ties: a ray lying exactly on a grid nodal plane (|p.s| ~ 1e-17, e.g. integer-degree angles on
the 5-degree grid) is decided by rounding, which differs between BLAS and the compiled kernels
(and between SKHASH runs on different CPUs): 3,122 of HASH example 1's 22 million table
entries, with no effect on any accepted set or answer there. Tests compare the numpy twin on
random rays, where no such ties occur.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np

from workers.mechanism.grid import FocalGrid

try:  # numba is a declared dependency; keep the module importable without it (numpy path)
    import numba as _numba
except ImportError:  # pragma: no cover
    _numba = None


def rays_from_angles(azimuth_deg: np.ndarray, takeoff_deg: np.ndarray) -> np.ndarray:
    """Unit ray vectors (3, ...) in (N, E, D); takeoff from vertical-UP (0 up, 180 down)."""
    az = np.deg2rad(np.asarray(azimuth_deg, dtype=float))
    to = np.deg2rad(np.asarray(takeoff_deg, dtype=float))
    return np.stack([np.sin(to) * np.cos(az), np.sin(to) * np.sin(az), -np.cos(to)])


def misfit_table_numpy(
    rays: np.ndarray,
    weight: np.ndarray,
    grid: FocalGrid,
    *,
    chunk: int = 2048,
) -> np.ndarray:
    """Weighted misfit (n_trials, n_mech): the dense reference (SKHASH ``focal_gridsearch``).

    ``rays`` (3, n_pol, n_trials); ``weight`` (n_pol,) signed: polarity x weight (+ up).
    """
    _, n_pol, n_trials = rays.shape
    obs_neg = weight < 0
    w = np.abs(weight)
    flat = rays.reshape(3, -1).T  # (n_pol * n_trials, 3)
    fit = np.empty((n_trials, grid.n_mech))
    for lo in range(0, grid.n_mech, chunk):
        hi = min(lo + chunk, grid.n_mech)
        p_b1 = flat @ grid.slip[lo:hi].T
        p_b3 = flat @ grid.normal[lo:hi].T
        pred_neg = (p_b1 < 0) != (p_b3 < 0)
        miss = (pred_neg.reshape(n_pol, n_trials, -1) != obs_neg[:, None, None]) * w[:, None, None]
        fit[:, lo:hi] = miss.sum(axis=0)
    return fit


def misfit_table_torch(
    rays: np.ndarray,
    weight: np.ndarray,
    grid: FocalGrid,
    *,
    device: str | None = None,
    max_elements: int = 1 << 25,
) -> np.ndarray:
    """:func:`misfit_table_numpy`'s algebra in torch (float64), for a GPU when there is one.

    Chunked over mechanisms so at most ``max_elements`` (rays x trials x mechanisms) signs
    exist at once. ``device``: "cuda", "cpu", ... (default: CUDA if available).
    """
    import torch

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    _, n_pol, n_trials = rays.shape
    flat = torch.as_tensor(np.ascontiguousarray(rays.reshape(3, -1).T), device=dev)
    normal = torch.as_tensor(np.array(grid.normal), device=dev)
    slip = torch.as_tensor(np.array(grid.slip), device=dev)
    w = torch.as_tensor(np.abs(weight), dtype=torch.float64, device=dev)[:, None, None]
    obs_neg = torch.as_tensor(weight < 0, device=dev)[:, None, None]
    chunk = max(1, min(grid.n_mech, max_elements // max(1, n_pol * n_trials)))
    fit = torch.empty((n_trials, grid.n_mech), dtype=torch.float64, device=dev)
    for lo in range(0, grid.n_mech, chunk):
        hi = min(lo + chunk, grid.n_mech)
        pred_neg = (flat @ slip[lo:hi].T < 0) != (flat @ normal[lo:hi].T < 0)
        miss = pred_neg.view(n_pol, n_trials, hi - lo) != obs_neg
        fit[:, lo:hi] = (miss * w).sum(dim=0)
    return fit.cpu().numpy()


def _fit_kernel_py(px, py, pz, w, obs_neg, nrm, b1, b2, cz, sz, sel, fit):  # pragma: no cover
    # Fills fit[:, mechanisms of the normals in sel]. Loop order (normal, pick, trial, slip): the
    # slip loop is innermost and contiguous so it vectorises; acc (trials x slips) stays in L1.
    # No fastmath: signs of exact zeros (rays straight up) must follow SKHASH's "< 0" rule.
    n_pol, nt = px.shape
    n_slip = cz.shape[0]
    acc = np.zeros((nt, n_slip))
    for jj in range(sel.shape[0]):
        j = sel[jj]
        n0, n1, n2 = nrm[j, 0], nrm[j, 1], nrm[j, 2]
        u0, u1, u2 = b1[j, 0], b1[j, 1], b1[j, 2]
        v0, v1, v2 = b2[j, 0], b2[j, 1], b2[j, 2]
        acc[:, :] = 0.0
        for i in range(n_pol):
            wi = w[i]
            oi = obs_neg[i]
            for t in range(nt):
                x = px[i, t]
                y = py[i, t]
                z = pz[i, t]
                a = x * n0 + y * n1 + z * n2
                c1 = x * u0 + y * u1 + z * u2
                c2 = x * v0 + y * v1 + z * v2
                # wrong  <=>  predicted-down != observed-down  <=>  (p.s < 0) != flip
                flip = (a < 0.0) != oi
                for k in range(n_slip):
                    c = cz[k] * c1 + sz[k] * c2
                    acc[t, k] += wi if (c < 0.0) != flip else 0.0
        base = j * n_slip
        for t in range(nt):
            for k in range(n_slip):
                fit[t, base + k] = acc[t, k]


_DEFAULT_N_SLIP = 36  # the 5-degree grid; a compile-time constant lets LLVM keep acc in registers


def _fit_kernel_36_py(px, py, pz, w, obs_neg, nrm, b1, b2, cz, sz, sel, fit):  # pragma: no cover
    # Same arithmetic as _fit_kernel_py, loop order (normal, trial, pick, slip) with the 36 slip
    # accumulators of one (normal, trial) in one reused buffer (no allocation in the loop) and
    # the rays transposed so the pick loop reads contiguously.
    n_pol, nt = px.shape
    pxt = px.T.copy()
    pyt = py.T.copy()
    pzt = pz.T.copy()
    acc = np.empty(_DEFAULT_N_SLIP)
    for jj in range(sel.shape[0]):
        j = sel[jj]
        n0, n1, n2 = nrm[j, 0], nrm[j, 1], nrm[j, 2]
        u0, u1, u2 = b1[j, 0], b1[j, 1], b1[j, 2]
        v0, v1, v2 = b2[j, 0], b2[j, 1], b2[j, 2]
        base = j * _DEFAULT_N_SLIP
        for t in range(nt):
            for k in range(_DEFAULT_N_SLIP):
                acc[k] = 0.0
            for i in range(n_pol):
                x = pxt[t, i]
                y = pyt[t, i]
                z = pzt[t, i]
                a = x * n0 + y * n1 + z * n2
                c1 = x * u0 + y * u1 + z * u2
                c2 = x * v0 + y * v1 + z * v2
                flip = (a < 0.0) != obs_neg[i]
                wi = w[i]
                for k in range(_DEFAULT_N_SLIP):
                    c = cz[k] * c1 + sz[k] * c2
                    acc[k] += wi if (c < 0.0) != flip else 0.0
            for k in range(_DEFAULT_N_SLIP):
                fit[t, base + k] = acc[k]


def _lower_bound_kernel_py(
    p0x, p0y, p0z, margin, w, obs_neg, nrm, b1, b2, cz, sz
):  # pragma: no cover
    # lb[m] = summed weight of the picks that mechanism m gets wrong in EVERY trial: the trial
    # rays of pick i all lie within delta_i of p0_i, so when |p0.n| > sin(delta_i) and
    # |p0.s| > sin(delta_i) (margin[i]) neither sign can change between trials.
    n_pol = p0x.shape[0]
    n_norm = nrm.shape[0]
    n_slip = cz.shape[0]
    lb = np.zeros(n_norm * n_slip)
    for j in range(n_norm):
        n0, n1, n2 = nrm[j, 0], nrm[j, 1], nrm[j, 2]
        u0, u1, u2 = b1[j, 0], b1[j, 1], b1[j, 2]
        v0, v1, v2 = b2[j, 0], b2[j, 1], b2[j, 2]
        base = j * n_slip
        for i in range(n_pol):
            x = p0x[i]
            y = p0y[i]
            z = p0z[i]
            a = x * n0 + y * n1 + z * n2
            if abs(a) <= margin[i]:
                continue
            c1 = x * u0 + y * u1 + z * u2
            c2 = x * v0 + y * v1 + z * v2
            flip = (a < 0.0) != obs_neg[i]
            mi = margin[i]
            wi = w[i]
            for k in range(n_slip):
                c = cz[k] * c1 + sz[k] * c2
                if abs(c) > mi and (c < 0.0) != flip:
                    lb[base + k] += wi
    return lb


# --------------------------------------------------------------------------------------------
# the crossing kernel: O(1) work per (normal, pick, trial) instead of O(n_slip)

# arctan(r) ~ r P(r^2) on [0, 1], P of degree 5 fitted (iteratively reweighted least squares
# towards minimax) to |error| <= 1.7e-6 rad (tested). It only locates the slip where the sign
# changes: wherever that location is within CROSSING_TOL_RAD of a grid slip, the slips' signs
# are evaluated with the reference expression, so the approximation never decides a sign.
_ATAN_P = (
    0.9999772196757626,
    -0.33262283271953275,
    0.1935403832876857,
    -0.11642646984369907,
    0.052647319076171276,
    -0.011719118338905543,
)
ATAN_MAX_ERROR_RAD = 1.7e-6
CROSSING_TOL_RAD = 1e-4  # 60x the arctan error; 0.2% of rays take the exact path at 5 deg
LANES = 8  # trials are padded to a multiple of this so the trial loops are all SIMD
_TINY = 1e-200  # |(p.b1, p.b2)| below this: the ray is along the normal, scan every slip


def _atan_unit_py(r):  # pragma: no cover - jitted
    """arctan(r) for r in [0, 1], |error| <= ATAN_MAX_ERROR_RAD (Estrin's scheme: a short
    dependency chain, which is what the SIMD loop is bound by)."""
    x = r * r
    x2 = x * x
    p01 = _ATAN_P[0] + _ATAN_P[1] * x
    p23 = _ATAN_P[2] + _ATAN_P[3] * x
    p45 = _ATAN_P[4] + _ATAN_P[5] * x
    return r * (p01 + x2 * (p23 + x2 * p45))


def _crossing_slips_py(c1, c2, inv_dzeta, period_slips):  # pragma: no cover - jitted
    """Where c1 cos(zeta) + c2 sin(zeta) changes sign, zeta* = atan2(-c1, c2) mod pi, in slip
    steps (zeta* / dzeta, in [0, period_slips]) within ATAN_MAX_ERROR_RAD; and max(|c1|, |c2|)."""
    ay = abs(c1)
    xx = abs(c2)
    steep = ay > xx
    num = xx if steep else ay
    den = ay if steep else xx
    ang = _atan_unit(num / max(den, 1e-300))
    ang = 0.5 * np.pi - ang if steep else ang  # atan2(|c1|, |c2|), in [0, pi/2]
    u = ang * inv_dzeta
    # atan2(-c1, c2) < 0 (so zeta* = pi - ang) when -c1 and c2 have opposite signs
    return (period_slips - u if (c1 > 0.0) == (c2 >= 0.0) else u), den


def _exact_boundary_py(c1, c2, s0, cz, sz):  # pragma: no cover - jitted
    """First slip whose sign differs from slip 0's (n_slip if none), every sign computed as the
    36-slip kernel computes it: (cos(zeta_k) c1 + sin(zeta_k) c2) < 0. The signs change at
    most once along the slips (they span < 180 degrees and at most one slip can be within
    rounding of the nodal plane), so the first change is the boundary."""
    n_slip = cz.shape[0]
    for m in range(1, n_slip):
        if ((cz[m] * c1 + sz[m] * c2) < 0.0) != s0:
            return m
    return n_slip


def _crossing_block_py(
    j, px, py, pz, w, obs_neg, nrm, b1, b2, cz, sz, inv_dzeta, period_slips, tol, idx, sw, d, d0
):  # pragma: no cover - jitted
    # Misfit of the n_slip mechanisms of normal j in every (padded) trial t as a difference
    # table: on return, misfit(t, k) = d0[t] + sum_{m <= k} d[m * ntp + t].
    #
    # For a ray p, p.s(zeta) = c1 cos(zeta) + c2 sin(zeta) (c1 = p.base1, c2 = p.base2) changes
    # sign once per 180 degrees, at zeta* = atan2(-c1, c2) mod 180. The grid's slips zeta_k =
    # k dzeta (k < n_slip) span less than 180 degrees, so the slips predicting the wrong
    # polarity are a prefix [0, b) or a suffix [b, n_slip) of them, b = first slip past zeta*:
    # the pick adds its weight to d0 and -weight at b (prefix) or +weight at b (suffix).
    # Pass 1, SIMD over trials, finds b from an approximate arctan and flags (idx < 0) the
    # rays whose zeta* lies within tol slip steps of a grid slip or of 180 degrees (slip 0's
    # image); pass 2 scatters, finding the flagged rays' boundary by evaluating their slips.
    n_pol, ntp = px.shape
    n_slip = cz.shape[0]
    n0, n1, n2 = nrm[j, 0], nrm[j, 1], nrm[j, 2]
    u0, u1, u2 = b1[j, 0], b1[j, 1], b1[j, 2]
    v0, v1, v2 = b2[j, 0], b2[j, 1], b2[j, 2]
    d0[:] = 0.0
    d[:] = 0.0
    for i in range(n_pol):
        wi = w[i]
        oi = obs_neg[i]
        for t in range(ntp):
            x = px[i, t]
            y = py[i, t]
            z = pz[i, t]
            a = x * n0 + y * n1 + z * n2
            c1 = x * u0 + y * u1 + z * u2
            c2 = x * v0 + y * v1 + z * v2
            u, den = _crossing_slips(c1, c2, inv_dzeta, period_slips)
            fl = np.floor(u)
            frac = u - fl
            sure = (frac > tol) & (frac < 1.0 - tol) & (u < period_slips - tol) & (den > _TINY)
            b = min(int(fl) + 1, n_slip)
            # slip 0's sign: cos(0) c1 + sin(0) c2 = 1.0 c1 + (+-0.0) < 0 <=> c1 < 0, exactly
            s0 = c1 < 0.0
            prefix = s0 != ((a < 0.0) != oi)  # wrong <=> (p.s < 0) != ((p.n < 0) != obs_neg)
            idx[i, t] = b * ntp + t if sure else -1
            sw[i, t] = -wi if prefix else wi
            d0[t] += wi if prefix else 0.0
    for i in range(n_pol):
        for t in range(ntp):
            q = idx[i, t]
            if q < 0:
                x = px[i, t]
                y = py[i, t]
                z = pz[i, t]
                c1 = x * u0 + y * u1 + z * u2
                c2 = x * v0 + y * v1 + z * v2
                q = _exact_boundary(c1, c2, c1 < 0.0, cz, sz) * ntp + t
            d[q] += sw[i, t]


def _crossing_table_py(
    px, py, pz, w, obs_neg, nrm, b1, b2, cz, sz, inv_dzeta, period_slips, tol, sel, fit
):  # pragma: no cover - jitted
    # fit[t, mechanisms of the normals in sel] for the first fit.shape[0] trials
    n_pol, ntp = px.shape
    n_slip = cz.shape[0]
    nt = fit.shape[0]
    idx = np.empty((n_pol, ntp), np.int32)
    sw = np.empty((n_pol, ntp))
    d = np.empty((n_slip + 1) * ntp)
    d0 = np.empty(ntp)
    for jj in range(sel.shape[0]):
        j = sel[jj]
        _crossing_block(
            j, px, py, pz, w, obs_neg, nrm, b1, b2, cz, sz, inv_dzeta, period_slips, tol,
            idx, sw, d, d0,
        )  # fmt: skip
        for m in range(n_slip):
            for t in range(ntp):
                d0[t] += d[m * ntp + t]
            for t in range(nt):
                fit[t, j * n_slip + m] = d0[t]


def _crossing_accept_py(
    px, py, pz, w, obs_neg, nrm, b1, b2, cz, sz, inv_dzeta, period_slips, tol, order, nt,
    nextra, ntotal, slack, cand_m, cand_t, cand_f,
):  # pragma: no cover - jitted  # fmt: skip
    # Candidates (mechanism, trial, misfit) with misfit <= the running threshold
    # max(running trial minimum + nextra, ntotal) + slack, written to cand_* up to their
    # capacity; returns their number (which may exceed the capacity: then the caller reruns
    # with enough) and the trial minima. The running minimum only decreases, so every
    # (mechanism, trial) that passes the final threshold is a candidate; the caller applies
    # the final threshold. (Growing arrays inside the loop instead costs numba ~40% here.)
    n_pol, ntp = px.shape
    n_slip = cz.shape[0]
    idx = np.empty((n_pol, ntp), np.int32)
    sw = np.empty((n_pol, ntp))
    d = np.empty((n_slip + 1) * ntp)
    run = np.empty(ntp)
    lo = np.full(ntp, np.inf)
    thr = np.full(ntp, np.inf)
    thr[nt:] = -np.inf  # padding trials are never candidates
    n_cand = 0
    for jj in range(order.shape[0]):
        j = order[jj]
        _crossing_block(
            j, px, py, pz, w, obs_neg, nrm, b1, b2, cz, sz, inv_dzeta, period_slips, tol,
            idx, sw, d, run,
        )  # fmt: skip
        for m in range(n_slip):
            hits = 0  # an integer count vectorises (a boolean or does not)
            for t in range(ntp):
                f = run[t] + d[m * ntp + t]
                run[t] = f
                hits += 1 if f <= thr[t] else 0
            if hits == 0:
                continue
            for t in range(nt):
                f = run[t]
                if f <= thr[t]:
                    if n_cand < cand_f.shape[0]:  # past capacity: only count (caller reruns)
                        cand_m[n_cand] = j * n_slip + m
                        cand_t[n_cand] = t
                        cand_f[n_cand] = f
                    n_cand += 1
                    if f < lo[t]:
                        lo[t] = f
                        thr[t] = max(f + nextra, ntotal) + slack
    return n_cand, lo[:nt]


if _numba is not None:
    _fit_kernel = _numba.njit(cache=True, nogil=True)(_fit_kernel_py)
    _fit_kernel_36 = _numba.njit(cache=True, nogil=True)(_fit_kernel_36_py)
    _lower_bound_kernel = _numba.njit(cache=True, nogil=True)(_lower_bound_kernel_py)
    # error_model="numpy": no ZeroDivisionError checks, so the trial loops vectorise
    _jit = _numba.njit(cache=True, nogil=True, error_model="numpy")
    _atan_unit = _jit(_atan_unit_py)
    _crossing_slips = _jit(_crossing_slips_py)
    _exact_boundary = _jit(_exact_boundary_py)
    _crossing_block = _jit(_crossing_block_py)
    _crossing_table = _jit(_crossing_table_py)
    _crossing_accept = _jit(_crossing_accept_py)
else:  # pragma: no cover
    _fit_kernel = _fit_kernel_36 = _lower_bound_kernel = None
    _crossing_table = _crossing_accept = None


def _kernel_args(rays: np.ndarray, weight: np.ndarray, grid: FocalGrid) -> tuple:
    px, py, pz = (np.ascontiguousarray(r) for r in rays)
    return (
        px,
        py,
        pz,
        np.ascontiguousarray(np.abs(weight), dtype=float),
        np.ascontiguousarray(weight < 0),
        np.ascontiguousarray(grid.normal_of_normal),
        np.ascontiguousarray(grid.base1),
        np.ascontiguousarray(grid.base2),
        np.cos(grid.zeta_rad),
        np.sin(grid.zeta_rad),
    )


def _fill_fit(args: tuple, grid: FocalGrid, sel: np.ndarray, fit: np.ndarray) -> None:
    kernel = _fit_kernel_36 if grid.n_slip == _DEFAULT_N_SLIP else _fit_kernel
    kernel(*args, np.ascontiguousarray(sel, dtype=np.int64), fit)


def misfit_table_direct(rays: np.ndarray, weight: np.ndarray, grid: FocalGrid) -> np.ndarray:
    """Weighted misfit (n_trials, n_mech) by the direct compiled kernel: every slip's sign
    evaluated, p.s = cos(zeta) (p.b1) + sin(zeta) (p.b2). Same values as
    :func:`misfit_table_numpy` (ties aside, see the module docstring) and bit for bit the signs
    of :func:`misfit_table`; kept as the compiled reference for the crossing kernel."""
    if _fit_kernel is None:  # pragma: no cover
        return misfit_table_numpy(rays, weight, grid)
    fit = np.zeros((rays.shape[2], grid.n_mech))
    _fill_fit(_kernel_args(rays, weight, grid), grid, np.arange(grid.n_normals), fit)
    return fit


def _crossing_args(rays: np.ndarray, weight: np.ndarray, grid: FocalGrid) -> tuple:
    """Kernel arguments with the trials padded (copies of trial 0) to a multiple of LANES."""
    n_trials = rays.shape[2]
    pad = -n_trials % LANES
    if pad:
        rays = np.concatenate([rays, np.repeat(rays[:, :, :1], pad, axis=2)], axis=2)
    if grid.zeta_rad[0] != 0.0:  # the kernel's slip-0 sign is c1 < 0: cos 0 = 1, sin 0 = 0
        raise ValueError("the crossing kernel needs a grid whose first slip angle is 0")
    dzeta = float(grid.zeta_rad[1] - grid.zeta_rad[0]) if grid.n_slip > 1 else np.pi
    return (
        *_kernel_args(rays, weight, grid),
        1.0 / dzeta,
        np.pi / dzeta,
        CROSSING_TOL_RAD / dzeta,
    )


def misfit_table(rays: np.ndarray, weight: np.ndarray, grid: FocalGrid) -> np.ndarray:
    """Weighted misfit (n_trials, n_mech), same as :func:`misfit_table_numpy`, compiled.

    The crossing kernel: per (normal, pick, trial) it finds where the sign of p.s changes
    along the normal's slips instead of evaluating all of them (see ``_crossing_block_py``).
    Falls back to the numpy reference when numba is not installed.
    """
    if _crossing_table is None:  # pragma: no cover
        return misfit_table_numpy(rays, weight, grid)
    fit = np.zeros((rays.shape[2], grid.n_mech))
    sel = np.arange(grid.n_normals, dtype=np.int64)
    _crossing_table(*_crossing_args(rays, weight, grid), sel, fit)
    return fit


_CANDIDATE_CAPACITY = 1 << 16  # typically ~15,000; an overflow reruns with the exact size


@lru_cache(maxsize=8)
def _sampling_order(n: int, stride: int = 16) -> np.ndarray:
    """0, stride, 2 stride, ..., 1, 1 + stride, ...: early normals sample the whole sphere, so
    the running trial minima (and thresholds) are near their final values early."""
    order = np.argsort(np.arange(n) % stride, kind="stable").astype(np.int64)
    order.setflags(write=False)
    return order


def _unique_trials(rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rays of the distinct trials (3, n_pol, n_distinct), index of each trial's copy)."""
    _, _, n_trials = rays.shape
    columns: dict[bytes, int] = {}
    inverse = np.array(
        [columns.setdefault(rays[:, :, t].tobytes(), len(columns)) for t in range(n_trials)]
    )
    if len(columns) == n_trials:
        return rays, inverse
    first = np.unique(inverse, return_index=True)[1]
    return np.ascontiguousarray(rays[:, :, first]), inverse


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _thread_pool(n: int) -> ThreadPoolExecutor:
    """A process-wide pool of at least n threads, made on first use (not at import)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers < n:
            _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="fm-mechanism")
        return _POOL


def _candidates(
    args: tuple, order: np.ndarray, n_trials: int, nextra: float, ntotal: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """_crossing_accept over the normals in order: (mechanisms, trials, misfits, minima)."""
    cap = _CANDIDATE_CAPACITY
    while True:
        cand_m = np.empty(cap, np.int32)
        cand_t = np.empty(cap, np.int32)
        cand_f = np.empty(cap)
        n_cand, lo = _crossing_accept(
            *args,
            order,
            n_trials,
            float(nextra),
            float(ntotal),
            1e-9,
            cand_m,
            cand_t,
            cand_f,
        )
        if n_cand <= cap:
            return cand_m[:n_cand], cand_t[:n_cand], cand_f[:n_cand], lo
        cap = n_cand


def accepted_set(
    rays: np.ndarray,
    weight: np.ndarray,
    grid: FocalGrid,
    nextra: float,
    ntotal: float,
    *,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """(accepted mechanism indices, ascending; each trial's minimum misfit), exactly as
    ``accepted_mask(misfit_table(...))`` and ``misfit_table(...).min(axis=1)`` give them,
    without building the (n_trials, n_mech) table.

    One pass over the grid keeps the (mechanism, trial) pairs whose misfit is within the
    running threshold max(running minimum + nextra, ntotal); running minima only decrease, so
    the final threshold (applied at the end, with accepted_mask's 1e-9 tolerance) selects from
    a superset. Identical trial columns are evaluated once. ``threads`` > 1 splits the normals
    between threads (each keeps its own running minima, a superset again); same answer.
    """
    if int(threads) != threads or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    urays, inverse = _unique_trials(rays)
    if _crossing_accept is None:  # pragma: no cover
        fit = misfit_table_numpy(urays, weight, grid)
        return np.flatnonzero(accepted_mask(fit, nextra, ntotal)), fit.min(axis=1)[inverse]
    n_u = urays.shape[2]
    args = _crossing_args(urays, weight, grid)
    order = _sampling_order(grid.n_normals)
    if threads == 1:
        parts = [_candidates(args, order, n_u, nextra, ntotal)]
    else:
        orders = [np.ascontiguousarray(order[k::threads]) for k in range(threads)]
        pool = _thread_pool(threads)
        parts = list(pool.map(lambda o: _candidates(args, o, n_u, nextra, ntotal), orders))
    lo = np.min([p[3] for p in parts], axis=0)
    threshold = np.maximum(lo + nextra, ntotal) + 1e-9
    accepted = np.zeros(grid.n_mech, dtype=bool)
    for cand_m, cand_t, cand_f, _ in parts:
        accepted[cand_m[cand_f <= threshold[cand_t]]] = True
    return np.flatnonzero(accepted), lo[inverse]


def trial_spread_sin(rays: np.ndarray) -> np.ndarray:
    """sin of each pick's largest angle between trial 0 and its other trials, (n_pol,).

    A plane whose |p0 . normal| exceeds this cannot separate any two trials of the pick.
    """
    p0 = rays[:, :, :1]
    cos = np.clip(np.sum(rays * p0, axis=0).min(axis=1), -1.0, 1.0)
    sin = np.where(cos < 0, 1.0, np.sqrt(np.maximum(0.0, 1.0 - cos * cos)))
    return sin


def pruned_misfit_table(
    rays: np.ndarray, weight: np.ndarray, grid: FocalGrid, nextra: float, ntotal: float
) -> tuple[np.ndarray, int]:
    """Misfit table exact wherever it matters for acceptance, +inf elsewhere; and the number of
    grid normals evaluated in full.

    Branch and bound: a lower bound per mechanism (polarities it gets wrong in every trial, from
    trial 0 and each pick's trial spread) is computed in one cheap pass; the normals holding the
    lowest bounds are evaluated in full to bound each trial's minimum misfit from above; every
    normal with a mechanism whose lower bound could still pass max(min + nextra, ntotal) is
    evaluated in full. A skipped mechanism's misfit exceeds every trial's threshold, so the
    accepted set and the trial minima equal those of :func:`misfit_table` exactly.
    """
    if _fit_kernel is None:  # pragma: no cover
        return misfit_table_numpy(rays, weight, grid), grid.n_normals
    args = _kernel_args(rays, weight, grid)
    cargs = _crossing_args(rays, weight, grid)
    margin = trial_spread_sin(rays) + 1e-9
    p0 = [np.ascontiguousarray(r[:, 0]) for r in rays]
    lb = _lower_bound_kernel(*p0, margin, *args[3:])
    n_trials = rays.shape[2]
    fit = np.full((n_trials, grid.n_mech), np.inf)
    lb_norm = lb.reshape(grid.n_normals, grid.n_slip).min(axis=1)
    seed = np.argsort(lb_norm, kind="stable")[: max(1, min(8, grid.n_normals))]
    _crossing_table(*cargs, np.sort(seed).astype(np.int64), fit)
    upper_min = fit.min(axis=1)  # >= each trial's true minimum
    bound = float(np.max(np.maximum(upper_min + nextra, ntotal))) + 1e-9
    todo = np.flatnonzero(lb_norm <= bound)
    todo = np.setdiff1d(todo, seed, assume_unique=True)
    _crossing_table(*cargs, todo.astype(np.int64), fit)
    return fit, int(todo.size + seed.size)


def misfit_allowances(total_weight: float, badfrac: float, badmin: float) -> tuple[float, float]:
    """(nextra, ntotal): misfit allowed above each trial's minimum, and the floor (SKHASH).

    nextra = max(round(W badfrac / 2), badmin), ntotal = max(round(W badfrac), badmin), with W
    the summed |weight| and Python's round (half to even), exactly as SKHASH computes them.
    """
    nextra = max(round(total_weight * badfrac * 0.5), badmin)
    ntotal = max(round(total_weight * badfrac), badmin)
    return float(nextra), float(ntotal)


def accepted_mask(fit: np.ndarray, nextra: float, ntotal: float) -> np.ndarray:
    """Mechanisms (n_mech,) acceptable in at least one trial: fit <= max(min + nextra, ntotal).

    A tolerance of 1e-9 absorbs summation-order rounding of fractional weights.
    """
    threshold = np.maximum(fit.min(axis=1) + nextra, ntotal)
    return np.any(fit <= threshold[:, None] + 1e-9, axis=0)
