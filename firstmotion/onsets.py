"""Onset times from the data alone: Maeda's AIC split of a window into two stationary parts.

Used by the STA/LTA detector and the learned picker to refine P onsets (``stream``) and by the
polarity reader for its own estimate of an onset near a given pick (``workers.polarity``):
both through :func:`aic_onsets_near`, on the 1-20 Hz band (:data:`ONSET_BAND_HZ`).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal

from firstmotion.filters import butter_sos, sos_steady_state

_TINY = np.finfo(np.float64).tiny
ONSET_BAND_HZ = (1.0, 20.0)  # the band P onsets are refined in (upper corner <= 0.45 x rate)


def parabolic_offsets(left: ArrayLike, mid: ArrayLike, right: ArrayLike) -> np.ndarray:
    """Offsets (-0.5..0.5 samples) of the extrema of parabolas through three points each (0
    where the three lie on a line or are not finite)."""
    left, mid, right = (np.asarray(v, dtype=np.float64) for v in (left, mid, right))
    denom = left - 2.0 * mid + right
    ok = (denom != 0) & np.isfinite(denom)
    with np.errstate(invalid="ignore"):  # (left - right) of infinite points
        shift = np.clip(0.5 * (left - right) / np.where(ok, denom, 1.0), -0.5, 0.5)
    return np.where(ok, shift, 0.0)


def parabolic_offset(left: float, mid: float, right: float) -> float:
    """:func:`parabolic_offsets` of one triple."""
    return float(parabolic_offsets(left, mid, right))


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
    curve = np.where(np.isfinite(curve), curve, np.inf)
    n = curve.shape[1]
    out = np.full(curve.shape[0], np.nan)
    found = np.isfinite(curve).any(axis=1)
    if n < 4 or not found.any():
        return out
    k = np.argmin(curve, axis=1)
    out[found] = k[found]
    inner = np.flatnonzero(found & (k > 1) & (k < n - 2))
    if inner.size:
        ki = k[inner]
        out[inner] += parabolic_offsets(
            curve[inner, ki - 1], curve[inner, ki], curve[inner, ki + 1]
        )
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
    return float(aic_onsets(np.asarray(x, dtype=np.float64)[None, :])[0])


def aic_onsets_near(
    rows: ArrayLike,
    sampling_rate_hz: float,
    pick_index: ArrayLike,
    *,
    before_s: float,
    after_s: float,
    context_s: float,
    min_context_s: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Onsets near picks from the records alone: for each row, :func:`aic_onsets` of the row
    causally band-passed (:data:`ONSET_BAND_HZ`, started in the steady state of its first
    sample and settled over up to ``context_s``) over ``before_s`` before the pick to
    ``after_s`` after it: (N,) fractional sample indices into the rows, NaN where a row does
    not hold that window, ``min_context_s`` of settling before it, or holds non-finite samples
    there; and (N,) the jump the change point makes, the band-passed RMS after it over the RMS
    before it within the window (NaN with the onset). Rows holding the same settling are
    filtered together."""
    x = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    picks = np.rint(np.atleast_1d(np.asarray(pick_index, dtype=np.float64))).astype(np.int64)
    rate = float(sampling_rate_hz)
    before, after = int(round(before_s * rate)), int(round(after_s * rate))
    start = picks - before
    context = np.minimum(int(round(context_s * rate)), start)
    usable = (context >= int(round(min_context_s * rate))) & (picks + after <= x.shape[1])
    out = np.full(picks.size, np.nan)
    jump = np.full(picks.size, np.nan)
    if not usable.any():
        return out, jump
    high = min(ONSET_BAND_HZ[1], 0.45 * rate)
    sos = butter_sos(4, (ONSET_BAND_HZ[0], high), "bandpass", rate)[0]
    steady = sos_steady_state(sos)
    for ctx in np.unique(context[usable]):
        idx = np.flatnonzero(usable & (context == ctx))
        cols = (start[idx] - ctx)[:, None] + np.arange(ctx + before + after)[None, :]
        seg = x[idx[:, None], cols]
        finite = np.isfinite(seg).all(axis=1)
        if not finite.any():
            continue
        idx, seg = idx[finite], seg[finite]
        zi = steady[:, None, :] * seg[None, :, :1]
        y = signal.sosfilt(sos, seg, axis=1, zi=zi)[0][:, ctx:]
        onset = aic_onsets(y)
        out[idx] = start[idx] + onset
        later = np.arange(y.shape[1])[None, :] >= np.ceil(onset)[:, None]
        power = y * y
        mean_after = (power * later).sum(axis=1) / np.maximum(later.sum(axis=1), 1)
        mean_before = (power * ~later).sum(axis=1) / np.maximum((~later).sum(axis=1), 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            jump[idx] = np.sqrt(mean_after / mean_before)
    return out, jump
