"""One-sample glitches: repaired in the noise, ground motion left as recorded."""

import json

import numpy as np
import pytest

from firstmotion import synth
from firstmotion.glitches import GlitchStream, isolated_glitches, repair_glitches


def test_one_sample_glitches_are_repaired_and_ground_motion_is_not():
    """An isolated one-sample glitch (a telemetry bit error) in the noise takes its
    neighbours' mean, down to the segment's fourth sample; band-limited ground motion is left
    as it is: an impulse through an ideal low-pass at 0.4 of the rate (its narrowest form), a
    step, a Brune pulse, at any size; so are two adjacent bad samples and anything from the
    noise's end on (the onset and what follows). Odd in the input, as the flip augmentation
    needs."""
    rng = np.random.default_rng(7)
    n = 480
    noise = rng.normal(0.0, 1.0, (6, n)) + np.cumsum(rng.normal(0.0, 0.05, (6, n)), axis=1)
    k = np.arange(-30, 31)
    clean = noise.copy()
    clean[0, 400 - 30 : 400 + 31] += 1e5 * 0.8 * np.sinc(0.8 * k)  # band-limited impulse
    clean[1, 400:] += 5e4  # a step
    clean[2] += 1e4 * synth.p_pulse(n, 100.0, 4.0, 12.0, 0.01)
    clean[3, 400 - 30 : 400 + 31] += 300.0 * 0.8 * np.sinc(0.8 * k)  # just above the bound
    same, counts = repair_glitches(clean, 360)
    np.testing.assert_array_equal(same, clean)
    assert counts.tolist() == [0] * 6
    glitchy = clean.copy()
    spots = [(0, 150, 1e3), (1, 3, -2e6), (2, 356, 5e2), (3, 300, 4e3), (4, 200, 90.0)]
    for row, col, size in spots:
        glitchy[row, col] += size
    glitchy[5, 250:252] += 1e3  # two samples: left alone
    glitchy[2, n - 4] += 5e2  # after the noise's end: left alone
    glitchy[3, 401] += 4e3
    fixed, counts = repair_glitches(glitchy, 360)
    assert counts.tolist() == [1, 1, 1, 1, 1, 0]
    assert fixed[2, n - 4] == glitchy[2, n - 4] and fixed[3, 401] == glitchy[3, 401]
    for row, col, size in spots:
        want = 0.5 * (glitchy[row, col - 1] + glitchy[row, col + 1])
        assert fixed[row, col] == pytest.approx(want), (row, col)
        assert abs(fixed[row, col] - clean[row, col]) < 0.2 * abs(size), (row, col)
    changed = {(int(r), int(c)) for r, c in zip(*np.nonzero(fixed != glitchy), strict=True)}
    assert changed == {(row, col) for row, col, _ in spots}
    neg, neg_counts = repair_glitches(-glitchy, 360)
    np.testing.assert_array_equal(neg, -fixed)
    np.testing.assert_array_equal(neg_counts, counts)


def _streamed(x: np.ndarray, cuts, rate: float = 100.0) -> tuple[np.ndarray, int]:
    g = GlitchStream(rate)
    out = [g.feed(part) for part in np.split(x, cuts)]
    return np.concatenate(out), g.repaired


def test_streamed_repair_in_any_packets_and_through_a_restart_equals_one_pass():
    """The streaming repair (STA/LTA detector): glitches 9 s and more into a segment are
    repaired as in the whole-segment test, ground motion is not (a band-limited impulse, a
    Brune pulse), the first blocks (no noise scale yet) are left; every sample but the last
    eight comes out, the same in packets of any size and through a snapshot and restore."""
    rng = np.random.default_rng(3)
    n = 4000  # 40 s at 100 Hz
    clean = rng.normal(0.0, 1.0, n) + np.cumsum(rng.normal(0.0, 0.05, n)) + 1e4
    k = np.arange(-30, 31)
    clean[2500 - 30 : 2500 + 31] += 1e5 * 0.8 * np.sinc(0.8 * k)
    clean[3000:] += 1e4 * synth.p_pulse(n - 3000, 100.0, 2.0, 12.0, 0.01)[: n - 3000]
    x = clean.copy()
    glitches = [(1200, 5e3), (1999, -2e6), (3500, 1e5)]  # 12 s, 20 s, in the pulse's coda
    for i, size in glitches:
        x[i] += size
    x[300] += 5e3  # 3 s: before the scale exists, left
    one, repaired = _streamed(x, [])
    assert one.size == n - 8 and repaired == 3
    changed = set(np.flatnonzero(one != x[: n - 8]).tolist())
    assert changed == {i for i, _ in glitches}
    for i, _ in glitches:
        assert one[i] == pytest.approx(0.5 * (x[i - 1] + x[i + 1]))
    same, none = _streamed(clean, [])
    np.testing.assert_array_equal(same, clean[: n - 8])
    assert none == 0
    for seed in range(5):
        cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, n), 40, replace=False))
        got, count = _streamed(x, cuts)
        np.testing.assert_array_equal(got, one)
        assert count == repaired
    g = GlitchStream(100.0)
    head = g.feed(x[:1998])  # the restart lands right before a glitch
    resumed = GlitchStream.restore(100.0, json.loads(json.dumps(g.snapshot())))
    np.testing.assert_array_equal(np.concatenate([head, resumed.feed(x[1998:])]), one)
    assert resumed.repaired == repaired


def test_streamed_repair_leaves_strong_shaking_that_arrived_since_its_noise_scale():
    """Seven samples of a real broadband horizontal 3 s after its P (an INGV HHN record,
    shaking 4,000 times the noise before): the middle one passes the one-sample test against
    the noise scale of the seconds before, but not against the residuals around it, and is
    left as recorded."""
    rng = np.random.default_rng(5)
    n = 2000
    x = rng.normal(0.0, 1.0, n)
    x[1200:] += rng.normal(0.0, 4000.0, n - 1200)
    x[1497:1504] = [-8175, -7988, -6148, 6921, -988, 1062, 4644]
    r = x[1:-1] - 0.5 * (x[:-2] + x[2:])
    passes = isolated_glitches(r[None, 1497:1502], np.array([[1.13]]))  # sample 1500
    assert passes.tolist() == [[True]]
    out, repaired = _streamed(x, [])
    assert repaired == 0
    np.testing.assert_array_equal(out, x[: n - 8])
