"""Peak vector amplitude of a pick on three components, and the noise before it.

What the mechanism stage needs for S/P amplitude ratios (HASH's second data type,
Hardebeck & Shearer 2003): at a station, the S amplitude over the P amplitude, each the
largest ground-motion vector length sqrt(Z^2 + N^2 + E^2) in a short window after its pick,
band-passed, and the noise level before the P so that amplitudes barely above the noise are
not used (HASH/SKHASH ``ratmin``: amplitude / noise >= 3).

:func:`vector_amplitude` is the pure function: each component is demeaned, band-passed with a
causal Butterworth filter (a causal filter puts no signal before the onset, where the noise
is read), the vector length is taken sample by sample, and

* amplitude = its peak from ``lead_s`` before the pick to ``window_s`` after it;
* noise = its peak over ``noise_s`` ending ``gap_s`` before the pick.

Units are those of the input (counts); only ratios of amplitudes of one station are used.
:func:`span_samples` says how many samples before and after the pick the function reads.

.. seealso:: Hardebeck, J. L. & Shearer, P. M. (2003), BSSA 93(6), 2434-2444.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfilt


@dataclass(frozen=True)
class AmplitudeParams:
    """Windows (s) and band (Hz) of :func:`vector_amplitude`."""

    window_s: float = 0.5  # after the pick
    lead_s: float = 0.05  # before the pick (an onset picked a little late)
    noise_s: float = 0.5  # noise window length (as the signal window)
    gap_s: float = 0.2  # between the noise window's end and the pick (pick error)
    pad_s: float = 2.0  # filter settling before the noise window
    band_hz: tuple[float, float] = (2.0, 20.0)
    order: int = 4

    def __post_init__(self) -> None:
        for name in ("window_s", "noise_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected > 0, got {getattr(self, name)!r}")
        for name in ("lead_s", "gap_s", "pad_s"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected >= 0, got {getattr(self, name)!r}")
        lo, hi = self.band_hz
        if not 0 < lo < hi:
            raise ValueError(f"band_hz: expected 0 < low < high, got {self.band_hz!r}")


def span_samples(params: AmplitudeParams, sampling_rate_hz: float) -> tuple[int, int]:
    """(samples before the pick, samples from the pick on) that :func:`vector_amplitude`
    reads."""
    p = params
    before = math.ceil((p.pad_s + p.noise_s + p.gap_s) * sampling_rate_hz)
    after = math.ceil(p.window_s * sampling_rate_hz) + 1
    return before, after


@lru_cache(maxsize=16)
def _sos(band_hz: tuple[float, float], order: int, sampling_rate_hz: float) -> np.ndarray:
    lo, hi = band_hz
    hi = min(hi, 0.45 * sampling_rate_hz)
    return butter(order, [lo, hi], btype="bandpass", fs=sampling_rate_hz, output="sos")


def vector_amplitude(
    traces: np.ndarray,
    sampling_rate_hz: float,
    pick_index: int,
    params: AmplitudeParams | None = None,
) -> tuple[float, float]:
    """(peak vector amplitude after the pick, peak vector noise before it) of ``traces``
    (n_components, n_samples) sampled together, the pick at sample ``pick_index``.

    NaN or infinite samples read as the component's mean. Raises ValueError when the traces
    do not hold the noise window or the signal window (see :func:`span_samples`).
    """
    p = params or AmplitudeParams()
    x = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"traces: expected (n_components, n_samples), got {x.shape}")
    rate = float(sampling_rate_hz)
    if not rate > 2 * p.band_hz[0]:
        raise ValueError(f"sampling_rate_hz: too low for the band, got {rate}")
    n = x.shape[1]
    gap = int(round(p.gap_s * rate))
    noise_n = max(1, int(round(p.noise_s * rate)))
    lead = int(round(p.lead_s * rate))
    win = max(1, int(round(p.window_s * rate)))
    noise_lo = pick_index - gap - noise_n
    pad = int(round(p.pad_s * rate))
    if noise_lo - pad < 0 or pick_index + win > n:
        raise ValueError(
            f"traces of {n} samples do not hold the noise and signal windows around "
            f"sample {pick_index}"
        )
    finite = np.isfinite(x)
    if not finite.all():
        means = np.array([r[f].mean() if f.any() else 0.0 for r, f in zip(x, finite, strict=True)])
        x = np.where(finite, x, means[:, None])
    x = x - x[:, : max(1, noise_lo)].mean(axis=1, keepdims=True)
    y = sosfilt(_sos(tuple(p.band_hz), p.order, rate), x, axis=1)
    v = np.sqrt(np.sum(y * y, axis=0))
    amplitude = float(v[max(0, pick_index - lead) : pick_index + win].max())
    noise = float(v[noise_lo : pick_index - gap].max()) if pick_index - gap > noise_lo else 0.0
    return amplitude, noise
