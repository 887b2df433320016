"""The HASH grid search: weighted P-polarity misfit of every grid mechanism in every trial.

For a ray p (unit vector, N E D) and a mechanism with fault normal n and slip s, the P first
motion is compressional (up) when (p.n)(p.s) > 0 (radiation 2 (p.n)(p.s); Aki & Richards
eq. 4.84); HASH/SKHASH predict "down" exactly when one of p.n, p.s is negative. The misfit of a
mechanism in a trial is the summed |weight| of the polarities it predicts wrongly; a mechanism is
acceptable when, in at least one trial, its misfit <= max(min_misfit_of_trial + nextra, ntotal)
(Hardebeck & Shearer 2002; SKHASH ``focal_gridsearch``).

Two implementations that must agree exactly (tests cross-check them):

* :func:`misfit_table_numpy`: the obviously-right dense version (matrix products, signs,
  weighted sums), chunked over mechanisms so memory stays bounded.
* :func:`misfit_table`: a numba kernel that walks the grid normal by normal. The 36 slips of a
  normal are cos(zeta) b1 + sin(zeta) b2, so p.s = cos(zeta) (p.b1) + sin(zeta) (p.b2): three
  dot products per (normal, ray) then two multiply-adds per slip. Memory is O(trials x grid).

:func:`pruned_misfit_table` adds an exact branch and bound over grid normals (used by
``invert``); :func:`misfit_table_torch` is the dense algebra in torch for a GPU.

Ties: a ray lying exactly on a grid nodal plane (|p.s| ~ 1e-17, e.g. integer-degree angles on
the 5-degree grid) is decided by rounding, which differs between BLAS and this kernel (and
between SKHASH runs on different CPUs): 3,122 of HASH example 1's 22 million table entries,
with no effect on any accepted set or answer there. Tests compare the implementations on
random rays, where no such ties occur.
"""

from __future__ import annotations

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


if _numba is not None:
    _fit_kernel = _numba.njit(cache=True, nogil=True)(_fit_kernel_py)
    _fit_kernel_36 = _numba.njit(cache=True, nogil=True)(_fit_kernel_36_py)
    _lower_bound_kernel = _numba.njit(cache=True, nogil=True)(_lower_bound_kernel_py)
else:  # pragma: no cover
    _fit_kernel = _fit_kernel_36 = _lower_bound_kernel = None


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


def misfit_table(rays: np.ndarray, weight: np.ndarray, grid: FocalGrid) -> np.ndarray:
    """Weighted misfit (n_trials, n_mech), same as :func:`misfit_table_numpy`, compiled.

    Falls back to the numpy reference when numba is not installed.
    """
    if _fit_kernel is None:  # pragma: no cover
        return misfit_table_numpy(rays, weight, grid)
    fit = np.zeros((rays.shape[2], grid.n_mech))
    _fill_fit(_kernel_args(rays, weight, grid), grid, np.arange(grid.n_normals), fit)
    return fit


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
    margin = trial_spread_sin(rays) + 1e-9
    p0 = [np.ascontiguousarray(r[:, 0]) for r in rays]
    lb = _lower_bound_kernel(*p0, margin, *args[3:])
    n_trials = rays.shape[2]
    fit = np.full((n_trials, grid.n_mech), np.inf)
    lb_norm = lb.reshape(grid.n_normals, grid.n_slip).min(axis=1)
    seed = np.argsort(lb_norm, kind="stable")[: max(1, min(8, grid.n_normals))]
    _fill_fit(args, grid, np.sort(seed), fit)
    upper_min = fit.min(axis=1)  # >= each trial's true minimum
    bound = float(np.max(np.maximum(upper_min + nextra, ntotal))) + 1e-9
    todo = np.flatnonzero(lb_norm <= bound)
    todo = np.setdiff1d(todo, seed, assume_unique=True)
    _fill_fit(args, grid, todo, fit)
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
