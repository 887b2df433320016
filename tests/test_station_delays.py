"""Station delay files: CSV, SEISAN STATION0.HYP, VELEST station files; errors name the file."""

from __future__ import annotations

import pytest

from firstmotion.config import AssociateSettings
from firstmotion.errors import InputError
from firstmotion.station_delays import delay_for, read_station_delays

HYP = """RESET TEST(02)=500.0

  AAA 3801.50N 1502.60E 140  0.25 0.40
 BBBBB3802.25N 1503.10E1120 -0.10
  CCC 3759.10N 15 1.90E  80

  4.800     0.0
  6.500     8.0

10.0  50. 200. 1.76
"""

VELEST = """(a4,f7.4,a1,1x,f8.4,a1,1x,i4,1x,i1,1x,i3,1x,f5.2,2x,f5.2)
AAA 38.0250N  15.0433E  140 1   1  0.25   0.40
DDDD38.0375N  15.0517E 1120 1   2 -0.10  -0.17

"""


def test_the_three_forms_give_each_stations_p_and_s_delays(tmp_path):
    csv = tmp_path / "delays.csv"
    csv.write_text("station,p_delay_s,s_delay_s\nXX.AAA,0.25,0.40\nBBBBB,-0.1,\n")
    assert read_station_delays(csv) == {"XX.AAA": (0.25, 0.40), "BBBBB": (-0.1, 0.0)}
    hyp = tmp_path / "STATION0.HYP"
    hyp.write_text(HYP)
    assert read_station_delays(hyp) == {"AAA": (0.25, 0.40), "BBBBB": (-0.10, 0.0),
                                        "CCC": (0.0, 0.0)}  # fmt: skip
    sta = tmp_path / "velest.sta"
    sta.write_text(VELEST)
    assert read_station_delays(sta) == {"AAA": (0.25, 0.40), "DDDD": (-0.10, -0.17)}


def test_a_station_is_found_by_net_sta_then_sta():
    delays = {"XX.AAA": (0.1, 0.2), "AAA": (0.5, 0.9), "BBB": (0.3, 0.5)}
    assert delay_for(delays, "XX.AAA.") == (0.1, 0.2)
    assert delay_for(delays, "YY.AAA.00") == (0.5, 0.9)
    assert delay_for(delays, "XX.BBB") == (0.3, 0.5)
    assert delay_for(delays, "XX.CCC.") is None


def test_a_file_that_is_no_delay_file_is_refused_with_its_name(tmp_path):
    bad = tmp_path / "model.txt"
    bad.write_text("0 5.5\n5.5 6.3\n")
    with pytest.raises(InputError, match=r"model\.txt: not a delay CSV"):
        read_station_delays(bad)
    far = tmp_path / "far.csv"
    far.write_text("station,p_delay_s,s_delay_s\nAAA,250,400\n")  # milliseconds
    with pytest.raises(InputError, match="beyond"):
        read_station_delays(far)
    problems = AssociateSettings(station_delays=str(bad))._problems()
    assert any("associate.station_delays" in p for p in problems)
    missing = AssociateSettings(station_delays=str(tmp_path / "none.csv"))._problems()
    assert any("no such file" in p for p in missing)
    good = tmp_path / "delays.csv"
    good.write_text("station,p_delay_s,s_delay_s\nAAA,0.1,0.2\n")
    assert AssociateSettings(station_delays=str(good))._problems() == []


def _catalog(path, residuals):
    """A QuakeML catalog: one event per residual set, an arrival (P) per station."""
    from obspy import UTCDateTime
    from obspy.core.event import Arrival, Catalog, Event, Origin, Pick, WaveformStreamID

    events = []
    for i, per_station in enumerate(residuals):
        o = Origin(time=UTCDateTime(1_700_000_000 + 100 * i), latitude=38.0, longitude=15.0,
                   depth=5e3)  # fmt: skip
        ev = Event(origins=[o])
        for sta, r in per_station.items():
            p = Pick(time=o.time + 3, waveform_id=WaveformStreamID("XX", sta, "", "HHZ"),
                     phase_hint="P")  # fmt: skip
            ev.picks.append(p)
            o.arrivals.append(Arrival(pick_id=p.resource_id, phase="P", time_residual=r))
        events.append(ev)
    Catalog(events).write(str(path), format="QUAKEML")


def test_catalog_station_delays_writes_the_median_residuals_the_associator_reads(tmp_path, capsys):
    """`firstmotion catalog station-delays`: per station the median of its P residuals over
    the catalog's events, less the median over stations, added to the delays the catalog was
    located with; the CSV it writes is one the associator reads; a wrong pick's residual
    (beyond 1 s) is left out; a station with too few arrivals gets none."""
    from firstmotion import cli

    cat = tmp_path / "catalog.xml"
    _catalog(cat, [{"AAA": 0.30, "BBB": -0.10, "CCC": 0.00, "DDD": 0.2},
                   {"AAA": 0.34, "BBB": -0.12, "CCC": 0.02},
                   {"AAA": 0.26, "BBB": 3.00, "CCC": -0.02}])  # fmt: skip
    out = tmp_path / "delays.csv"
    assert cli.main(["catalog", "station-delays", "--input", str(cat), "--output", str(out),
                     "--min-arrivals", "2"]) == 0  # fmt: skip
    got = read_station_delays(out)
    # medians AAA 0.30, BBB -0.11 (3.0 s left out), CCC 0.00; their median 0.00
    assert got["XX.AAA"] == pytest.approx((0.30, 0.0), abs=1e-3)
    assert got["XX.BBB"] == pytest.approx((-0.11, 0.0), abs=1e-3)
    assert got["XX.CCC"] == pytest.approx((0.0, 0.0), abs=1e-3)
    assert got["XX.DDD"] == (0.0, 0.0)  # one arrival
    current = tmp_path / "current.csv"
    current.write_text("station,p_delay_s,s_delay_s\nAAA,0.5,0.8\n")
    assert cli.main(["catalog", "station-delays", "--input", str(cat), "--output", str(out),
                     "--min-arrivals", "2", "--current", str(current)]) == 0  # fmt: skip
    assert read_station_delays(out)["XX.AAA"] == pytest.approx((0.80, 0.8), abs=1e-3)
    empty = tmp_path / "empty.xml"
    _catalog(empty, [])
    assert cli.main(["catalog", "station-delays", "--input", str(empty), "--output",
                     str(out)]) == 2  # fmt: skip
    # a folder: its catalogs (a README beside them skipped); a missing path is named
    folder = tmp_path / "exports"
    folder.mkdir()
    cat.rename(folder / "catalog.xml")
    (folder / "README.txt").write_text("exports of the live catalog\n")
    assert cli.main(["catalog", "station-delays", "--input", str(folder), "--output", str(out),
                     "--min-arrivals", "2"]) == 0  # fmt: skip
    assert read_station_delays(out)["XX.AAA"] == pytest.approx((0.30, 0.0), abs=1e-3)
    assert cli.main(["catalog", "station-delays", "--input", str(tmp_path / "none.xml"),
                     "--output", str(out)]) == 2  # fmt: skip
    assert "none.xml: no such file or folder" in capsys.readouterr().err
