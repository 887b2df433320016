"""One-sample glitches: repaired in the noise, ground motion left as recorded."""

import numpy as np
import pytest

from firstmotion import synth
from firstmotion.glitches import repair_glitches


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
