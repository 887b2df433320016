"""Per-channel ring buffers: contiguous packets, overlaps, duplicates, gaps, rate changes."""

from __future__ import annotations

import numpy as np
import pytest

from stream.buffer import NS_PER_S, ChannelBuffer, RingArray

T0_NS = 1_700_000_000 * NS_PER_S
RATE_HZ = 100.0


def _ns(index: float, rate_hz: float = RATE_HZ) -> int:
    return T0_NS + int(round(index * NS_PER_S / rate_hz))


def test_ring_array_wraps_and_refuses_what_it_no_longer_holds():
    ring = RingArray(10)
    data = np.arange(37.0)
    for chunk in np.split(data, [3, 4, 15, 22, 30]):
        ring.extend(chunk)
    assert (ring.start, ring.end) == (27, 37)
    np.testing.assert_array_equal(ring.get(27, 37), data[27:37])
    np.testing.assert_array_equal(ring.get(30, 33), data[30:33])
    with pytest.raises(ValueError, match="not held"):
        ring.get(26, 30)


def test_contiguous_packets_build_one_segment():
    buf = ChannelBuffer(capacity_s=10.0)
    x = np.arange(1000.0)
    results = [buf.append(_ns(i), RATE_HZ, x[i : i + 100]) for i in range(0, 1000, 100)]
    assert [r.outcome for r in results] == ["reset"] + ["contiguous"] * 9
    assert buf.end_index == 1000 and buf.segment == 1
    np.testing.assert_array_equal(buf.get(0, 1000), x)
    assert buf.end_time_ns() == _ns(1000)


def test_overlapping_packet_is_trimmed_and_duplicate_dropped():
    buf = ChannelBuffer()
    x = np.arange(500.0)
    buf.append(_ns(0), RATE_HZ, x[:300])
    r = buf.append(_ns(250), RATE_HZ, x[250:400])  # a TIME request's overlapping packet
    assert (r.outcome, r.n_trimmed, r.n_added, r.first_index) == ("overlap", 50, 100, 300)
    r = buf.append(_ns(100), RATE_HZ, x[100:200])
    assert (r.outcome, r.n_added) == ("duplicate", 0)
    np.testing.assert_array_equal(buf.get(0, 400), x[:400])


def test_sub_sample_jitter_is_contiguous():
    buf = ChannelBuffer()
    buf.append(_ns(0), RATE_HZ, np.zeros(100))
    r = buf.append(_ns(100) + 2_000_000, RATE_HZ, np.ones(100))  # 0.2 samples late
    assert r.outcome == "contiguous" and buf.end_index == 200


def test_short_gap_is_filled_by_interpolation():
    buf = ChannelBuffer(max_fill_s=1.0)
    buf.append(_ns(0), RATE_HZ, np.zeros(100))
    r = buf.append(_ns(150), RATE_HZ, np.full(100, 51.0))
    assert (r.outcome, r.n_filled, r.first_index, r.n_added) == ("gap", 50, 100, 150)
    np.testing.assert_allclose(buf.get(100, 150), np.arange(1, 51.0))
    assert buf.end_index == 250 and buf.segment == 1


def test_long_gap_misalignment_and_rate_change_start_new_segments():
    buf = ChannelBuffer(max_fill_s=1.0)
    buf.append(_ns(0), RATE_HZ, np.zeros(100))
    assert buf.append(_ns(400), RATE_HZ, np.ones(100)).outcome == "reset"
    assert buf.segment == 2 and buf.segment_start_ns == _ns(400) and buf.end_index == 100
    assert buf.append(_ns(500.5), RATE_HZ, np.ones(10)).outcome == "reset"  # off the grid
    r = buf.append(buf.end_time_ns(), 200.0, np.ones(10))
    assert r.outcome == "reset" and buf.sampling_rate_hz == 200.0 and buf.segment == 4


def test_bad_input_raises():
    with pytest.raises(ValueError, match="sampling_rate_hz"):
        ChannelBuffer().append(T0_NS, 0.0, np.zeros(3))
    with pytest.raises(ValueError, match="capacity_s"):
        ChannelBuffer(capacity_s=0)


def test_clock_going_back_further_than_the_buffer_starts_a_new_segment():
    buf = ChannelBuffer(capacity_s=10.0)
    buf.append(_ns(0), RATE_HZ, np.zeros(3000))
    assert buf.append(_ns(2500), RATE_HZ, np.zeros(100)).outcome == "duplicate"  # replayed
    r = buf.append(_ns(-5000), RATE_HZ, np.ones(100))  # 80 s back: a clock reset
    assert r.outcome == "rewind" and buf.segment == 2 and buf.segment_start_ns == _ns(-5000)


def test_clock_going_back_within_the_buffer_starts_a_new_segment_not_a_splice():
    """A clock that jumps back 20 s (less than the buffer): its records overlap held samples
    with other values, new data with earlier times, so a new segment starts at them (they
    were dropped as repeats for 20 s, and the rest spliced on, picks 20 s early); repeats of
    held samples, and real samples over an interpolated gap, stay an overlap."""
    x = np.random.default_rng(1).normal(size=6000)
    buf = ChannelBuffer()
    buf.append(_ns(0), RATE_HZ, x[:3000])
    r = buf.append(_ns(1000), RATE_HZ, x[3000:3100])  # 20 s back, other samples
    assert r.outcome == "rewind" and buf.segment == 2 and buf.segment_start_ns == _ns(1000)
    buf = ChannelBuffer()
    buf.append(_ns(0), RATE_HZ, x[:1000])
    buf.append(_ns(1050), RATE_HZ, x[1050:1200])  # a 0.5 s gap, interpolated
    r = buf.append(_ns(1000), RATE_HZ, x[1000:1300])  # the gap's own samples, late
    assert (r.outcome, r.first_index, r.n_added) == ("overlap", 1200, 100) and buf.segment == 1
    buf.append(_ns(1300), RATE_HZ, np.full(10, np.nan))
    r = buf.append(_ns(1300), RATE_HZ, np.full(10, np.nan))  # NaN samples sent again
    assert r.outcome == "duplicate" and buf.segment == 1


def test_measured_rates_continue_the_segment_and_late_records_are_told_apart():
    """Records stamped with the datalogger's measured rate (100.00001 Hz every other one)
    continue the segment (each was a new segment: no picks at that station); a record that
    arrives after the one following it, across a gap too long to fill, is ``late``."""
    buf = ChannelBuffer()
    rates = [RATE_HZ, 100.00001] * 5
    outcomes = [buf.append(_ns(300 * k), r, np.zeros(300)).outcome for k, r in enumerate(rates)]
    assert outcomes == ["reset"] + ["contiguous"] * 9 and buf.sampling_rate_hz == RATE_HZ
    buf = ChannelBuffer(max_fill_s=1.0)
    buf.append(_ns(0), RATE_HZ, np.zeros(300))
    assert buf.append(_ns(600), RATE_HZ, np.ones(300)).outcome == "reset"  # 3 s early
    r = buf.append(_ns(300), RATE_HZ, np.full(300, 2.0))  # the record before it, late
    assert (r.outcome, r.n_added) == ("late", 0) and buf.segment == 2
