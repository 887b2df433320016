"""What a seismologist checks in a first motion, measured on the window the model sees.

Pure numerics over the *linear* model-rate windows of
:func:`workers.polarity.preprocess.linear_windows` (resampled, causally high-passed, not yet
normalised; the pick at ``window_pre_samples``):

* ``noise_sigma``: standard deviation of the window before ``pick - 0.1 s``;
* the **first lobe**: the first sample within ``pick - 0.1 s .. pick + 0.15 s`` whose value
  exceeds ``k_sigma`` noise sigmas, walked back to where its lobe rises out of the noise (the
  onset), with its sign and its peak in noise sigmas;
* the **main swing**: the lobe right after the first one (of the other sign), its onset and
  its peak;
* a **precursor**: a first lobe whose peak is at most ``precursor_max_ratio`` of the main
  swing's. The bound is the physics of the linear-phase anti-alias FIR of a datalogger: its
  acausal precursor before a step is a ringing whose largest lobe, the one right before the
  step and of the opposite sign, is a fixed fraction of the step, at most the Gibbs overshoot
  of an ideal low-pass (8.95%; the windowed FIRs of real dataloggers ring less) -- a lobe
  larger than that cannot be the filter's. Analysts read the main swing after such a lobe;
  whether a lobe under the bound is a precursor or a real weak first motion the window alone
  cannot prove, so every read records the flag (``Polarity.precursor``), and the check is
  switched off with ``reading.precursor_max_ratio: 0`` in the model card. The lobe must also
  be short, from where it leaves the noise (1 sigma) to where the main swing starts at most
  ``precursor_max_width_s`` (60 ms): a FIR's ringing sits near its corner (0.4x the sampling
  rate or more) and its precursor energy in the last periods before the step; in the model's
  band (its own causal 50 Hz low-pass) the three INGV lobes read as precursors span 20-50 ms;
* ``onset_sharpness``: the read lobe's rise from its onset to its peak, in noise sigmas per
  10 ms (impulsive onsets rise tens to thousands of sigmas in 10 ms; emergent ones a few).

:func:`naive_polarity` is the one-line rule a reader must beat: a 1 Hz causal high-pass and the
sign of the first sample beyond 4 noise sigmas within 0.1 s after the pick.

.. seealso:: Scherbaum (2007), Of poles and zeros, ch. 11 (acausal FIR precursors);
   Scherbaum & Bouin (1997), FIR filter effects and nucleation phases, GJI 128, 730-735.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal

GIBBS_FRACTION = 0.0895  # overshoot of an ideal low-pass at a step (Gibbs), the FIR bound
# a datalogger's anti-alias FIR has its corner at 0.38-0.47x its output rate: its ringing is in
# the model's band (below the 50 Hz Nyquist of its 100 Hz rate) only on channels sampled under
# 50 / 0.38 Hz; faster channels' precursors are filtered out before the window is read
FIR_CORNER_MIN_FRACTION = 0.38
PRECURSOR_MAX_NATIVE_HZ = 50.0 / FIR_CORNER_MIN_FRACTION  # 131.6 Hz
# a FIR precursor lobe is at most this fraction of the swing's largest one-sample rise (model
# rate): the bound of linear-phase FIRs of real dataloggers (Kaiser / equiripple, 31-161 taps,
# corner 0.38-0.47x) on ideal and t*-attenuated steps, simulated in tests/test_polarity_evidence.py
PRECURSOR_MAX_RISE_RATIO = 0.2


@dataclass(frozen=True)
class Evidence:
    """Per-row evidence arrays (N,); offsets in model-rate samples from the pick.

    ``first_sign`` / ``first_snr`` / ``first_onset``: the first lobe beyond ``k_sigma`` (sign 0
    and NaNs when none); ``main_sign`` / ``main_snr`` / ``main_onset``: the main swing;
    ``precursor``: the first lobe reads as a precursor of the main swing; ``read_sign`` /
    ``read_snr`` / ``read_onset``: the lobe a reading refers to (the first lobe, or the main
    swing after a precursor with ``read_main_swing``); ``sharpness``: its rise in noise
    sigmas per 10 ms.
    """

    noise_sigma: np.ndarray
    first_sign: np.ndarray
    first_snr: np.ndarray
    first_onset: np.ndarray
    main_sign: np.ndarray
    main_snr: np.ndarray
    main_onset: np.ndarray
    precursor: np.ndarray
    read_sign: np.ndarray
    read_snr: np.ndarray
    read_onset: np.ndarray
    sharpness: np.ndarray


def _lobe_start(z: np.ndarray, idx: np.ndarray, floor: float = 1.0) -> np.ndarray:
    """Walk each row back from ``idx`` while the previous sample has the same sign and exceeds
    ``floor`` (noise sigmas): where the lobe leaves the noise."""
    rows = np.arange(z.shape[0])
    sign = np.sign(z[rows, idx])
    start = idx.copy()
    active = np.ones(z.shape[0], dtype=bool)
    for _ in range(z.shape[1]):
        prev = np.maximum(start - 1, 0)
        v = z[rows, prev] * sign
        step = active & (start > 0) & (v > floor)
        if not step.any():
            break
        start = np.where(step, prev, start)
        active = step
    return start


def _lobe_peak(z: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Peak (noise sigmas, positive) and its index of the lobe holding ``idx`` (until the sign
    changes)."""
    rows = np.arange(z.shape[0])
    sign = np.sign(z[rows, idx])
    aligned = z * sign[:, None]
    cols = np.arange(z.shape[1])[None, :]
    after = cols >= idx[:, None]
    ended = np.cumsum(after & (aligned <= 0), axis=1) > 0
    inside = after & ~ended
    vals = np.where(inside, aligned, -np.inf)
    at = np.argmax(vals, axis=1)
    return vals[rows, at], at


