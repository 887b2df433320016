"""Window preparation for the polarity model: one code path for training and serving.

Raw vertical-component rows at any rate >= 40 Hz become fixed-length, unit-peak windows at the
model rate, centred on the pick:

1. cut a segment around the pick at the input rate: ``context_pre_s`` of extra history before
   the model window (so the high-pass filter has settled) and a short margin after it (so the
   resampling filter's edge effects stay outside the window);
2. demean with the pre-pick samples (out-of-range samples take the nearest valid value, and
   samples of a gap, NaN or inf, the last valid one before them); when serving
   (``despike=True``, the classifier's reads) isolated one-sample glitches are first replaced
   by the mean of their neighbours (:func:`firstmotion.glitches.repair_glitches`);
3. resample to the model rate with anti-alias filtering, never bare interpolation:
   ``anti_alias="causal"`` (default) zero-stuffs by ``up``, low-passes with a causal 8th-order
   Chebyshev type II filter (60 dB down at the lower of the two Nyquist frequencies) and keeps
   every ``down``-th sample, so no precursor appears before a sharp onset;
   ``"zero_phase"`` uses the linear-phase polyphase FIR of :func:`scipy.signal.resample_poly`
   (Kaiser window), whose Gibbs pre-ringing (measured on a 30 Hz-corner pulse: up to 24% of
   the peak, 20-90 ms ahead of the onset, often of the opposite sign) can look like a first
   motion. Ratios with ``up > 12`` (odd rates: 75.19 Hz is 1052/791, 44.1 Hz 1000/441) go
   through a fine grid instead (:func:`causal_interp_resample`: zero-stuff by a small factor,
   the same kind of causal low-pass, linear interpolation); they used the polyphase FIR until a
   rate sweep showed 6-18% of clear onsets read with the wrong sign at 44.1, 75.19, 97.3, 99
   and 102.4 Hz (0.2-0.7% at the standard rates).
   Input already at the model rate goes through the same filter (``band_limit_same_rate``:
   zero-stuff by 2, the low-pass, every 2nd sample), so the model sees one band whatever the
   input rate. Without it (cards before the option) 100 Hz rows reached the model with their
   45-50 Hz content, where a digitizer's linear-phase anti-alias FIR rings *before* a sharp
   onset: on 100 Hz onsets that had passed such a FIR (``polarity eval``'s
   ``linear_phase_fir`` set, SNR 3-100), polarity_v2 gave the wrong sign to 7.4% unfiltered
   and to 1.0% with this filter (README, "Polarity model");
4. high-pass with a *causal* Butterworth filter (:func:`scipy.signal.sosfilt`, state initialised
   to the steady state of the first sample) so microseisms and drift, often far larger than a
   small event's first motion, are removed without any acausal precursor that could fake or
   flip a first motion;
5. cut ``window_pre_samples`` before and ``window_post_samples`` from the pick (steps 3-5
   are linear in the segment, so they run as one matrix product,
   :func:`band_window_matrix`, made once per rate from the filters themselves);
6. normalise: ``"max_abs"`` divides by the window's maximum absolute value (one channel);
   ``"max_abs+noise_asinh"`` adds a second channel ``asinh(x / noise) / 10`` with ``noise`` the
   standard deviation of the pre-pick part of the window (ending 0.1 s before the pick): a
   log-compressed, noise-scaled view in which a first lobe 50x the noise but 1% of the
   following swing (common after high-pass filtering of a low-corner pulse) stands out.

Every step is linear and odd in the input except the normalisation (and the glitch repair),
which are odd too, so
``prepare_windows(-x) == -prepare_windows(x)`` bit for bit (IEEE arithmetic is symmetric under
negation): the classifier's flip test-time augmentation relies on that.

Rows that cannot be classified are flagged with a reason instead of raising: ``"nan"`` (NaN or
inf inside the window), ``"too_short"`` (the pick too close to either end of the row to fill
the model window) and ``"flat"`` (constant window, e.g. all zeros). Their windows are zeros.
A row cut tight around the pick (less than the window's 0.64 s on a side, as event datasets
cut them) is read when it holds ``short_row_min_noise_s`` (0.2 s) of noise before ``pick -
0.1 s`` and ``short_row_min_after_s`` (0.3 s) after the pick: :func:`complete_rows` completes
its history with that noise mirrored back in time and its end with its last value held (the
classifier does this before step 1, so every re-read of the row sees the same row).

.. seealso:: Ross, Meier & Hauksson (2018), P wave arrival picking and first-motion polarity
   determination with deep learning, JGR 123, 5120-5129 (windowing around the pick);
   SeisBench ``WaveformModel.annotate_batch_pre`` (the model owns its preprocessing).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal

from firstmotion.filters import butter_sos
from firstmotion.glitches import repair_glitches

MIN_SAMPLING_RATE_HZ = 40.0
REASON_OK = ""
REASON_NAN = "nan"
REASON_TOO_SHORT = "too_short"
REASON_FLAT = "flat"
NORMALISATIONS = ("max_abs", "max_abs+noise_asinh")
NOISE_GUARD_S = 0.1  # the noise ends this long before the pick (normalisation, evidence)
TREND_MIN_RISE = 2.0  # a noise span shows a trend when its line rises twice its scatter


@dataclass(frozen=True)
class PreprocessConfig:
    """Parameters of :func:`prepare_windows`; stored in the model card's ``preprocessing``."""

    sampling_rate_hz: float = 100.0
    window_pre_samples: int = 64
    window_post_samples: int = 64
    context_pre_s: float = 3.0
    margin_post_s: float = 0.2
    highpass_hz: float = 1.5
    highpass_order: int = 4
    normalisation: str = "max_abs+noise_asinh"
    anti_alias: str = "causal"
    band_limit_same_rate: bool = True
    # a row holding less than the model window before the pick is read when it holds at
    # least this much noise before pick - 0.1 s (its missing history that noise mirrored),
    # and one holding less than the window after the pick when it holds at least
    # short_row_min_after_s after it (its last value held; complete_rows); None: such rows
    # are not read (reason too_short)
    short_row_min_noise_s: float | None = 0.2
    short_row_min_after_s: float | None = 0.3

    def __post_init__(self) -> None:
        if self.sampling_rate_hz <= 0:
            raise ValueError(f"sampling_rate_hz must be > 0, got {self.sampling_rate_hz}")
        if self.window_pre_samples < 1 or self.window_post_samples < 1:
            raise ValueError("window_pre_samples and window_post_samples must be >= 1")
        if not 0 < self.highpass_hz < self.sampling_rate_hz / 2:
            raise ValueError(f"highpass_hz must be in (0, Nyquist), got {self.highpass_hz}")
        if self.anti_alias not in ("causal", "zero_phase"):
            raise ValueError(
                f"unknown anti_alias {self.anti_alias!r} (known: 'causal', 'zero_phase')"
            )
        for key in ("short_row_min_noise_s", "short_row_min_after_s"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ValueError(f"{key} must be > 0 (or None)")
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"unknown normalisation {self.normalisation!r} (known: {NORMALISATIONS})"
            )

    @property
    def n_channels(self) -> int:
        return 2 if self.normalisation == "max_abs+noise_asinh" else 1

    @property
    def window_samples(self) -> int:
        return self.window_pre_samples + self.window_post_samples

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown preprocessing keys {sorted(unknown)}")
        # cards written before the option was trained without it
        return cls(**{"band_limit_same_rate": False, **d})


