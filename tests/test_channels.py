"""Channel codes: the component and the sensor of SEED, Nordic and Japanese codes."""

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
