"""The stress worker on a real Redis, and the ``firstmotion stress`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firstmotion import cli
from firstmotion.bus import Bus
from firstmotion.kagan import auxiliary_plane
from firstmotion.messages import Arrival, Mechanism, Origin
from workers.stress.invert import _axial_angle_deg, axis_vector
from workers.stress.synthetic import regime_stress, synthetic_mechanisms
from workers.stress.worker import StressParams, StressWorker

T0 = 1.7e9


def _origin(eid, lat, lon, revision=0):
    arr = (Arrival(pick_id=f"{eid}-p", station_id="XX.STA..HHZ", azimuth_deg=90.0,
                   takeoff_deg=100.0, distance_km=20.0),)  # fmt: skip
    return Origin(event_id=eid, revision=revision, time_epoch_s=T0, latitude_deg=lat,
                  longitude_deg=lon, depth_km=8.0, arrivals=arr)  # fmt: skip


def _mechanism(eid, s, d, r, quality="A", revision=1):
    a = auxiliary_plane(s, d, r)
    return Mechanism(
        event_id=eid, revision=revision, origin_revision=0, strike=float(s) % 360.0, dip=float(d),
        rake=float(r), aux_strike=float(a[0]), aux_dip=float(a[1]), aux_rake=float(a[2]),
        quality=quality, fault_plane_uncertainty_deg=20.0, aux_plane_uncertainty_deg=20.0,
        misfit=0.05, probability=0.9, station_distribution_ratio=0.6, n_polarities=20,
        n_stations=20, model_version="test",
    )  # fmt: skip


@pytest.fixture
def bus(redis_client, redis_url):
    b = Bus.from_url(redis_url)
    yield b
    b.close()


def _publish(bus, name, n, lat, lon, seed, start=0, quality="A"):
    t = regime_stress(name)
    s, d, r, _ = synthetic_mechanisms(t, n, seed=seed)
    for i in range(n):
        eid = f"{name}-{start + i}"
        bus.publish("origins", _origin(eid, lat + 0.01 * (i % 10), lon + 0.01 * (i // 10)))
        bus.publish("mechanisms", _mechanism(eid, s[i], d[i], r[i], quality=quality))
    return t


def test_cells_are_inverted_updated_and_published(bus, redis_client):
    params = StressParams(grid_deg=1.0, min_mechanisms=20, n_bootstrap=50)
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("fm:events")
    t_normal = _publish(bus, "normal", 19, 34.2, -118.6, seed=1)
    _publish(bus, "thrust", 30, 36.3, -120.7, seed=2)
    _publish(bus, "thrust", 5, 36.3, -120.7, seed=3, start=100, quality="D")  # filtered out
    w = StressWorker(bus, params, name="s1")
    w.run(drain=True, timeout_s=120)
    assert redis_client.get("fm:stress:1:34:-119") is None  # 19 < 20 mechanisms: no stress
    thrust = json.loads(redis_client.get("fm:stress:1:36:-121"))
    assert thrust["count"] == 30 and thrust["n_mechanisms"] == 30 and thrust["revision"] == 1
    assert thrust["regime"] == "TF" and thrust["centre"] == {"latitude_deg": 36.5,
                                                             "longitude_deg": -120.5}  # fmt: skip
    assert redis_client.hlen("fm:stress:members:1:36:-121") == 30
    assert redis_client.hexists("fm:stress:stations", "XX.STA..HHZ")

    # one more normal-faulting mechanism: the cell reaches the minimum and gets a stress
    _publish(bus, "normal", 41, 34.2, -118.6, seed=1)  # the same 19 again + 22 new
    w.run(drain=True, timeout_s=120)
    normal = json.loads(redis_client.get("fm:stress:1:34:-119"))
    assert normal["count"] == 41 and normal["regime"] == "NF"
    s1 = axis_vector(normal["sigma1"]["azimuth_deg"], normal["sigma1"]["plunge_deg"])
    assert _axial_angle_deg(s1, t_normal.axes[:, 0]) < 12.0
    assert set(redis_client.zrange("fm:stress:cells", 0, -1)) == {b"1:34:-119", b"1:36:-121"}
    got = []
    for _ in range(50):
        m = pubsub.get_message(timeout=0.05)
        if m is not None:
            got.append(json.loads(m["data"]))
    assert {g["cell"] for g in got if g.get("kind") == "stress"} == {"1:34:-119", "1:36:-121"}
    pubsub.close()

    # a new origin revision moves an event to another cell: the old cell drops it
    bus.publish("origins", _origin("thrust-0", 30.5, 10.5, revision=1))
    w.run(drain=True, timeout_s=120)
    assert redis_client.hlen("fm:stress:members:1:36:-121") == 29
    assert redis_client.hexists("fm:stress:members:1:30:10", "thrust-0")
    assert json.loads(redis_client.get("fm:stress:1:36:-121"))["revision"] == 2
    assert bus.pending_count("mechanisms", "stress") == 0


def test_mechanism_before_its_origin_waits(bus, redis_client):
    params = StressParams(grid_deg=1.0, min_mechanisms=4, n_bootstrap=10)
    t = regime_stress("strike-slip")
    s, d, r, _ = synthetic_mechanisms(t, 6, seed=5)
    for i in range(6):
        bus.publish("mechanisms", _mechanism(f"e{i}", s[i], d[i], r[i]))
    w = StressWorker(bus, params, name="s1")
    w.run(drain=True, timeout_s=60)
    assert redis_client.exists("fm:stress:pending:e0")
    for i in range(6):
        bus.publish("origins", _origin(f"e{i}", 10.2, 20.2))
    w.run(drain=True, timeout_s=60)
    assert not redis_client.exists("fm:stress:pending:e0")
    assert json.loads(redis_client.get("fm:stress:1:10:20"))["count"] == 6


def _write_csv(path, n=60, seed=0):
    t = regime_stress("strike-slip")
    s, d, r, _ = synthetic_mechanisms(t, n, seed=seed)
    rng = np.random.default_rng(seed)
    lines = ["strike,dip,rake,latitude,longitude,depth_km,quality"]
    for i in range(n):
        lat = 35.1 + 0.3 * rng.random() + (1.0 if i % 2 else 0.0)
        lon = -117.5 + 0.3 * rng.random()
        quality = "AB"[i % 2] if i % 7 else "D"
        lines.append(f"{s[i]:.2f},{d[i]:.2f},{r[i]:.2f},{lat:.4f},{lon:.4f},8.0,{quality}")
    path.write_text("\n".join(lines) + "\n")
    return t


def test_cli_single_and_grid(tmp_path):
    csv = tmp_path / "m.csv"
    t = _write_csv(csv)
    out = tmp_path / "s.json"
    assert cli.main(["stress", "--input", str(csv), "--output", str(out), "--bootstrap", "50"]) == 0
    obj = json.loads(out.read_text())
    assert set(obj) == {"sigma1", "sigma2", "sigma3", "shape_ratio", "shmax_azimuth_deg",
                        "n_mechanisms", "uncertainty"}  # fmt: skip
    assert obj["n_mechanisms"] == 60
    assert abs((obj["shmax_azimuth_deg"] - t.shmax_azimuth_deg + 90) % 180 - 90) < 10

    grid, geo, png = tmp_path / "g.json", tmp_path / "g.geojson", tmp_path / "map.png"
    rc = cli.main(["stress", "--input", str(csv), "--output", str(grid), "--grid-deg", "1",
                   "--min-mechanisms", "15", "--quality", "A,B", "--bootstrap", "20",
                   "--geojson", str(geo), "--plot", str(png)])  # fmt: skip
    assert rc == 0
    cells = json.loads(grid.read_text())["cells"]
    # rows alternate between two 1-degree cells; quality D rows (every 7th) are left out
    assert sorted(c["cell"] for c in cells) == ["1:35:-118", "1:36:-118"]
    assert sum(c["count"] for c in cells) == sum(1 for i in range(60) if i % 7)
    assert all({"centre", "count", "sigma1", "uncertainty"} <= set(c) for c in cells)
    fc = json.loads(geo.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 4
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_cli_odd_inputs_are_read_or_said(tmp_path, capfd):
    """A spreadsheet's CSV (a byte-order mark, an event given twice, a row with dip 120 and one
    without numbers): read, each event once, the bad rows left out and said (the repeat made
    the stress look twice as well constrained); cells with fewer than four mechanisms asked for
    are no crash; ``--friction 0`` is the config's 0, chosen by the inversion."""
    csv = tmp_path / "m.csv"
    _write_csv(csv, n=40)
    lines = csv.read_text().splitlines()
    head, rows = "event_id," + lines[0], [f"e{i},{row}" for i, row in enumerate(lines[1:])]
    rows += [rows[0], "x1,10,120,30,35.2,-117.4,8,A", "x2,abc,45,30,35.2,-117.4,8,A"]
    odd = tmp_path / "odd.csv"
    odd.write_bytes(b"\xef\xbb\xbf" + ("\n".join([head, *rows]) + "\n").encode())
    out = tmp_path / "s.json"
    capfd.readouterr()
    assert cli.main(["stress", "--input", str(odd), "--output", str(out), "--bootstrap", "10",
                     "--min-mechanisms", "10"]) == 0  # fmt: skip
    assert json.loads(out.read_text())["n_mechanisms"] == 40
    err = capfd.readouterr().err
    assert "2 mechanism(s) left out: 1 without a number" in err and "1 with a dip outside" in err
    assert "1 mechanism(s) of an event given before, read once" in err
    grid = tmp_path / "g.json"
    assert cli.main(["stress", "--input", str(odd), "--output", str(grid), "--grid-deg", "0.1",
                     "--min-mechanisms", "2", "--bootstrap", "5"]) == 0  # fmt: skip
    assert all(c["count"] >= 4 for c in json.loads(grid.read_text())["cells"])
    fixed0, auto = tmp_path / "f0.json", tmp_path / "auto.json"
    for path, extra in ((fixed0, ["--friction", "0"]), (auto, [])):
        assert cli.main(["stress", "--input", str(csv), "--output", str(path), "--bootstrap",
                         "10", *extra]) == 0  # fmt: skip
    assert json.loads(fixed0.read_text()) == json.loads(auto.read_text())


