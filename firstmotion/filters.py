"""Filter designs shared by the stages, each made once per band, order and rate.

scipy's Butterworth design and its steady state cost about as much as filtering a 30 s
window, and the stages filter many short windows with the same few designs. The designs are
kept read-only in one cache; callers get copies (scipy's ``sosfilt`` wants a writable
``sos``), so no caller can change what another one filters with.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import signal

Corner = float | tuple[float, float]


@functools.lru_cache(maxsize=128)
def _butter(
    order: int, corner_hz: Corner, btype: str, rate_hz: float, output: str
) -> tuple[np.ndarray, ...]:
    if output == "sos":
        sos = signal.butter(order, corner_hz, btype=btype, fs=rate_hz, output="sos")
        parts: tuple[np.ndarray, ...] = (sos, signal.sosfilt_zi(sos))
    else:
        b, a = signal.butter(order, corner_hz, btype=btype, fs=rate_hz)
        parts = (b, a, signal.lfilter_zi(b, a))
    for p in parts:
        p.flags.writeable = False
    return parts


def _corner(corner_hz: Corner) -> Corner:
    if isinstance(corner_hz, tuple | list):
        low, high = corner_hz
        return (float(low), float(high))
    return float(corner_hz)


def butter_sos(
    order: int, corner_hz: Corner, btype: str, rate_hz: float
) -> tuple[np.ndarray, np.ndarray]:
    """Butterworth filter as second-order sections and the sections' steady state for a
    unit constant input (``scipy.signal.sosfilt_zi``): ``(sos, zi)``, fresh copies.

    ``corner_hz`` is one corner (``btype`` "highpass" or "lowpass") or a ``(low, high)`` pair
    ("bandpass")."""
    sos, zi = _butter(int(order), _corner(corner_hz), str(btype), float(rate_hz), "sos")
    return sos.copy(), zi.copy()


def butter_ba(
    order: int, corner_hz: Corner, btype: str, rate_hz: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same design as a transfer function with its unit-step state
    (``scipy.signal.lfilter_zi``): ``(b, a, zi)``, fresh copies."""
    b, a, zi = _butter(int(order), _corner(corner_hz), str(btype), float(rate_hz), "ba")
    return b.copy(), a.copy(), zi.copy()


@functools.lru_cache(maxsize=128)
def _steady_state(sos_bytes: bytes, n_sections: int) -> np.ndarray:
    zi = signal.sosfilt_zi(np.frombuffer(sos_bytes, dtype=np.float64).reshape(n_sections, 6))
    zi.flags.writeable = False
    return zi


def sos_steady_state(sos: np.ndarray) -> np.ndarray:
    """``scipy.signal.sosfilt_zi`` of any sections (a design not made here included), made
    once per design; read-only (scale it, which makes a new array)."""
    sos = np.ascontiguousarray(sos, dtype=np.float64)
    return _steady_state(sos.tobytes(), sos.shape[0])