@lru_cache(maxsize=64)
def resampling_ratio(input_rate_hz: float, output_rate_hz: float) -> tuple[int, int]:
    """(up, down) with ``input_rate_hz * up / down ~= output_rate_hz`` (within 0.1%)."""
    frac = Fraction(output_rate_hz / input_rate_hz).limit_denominator(1000)
    if abs(float(frac) * input_rate_hz - output_rate_hz) > 1e-3 * output_rate_hz:
        raise ValueError(f"cannot resample {input_rate_hz} Hz to {output_rate_hz} Hz rationally")
    return frac.numerator, frac.denominator


def resamplable(input_rate_hz: float, config: PreprocessConfig) -> bool:
    """Whether rows at ``input_rate_hz`` can be resampled to the model's rate
    (:func:`resampling_ratio`)."""
    try:
        model_resampling(input_rate_hz, config)
    except ValueError:
        return False
    return True


def model_resampling(input_rate_hz: float, config: PreprocessConfig) -> tuple[int, int]:
    """(up, down) of step 3: :func:`resampling_ratio`, but (2, 2) for input already at the
    model rate when ``config.band_limit_same_rate`` (the same causal low-pass as every other
    rate; with ``anti_alias="zero_phase"`` a 2/2 polyphase FIR would be a copy, so it stays
    (1, 1))."""
    up, down = resampling_ratio(input_rate_hz, config.sampling_rate_hz)
    if (up, down) == (1, 1) and config.band_limit_same_rate and config.anti_alias == "causal":
        return 2, 2
    return up, down


