"""Onset times from the data alone: Maeda's AIC split of a window into two stationary parts.

Used by the STA/LTA detector and the learned picker to refine P onsets (``stream``) and by the
polarity reader for its own estimate of an onset near a given pick (``workers.polarity``).
"""

from __future__ import annotations

import numpy as np

_TINY = np.finfo(np.float64).tiny


def _parabolic_offset(y_left: float, y_mid: float, y_right: float) -> float:
    """Offset (-0.5..0.5 samples) of the extremum of a parabola through three points."""
    denom = y_left - 2.0 * y_mid + y_right
    if denom == 0 or not np.isfinite(denom):
        return 0.0
    return float(np.clip(0.5 * (y_left - y_right) / denom, -0.5, 0.5))


def aic_curve(x: np.ndarray) -> np.ndarray:
    """Maeda's (1985) AIC straight from the data: ``AIC[k] = k log var(x[:k]) +
    (n - k - 1) log var(x[k:])`` for ``k = 1 .. n-2`` (``inf`` at the ends), vectorised with
    cumulative sums (variances clipped at a tiny positive floor); along the last axis of
    ``x``, so rows ``(..., n)`` give their curves at once."""
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[-1]
    out = np.full(x.shape, np.inf)
    if n < 4:
        return out
    x = x - x.mean(axis=-1, keepdims=True)  # cumulative sums of centred data lose less precision
    c1 = np.cumsum(x, axis=-1)
    c2 = np.cumsum(x * x, axis=-1)
    k = np.arange(1, n - 1)
    m_front = c1[..., k - 1] / k
    var_front = c2[..., k - 1] / k - m_front**2
    n_back = n - k
    m_back = (c1[..., -1:] - c1[..., k - 1]) / n_back
    var_back = (c2[..., -1:] - c2[..., k - 1]) / n_back - m_back**2
    floor = 1e-12 * np.maximum(c2[..., -1:] / n, _TINY)
    var_front = np.maximum(var_front, floor)
    var_back = np.maximum(var_back, floor)
    out[..., 1 : n - 1] = k * np.log(var_front) + (n - k - 1) * np.log(var_back)
    return out


def aic_onsets(x: np.ndarray) -> np.ndarray:
    """:func:`aic_onset` of each row of ``x`` ``(N, n)`` at once: (N,) fractional indices."""
    curve = aic_curve(np.atleast_2d(x))
    n = curve.shape[1]
    if n < 4:
        return np.full(curve.shape[0], np.nan)
    k = np.argmin(curve, axis=1)
    out = k.astype(np.float64)
    inner = (k > 1) & (k < n - 2)
    if inner.any():
        r = np.flatnonzero(inner)
        left, mid, right = curve[r, k[r] - 1], curve[r, k[r]], curve[r, k[r] + 1]
        denom = left - 2.0 * mid + right
        ok = (denom != 0) & np.isfinite(denom)
        shift = np.zeros(r.size)
        shift[ok] = np.clip(0.5 * (left[ok] - right[ok]) / denom[ok], -0.5, 0.5)
        out[r] += shift
    return out


def aic_curve_py(x: np.ndarray) -> np.ndarray:
    """Slow twin of :func:`aic_curve` (``np.var`` of every split)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    out = np.full(n, np.inf)
    if n < 4:
        return out
    floor = 1e-12 * max(float(np.mean((x - x.mean()) ** 2)), _TINY)
    for k in range(1, n - 1):
        var_front = max(float(np.var(x[:k])), floor)
        var_back = max(float(np.var(x[k:])), floor)
        out[k] = k * np.log(var_front) + (n - k - 1) * np.log(var_back)
    return out


def aic_onset(x: np.ndarray) -> float:
    """Onset (fractional sample index into ``x``) at the AIC minimum (Maeda 1985): the split
    into two stationary segments of least total log-variance; sub-sample by a parabola.

    The AIC minimum ``k`` is the first sample of the second segment. Returns ``nan`` when the
    window is too short (< 4 samples)."""
    curve = aic_curve(x)
    finite = np.isfinite(curve)
    if not finite.any():
        return float("nan")
    k = int(np.argmin(np.where(finite, curve, np.inf)))
    if 1 < k < curve.size - 2:
        return k + _parabolic_offset(curve[k - 1], curve[k], curve[k + 1])
    return float(k)
