"""Layered velocity model: analytic straight rays, taup cross-check, table accuracy."""

import numpy as np
import pytest

from firstmotion.velocity import TravelTimeTable, VelocityModel, taup_model, trace_rays

KM_PER_DEG = 6371.0 * np.pi / 180.0


@pytest.fixture(scope="module")
def model():
    return VelocityModel.default()


def test_homogeneous_model_matches_straight_rays():
    m = VelocityModel.homogeneous(6.0, 3.5)
    d = np.array([0.0, 0.5, 3.0, 10.0, 40.0, 150.0])
    for h in (0.5, 8.0, 20.0):
        for phase, v in (("P", 6.0), ("S", 3.5)):
            r = trace_rays(m, d, h, phase)
            np.testing.assert_allclose(r.time_s, np.hypot(d, h) / v, rtol=1e-9, atol=1e-9)
            # straight ray to a surface station goes UP: takeoff = atan2(d, h) from vertical-up
            np.testing.assert_allclose(r.takeoff_deg, np.degrees(np.arctan2(d, h)), atol=1e-6)
            np.testing.assert_allclose(r.incidence_deg, r.takeoff_deg, atol=1e-6)
            assert not r.head_wave.any()


def test_default_model_file_round_trips(tmp_path, model):
    assert model.name == "socal_hk1977"
    np.testing.assert_array_equal(model.depth_km, [0.0, 5.5, 16.0, 32.0])
    back = VelocityModel.from_file(model.write(tmp_path / "m.txt"))
    for a, b in zip(back._columns(), model._columns(), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_bad_models_and_queries_raise():
    with pytest.raises(ValueError, match="increase"):
        VelocityModel(np.array([0.0, 5.0, 4.0]), np.ones(3) * 6, np.ones(3) * 3, np.ones(3))
    with pytest.raises(ValueError, match="vp > vs"):
        VelocityModel(np.array([0.0]), np.array([3.0]), np.array([4.0]), np.array([2.0]))
    with pytest.raises(ValueError, match="2 to 6 columns"):
        VelocityModel.from_text("0 6 3.5 2.7 1 2 3\n")
    with pytest.raises(ValueError, match="not numbers"):
        VelocityModel.from_text("0 6 3.5\n5 six 3.6\n")
    with pytest.raises(ValueError, match="mix"):
        VelocityModel.from_text("0 6 3.5\n5 6.2\n")
    with pytest.raises(ValueError, match="mixes NonLinLoc LAYER lines and other rows"):
        VelocityModel.from_text("LAYER 0.0 5.0 0.1 2.9 0.0 2.7 0.0\n5.0 6.0 3.5\n")
    with pytest.raises(ValueError, match=">= 0"):
        trace_rays(VelocityModel.default(), -1.0, 5.0)
    with pytest.raises(ValueError, match="phase"):
        trace_rays(VelocityModel.default(), 1.0, 5.0, "Q")


def test_takeoff_up_for_near_stations_down_for_distant_refractions(model):
    near = trace_rays(model, [0.0, 2.0, 10.0], 15.0)
    assert np.all(near.takeoff_deg < 90.0) and not near.head_wave.any()
    far = trace_rays(model, [150.0, 200.0, 280.0], 10.0)
    assert np.all(far.takeoff_deg > 90.0) and far.head_wave.all()
    # Pn leaves at the critical angle of the Moho seen from the source layer
    expect = 180.0 - np.degrees(np.arcsin(6.3 / 7.8))
    assert far.takeoff_deg[-1] == pytest.approx(expect, abs=1e-6)
    assert far.incidence_deg[-1] == pytest.approx(np.degrees(np.arcsin(5.5 / 7.8)), abs=1e-6)


def test_times_are_continuous_across_interfaces_and_s_is_slower(model):
    for z in (5.5, 16.0, 32.0):
        t = trace_rays(model, 80.0, [z - 1e-4, z, z + 1e-4]).time_s
        assert np.ptp(t) < 1e-3
    d, h = np.meshgrid(np.linspace(0, 250, 26), np.linspace(0, 35, 8))
    tp, ts = trace_rays(model, d, h, "P").time_s, trace_rays(model, d, h, "S").time_s
    assert np.all(ts[d + h > 0] > tp[d + h > 0])
    # time grows with distance at every depth
    assert np.all(np.diff(tp, axis=1) > 0)


def test_first_arrivals_match_taup(model, tmp_path):
    tm = taup_model(model, cache_dir=tmp_path)
    for h in (3.0, 8.0, 14.0):
        for d in (5.0, 25.0, 60.0, 100.0, 140.0):
            r = trace_rays(model, d, h)
            arrivals = tm.get_travel_times(h, d / KM_PER_DEG, phase_list=["p", "P", "Pn"])
            assert arrivals, (d, h)
            t_first = min(a.time for a in arrivals)
            assert float(r.time_s) == pytest.approx(t_first, abs=0.1), (d, h)
            # a taup ray with the same takeoff (taup measures from vertical-down) and time
            ours = float(r.takeoff_deg)
            best = min(arrivals, key=lambda a: abs((180.0 - a.takeoff_angle) - ours))
            assert 180.0 - best.takeoff_angle == pytest.approx(ours, abs=1.0), (d, h)
            assert best.time == pytest.approx(float(r.time_s), abs=0.1), (d, h)
            assert best.incident_angle == pytest.approx(float(r.incidence_deg), abs=1.0)


def test_table_matches_exact_tracing(model):
    table = TravelTimeTable.build(model, max_distance_km=200.0, max_depth_km=30.0)
    rng = np.random.default_rng(2)
    d, h = rng.uniform(0, 200, 3000), rng.uniform(0, 30, 3000)
    for phase in ("P", "S"):
        t, takeoff, incidence = table.lookup(d, h, phase)
        r = trace_rays(model, d, h, phase)
        assert np.abs(t - r.time_s).max() < 0.03
        assert np.abs(takeoff - r.takeoff_deg).max() < 0.5
        assert np.abs(incidence - r.incidence_deg).max() < 0.5
        np.testing.assert_allclose(table.travel_time(d, h, phase), t)
    with pytest.raises(ValueError, match="outside the table"):
        table.lookup(250.0, 5.0)


def test_interface_rows_are_piecewise_constant(model):
    rows = model.interface_rows(60.0)
    np.testing.assert_array_equal(rows["depth"], [0, 5.5, 5.5, 16, 16, 32, 32, 60])
    np.testing.assert_array_equal(rows["vp"], [5.5, 5.5, 6.3, 6.3, 6.7, 6.7, 7.8, 7.8])
    assert rows["vs"].shape == rows["rho"].shape == (8,)
    with pytest.raises(ValueError, match="exceed"):
        model.interface_rows(10.0)


def test_three_column_taup_nd_and_nonlinloc_files_give_the_same_layers():
    """The layered model written as depth/vp/vs rows, as a TauP .nd (each interface twice,
    Q columns, named discontinuities, a core with no S that is not read) and as NonLinLoc
    LAYER lines: the same layers."""
    three = "0 5.5 3.2\n5.5 6.3 3.6\n16 6.7 3.9\n"
    nd = (
        "0.0 5.5 3.2 2.6 600 300\n5.5 5.5 3.2 2.6 600 300\n5.5 6.3 3.6 2.7 600 300\n"
        "16 6.3 3.6 2.7 600 300\n16 6.7 3.9 2.8 600 300\nmantle\n40 6.7 3.9 2.8 600 300\n"
        "40 7.8 4.4 3.3 600 300\nouter-core\n2889 8.0 0.0 9.9 600 0\n"
    )
    nll = (
        "LAYER 0.0 5.5 0.0 3.2 0.0 2.6 0.0\nLAYER 5.5 6.3 0.0 3.6 0.0 2.7 0.0\n"
        "LAYER 16.0 6.7 0.0 3.9 0.0 2.8 0.0\n"
    )
    a, b, c = (VelocityModel.from_text(t) for t in (three, nd, nll))
    np.testing.assert_array_equal(a.depth_km, [0.0, 5.5, 16.0])
    np.testing.assert_array_equal(b.depth_km, [0.0, 5.5, 16.0, 40.0])
    np.testing.assert_array_equal(c.depth_km, a.depth_km)
    for m in (b, c):
        np.testing.assert_array_equal(m.vp_km_s[:3], a.vp_km_s)
        np.testing.assert_array_equal(m.vs_km_s[:3], a.vs_km_s)
    np.testing.assert_allclose(a.rho_g_cm3, 1.74 * a.vp_km_s**0.25)  # Gardner without rho
    np.testing.assert_array_equal(c.rho_g_cm3, [2.6, 2.7, 2.8])
    assert b.vp_km_s[-1] == 7.8  # the row below the interface
    ta = trace_rays(a, 8.0, 30.0)
    tc = trace_rays(c, 8.0, 30.0)
    assert ta.time_s == pytest.approx(tc.time_s)


def test_nonlinloc_gradient_layers_give_the_gradient_s_travel_times():
    """A NonLinLoc LAYER with a velocity gradient (volcano models often have them) becomes
    thin constant sublayers: a vertical ray from 10 km through v(z) = 4 + 0.1 z km/s takes
    ln(v(10) / v(0)) / 0.1 s (P and S), within 1e-4; below a gradient layer the next layer's
    constant velocities start at its top; the last layer's gradient goes on 30 km, then a
    half-space."""
    m = VelocityModel.from_text(
        "LAYER -1.0 4.0 0.1 2.3 0.05 2.4 0.0\nLAYER 14.0 6.5 0.0 3.75 0.0 2.8 0.0\n"
    )
    assert m.top_km == -1.0 and np.all(np.diff(m.depth_km) <= 0.25 + 1e-9)
    below = m.layer_index(15.0)  # the constant layer under the gradient, at its own top
    assert (m.depth_km[below], m.vp_km_s[below], m.vs_km_s[below]) == (15.0, 6.5, 3.75)
    for phase, v0, g in (("P", 4.0, 0.1), ("S", 2.3, 0.05)):
        t = trace_rays(m, 1e-6, 10.0, phase).time_s  # 10 km below the model's top
        assert float(t) == pytest.approx(np.log((v0 + g * 10.0) / v0) / g, abs=1e-4)
    last = VelocityModel.from_text("LAYER 0.0 5.0 0.02 2.9 0.01 2.7 0.0\n")
    assert last.depth_km[-1] == 30.0
    assert last.vp_km_s[-1] == pytest.approx(5.6) and last.vs_km_s[-1] == pytest.approx(3.2)


def test_a_csv_with_a_header_names_its_columns_and_metres_per_second_are_refused():
    """A spreadsheet's model: a header line names the columns (in any order, units after
    "_" or "(" ignored); rows in m/s are refused rather than traced at 5,500 km/s."""
    three = VelocityModel.from_text("0 5.5 3.2\n5.5 6.3 3.6\n16 6.7 3.9\n")
    csv = "depth_km,vp_km_s,vs_km_s\n0,5.5,3.2\n5.5,6.3,3.6\n16,6.7,3.9\n"
    shuffled = "Vs(km/s); Depth(km); Vp(km/s)\n3.2;0;5.5\n3.6;5.5;6.3\n3.9;16;6.7\n"
    for text in (csv, shuffled):
        m = VelocityModel.from_text(text)
        np.testing.assert_array_equal(m.depth_km, three.depth_km)
        np.testing.assert_array_equal(m.vp_km_s, three.vp_km_s)
        np.testing.assert_array_equal(m.vs_km_s, three.vs_km_s)
    two = VelocityModel.from_text("vp depth\n5.5 0\n6.3 5.5\n")  # vp first, Vs from vp/vs
    np.testing.assert_array_equal(two.depth_km, [0.0, 5.5])
    np.testing.assert_allclose(two.vs_km_s, two.vp_km_s / 1.73)
    with pytest.raises(ValueError, match="must be km/s"):
        VelocityModel.from_text("0 5500 3200\n5500 6300 3600\n")
    with pytest.raises(ValueError, match="name the columns depth, vp"):
        VelocityModel.from_text("km speed\n0 5.5\n")
    with pytest.raises(ValueError, match="fewer columns than its header"):
        VelocityModel.from_text("depth vp vs\n0 5.5\n")


def test_a_hypoinverse_crh_model_is_read_velocity_first_and_named_by_its_title(tmp_path):
    """HYPOINVERSE's layer-cake files: a title line, then `vp depth_top` rows (velocity
    first). They give the layers of the same model in `depth vp` rows, named by the title;
    a title before `depth vp` rows (a velocity of 0 when read velocity first) or before rows
    of another form is refused with a line saying how the file was read."""
    crh = tmp_path / "hk.crh"
    crh.write_text("HADLEY-KANAMORI 1977\n 5.50  0.00\n 6.30  5.50\n 6.70 16.00\n 7.80 37.00\n")
    m = VelocityModel.from_file(crh)
    vz = VelocityModel.from_text("0 5.5\n5.5 6.3\n16 6.7\n37 7.8\n")
    assert m.name == "HADLEY-KANAMORI 1977"
    for column in ("depth_km", "vp_km_s", "vs_km_s"):
        np.testing.assert_array_equal(getattr(m, column), getattr(vz, column))
    assert trace_rays(m, 8.0, 30.0).time_s == pytest.approx(trace_rays(vz, 8.0, 30.0).time_s)
    named = VelocityModel.from_text("# name: local\nmodel A\n3.5 -2.0\n6.0 5.0\n")
    assert (named.name, named.top_km, named.vp_km_s.tolist()) == ("local", -2.0, [3.5, 6.0])
    with pytest.raises(ValueError, match="velocity <= 0.*name the columns"):
        VelocityModel.from_text("my model\n0 5.5\n5.5 6.3\n")
    with pytest.raises(ValueError, match=r"\.crh model .*is not such a row"):
        VelocityModel.from_text("my model\n0,5.5,3.2\n5.5,6.3,3.6\n")
    with pytest.raises(ValueError, match="must be km/s"):
        VelocityModel.from_text("my model\n5500 0\n6300 5.5\n")
    spelled = VelocityModel.from_text("depth velocity\n0 5.5\n5.5 6.3\n")  # a named column
    np.testing.assert_array_equal(spelled.vp_km_s, [5.5, 6.3])


SEISAN_HYP = """RESET TEST(02)=500.0
RESET TEST(07)=-3.0

  AAA 3801.50N 1502.60E 140
  BBBB3802.25N 1503.10E1120
 CCCCC3759.10S 15 1.90W-100
  DDD 3800123N 1504567E 300

  4.800     0.0      ! volcanic edifice
  5.900     2.0
! a comment line: no block separator
  6.500     8.0
  7.900    25.0     N

10.0  50. 200. 1.76
AGY
"""


def test_a_seisan_station0_hyp_file_gives_its_model_and_vp_vs(tmp_path):
    """SEISAN's STATION0.HYP (HYPO71's layout): stations, then the layers as `vp depth`
    lines (a Moho mark and comments ignored), then the control line whose columns 16-20
    hold Vp/Vs. Its model is the two-column model with that Vp/Vs; a Vs on every layer is
    taken as given; a file whose stations no model follows is refused."""
    hyp = tmp_path / "STATION0.HYP"
    hyp.write_text(SEISAN_HYP)
    m = VelocityModel.from_file(hyp)
    vz = VelocityModel.from_text("# vp_vs: 1.76\n0 4.8\n2 5.9\n8 6.5\n25 7.9\n")
    assert m.name == "STATION0"
    for column in ("depth_km", "vp_km_s", "vs_km_s", "rho_g_cm3"):
        np.testing.assert_allclose(getattr(m, column), getattr(vz, column), rtol=1e-12)
    assert trace_rays(m, 12.0, 5.0, "S").time_s == pytest.approx(
        trace_rays(vz, 12.0, 5.0, "S").time_s
    )
    # no RESET lines and no control line: Vp/Vs 1.73
    bare = SEISAN_HYP.split("RESET TEST(07)=-3.0\n\n")[1].split("\n\n10.0")[0]
    assert VelocityModel.from_text(bare).vs_km_s[0] == pytest.approx(4.8 / 1.73)
    with_vs = SEISAN_HYP
    for row, vs in (("  4.800     0.0", 2.5), ("  5.900     2.0", 3.3), ("  6.500     8.0", 3.7),
                    ("  7.900    25.0", 4.4)):  # fmt: skip
        with_vs = with_vs.replace(row, f"{row} {vs}")
    np.testing.assert_array_equal(VelocityModel.from_text(with_vs).vs_km_s, [2.5, 3.3, 3.7, 4.4])
    with pytest.raises(ValueError, match="no model follows"):
        VelocityModel.from_text(SEISAN_HYP.split("\n  4.800")[0])
    with pytest.raises(ValueError, match=r"STATION0\.HYP model line"):
        VelocityModel.from_text(SEISAN_HYP.replace("  5.900     2.0", "  5.900     2.0  3.3  9"))


VELEST_MOD = """Swarm minimum 1-D model (mod1.1)     Ref. station AAA
 4        vel,depth,vdamp,phase (f5.2,5x,f7.2,2x,f7.3,3x,a1)
 3.20       -2.00  001.00            P-VELOCITY MODEL
 4.80        0.00  001.00
 5.90        2.00  001.00
 6.50        8.00  001.00
 3
 1.85       -2.00  001.00            S-VELOCITY MODEL
 2.75        0.00  001.00
 3.70        5.00  001.00
"""


def test_a_velest_model_file_gives_its_p_and_s_layers(tmp_path):
    """VELEST's .mod: a title, then the P layers and the S layers, each block its count and
    `vel depth vdamp` lines. The layers are each block's, a top above sea level the model's
    top; S tops other than P's are layers too, with the velocities of the layers they lie in;
    without the S block Vs is Vp/1.73; a line after the blocks is refused."""
    mod = tmp_path / "swarm.mod"
    mod.write_text(VELEST_MOD)
    m = VelocityModel.from_file(mod)
    assert (m.name, m.top_km) == ("swarm", -2.0)
    np.testing.assert_allclose(m.depth_km - 2.0, [-2.0, 0.0, 2.0, 5.0, 8.0])
    np.testing.assert_allclose(m.vp_km_s, [3.2, 4.8, 5.9, 5.9, 6.5])
    np.testing.assert_allclose(m.vs_km_s, [1.85, 2.75, 2.75, 3.7, 3.7])
    p_only = VelocityModel.from_text(VELEST_MOD.split(" 3\n")[0])
    np.testing.assert_allclose(p_only.vs_km_s, np.array([3.2, 4.8, 5.9, 6.5]) / 1.73)
    with pytest.raises(ValueError, match="after the S layers"):
        VelocityModel.from_text(VELEST_MOD + " 9.99 99.0 1.0 extra\n")


def test_a_model_that_starts_above_sea_level_has_its_top_there(tmp_path):
    """Volcano and mountain models start at the highest station (a negative depth): the top
    is kept (``top_km``), the layers count from it, and the file round-trips; a first row
    below sea level reaches up to it (HASH reads the first velocity up to the surface)."""
    m = VelocityModel.from_text("# vp_vs: 1.75\n-2.0 3.5\n0.0 4.5\n5.0 6.0\n")
    assert m.top_km == -2.0
    np.testing.assert_allclose(m.depth_km, [0.0, 2.0, 7.0])
    np.testing.assert_allclose(m.vs_km_s, m.vp_km_s / 1.75)
    np.testing.assert_allclose(m.model_depth_km([-2.0, 0.0, 4.0]), [0.0, 2.0, 6.0])
    np.testing.assert_allclose(m.sea_level_depth_km(6.0), 4.0)
    # heights above the top: a station at 1.5 km is 0.5 km below it; below sea level = at it
    np.testing.assert_allclose(m.height_above_top_km([1500.0, 2500.0, -300.0]), [-0.5, 0.5, -2.0])
    back = VelocityModel.from_file(m.write(tmp_path / "volcano.txt"))
    assert back.top_km == -2.0
    np.testing.assert_allclose(back.depth_km, m.depth_km)
    np.testing.assert_allclose(back.vp_km_s, m.vp_km_s)
    nll = VelocityModel.from_text(
        "LAYER -2.0 3.5 0.0 2.0 0.0 2.4 0.0\nLAYER 0.0 4.5 0.0 2.6 0.0 2.5 0.0\n"
    )
    assert nll.top_km == -2.0 and list(nll.depth_km) == [0.0, 2.0]
    deep = VelocityModel.from_text("0.5 4.0\n5.0 6.0\n")
    assert deep.top_km == 0.0 and list(deep.depth_km) == [0.0, 5.0]
    assert VelocityModel.default().top_km == 0.0
    with pytest.raises(ValueError, match="top_km"):
        VelocityModel(np.array([0.0]), np.array([5.0]), np.array([3.0]), np.array([2.6]),
                      top_km=1.0)  # fmt: skip
