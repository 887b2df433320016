"""Channel codes: the component and the sensor of SEED, Nordic and Japanese codes."""

import numpy as np
import pytest

from firstmotion.channels import component, is_vertical, sensor


@pytest.mark.parametrize(
    ("code", "comp", "sensor_code"),
    [
        ("HHZ", "Z", "HH"),  # SEED
        ("EHN", "N", "EH"),
        ("HNE", "E", "HN"),
        ("BH1", "1", "BH"),
        ("SH2", "2", "SH"),
        ("hhz", "Z", "hh"),
        ("SZ", "Z", "S"),  # Nordic: band and component
        ("U", "Z", ""),  # Hi-net (WIN32 converted)
        ("N", "N", ""),
        ("E", "E", ""),
        ("UD", "Z", ""),  # K-NET
        ("NS", "N", ""),
        ("EW", "E", ""),
        ("UD1", "Z", "1"),  # KiK-net: borehole 1, surface 2
        ("EW2", "E", "2"),
        ("HHU", None, "HH"),  # a triaxial sensor's inclined U (also V, W): not the vertical
        ("HHV", None, "HH"),
        ("HHT", None, "HH"),
        ("", None, ""),
    ],
)
def test_channel_codes_name_their_component_and_sensor(code, comp, sensor_code):
    assert component(code) == comp
    assert is_vertical(code) == (comp == "Z")
    assert sensor(code) == sensor_code


def test_station_groups_merge_mixed_sample_types_and_keep_one_rate(caplog):
    """Records of one channel as int32 and float32 (a miniSEED and a SAC copy) merge as
    float64 (obspy refuses to merge them); one channel at two rates keeps the rate of its
    longest span, with a warning, instead of stopping the run."""
    from obspy import Stream, Trace, UTCDateTime

    from stream.phase_stage import station_groups

    t0 = UTCDateTime(2020, 1, 1)

    def tr(cha, data, rate=100.0, start=0.0):
        t = Trace(data)
        t.stats.update(dict(network="XX", station="A", channel=cha, sampling_rate=rate,
                            starttime=t0 + start))  # fmt: skip
        return t

    z = np.arange(1000, dtype=np.int32)
    st = Stream([tr("HHZ", z[:600]), tr("HHZ", z[600:].astype(np.float32), start=6.0),
                 tr("HHN", z.copy()), tr("HHE", z.copy())])  # fmt: skip
    (group,) = station_groups(st).values()
    assert group[2].data.dtype == np.float64 and np.array_equal(group[2].data, z)
    st = Stream([tr("HHZ", z.copy()), tr("HHZ", np.zeros(100, np.int32), 20.0, 10.0)])
    with caplog.at_level("WARNING", logger="stream.phase_stage"):
        (group,) = station_groups(st).values()
    assert group[2].stats.sampling_rate == 100.0 and np.array_equal(group[2].data, z)
    assert "XX.A..HHZ comes at 20 and 100 Hz: read at 100 Hz" in caplog.text