def first_lobe_evidence(
    win: np.ndarray,
    pick_sample: int,
    rate_hz: float,
    *,
    k_sigma: float = 4.0,
    precursor_max_ratio: float = GIBBS_FRACTION,
    precursor_max_width_s: float = 0.06,
    read_main_swing: bool = False,
    native_rate_hz: ArrayLike | None = None,
    precursor_max_native_hz: float = 0.0,
    precursor_max_rise_ratio: float = 0.0,
    before_s: float = 0.1,
    after_s: float = 0.15,
) -> Evidence:
    """Evidence of linear windows ``win`` (N, W) at ``rate_hz`` with the pick at
    ``pick_sample``; see the module docstring. ``precursor_max_ratio = 0`` never flags a
    precursor; ``read_main_swing``: the read lobe after a precursor is the main swing (else
    always the first lobe).

    The native check (each bound 0: off): a lobe is flagged only where a FIR's ringing can be
    in the window, the channel's ``native_rate_hz`` (scalar or (N,); None: unknown, taken as
    in band) under ``precursor_max_native_hz``, and where its peak is at most
    ``precursor_max_rise_ratio`` of the main swing's largest one-sample rise (a FIR's
    precursor is a fraction of the step that follows it, and that step is sharp: an emergent
    swing that rises slowly after a lobe did not make that lobe ring)."""
    win = np.asarray(win, dtype=np.float64)
    n, w = win.shape
    quiet_end = max(2, pick_sample - int(round(before_s * rate_hz)))
    s1 = min(w, pick_sample + int(round(after_s * rate_hz)) + 1)
    sigma = win[:, :quiet_end].std(axis=1) if n else np.zeros(0)
    sigma = np.maximum(sigma, 1e-12 * np.maximum(np.abs(win).max(axis=1, initial=0.0), 1e-300))
    z = win[:, quiet_end:s1] / sigma[:, None]
    az = np.abs(z)
    rows = np.arange(n)
    hit = az > k_sigma
    has = hit.any(axis=1)
    i1 = np.argmax(hit, axis=1)
    first_sign = np.where(has, np.sign(z[rows, i1]), 0).astype(np.int8)
    first_start = _lobe_start(z, i1)
    first_peak, first_at = _lobe_peak(z, i1)
    # the lobe right after the first: the first sample past it of the other sign
    aligned = z * first_sign[:, None]
    cols = np.arange(z.shape[1])[None, :]
    changed = (cols > i1[:, None]) & (aligned < 0)
    has_next = has & changed.any(axis=1)
    im = np.where(has_next, np.argmax(changed, axis=1), i1)
    main_sign = np.where(has_next, np.sign(z[rows, im]), first_sign).astype(np.int8)
    main_start = np.where(has_next, _lobe_start(z, im), first_start)
    main_peak, main_at = _lobe_peak(z, im)
    width_s = (im - first_start) / rate_hz
    precursor = (
        has_next
        & (first_peak <= precursor_max_ratio * main_peak)
        & (width_s <= precursor_max_width_s)
    )
    if precursor_max_rise_ratio > 0:
        rise = np.diff(z, axis=1, prepend=z[:, :1]) * main_sign[:, None]
        in_swing = (cols > first_at[:, None]) & (cols <= main_at[:, None])
        max_rise = np.where(in_swing, rise, 0.0).max(axis=1, initial=0.0)
        precursor &= first_peak <= precursor_max_rise_ratio * max_rise
    if precursor_max_native_hz > 0 and native_rate_hz is not None:
        native = np.broadcast_to(np.asarray(native_rate_hz, dtype=np.float64), (n,))
        precursor &= native < precursor_max_native_hz
    main_read = precursor & read_main_swing
    read_sign = np.where(main_read, main_sign, first_sign).astype(np.int8)
    read_peak = np.where(main_read, main_peak, first_peak)
    read_start = np.where(main_read, main_start, first_start)
    read_at = np.where(main_read, main_at, first_at)
    rise_s = np.maximum(read_at - read_start + 1, 1) / rate_hz
    offset = quiet_end - pick_sample
    nan = np.full(n, np.nan)
    return Evidence(
        noise_sigma=sigma,
        first_sign=first_sign,
        first_snr=np.where(has, first_peak, nan),
        first_onset=np.where(has, first_start + offset, nan),
        main_sign=main_sign,
        main_snr=np.where(has, main_peak, nan),
        main_onset=np.where(has, main_start + offset, nan),
        precursor=precursor,
        read_sign=read_sign,
        read_snr=np.where(has, read_peak, nan),
        read_onset=np.where(has, read_start + offset, nan),
        sharpness=np.where(has, read_peak / (rise_s * 100.0), nan),
    )


