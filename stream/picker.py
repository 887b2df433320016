"""The learned P/S picker: PhaseNet probabilities on sliding windows, turned into picks.

Pure functions over arrays (units in the names) and one model wrapper:

* :func:`to_grid` resamples a channel onto a 100 Hz grid of sample times (polyphase
  anti-alias filter, then interpolation onto the exact grid; a 100 Hz channel on the grid is
  read as is);
* :func:`window_starts` and :func:`accepted_region` lay sliding windows on a station's grid:
  window ``k`` starts at grid sample ``k * stride``; its picks are taken from the part that
  ends ``tail`` samples before the window's end and starts ``stride + overlap`` samples
  earlier (the first window of a segment takes everything before that end). Every grid
  sample is thus read by exactly one window at a fixed position (or two inside the
  ``overlap``, where the later pick of the same phase within ``min_separation`` is dropped),
  so the picks depend neither on how packets cut the data nor on when the windows ran;
* the hot stride (:func:`is_hot`, :func:`next_window_start`): after a window whose P
  probability reaches ``hot_p`` in its last ``tail_s``, the next window starts
  ``hot_stride_s`` later, not at the next stride; such a window gives only P picks of at
  least ``hot_pick_p`` (a clear P, sooner), the windows on the stride run as without it;
* :func:`find_peaks` returns, for one phase's probability trace, the maximum of each run
  above the threshold, with a sub-sample offset from a parabola through it and its
  neighbours;
* :class:`PhaseNetModel` loads the converted weights with their card and turns raw windows
  ``(batch, 3, samples)`` (E, N, Z) into probabilities ``(batch, 3, samples)`` (noise, P, S),
  normalising each window's channels as PhaseNet was trained; CPU or CUDA, batched.

A station with only a vertical channel is read with zero horizontals (PhaseNet's own inputs
where a component is dead: the per-channel normalisation leaves a flat channel zero).

.. seealso:: Zhu, W. & Beroza, G. C. (2019), GJI 216(1), 261-273. Münchmeyer, J. et al.
   (2022), Which picker fits my data? A quantitative evaluation of deep learning based
   seismic pickers, JGR 127 (SeisBench's overlapping windows).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from scipy import signal as sps

from firstmotion.devices import torch_device
from firstmotion.filters import butter_ba, butter_sos
from firstmotion.glitches import repair_glitches
from firstmotion.onsets import aic_onsets_near, parabolic_offset

GRID_RATE_HZ = 100.0
WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "model_weights"
DEFAULT_MODEL = "phasenet_original"
RESAMPLE_PAD_S = 0.5  # raw seconds on each side of a window for the resampling filter


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class PickerParams:
    """Learned-picker settings (seconds, probabilities); see ``[detect]`` in the config."""

    model: str = ""  # "" = model_weights/phasenet_original
    p_threshold: float = 0.3
    s_threshold: float = 0.3
    window_s: float = 30.0
    stride_s: float = 2.0
    tail_s: float = 1.5
    overlap_s: float = 0.5
    min_separation_s: float = 1.0
    device: str = "auto"
    batch_size: int = 256
    component_wait_s: float = 10.0
    window_after_s: float = 1.0  # pick window after the pick: the polarity model's 0.64 s + margin
    highpass_hz: float = 1.0  # causal high-pass of each window before the network; 0: none
    threads: int = 1  # torch CPU threads (one core per stream process; more contend)
    vertical_only: str = "copy"  # a station without horizontals: Z copied into them, or "zeros"
    p_refine: str = "aic"  # P onsets (the polarity read) refined by AIC (refine_p_onset), "none"
    p_min_snr: float = 2.0  # P picks need this onset SNR on the band-passed vertical (0: no gate)
    s_min_snr: float = 2.0  # S picks need this onset SNR on a band-passed horizontal (0: no gate)
    second_look_s: float = 18.0  # each window read again this long before its end; 0: not
    hot_stride_s: float = 0.5  # after a window with P rising in its tail, the next one this soon
    hot_p: float = 0.1  # ... "rising": P probability at least this in the window's last tail_s
    hot_pick_p: float = 0.7  # a hot-stride window gives P picks of at least this probability
    # candidate P onsets (flagged, never an event on their own; the associator attaches them
    # where a located event predicts a P): PhaseNet peaks in [candidate_p, p_threshold) and
    # the P picks the onset SNR gate drops (not gated), and STA/LTA onsets of ratio >=
    # candidate_stalta on the 1-20 Hz vertical (gated at candidate_min_snr); 0 turns each off
    candidate_p: float = 0.1
    candidate_stalta: float = 3.0
    candidate_min_snr: float = 2.0
    # a P peak (or candidate onset) whose onset raises the horizontal ground motion more than
    # this many times the vertical is an S onset (a P arrives steeply: on real P readings
    # the ratio stays under ~1.2, on S it is mostly above 2); 0: no such check
    p_max_hv: float = 3.0

    def __post_init__(self) -> None:
        for name in ("p_threshold", "s_threshold"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise ValueError(f"detect.{name}: expected in (0, 1), got {v!r}")
        for name in ("window_s", "stride_s", "min_separation_s", "batch_size", "window_after_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"detect.{name}: expected > 0, got {getattr(self, name)!r}")
        for name in ("tail_s", "overlap_s", "component_wait_s", "highpass_hz", "p_min_snr",
                     "s_min_snr", "second_look_s", "candidate_stalta",
                     "candidate_min_snr", "p_max_hv"):  # fmt: skip
            if not getattr(self, name) >= 0:
                raise ValueError(f"detect.{name}: expected >= 0, got {getattr(self, name)!r}")
        if not 0 <= self.candidate_p < self.p_threshold:
            raise ValueError(
                f"detect.phasenet_candidate_p: expected 0 (off) or in (0, p_threshold = "
                f"{self.p_threshold:g}), got {self.candidate_p!r}"
            )
        if self.p_refine not in ("aic", "none"):
            raise ValueError(f"p_refine: expected aic or none, got {self.p_refine!r}")
        if self.vertical_only not in ("copy", "zeros"):
            raise ValueError(f"vertical_only: expected copy or zeros, got {self.vertical_only!r}")
        if self.tail_s + self.stride_s + self.overlap_s >= self.window_s:
            raise ValueError("detect: tail_s + stride_s + overlap_s must be < window_s")
        lo = self.tail_s + self.stride_s + self.overlap_s + self.min_separation_s
        hi = self.window_s - self.stride_s - self.overlap_s
        if self.second_look_s and not lo <= self.second_look_s <= hi:
            raise ValueError(
                "detect: phasenet_second_look_tail_s must be 0 or in [tail_s + stride_s + "
                f"overlap_s + min_separation_s, window_s - stride_s - overlap_s] = [{lo:g}, "
                f"{hi:g}], got {self.second_look_s}"
            )
        if self.hot_stride_s < 0 or not (0 < self.hot_p < 1 and 0 < self.hot_pick_p < 1):
            raise ValueError("detect: hot_stride_s must be >= 0, hot_p and hot_pick_p in (0, 1)")
        if self.hot_stride_s > 0 and self.stride_n % self.hot_stride_n:
            raise ValueError(
                f"detect: stride_s {self.stride_s:g} must be a multiple of hot_stride_s "
                f"{self.hot_stride_s:g}"
            )

    @property
    def candidates(self) -> bool:
        """Whether candidate P onsets are made (:func:`candidate_picks`)."""
        return self.candidate_p > 0 or self.candidate_stalta > 0

    @property
    def window_n(self) -> int:
        return int(round(self.window_s * GRID_RATE_HZ))

    @property
    def stride_n(self) -> int:
        return max(1, int(round(self.stride_s * GRID_RATE_HZ)))

    @property
    def hot_stride_n(self) -> int:
        """Grid samples of the hot stride; 0: off (or not shorter than the stride)."""
        n = int(round(self.hot_stride_s * GRID_RATE_HZ))
        return n if 0 < n < self.stride_n else 0

    @property
    def tail_n(self) -> int:
        return int(round(self.tail_s * GRID_RATE_HZ))

    @property
    def second_look_n(self) -> int:
        return int(round(self.second_look_s * GRID_RATE_HZ))

    @property
    def overlap_n(self) -> int:
        return int(round(self.overlap_s * GRID_RATE_HZ))


# --------------------------------------------------------------------------- numerics


def resampling_ratio(rate_hz: float, out_rate_hz: float = GRID_RATE_HZ) -> tuple[int, int]:
    """``(up, down)`` with ``up / down`` close to ``out_rate_hz / rate_hz``."""
    if not rate_hz > 0:
        raise ValueError(f"sampling rate: expected > 0, got {rate_hz!r}")
    frac = Fraction(out_rate_hz / rate_hz).limit_denominator(1000)
    return frac.numerator, frac.denominator


def to_grid(
    x: np.ndarray, rate_hz: float, first_index: float, grid_positions: np.ndarray
) -> np.ndarray:
    """Samples of channel ``x`` (rate ``rate_hz``; ``x[0]`` is the channel's sample
    ``first_index``) at ``grid_positions`` (fractional channel sample indices, spaced
    ``rate_hz / 100``), anti-alias filtered when the channel is faster than 100 Hz.

    A channel at 100 Hz whose grid positions are whole samples is read as is; other rates go
    through :func:`scipy.signal.resample_poly` (Kaiser-windowed FIR, zero phase) and linear
    interpolation between its outputs onto the exact positions. ``x`` must cover the positions
    with :data:`RESAMPLE_PAD_S` to spare for a clean filter edge."""
    x = np.asarray(x, dtype=np.float64)
    pos = np.asarray(grid_positions, dtype=np.float64) - first_index
    if rate_hz == GRID_RATE_HZ:
        k = round(float(pos[0]))
        if abs(pos[0] - k) < 1e-6 and abs(pos[-1] - (k + pos.size - 1)) < 1e-6:
            return x[k : k + pos.size]  # on the grid: the samples themselves
        whole = np.rint(pos)
        if np.all(np.abs(pos - whole) < 1e-6):
            return x[whole.astype(np.int64)]
        return np.interp(pos, np.arange(x.size), x)
    up, down = resampling_ratio(rate_hz)
    y = sps.resample_poly(x, up, down)
    return np.interp(pos * up / down, np.arange(y.size), y)


def window_starts(first_n: int, end_n: int, window_n: int, stride_n: int) -> range:
    """Grid starts of the windows ``k * stride_n >= first_n`` that end by ``end_n``."""
    k0 = -(-first_n // stride_n)
    k1 = (end_n - window_n) // stride_n
    return range(k0 * stride_n, (k1 + 1) * stride_n, stride_n) if k1 >= k0 else range(0)


def accepted_region(
    start_n: int, first_start_n: int, params: PickerParams, previous_n: int | None = None
) -> tuple[int, int]:
    """``(lo, hi)`` grid samples whose picks window ``start_n`` gives (see the module
    docstring); ``first_start_n`` is the segment's first window, ``previous_n`` the start of
    the window run before it (default ``start_n - stride``; a hot stride makes it closer)."""
    hi = start_n + params.window_n - params.tail_n
    if start_n == first_start_n:
        return start_n, hi
    step = params.stride_n if previous_n is None else start_n - previous_n
    return hi - step - params.overlap_n, hi


def is_hot(prob: np.ndarray, params: PickerParams) -> bool:
    """Whether a window's P probability (``prob`` ``(3, n)``) reaches ``hot_p`` in its last
    ``tail_s`` (at least the hot stride): samples no window has accepted yet, where a P is
    arriving. Always ``False`` with the hot stride off."""
    if not params.hot_stride_n:
        return False
    tail = max(params.tail_n, params.hot_stride_n)
    return bool(np.max(prob[1, -tail:]) >= params.hot_p)


def next_window_start(start_n: int, hot: bool, params: PickerParams) -> int:
    """The start of the window to run after the one at ``start_n``: ``hot_stride_s`` later
    after a hot window (:func:`is_hot`), else the next multiple of ``stride_s`` (windows on
    the stride run whatever happens, so a hot run always ends on the stride grid)."""
    if hot and params.hot_stride_n:
        return start_n + params.hot_stride_n
    return (start_n // params.stride_n + 1) * params.stride_n


def find_peaks(prob: np.ndarray, threshold: float) -> list[tuple[float, float]]:
    """``[(index, probability)]``: the maximum of each run of ``prob`` above ``threshold``
    (fractional index from a parabola through the maximum and its neighbours), in order; a
    run whose maximum is the first sample is no peak (a segment's first window starts in a
    raised probability that the network gives its first samples, with nothing before them)."""
    prob = np.asarray(prob, dtype=np.float64)
    above = prob > threshold
    if not above.any():
        return []
    edges = np.diff(above.astype(np.int8), prepend=0, append=0)
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    out = []
    for a, b in zip(starts, stops, strict=True):
        k = a + int(np.argmax(prob[a:b]))
        if k == 0:
            continue
        off = 0.0
        if 0 < k < prob.size - 1:
            off = parabolic_offset(prob[k - 1], prob[k], prob[k + 1])
        out.append((k + off, float(prob[k])))
    return out


def find_peaks_py(prob: np.ndarray, threshold: float) -> list[tuple[float, float]]:
    """Slow twin of :func:`find_peaks` (a sample loop over the runs)."""
    out, run = [], []
    values = [float(v) for v in prob] + [-np.inf]
    for i, v in enumerate(values):
        if v > threshold:
            run.append(i)
        elif run:
            k = max(run, key=lambda j: (values[j], -j))
            off = 0.0
            if 0 < k < len(values) - 2:
                off = parabolic_offset(values[k - 1], values[k], values[k + 1])
            if k > 0:
                out.append((k + off, values[k]))
            run = []
    return out


# --------------------------------------------------------------------------- the model


def card_path(model: str = "") -> Path:
    """The model card of ``model`` (a name in model_weights/, a ``.pt``/``.json`` path, or
    ``""`` for the default)."""
    if not model:
        return WEIGHTS_DIR / f"{DEFAULT_MODEL}.json"
    p = Path(model)
    if p.suffix in (".pt", ".json"):
        return p.with_suffix(".json")
    return WEIGHTS_DIR / f"{model}.json"


class PhaseNetModel:
    """Converted PhaseNet weights with their card; :meth:`predict` on raw windows."""

    def __init__(self, model, card: dict, device) -> None:
        self.model, self.card, self.device = model, card, device

    @classmethod
    def load(
        cls, model: str = "", device: str = "auto", threads: int | None = None, fast: bool = True
    ):
        """Load a card and its weights (``device``: ``auto`` = CUDA when present; ``fast``:
        served as :class:`stream.phasenet.InferencePhaseNet`, else the training form)."""
        import torch

        from stream.phasenet import InferencePhaseNet, PhaseNet

        path = card_path(model)
        card = json.loads(path.read_text())
        if card.get("architecture", {}).get("class") != "PhaseNet":
            raise ValueError(f"{path}: not a PhaseNet model card")
        pre = card.get("preprocessing", {})
        if pre.get("sampling_rate_hz") != GRID_RATE_HZ or pre.get("components") != ["E", "N", "Z"]:
            raise ValueError(f"{path}: expected 100 Hz E/N/Z input, card says {pre!r}")
        device = torch_device(device, "detect.phasenet_device")
        if threads:
            torch.set_num_threads(int(threads))
        net = PhaseNet(**card["architecture"]["args"])
        state = torch.load(path.with_suffix(".pt"), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        net = InferencePhaseNet(net.eval()).eval() if fast else net.eval()
        return cls(net.to(device), card, device)

    def predict(
        self, windows: np.ndarray, batch_size: int = 256, highpass_hz: float = 0.0
    ) -> np.ndarray:
        """Probabilities ``(batch, 3, samples)`` (noise, P, S) of raw windows ``(batch, 3,
        samples)`` in the order E, N, Z at 100 Hz (NaN samples read as the channel's mean;
        ``highpass_hz`` > 0: :func:`highpass_windows` first)."""
        import torch

        from stream.phasenet import normalise_windows

        x = np.asarray(windows, dtype=np.float32)
        if x.ndim != 3 or x.shape[1] != 3:
            raise ValueError(f"windows: expected (batch, 3, samples), got {x.shape}")
        out = np.empty_like(x)
        on_gpu = self.device.type != "cpu"
        with torch.inference_mode():
            for i in range(0, x.shape[0], batch_size):
                chunk = _nan_to_mean(x[i : i + batch_size])
                if on_gpu:  # filter and normalise on the device: the CPU thread only feeds it
                    t = prepare_windows_torch(torch.from_numpy(chunk).to(self.device), highpass_hz)
                else:
                    if highpass_hz > 0:
                        chunk = highpass_windows(chunk, highpass_hz)
                    t = torch.from_numpy(normalise_windows(chunk))
                out[i : i + batch_size] = self.model(t).float().cpu().numpy()
        return out


def highpass_windows(x: np.ndarray, corner_hz: float, order: int = 4) -> np.ndarray:
    """Causal Butterworth high-pass of windows ``(..., samples)`` at 100 Hz, started from
    rest at each channel's first sample (no step from a DC offset): broadband records carry
    microseism and drift far larger than a small event's P, which the per-window
    normalisation would otherwise scale the P down to nothing against."""
    b, a, zi = butter_ba(order, corner_hz, "highpass", GRID_RATE_HZ)
    x = np.asarray(x, dtype=np.float64)
    # the filter's state for a constant input x[0] (no output: a high-pass has no DC gain), so
    # the same as filtering x - x[0] from rest; the direct form in float64 (a 4th-order filter
    # at 1/100 of the rate is accurate so, and a third faster than second-order sections)
    y, _ = sps.lfilter(b, a, x, axis=-1, zi=zi * x[..., :1])
    flat = np.ptp(x, axis=-1) == 0  # exactly zero (not rounding noise the normalisation scales)
    if flat.any():
        y[flat] = 0.0
    return y.astype(np.float32)


def highpass_impulse_response(corner_hz: float, n: int, order: int = 4) -> np.ndarray:
    """The first ``n`` samples of :func:`highpass_windows`' filter's impulse response: a
    causal filter started from rest is exactly the convolution with it over ``n`` samples
    (read-only: made once per corner and length)."""
    return _impulse_response(float(corner_hz), int(n), int(order))


@functools.lru_cache(maxsize=16)
def _impulse_response(corner_hz: float, n: int, order: int) -> np.ndarray:
    impulse = np.zeros(n)
    impulse[0] = 1.0
    h = sps.sosfilt(butter_sos(order, corner_hz, "highpass", GRID_RATE_HZ)[0], impulse)
    h.flags.writeable = False
    return h


def prepare_windows_torch(x, highpass_hz: float):
    """:func:`highpass_windows` (as an FFT convolution with the filter's impulse response)
    and :func:`stream.phasenet.normalise_windows` on a torch tensor ``(batch, 3, samples)``
    on any device (float rounding apart, the same numbers as the numpy path)."""
    import torch

    x = x.to(torch.float64)
    if highpass_hz > 0:
        n = x.shape[-1]
        h = torch.tensor(highpass_impulse_response(highpass_hz, n), device=x.device)
        spec = torch.fft.rfft(x - x[..., :1], 2 * n) * torch.fft.rfft(h, 2 * n)
        x = torch.fft.irfft(spec, 2 * n)[..., :n]
    x = x - x.mean(dim=-1, keepdim=True)
    std = x.std(dim=-1, keepdim=True, unbiased=False)
    x = torch.where(std > 0, x / torch.where(std > 0, std, torch.ones_like(std)), 0.0)
    return x.to(torch.float32)


def _nan_to_mean(x: np.ndarray) -> np.ndarray:
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    x = x.copy()
    x[bad] = 0.0
    count = np.maximum((~bad).sum(axis=-1, keepdims=True), 1)
    mean = x.sum(axis=-1, keepdims=True) / count
    return np.where(bad, mean, x)


# --------------------------------------------------------------------------- station windows

SEGMENT_GRID_NS = 10_000_000  # 100 Hz grid spacing in ns
NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class StationPick:
    """A pick on a station's grid: ``phase`` (P or S), epoch seconds, peak probability,
    grid index (fractional); ``candidate``: ``""`` for a pick, else what made the candidate P
    onset (:func:`candidate_picks`): ``"phasenet"`` or ``"stalta"``; ``onset_epoch_s``: a P
    pick's onset refined by :func:`refine_picks` (None: not refined), where the polarity
    stage reads its first motion, while ``time_epoch_s`` stays PhaseNet's peak, the arrival
    time (docs/picker.md: the peak is the closer to analysts' onsets, the refined onset the
    better place to read the first swing)."""

    phase: str
    time_epoch_s: float
    probability: float
    grid_index: float
    candidate: str = ""
    onset_epoch_s: float | None = None

    @property
    def onset_s(self) -> float:
        """Epoch seconds of the first motion: the refined onset, else the pick's time."""
        return self.time_epoch_s if self.onset_epoch_s is None else self.onset_epoch_s


def raw_span(view, anchor_ns: int, start_n: int, n: int) -> tuple[int, int, np.ndarray] | None:
    """``(lo, hi, positions)``: the raw samples ``lo..hi-1`` of a channel ``view`` (a
    :class:`stream.buffer.ChannelBuffer`) needed for grid samples ``start_n .. start_n+n-1``
    of a grid anchored at ``anchor_ns``, and the grid's positions in that channel's samples
    (``None`` while the channel does not hold them)."""
    rate = float(view.sampling_rate_hz)
    first = (anchor_ns + start_n * SEGMENT_GRID_NS - view.segment_start_ns) / 1e9 * rate
    step = rate / GRID_RATE_HZ
    last = first + (n - 1) * step
    pad = 0 if rate == GRID_RATE_HZ else int(math.ceil(RESAMPLE_PAD_S * rate))
    lo = int(math.floor(first + 1e-9)) - pad
    hi = int(math.ceil(last - 1e-9)) + 1 + pad
    if lo < view.start_index or hi > view.end_index:
        return None
    return lo, hi, first + np.arange(n) * step


def station_window(
    views, anchor_ns: int, start_n: int, n: int, vertical_only: str = "copy"
) -> np.ndarray | None:
    """Raw window ``(3, n)`` (E, N, Z on the 100 Hz grid) of a station's channel ``views``
    (three entries, ``None`` for a missing component); ``None`` while the vertical does not
    cover it. A horizontal that does not cover it is zero; when neither does (a vertical-only
    station), both are copies of the vertical (``vertical_only="copy"``) or zeros
    (``"zeros"``). One-sample glitches (:func:`firstmotion.glitches.repair_glitches`) are
    repaired first: one in a window would scale the whole window down in its normalisation."""
    out = np.zeros((3, n))
    have = [False, False, False]
    for c, view in enumerate(views):
        if view is None or view.sampling_rate_hz is None:
            if c == 2:
                return None
            continue
        span = raw_span(view, anchor_ns, start_n, n)
        if span is None:
            if c == 2:
                return None
            continue
        lo, hi, pos = span
        raw = view.get(lo, hi)
        step = np.abs(np.diff(raw))
        if step.size and step.max() > GLITCH_SCREEN * step.mean():
            raw = repair_glitches(raw[None, :], raw.size)[0][0]
        out[c] = to_grid(raw, float(view.sampling_rate_hz), lo, pos)
        have[c] = True
    if not (have[0] or have[1]) and vertical_only == "copy":
        out[0] = out[1] = out[2]
    return out


# a window's channel is searched for one-sample glitches when its largest step is this many
# times its mean step: a glitch the search would find in a quiet window (50 times the noise's
# typical curvature) is a step ~44 times the mean; one in an earthquake's window that the
# screen passes over is no larger than the earthquake, so the normalisation barely feels it
GLITCH_SCREEN = 20.0
REFINE_CONTEXT_S = 5.0  # band-pass settling before the refinement window
REFINE_BEFORE_S = 0.5
REFINE_AFTER_S = 0.25
REFINE_MAX_SHIFT_S = 0.2


def refine_p_onset(z: np.ndarray, rate_hz: float, index: float) -> float:
    """A P onset (fractional sample index into raw vertical samples ``z``) refined from a PhaseNet
    pick at ``index``: Maeda's AIC minimum (:func:`firstmotion.onsets.aic_onsets_near`) on
    the causally band-passed (1-20 Hz, as the STA/LTA detector) samples from
    ``REFINE_BEFORE_S`` before to ``REFINE_AFTER_S`` after the pick; the pick itself when
    the minimum is more than ``REFINE_MAX_SHIFT_S`` away or the samples do not reach. The
    probability peak of PhaseNet sits on average slightly before clear onsets (its training
    labels are Gaussians around analyst picks); the polarity stage reads the first swing
    after the pick, as the detector places it."""
    onset, _ = aic_onsets_near(
        z[None, :], rate_hz, [index], before_s=REFINE_BEFORE_S, after_s=REFINE_AFTER_S,
        context_s=REFINE_CONTEXT_S, min_context_s=REFINE_CONTEXT_S,
    )  # fmt: skip
    refined = float(onset[0])
    if np.isfinite(refined) and abs(refined - index) <= REFINE_MAX_SHIFT_S * rate_hz:
        return refined
    return float(index)


SNR_NOISE_S = 2.0  # as the STA/LTA detector (DetectParams.snr_noise_s, snr_signal_s)
SNR_SIGNAL_S = 1.0


def p_onset_snr(z: np.ndarray, rate_hz: float, index: float, signal_s: float = SNR_SIGNAL_S):
    """The onset SNR of a P pick at ``index`` (fractional sample index into raw vertical
    samples ``z``), measured as the STA/LTA detector measures its ``min_snr``: RMS of the
    causally band-passed (1-20 Hz) vertical over ``signal_s`` after the onset over its RMS
    over the :data:`SNR_NOISE_S` before (:func:`stream.detect.snr_and_amplitude`), the filter
    settled over :data:`REFINE_CONTEXT_S` before that. ``inf`` (no gate) when ``z`` does not
    hold those samples or holds non-finite ones: a pick is never dropped for want of data."""
    from stream.detect import bandpass_causal, design_bandpass, snr_and_amplitude

    z = np.asarray(z, dtype=np.float64)
    i = int(math.ceil(index))
    noise_n = int(round(SNR_NOISE_S * rate_hz))
    signal_n = max(2, int(round(signal_s * rate_hz)))
    lo = i - noise_n - int(round(REFINE_CONTEXT_S * rate_hz))
    hi = i + signal_n
    if lo < 0 or hi > z.size or not np.all(np.isfinite(z[lo:hi])):
        return float("inf")
    y, _ = bandpass_causal(z[lo:hi], design_bandpass(1.0, 20.0, rate_hz))
    snr, _ = snr_and_amplitude(y, index - lo, noise_n, signal_n)
    return float(snr)


PS_SAME_ONSET_S = 0.2  # a P peak with more S probability than its own this close: an S onset


def read_as_s(prob: np.ndarray, index: float, p: float) -> bool:
    """Whether the P peak ``p`` at window sample ``index`` of probabilities ``prob`` ``(3, n)``
    is an onset PhaseNet reads as S more than as P: the S probability within
    :data:`PS_SAME_ONSET_S` of it exceeds ``p``. One onset has one phase; without this rule
    the S onset of a near station, picked as S and again as a weaker P, gives the associator
    P picks that fit a shallow event seconds after the real one (an S ghost)."""
    w = int(round(PS_SAME_ONSET_S * GRID_RATE_HZ))
    k = int(round(index))
    seg = prob[2, max(0, k - w) : k + w + 1]
    return bool(seg.size) and float(seg.max()) > p


HV_BAND_HZ = (2.0, 20.0)  # onset polarization: the band of stream.amplitude's S/P amplitudes
HV_SIGNAL_S = 0.3  # ground motion from 0.05 s before the onset to this after it ...
HV_LEAD_S = 0.05
HV_NOISE_S = (0.6, 0.1)  # ... against the motion from 0.6 to 0.1 s before it
HV_SETTLE_S = 3.0  # band-pass settling before the noise window


def onset_hv_ratio(window: np.ndarray, index: float) -> float:
    """How much more an onset at sample ``index`` of a station window ``(3, n)`` (E, N, Z on
    the 100 Hz grid) raises the horizontal ground motion than the vertical: with ``H`` the
    peak of sqrt(E^2 + N^2) and ``V`` the peak of abs(Z) (each causally band-passed 2-20 Hz),
    sqrt(H_after^2 - H_before^2) / sqrt(V_after^2 - V_before^2), after = from 0.05 s before
    the onset to 0.3 s after it, before = 0.6 to 0.1 s before it (the increase, so an onset
    in an earlier earthquake's coda is judged by what it adds). A P wave arrives steeply and
    moves the vertical most (free-surface P: horizontal / vertical = tan of the incidence,
    under ~1 for the incidences of local and regional P); an S wave moves the horizontals.
    NaN where the window does not hold the samples or they are not finite."""
    from stream.detect import bandpass_causal, design_bandpass

    k = int(round(index))
    lo = k - int(round((HV_NOISE_S[0] + HV_SETTLE_S) * GRID_RATE_HZ))
    hi = k + int(round(HV_SIGNAL_S * GRID_RATE_HZ)) + 1
    if window is None or lo < 0 or hi > window.shape[1]:
        return float("nan")
    x = np.asarray(window[:, lo:hi], dtype=np.float64)
    if not np.all(np.isfinite(x)):
        return float("nan")
    sos = design_bandpass(*HV_BAND_HZ, GRID_RATE_HZ)
    y = np.stack([bandpass_causal(c - c[0], sos)[0] for c in x])
    h, v = np.hypot(y[0], y[1]), np.abs(y[2])
    k -= lo
    b0 = k - int(round(HV_NOISE_S[0] * GRID_RATE_HZ))
    b1 = k - int(round(HV_NOISE_S[1] * GRID_RATE_HZ))
    a0 = k - int(round(HV_LEAD_S * GRID_RATE_HZ))
    dh = math.sqrt(max(h[a0:].max() ** 2 - h[b0:b1].max() ** 2, 0.0))
    dv = math.sqrt(max(v[a0:].max() ** 2 - v[b0:b1].max() ** 2, 0.0))
    if dv == 0.0:
        return float("inf") if dh > 0.0 else float("nan")
    return dh / dv


def s_polarized(window: np.ndarray | None, index: float, params: PickerParams) -> bool:
    """Whether a P peak (or candidate onset) at window sample ``index`` is an S onset by its
    polarization: :func:`onset_hv_ratio` above ``params.p_max_hv`` (never without the
    samples; a vertical copied into the horizontals gives sqrt(2), under any bound >= 1.5)."""
    if window is None or params.p_max_hv <= 0:
        return False
    r = onset_hv_ratio(window, index)
    return bool(r > params.p_max_hv)


def is_s_onset(
    prob: np.ndarray, window: np.ndarray | None, index: float, p: float, params: PickerParams
) -> bool:
    """Whether a P peak ``p`` (or candidate onset) at window sample ``index`` is an S onset:
    PhaseNet reads it as S more than as P there (:func:`read_as_s`), or its polarization
    says S (:func:`s_polarized`)."""
    return read_as_s(prob, index, p) or s_polarized(window, index, params)


def s_onset_snr(window: np.ndarray, index: float) -> float:
    """The onset SNR of an S pick at sample ``index`` of a station window ``(3, n)`` (E, N, Z
    on the 100 Hz grid, as the network reads it): the larger of :func:`p_onset_snr` on the two
    horizontals, which the S moves; on the vertical where both horizontals are flat (a station
    without horizontals read with ``vertical_only = "zeros"``, or dead channels; with
    ``"copy"`` they are the vertical). ``inf`` where the window does not hold the samples the
    measure reads."""
    rows = [c for c in (0, 1) if _varies(window[c])] or [2]
    return max(p_onset_snr(window[c], GRID_RATE_HZ, index) for c in rows)


def _varies(x: np.ndarray) -> bool:
    """Whether the finite samples of ``x`` are not all one value (NaN samples aside)."""
    finite = x[np.isfinite(x)]
    return bool(finite.size) and bool(finite.max() > finite.min())


def s_gated(window: np.ndarray | None, index: float, params: PickerParams) -> bool:
    """Whether an S peak at window sample ``index`` fails the S onset SNR gate
    (``params.s_min_snr``; never without the window's samples)."""
    return (
        window is not None
        and params.s_min_snr > 0
        and s_onset_snr(window, index) < params.s_min_snr
    )


def picks_in_window(
    prob: np.ndarray,
    start_n: int,
    first_start_n: int,
    anchor_ns: int,
    params: PickerParams,
    last_s: dict[str, float],
    previous_n: int | None = None,
    window: np.ndarray | None = None,
) -> list[StationPick]:
    """The picks window ``start_n`` gives (its accepted region, see :func:`accepted_region`)
    from probabilities ``prob`` ``(3, n)``; ``last_s`` (phase -> epoch s of the last pick)
    is updated: a pick within ``min_separation_s`` after the last of its phase is dropped.

    A hot-stride window (``start_n`` off the stride grid; ``previous_n`` the window run before
    it) gives only P picks of at least ``hot_pick_p`` from the samples since that window's
    region: an early announcement of a clear P. The windows on the stride read their whole
    region as without the hot stride (their repeat of a hot pick is dropped as any repeat),
    so what they find is never lost and a hot window adds only clear P picks, sooner.

    ``window`` (the window's samples, ``(3, n)``) gates the S peaks (:func:`s_gated`): an S
    pick needs an energy jump on the horizontals, as a P pick needs one on the vertical."""
    hot = bool(params.hot_stride_n) and start_n % params.stride_n != 0
    lo, hi = accepted_region(start_n, first_start_n, params, previous_n if hot else None)
    found: list[StationPick] = []
    rows = ((1, "P", max(params.p_threshold, params.hot_pick_p)),) if hot else (
        (1, "P", params.p_threshold), (2, "S", params.s_threshold))  # fmt: skip
    for row, phase, threshold in rows:
        for index, p in find_peaks(prob[row], threshold):
            grid = start_n + index
            if not lo <= grid < hi:
                continue
            if phase == "P" and is_s_onset(prob, window, index, p, params):
                continue
            if phase == "S" and s_gated(window, index, params):
                continue
            t = (anchor_ns + grid * SEGMENT_GRID_NS) / 1e9
            if t - last_s.get(phase, -np.inf) <= params.min_separation_s:
                continue
            last_s[phase] = t
            found.append(StationPick(phase, t, p, grid))
    found.sort(key=lambda s: s.grid_index)
    return found


CANDIDATE_STA_S = 0.5  # STA/LTA of candidate onsets: STA over the 0.5 s from a sample ...
CANDIDATE_LTA_S = 5.0  # ... over the LTA of the 5 s before it (energy, 1-20 Hz vertical)
CANDIDATE_SETTLE_S = 5.0  # band-pass settling from the window's first sample
CANDIDATE_DISTANCE_N = 50  # STA/LTA maxima at least 0.5 s apart ...
CANDIDATE_PROMINENCE = 1.0  # ... standing out by this much from the ratio around them
CANDIDATE_P_SEARCH_S = 0.1  # a candidate's probability: the P peak within this of it


def stalta_onsets(z: np.ndarray, threshold: float, lo: int, hi: int) -> list[tuple[int, float]]:
    """``[(index, ratio)]``: the maximum of each run of the STA/LTA ratio of ``z`` (raw
    vertical samples at 100 Hz) at or above ``threshold``, for maxima in ``lo <= index < hi``.

    The ratio at sample ``i``: mean energy of the causally band-passed (1-20 Hz, started from
    ``z[0]``) vertical over :data:`CANDIDATE_STA_S` from ``i`` over its mean over the
    :data:`CANDIDATE_LTA_S` before ``i``, so it peaks at an onset; samples with less than
    :data:`CANDIDATE_SETTLE_S` + the LTA before them or the STA after them have none. It sees
    an energy jump where PhaseNet does not: the P of an earthquake in the coda of a larger one
    seconds before (docs/swarm.md)."""
    from stream.detect import bandpass_causal, design_bandpass

    z = np.asarray(z, dtype=np.float64)
    z = np.where(np.isfinite(z), z, 0.0)
    y, _ = bandpass_causal(z - z[0], design_bandpass(1.0, 20.0, GRID_RATE_HZ))
    ns = int(round(CANDIDATE_STA_S * GRID_RATE_HZ))
    nl = int(round(CANDIDATE_LTA_S * GRID_RATE_HZ))
    first = nl + int(round(CANDIDATE_SETTLE_S * GRID_RATE_HZ))
    c = np.concatenate([[0.0], np.cumsum(y * y)])
    i = np.arange(first, z.size - ns + 1)
    if i.size == 0:
        return []
    sta = (c[i + ns] - c[i]) / ns
    lta = (c[i] - c[i - nl]) / nl
    ratio = np.zeros(z.size)
    ratio[i] = sta / np.maximum(lta, 1e-30)
    # local maxima, not one per run: in a larger earthquake's coda the ratio can stay above
    # the threshold for seconds, over the next onset
    peaks, props = sps.find_peaks(ratio, height=threshold, distance=CANDIDATE_DISTANCE_N,
                                  prominence=CANDIDATE_PROMINENCE)  # fmt: skip
    return [(int(k), float(r)) for k, r in zip(peaks, props["peak_heights"], strict=True)
            if lo <= k < hi]  # fmt: skip


def candidate_picks(
    prob: np.ndarray,
    z: np.ndarray,
    start_n: int,
    first_start_n: int,
    anchor_ns: int,
    params: PickerParams,
    last_s: dict[str, float],
    found: list[StationPick],
    window: np.ndarray | None = None,
) -> list[StationPick]:
    """Candidate P onsets of window ``start_n`` (a window on the stride) in its accepted
    region: runs of the P probability whose peak is in ``[candidate_p, p_threshold)`` and
    STA/LTA onsets (:func:`stalta_onsets`, ratio >= ``candidate_stalta``) of the window's raw
    vertical ``z`` (grid samples); none within ``min_separation_s`` of a P pick of the window
    (``found``), the last P pick or the last candidate (``last_s["P"]``, ``last_s["Pc"]``;
    updated). Their probability is PhaseNet's P peak within :data:`CANDIDATE_P_SEARCH_S`.

    A candidate is a weak or masked onset the picker does not vouch for: it carries
    ``candidate=True`` on the wire, never makes an event, and counts only where the associator
    finds it at the P time a located event predicts (event-guided picking). Everything it
    reads is the window's own (probabilities and samples), so packets and restarts give the
    candidates of one pass, as for picks."""
    lo, hi = accepted_region(start_n, first_start_n, params)
    sep = params.min_separation_s
    onsets: list[tuple[float, float, str]] = []
    if params.candidate_p > 0:
        for index, p in find_peaks(prob[1], params.candidate_p):
            if p < params.p_threshold and lo <= start_n + index < hi:
                onsets.append((index, p, "phasenet"))
    if params.candidate_stalta > 0:
        w = int(round(CANDIDATE_P_SEARCH_S * GRID_RATE_HZ))
        for k, _ in stalta_onsets(z, params.candidate_stalta, lo - start_n, hi - start_n):
            p = float(np.max(prob[1, max(0, k - w) : k + w + 1]))
            onsets.append((float(k), p, "stalta"))
    onsets.sort()
    picked = [sp.time_epoch_s for sp in found if sp.phase == "P"]
    out: list[StationPick] = []
    for index, p, source in onsets:
        if is_s_onset(prob, window, index, max(p, params.s_threshold), params):  # an S's onset
            continue
        grid = start_n + index
        t = (anchor_ns + grid * SEGMENT_GRID_NS) / 1e9
        if t - last_s.get("Pc", -np.inf) <= sep or t - last_s.get("P", -np.inf) <= sep:
            continue
        if any(abs(t - x) <= sep for x in picked):
            continue
        last_s["Pc"] = t
        out.append(StationPick("P", t, min(float(p), 1.0), grid, candidate=source))
    return out


def second_look_region(start_n: int, params: PickerParams) -> tuple[int, int]:
    """``(lo, hi)`` grid samples the second look of window ``start_n`` reads: the stride (plus
    the overlap) that ends ``second_look_s`` before the window's end. Consecutive windows'
    regions tile the record, as the first pass's do."""
    hi = start_n + params.window_n - params.second_look_n
    return hi - params.stride_n - params.overlap_n, hi


def second_look_picks(
    prob: np.ndarray,
    start_n: int,
    anchor_ns: int,
    params: PickerParams,
    recent_s: dict[str, list[float]],
    window: np.ndarray | None = None,
) -> list[StationPick]:
    """The picks the second look of window ``start_n`` adds: peaks of its region
    (:func:`second_look_region`) more than ``min_separation_s`` from every recent pick of their
    phase (``recent_s``: phase -> epoch seconds of the first pass's and earlier second looks'
    picks; updated).

    The first pass reads each sample once, near the end of a window, with ``tail_s`` of data
    after it; PhaseNet there often stays below its threshold on an onset it reads with
    certainty given more of what follows (seconds of coda, the S): on the swarm proxy
    (docs/swarm.md) a P it gives 0.02 with 2 s after the onset gets 0.9 with 20 s. The second
    look reads the same probabilities ``second_look_s`` before the window's end: no extra
    forward pass, picks that late. Every first-pass pick within ``min_separation_s`` of the
    region comes from this window or an earlier one (``second_look_s`` is at least ``tail_s +
    stride_s + overlap_s + min_separation_s``), so the outcome does not depend on the packets.
    S peaks are gated on ``window``'s samples as in :func:`picks_in_window`.
    """
    lo, hi = second_look_region(start_n, params)
    found: list[StationPick] = []
    for row, phase, threshold in ((1, "P", params.p_threshold), (2, "S", params.s_threshold)):
        times = recent_s.setdefault(phase, [])
        for index, p in find_peaks(prob[row], threshold):
            grid = start_n + index
            if not lo <= grid < hi:
                continue
            if phase == "P" and is_s_onset(prob, window, index, p, params):
                continue
            if phase == "S" and s_gated(window, index, params):
                continue
            t = (anchor_ns + grid * SEGMENT_GRID_NS) / 1e9
            if any(abs(t - x) <= params.min_separation_s for x in times):
                continue
            times.append(t)
            found.append(StationPick(phase, t, p, grid))
    found.sort(key=lambda s: s.grid_index)
    return found


def refine_picks(picks: list[StationPick], z_view, params: PickerParams) -> list[StationPick]:
    """P picks with their onset (``onset_epoch_s``) refined by :func:`refine_p_onset` on the
    vertical's buffer ``z_view`` (a :class:`stream.buffer.ChannelBuffer`; S picks unchanged,
    ``p_refine="none"``: the onset is the pick's time; the time stays PhaseNet's peak, an
    STA/LTA candidate's becomes its onset), and
    without the P picks whose onset SNR (:func:`p_onset_snr`, over 1 s after the onset) is
    below ``p_min_snr`` (with ``candidate_p`` > 0 they stay, as candidate onsets of PhaseNet:
    ungated, they count only where an event predicts them); STA/LTA candidate onsets need
    ``candidate_min_snr``. The stream refines a P pick once the vertical holds what this reads
    (:func:`settle_ready`); a record that ends before has no gate."""
    from dataclasses import replace

    rate = float(z_view.sampling_rate_hz)
    signal_s = SNR_SIGNAL_S
    out = []
    for sp in picks:
        if sp.phase == "P":
            index = (sp.time_epoch_s * NS_PER_S - z_view.segment_start_ns) / NS_PER_S * rate
            back = REFINE_CONTEXT_S + SNR_NOISE_S + 1.0
            lo = max(z_view.start_index, int(index) - int(back * rate))
            ahead = REFINE_MAX_SHIFT_S + signal_s + 0.1
            hi = min(z_view.end_index, int(index) + int(ahead * rate))
            if hi > lo:
                # glitches in the noise before the onset's reach would raise the gate's noise
                reach = int(index - lo - (REFINE_MAX_SHIFT_S + 0.1) * rate)
                z = repair_glitches(z_view.get(lo, hi)[None, :], reach)[0][0]
                new = index
                if params.p_refine != "none":
                    new = lo + refine_p_onset(z, rate, index - lo)
                gate = {"": params.p_min_snr, "stalta": params.candidate_min_snr}.get(
                    sp.candidate, 0.0
                )
                if gate > 0 and p_onset_snr(z, rate, new - lo, signal_s) < gate:
                    if sp.candidate or not params.candidate_p > 0:
                        continue
                    sp = replace(sp, candidate="phasenet")  # a pick the gate drops
                t = (z_view.segment_start_ns + new * NS_PER_S / rate) / NS_PER_S
                # an STA/LTA candidate's time is its ratio's maximum: the onset is its time
                sp = replace(sp, **{"time_epoch_s" if sp.candidate == "stalta" else
                                    "onset_epoch_s": t})  # fmt: skip
        out.append(sp)
    return out


def separate_refined(
    picks: list[StationPick], recent_s: list[float], params: PickerParams
) -> list[StationPick]:
    """``picks`` (refined by :func:`refine_picks`) without the P picks whose onset lies within
    ``min_separation_s`` of a refined P onset of the station already kept (``recent_s``: their
    epoch seconds, updated with those kept and pruned to what a later pick can still reach).

    The picker keeps its P picks ``min_separation_s`` apart on the probability peaks; the
    refinement then moves each onset by up to ``REFINE_MAX_SHIFT_S``, so two peaks 1.2 s apart
    could become onsets 0.8 s apart, two reads of one onset. Candidate onsets (ungated, used
    only where an event predicts them) and S picks pass unchanged."""
    out = []
    for sp in picks:
        if sp.phase == "P" and not sp.candidate:
            t = sp.onset_s
            if any(abs(t - x) <= params.min_separation_s for x in recent_s):
                continue
            recent_s.append(t)
        out.append(sp)
    if recent_s:  # a later pick is at most a window (a second look) before the newest
        reach = params.window_s + 2 * (params.min_separation_s + REFINE_MAX_SHIFT_S)
        recent_s[:] = [x for x in recent_s if x >= max(recent_s) - reach]
    return out


SETTLE_AHEAD_S = REFINE_MAX_SHIFT_S + SNR_SIGNAL_S + 0.1  # what refine_picks reads after a P


def settle_ready(sp: StationPick, z_view) -> bool:
    """Whether the vertical's buffer ``z_view`` holds every sample :func:`refine_picks` reads
    for pick ``sp`` (an S pick needs none): until then a P pick waits, so that its onset and
    gate are those of one pass over the record, whatever the tail."""
    if sp.phase != "P":
        return True
    rate = float(z_view.sampling_rate_hz)
    index = (sp.time_epoch_s * NS_PER_S - z_view.segment_start_ns) / NS_PER_S * rate
    return z_view.end_index >= int(index) + int(SETTLE_AHEAD_S * rate)


def pick_traces(
    model: PhaseNetModel,
    traces: list,
    params: PickerParams | None = None,
) -> list[StationPick]:
    """All picks of one station's record in one pass: ``traces`` are obspy-like traces in the
    order E, N, Z (``None`` for a missing horizontal); the grid is anchored at the vertical's
    first sample. The same windows, regions and rules as the stream stage."""
    from stream.buffer import ChannelBuffer

    params = params or PickerParams()
    views = []
    for tr in traces:
        if tr is None:
            views.append(None)
            continue
        buf = ChannelBuffer(tr.stats.npts / tr.stats.sampling_rate + 10.0, max_fill_s=0.0)
        buf.append(int(tr.stats.starttime.ns), float(tr.stats.sampling_rate), tr.data)
        views.append(buf)
    anchor = views[2].segment_start_ns
    first = first_window_start(views[2], anchor, params.stride_n)

    def window(start: int) -> np.ndarray | None:
        if raw_span(views[2], anchor, start, params.window_n) is None:
            return None
        return station_window(views, anchor, start, params.window_n, params.vertical_only)

    # the windows on the stride run whatever happens: one batch; then, round by round, the
    # hot-stride windows after each hot window (a chain that ends on the next stride window)
    starts = []
    k = first
    while raw_span(views[2], anchor, k, params.window_n) is not None:
        starts.append(k)
        k += params.stride_n
    if not starts:
        return []
    probs = dict(zip(starts, _predict(model, [window(s) for s in starts], params), strict=True))
    todo = list(starts)
    while todo:
        nxt = []
        for s in todo:
            n = next_window_start(s, is_hot(probs[s], params), params)
            if n % params.stride_n and n not in probs:
                nxt.append(n)
        ready = [(n, w) for n in nxt if (w := window(n)) is not None]
        if not ready:
            break
        got = _predict(model, [w for _, w in ready], params)
        probs.update(zip([n for n, _ in ready], got, strict=True))
        todo = [n for n, _ in ready]
    last: dict[str, float] = {}
    recent: dict[str, list[float]] = {}
    onsets: list[float] = []  # the refined P onsets kept (separate_refined)
    out = []
    previous = None
    s = first
    while s in probs:
        w = window(s)
        found = picks_in_window(probs[s], s, first, anchor, params, last, previous, w)
        out += separate_refined(refine_picks(found, views[2], params), onsets, params)
        if params.candidates and s % params.stride_n == 0:
            maybe = candidate_picks(probs[s], w[2], s, first, anchor, params, last, found, w)
            out += refine_picks(maybe, views[2], params)
        if params.second_look_s > 0:
            for sp in found:
                recent.setdefault(sp.phase, []).append(sp.time_epoch_s)
            if s % params.stride_n == 0:  # windows on the stride only: their regions tile
                again = second_look_picks(probs[s], s, anchor, params, recent, w)
                out += separate_refined(refine_picks(again, views[2], params), onsets, params)
        previous, s = s, next_window_start(s, is_hot(probs[s], params), params)
    return out


def _predict(model: PhaseNetModel, windows: list, params: PickerParams) -> list[np.ndarray]:
    return list(model.predict(np.stack(windows), params.batch_size, params.highpass_hz))


def first_window_start(view, anchor_ns: int, stride_n: int) -> int:
    """The first window start (a multiple of ``stride_n`` on the grid anchored at
    ``anchor_ns``) whose samples the channel ``view`` holds from the start, the resampling pad
    included."""
    rate = float(view.sampling_rate_hz)
    pad_s = 0.0 if rate == GRID_RATE_HZ else math.ceil(RESAMPLE_PAD_S * rate) / rate
    first_ns = view.segment_start_ns + view.start_index * NS_PER_S / rate
    lead_s = (first_ns - anchor_ns) / NS_PER_S + pad_s
    n = max(0, int(math.ceil(lead_s * GRID_RATE_HZ - 1e-6)))
    return -(-n // stride_n) * stride_n
