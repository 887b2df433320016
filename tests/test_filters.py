"""Shared filter designs: scipy's answers, made once, never changed by a caller."""

import numpy as np
import pytest
from scipy import signal

from firstmotion.filters import butter_ba, butter_sos, sos_steady_state


@pytest.mark.parametrize(
    ("order", "corner", "btype", "rate"),
    [(4, (1.0, 20.0), "bandpass", 100.0), (4, 1.5, "highpass", 100.0), (2, 5.0, "lowpass", 40.0)],
)
def test_designs_equal_scipy(order, corner, btype, rate):
    sos, zi = butter_sos(order, corner, btype, rate)
    ref = signal.butter(order, corner, btype=btype, fs=rate, output="sos")
    np.testing.assert_array_equal(sos, ref)
    np.testing.assert_array_equal(zi, signal.sosfilt_zi(ref))
    b, a, zi_ba = butter_ba(order, corner, btype, rate)
    rb, ra = signal.butter(order, corner, btype=btype, fs=rate)
    np.testing.assert_array_equal(b, rb)
    np.testing.assert_array_equal(a, ra)
    np.testing.assert_array_equal(zi_ba, signal.lfilter_zi(rb, ra))


def test_callers_get_their_own_writable_copy():
    sos, zi = butter_sos(4, (1.0, 20.0), "bandpass", 100.0)
    assert sos.flags.writeable and zi.flags.writeable
    sos[:] = 0.0
    zi[:] = 0.0
    again, zi_again = butter_sos(4, [1, 20], "bandpass", 100)  # same design, other spellings
    assert np.all(again[:, 0] != 0.0) and np.any(zi_again != 0.0)
    x = np.random.default_rng(0).standard_normal(500)
    y, _ = signal.sosfilt(again, x, zi=zi_again * x[0])  # scipy needs a writable sos
    assert np.isfinite(y).all()


def test_steady_state_of_any_design_is_the_constant_input_state():
    sos = signal.cheby2(6, 40.0, 0.3, output="sos")
    zi = sos_steady_state(sos)
    assert not zi.flags.writeable
    np.testing.assert_array_equal(zi, signal.sosfilt_zi(sos))
    y, zf = signal.sosfilt(sos, np.full(200, 3.0), zi=zi * 3.0)
    np.testing.assert_allclose(y, 3.0)  # a low-pass passes a constant from its steady state
    np.testing.assert_allclose(zf, zi * 3.0)
