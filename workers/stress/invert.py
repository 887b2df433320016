"""Stress-tensor inversion of focal mechanisms: orientation of the principal stresses and R.

Method (all angles in degrees, vectors in (north, east, down)):

1. **Iterative joint inversion** (Vavrycuk 2014, STRESSINVERSE) for a start: Michael's (1984)
   linear least-squares inversion of both nodal planes, then repeatedly: choose each
   mechanism's fault plane as the nodal plane of higher Coulomb *instability* under the current
   stress and friction, and invert the chosen planes again. With ``friction=None`` the friction
   is the one (0.2-1.0) that maximises the mean instability of the chosen planes.
2. **Nonlinear misfit refinement**: the linear inversion assumes the same shear-stress magnitude
   on every fault (it fits the shear traction itself, not its direction, to the unit slip
   vector). Faults of one population carry very different shear stress (most where the faults
   are spread in strike, as in normal-faulting sequences, and where R is far from 0.5), and
   that assumption biases the linear answer (R by ~0.2, sigma1 by up to 40 degrees on synthetic
   normal faulting). The refinement minimises the sum of ``1 - cos(misfit angle)`` between each
   observed slip and the direction of the shear traction on its plane (Wallace-Bott; Gephart &
   Forsyth 1984), over the stress orientation and R, by Levenberg-Marquardt steps with an
   analytic Jacobian. ``1 - cos`` is the log-likelihood of von Mises slip noise: this is the
   maximum-likelihood stress under the Wallace-Bott hypothesis.
3. **Fault plane by likelihood** (:func:`plane_posterior`): the two nodal planes of each
   mechanism are weighted by their slip misfit (von Mises, concentration from the data) with
   the instability as a prior, expectation-maximisation style (weights, weighted fit, again).
   The refinement runs from the linear start and from its axes with sigma1/sigma2 or
   sigma2/sigma3 swapped (three R each); the highest mixture likelihood wins.
4. **Bootstrap** (Michael 1987; SATSI/MSATSI): the mechanisms are resampled with replacement
   ``n_bootstrap`` times, each resampled mechanism's fault plane is drawn from its (tempered)
   plane weight -- the nodal-plane choice is resampled too -- and each resample is refined
   from the full-data answer. The 95% confidence of an axis is the cone half-angle that holds
   95% of the resampled axes around the estimate; of R and SHmax, the symmetric intervals about
   the estimate that hold 95% of the resampled values.

Stress convention: compression positive, sigma1 >= sigma2 >= sigma3, the reduced tensor
``V diag(1, 1 - R, 0) V^T`` (columns of V the sigma1, sigma2, sigma3 axes); the isotropic part
and the scale are not resolved by slip directions. The slip of the hanging wall is parallel to
``-(sigma n - (n . sigma n) n)`` for the fault normal n of :func:`firstmotion.kagan.
vectors_from_sdr` (which points into the hanging wall).

SHmax is the azimuth of the largest horizontal compression of the full reduced tensor (Lund &
Townend 2007), i.e. of the largest eigenvector of its horizontal 2x2 part: it depends on R and
equals the sigma1 azimuth only where sigma1 is horizontal.

.. seealso:: Michael, A. J. (1984), JGR 89, 11517-11526; Michael (1987), JGR 92, 357-368;
   Gephart, J. W. & Forsyth, D. W. (1984), JGR 89, 9305-9320; Hardebeck, J. L. & Michael,
   A. J. (2006), JGR 111, B11310 (SATSI); Martinez-Garzon, P. et al. (2014), SRL 85, 896-904
   (MSATSI); Vavrycuk, V. (2014), GJI 199, 69-77 (STRESSINVERSE); Lund, B. & Townend, J.
   (2007), GJI 170, 1328-1335; Zoback, M. L. (1992), JGR 97, 11703-11728 (regimes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

try:  # numba is a declared dependency; the numpy path keeps the module usable without it
    import numba as _numba
except ImportError:  # pragma: no cover
    _numba = None

from firstmotion.kagan import vectors_from_sdr

CONFIDENCE = 0.95
FRICTION_GRID = np.round(np.arange(0.2, 1.0001, 0.1), 2)
LINEAR_ITERATIONS = 8
REFINE_ITERATIONS = 10
EM_ITERATIONS = 20
MULTISTART_MAX = 400
PLANE_TEMPER = 3.0
KAPPA_MAX = 200.0  # concentration cap of the plane weights
BOOTSTRAP_ITERATIONS = 3


# --------------------------------------------------------------------------- geometry


def axis_azimuth_plunge(v: ArrayLike) -> tuple[float, float]:
    """(azimuth 0-360, plunge 0-90 down) of an axis (N, E, D); the lower-hemisphere end."""
    v = np.asarray(v, dtype=float)
    if v[2] < 0:
        v = -v
    plunge = float(np.degrees(np.arcsin(np.clip(v[2] / np.linalg.norm(v), -1.0, 1.0))))
    azimuth = float(np.degrees(np.arctan2(v[1], v[0])) % 360.0)
    if plunge > 89.9999:
        azimuth = 0.0
    return azimuth, plunge


def axis_vector(azimuth_deg: float, plunge_deg: float) -> np.ndarray:
    """Unit vector (N, E, D) of an axis given by azimuth and plunge (degrees)."""
    a, p = np.radians(azimuth_deg), np.radians(plunge_deg)
    return np.array([np.cos(p) * np.cos(a), np.cos(p) * np.sin(a), np.sin(p)])


def reduced_tensor(axes: ArrayLike, shape_ratio: float) -> np.ndarray:
    """``V diag(1, 1 - R, 0) V^T`` (compression positive); ``axes`` (3, 3), columns s1..s3."""
    v = np.asarray(axes, dtype=float)
    return (v * np.array([1.0, 1.0 - shape_ratio, 0.0])) @ v.T


def principal(tensor: ArrayLike) -> tuple[np.ndarray, float]:
    """Axes (columns sigma1, sigma2, sigma3; right-handed) and R of a compression-positive
    tensor."""
    w, v = np.linalg.eigh(np.asarray(tensor, dtype=float))
    order = np.argsort(w)[::-1]
    w, v = w[order], v[:, order]
    if np.linalg.det(v) < 0:
        v[:, 2] = -v[:, 2]
    span = w[0] - w[2]
    r = float((w[0] - w[1]) / span) if span > 0 else 0.5
    return v, min(max(r, 0.0), 1.0)


def shmax_azimuth(tensor: ArrayLike) -> float:
    """Azimuth (0-180) of the maximum horizontal compression of a compression-positive tensor
    (Lund & Townend 2007): the largest eigenvector of the tensor's horizontal part, from
    ``tan(2 a) = 2 s_NE / (s_NN - s_EE)``. Works on (..., 3, 3) arrays too."""
    t = np.asarray(tensor, dtype=float)
    a = 0.5 * np.arctan2(2.0 * t[..., 0, 1], t[..., 0, 0] - t[..., 1, 1])
    return np.degrees(a) % 180.0


def regime(sigma1_plunge: float, sigma2_plunge: float, sigma3_plunge: float) -> str:
    """World Stress Map faulting regime from the axis plunges (Zoback 1992, table 1):
    NF, NS, SS, TS, TF or U (unknown)."""
    p1, p2, p3 = sigma1_plunge, sigma2_plunge, sigma3_plunge
    if p1 >= 52 and p3 <= 35:
        return "NF"
    if 40 <= p1 < 52 and p3 <= 20:
        return "NS"
    if (p1 < 40 and p2 >= 45 and p3 <= 20) or (p1 <= 20 and p2 >= 45 and p3 < 40):
        return "SS"
    if p1 <= 20 and 40 <= p3 < 52:
        return "TS"
    if p1 <= 35 and p3 >= 52:
        return "TF"
    return "U"


def fault_vectors(
    strike: ArrayLike, dip: ArrayLike, rake: ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Normals and slips (n, 2, 3) of both nodal planes (the given plane first)."""
    n, s = vectors_from_sdr(strike, dip, rake)
    n, s = np.atleast_2d(n), np.atleast_2d(s)
    return np.stack([n, s], axis=1), np.stack([s, n], axis=1)


