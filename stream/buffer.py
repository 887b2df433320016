"""Per-channel ring buffers of continuous samples, with gap, overlap and rate-change handling.

A channel's data arrive as packets (miniSEED records: a start time, a sampling rate and
samples). :class:`ChannelBuffer` keeps the newest ``capacity`` samples of the current
*segment* -- a stretch of contiguous samples at one rate -- indexed by an absolute sample
number counted from the segment's first sample, so that sample ``i`` is at
``segment_start_ns + i * 1e9 / sampling_rate_hz`` exactly (integer nanoseconds, no drift).

:meth:`ChannelBuffer.append` classifies each packet against the segment's expected next
sample (``expected = round((packet_start - segment_start) * rate)``):

* ``contiguous`` -- starts at the next sample (within ``tolerance_samples``);
* ``overlap`` -- starts before it: the already-held samples are trimmed off the front (a
  resumed or TIME-requested stream repeats packets; ringserver's TIME requests return packets
  overlapping the start), and a packet held entirely is ``duplicate``;
* ``gap`` -- starts later by at most ``max_fill_s``: the hole is filled by linear
  interpolation between the last held sample and the packet's first (a short telemetry
  dropout should not cost an STA/LTA warm-up), and the packet is appended;
* ``reset`` -- a longer gap, a sampling-rate change (more than :data:`RATE_TOLERANCE` of the
  rate: a datalogger stamping each record with its measured rate, 100.00001 Hz, continues the
  segment), a packet misaligned with the segment's sample grid by more than the tolerance, or
  the channel's first packet: a new segment starts at the packet (the caller restarts its
  detector);
* ``rewind`` -- likewise a new segment, for a packet starting more than ``capacity_s`` before
  the newest sample, or overlapping held samples with other values (the digitizer's clock
  went back: its records are new data with earlier times, not a repeat; samples interpolated
  over a gap are not compared);
* ``late`` -- a packet ending before the first sample of a segment its successor started
  (no more than ``capacity_s`` before it): it arrived out of order, after the data that
  followed it; its samples are not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NS_PER_S = 1_000_000_000
OUTCOMES = ("contiguous", "overlap", "duplicate", "gap", "reset", "rewind", "late")
RATE_TOLERANCE = 1e-4  # relative: rates closer than this are one rate


@dataclass(frozen=True)
class AppendResult:
    """What :meth:`ChannelBuffer.append` did with one packet.

    ``outcome`` is one of :data:`OUTCOMES`; ``first_index`` is the absolute index of the
    first sample added (after filling); ``n_added`` counts samples added, fill included;
    ``n_filled`` the interpolated ones; ``n_trimmed`` the packet samples dropped as already
    held."""

    outcome: str
    first_index: int
    n_added: int
    n_filled: int = 0
    n_trimmed: int = 0


class RingArray:
    """The newest ``capacity`` float64 values of an unbounded sequence, by absolute index."""

    def __init__(self, capacity: int, start_index: int = 0) -> None:
        if not isinstance(capacity, (int, np.integer)) or capacity < 1:
            raise ValueError(f"capacity: expected a positive integer, got {capacity!r}")
        self._data = np.zeros(int(capacity))
        self.origin = int(start_index)  # absolute index of the first value ever added
        self.end = self.origin  # absolute index one past the newest value

    @property
    def capacity(self) -> int:
        return self._data.size

    @property
    def start(self) -> int:
        """Absolute index of the oldest value still held."""
        return max(self.origin, self.end - self._data.size)

    def extend(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        n, cap = values.size, self._data.size
        if n >= cap:
            values, first = values[-cap:], self.end + n - cap
        else:
            first = self.end
        pos = first % cap
        head = min(values.size, cap - pos)
        self._data[pos : pos + head] = values[:head]
        self._data[: values.size - head] = values[head:]
        self.end += n

    def get(self, start: int, stop: int) -> np.ndarray:
        """A copy of values ``start .. stop-1``; ``ValueError`` when not all are held."""
        if not self.start <= start <= stop <= self.end:
            raise ValueError(f"values {start}..{stop} not held (have {self.start}..{self.end})")
        cap = self._data.size
        a, n = start % cap, stop - start
        if a + n <= cap:  # one stretch of the ring: a slice (copied)
            return self._data[a : a + n].copy()
        return np.concatenate((self._data[a:], self._data[: a + n - cap]))


class ChannelBuffer:
    """Ring buffer of one channel's current segment (see the module docstring)."""

    def __init__(
        self,
        capacity_s: float = 120.0,
        *,
        max_fill_s: float = 1.0,
        tolerance_samples: float = 0.25,
    ) -> None:
        if not capacity_s > 0:
            raise ValueError(f"capacity_s: expected > 0, got {capacity_s!r}")
        if not max_fill_s >= 0:
            raise ValueError(f"max_fill_s: expected >= 0, got {max_fill_s!r}")
        if not 0 < tolerance_samples <= 0.5:
            raise ValueError(f"tolerance_samples: expected in (0, 0.5], got {tolerance_samples!r}")
        self.capacity_s = float(capacity_s)
        self.max_fill_s = float(max_fill_s)
        self.tolerance_samples = float(tolerance_samples)
        self.sampling_rate_hz: float | None = None
        self.segment_start_ns = 0
        self.segment = 0  # counts segments (resets) of this channel
        self.ring: RingArray | None = None
        self._filled: list[tuple[int, int]] = []  # index spans interpolated over gaps

    @property
    def end_index(self) -> int:
        """Absolute index one past the newest sample (0 before the first packet)."""
        return self.ring.end if self.ring is not None else 0

    @property
    def start_index(self) -> int:
        return self.ring.start if self.ring is not None else 0

    def time_ns(self, index: float) -> int:
        """Epoch nanoseconds of (fractional) absolute sample ``index`` in this segment."""
        if self.sampling_rate_hz is None:
            raise ValueError("empty buffer: no segment yet")
        return self.segment_start_ns + int(round(index * NS_PER_S / self.sampling_rate_hz))

    def end_time_ns(self) -> int | None:
        """Epoch ns just after the newest sample (one sample period past it)."""
        return None if self.ring is None else self.time_ns(self.ring.end)

    def get(self, start: int, stop: int) -> np.ndarray:
        if self.ring is None:
            raise ValueError("empty buffer: no segment yet")
        return self.ring.get(start, stop)

    def resume(self, segment_start_ns: int, sampling_rate_hz: float, end_index: int) -> None:
        """Continue a segment held by an earlier process (a restart from a statefile): the
        next sample is ``end_index`` of the segment starting at ``segment_start_ns``; nothing
        before it is held."""
        if not sampling_rate_hz > 0 or end_index < 0:
            raise ValueError(f"bad resume point: rate {sampling_rate_hz!r}, index {end_index!r}")
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.segment_start_ns = int(segment_start_ns)
        cap = max(1, int(np.ceil(self.capacity_s * sampling_rate_hz)))
        self.ring = RingArray(cap, start_index=int(end_index))
        self.segment += 1

    def _reset(self, start_ns: int, sampling_rate_hz: float) -> None:
        self.sampling_rate_hz = float(sampling_rate_hz)
        self.segment_start_ns = int(start_ns)
        self.ring = RingArray(max(1, int(np.ceil(self.capacity_s * sampling_rate_hz))))
        self.segment += 1
        self._filled = []

    def _repeats_held(self, first: int, x: np.ndarray) -> bool:
        """Whether a packet starting at index ``first`` (before the newest sample) repeats the
        held samples it overlaps (those interpolated over a gap not compared)."""
        ring = self.ring
        assert ring is not None
        lo, hi = max(first, ring.start), min(ring.end, first + x.size)
        if hi <= lo:
            return True
        held, again = ring.get(lo, hi), x[lo - first : hi - first]
        same = (held == again) | (np.isnan(held) & np.isnan(again))
        for a, b in self._filled:
            same[max(a, lo) - lo : max(min(b, hi), lo) - lo] = True
        return bool(same.all())

    def append(self, start_ns: int, sampling_rate_hz: float, samples: np.ndarray) -> AppendResult:
        """Add one packet (first sample at epoch ``start_ns``); see the module docstring."""
        if not (sampling_rate_hz > 0 and np.isfinite(sampling_rate_hz)):
            raise ValueError(f"sampling_rate_hz: expected > 0, got {sampling_rate_hz!r}")
        x = np.asarray(samples, dtype=np.float64).ravel()
        if x.size == 0:
            return AppendResult("duplicate", self.end_index, 0)
        rate = float(sampling_rate_hz)
        held = self.sampling_rate_hz
        if held is not None and abs(rate - held) <= RATE_TOLERANCE * held:
            rate = held  # the segment's rate: a record's measured rate may differ a little
        if self.ring is None or rate != held:
            self._reset(start_ns, rate)
            self.ring.extend(x)  # type: ignore[union-attr]
            return AppendResult("reset", 0, x.size)
        ring = self.ring
        position = (int(start_ns) - self.segment_start_ns) * rate / NS_PER_S
        first = int(round(position))
        if abs(position - first) > self.tolerance_samples:
            self._reset(start_ns, rate)
            self.ring.extend(x)  # type: ignore[union-attr]
            return AppendResult("reset", 0, x.size)
        if ring.origin == 0 and -self.capacity_s * rate <= first and first + x.size <= 0:
            # just before a segment that its successor started: it came after it
            return AppendResult("late", ring.end, 0, n_trimmed=x.size)
        if first < ring.end - self.capacity_s * rate or (
            first < ring.end and not self._repeats_held(first, x)
        ):  # the clock went back: a new segment
            self._reset(start_ns, rate)
            self.ring.extend(x)  # type: ignore[union-attr]
            return AppendResult("rewind", 0, x.size)
        if first < ring.end:
            trim = ring.end - first
            if trim >= x.size:
                return AppendResult("duplicate", ring.end, 0, n_trimmed=x.size)
            ring.extend(x[trim:])
            return AppendResult("overlap", ring.end - (x.size - trim), x.size - trim, 0, trim)
        if first == ring.end:
            ring.extend(x)
            return AppendResult("contiguous", first, x.size)
        missing = first - ring.end
        if missing > self.max_fill_s * rate or ring.end == ring.start:
            self._reset(start_ns, rate)
            self.ring.extend(x)  # type: ignore[union-attr]
            return AppendResult("reset", 0, x.size)
        last = ring.get(ring.end - 1, ring.end)[0]
        fill = last + (x[0] - last) * np.arange(1, missing + 1) / (missing + 1)
        begin = ring.end
        ring.extend(fill)
        ring.extend(x)
        self._filled = [(a, b) for a, b in self._filled if b > ring.start] + [
            (begin, begin + missing)
        ]
        return AppendResult("gap", begin, missing + x.size, n_filled=missing)
