"""One-sample glitches: telemetry bit errors and digitiser glitches, found and repaired.

A bit error in a telemetry packet or a digitiser glitch is one sample far off the record,
often by far more than any earthquake the station records (a high bit of a 24-bit count is
millions). Left in, one such sample spoils everything normalised by a window's spread: the
learned picker's 30 s windows (a glitch 1,000 times a station's earthquake record 5 s before
its P removed 79 of 84 INGV P picks), the polarity reader's noise level. Ground motion
recorded through a datalogger's anti-alias filter never looks so (docstring of
:func:`repair_glitches`), so the repair is safe on real records: none in every channel of the
shared real records (INGV, Puerto Rico, TexNet) but one sample in a burst of non-seismic
noise.
"""

from __future__ import annotations

import numpy as np

# a glitch: a residual this many times the noise's typical one (that, the median of this many
# blocks' mean residuals), the neighbours' residuals within this share of the glitch's plus
# this many times the noise's
GLITCH_NOISE_MULTIPLE = 50.0
GLITCH_NOISE_BLOCKS = 8
GLITCH_NEIGHBOUR_SHARE = 0.1
GLITCH_NEIGHBOUR_NOISE = 3.0


def repair_glitches(seg: np.ndarray, noise_end: int) -> tuple[np.ndarray, np.ndarray]:
    """Segments (N, L) with the isolated one-sample glitches of their noise (samples before
    ``noise_end``) replaced, and the count replaced in each row.

    A telemetry bit error or a digitiser glitch is one sample far off its neighbours, which
    stay where the record was; ground motion recorded through a datalogger's anti-alias filter
    cannot be: a band-limited pulse spreads over several samples (an impulse through an ideal
    low-pass at 0.4 of the rate keeps 23% of its peak one sample away and its curvature two
    samples away). Sample ``i`` is a glitch when its residual ``r_i = x_i - (x_{i-1} +
    x_{i+1}) / 2`` exceeds :data:`GLITCH_NOISE_MULTIPLE` times the noise's typical ``|r|`` (the
    median over :data:`GLITCH_NOISE_BLOCKS` blocks of ``[0, noise_end)`` of their mean ``|r|``,
    so a glitch in one block does not raise it), its neighbours' residuals are what the glitch
    alone gives them (``-r_i / 2``) and the next ones' are small, each within
    :data:`GLITCH_NEIGHBOUR_SHARE` of ``|r_i|`` plus :data:`GLITCH_NEIGHBOUR_NOISE` times the
    noise's. It takes the mean of its neighbours. Odd in the input (``-x`` gives the negated
    result), as the flip augmentation needs; clean records come back unchanged.

    Left alone: the first three samples, glitches of two or more adjacent samples, steps (a
    mass re-centring), and everything from ``noise_end`` on. A caller that knows where an
    onset is passes the noise's end before it (the polarity reader: 0.1 s before the pick),
    as a synthetic record that is not band-limited can have an onset one sample wide; the
    learned picker's windows have no known onset and pass their length."""
    counts = np.zeros(seg.shape[0], dtype=np.int64)
    end = min(noise_end, seg.shape[1] - 3)  # a glitch's test reads two samples past it
    if end < 2 * GLITCH_NOISE_BLOCKS + 4:
        return seg, counts
    x = seg[:, : end + 3]
    r = x[:, 1:-1] - 0.5 * (x[:, :-2] + x[:, 2:])  # r[:, j]: sample j + 1
    a = np.abs(r)
    m = (end - 2) // GLITCH_NOISE_BLOCKS * GLITCH_NOISE_BLOCKS
    blocks = a[:, :m].reshape(seg.shape[0], GLITCH_NOISE_BLOCKS, -1).mean(axis=2)
    # the quietest block bounds the median from below: nothing over the bound, no glitch
    if not (a[:, 2:-2].max(axis=1) > GLITCH_NOISE_MULTIPLE * blocks.min(axis=1)).any():
        return seg, counts
    mid = GLITCH_NOISE_BLOCKS // 2
    scale = np.partition(blocks, [mid - 1, mid], axis=1)[:, mid - 1 : mid + 1].mean(axis=1)
    scale = scale[:, None]
    centre = a[:, 2:-2]  # samples 3 .. end - 1
    big = centre > GLITCH_NOISE_MULTIPLE * scale
    if not big.any():
        return seg, counts
    tol = GLITCH_NEIGHBOUR_SHARE * centre + GLITCH_NEIGHBOUR_NOISE * scale
    half = 0.5 * r[:, 2:-2]
    glitch = big & (np.abs(r[:, 1:-3] + half) <= tol) & (np.abs(r[:, 3:-1] + half) <= tol)
    glitch &= (a[:, :-4] <= tol) & (a[:, 4:] <= tol)
    if not glitch.any():
        return seg, counts
    rows, cols = np.nonzero(glitch)
    out = seg.copy()
    out[rows, cols + 3] -= r[rows, cols + 2]
    np.add.at(counts, rows, 1)
    return out, counts