@lru_cache(maxsize=32)
def _lowpass_sos(edge: float) -> tuple[np.ndarray, np.ndarray]:
    """The anti-alias low-pass: Chebyshev II, order 8, 60 dB down from ``edge`` (a fraction of
    the Nyquist frequency), with its unit-step steady state."""
    sos = signal.cheby2(8, 60.0, edge, btype="lowpass", output="sos")
    return sos, signal.sosfilt_zi(sos)


def _stuff_and_lowpass(x: np.ndarray, factor: int, edge: float) -> np.ndarray:
    """Rows (N, L) zero-stuffed by ``factor`` (scaled by it) and causally low-passed from
    ``edge``, the state started at the first sample's steady state."""
    sos, zi = _lowpass_sos(edge)
    if factor > 1:
        y = np.zeros((x.shape[0], x.shape[1] * factor))
        y[:, ::factor] = x * factor
    else:
        y = x
    y, _ = signal.sosfilt(sos, y, axis=-1, zi=zi[:, None, :] * x[None, :, :1])
    return y


def causal_resample(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resample rows (N, L) by ``up / down`` with a causal anti-alias filter (no precursor).

    Zero-stuffing by ``up`` (scaled by ``up``), a causal Chebyshev II low-pass 60 dB down at
    the lower Nyquist frequency (state started at the first sample's steady state), then every
    ``down``-th sample. Output sample ``k`` is at input time ``k * down / up`` samples.
    """
    # the lower Nyquist, as a fraction of the zero-stuffed Nyquist
    return _stuff_and_lowpass(x, int(up), 1.0 / max(int(up), int(down)))[:, ::down]


def causal_interp_resample(x: np.ndarray, up: int, down: int) -> np.ndarray:
    """Resample rows (N, L) by ``up / down`` where zero-stuffing by ``up`` is impractical (an
    odd rate such as 75.19 Hz gives 1052/791).

    Zero-stuff by a small ``U`` (the fine grid at least 8x the lower of the two rates), a
    causal Chebyshev II low-pass there 60 dB down at the lower of the two Nyquist frequencies,
    then linear interpolation onto the output grid: with the signal below 1/16 of the fine
    rate, interpolation droops it by < 0.1 dB and its images fold back > 45 dB down. Output
    sample ``k`` is at input time ``k * down / up`` samples and depends on nothing later than
    one fine-grid sample after it (no precursor)."""
    n_in = x.shape[1]
    band = min(1.0, up / down)  # the lower Nyquist, as a fraction of the input's
    fine = math.ceil(8 * band)
    y = _stuff_and_lowpass(x, fine, round(band / fine, 12))
    n_out = -(-n_in * up // down)
    pos = np.arange(n_out) * (fine * down / up)
    i0 = np.minimum(pos.astype(np.int64), y.shape[1] - 1)
    i1 = np.minimum(i0 + 1, y.shape[1] - 1)
    frac = pos - i0
    return y[:, i0] * (1.0 - frac) + y[:, i1] * frac


def causal_highpass(x: np.ndarray, corner_hz: float, order: int, rate_hz: float) -> np.ndarray:
    """Causal Butterworth high-pass along the last axis, started in steady state.

    The filter state is initialised as if the first sample had been constant forever, so a
    row that does not start at zero does not ring; no sample depends on later samples.
    """
    sos, zi = butter_sos(order, corner_hz, "highpass", rate_hz)
    if x.ndim == 1:
        return signal.sosfilt(sos, x, zi=zi * x[0])[0]
    zi_rows = zi[:, None, :] * x[None, :, :1]
    y, _ = signal.sosfilt(sos, x, axis=-1, zi=zi_rows)
    return y


def prepare_windows(
    data: ArrayLike,
    sampling_rate_hz: float,
    pick_index: ArrayLike,
    config: PreprocessConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Model-rate windows float32 and reasons (N,) str ('' when usable).

    Windows are (N, window_samples) for one channel, (N, 2, window_samples) for two.

    ``data`` is (N, L) (or (L,), treated as one row) raw counts or velocity at
    ``sampling_rate_hz`` >= 40 Hz; ``pick_index`` (N,) integer samples of the P pick in each row.
    Raises ``ValueError`` for a rate below 40 Hz or mismatched shapes. Rows with a reason are
    zeros.
    """
    win, reasons = linear_windows(data, sampling_rate_hz, pick_index, config)
    return normalise_windows(win, reasons, config)


def normalise_windows(
    win: np.ndarray, reasons: np.ndarray, config: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Step 6 on linear windows (N, W): float32 (N, W) or (N, 2, W); all-zero rows 'flat'."""
    reasons = np.asarray(reasons).astype(object)
    n, w = win.shape
    peak = np.max(np.abs(win), axis=1) if win.size else np.zeros(n)
    reasons[~(peak > 0) & (reasons == REASON_OK)] = REASON_FLAT
    ok = reasons == REASON_OK
    unit = np.zeros(win.shape)
    unit[ok] = win[ok] / peak[ok, None]
    if config.n_channels == 1:
        return unit.astype(np.float32), reasons.astype(str)
    quiet_end = max(
        2, config.window_pre_samples - int(round(NOISE_GUARD_S * config.sampling_rate_hz))
    )
    noise = unit[:, :quiet_end].std(axis=1)
    noise = np.maximum(noise, 1e-6)
    out = np.zeros((n, 2, w), dtype=np.float32)
    out[:, 0] = unit
    out[:, 1] = np.arcsinh(unit / noise[:, None]) / 10.0
    out[~ok] = 0.0
    return out, reasons.astype(str)


def model_band(x: np.ndarray, input_rate_hz: float, config: PreprocessConfig) -> np.ndarray:
    """Steps 3-4 on demeaned rows (N, L) at ``input_rate_hz``: resample to the model rate (see
    :func:`model_resampling`), then the causal high-pass. Sample ``k`` of the result is at input
    sample ``k * down / up``."""
    return _band(x, *model_resampling(input_rate_hz, config), config)


def _band(x: np.ndarray, up: int, down: int, config: PreprocessConfig) -> np.ndarray:
    """:func:`model_band` for the resampling ratio ``up / down``."""
    if (up, down) != (1, 1):
        if config.anti_alias == "causal" and up <= 12:
            x = causal_resample(x, up, down)
        elif config.anti_alias == "causal":
            x = causal_interp_resample(x, up, down)
        else:
            x = signal.resample_poly(x, up, down, axis=1, padtype="edge")
    return causal_highpass(x, config.highpass_hz, config.highpass_order, config.sampling_rate_hz)


def band_window_matrix(
    input_rate_hz: float, n_in: int, pick_in: int, config: PreprocessConfig
) -> np.ndarray:
    """Steps 3-5 as one matrix ``(n_in, window_samples)``: for demeaned segments ``seg`` (N,
    ``n_in``) with the pick at input sample ``pick_in``, ``seg @ M`` is the model window of
    :func:`model_band` (equal to 1e-14 of the window's scale; tested).

    Every step is linear in the segment (the filters' initial states are the steady state of
    the first sample, a multiple of it), so its columns are :func:`model_band` of the unit
    impulses. One matrix product instead of the resampling and high-pass recursions over every
    segment: the preprocessing cost no longer grows with the filters' orders. Read-only, made
    once per resampling ratio, segment length and configuration (rates a datalogger reports a
    few ppm off share the matrix of their ratio)."""
    return _window_matrix(*model_resampling(input_rate_hz, config), n_in, pick_in, config)


@lru_cache(maxsize=16)
def _window_matrix(up: int, down: int, n_in: int, pick_in: int, config: PreprocessConfig):
    pick_out = pick_in * up // down
    cols = slice(pick_out - config.window_pre_samples, pick_out + config.window_post_samples)
    out = np.empty((n_in, config.window_samples))
    for start in range(0, n_in, 256):  # bounded memory at high input rates
        eye = np.eye(min(256, n_in - start), n_in, k=start)
        out[start : start + eye.shape[0]] = _band(eye, up, down, config)[:, cols]
    out.flags.writeable = False
    return out


def apply_window_matrix(
    seg: np.ndarray, up: int, down: int, pick_in: int, config: PreprocessConfig
) -> np.ndarray:
    """``seg @`` :func:`band_window_matrix` of the resampling ratio ``up / down`` (float64),
    on torch's CPU threads: numpy's own BLAS threads spin beside torch's between the two and
    halved the network's speed on a 2-core machine."""
    import torch

    matrix = _window_matrix_tensor(up, down, seg.shape[1], pick_in, config)
    return (torch.from_numpy(np.ascontiguousarray(seg, dtype=np.float64)) @ matrix).numpy()


@lru_cache(maxsize=16)
def _window_matrix_tensor(up, down, n_in, pick_in, config):
    import torch

    return torch.from_numpy(_window_matrix(up, down, n_in, pick_in, config).copy())


def _segment_samples(rate: float, cfg: PreprocessConfig) -> tuple[int, int, int, int]:
    """Input samples of step 1 around the pick: the segment before and after it, and the
    model window's part before and after it."""
    out_rate = cfg.sampling_rate_hz
    _, down = model_resampling(rate, cfg)
    # pre length a multiple of `down` so the pick lands on an exact output sample
    pre_in = int(math.ceil((cfg.context_pre_s + cfg.window_pre_samples / out_rate) * rate / down))
    post_in = int(math.ceil((cfg.window_post_samples / out_rate + cfg.margin_post_s) * rate))
    win_pre_in = int(math.ceil(cfg.window_pre_samples / out_rate * rate))
    win_post_in = int(math.ceil(cfg.window_post_samples / out_rate * rate))
    return pre_in * down, post_in, win_pre_in, win_post_in


def short_rows(
    n_samples: int, sampling_rate_hz: float, pick_index: ArrayLike, config: PreprocessConfig
) -> np.ndarray:
    """Rows (N,) bool that hold less than the model window on a side of the pick but enough
    to be read: at least ``config.short_row_min_noise_s`` of noise before ``pick - 0.1 s``
    where the window starts before the row, and at least ``config.short_row_min_after_s``
    after the pick where it ends after the row. :func:`complete_rows` completes them. All
    False for rates or picks :func:`linear_windows` refuses, and with the options off."""
    picks = np.atleast_1d(np.asarray(pick_index, dtype=np.float64))
    rate = float(sampling_rate_hz)
    if (
        config.short_row_min_noise_s is None
        or config.short_row_min_after_s is None
        or not (np.isfinite(rate) and rate >= MIN_SAMPLING_RATE_HZ)
        or not np.all(np.isfinite(picks))
    ):
        return np.zeros(picks.shape, dtype=bool)
    picks = np.rint(picks)
    _, _, win_pre_in, win_post_in = _segment_samples(rate, config)
    early = picks < win_pre_in
    late = picks + win_post_in > n_samples
    noise = picks - int(round(NOISE_GUARD_S * rate))
    early_ok = noise >= math.ceil(config.short_row_min_noise_s * rate)
    late_ok = picks + math.ceil(config.short_row_min_after_s * rate) <= n_samples
    return (early | late) & (~early | early_ok) & (~late | late_ok)


def complete_rows(
    data: np.ndarray, sampling_rate_hz: float, pick_index: ArrayLike, config: PreprocessConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (N, L) cut tight around the pick (:func:`short_rows`), lengthened to step 1's
    segment; returns ``(rows, pick_index)`` of the longer rows.

    * Before the pick, by the row's own noise (the samples before ``pick - 0.1 s``) mirrored
      back in time again and again, on its trend where it shows one
      (:func:`_mirrored_history`): the model window and the filters' history see noise of
      the row's own level and spectrum joined to it without a step, where a flat start would
      give a window no training row had. The samples from ``pick - 0.1 s`` on, where the
      onset may begin, are never copied.
    * After the end, by the row's last value held: every step before the window's cut is
      causal, so what the row holds is read as it is, and the window's end after the row is
      flat rather than invented.

    For event windows cut tight around a pick (a dataset's 0.5 s before it, 0.4 s after)."""
    x = np.asarray(data, dtype=np.float64)
    picks = np.rint(np.asarray(pick_index, dtype=np.float64)).astype(np.int64)
    rate = float(sampling_rate_hz)
    pre_in, post_in, _, _ = _segment_samples(rate, config)
    before = max(0, int(pre_in - picks.min())) if picks.size else 0
    after = max(0, int((picks + post_in).max() - x.shape[1])) if picks.size else 0
    guard = int(round(NOISE_GUARD_S * rate))
    out = np.empty((x.shape[0], before + x.shape[1] + after))
    out[:, before : before + x.shape[1]] = x
    for i, k in enumerate(picks):
        if before:
            out[i, :before] = _mirrored_history(x[i, : max(1, k - guard)], before)
        if after:
            finite = x[i][np.isfinite(x[i])]
            out[i, before + x.shape[1] :] = finite[-1] if finite.size else 0.0
    return out, picks + before


def _mirrored_history(noise: np.ndarray, n: int) -> np.ndarray:
    """``n`` samples to go before ``noise``: its straight-line trend carried back, plus its
    departures from that line mirrored back in time again and again. Microseisms and drift,
    far longer than a short row, are a trend within it: mirrored as they are they would fold
    into a V whose corner the high-pass rings at."""
    j = np.arange(noise.size, dtype=np.float64)
    finite = np.isfinite(noise)
    slope, level = 0.0, 0.0
    if finite.sum() >= 3:
        fit_slope, fit_level = np.polyfit(j[finite], noise[finite], 1)
        spread = np.std(noise[finite] - (fit_level + fit_slope * j[finite]))
        # a trend only where the row shows one beyond its noise (white noise over 0.2 s
        # fits a random slope that, carried back seconds, would be a ramp of its own)
        if abs(fit_slope) * noise.size > TREND_MIN_RISE * spread:
            slope, level = fit_slope, fit_level
    rest = noise - (level + slope * j)
    back = np.arange(-n, 0, dtype=np.float64)
    return level + slope * back + np.pad(rest, (n, 0), mode="symmetric")[:n]


def _fill_gaps(seg: np.ndarray) -> np.ndarray:
    """Non-finite samples (a gap in the context before the model window) take the last finite
    value before them (the first finite one at the start; 0 in a row with none): a zero fill
    would put a step of the DC offset into the high-pass, whose ringing made every window with
    a gap in its context unknown."""
    finite = np.isfinite(seg)
    if finite.all():
        return seg
    cols = np.arange(seg.shape[1])
    first = np.where(finite.any(axis=1), np.argmax(finite, axis=1), 0)
    last = np.maximum.accumulate(np.where(finite, cols[None, :], -1), axis=1)
    last = np.where(last < 0, first[:, None], last)
    filled = np.take_along_axis(seg, last, axis=1)
    return np.where(np.isfinite(filled), filled, 0.0)


def linear_windows(
    data: ArrayLike,
    sampling_rate_hz: float,
    pick_index: ArrayLike,
    config: PreprocessConfig,
    *,
    despike: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Steps 1-5 (all linear in ``data``): unnormalised float64 windows and reasons.

    The training sampler runs signal and noise through this separately to measure the SNR
    the model actually sees; ``prepare_windows`` = this + :func:`normalise_windows`.
    ``despike``: repair isolated one-sample glitches in the noise first
    (:func:`firstmotion.glitches.repair_glitches`, the
    classifier's reads; the segment is then not linear in ``data`` where one was found).
    """
    x = np.asarray(data, dtype=np.float64)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"data must be (N, L), got shape {x.shape}")
    rate = float(sampling_rate_hz)
    if not np.isfinite(rate) or rate < MIN_SAMPLING_RATE_HZ:
        raise ValueError(
            f"sampling_rate {sampling_rate_hz} Hz is below the minimum {MIN_SAMPLING_RATE_HZ} Hz"
        )
    picks = np.asarray(pick_index)
    if picks.ndim == 0:
        picks = picks[None]
    if picks.shape != (x.shape[0],):
        raise ValueError(f"pick_index must have shape ({x.shape[0]},), got {picks.shape}")
    if picks.size and not np.all(np.isfinite(picks.astype(float))):
        raise ValueError("pick_index must be finite integers")
    picks = np.rint(picks).astype(np.int64)
    n, n_samples = x.shape
    cfg = config
    up, down = model_resampling(rate, cfg)

    pre_in, post_in, win_pre_in, win_post_in = _segment_samples(rate, cfg)

    reasons = np.full(n, REASON_OK, dtype=object)
    if n == 0:
        return np.zeros((0, cfg.window_samples)), reasons.astype(str)

    too_short = (picks - win_pre_in < 0) | (picks + win_post_in > n_samples)
    reasons[too_short] = REASON_TOO_SHORT
    offsets = np.arange(-pre_in, post_in)
    idx = picks[:, None] + offsets[None, :]
    first_valid = np.clip(picks - pre_in, 0, n_samples - 1)
    last_valid = np.clip(picks + post_in - 1, 0, n_samples - 1)
    idx = np.clip(idx, first_valid[:, None], last_valid[:, None])
    seg = np.take_along_axis(x, idx, axis=1)

    in_window = np.zeros(offsets.size, dtype=bool)
    in_window[pre_in - win_pre_in : pre_in + win_post_in] = True
    bad_values = ~np.isfinite(seg[:, in_window]).all(axis=1)
    reasons[bad_values & ~too_short] = REASON_NAN
    seg = _fill_gaps(seg)
    if despike:
        seg, _ = repair_glitches(seg, pre_in - int(round(NOISE_GUARD_S * rate)))
    flat = np.ptp(seg[:, in_window], axis=1) == 0

    pre_pick = seg[:, :pre_in]
    seg = seg - pre_pick.mean(axis=1, keepdims=True)
    win = apply_window_matrix(seg, up, down, pre_in, cfg)
    reasons[flat & (reasons == REASON_OK)] = REASON_FLAT
    win = np.where((reasons == REASON_OK)[:, None], win, 0.0)
    return win, reasons.astype(str)
