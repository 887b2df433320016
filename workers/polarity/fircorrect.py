"""Removing a datalogger's acausal FIR precursor before reading a first motion.

A linear-phase (symmetric) FIR anti-alias stage, with its delay corrected in the time stamps
as dataloggers do, is zero-phase: before a sharp onset it rings, a precursor of the opposite
sign up to the Gibbs fraction (~9%) of the step, that a reader may take for the first motion.
Where the channel's response (StationXML) gives that FIR, the record can be corrected
(Scherbaum & Bouin 1997): divide out the zero-phase response and multiply by the minimum-phase
filter of the same amplitude response, so the record looks as if it had passed a causal FIR
(no precursor, a short delay instead). Only the phase changes below the FIR's corner; the
stop band is left as it is.

:func:`fir_precursor_correction` does that on rows at the record's rate for one FIR stage
(its coefficients at the stage's input rate); :func:`linear_phase_firs` pulls the symmetric
FIR stages out of an obspy :class:`~obspy.core.inventory.response.Response`;
``PolarityClassifier.classify(..., fir=(taps, fir_rate_hz))`` applies the correction first.

.. seealso:: Scherbaum & Bouin (1997), FIR filter effects and nucleation phases, GJI 128,
   730-735; Scherbaum (2007), Of poles and zeros, ch. 11.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import signal


def minimum_phase_taps(taps: ArrayLike, n_fft: int = 1 << 15) -> np.ndarray:
    """The minimum-phase FIR with the amplitude response of ``taps`` (same length), by the
    real cepstrum (the log amplitude clipped 140 dB below its peak)."""
    h = np.asarray(taps, dtype=np.float64)
    amp = np.abs(np.fft.fft(h, n_fft))
    log_amp = np.log(np.maximum(amp, amp.max() * 1e-7))
    cep = np.fft.ifft(log_amp).real
    fold = np.zeros(n_fft)
    fold[0] = cep[0]
    fold[1 : n_fft // 2] = 2.0 * cep[1 : n_fft // 2]
    fold[n_fft // 2] = cep[n_fft // 2]
    h_min = np.fft.ifft(np.exp(np.fft.fft(fold))).real
    return h_min[: h.size]


def fir_precursor_correction(
    x: ArrayLike,
    rate_hz: float,
    taps: ArrayLike,
    fir_rate_hz: float | None = None,
    *,
    stopband_floor: float = 1e-3,
) -> np.ndarray:
    """Rows (N, L) (or (L,)) recorded at ``rate_hz`` through the linear-phase FIR ``taps``
    (at ``fir_rate_hz``, default ``rate_hz``; its delay corrected in the time stamps), as
    they would be through its minimum-phase twin: multiply by ``H_min(f) / H_0(f)`` with
    ``H_0`` the zero-phase response, for ``|H_0| > stopband_floor * max`` (else unchanged).

    Each row is taken relative to its first sample and padded (two FIR lengths at least) by a
    cosine taper from its last value to zero, so the circular convolution does not wrap a
    step from the end onto the start."""
    arr = np.asarray(x, dtype=np.float64)
    one = arr.ndim == 1
    rows = arr[None, :] if one else arr
    h = np.ascontiguousarray(taps, dtype=np.float64)
    fir_rate = float(fir_rate_hz or rate_hz)
    n = rows.shape[1]
    pad = int(np.ceil(2 * h.size * rate_hz / fir_rate)) + 16
    n_fft = int(2 ** np.ceil(np.log2(n + pad)))
    corr = _correction(h.tobytes(), fir_rate, float(rate_hz), n_fft, float(stopband_floor))
    base = rows[:, :1]
    taper = 0.5 * (1.0 + np.cos(np.linspace(0.0, np.pi, n_fft - n)))  # last value -> 0
    padded = np.concatenate([rows - base, (rows[:, -1:] - base) * taper[None, :]], axis=1)
    out = np.fft.irfft(np.fft.rfft(padded, axis=1) * corr[None, :], n_fft, axis=1)[:, :n] + base
    return out[0] if one else out


@functools.lru_cache(maxsize=256)
def _correction(
    taps: bytes, fir_rate: float, rate_hz: float, n_fft: int, stopband_floor: float
) -> np.ndarray:
    """``H_min / H_0`` on the rfft grid of ``n_fft`` samples at ``rate_hz`` (read-only; one
    design per FIR, rate and length: a worker corrects many windows of the same channels)."""
    h = np.frombuffer(taps, dtype=np.float64)
    f = np.fft.rfftfreq(n_fft, 1.0 / rate_hz)
    _, h_lin = signal.freqz(h, worN=f, fs=fir_rate)
    delay = (h.size - 1) / 2.0 / fir_rate
    h_zero = h_lin * np.exp(2j * np.pi * f * delay)
    _, h_min = signal.freqz(minimum_phase_taps(h), worN=f, fs=fir_rate)
    live = np.abs(h_zero) > stopband_floor * np.abs(h_zero).max()
    corr = np.ones(f.size, dtype=complex)
    corr[live] = h_min[live] / h_zero[live]
    corr.flags.writeable = False
    return corr


def expand_symmetric(coefficients: ArrayLike, symmetry: str) -> np.ndarray:
    """Full taps of a SEED FIR stage given by half its coefficients: ``ODD`` (the middle tap
    once), ``EVEN``, or ``NONE`` (already full)."""
    c = np.asarray(coefficients, dtype=np.float64)
    if symmetry == "ODD":
        return np.concatenate([c, c[-2::-1]])
    if symmetry == "EVEN":
        return np.concatenate([c, c[::-1]])
    return c


def linear_phase_firs(response) -> list[tuple[np.ndarray, float]]:
    """The linear-phase (symmetric) FIR stages of an obspy ``Response``: (taps, input rate
    in Hz) per stage, in signal order. Stages with asymmetric coefficients (minimum-phase
    FIRs, causal already) are skipped."""
    from obspy.core.inventory.response import (
        CoefficientsTypeResponseStage,
        FIRResponseStage,
    )

    out = []
    for stage in response.response_stages:
        rate = getattr(stage, "decimation_input_sample_rate", None)
        if isinstance(stage, FIRResponseStage):
            taps = expand_symmetric(stage.coefficients, stage.symmetry or "NONE")
        elif isinstance(stage, CoefficientsTypeResponseStage) and not stage.denominator:
            taps = np.asarray([float(v) for v in stage.numerator], dtype=np.float64)
        else:
            continue
        if taps.size < 3 or not rate:
            continue
        if np.allclose(taps, taps[::-1], rtol=1e-6, atol=1e-12 * np.abs(taps).max()):
            out.append((taps, float(rate)))
    return out


Firs = tuple[tuple[np.ndarray, float], ...]


class ChannelFirs:
    """The linear-phase FIR stages of every channel of an obspy ``Inventory`` with a
    response, by SEED id (``NET.STA.LOC.CHA``) and epoch: what
    ``PolarityClassifier.classify(..., fir=...)`` takes for a pick on that channel.

    :meth:`get` gives the same tuple object for every pick of one channel epoch (callers may
    batch by it), and ``()`` for a channel that is not in the inventory, has no response, or
    whose response has no symmetric FIR stage (nothing to correct)."""

    def __init__(self, inventory: Any) -> None:
        self._epochs: dict[str, list[tuple[float, float, Firs]]] = {}
        self.channels = 0  # channels in the inventory
        for net in inventory:
            for sta in net:
                for cha in sta:
                    self.channels += 1
                    if cha.response is None:
                        continue
                    firs = tuple(linear_phase_firs(cha.response))
                    if not firs:
                        continue
                    start = cha.start_date.timestamp if cha.start_date else -math.inf
                    end = cha.end_date.timestamp if cha.end_date else math.inf
                    sid = f"{net.code}.{sta.code}.{cha.location_code}.{cha.code}"
                    self._epochs.setdefault(sid, []).append((start, end, firs))

    @classmethod
    def read(cls, path: str | Path) -> ChannelFirs:
        """From a StationXML file (with its responses)."""
        from firstmotion.inventory import read_stationxml

        return cls(read_stationxml(path))

    def __len__(self) -> int:
        """Channel epochs with a linear-phase FIR stage."""
        return sum(len(v) for v in self._epochs.values())

    def get(self, station_id: str, time_epoch_s: float) -> Firs:
        for start, end, firs in self._epochs.get(station_id, ()):
            if start <= time_epoch_s < end:
                return firs
        return ()