def naive_polarity(
    data: ArrayLike,
    sampling_rate_hz: float,
    pick_index: ArrayLike,
    *,
    highpass_hz: float = 1.0,
    k_sigma: float = 4.0,
    look_s: float = 0.1,
    noise_s: float = 5.0,
    gap_s: float = 0.05,
    context_s: float = 30.0,
) -> np.ndarray:
    """The one-line rule: polarity int8 (N,) of raw rows ``data`` (N, L) at their picks.

    Each row is demeaned with the samples before the pick, high-passed by a first-order causal
    Butterworth at ``highpass_hz`` (started in steady state, ``context_s`` before the pick);
    the noise is the standard deviation over ``noise_s`` ending ``gap_s`` before the pick; the
    polarity is the sign of the first sample within ``look_s`` after the pick that departs
    more than ``k_sigma`` noise sigmas from the noise mean (0 when none does)."""
    x = np.asarray(data, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    picks = np.atleast_1d(np.asarray(pick_index)).astype(np.int64)
    rate = float(sampling_rate_hz)
    sos = signal.butter(1, highpass_hz, "highpass", fs=rate, output="sos")
    zi = signal.sosfilt_zi(sos)
    out = np.zeros(picks.size, dtype=np.int8)
    for i, (row, k) in enumerate(zip(x, picks, strict=True)):
        lo = max(0, k - int(context_s * rate))
        seg = row[lo : k + int(look_s * rate) + 2]
        kk = k - lo
        if kk < 10 or seg.size <= kk or not np.isfinite(seg).all():
            continue
        seg = seg - seg[:kk].mean()
        y = signal.sosfilt(sos, seg, zi=zi * seg[0])[0]
        noise = y[max(0, kk - int(noise_s * rate)) : kk - int(gap_s * rate)]
        if noise.size < 5:
            continue
        dev = y[kk : kk + int(look_s * rate) + 1] - noise.mean()
        beyond = np.nonzero(np.abs(dev) > k_sigma * noise.std())[0]
        if beyond.size:
            out[i] = np.sign(dev[beyond[0]])
    return out


# the reader's own onset estimate (firstmotion.onsets.aic_onsets_near, on the band the detector
# and the picker refine P onsets in)
AIC_BEFORE_S = 0.5  # the AIC window around a pick: from this before it
AIC_AFTER_S = 0.25  # to this after it
AIC_CONTEXT_S = 2.0  # band-pass settling before the window
AIC_MIN_CONTEXT_S = 1.0  # at least this much of it held
# a change point is an onset where it raises that band's RMS this many times (the learned
# picker's P onset gate and the detector's min_snr, on the same band)
AIC_MIN_JUMP = 2.0
