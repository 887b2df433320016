"""P detection on one continuous channel: trigger, refine, measure -- streaming-safe.

The numerics are pure functions over arrays (units in the names: ``_s``, ``_hz``, samples);
:class:`ChannelDetector` carries their state from one chunk of samples to the next, so a
channel fed in packets of any size gives exactly the picks of one pass over the whole record.

Pipeline per channel (SeisComP scautopick's classic shape):

1. a causal Butterworth band-pass (``freqmin_hz``-``freqmax_hz``, order 4, second-order
   sections carried across chunks; :func:`design_bandpass`, :func:`bandpass_causal`),
2. the recursive STA/LTA of Withers et al. (1998) on its square (obspy's
   ``recursive_sta_lta`` continued across chunks) with trigger onsets, hysteresis
   (``trigger_on`` / ``trigger_off``), the LTA frozen while triggered, and a dead time after
   each trigger (:func:`sta_lta_triggers`); a trigger whose onset is rejected (SNR below
   ``min_snr``) keeps watching while it stays active, and a rise of the ratio ``trigger_on``
   times above the most it had reached is refined as a new onset (a weak noise trigger no
   longer hides a clear P that arrives before it ends; a trigger whose onset was picked does
   not, so an event's S wave is not picked as another P),
3. onset refinement on a short window around the trigger by the AIC picker of Maeda (1985)
   (:func:`firstmotion.onsets.aic_onset`) or the kurtosis-derivative picker of Saragiotis et
   al. (2002) / Baillard et al. (2014) (:func:`kurtosis_onset`), with sub-sample precision
   from a parabola through the extremum and its two neighbours,
4. SNR (RMS after over RMS before, band-passed) and peak amplitude (band-passed counts) of
   the refined onset (:func:`snr_and_amplitude`).

Each fast function has a slow, obviously-right twin ending in ``_py`` (plain Python loops);
the tests cross-check them, as obspy does for its C routines.

.. seealso:: Withers, M. et al. (1998), A comparison of select trigger algorithms for automated
   global seismic phase and event detection, BSSA 88(1). Maeda, N. (1985), A method for reading
   and checking phase times in autoprocessing system of seismic wave data, Zisin 38.
   Baillard, C. et al. (2014), An automatic kurtosis-based P- and S-phase picker designed for
   local seismic networks, BSSA 104(1).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps

from firstmotion.config import DETECT_REFINE_METHODS, DetectSettings, detect_order_problems
from firstmotion.filters import butter_sos, sos_steady_state
from firstmotion.glitches import GLITCH_STREAM_HELD, GlitchStream
from firstmotion.onsets import aic_onset
from stream.buffer import RingArray

REFINE_METHODS = DETECT_REFINE_METHODS
_TINY = np.finfo(np.float64).tiny


# --------------------------------------------------------------------------- parameters


_DEFAULTS = DetectSettings  # one source of defaults: the [detect] section of the config


@dataclass(frozen=True)
class DetectParams:
    """Detector settings (seconds, Hz, STA/LTA ratios); see :class:`firstmotion.config.
    DetectSettings` for the configuration keys they come from (and their defaults); the SNR
    windows and the longest trigger are the detector's own."""

    sta_s: float = _DEFAULTS.sta_s
    lta_s: float = _DEFAULTS.lta_s
    trigger_on: float = _DEFAULTS.trigger_on
    trigger_off: float = _DEFAULTS.trigger_off
    freqmin_hz: float = _DEFAULTS.freqmin_hz
    freqmax_hz: float = _DEFAULTS.freqmax_hz
    refine: str = _DEFAULTS.refine
    refine_window_s: float = _DEFAULTS.refine_window_s
    min_snr: float = _DEFAULTS.min_snr
    dead_time_s: float = _DEFAULTS.dead_time_s
    snr_noise_s: float = 2.0
    snr_signal_s: float = 1.0
    max_trigger_s: float = 60.0

    def __post_init__(self) -> None:
        positive = ("sta_s", "lta_s", "trigger_on", "trigger_off", "freqmin_hz", "freqmax_hz",
                    "refine_window_s", "snr_noise_s", "snr_signal_s", "max_trigger_s")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"detect.{name}: expected a positive number, got {value!r}")
        for name in ("min_snr", "dead_time_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"detect.{name}: expected a number >= 0, got {value!r}")
        problems = detect_order_problems(self)
        if problems:
            raise ValueError(problems[0])
        if self.refine not in REFINE_METHODS:
            raise ValueError(
                f"detect.refine: expected one of {list(REFINE_METHODS)}, got {self.refine!r}"
            )

    @classmethod
    def from_settings(cls, settings: object) -> DetectParams:
        """From a :class:`firstmotion.config.DetectSettings` (same key names)."""
        keys = [k for k in cls.__dataclass_fields__ if hasattr(settings, k)]
        return cls(**{k: getattr(settings, k) for k in keys})

    def lookback_s(self) -> float:
        """Seconds of band-passed history a refinement needs before a trigger."""
        return self.refine_window_s + self.snr_noise_s + self.dead_time_s

    def lookahead_s(self) -> float:
        """Seconds after a trigger that must have arrived before it can be refined."""
        return max(self.refine_window_s, self.snr_signal_s + self.refine_window_s)


# --------------------------------------------------------------------------- filtering


def design_bandpass(
    freqmin_hz: float, freqmax_hz: float, sampling_rate_hz: float, order: int = 4
) -> np.ndarray:
    """Butterworth band-pass as second-order sections (``sos``, shape ``(order, 6)``).

    The upper corner is clipped to 0.45 x the sampling rate (a 40 Hz channel with a 20 Hz
    corner would otherwise be at Nyquist)."""
    if not sampling_rate_hz > 0:
        raise ValueError(f"sampling_rate_hz: expected > 0, got {sampling_rate_hz!r}")
    nyquist_hz = 0.5 * sampling_rate_hz
    high_hz = min(freqmax_hz, 0.9 * nyquist_hz)
    if not 0 < freqmin_hz < high_hz:
        raise ValueError(
            f"band {freqmin_hz}-{freqmax_hz} Hz does not fit a {sampling_rate_hz} Hz channel"
        )
    return butter_sos(order, (freqmin_hz, high_hz), "bandpass", sampling_rate_hz)[0]


def bandpass_causal(
    x: np.ndarray, sos: np.ndarray, zi: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Causal band-pass of ``x`` continuing from filter state ``zi``; returns ``(y, zf)``.

    ``zi=None`` starts the filter in the steady state of a constant signal equal to ``x[0]``
    (no step response from a DC offset in raw counts)."""
    x = np.asarray(x, dtype=np.float64)
    if zi is None:
        zi = sos_steady_state(sos) * (x[0] if x.size else 0.0)
    if x.size == 0:
        return x.copy(), np.array(zi, dtype=np.float64)
    y, zf = sps.sosfilt(sos, x, zi=zi)
    return y, zf


# --------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class TriggerState:
    """STA/LTA trigger state after ``n_samples`` of a segment: STA and LTA of y^2; ``active``
    until the ratio falls below ``trigger_off`` (the LTA is frozen meanwhile); no new trigger
    before absolute sample ``dead_until``."""

    sta: float = 0.0
    lta: float = _TINY
    n_samples: int = 0
    active: bool = False
    dead_until: int = 0
    since: int = 0  # absolute sample of the active trigger's onset


def _recursive(x2: np.ndarray, c: float, start: float) -> np.ndarray:
    """``out[i] = c x2[i] + (1 - c) out[i-1]`` with ``out[-1] = start`` (one IIR pass)."""
    out, _ = sps.lfilter([c], [1.0, c - 1.0], x2, zi=[(1.0 - c) * start])
    return out


def sta_lta_triggers(
    y: np.ndarray,
    nsta: int,
    nlta: int,
    on: float,
    off: float,
    dead_samples: int,
    state: TriggerState | None = None,
    *,
    max_active_samples: int | None = None,
) -> tuple[np.ndarray, np.ndarray, TriggerState]:
    """Trigger onsets of the recursive STA/LTA (Withers et al. 1998) of ``y``, continuing
    from ``state``; returns ``(onsets, cft, new_state)``.

    ``sta[i] = y[i]^2/nsta + (1 - 1/nsta) sta[i-1]``, likewise ``lta``; ``cft = sta/lta`` is 0
    for the first ``nlta`` samples of a segment (warm-up), as obspy's ``recursive_sta_lta``.
    A trigger starts where ``cft`` rises above ``on`` (not before ``dead_until``) and stays
    active until ``cft`` drops below ``off``; while active the LTA is frozen, so a large
    event's own energy does not blind the detector to the next one for minutes; a trigger
    still active ``max_active_samples`` after its onset (a lasting rise of the noise level)
    ends there and the LTA restarts from the current STA. ``onsets``
    are absolute sample indices (int64; sample ``state.n_samples`` is ``y[0]``). Each stretch
    between state changes is one vectorised IIR pass (lfilter); the loop runs per trigger.
    """
    if not (isinstance(nsta, (int, np.integer)) and isinstance(nlta, (int, np.integer))):
        raise ValueError(f"nsta and nlta must be integers, got {nsta!r}, {nlta!r}")
    if not 0 < nsta < nlta:
        raise ValueError(f"need 0 < nsta < nlta, got nsta={nsta}, nlta={nlta}")
    if not off < on:
        raise ValueError(f"need off < on, got on={on}, off={off}")
    st = state or TriggerState()
    x2 = np.square(np.asarray(y, dtype=np.float64))
    n = x2.size
    cft = np.zeros(n)
    onsets: list[int] = []
    csta, clta = 1.0 / nsta, 1.0 / nlta
    sta, lta, first = st.sta, st.lta, st.n_samples
    active, dead_until, since = st.active, st.dead_until, st.since
    pos = 0
    block = max(4 * nlta, 4096)  # bounds the work redone after each state change
    while pos < n:
        stop = min(n, pos + block)
        seg_sta = _recursive(x2[pos:stop], csta, sta)
        if active:
            ratio = seg_sta / lta
            cft[pos:stop] = ratio
            hits = np.flatnonzero(ratio < off)
            i_off = int(hits[0]) if hits.size else ratio.size
            release = ratio.size
            if max_active_samples is not None:
                release = max(0, since + max_active_samples - (first + pos))
            if min(i_off, release) >= ratio.size:
                sta, pos = float(seg_sta[-1]), stop
                continue
            i = min(i_off, release)
            sta, active = float(seg_sta[i]), False
            if release < i_off:
                lta = max(sta, _TINY)
            pos = pos + i + 1
            continue
        seg_lta = np.maximum(_recursive(x2[pos:stop], clta, lta), _TINY)
        ratio = seg_sta / seg_lta
        warm = nlta - (first + pos)
        if warm > 0:
            ratio[: min(warm, ratio.size)] = 0.0
        cft[pos:stop] = ratio
        ok = ratio > on
        lead = dead_until - (first + pos)
        if lead > 0:
            ok[: min(lead, ok.size)] = False
        hits = np.flatnonzero(ok)
        if hits.size == 0:
            sta, lta, pos = float(seg_sta[-1]), float(seg_lta[-1]), stop
            continue
        i = int(hits[0])
        onsets.append(first + pos + i)
        sta, lta = float(seg_sta[i]), float(seg_lta[i])
        active, dead_until, since = True, first + pos + i + dead_samples, first + pos + i
        pos = pos + i + 1
    new = TriggerState(sta, lta, first + n, active, dead_until, since)
    return np.asarray(onsets, dtype=np.int64), cft, new


def sta_lta_triggers_py(
    y: np.ndarray,
    nsta: int,
    nlta: int,
    on: float,
    off: float,
    dead_samples: int,
    max_active_samples: int | None = None,
) -> tuple[list[int], np.ndarray]:
    """Slow twin of :func:`sta_lta_triggers` for one whole segment: a sample-by-sample loop."""
    csta, clta = 1.0 / nsta, 1.0 / nlta
    sta, lta = 0.0, _TINY
    active, dead_until, since = False, 0, 0
    onsets: list[int] = []
    cft = np.zeros(len(y))
    for i, value in enumerate(np.asarray(y, dtype=np.float64)):
        e = value * value
        sta = csta * e + (1 - csta) * sta
        if active:
            cft[i] = sta / lta
            if cft[i] < off:
                active = False
            elif max_active_samples is not None and i - since >= max_active_samples:
                active, lta = False, max(sta, _TINY)
            continue
        lta = max(clta * e + (1 - clta) * lta, _TINY)
        cft[i] = sta / lta if i >= nlta else 0.0
        if cft[i] > on and i >= dead_until:
            onsets.append(i)
            active, dead_until, since = True, i + dead_samples, i
    return onsets, cft


# --------------------------------------------------------------------------- refinement


def kurtosis_curve(x: np.ndarray, window_samples: int) -> np.ndarray:
    """Sliding (trailing) kurtosis of ``x`` over ``window_samples`` (0 before it is full)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    w = int(window_samples)
    out = np.zeros(n)
    if w < 4 or n < w:
        return out
    x = x - x.mean()
    c = [np.concatenate(([0.0], np.cumsum(x**p))) for p in (1, 2, 3, 4)]
    s1, s2, s3, s4 = (ci[w:] - ci[:-w] for ci in c)
    m = s1 / w
    var = s2 / w - m**2
    m4 = s4 / w - 4 * m * s3 / w + 6 * m**2 * s2 / w - 3 * m**4
    out[w - 1 :] = m4 / np.maximum(var, _TINY) ** 2
    return out


def kurtosis_onset(x: np.ndarray, window_samples: int) -> float:
    """Onset (fractional sample index into ``x``) by the kurtosis picker: the sample before
    the steepest rise of the trailing-window kurtosis (Saragiotis et al. 2002), refined to the
    AIC minimum of the data up to that rise (Baillard et al. 2014 use the same pairing)."""
    curve = kurtosis_curve(x, window_samples)
    if curve.size < 3 or not np.any(curve):
        return float("nan")
    rise = int(np.argmax(np.diff(curve))) + 1
    end = min(x.size, rise + max(4, window_samples // 4))
    return aic_onset(np.asarray(x)[:end]) if end >= 4 else float(rise)


def snr_and_amplitude(
    y: np.ndarray, onset_index: float, noise_samples: int, signal_samples: int
) -> tuple[float, float]:
    """``(snr, amplitude)`` at ``onset_index`` of band-passed ``y``: RMS of the
    ``signal_samples`` after over RMS of the ``noise_samples`` before, and the peak absolute
    value after (same units as ``y``)."""
    i = int(np.ceil(onset_index))
    noise = np.asarray(y[max(0, i - noise_samples) : max(0, i - 1)], dtype=np.float64)
    sig = np.asarray(y[i : i + signal_samples], dtype=np.float64)
    if noise.size < 2 or sig.size < 1:
        return 0.0, float(np.max(np.abs(sig))) if sig.size else 0.0
    noise_rms = float(np.sqrt(np.mean(noise**2)))
    sig_rms = float(np.sqrt(np.mean(sig**2)))
    amplitude = float(np.max(np.abs(sig)))
    return (sig_rms / noise_rms if noise_rms > 0 else float("inf")), amplitude


def single_sample_glitch(
    x: np.ndarray,
    onset_index: float,
    noise_samples: int,
    signal_samples: int,
    *,
    search_samples: int = 5,
    min_ratio: float = 2.0,
) -> bool:
    """Whether the onset at ``onset_index`` of raw samples ``x`` is a one-sample glitch
    (a telemetry spike), not a seismic arrival.

    The sample with the largest second difference within ``search_samples`` of the onset is
    replaced by the mean of its neighbours; if that alone brings the RMS of the first
    differences over the ``signal_samples`` after the onset (and the search zone before it)
    below ``min_ratio`` times their RMS over the ``noise_samples`` before (while the untouched
    data were above it, by more than half as much again), the "arrival" was that one sample.
    First differences, so that
    microseism and drift do not count.
    """
    x = np.asarray(x, dtype=np.float64)
    i = int(round(onset_index))
    lo_n, hi_s = i - noise_samples, i + signal_samples + 1
    if lo_n < 1 or hi_s > x.size or noise_samples < 8:
        return False
    a, b = max(1, i - search_samples), min(x.size - 1, i + search_samples + 1)
    second = np.abs(x[a:b] - 0.5 * (x[a - 1 : b - 1] + x[a + 1 : b + 1]))
    k = a + int(np.argmax(second))
    fixed = x.copy()
    fixed[k] = 0.5 * (x[k - 1] + x[k + 1])

    def ratio(y: np.ndarray) -> float:
        dy = np.diff(y[lo_n:hi_s])
        noise = dy[: noise_samples - search_samples - 1]
        sig = dy[noise_samples - search_samples - 1 :]
        noise_rms = float(np.sqrt(np.mean(noise**2)))
        return float(np.sqrt(np.mean(sig**2))) / noise_rms if noise_rms > 0 else np.inf

    before, after = ratio(x), ratio(fixed)
    return before >= min_ratio > after and before > 1.5 * after


# --------------------------------------------------------------------------- streaming


@dataclass(frozen=True)
class Detection:
    """One refined P onset on a channel.

    ``onset_index`` is the fractional absolute sample index in the channel's segment (sample
    ``i`` is at ``segment_start + i / sampling_rate_hz``); ``trigger_index`` the STA/LTA
    trigger's sample (for an onset found by a watched trigger, the sample of the rise)."""

    trigger_index: int
    onset_index: float
    snr: float
    amplitude: float
    method: str


_LOOK_AGAIN = "look again"


@dataclass
class ChannelDetector:
    """Streaming detector of one channel segment (contiguous samples at one rate).

    Feed it consecutive chunks with :meth:`feed`; it returns the detections whose refinement
    window has fully arrived. Keeps a ring of band-passed history for the refinement. A gap or
    a sampling-rate change means a new segment: make a new detector.
    """

    params: DetectParams
    sampling_rate_hz: float
    history_s: float = 30.0
    start_index: int = 0
    _sos: np.ndarray = field(init=False, repr=False)
    _zi: np.ndarray | None = field(default=None, init=False, repr=False)
    _trigger: TriggerState = field(default_factory=TriggerState, init=False)
    _pending: list[tuple[int, int]] = field(default_factory=list, init=False)
    _ring: RingArray = field(init=False, repr=False)
    _cft: RingArray = field(init=False, repr=False)
    _watch: tuple[int, int, float] | None = field(default=None, init=False)
    _last_onset: float = field(default=-np.inf, init=False)
    _glitches: GlitchStream = field(init=False, repr=False)

    def __post_init__(self) -> None:
        p, rate = self.params, self.sampling_rate_hz
        self._glitches = GlitchStream(rate, self.start_index)
        self._sos = design_bandpass(p.freqmin_hz, p.freqmax_hz, rate)
        self._nsta = max(1, int(round(p.sta_s * rate)))
        self._nlta = max(self._nsta + 1, int(round(p.lta_s * rate)))
        self._dead = int(round(p.dead_time_s * rate))
        self._max_active = max(1, int(round(p.max_trigger_s * rate)))
        self._refine_n = max(8, int(round(p.refine_window_s * rate)))
        self._noise_n = max(4, int(round(p.snr_noise_s * rate)))
        self._signal_n = max(2, int(round(p.snr_signal_s * rate)))
        need = self._refine_n + self._noise_n + self._signal_n + self._refine_n
        capacity = max(int(self.history_s * rate), 2 * need)
        self._ring = RingArray(capacity, start_index=self.start_index)
        self._cft = RingArray(capacity, start_index=self.start_index)
        self._trigger = TriggerState(n_samples=self.start_index)
        self._ahead = self._refine_n + self._signal_n  # samples needed after a trigger
        # a longer chunk is fed in parts: a look still pending needs the `need` samples before
        # the chunk, so the rings must hold them after it (any chunking gives the same picks)
        # (and the chunk comes out of the glitch test up to GLITCH_STREAM_HELD samples longer)
        self._max_chunk = capacity - need - GLITCH_STREAM_HELD

    @property
    def n_samples(self) -> int:
        """Samples band-passed so far (the absolute index of the next one): all fed but the
        last eight, which wait for the glitch test (:class:`firstmotion.glitches.
        GlitchStream`)."""
        return self._ring.end

    @property
    def received(self) -> int:
        """Samples fed so far (the absolute index of the next one to feed)."""
        return self._glitches.received

    @property
    def glitches_repaired(self) -> int:
        """One-sample glitches repaired before the band-pass so far."""
        return self._glitches.repaired

    def snapshot(self) -> dict:
        """The state that carries the detection on (JSON-ready; no history, no pending
        triggers; a rejected trigger's watch and the samples waiting for the glitch test
        included): continue it with :meth:`restore` after a restart."""
        t = self._trigger
        return {
            "n_samples": self.received,
            "glitches": self._glitches.snapshot(),
            "zi": None if self._zi is None else np.asarray(self._zi).tolist(),
            "sta": t.sta,
            "lta": t.lta,
            "active": t.active,
            "dead_until": t.dead_until,
            "since": t.since,
            "last_onset": None if not np.isfinite(self._last_onset) else self._last_onset,
            "watch": None if self._watch is None else list(self._watch),
        }

    @classmethod
    def restore(
        cls, params: DetectParams, sampling_rate_hz: float, snapshot: dict, history_s: float = 30.0
    ) -> ChannelDetector:
        """A detector continuing at :meth:`snapshot`'s sample with its filter and STA/LTA
        state (band-passed history starts empty there) and the samples it had not yet
        band-passed (a snapshot without them continues at its sample with a fresh glitch
        test)."""
        n = int(snapshot["n_samples"])
        glitches = snapshot.get("glitches")
        if glitches is not None:
            n = int(glitches["emitted"])
        det = cls(params, sampling_rate_hz, history_s, start_index=n)
        if glitches is not None:
            det._glitches = GlitchStream.restore(sampling_rate_hz, glitches)
        if snapshot["zi"] is not None:
            det._zi = np.asarray(snapshot["zi"], dtype=np.float64).reshape(det._sos.shape[0], 2)
        det._trigger = TriggerState(
            float(snapshot["sta"]), float(snapshot["lta"]), n, bool(snapshot["active"]),
            int(snapshot["dead_until"]), int(snapshot.get("since", 0)),
        )  # fmt: skip
        if snapshot["last_onset"] is not None:
            det._last_onset = float(snapshot["last_onset"])
        if snapshot.get("watch") is not None:  # a rejected trigger still watched
            trigger, start, level = snapshot["watch"]
            det._watch = (int(trigger), max(int(start), n), float(level))
        return det

    def filtered(self, start: int, stop: int) -> np.ndarray:
        """Band-passed samples ``start..stop-1`` (absolute indices) from the history ring."""
        return self._ring.get(start, stop)

    def feed(self, x: np.ndarray) -> list[Detection]:
        """Process the next chunk of raw samples (any length); returns detections now
        complete."""
        x = np.asarray(x, dtype=np.float64)
        if x.size > self._max_chunk:
            step = self._max_chunk
            return [d for i in range(0, x.size, step) for d in self._feed(x[i : i + step])]
        return self._feed(x)

    def _feed(self, x: np.ndarray) -> list[Detection]:
        x = self._glitches.feed(x)
        if x.size == 0:
            return []
        y, self._zi = bandpass_causal(x, self._sos, self._zi)
        self._ring.extend(y)
        p = self.params
        onsets, cft, self._trigger = sta_lta_triggers(
            y, self._nsta, self._nlta, p.trigger_on, p.trigger_off, self._dead, self._trigger,
            max_active_samples=self._max_active,
        )  # fmt: skip
        self._cft.extend(cft)
        self._pending.extend((int(i), int(i)) for i in onsets)
        out: list[Detection] = []
        while True:
            self._scan_watch()
            if not (self._pending and self._pending[0][1] + self._ahead <= self.n_samples):
                return out
            trigger, look = self._pending.pop(0)
            det = self._refine(look)
            if isinstance(det, Detection):
                out.append(det)
            elif det == _LOOK_AGAIN:
                seen = look + self._refine_n // 2 + 1  # the samples this look examined
                lo = max(trigger, self._cft.start)
                self._watch = (trigger, seen, float(np.max(self._cft.get(lo, seen))))

    def _scan_watch(self) -> None:
        """Within a trigger whose pick was rejected (too weak), a new onset is looked at where
        the ratio rises ``trigger_on`` times above the most it reached in what was already
        examined (the trigger's own level), as the trigger rose above the noise; the watch ends
        with the trigger."""
        if self._watch is None:
            return
        trigger, start, level = self._watch
        start = max(start, self._cft.start)
        if start >= trigger + self._max_active:  # the trigger has ended by its age
            self._watch = None
            return
        stop = min(self.n_samples, trigger + self._max_active)  # the trigger ends there at most
        ratio = self._cft.get(start, stop)
        ended = np.flatnonzero(ratio < self.params.trigger_off)
        end = int(ended[0]) if ended.size else ratio.size
        rises = np.flatnonzero(ratio[:end] >= self.params.trigger_on * level)
        if rises.size:
            self._pending.insert(0, (trigger, start + int(rises[0])))
            self._watch = None
        elif end < ratio.size or stop < self.n_samples:
            self._watch = None
        else:
            self._watch = (trigger, stop, level)

    def _refine(self, look: int) -> Detection | str | None:
        """The onset near ``look`` (the trigger itself, or a later rise within it): a
        :class:`Detection`, ``None`` (that onset is already picked) or ``_LOOK_AGAIN`` (too weak:
        watch the rest of the trigger)."""
        p = self.params
        lo = max(look - self._refine_n, self._ring.start)
        hi = look + self._refine_n // 2
        window = self.filtered(lo, hi)
        if p.refine == "aic":
            rel = aic_onset(window)
        elif p.refine == "kurtosis":
            rel = kurtosis_onset(window, max(8, self._refine_n // 4))
        else:
            rel = float(look - lo)
        if not np.isfinite(rel):
            rel = float(look - lo)
        onset = lo + rel
        if onset - self._last_onset < self._dead:  # the same onset, refined twice
            return None
        s_lo = max(self._ring.start, int(onset) - self._noise_n - 1)
        s_hi = min(self.n_samples, int(np.ceil(onset)) + self._signal_n)
        snr, amplitude = snr_and_amplitude(
            self.filtered(s_lo, s_hi), onset - s_lo, self._noise_n, self._signal_n
        )
        if snr < p.min_snr:
            return _LOOK_AGAIN
        self._last_onset = onset
        return Detection(look, float(onset), float(snr), float(amplitude), p.refine)


def nearest_onsets(detections: list[Detection], reference_index: np.ndarray) -> np.ndarray:
    """For each reference sample index (an analyst's pick, a labelled onset), the onset index
    of the nearest detection (``inf`` when there is none): to score a picker on reference
    picks."""
    ref = np.asarray(reference_index, dtype=np.float64)
    found = np.array([d.onset_index for d in detections], dtype=np.float64)
    if found.size == 0:
        return np.full(ref.shape, np.inf)
    return found[np.argmin(np.abs(found[None, :] - ref.reshape(-1, 1)), axis=1)].reshape(ref.shape)


def detect_once(
    x: np.ndarray, sampling_rate_hz: float, params: DetectParams | None = None
) -> list[Detection]:
    """All detections of one contiguous record (a single :meth:`ChannelDetector.feed`)."""
    params = params or DetectParams()
    # history beyond the record and its look-ahead: one part, no split (see feed)
    det = ChannelDetector(params, sampling_rate_hz, history_s=len(x) / sampling_rate_hz + 60)
    return det.feed(x)
