"""Real recorded noise for scenarios: continuous miniSEED read once, cut and scaled per station.

A scenario with ``noise_dir`` set replaces the synthetic ambient noise by segments of real
three-component recordings (e.g. an hour of a short-period network): real noise is
non-stationary, has bursts, spikes and small unlabelled events, and a spectrum no model gives.

Each recorded station (one with Z, N and E channels) is a *source*; scenario station ``j``
takes source ``j mod n_sources`` at its own random start time, so stations sharing a source
still get different noise. Each channel is made zero-mean and scaled to unit RMS above 1 Hz
(the scenario's noise level is defined that way); the caller multiplies by the station's level.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

HIGHPASS_HZ = 1.0
COMPONENTS = ("Z", "N", "E")


@dataclass(frozen=True, eq=False)
class NoiseLibrary:
    """Unit-RMS (above 1 Hz) noise per source station: ``data[k]`` is (3 [Z, N, E], n)."""

    sources: tuple[str, ...]
    data: tuple[np.ndarray, ...]
    sampling_rate_hz: float

    def segment(self, station_index: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """(3, n) noise for scenario station ``station_index``: its source's data from a random
        start; when the record is shorter than ``n`` it is repeated end to end."""
        src = self.data[station_index % len(self.data)]
        length = src.shape[1]
        start = int(rng.integers(0, max(length - n, 0) + 1))
        idx = (start + np.arange(n)) % length
        return src[:, idx]


def _unit_rms(x: np.ndarray, fs: float) -> np.ndarray:
    from scipy.signal import butter, sosfiltfilt

    x = np.nan_to_num(np.asarray(x, dtype=np.float64) - np.nanmean(x))
    sos = butter(2, HIGHPASS_HZ, "highpass", fs=fs, output="sos")
    rms = float(np.sqrt(np.mean(sosfiltfilt(sos, x) ** 2)))
    return x / rms if rms > 0 else x


def load_noise(noise_dir: str | Path, sampling_rate_hz: float) -> NoiseLibrary:
    """Every three-component station of the miniSEED files under ``noise_dir``, resampled to
    ``sampling_rate_hz`` when needed, each channel merged (gaps filled with zeros) and scaled to
    unit RMS above 1 Hz; all channels of a source cut to the same length."""
    from obspy import Stream, read

    files = sorted(p for p in Path(noise_dir).rglob("*") if p.is_file())
    st = Stream()
    for path in files:
        try:
            st += read(str(path), format="MSEED")
        except Exception:  # not miniSEED: ignore (a README, a listing)
            continue
    st.merge(method=1, fill_value=0)
    by_station: dict[str, dict[str, np.ndarray]] = {}
    for tr in st:
        comp = tr.stats.channel[-1:].upper()
        comp = {"1": "N", "2": "E"}.get(comp, comp)
        if comp not in COMPONENTS:
            continue
        if abs(tr.stats.sampling_rate - sampling_rate_hz) > 1e-6:
            tr = tr.copy()
            tr.data = tr.data.astype(np.float64)
            tr.resample(sampling_rate_hz)
        key = f"{tr.stats.network}.{tr.stats.station}"
        by_station.setdefault(key, {})[comp] = _unit_rms(tr.data, sampling_rate_hz)
    sources, data = [], []
    for key in sorted(by_station):
        chans = by_station[key]
        if set(COMPONENTS) - set(chans):
            continue
        n = min(chans[c].size for c in COMPONENTS)
        if n < 10 * sampling_rate_hz:
            continue
        sources.append(key)
        data.append(np.stack([chans[c][:n] for c in COMPONENTS]))
    if not sources:
        raise ValueError(f"no three-component miniSEED noise (>= 10 s) under {noise_dir}")
    return NoiseLibrary(tuple(sources), tuple(data), float(sampling_rate_hz))