def test_cli_places_invert_output_by_its_epicentres(tmp_path):
    """``firstmotion invert``'s mechanisms keep their input's epicentre, so a stress map of
    them has its cell (it was empty: no epicentre written)."""
    import shutil

    from workers.polarity.dataset import shared_data_dir

    hash1 = shared_data_dir() / "hash1" / "inputs.jsonl"
    if not hash1.exists():
        pytest.skip("HASH example 1 not present")
    mechs, out = tmp_path / "m.jsonl", tmp_path / "s.json"
    shutil.copy(hash1, tmp_path / "in.jsonl")
    assert cli.main(["invert", "--input", str(tmp_path / "in.jsonl"), "--output", str(mechs),
                     "--no-progress"]) == 0  # fmt: skip
    first = json.loads(mechs.read_text().splitlines()[0])
    assert first["latitude_deg"] == pytest.approx(34.241667) and first["depth_km"] == 18.19
    assert cli.main(["stress", "--input", str(mechs), "--output", str(out), "--grid-deg", "0.5",
                     "--min-mechanisms", "10", "--bootstrap", "10"]) == 0  # fmt: skip
    assert [c["count"] for c in json.loads(out.read_text())["cells"]] == [24]


def test_cli_reads_quakeml(tmp_path):
    from firstmotion.messages import CatalogEvent
    from workers.catalog_export import to_quakeml

    t = regime_stress("normal")
    s, d, r, _ = synthetic_mechanisms(t, 25, seed=9)
    events = [
        CatalogEvent(event_id=f"q{i}", revision=1, status="final",
                     origin=_origin(f"q{i}", 40.0, 15.0),
                     mechanism=_mechanism(f"q{i}", s[i], d[i], r[i]))
        for i in range(25)
    ]  # fmt: skip
    qml = tmp_path / "c.xml"
    qml.write_bytes(to_quakeml(events))
    out = tmp_path / "s.json"
    assert cli.main(["stress", "--input", str(qml), "--output", str(out), "--bootstrap", "20",
                     "--quality", "A"]) == 0  # fmt: skip
    obj = json.loads(out.read_text())
    assert obj["n_mechanisms"] == 25 and obj["sigma1"]["plunge_deg"] > 60


