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
    glitch = isolated_glitches(r, _typical(blocks)[:, None])
    if not glitch.any():
        return seg, counts
    rows, cols = np.nonzero(glitch)
    out = seg.copy()
    out[rows, cols + 3] -= r[rows, cols + 2]
    np.add.at(counts, rows, 1)
    return out, counts


def _typical(blocks: np.ndarray) -> np.ndarray:
    """The noise's typical residual: the median of each row's :data:`GLITCH_NOISE_BLOCKS` block
    means (the mean of the middle two)."""
    mid = GLITCH_NOISE_BLOCKS // 2
    return np.partition(blocks, [mid - 1, mid], axis=-1)[..., mid - 1 : mid + 1].mean(axis=-1)


def isolated_glitches(r: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Which samples are one-sample glitches, from their residuals ``r`` (N, M; ``r[:, j]``
    of consecutive samples) and the noise's typical ``|r|`` (``scale``, broadcast to N, M - 4):
    a boolean (N, M - 4) for the samples of ``r[:, 2:-2]`` (the test of
    :func:`repair_glitches`; a glitch is repaired by subtracting its residual)."""
    a = np.abs(r)
    centre = a[:, 2:-2]
    big = centre > GLITCH_NOISE_MULTIPLE * scale
    if not big.any():
        return big
    tol = GLITCH_NEIGHBOUR_SHARE * centre + GLITCH_NEIGHBOUR_NOISE * scale
    half = 0.5 * r[:, 2:-2]
    glitch = big & (np.abs(r[:, 1:-3] + half) <= tol) & (np.abs(r[:, 3:-1] + half) <= tol)
    return glitch & (a[:, :-4] <= tol) & (a[:, 4:] <= tol)


# the streaming repair's noise blocks: this long each, the last GLITCH_NOISE_BLOCKS of them
# before a sample's own block give its scale
GLITCH_STREAM_BLOCK_S = 1.0
# and a glitch's residual is this many times the mean |r| of the samples 3-7 before and after
# it (ground motion arriving since the blocks' noise: their scale lags behind it)
GLITCH_LOCAL_MULTIPLE = 10.0
_LOCAL = (3, 7)
GLITCH_STREAM_HELD = _LOCAL[1] + 1  # samples held back: a sample's test reads x_{i+8}


class GlitchStream:
    """One channel's one-sample glitches repaired as its samples arrive, for a streaming
    detector: :meth:`feed` takes the next raw samples and returns those now tested (all but
    the last eight received), glitches replaced by the mean of their neighbours.

    The test is :func:`repair_glitches`'s; the noise's typical residual for sample ``i`` is
    the median of the mean ``|r|`` of the :data:`GLITCH_NOISE_BLOCKS` blocks of
    :data:`GLITCH_STREAM_BLOCK_S` before ``i``'s own block (blocks counted from ``origin``,
    the segment's first sample), so a glitch does not raise its own scale, the first blocks
    of a segment are not repaired, and samples fed in chunks of any size, or through a
    :meth:`snapshot` and :meth:`restore`, come out as in one pass. That scale is the noise
    before: in strong shaking that has since arrived a sample can pass the test by chance (a
    real HHN record 3 s after its P did), so a glitch must also stand
    :data:`GLITCH_LOCAL_MULTIPLE` times above the residuals 3-7 samples on either side."""

    def __init__(self, sampling_rate_hz: float, origin: int = 0) -> None:
        self.block_n = max(1, int(round(GLITCH_STREAM_BLOCK_S * sampling_rate_hz)))
        self.origin = int(origin)
        self.received = self.origin  # absolute index of the next sample to arrive
        self.emitted = self.origin  # absolute index of the next sample to return
        self.repaired = 0
        self._raw = np.zeros(0)  # the last 2 * GLITCH_STREAM_HELD samples received (raw)
        self._blocks: dict[int, float] = {}  # complete blocks' mean |r|
        self._partial = (0, 0.0, 0)  # the open block: index, sum of |r|, count

    def feed(self, x: np.ndarray) -> np.ndarray:
        """The next raw samples in; the samples from :attr:`emitted` on that are now tested
        out (repaired)."""
        x = np.asarray(x, dtype=np.float64)
        if x.size == 0:
            return x
        held = GLITCH_STREAM_HELD
        buf = np.concatenate([self._raw, x]) if self._raw.size else x
        base = self.received - self._raw.size  # absolute index of buf[0]
        total = self.received + x.size
        r = buf[1:-1] - 0.5 * (buf[:-2] + buf[2:])  # r[k]: sample base + 1 + k
        self._accumulate(r, base + 1, max(self.received - 1, self.origin + 1))
        lo, hi = self.emitted, max(self.emitted, total - held)
        out = buf[lo - base : hi - base].copy()
        first = max(lo, self.origin + held)  # a segment's first samples are not tested
        if hi > first and self._blocks:
            self._repair(out, r, base, lo, first, hi)
        self.received, self.emitted = total, hi
        self._raw = buf[-2 * held :].copy()
        oldest = (hi - self.origin) // self.block_n - GLITCH_NOISE_BLOCKS  # later samples' need
        for k in [k for k in self._blocks if k < oldest]:
            del self._blocks[k]
        return out

    def _accumulate(self, r: np.ndarray, r0: int, start: int) -> None:
        """Adds the residuals of samples ``start`` .. (those of ``r``, first at ``r0``) to the
        blocks."""
        end = r0 + r.size
        if end <= start:
            return
        a = np.abs(r[start - r0 :])
        first_block = (start - self.origin) // self.block_n
        last_block = (end - 1 - self.origin) // self.block_n
        edges = [
            self.origin + k * self.block_n - start for k in range(first_block + 1, last_block + 1)
        ]
        sums = np.add.reduceat(a, [0, *edges]) if edges else [a.sum()]
        counts = np.diff([0, *edges, a.size])
        k, s, c = self._partial
        for block, bs, bc in zip(range(first_block, last_block + 1), sums, counts, strict=True):
            if block != k:  # the open block is complete
                if c:
                    self._blocks[k] = s / c
                k, s, c = block, 0.0, 0
            s, c = s + float(bs), c + int(bc)
        self._partial = (k, s, c)

    def _repair(self, out: np.ndarray, r: np.ndarray, base: int, lo: int, first: int, hi: int):
        near, far = _LOCAL
        # residuals of samples first - far .. hi - 1 + far (r[k] is sample base + 1 + k)
        rr = r[first - far - base - 1 : hi + far - base - 1]
        core = rr[far - 2 : rr.size - far + 2]  # samples first - 2 .. hi + 1
        # any scale is at least the smallest block's mean: nothing over that, no glitch
        if not np.abs(core[2:-2]).max() > GLITCH_NOISE_MULTIPLE * min(self._blocks.values()):
            return
        b0 = (first - self.origin) // self.block_n
        b1 = (hi - 1 - self.origin) // self.block_n
        per_block = np.full(b1 - b0 + 1, np.inf)  # inf: not enough noise blocks yet
        for b in range(b0, b1 + 1):
            means = [self._blocks.get(k) for k in range(b - GLITCH_NOISE_BLOCKS, b)]
            if None not in means:
                per_block[b - b0] = _typical(np.asarray(means))
        scale = per_block[(np.arange(first, hi) - self.origin) // self.block_n - b0]
        glitch = isolated_glitches(core[None, :], scale[None, :])[0]
        if not glitch.any():
            return
        c = np.r_[0.0, np.cumsum(np.abs(rr))]
        j = np.flatnonzero(glitch) + far  # the candidates' places in rr
        local = (c[j - near + 1] - c[j - far] + c[j + far + 1] - c[j + near]) / (
            2 * (far - near + 1)
        )
        at = np.flatnonzero(glitch)[np.abs(rr[j]) > GLITCH_LOCAL_MULTIPLE * local]
        out[at + first - lo] -= core[at + 2]
        self.repaired += at.size

    def snapshot(self) -> dict:
        """JSON-ready state: :meth:`restore` continues it exactly."""
        return {
            "origin": self.origin,
            "received": self.received,
            "emitted": self.emitted,
            "repaired": self.repaired,
            "raw": self._raw.tolist(),
            "blocks": [[k, v] for k, v in sorted(self._blocks.items())],
            "partial": list(self._partial),
        }

    @classmethod
    def restore(cls, sampling_rate_hz: float, snapshot: dict) -> GlitchStream:
        """The repair continuing at :meth:`snapshot`."""
        g = cls(sampling_rate_hz, int(snapshot["origin"]))
        g.received, g.emitted = int(snapshot["received"]), int(snapshot["emitted"])
        g.repaired = int(snapshot.get("repaired", 0))
        g._raw = np.asarray(snapshot["raw"], dtype=np.float64)
        g._blocks = {int(k): float(v) for k, v in snapshot["blocks"]}
        k, s, c = snapshot["partial"]
        g._partial = (int(k), float(s), int(c))
        return g