def predicted_slip(tensor: np.ndarray, normals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit direction of slip predicted by the Wallace-Bott hypothesis and the shear stress
    magnitude, for normals (..., 3) under a compression-positive tensor."""
    t = normals @ tensor  # symmetric tensor: rows are sigma n
    sn = np.sum(t * normals, axis=-1)
    shear = -(t - sn[..., None] * normals)
    mag = np.linalg.norm(shear, axis=-1)
    return shear / np.maximum(mag, 1e-300)[..., None], mag


def instability(tensor: np.ndarray, normals: np.ndarray, friction: float) -> np.ndarray:
    """Fault instability I (0-1; 1 = optimally oriented) of planes under a reduced tensor
    (Vavrycuk 2014, eq. 16): ``(tau + mu (sigma1 - sigma_n)) / (tau_c + mu (sigma1 -
    sigma_c))`` with compression-positive normal stress and sigma1 = 1, sigma3 = 0."""
    t = normals @ tensor
    sn = np.sum(t * normals, axis=-1)
    tau = np.linalg.norm(t - sn[..., None] * normals, axis=-1)
    w = np.linalg.eigvalsh(tensor)
    span = max(w[-1] - w[0], 1e-300)
    best = 0.5 * (np.sqrt(1.0 + friction**2) + friction)
    return (tau / span + friction * (w[-1] - sn) / span) / best


def misfit_angles(tensor: np.ndarray, normals: np.ndarray, slips: np.ndarray) -> np.ndarray:
    """Angle (degrees, 0-180) between observed and predicted slip on each plane."""
    d, _ = predicted_slip(tensor, normals)
    return np.degrees(np.arccos(np.clip(np.sum(d * slips, axis=-1), -1.0, 1.0)))


# --------------------------------------------------------------------------- linear inversion


def _linear_design(normals: np.ndarray) -> np.ndarray:
    """(n, 3, 5) matrices A with ``A t`` = the shear traction direction predicted (as slip) for
    the deviatoric tension-positive tensor t = (s11, s12, s13, s22, s23), s33 = -s11 - s22
    (Michael 1984)."""
    n1, n2, n3 = normals[:, 0], normals[:, 1], normals[:, 2]
    a = np.empty((len(normals), 3, 5))
    a[:, 0, 0] = n1 - n1**3 + n1 * n3**2
    a[:, 0, 1] = n2 - 2 * n1**2 * n2
    a[:, 0, 2] = n3 - 2 * n1**2 * n3
    a[:, 0, 3] = -n1 * n2**2 + n1 * n3**2
    a[:, 0, 4] = -2 * n1 * n2 * n3
    a[:, 1, 0] = -n2 * n1**2 + n2 * n3**2
    a[:, 1, 1] = n1 - 2 * n1 * n2**2
    a[:, 1, 2] = -2 * n1 * n2 * n3
    a[:, 1, 3] = n2 - n2**3 + n2 * n3**2
    a[:, 1, 4] = n3 - 2 * n2**2 * n3
    a[:, 2, 0] = -n3 * n1**2 - n3 + n3**3
    a[:, 2, 1] = -2 * n1 * n2 * n3
    a[:, 2, 2] = n1 - 2 * n1 * n3**2
    a[:, 2, 3] = -n3 * n2**2 - n3 + n3**3
    a[:, 2, 4] = n2 - 2 * n2 * n3**2
    return a


def _tensor_from_deviatoric(t: np.ndarray) -> np.ndarray:
    s11, s12, s13, s22, s23 = t
    tension = np.array([[s11, s12, s13], [s12, s22, s23], [s13, s23, -s11 - s22]])
    v, r = principal(-tension)
    return reduced_tensor(v, r)


def linear_inversion(
    normals: np.ndarray, slips: np.ndarray, weight: np.ndarray | None = None
) -> np.ndarray:
    """Michael's (1984) linear least-squares stress inversion; the compression-positive reduced
    tensor (as :func:`reduced_tensor`). ``normals``/``slips`` (n, 3)."""
    a = _linear_design(normals)
    w = np.ones(len(normals)) if weight is None else np.asarray(weight, dtype=float)
    ata = np.einsum("n,nik,nil->kl", w, a, a)
    atb = np.einsum("n,nik,ni->k", w, a, slips)
    return _tensor_from_deviatoric(np.linalg.lstsq(ata, atb, rcond=None)[0])


def choose_planes(tensor: np.ndarray, normals2: np.ndarray, friction: float) -> np.ndarray:
    """Index (0 or 1) of the more unstable nodal plane of each mechanism."""
    i = instability(tensor, normals2, friction)
    return (i[:, 1] > i[:, 0]).astype(np.intp)


def linear_terms(normals2: np.ndarray, slips2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-plane normal-equation terms of the linear inversion: A^T A (n, 2, 5, 5) and
    A^T s (n, 2, 5), so that any plane choice is inverted by summing rows."""
    a = _linear_design(normals2.reshape(-1, 3))
    ata = np.einsum("nik,nil->nkl", a, a).reshape(len(normals2), 2, 5, 5)
    atb = np.einsum("nik,ni->nk", a, slips2.reshape(-1, 3)).reshape(len(normals2), 2, 5)
    return ata, atb


def iterative_linear(
    normals2: np.ndarray,
    slips2: np.ndarray,
    friction: float,
    n_iter: int = LINEAR_ITERATIONS,
    terms: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Vavrycuk's (2014) iterative joint inversion for one friction: (tensor, plane choice)."""
    ata, atb = linear_terms(normals2, slips2) if terms is None else terms
    rows = np.arange(len(normals2))
    tensor = _tensor_from_deviatoric(
        np.linalg.lstsq(ata.sum(axis=(0, 1)), atb.sum(axis=(0, 1)), rcond=None)[0]
    )
    choice = np.full(len(normals2), -1, dtype=np.intp)
    for _ in range(n_iter):
        new_choice = choose_planes(tensor, normals2, friction)
        if np.array_equal(new_choice, choice):
            break
        choice = new_choice
        t = np.linalg.lstsq(ata[rows, choice].sum(0), atb[rows, choice].sum(0), rcond=None)[0]
        tensor = _tensor_from_deviatoric(t)
    return tensor, choose_planes(tensor, normals2, friction)


# --------------------------------------------------------------------------- nonlinear refinement
#
# The compiled kernels work on "rows": one (normal, slip) pair each, both nodal planes of every
# mechanism stored one after the other (row 2 m is the given plane of mechanism m, row 2 m + 1
# its auxiliary plane), and a weight per row. Parameters theta = (small rotation about N, E, D
# applied to V; R): a rotation exp([w]x) changes sigma by [w]x sigma - sigma [w]x.


def _sigma_py(v, r):  # pragma: no cover - compiled
    sig = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            sig[i, j] = v[i, 0] * v[j, 0] + (1.0 - r) * v[i, 1] * v[j, 1]
    return sig


def _derivs_py(v, sig):  # pragma: no cover - compiled
    """d sigma / d theta, (4, 3, 3)."""
    d = np.zeros((4, 3, 3))
    for k in range(3):
        g = np.zeros((3, 3))
        a, b = (k + 1) % 3, (k + 2) % 3
        g[b, a] = 1.0  # [e_k]x
        g[a, b] = -1.0
        gs = g @ sig
        for i in range(3):
            for j in range(3):
                d[k, i, j] = gs[i, j] + gs[j, i]  # G sigma - sigma G, with G^T = -G
    for i in range(3):
        for j in range(3):
            d[3, i, j] = -v[i, 1] * v[j, 1]
    return d


def _step_py(v, r, step):  # pragma: no cover - compiled
    """Apply theta = (omega, dR) to (V, R); re-sort so that sigma1 >= sigma2 >= sigma3."""
    om0, om1, om2 = step[0], step[1], step[2]
    th = np.sqrt(om0 * om0 + om1 * om1 + om2 * om2)
    rot = np.eye(3)
    if th > 1e-15:
        k0, k1, k2 = om0 / th, om1 / th, om2 / th
        kx = np.zeros((3, 3))
        kx[0, 1] = -k2
        kx[0, 2] = k1
        kx[1, 0] = k2
        kx[1, 2] = -k0
        kx[2, 0] = -k1
        kx[2, 1] = k0
        rot = rot + np.sin(th) * kx + (1.0 - np.cos(th)) * (kx @ kx)
    nv = rot @ np.ascontiguousarray(v)
    r = r + step[3]
    if r < 0.0:  # values (1, 1-r, 0) with 1-r > 1: sigma1 is the old sigma2
        c0 = nv[:, 0].copy()
        nv[:, 0] = nv[:, 1]
        nv[:, 1] = -c0
        r = 1.0 - 1.0 / (1.0 - r)
    elif r > 1.0:  # 1-r < 0: sigma3 is the old sigma2; (1, 0, 1-r) rescaled gives R = 1/r
        c1 = nv[:, 1].copy()
        nv[:, 1] = nv[:, 2]
        nv[:, 2] = -c1
        r = 1.0 / r
    return nv, r


def _evaluate_py(nrm, slp, rows, wts, v, r):  # pragma: no cover - compiled
    """Weighted cost sum(w (1 - cos misfit)), J^T W J (4, 4) and J^T W e (4,) over ``rows``
    (indices into ``nrm``/``slp``, (2 n, 3); repeats allowed) with weights ``wts``."""
    sig = _sigma(v, r)
    dsig = _derivs(v, sig)
    jtj = np.zeros((4, 4))
    jtr = np.zeros(4)
    jac = np.empty((4, 3))
    cost = 0.0
    for q in range(rows.shape[0]):
        m = rows[q]
        w = wts[q]
        if w == 0.0:
            continue
        n0, n1, n2 = nrm[m, 0], nrm[m, 1], nrm[m, 2]
        t0 = sig[0, 0] * n0 + sig[0, 1] * n1 + sig[0, 2] * n2
        t1 = sig[1, 0] * n0 + sig[1, 1] * n1 + sig[1, 2] * n2
        t2 = sig[2, 0] * n0 + sig[2, 1] * n1 + sig[2, 2] * n2
        sn = t0 * n0 + t1 * n1 + t2 * n2
        h0, h1, h2 = sn * n0 - t0, sn * n1 - t1, sn * n2 - t2
        mag = np.sqrt(h0 * h0 + h1 * h1 + h2 * h2)
        if mag < 1e-12:
            cost += w
            continue
        d0, d1, d2 = h0 / mag, h1 / mag, h2 / mag
        e0 = d0 - slp[m, 0]
        e1 = d1 - slp[m, 1]
        e2 = d2 - slp[m, 2]
        cost += 0.5 * w * (e0 * e0 + e1 * e1 + e2 * e2)
        for k in range(4):
            u0 = dsig[k, 0, 0] * n0 + dsig[k, 0, 1] * n1 + dsig[k, 0, 2] * n2
            u1 = dsig[k, 1, 0] * n0 + dsig[k, 1, 1] * n1 + dsig[k, 1, 2] * n2
            u2 = dsig[k, 2, 0] * n0 + dsig[k, 2, 1] * n1 + dsig[k, 2, 2] * n2
            un = u0 * n0 + u1 * n1 + u2 * n2
            w0, w1, w2 = un * n0 - u0, un * n1 - u1, un * n2 - u2
            dw = d0 * w0 + d1 * w1 + d2 * w2
            jac[k, 0] = (w0 - dw * d0) / mag
            jac[k, 1] = (w1 - dw * d1) / mag
            jac[k, 2] = (w2 - dw * d2) / mag
        for k in range(4):
            jtr[k] += w * (jac[k, 0] * e0 + jac[k, 1] * e1 + jac[k, 2] * e2)
            for kk in range(k, 4):
                jtj[k, kk] += w * (
                    jac[k, 0] * jac[kk, 0] + jac[k, 1] * jac[kk, 1] + jac[k, 2] * jac[kk, 2]
                )
    for k in range(4):
        for kk in range(k):
            jtj[k, kk] = jtj[kk, k]
    return cost, jtj, jtr


def _damped_solve_py(jtj, jtr, lam):  # pragma: no cover - compiled
    """-(J^T J + lam diag(J^T J))^-1 J^T e by Cholesky (4x4, symmetric positive definite)."""
    a = jtj.copy()
    for k in range(4):
        a[k, k] += lam * jtj[k, k] + 1e-12
    low = np.zeros((4, 4))
    for i in range(4):
        for j in range(i + 1):
            acc = a[i, j]
            for k in range(j):
                acc -= low[i, k] * low[j, k]
            if i == j:
                low[i, i] = np.sqrt(max(acc, 1e-300))
            else:
                low[i, j] = acc / low[j, j]
    y = np.zeros(4)
    for i in range(4):
        acc = -jtr[i]
        for k in range(i):
            acc -= low[i, k] * y[k]
        y[i] = acc / low[i, i]
    x = np.zeros(4)
    for i in range(3, -1, -1):
        acc = y[i]
        for k in range(i + 1, 4):
            acc -= low[k, i] * x[k]
        x[i] = acc / low[i, i]
    return x


def _lm_py(nrm, slp, rows, wts, v, r, n_iter):  # pragma: no cover - compiled
    """Levenberg-Marquardt from (V, R); returns the best (V, R, cost)."""
    cost, jtj, jtr = _evaluate(nrm, slp, rows, wts, v, r)
    lam = 1e-3
    for _ in range(n_iter):
        step = _damped_solve(jtj, jtr, lam)
        nv, nr = _step(v, r, step)
        ncost, njtj, njtr = _evaluate(nrm, slp, rows, wts, nv, nr)
        if ncost <= cost:
            small = np.abs(step).max() < 1e-7
            v, r, cost, jtj, jtr = nv, nr, ncost, njtj, njtr
            lam = max(lam / 5.0, 1e-9)
            if small:
                break
        else:
            lam *= 10.0
            if lam > 1e8:
                break
    return v, r, cost


def _posterior_py(nrm, slp, v, r, mu, w):  # pragma: no cover - compiled
    """Compiled :func:`plane_posterior` (rows 2 m, 2 m + 1 the planes of mechanism m): fills
    the weights ``w`` (2 n,) and returns kappa."""
    sig = _sigma(v, r)
    n2 = nrm.shape[0]
    best_norm = 0.5 * (np.sqrt(1.0 + mu * mu) + mu)
    cosm = np.empty(n2)
    inst = np.empty(n2)
    for m in range(n2):
        n0, n1, n2_ = nrm[m, 0], nrm[m, 1], nrm[m, 2]
        t0 = sig[0, 0] * n0 + sig[0, 1] * n1 + sig[0, 2] * n2_
        t1 = sig[1, 0] * n0 + sig[1, 1] * n1 + sig[1, 2] * n2_
        t2 = sig[2, 0] * n0 + sig[2, 1] * n1 + sig[2, 2] * n2_
        sn = t0 * n0 + t1 * n1 + t2 * n2_
        h0, h1, h2 = sn * n0 - t0, sn * n1 - t1, sn * n2_ - t2
        mag = np.sqrt(h0 * h0 + h1 * h1 + h2 * h2)
        cosm[m] = (h0 * slp[m, 0] + h1 * slp[m, 1] + h2 * slp[m, 2]) / max(mag, 1e-300)
        inst[m] = (mag + mu * (1.0 - sn)) / best_norm
    acc = 0.0
    for q in range(n2 // 2):
        acc += 1.0 - max(cosm[2 * q], cosm[2 * q + 1])
    kappa = 1.0 / (2.0 * max(acc / max(n2 // 2, 1), 1e-4))
    kappa = min(max(kappa, 2.0), KAPPA_MAX)
    for q in range(n2 // 2):
        a, b = 2 * q, 2 * q + 1
        logit = kappa * (cosm[b] - cosm[a]) + 0.25 * kappa * (inst[b] - inst[a])
        logit = min(max(logit, -50.0), 50.0)
        p1 = 1.0 / (1.0 + np.exp(-logit))
        w[a] = 1.0 - p1
        w[b] = p1
    return kappa


def _em_py(nrm, slp, v, r, mu, em_iters, lm_iters):  # pragma: no cover - compiled
    """Expectation-maximisation of the plane weights and the stress from (V, R)."""
    rows = np.arange(nrm.shape[0])
    w = np.empty(nrm.shape[0])
    for _ in range(em_iters):
        _posterior(nrm, slp, v, r, mu, w)
        nv, nr, _ = _lm(nrm, slp, rows, w, v, r, lm_iters)
        moved = np.abs(nv - v).max() + abs(nr - r)
        v, r = nv, nr
        if moved < 1e-6:
            break
    return v, r


def _bootstrap_py(nrm, slp, idx, v0, r0, n_iter, out_axes, out_r):  # pragma: no cover
    """Refine every resample (rows of ``idx``) from (v0, r0), unit weights."""
    ones = np.ones(idx.shape[1])
    for b in _prange(idx.shape[0]):
        v, r, _ = _lm(nrm, slp, idx[b], ones, v0.copy(), r0, n_iter)
        out_axes[b] = v
        out_r[b] = r


if _numba is not None:
    _jit = _numba.njit(cache=True, nogil=True)
    _sigma = _jit(_sigma_py)
    _derivs = _jit(_derivs_py)
    _step = _jit(_step_py)
    _damped_solve = _jit(_damped_solve_py)
    _evaluate = _jit(_evaluate_py)
    _lm = _jit(_lm_py)
    _posterior = _jit(_posterior_py)
    _em = _jit(_em_py)
    _prange = _numba.prange
    _bootstrap = _numba.njit(cache=True, nogil=True, parallel=True)(_bootstrap_py)
else:  # pragma: no cover
    _sigma, _derivs, _step, _evaluate, _lm, _prange, _damped_solve = (
        _sigma_py, _derivs_py, _step_py, _evaluate_py, _lm_py, range, _damped_solve_py,
    )  # fmt: skip
    _bootstrap = _bootstrap_py
    _posterior, _em = _posterior_py, _em_py


def evaluate_numpy(
    nrm: np.ndarray, slp: np.ndarray, rows: np.ndarray, wts: np.ndarray, v: np.ndarray, r: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """Plain-numpy twin of the compiled cost/Jacobian pass (array algebra, for tests)."""
    sig = reduced_tensor(v, r)
    n, s, w = nrm[rows], slp[rows], np.asarray(wts, dtype=float)
    d, mag = predicted_slip(sig, n)
    e = d - s
    cost = 0.5 * float(np.sum(w * np.sum(e * e, axis=1)))
    jac = []
    for k in range(4):
        if k < 3:
            g = np.zeros((3, 3))
            a, b = (k + 1) % 3, (k + 2) % 3
            g[b, a], g[a, b] = 1.0, -1.0
            ds = g @ sig - sig @ g
        else:
            ds = -np.outer(v[:, 1], v[:, 1])
        u = n @ ds
        un = np.sum(u * n, axis=1)
        wv = un[:, None] * n - u
        dw = np.sum(d * wv, axis=1)
        jac.append((wv - dw[:, None] * d) / mag[:, None])
    jac = np.stack(jac, axis=1)  # (n, 4, 3)
    return (
        cost,
        np.einsum("n,nki,nli->kl", w, jac, jac),
        np.einsum("n,nki,ni->k", w, jac, e),
    )


def plane_posterior(
    tensor: np.ndarray,
    normals2: np.ndarray,
    slips2: np.ndarray,
    friction: float,
    kappa: float | None = None,
) -> tuple[np.ndarray, float]:
    """Probability (n, 2) that each nodal plane is the fault, and the concentration used.

    The slip misfit on each plane is scored as von Mises noise, ``kappa cos(misfit)``, with
    ``kappa = 1 / (2 mean(1 - cos misfit))`` of the likelier planes unless given; the
    instability adds a prior ``kappa/4 * I`` (well-oriented planes are likelier faults,
    Vavrycuk 2014). On synthetic faults this choice is wrong 2-3x less often than instability
    alone, and stays right where faults are not all well oriented."""
    cos_m = np.sum(predicted_slip(tensor, normals2)[0] * slips2, axis=-1)  # (n, 2)
    inst = instability(tensor, normals2, friction)
    if kappa is None:
        best = np.max(cos_m, axis=1)
        kappa = float(np.clip(1.0 / (2.0 * max(np.mean(1.0 - best), 1e-4)), 2.0, KAPPA_MAX))
    logit = kappa * (cos_m[:, 1] - cos_m[:, 0]) + 0.25 * kappa * (inst[:, 1] - inst[:, 0])
    p1 = 1.0 / (1.0 + np.exp(-np.clip(logit, -50.0, 50.0)))
    return np.stack([1.0 - p1, p1], axis=1), kappa


# --------------------------------------------------------------------------- the inversion


def _axis_dict(v: np.ndarray) -> dict[str, float]:
    az, pl = axis_azimuth_plunge(v)
    return {"azimuth_deg": round(az, 2) % 360.0, "plunge_deg": round(pl, 2)}


def _axial_angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle (0-90) between axes (..., 3), sign-blind."""
    c = np.abs(np.sum(a * b, axis=-1))
    return np.degrees(np.arccos(np.clip(c, 0.0, 1.0)))


def _azimuth_diff_deg(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Signed difference a - b of azimuths of period 180, in (-90, 90]."""
    return (np.asarray(a) - np.asarray(b) + 90.0) % 180.0 - 90.0


@dataclass(frozen=True)
class StressResult:
    """A stress inversion: principal axes, R, SHmax, misfits and bootstrap uncertainty.

    ``axes`` (3, 3): columns are the sigma1, sigma2, sigma3 unit vectors (N, E, D);
    ``shape_ratio`` R = (s1 - s2) / (s1 - s3); ``shmax_azimuth_deg`` 0-180 (Lund & Townend);
    ``friction`` the friction used for the plane choice; ``fault_plane`` (n,) 0 where the given
    nodal plane was chosen as the fault, 1 where the auxiliary one; ``misfit_deg`` (n,) the
    angle between the observed and predicted slip on the chosen plane; ``instability`` (n,) of
    the chosen plane; ``bootstrap_axes`` (B, 3, 3), ``bootstrap_shape_ratio`` (B,) and
    ``bootstrap_shmax_deg`` (B,) the resampled answers; ``uncertainty`` their 95% summary.
    """

    axes: np.ndarray
    shape_ratio: float
    shmax_azimuth_deg: float
    friction: float
    fault_plane: np.ndarray
    misfit_deg: np.ndarray
    instability: np.ndarray
    n_mechanisms: int
    uncertainty: dict[str, Any] = field(default_factory=dict)
    bootstrap_axes: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))
    bootstrap_shape_ratio: np.ndarray = field(default_factory=lambda: np.zeros(0))
    bootstrap_shmax_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def tensor(self) -> np.ndarray:
        """The reduced tensor (compression positive, s1 = 1, s3 = 0)."""
        return reduced_tensor(self.axes, self.shape_ratio)

    def axis(self, k: int) -> tuple[float, float]:
        """(azimuth, plunge) of sigma_k (k = 1, 2, 3)."""
        return axis_azimuth_plunge(self.axes[:, k - 1])

    @property
    def regime(self) -> str:
        """World Stress Map regime class (NF, NS, SS, TS, TF, U) from the axis plunges."""
        return regime(self.axis(1)[1], self.axis(2)[1], self.axis(3)[1])

    def to_dict(self) -> dict[str, Any]:
        """The contract JSON object: sigma1..3, shape_ratio, shmax_azimuth_deg, n_mechanisms,
        uncertainty (exactly these keys)."""
        return {
            "sigma1": _axis_dict(self.axes[:, 0]),
            "sigma2": _axis_dict(self.axes[:, 1]),
            "sigma3": _axis_dict(self.axes[:, 2]),
            "shape_ratio": round(float(self.shape_ratio), 4),
            "shmax_azimuth_deg": round(float(self.shmax_azimuth_deg), 2) % 180.0,
            "n_mechanisms": int(self.n_mechanisms),
            "uncertainty": self.uncertainty,
        }


def _summarise(
    axes: np.ndarray,
    shape_ratio: float,
    shmax: float,
    b_axes: np.ndarray,
    b_r: np.ndarray,
    b_shmax: np.ndarray,
    misfit_deg: np.ndarray,
    friction: float,
    confidence: float = CONFIDENCE,
) -> dict[str, Any]:
    out: dict[str, Any] = {"confidence": confidence, "n_bootstrap": int(len(b_r))}
    if len(b_r):
        for k in range(3):
            ang = _axial_angle_deg(b_axes[:, :, k], axes[:, k])
            out[f"sigma{k + 1}_deg"] = round(float(np.quantile(ang, confidence)), 2)
        # symmetric intervals about the estimate (robust to a shifted bootstrap cloud)
        h = float(np.quantile(np.abs(b_r - shape_ratio), confidence))
        out["shape_ratio"] = [
            round(max(shape_ratio - h, 0.0), 4),
            round(min(shape_ratio + h, 1.0), 4),
        ]
        h = float(np.quantile(np.abs(_azimuth_diff_deg(b_shmax, shmax)), confidence))
        out["shmax_azimuth_deg"] = [
            round(float((shmax - h) % 180.0), 2),
            round(float((shmax + h) % 180.0), 2),
        ]
        out["shmax_half_width_deg"] = round(h, 2)
    out["mean_misfit_deg"] = round(float(np.mean(misfit_deg)), 2) if len(misfit_deg) else None
    out["friction"] = round(float(friction), 3)
    return out


def _resolved(
    unc: dict[str, Any],
    normals2: np.ndarray,
    slips2: np.ndarray,
    axes: np.ndarray,
    r: float,
    friction: float,
) -> dict[str, Any]:
    """Mark the answer unresolved when the data do not constrain all four parameters (e.g. a
    single mechanism type repeated: the bootstrap then varies nothing and would report zero
    uncertainty): the smallest eigenvalue of J^T J below 1e-6 of the largest. Unresolved
    answers get the widest regions (90 degree cones, R 0-1, SHmax +-90)."""
    nflat = np.ascontiguousarray(normals2.reshape(-1, 3))
    sflat = np.ascontiguousarray(slips2.reshape(-1, 3))
    w = np.empty(len(nflat))
    _posterior(nflat, sflat, np.ascontiguousarray(axes), float(r), float(friction), w)
    rows = np.arange(len(nflat), dtype=np.int64)
    _, jtj, _ = _evaluate(nflat, sflat, rows, w, np.ascontiguousarray(axes), float(r))
    ev = np.linalg.eigvalsh(jtj)
    ok = bool(ev[-1] > 0 and ev[0] > 1e-6 * ev[-1])
    unc = dict(unc)
    unc["resolved"] = ok
    if not ok:
        unc.update({"sigma1_deg": 90.0, "sigma2_deg": 90.0, "sigma3_deg": 90.0,
                    "shape_ratio": [0.0, 1.0], "shmax_azimuth_deg": [0.0, 180.0],
                    "shmax_half_width_deg": 90.0})  # fmt: skip
    return unc


def _fit(
    normals2: np.ndarray, slips2: np.ndarray, friction: float | None
) -> tuple[np.ndarray, float, float, np.ndarray]:
    """Full-data answer: iterative joint inversion (friction chosen if None) as the start,
    then the nonlinear refinement with the nodal planes weighted by :func:`plane_posterior`
    (expectation-maximisation: weights, then a weighted Levenberg-Marquardt fit, repeated).
    Returns (axes, R, friction, plane posterior (n, 2))."""
    rows = np.arange(len(normals2))
    if friction is None:
        best = (-np.inf, 0.6, None)
        terms = linear_terms(normals2, slips2)
        for mu in FRICTION_GRID:
            t, c = iterative_linear(normals2, slips2, float(mu), terms=terms)
            score = float(np.mean(instability(t, normals2[rows, c], float(mu))))
            if score > best[0]:
                best = (score, float(mu), t)
        friction, tensor = best[1], best[2]
    else:
        tensor, _ = iterative_linear(normals2, slips2, float(friction))
    v0, r0 = principal(tensor)

    def em(nrm2: np.ndarray, slp2: np.ndarray, v: np.ndarray, r: float) -> tuple[np.ndarray, float]:
        nflat = np.ascontiguousarray(nrm2.reshape(-1, 3))
        sflat = np.ascontiguousarray(slp2.reshape(-1, 3))
        v, r = _em(nflat, sflat, np.ascontiguousarray(v), float(r), float(friction),
                   EM_ITERATIONS, REFINE_ITERATIONS)  # fmt: skip
        return np.ascontiguousarray(v), float(r)

    _, kappa = plane_posterior(tensor, normals2, slips2, float(friction))
    kappa = max(kappa, 10.0)

    def score(nrm2: np.ndarray, slp2: np.ndarray, v: np.ndarray, r: float) -> float:
        """Negative log-likelihood of the two-plane mixture that :func:`plane_posterior`
        weighs (one concentration for every start)."""
        t = reduced_tensor(v, r)
        cos_m = np.sum(predicted_slip(t, nrm2)[0] * slp2, axis=-1)
        z = kappa * (cos_m - 1.0) + 0.25 * kappa * instability(t, nrm2, float(friction))
        zmax = np.max(z, axis=1)
        return float(-np.sum(zmax + np.log(np.sum(np.exp(z - zmax[:, None]), axis=1))))

    # Starts: the linear answer, and its axes with sigma1/sigma2 or sigma2/sigma3 swapped, each
    # with its own R and with R = 0.25 and 0.75. Where R is near 0 or 1 those pairs of axes are
    # barely told apart and a single start can stay in the wrong basin. The starts are refined
    # on at most MULTISTART_MAX mechanisms; the one with the smallest misfit is refined on all.
    sub = np.arange(len(normals2))
    if len(sub) > MULTISTART_MAX:
        sub = np.sort(np.random.default_rng(0).choice(len(sub), MULTISTART_MAX, replace=False))
    n_sub, s_sub = normals2[sub], slips2[sub]
    best = None
    for perm in ([0, 1, 2], [1, 0, 2], [0, 2, 1]):
        vs = np.ascontiguousarray(v0[:, perm] * ([1, 1, 1] if perm == [0, 1, 2] else [1, 1, -1]))
        for rs in (r0, 0.25, 0.75):
            v, r = em(n_sub, s_sub, vs, rs)
            sc = score(n_sub, s_sub, v, r)
            if best is None or sc < best[0] - 1e-9:
                best = (sc, v, r)
    _, v, r = best
    if len(sub) < len(normals2):
        v, r = em(normals2, slips2, v, r)
    post, _ = plane_posterior(reduced_tensor(v, r), normals2, slips2, float(friction))
    return v, r, float(friction), post


def invert_stress(
    strike: ArrayLike,
    dip: ArrayLike,
    rake: ArrayLike,
    *,
    friction: float | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    threads: int | None = None,
) -> StressResult:
    """Invert focal mechanisms for the orientation of the principal stresses and R.

    Parameters
    ----------
    strike, dip, rake : (n,) degrees, Aki & Richards; either nodal plane of each mechanism.
    friction : fault friction for the instability plane choice; None = chosen 0.2-1.0 by the
        mean instability of the chosen planes (Vavrycuk 2014).
    n_bootstrap : resamples for the 95% confidence (0: none).
    seed : random seed of the resampling (same inputs and seed, same answer).
    threads : numba threads for the bootstrap (default: numba's setting).

    Returns
    -------
    :class:`StressResult`; ``.to_dict()`` is the JSON contract.

    Needs at least 4 mechanisms (4 unknowns); the answer is meaningful from ~20 on.
    """
    strike, dip, rake = (np.atleast_1d(np.asarray(a, dtype=float)) for a in (strike, dip, rake))
    if not (strike.shape == dip.shape == rake.shape) or strike.ndim != 1:
        raise ValueError(f"strike, dip, rake: expected equal 1-D shapes, got {strike.shape}, "
                         f"{dip.shape}, {rake.shape}")  # fmt: skip
    if not np.all(np.isfinite(strike) & np.isfinite(dip) & np.isfinite(rake)):
        raise ValueError("strike, dip, rake: expected finite values")
    if len(strike) < 4:
        raise ValueError(f"expected at least 4 mechanisms, got {len(strike)}")
    if friction is not None and not 0.0 <= friction <= 2.0:
        raise ValueError(f"friction: expected 0-2, got {friction}")
    normals2, slips2 = fault_vectors(strike, dip, rake)
    normals2 = np.ascontiguousarray(normals2)
    slips2 = np.ascontiguousarray(slips2)
    axes, r, mu, post = _fit(normals2, slips2, friction)
    tensor = reduced_tensor(axes, r)
    shmax = float(shmax_azimuth(tensor))
    n = len(strike)
    rows = np.arange(n)
    choice = (post[:, 1] > 0.5).astype(np.intp)
    misfit = misfit_angles(tensor, normals2[rows, choice], slips2[rows, choice])
    inst = instability(tensor, normals2[rows, choice], mu)

    b_axes = np.zeros((0, 3, 3))
    b_r = np.zeros(0)
    if n_bootstrap > 0:
        rng = np.random.default_rng(seed)
        pick = rng.integers(0, n, size=(n_bootstrap, n))
        # the plane choice resampled: from the posterior tempered by PLANE_TEMPER (the posterior
        # treats the stress as known; it is not, and the tempered draw restores that doubt)
        logit = np.log(np.clip(post[:, 1], 1e-300, None)) - np.log(
            np.clip(post[:, 0], 1e-300, None)
        )
        p1 = 1.0 / (1.0 + np.exp(-np.clip(logit / PLANE_TEMPER, -50, 50)))
        plane = rng.random((n_bootstrap, n)) < p1[pick]
        idx = (2 * pick + plane).astype(np.int64)
        b_axes = np.empty((n_bootstrap, 3, 3))
        b_r = np.empty(n_bootstrap)
        nflat = np.ascontiguousarray(normals2.reshape(-1, 3))
        sflat = np.ascontiguousarray(slips2.reshape(-1, 3))
        old = None
        if threads is not None and _numba is not None:
            old = _numba.get_num_threads()
            _numba.set_num_threads(max(1, min(threads, _numba.config.NUMBA_NUM_THREADS)))
        try:
            _bootstrap(nflat, sflat, idx, axes, r, BOOTSTRAP_ITERATIONS, b_axes, b_r)
        finally:
            if old is not None:
                _numba.set_num_threads(old)
    scale = np.stack([np.ones_like(b_r), 1.0 - b_r, np.zeros_like(b_r)], axis=1)
    b_shmax = shmax_azimuth((b_axes * scale[:, None, :]) @ np.swapaxes(b_axes, 1, 2))
    return StressResult(
        axes=axes,
        shape_ratio=r,
        shmax_azimuth_deg=shmax,
        friction=mu,
        fault_plane=choice,
        misfit_deg=misfit,
        instability=inst,
        n_mechanisms=n,
        uncertainty=_resolved(
            _summarise(axes, r, shmax, b_axes, b_r, b_shmax, misfit, mu),
            normals2,
            slips2,
            axes,
            r,
            mu,
        ),
        bootstrap_axes=b_axes,
        bootstrap_shape_ratio=b_r,
        bootstrap_shmax_deg=b_shmax,
    )