def test_cli_reads_json_lines_with_aliases(tmp_path):
    t = regime_stress("thrust")
    s, d, r, _ = synthetic_mechanisms(t, 30, seed=11)
    lines = [
        json.dumps({"event_id": f"j{i}", "strike": s[i], "dip": d[i], "rake": r[i],
                    "lat": 34.2, "lon": -118.6, "quality": "ab"[i % 2]})
        for i in range(30)
    ]  # fmt: skip
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "s.json"
    rc = cli.main(["stress", "--input", str(path), "--output", str(out), "--bootstrap", "10",
                   "--quality", "A", "--min-mechanisms", "10"])  # fmt: skip
    assert rc == 0
    obj = json.loads(out.read_text())
    assert obj["n_mechanisms"] == 15 and obj["sigma3"]["plunge_deg"] > 60


def test_stress_settings_from_file_and_environment(tmp_path):
    from firstmotion.config import ConfigError, load_settings

    cfg = tmp_path / "f.toml"
    cfg.write_text('[stress]\ngrid_deg = 0.25\nqualities = ["A"]\n')
    s = load_settings(cfg, environ={"FIRSTMOTION_STRESS__MIN_MECHANISMS": "30"})
    p = StressParams.from_settings(s.stress)
    assert (p.grid_deg, p.qualities, p.min_mechanisms, p.n_bootstrap) == (0.25, ("A",), 30, 300)
    cfg.write_text('[stress]\nqualities = ["E"]\nmin_mechanisms = 2\n')
    with pytest.raises(ConfigError, match="stress.qualities") as exc:
        load_settings(cfg, environ={})
    assert "stress.min_mechanisms" in str(exc.value)


def test_cli_reads_the_live_catalog(redis_client, redis_url, tmp_path):
    from workers.catalog import EventState

    t = regime_stress("strike-slip")
    s, d, r, _ = synthetic_mechanisms(t, 30, seed=12)
    for i in range(30):
        state = EventState(event_id=f"c{i}", revision=1, status="deleted" if i == 0 else "final",
                           origin=_origin(f"c{i}", 34.2, -118.6),
                           mechanism=_mechanism(f"c{i}", s[i], d[i], r[i]))  # fmt: skip
        redis_client.hset(f"fm:event:c{i}", mapping=state.to_hash())
        if i:
            redis_client.zadd("fm:catalog", {f"c{i}": T0 + i})
    redis_client.hset("fm:event:x", mapping={"origin": _origin("x", 1.0, 1.0).to_json()})
    redis_client.zadd("fm:catalog", {"x": T0})  # an event without a mechanism is left out
    out, png = tmp_path / "s.json", tmp_path / "m.png"
    rc = cli.main(["stress", "--redis", redis_url, "--output", str(out), "--bootstrap", "10",
                   "--plot", str(png)])  # fmt: skip
    assert rc == 0
    obj = json.loads(out.read_text())
    assert obj["n_mechanisms"] == 29
    assert abs((obj["shmax_azimuth_deg"] - t.shmax_azimuth_deg + 90) % 180 - 90) < 10
    assert png.stat().st_size > 1000
    # the same catalog exported as JSON gives the same answer (the bootstrap's resamples
    # differ with the events' order: newest first)
    export, again = tmp_path / "cat.json", tmp_path / "again.json"
    assert cli.main(["catalog", "export", "--redis", redis_url, "--format", "json",
                     "--include-deleted", "--output", str(export)]) == 0  # fmt: skip
    assert cli.main(["stress", "--input", str(export), "--output", str(again), "--bootstrap",
                     "10"]) == 0  # fmt: skip
    same = json.loads(again.read_text())
    for key in ("sigma1", "sigma3", "shape_ratio", "shmax_azimuth_deg", "n_mechanisms"):
        assert same[key] == pytest.approx(obj[key], abs=0.02), key


def test_cli_bad_input_is_a_message_not_a_traceback(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("strike,dip\n10,20\n")
    out = tmp_path / "o.json"
    assert cli.main(["stress", "--input", str(bad), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"firstmotion stress: {bad}: missing CSV columns ['rake']" in err
    assert err.count(str(bad)) == 1  # the file named once
    assert cli.main(["stress", "--input", str(bad), "--output", str(out), "--quality", "X"]) == 2
    assert not out.exists()
