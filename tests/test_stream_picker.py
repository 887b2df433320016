"""The learned P/S picker: the PhaseNet port, window picking, and the streaming stage."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from obspy import UTCDateTime

from stream.phase_stage import PhaseStage
from stream.phasenet import (
    InferencePhaseNet,
    PhaseNet,
    from_tf_variables,
    self_check_input,
    tf_same_padding,
)
from stream.picker import (
    PhaseNetModel,
    PickerParams,
    StationPick,
    card_path,
    find_peaks,
    find_peaks_py,
    pick_traces,
    separate_refined,
    to_grid,
)
from stream.stage import Packet, StageParams, make_stage

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FIRSTMOTION_SHARED", REPO.parent / "shared"))
ORIGINAL = SHARED / "models" / "phasenet_original"


@pytest.fixture(scope="module")
def model() -> PhaseNetModel:
    torch.set_num_threads(1)
    return PhaseNetModel.load(device="cpu")


# --------------------------------------------------------------------------- the port


@pytest.mark.skipif(
    not (ORIGINAL / "variables.npz").exists(),
    reason=f"the original PhaseNet variables are not at {ORIGINAL} (set FIRSTMOTION_SHARED)",
)
def test_port_reproduces_the_original_tensorflow_output():
    net = from_tf_variables(str(ORIGINAL / "variables.npz"))
    x = np.load(ORIGINAL / "reference_input.npy")[:, :3000, 0, :].transpose(0, 2, 1)
    want = np.load(ORIGINAL / "reference_output.npy")
    with torch.no_grad():
        got = net(torch.from_numpy(np.ascontiguousarray(x)))[0].numpy().T
    assert got.shape == want.shape == (3000, 3)
    assert np.abs(got - want).max() < 2e-6  # float32 rounding (measured 3.3e-7)
    assert int(np.argmax(got[:, 1])) == int(np.argmax(want[:, 1]))
    assert int(np.argmax(got[:, 2])) == int(np.argmax(want[:, 2]))


def test_shipped_weights_give_the_output_recorded_at_conversion(model):
    card = json.loads(card_path().read_text())
    check = card["self_check"]
    with torch.no_grad():
        out = model.model(torch.from_numpy(self_check_input()))[0].numpy()
    got = out[:, check["samples"]].T
    assert np.allclose(got, np.asarray(check["probabilities"]), atol=1e-5)
    assert card["conversion"]["reference_max_abs_difference"] < 1e-5
    assert (card_path().parent / card["licence"]["file"]).read_text().startswith("MIT License")


@pytest.mark.skipif(
    not (ORIGINAL / "variables.npz").exists(),
    reason=f"the original PhaseNet variables are not at {ORIGINAL} (set FIRSTMOTION_SHARED)",
)
def test_inference_form_reproduces_the_original_tensorflow_output():
    net = InferencePhaseNet(from_tf_variables(str(ORIGINAL / "variables.npz"))).eval()
    x = np.load(ORIGINAL / "reference_input.npy")[:, :3000, 0, :].transpose(0, 2, 1)
    want = np.load(ORIGINAL / "reference_output.npy")
    with torch.no_grad():
        got = net(torch.from_numpy(np.ascontiguousarray(x)))[0].numpy().T
    assert got.shape == want.shape == (3000, 3)
    assert np.abs(got - want).max() < 2e-6


def test_inference_form_equals_the_training_form_at_any_length():
    torch.manual_seed(0)
    net = PhaseNet()
    for m in net.modules():  # batch-norm statistics away from the identity
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.3, 0.3)
    net.eval()
    fast = InferencePhaseNet(net).eval()
    for n in (3000, 3001, 2999, 1024, 777, 50):
        x = torch.randn(3, 3, n)
        with torch.no_grad():
            want, got = net.logits(x), fast.logits(x)
        assert got.shape == want.shape == (3, 3, n)
        assert (got - want).abs().max() < 1e-4 * (1 + want.abs().max())
        assert torch.allclose(fast(x).sum(dim=1), torch.ones(3, n), atol=1e-5)


def test_polyphase_weight_is_the_cropped_transposed_convolution():
    from stream.phasenet import polyphase_weight

    torch.manual_seed(1)
    for k, s, before in ((7, 4, 1), (7, 2, 2), (5, 3, 0), (3, 4, 1)):
        w = torch.randn(5, 4, k, dtype=torch.float64)
        x = torch.randn(2, 5, 23, dtype=torch.float64)
        n = x.shape[-1]
        full = torch.nn.functional.conv_transpose1d(x, w, stride=s)
        want = full[..., before : before + n * s]
        if want.shape[-1] < n * s:  # the full output is shorter than n * s: zeros after it
            want = torch.nn.functional.pad(want, (0, n * s - want.shape[-1]))
        pw, left = polyphase_weight(w, s, before)
        y = torch.nn.functional.conv1d(
            torch.nn.functional.pad(x, (left, pw.shape[-1] - 1 - left)), pw
        )
        got = y.view(2, s, 4, n).permute(0, 2, 3, 1).reshape(2, 4, n * s)
        assert torch.allclose(got, want, atol=1e-12)


def test_highpass_equals_second_order_sections_from_rest():
    from scipy import signal as sps

    from stream.picker import highpass_windows

    rng = np.random.default_rng(2)
    x = (rng.standard_normal((4, 3, 3000)) * 50 + 20_000).astype(np.float32)  # DC offset
    sos = sps.butter(4, 1.0, "highpass", fs=100.0, output="sos")
    want = sps.sosfilt(sos, x.astype(np.float64) - x[..., :1], axis=-1)
    got = highpass_windows(x, 1.0)
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()
    assert abs(float(got[..., 0].max())) < 1e-3  # from rest: no step from the offset


def test_tensorflow_same_padding_and_lengths():
    assert tf_same_padding(3000, 7, 4) == (1, 2)
    assert tf_same_padding(750, 7, 4) == (2, 3)
    assert tf_same_padding(47, 7, 4) == (2, 2)
    assert tf_same_padding(3000, 7, 1) == (3, 3)
    net = PhaseNet().eval()
    for n in (3000, 3001, 1024, 777):
        with torch.no_grad():
            y = net(torch.zeros(2, 3, n))
        assert y.shape == (2, 3, n)
        assert torch.allclose(y.sum(dim=1), torch.ones(2, n), atol=1e-5)


# --------------------------------------------------------------------------- numerics


def test_find_peaks_matches_its_slow_twin():
    rng = np.random.default_rng(3)
    for _ in range(50):
        prob = np.convolve(rng.random(400) ** 6, np.hanning(15), mode="same") / 3
        fast, slow = find_peaks(prob, 0.3), find_peaks_py(prob, 0.3)
        assert len(fast) == len(slow)
        for (i, p), (j, q) in zip(fast, slow, strict=True):
            assert abs(i - j) < 1e-9 and p == q
    # a run falling from the window's first sample is no peak; one rising after it is
    edge = np.r_[0.9, 0.8, 0.5, 0.1, np.zeros(20), 0.4, 0.7, 0.4, 0.0]
    assert [round(i) for i, _ in find_peaks(edge, 0.3)] == [25]
    assert find_peaks_py(edge, 0.3) == find_peaks(edge, 0.3)
    assert [round(i) for i, _ in find_peaks(np.r_[0.5, 0.9, 0.4, 0.0], 0.3)] == [1]


def test_to_grid_reads_100_hz_as_is_and_resamples_other_rates_without_aliasing():
    x = np.arange(1000.0)
    assert np.array_equal(to_grid(x, 100.0, 0, np.arange(10, 20)), x[10:20])
    t200 = np.arange(4000) / 200.0
    low = np.sin(2 * np.pi * 3.0 * t200)
    alias = np.sin(2 * np.pi * 80.0 * t200)  # above the 50 Hz Nyquist of the grid: removed
    pos = np.arange(200, 1800) * 2.0  # grid samples 200..1799 in 200 Hz samples
    y = to_grid(low + alias, 200.0, 0, pos)
    want = np.sin(2 * np.pi * 3.0 * np.arange(200, 1800) / 100.0)
    assert np.abs(y - want).max() < 0.02


def test_p_onset_refinement_moves_an_early_pick_onto_the_onset_and_no_further():
    from stream.picker import REFINE_MAX_SHIFT_S, refine_p_onset

    rate, onset = 100.0, 800
    rng = np.random.default_rng(5)
    z = rng.standard_normal(1200) + 500.0  # DC offset: raw counts
    t = np.arange(1200 - onset)
    z[onset:] += 20 * np.sin(2 * np.pi * 5 * t / rate) * np.exp(-t / 60)
    refined = refine_p_onset(z, rate, onset - 3.0)  # a pick 30 ms early
    # on the onset, late by at most 30 ms: the causal band-pass delays it, as the detector's
    assert -0.5 <= refined - onset <= 3.0
    quiet = rng.standard_normal(1200)
    moved = refine_p_onset(quiet, rate, 800.0)
    assert abs(moved - 800.0) <= REFINE_MAX_SHIFT_S * rate
    assert refine_p_onset(z, rate, 20.0) == 20.0  # not enough samples before: unchanged


def test_p_onset_snr_measures_the_energy_jump_on_the_vertical():
    from stream.picker import p_onset_snr

    rate, onset = 100.0, 1000
    rng = np.random.default_rng(7)
    z = rng.standard_normal(1400) + 300.0
    t = np.arange(1400 - onset)
    loud = z.copy()
    loud[onset:] += 8 * np.sin(2 * np.pi * 6 * t / rate) * np.exp(-t / 80)
    assert p_onset_snr(loud, rate, onset) > 3.0
    assert p_onset_snr(z, rate, onset) < 1.5  # noise: no jump
    assert p_onset_snr(loud, rate, 300.0) == np.inf  # not enough samples before: no gate
    nan = loud.copy()
    nan[900] = np.nan
    assert p_onset_snr(nan, rate, onset) == np.inf


def test_snr_gate_drops_p_picks_on_noise_and_keeps_onsets_and_s_picks():
    from stream.buffer import ChannelBuffer
    from stream.picker import StationPick, refine_picks

    rate, onset, t0_ns = 100.0, 1500, 1_600_000_000 * 10**9
    rng = np.random.default_rng(11)
    z = rng.standard_normal(2000) * 3 + 1000.0
    t = np.arange(2000 - onset)
    z[onset:] += 30 * np.sin(2 * np.pi * 5 * t / rate) * np.exp(-t / 100)
    buf = ChannelBuffer(60.0, max_fill_s=0.0)
    buf.append(t0_ns, rate, z)

    def at(i, phase="P"):
        return StationPick(phase, t0_ns / 1e9 + i / rate, 0.5, float(i))

    picks = [at(900), at(900, "S"), at(onset)]
    kept = refine_picks(picks, buf, PickerParams(p_min_snr=2.0, candidate_p=0.0))
    assert [(p.phase, round(p.grid_index)) for p in kept] == [("S", 900), ("P", onset)]
    assert abs(kept[1].time_epoch_s - picks[2].time_epoch_s) <= 0.05
    # with candidate onsets on, the dropped P stays as one (the associator alone decides)
    flagged = refine_picks(picks, buf, PickerParams(p_min_snr=2.0, candidate_p=0.1))
    assert [(p.phase, round(p.grid_index), p.candidate) for p in flagged] == [
        ("P", 900, "phasenet"),
        ("S", 900, ""),
        ("P", onset, ""),
    ]
    # a candidate of the STA/LTA detector needs candidate_min_snr
    stalta = [replace(picks[0], candidate="stalta")]
    assert refine_picks(stalta, buf, PickerParams(candidate_min_snr=2.0)) == []
    assert len(refine_picks(stalta, buf, PickerParams(candidate_min_snr=0.0))) == 1
    ungated = refine_picks(picks, buf, PickerParams(p_min_snr=0.0))
    assert [p.phase for p in ungated] == ["P", "S", "P"]
    with pytest.raises(ValueError, match="p_min_snr"):
        PickerParams(p_min_snr=-1.0)


def test_device_preparation_equals_the_numpy_path():
    from stream.phasenet import normalise_windows
    from stream.picker import highpass_windows, prepare_windows_torch

    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 3, 3000)) * 50 + 1e4).astype(np.float32)
    x[1, 0] = 7.0  # a flat channel stays zero
    want = normalise_windows(highpass_windows(x, 1.0))
    got = prepare_windows_torch(torch.from_numpy(x), 1.0).numpy()
    assert np.abs(got - want).max() < 1e-4
    assert np.all(got[1, 0] == 0)


# --------------------------------------------------------------------------- scenario


@pytest.fixture(scope="module")
def scenario():
    from stream.scenario import ScenarioConfig, make_scenario

    sc = make_scenario(
        ScenarioConfig(n_stations=6, n_events=1, duration_s=120.0, region_km=40.0, seed=3)
    )
    return sc.stream(), sc.truth["events"][0]["stations"]


def _station_traces(st, station_id):
    net, sta, _, _ = station_id.split(".")
    comp = {t.stats.channel[-1]: t for t in st.select(network=net, station=sta)}
    return [comp["E"], comp["N"], comp["Z"]]


def _packets(st, seed=0, z_only=False, seconds=(0.3, 4.0)):
    rng = np.random.default_rng(seed)
    out = []
    for tr in st:
        if z_only and not tr.stats.channel.endswith("Z"):
            continue
        rate, i = tr.stats.sampling_rate, 0
        while i < tr.stats.npts:
            step = int(rng.uniform(*seconds) * rate)
            out.append(
                Packet(
                    *tr.id.split("."),
                    tr.stats.starttime.ns + round(i * 1e9 / rate),
                    rate,
                    tr.data[i : i + step],
                )  # fmt: skip
            )
            i += step
    out.sort(key=lambda p: (p.end_ns, p.seed_id))
    return out


def _errors(picks, rows, phase):
    """Per true arrival of ``phase``, the nearest pick's error (s) on its station."""
    key = "p_time" if phase == "P" else "s_time"
    out = []
    for s in rows:
        t = UTCDateTime(s[key]).timestamp
        times = [
            p.time_epoch_s for p in picks if p.phase == phase and p.station_id == s["station_id"]
        ]
        out.append(min((abs(x - t) for x in times), default=np.inf))
    return np.asarray(out)


def test_picker_finds_p_and_s_of_a_scenario_event(model, scenario):
    st, rows = scenario
    picks = []
    for s in rows:
        for p in pick_traces(model, _station_traces(st, s["station_id"])):
            picks.append(type("P", (), {"phase": p.phase, "time_epoch_s": p.time_epoch_s,
                                        "station_id": s["station_id"]}))  # fmt: skip
    p_err, s_err = _errors(picks, rows, "P"), _errors(picks, rows, "S")
    assert np.sum(p_err <= 0.05) >= 4, p_err  # of 6 (measured 4; the others within 0.13 s)
    assert np.sum(s_err <= 0.05) >= 1, s_err
    assert np.sum(p_err <= 0.15) == len(rows)


def test_picks_read_back_after_a_restart_are_not_published_again(model, scenario):
    """Picks published before a kill that the statefile missed (read back from Redis by the
    stream process) are the stage's last picks and in its second look's memory: the data read
    again gives none of them."""
    st, _rows = scenario
    first = PhaseStage(StageParams(), model=model)
    published = [p for packet in _packets(st, seed=1) for p in first.process(packet)[1]]
    assert {p.phase for p in published} == {"P", "S"}
    again = PhaseStage(StageParams(), model=model)
    for pick in published:
        again.note_published(pick)
    assert all(first.last_pick_epoch_s[k] == t for k, t in again.last_pick_epoch_s.items())
    assert [p for packet in _packets(st, seed=2) for p in again.process(packet)[1]] == []


def test_packets_in_any_cut_give_the_picks_of_one_pass(model, scenario):
    st, rows = scenario
    one, onsets = [], {}
    for s in rows:
        for p in pick_traces(model, _station_traces(st, s["station_id"])):
            one.append((s["station_id"], p.phase, round(p.time_epoch_s, 4)))
            onsets[one[-1]] = p.onset_s
    stage = PhaseStage(StageParams(), model=model)
    got = []
    for packet in _packets(st, seed=1):
        got += stage.process(packet)[1]
    assert sorted(one) == sorted((p.station_id, p.phase, round(p.time_epoch_s, 4)) for p in got)
    # the time is PhaseNet's peak; the window (the polarity read) is at the refined onset
    moved = 0
    for p in got:
        onset = onsets[(p.station_id, p.phase, round(p.time_epoch_s, 4))]
        at = p.start_time_epoch_s + p.pick_index / p.sampling_rate_hz
        assert abs(at - onset) <= 0.5 / p.sampling_rate_hz + 1e-6
        assert abs(onset - p.time_epoch_s) <= 0.2 + 1e-6
        moved += p.phase == "P" and abs(onset - p.time_epoch_s) >= 1 / p.sampling_rate_hz
    assert moved  # the refinement moved some onsets off the peak
    assert {p.phase for p in got} == {"P", "S"}
    for p in got:
        assert p.method == "phasenet" and 0 < p.probability <= 1
        assert p.samples.size > p.pick_index
        assert p.samples.size - p.pick_index - 1 == int(np.ceil(1.0 * p.sampling_rate_hz))


def test_records_longer_than_the_component_wait_give_the_picks_of_one_pass(model, scenario):
    """A 512-byte record holds ~17 s at 40 Hz (7 s of quiet 100 Hz data): each channel
    arrives in whole records cut at its own times, so a horizontal trails the vertical by up
    to a record while it keeps up. Such a channel is waited for (``component_wait_s`` counts
    beyond its longest packet): the windows, and the picks, are those of one pass. (Read as
    lagging after 10 s, its missing samples were zeros in some windows, and the picks
    depended on where the records were cut.)"""
    st, rows = scenario
    one = {}
    for s in rows:
        for p in pick_traces(model, _station_traces(st, s["station_id"])):
            one[(s["station_id"], p.phase, round(p.time_epoch_s, 4))] = p.probability
    assert len(one) > 5
    for seed in (1, 2, 3):
        stage = PhaseStage(StageParams(), model=model)
        got = []
        for packet in _packets(st, seed=seed, seconds=(12.0, 20.0)):
            got += stage.process(packet)[1]
        keys = [(p.station_id, p.phase, round(p.time_epoch_s, 4)) for p in got]
        assert sorted(keys) == sorted(one), seed
        # the same windows: the same probabilities (to the batches' float rounding)
        assert all(abs(p.probability - one[k]) < 1e-3 for k, p in zip(keys, got, strict=True)), seed
    # the longest packet travels in the snapshot, so a restarted stage waits as long
    snap = stage.snapshot(got[0].station_id[:-1] + "E")
    assert 12.0 <= snap["packet_s"] <= 20.0


def test_a_horizontal_that_stops_is_read_as_zeros_and_does_not_stall_the_station(model, scenario):
    """A horizontal that stops delivering (a dead channel) holds the windows back only until
    it trails the vertical by ``component_wait_s`` plus its longest packet; then the station
    is picked with that component as zeros, and its P picks are still made."""
    st, rows = scenario
    stop_ns = int(st[0].stats.starttime.ns + 20e9)  # every E channel stops after 20 s
    packets = [
        pk for pk in _packets(st, seed=4) if not (pk.channel.endswith("E") and pk.end_ns > stop_ns)
    ]
    stage = PhaseStage(StageParams(), model=model)
    got = []
    for packet in packets:
        got += stage.process(packet)[1]
    one = [
        (s["station_id"], p.time_epoch_s)
        for s in rows
        for p in pick_traces(model, _station_traces(st, s["station_id"]))
        if p.phase == "P"
    ]
    assert len(one) >= 5
    for sid, t in one:  # each P pick of the full record is still made, nearly where it was
        near = [p for p in got if p.station_id == sid and p.phase == "P"]
        assert near and min(abs(p.time_epoch_s - t) for p in near) < 0.1, (sid, t)


def test_flush_at_the_end_of_the_data_gives_the_picks_of_one_pass(model, scenario):
    """A replay that runs out: each station's vertical ends 3 s after its first P, its
    horizontals 0.4 s after it. Live, the stage waits for the horizontals (they trail by
    less than ``component_wait_s``), so those windows never run; ``flush()`` runs them with
    the missing ends as zeros and ships the picks waiting for samples, as one pass over the
    same records reads them."""
    st, rows = scenario
    cut = st.copy()
    one = []
    for s in rows:
        traces = _station_traces(st, s["station_id"])
        first_p = min(p.time_epoch_s for p in pick_traces(model, traces) if p.phase == "P")
        net, sta = s["station_id"].split(".")[:2]
        for tr in cut.select(network=net, station=sta):
            end = first_p + (3.0 if tr.stats.channel.endswith("Z") else 0.4)
            tr.trim(endtime=tr.stats.starttime.__class__(end))
        for p in pick_traces(model, _station_traces(cut, s["station_id"])):
            one.append((s["station_id"], p.phase, round(p.time_epoch_s, 4)))
    assert sum(ph == "P" for _, ph, _ in one) >= len(rows)  # every station's first P
    stage = PhaseStage(StageParams(), model=model)
    live = []
    for packet in _packets(cut, seed=5):
        live += stage.process(packet)[1]
    live_keys = {(p.station_id, p.phase, round(p.time_epoch_s, 4)) for p in live}
    assert len(live_keys) < len(one)  # the last picks wait for samples that never come
    flushed = stage.flush()
    assert flushed
    got = sorted((p.station_id, p.phase, p.time_epoch_s) for p in live + flushed)
    assert len(got) == len(one)
    for (sid, ph, t), (gsid, gph, gt) in zip(sorted(one), got, strict=True):
        assert (sid, ph) == (gsid, gph) and abs(t - gt) < 2e-3, (sid, ph, t, gt)
    for p in flushed:  # shipped with what the vertical holds
        assert p.samples.size > p.pick_index
    assert stage.flush() == []  # nothing is shipped twice


def test_batched_packets_give_the_same_picks(model, scenario):
    st, _ = scenario
    packets = _packets(st, seed=2)
    single = PhaseStage(StageParams(), model=model)
    want = [p.pick_id for pk in packets for p in single.process(pk)[1]]
    batched = PhaseStage(StageParams(), model=model)
    got = []
    for i in range(0, len(packets), 37):
        got += [p.pick_id for p in batched.process_many(packets[i : i + 37])[1]]
    assert sorted(got) == sorted(want) and len(want) > 5


def test_restart_from_snapshots_gives_the_same_picks(model, scenario):
    st, _ = scenario
    packets = _packets(st, seed=4)
    whole = PhaseStage(StageParams(), model=model)
    want = sorted(p.pick_id for pk in packets for p in whole.process(pk)[1])
    # the stream process's checkpoint: snapshots at a packet ~5 s in; the process goes on to
    # checkpoint + warmup and stops; the restarted one resumes right after the checkpoint
    first = PhaseStage(StageParams(), model=model)
    t0 = min(p.start_ns for p in packets)
    checkpoint_ns = t0 + int(5e9)
    stop_ns = checkpoint_ns + int(first.warmup_s() * 1e9)
    published, snaps, resume_ns = [], {}, {}
    for pk in packets:
        if pk.end_ns > stop_ns:
            break
        published += first.process(pk)[1]
        if pk.end_ns <= checkpoint_ns:
            snaps[pk.seed_id] = json.loads(json.dumps(first.snapshot(pk.seed_id)))
            resume_ns[pk.seed_id] = pk.end_ns  # the server resends each channel from there
    again = PhaseStage(
        StageParams(),
        model=model,
        resume_channels=snaps,
        last_pick_epoch_s=json.loads(json.dumps(first.last_pick_epoch_s)),
        pick_memory_state=json.loads(json.dumps(first.pick_memory)),  # the statefile's
    )
    for pk in packets:
        if pk.start_ns >= resume_ns.get(pk.seed_id, 0):
            published += again.process(pk)[1]
    assert sorted(p.pick_id for p in published) == want
    assert any(p.time_epoch_s * 1e9 > stop_ns for p in published)  # picks after the restart


def test_vertical_only_stations_are_picked(model, scenario):
    st, rows = scenario
    stage = make_stage(StageParams(), model=model)
    picks = []
    for packet in _packets(st, seed=5, z_only=True):
        picks += stage.process(packet)[1]
    p_err = _errors(picks, rows, "P")
    assert np.sum(p_err <= 0.1) >= 4, p_err


def test_gaps_and_nan_samples_are_counted_and_do_not_crash(model, scenario):
    st, rows = scenario
    packets = _packets(st, seed=6)
    rng = np.random.default_rng(0)
    n_nan = 0
    fed = []
    for i, pk in enumerate(packets):
        if i % 17 == 5:  # dropped packets: short gaps are filled, long ones start a segment
            continue
        x = np.asarray(pk.samples, dtype=np.float64).copy()
        if i % 11 == 3 and x.size:
            k = rng.integers(0, x.size, 3)
            x[k] = np.nan
            n_nan += int(np.isnan(x).sum())
        fed.append(Packet(pk.network, pk.station, pk.location, pk.channel, pk.start_ns,
                          pk.sampling_rate_hz, x))  # fmt: skip
    stage = PhaseStage(StageParams(), model=model)
    picks = []
    for pk in fed:
        picks += stage.process(pk)[1]
    assert stage.nan_samples == n_nan > 0
    assert all(np.isfinite(p.time_epoch_s) and 0 < p.probability <= 1 for p in picks)
    assert np.sum(_errors(picks, rows, "P") <= 0.15) >= 3


def test_a_telemetry_glitch_does_not_cost_the_picks_around_it(model, scenario):
    """One sample a million times the station's noise (a high bit of a 24-bit count) 4 s
    or 1 s before the P on every component: PhaseNet's per-window normalisation scaled the
    whole 30 s window down to nothing around it, and the P onset gate's noise (the 2 s
    before the onset) was the glitch; it is repaired (firstmotion.glitches) and the picks are
    the clean record's."""
    st, rows = scenario
    for s in rows:
        traces = _station_traces(st, s["station_id"])
        clean = [(p.phase, round(p.time_epoch_s, 3), p.candidate)
                 for p in pick_traces(model, traces)]  # fmt: skip
        assert any(ph == "P" and not cand for ph, _, cand in clean)
        for before_s in (4.0, 1.0):
            glitched = []
            for tr in traces:
                tr = tr.copy()
                tr.data = tr.data.astype(np.float64)
                at = UTCDateTime(s["p_time"]) - before_s - tr.stats.starttime
                k = int(at * tr.stats.sampling_rate)
                tr.data[k] += 1e6 * np.std(np.diff(tr.data[: k - 100]))
                glitched.append(tr)
            got = [(p.phase, round(p.time_epoch_s, 3), p.candidate)
                   for p in pick_traces(model, glitched)]  # fmt: skip
            assert got == clean, (s["station_id"], before_s)


def test_config_chooses_the_picker():
    assert StageParams().picker == "phasenet"
    with pytest.raises(ValueError, match="detect.picker"):
        StageParams(picker="magic")
    from stream.stage import StreamStage

    assert isinstance(make_stage(StageParams(picker="stalta")), StreamStage)
    with pytest.raises(ValueError):
        PickerParams(p_threshold=1.5)


# --------------------------------------------------------------------------- second look


def _one_pass(model, st, rows, params):
    out = set()
    for s in rows:
        for p in pick_traces(model, _station_traces(st, s["station_id"]), params):
            out.add((s["station_id"], p.phase, round(p.time_epoch_s, 4)))
    return out


def _small_scenario(seed: int):
    from stream.scenario import ScenarioConfig, make_scenario

    sc = make_scenario(
        ScenarioConfig(n_stations=6, n_events=1, duration_s=120.0, region_km=40.0, seed=seed)
    )
    return sc.stream(), sc.truth["events"][0]["stations"]


def test_second_look_adds_mostly_true_arrivals_the_first_pass_missed(model):
    """Over thirteen one-event scenarios: the first pass's picks stay, the second look adds
    picks in several of them, most of them true arrivals (within 0.5 s; on these scenarios
    about 10 of 16, the rest onsets in the coda), none of them within ``min_separation_s`` of
    another pick of its phase at its station."""
    n_added = n_true = n_with = 0
    for seed in range(3, 16):
        st, rows = _small_scenario(seed)
        first = _one_pass(model, st, rows, PickerParams(second_look_s=0.0))
        both = _one_pass(model, st, rows, PickerParams())
        assert first <= both, seed  # the first pass's picks stay
        true = {(s["station_id"], ph): UTCDateTime(s[f"{ph.lower()}_time"]).timestamp
                for s in rows for ph in "PS"}  # fmt: skip
        added = both - first
        n_with += bool(added)
        n_added += len(added)
        n_true += sum(abs(t - true[(sid, ph)]) <= 0.5 for sid, ph, t in added)
        for sid, ph, t in added:  # the second look does not pick again what the first pass had
            others = [u for s, p, u in both if (s, p) == (sid, ph) and u != t]
            assert all(abs(u - t) > PickerParams().min_separation_s for u in others), seed
    assert n_with >= 5, n_with
    assert n_true >= 0.5 * n_added and n_true >= 6, (n_true, n_added)


def test_restart_with_a_pending_second_look_gives_the_same_picks(model):
    st, rows = _small_scenario(4)  # a scenario where the second look adds true picks
    packets = _packets(st, seed=5)
    whole = PhaseStage(StageParams(), model=model)
    got = [p for pk in packets for p in whole.process(pk)[1]]
    want = sorted(p.pick_id for p in got)
    params = StageParams(picker_params=PickerParams(second_look_s=0.0))
    no_look = PhaseStage(params, model=model)
    plain = {p.pick_id for pk in packets for p in no_look.process(pk)[1]}
    added = [p for p in got if p.pick_id not in plain]
    assert added  # picks only a second look gives
    # stop 9 s of data after the P pick that triggered one of them (packets are up to 4 s
    # long): the trigger is picked, its look (18 s after it) pending
    x = added[0]
    trigger = max(p.time_epoch_s for p in got
                  if p.pick_id in plain and p.phase == "P" and p.station_id == x.station_id
                  and p.time_epoch_s <= x.time_epoch_s)  # fmt: skip
    stop_ns = int((trigger + 9.0) * 1e9)
    first = PhaseStage(StageParams(), model=model)
    checkpoint_ns = stop_ns - int(first.warmup_s() * 1e9)
    published, snaps, resume_ns = [], {}, {}
    for pk in packets:
        if pk.end_ns > stop_ns:
            break
        published += first.process(pk)[1]
        if pk.end_ns <= checkpoint_ns:
            snaps[pk.seed_id] = json.loads(json.dumps(first.snapshot(pk.seed_id)))
            resume_ns[pk.seed_id] = pk.end_ns
    assert x.pick_id not in {p.pick_id for p in published}
    state = json.loads(json.dumps(first.pick_memory))  # as the statefile keeps it
    assert state[x.station_id]["recent"]
    assert any(abs(t - trigger) < 0.3 for t in state[x.station_id]["onsets"])  # refined onsets
    again = PhaseStage(
        StageParams(), model=model, resume_channels=snaps, pick_memory_state=state,
        last_pick_epoch_s=json.loads(json.dumps(first.last_pick_epoch_s)),
    )  # fmt: skip
    for pk in packets:
        if pk.start_ns >= resume_ns.get(pk.seed_id, 0):
            published += again.process(pk)[1]
    assert sorted(p.pick_id for p in published) == want


def test_refined_p_onsets_are_kept_a_minimum_separation_apart():
    params = PickerParams()
    t0 = 1.7e9

    def p(dt, phase="P", candidate=""):
        return StationPick(phase, t0 + dt, 0.5, 0.0, candidate)

    recent: list[float] = []
    # peaks 1.2 s apart whose onsets the refinement moved to 0.84 s apart: one onset
    kept = separate_refined([p(0.0), p(0.84), p(2.0), p(0.5, "S"), p(1.5, candidate="stalta")],
                            recent, params)  # fmt: skip
    assert [(k.phase, round(k.time_epoch_s - t0, 2), k.candidate) for k in kept] == [
        ("P", 0.0, ""), ("P", 2.0, ""), ("S", 0.5, ""), ("P", 1.5, "stalta")]  # fmt: skip
    # a later call (a second look, a packet later) compares with the onsets kept before,
    # before or after them
    assert separate_refined([p(2.9), p(-0.95), p(3.01)], recent, params) == [p(3.01)]
    # onsets older than a window before the newest are forgotten
    separate_refined([p(100.0)], recent, params)
    assert min(recent) > t0 + 100.0 - params.window_s - 5.0
    assert separate_refined([p(3.5)], recent, params) == [p(3.5)]


def test_the_stream_drops_a_p_pick_whose_onset_is_near_one_shipped_before_a_restart(model):
    st, rows = _small_scenario(4)
    packets = _packets(st, seed=5)
    plain = PhaseStage(StageParams(), model=model)
    got = [p for pk in packets for p in plain.process(pk)[1]]
    p0 = min((p for p in got if p.phase == "P" and not p.candidate), key=lambda p: p.time_epoch_s)
    # the state a process that shipped an onset 0.8 s before this one leaves in its statefile
    state = {p0.station_id: {"recent": {}, "onsets": [p0.time_epoch_s - 0.8]}}
    seeded = PhaseStage(StageParams(), model=model, pick_memory_state=json.loads(json.dumps(state)))
    again = [p for pk in packets for p in seeded.process(pk)[1]]
    assert p0.pick_id not in {p.pick_id for p in again}
    assert {p.pick_id for p in got} - {p.pick_id for p in again} == {p0.pick_id}


def test_statefile_keeps_the_pick_memory(tmp_path):
    from stream.ingest import load_pick_memory, load_statefile, save_statefile

    path = str(tmp_path / "state.json")
    memory = {"FM.S001..HHZ": {"done_s": 1.7e9, "recent": {"P": [1.7e9], "S": []},
                               "onsets": [1.7e9 - 0.02]}}  # fmt: skip
    save_statefile(path, {}, {"FM.S001..HHZ": 1.7e9}, {}, memory)
    assert load_pick_memory(path) == memory
    assert load_statefile(path)[1] == {"FM.S001..HHZ": 1.7e9}
    # a statefile written before the key was named "pick_memory" is read too
    data = json.loads(Path(path).read_text())
    data["second_looks"] = data.pop("pick_memory")
    Path(path).write_text(json.dumps(data))
    assert load_pick_memory(path) == memory
    save_statefile(path, {}, {}, {})
    assert load_pick_memory(path) == {}
    assert load_pick_memory(str(tmp_path / "none.json")) == {}


def test_second_look_settings_are_checked():
    with pytest.raises(ValueError, match="second_look"):
        PickerParams(second_look_s=2.0)  # inside tail + overlap + min separation
    with pytest.raises(ValueError, match="second_look"):
        PickerParams(second_look_s=30.0)  # a whole window
    assert PickerParams(second_look_s=0.0).second_look_s == 0.0


# --------------------------------------------------------------------------- hot stride, settling


def test_hot_window_is_followed_by_one_a_hot_stride_later_and_the_chain_ends_on_the_stride():
    from stream.picker import accepted_region, is_hot, next_window_start

    p = PickerParams()  # stride 2 s, hot stride 0.5 s
    quiet, rising = np.zeros((3, p.window_n)), np.zeros((3, p.window_n))
    quiet[0] = rising[0] = 1.0
    rising[1, -20] = p.hot_p  # P probability reaching hot_p in the window's last tail_s
    assert not is_hot(quiet, p) and is_hot(rising, p)
    early = np.zeros((3, p.window_n))
    early[1, -p.tail_n - 10] = 0.9  # already accepted: not what makes a window hot
    assert not is_hot(early, p)
    assert next_window_start(400, False, p) == 600
    chain = [400]
    while len(chain) < 10:
        chain.append(next_window_start(chain[-1], True, p))
    assert chain[:5] == [400, 450, 500, 550, 600]  # the chain meets the stride grid
    # accepted regions of the run windows tile the grid: each starts overlap_s before the
    # previous one ends
    for prev, cur in zip(chain, chain[1:], strict=False):
        lo, hi = accepted_region(cur, 0, p, prev)
        assert hi - lo == (cur - prev) + p.overlap_n
        assert lo + p.overlap_n == accepted_region(prev, 0, p)[1]
    assert not is_hot(rising, PickerParams(hot_stride_s=0.0))
    with pytest.raises(ValueError, match="multiple"):
        PickerParams(stride_s=2.0, hot_stride_s=0.3)


def test_hot_windows_run_around_arrivals_only_and_packets_still_give_one_pass(model, scenario):
    st, rows = scenario
    hot, off = StageParams(), StageParams(picker_params=PickerParams(hot_stride_s=0.0))
    packets = _packets(st, seed=3)
    runs, when = {}, {}
    for name, params in (("hot", hot), ("off", off)):
        stage = PhaseStage(params, model=model)
        got = []
        for i, pk in enumerate(packets):
            for p in stage.process(pk)[1]:
                got.append(p)
                when[name, p.station_id, p.phase, round(p.time_epoch_s, 1)] = i
        runs[name] = (stage.windows_run, got)
    # the hot stride adds windows (around the event's arrivals) but few: quiet stations keep
    # the stride; the packets give the picks of one pass with the hot stride too
    assert runs["off"][0] < runs["hot"][0] < 1.5 * runs["off"][0]
    # the same arrivals picked (clear P sooner, from a hot window, at a nearby time)
    count = {n: sorted((p.station_id, p.phase) for p in runs[n][1]) for n in runs}
    assert count["hot"] == count["off"]
    sooner = 0
    for p in runs["hot"][1]:
        same = [i for (n, sid, ph, t), i in when.items()
                if n == "off" and sid == p.station_id and ph == p.phase
                and abs(t - p.time_epoch_s) < 0.5]  # fmt: skip
        assert len(same) == 1
        i_hot = when["hot", p.station_id, p.phase, round(p.time_epoch_s, 1)]
        assert i_hot <= same[0]
        sooner += i_hot < same[0]
        if i_hot < same[0]:
            assert p.phase == "P" and p.probability >= hot.picker_params.hot_pick_p
    assert sooner > 0
    one = []
    for s in rows:
        one += [(s["station_id"], p.phase, round(p.time_epoch_s, 4))
                for p in pick_traces(model, _station_traces(st, s["station_id"]))]  # fmt: skip
    got = runs["hot"][1]
    assert sorted(one) == sorted((p.station_id, p.phase, round(p.time_epoch_s, 4)) for p in got)
    assert np.sum(_errors(got, rows, "P") <= 0.15) == len(rows)


def test_p_picks_settle_when_the_vertical_holds_their_gate_window_whatever_the_tail(
    model, scenario
):
    """With a short tail a P pick is found before the vertical holds the 1 s after it that its
    refinement and SNR gate read: it waits for those samples, and the picks equal one pass."""
    st, rows = scenario
    params = PickerParams(tail_s=0.5)
    one = []
    for s in rows:
        traces = _station_traces(st, s["station_id"])
        one += [(s["station_id"], p.phase, round(p.time_epoch_s, 4))
                for p in pick_traces(model, traces, params)]  # fmt: skip
    stage = PhaseStage(StageParams(picker_params=params), model=model)
    got, waited = [], 0
    for pk in _packets(st, seed=5):
        got += stage.process(pk)[1]
        waited += sum(len(x.settling) for x in stage.stations.values())
    assert waited > 0  # some P picks did wait for their samples
    assert sorted(one) == sorted((p.station_id, p.phase, round(p.time_epoch_s, 4)) for p in got)


def test_stalta_onsets_find_an_onset_in_the_coda_of_a_larger_one():
    """A second earthquake's onset 4 s into the first one's decaying coda (where PhaseNet
    gives such onsets almost nothing, docs/swarm.md): both onsets are found, none before."""
    from stream.picker import stalta_onsets

    rng = np.random.default_rng(3)
    n = 3000
    t = np.arange(n) / 100.0
    z = rng.normal(0.0, 1.0, n)
    for onset, amp in ((15.0, 400.0), (19.0, 600.0)):
        after = t >= onset
        z[after] += amp * np.exp(-(t[after] - onset) / 1.5) * rng.normal(0.0, 1.0, after.sum())
    found = stalta_onsets(z, 3.0, 0, n - 200)
    assert any(abs(k / 100.0 - 15.0) <= 0.15 for k, _ in found), found
    assert any(abs(k / 100.0 - 19.0) <= 0.15 for k, _ in found), found
    assert not any(k / 100.0 < 14.5 for k, _ in found)  # noise alone: no onset
    assert stalta_onsets(np.zeros(n), 3.0, 0, n) == []  # a flat channel has none


def test_candidate_onsets_are_flagged_and_kept_apart_from_picks():
    """P peaks in [candidate_p, p_threshold) become candidate onsets, except within
    min_separation_s of a pick; peaks above the threshold stay picks, below candidate_p
    nothing."""
    from stream.picker import candidate_picks, picks_in_window

    params = PickerParams(candidate_p=0.1, candidate_stalta=0.0)
    prob = np.zeros((3, params.window_n))
    for index, p in ((1000, 0.5), (1050, 0.2), (2000, 0.2), (2500, 0.05)):
        prob[1, index - 5 : index + 6] = p * np.hanning(11)
        prob[1, index] = p
    last: dict[str, float] = {}
    found = picks_in_window(prob, 0, 0, 0, params, last)
    cands = candidate_picks(prob, np.zeros(params.window_n), 0, 0, 0, params, last, found)
    assert [(sp.grid_index, sp.candidate) for sp in found] == [(1000.0, "")]
    assert [(round(sp.grid_index), sp.candidate) for sp in cands] == [(2000, "phasenet")]
    assert cands[0].probability == pytest.approx(0.2)
    assert last["Pc"] == pytest.approx(20.0)
    # off: none
    off = PickerParams(candidate_p=0.0, candidate_stalta=0.0)
    assert not off.candidates
    with pytest.raises(ValueError):
        PickerParams(candidate_p=0.3)  # must be below p_threshold


def test_an_onset_read_more_as_s_than_as_p_gives_no_p_pick_or_candidate():
    """One onset has one phase: a P peak with more S probability than its own within
    PS_SAME_ONSET_S is the S onset (no P pick, no candidate, in the first pass and the second
    look); a P peak with a weaker S beside it stays a P pick."""
    from stream.picker import (
        PS_SAME_ONSET_S,
        candidate_picks,
        picks_in_window,
        second_look_picks,
        second_look_region,
    )

    params = PickerParams(candidate_p=0.1, candidate_stalta=0.0)
    near = int(round(PS_SAME_ONSET_S * 100)) - 5  # grid samples inside the bound
    lo, hi = second_look_region(0, params)

    def peaks(rows):
        prob = np.zeros((3, params.window_n))
        for row, index, p in rows:
            prob[row, index - 5 : index + 6] = np.maximum(
                prob[row, index - 5 : index + 6], p * np.hanning(11)
            )
            prob[row, index] = p
        return prob

    assert (lo, hi) == (950, 1200)  # the second look's region of this window
    rows = [(1, 300, 0.5), (1, 1500, 0.6), (2, 1500 + near, 0.9), (1, 2000, 0.8),
            (2, 2000 + near, 0.5), (1, 2500, 0.2), (2, 2500 - near, 0.8),
            (1, lo + 100, 0.6), (2, lo + 100 + near, 0.95)]  # fmt: skip
    prob = peaks(rows)
    last: dict[str, float] = {}
    found = picks_in_window(prob, 0, 0, 0, params, last)
    p_picks = [round(sp.grid_index) for sp in found if sp.phase == "P"]
    s_picks = [round(sp.grid_index) for sp in found if sp.phase == "S"]
    assert 300 in p_picks and 2000 in p_picks
    assert 1500 not in p_picks and lo + 100 not in p_picks
    assert {1500 + near, 2000 + near} <= set(s_picks)
    cands = candidate_picks(prob, np.zeros(params.window_n), 0, 0, 0, params, last, found)
    assert all(abs(sp.grid_index - 2500) > 50 for sp in cands), cands
    late = second_look_picks(prob, 0, 0, params, {})
    assert [sp.phase for sp in late if abs(sp.grid_index - lo - 100) < 5] == []
    assert [sp.phase for sp in late if abs(sp.grid_index - lo - 100 - near) < 5] == ["S"]
    # without the S beside it, the same P peak is a pick
    alone = peaks([r for r in rows if r[1] not in (1500 + near, 2500 - near)])
    assert 1500 in [round(sp.grid_index) for sp in picks_in_window(alone, 0, 0, 0, params, {})]
    assert [round(sp.grid_index) for sp in candidate_picks(
        alone, np.zeros(params.window_n), 0, 0, 0, params, {}, [])] == [2500]  # fmt: skip


LOOSE = PickerParams(candidate_p=0.05, candidate_stalta=2.0, candidate_min_snr=0.0)


def test_candidate_onsets_of_packets_in_any_cut_equal_one_pass(model, scenario):
    st, rows = scenario
    one = []
    for s in rows:
        traces = _station_traces(st, s["station_id"])
        one += [(s["station_id"], p.phase, bool(p.candidate), round(p.time_epoch_s, 4))
                for p in pick_traces(model, traces, LOOSE)]  # fmt: skip
    assert sum(c for _, _, c, _ in one) >= 3  # candidates to compare
    stage = PhaseStage(StageParams(picker_params=LOOSE), model=model)
    got = []
    for packet in _packets(st, seed=6):
        got += stage.process(packet)[1]
    assert sorted(one) == sorted(
        (p.station_id, p.phase, p.candidate, round(p.time_epoch_s, 4)) for p in got
    )
    assert stage.candidate_picks == sum(p.candidate for p in got)
    assert all(":Pc:" in p.pick_id and p.phase == "P" for p in got if p.candidate)
    # a candidate and a pick of one station are more than min_separation_s apart
    for sid in {p.station_id for p in got}:
        cand = [p.time_epoch_s for p in got if p.station_id == sid and p.candidate]
        real = [p.time_epoch_s for p in got if p.station_id == sid and p.phase == "P"
                and not p.candidate]  # fmt: skip
        assert all(abs(a - b) > LOOSE.min_separation_s for a in cand for b in real)


@pytest.mark.parametrize("candidates", [True, False])
def test_restart_late_in_a_record_repeats_no_second_look_and_keeps_candidates(
    model, scenario, candidates
):
    """A checkpoint 40 s into the record: the restarted stage re-runs the windows after it,
    whose second looks ran before the restart (the statefile keeps the last one); before,
    their second looks published picks again."""
    st, _ = scenario
    packets = _packets(st, seed=8)
    off = PickerParams(candidate_p=0.0, candidate_stalta=0.0)
    params = StageParams(picker_params=LOOSE if candidates else off)
    whole = PhaseStage(params, model=model)
    want = sorted(p.pick_id for pk in packets for p in whole.process(pk)[1])
    first = PhaseStage(params, model=model)
    t0 = min(p.start_ns for p in packets)
    checkpoint_ns = t0 + int(40e9)
    stop_ns = checkpoint_ns + int(first.warmup_s() * 1e9)
    published, snaps, resume_ns = [], {}, {}
    for pk in packets:
        if pk.end_ns > stop_ns:
            break
        published += first.process(pk)[1]
        if pk.end_ns <= checkpoint_ns:
            snaps[pk.seed_id] = json.loads(json.dumps(first.snapshot(pk.seed_id)))
            resume_ns[pk.seed_id] = pk.end_ns
    if candidates:
        assert any(k.endswith("|Pc") for k in first.last_pick_epoch_s)  # in the statefile
    again = PhaseStage(
        params, model=model, resume_channels=snaps,
        last_pick_epoch_s=json.loads(json.dumps(first.last_pick_epoch_s)),
        pick_memory_state=json.loads(json.dumps(first.pick_memory)),
    )  # fmt: skip
    for pk in packets:
        if pk.start_ns >= resume_ns.get(pk.seed_id, 0):
            published += again.process(pk)[1]
    assert sorted(p.pick_id for p in published) == want
    assert any(":Pc:" in pid for pid in want) == candidates
    # a statefile of another candidate setting is not resumed (the settings key differs)
    other = PhaseStage(StageParams(), model=model)
    assert other._params_key() != whole._params_key()


def _noise_window(seed: int):
    """(params, window length, an onset in the first pass's accepted region, a (3, n) window
    of unit noise, samples from the onset on, the generator)."""
    rng = np.random.default_rng(seed)
    params = PickerParams()
    n, onset = params.window_n, params.window_n - 200
    return params, n, onset, rng.standard_normal((3, n)), np.arange(n - onset), rng


def test_s_gate_needs_an_energy_jump_on_the_horizontals():
    """An S peak is kept only where a horizontal's 1-20 Hz energy jumps at it (the P gate's
    measure and value); a vertical-only window is measured on the vertical."""
    from stream.picker import picks_in_window, s_onset_snr

    params, n, onset, window, t, rng = _noise_window(5)
    burst = 20 * np.sin(2 * np.pi * 4 * t / 100.0) * np.exp(-t / 150)
    with_s = window.copy()
    with_s[0, onset:] += burst  # the S moves the E component
    assert s_onset_snr(with_s, onset) > 3.0
    assert s_onset_snr(window, onset) < 1.5
    z_only = np.stack([np.zeros(n), np.zeros(n), with_s[0]])
    assert s_onset_snr(z_only, onset) > 3.0  # no horizontals: the vertical
    dead = z_only + np.array([[5.0], [-3.0], [0.0]])  # flat, not zero: dead horizontals
    assert s_onset_snr(dead, onset) == s_onset_snr(z_only, onset)
    gap = with_s.copy()
    gap[0, onset + 50] = np.nan  # a NaN in the measured span: never dropped for it
    assert s_onset_snr(gap, onset) == np.inf
    prob = np.zeros((3, n), np.float32)
    prob[0] = 1.0
    prob[2, onset - 10 : onset + 11] = np.hanning(21) * 0.8
    prob[0] -= prob[2]

    def s_picks(w, p=params):
        found = picks_in_window(prob, 0, 0, 0, p, {}, None, w)
        return [sp for sp in found if sp.phase == "S"]

    assert len(s_picks(with_s)) == 1 and abs(s_picks(with_s)[0].grid_index - onset) <= 1
    assert s_picks(window) == []  # noise: dropped
    assert len(s_picks(window, PickerParams(s_min_snr=0.0))) == 1  # gate off
    assert len(s_picks(None)) == 1  # without the samples: never dropped
    with pytest.raises(ValueError, match="s_min_snr"):
        PickerParams(s_min_snr=-1.0)


def test_a_p_peak_on_a_horizontal_onset_is_an_s_not_a_p():
    """Polarization: a P arrives steeply and moves the vertical most (free-surface P:
    horizontal / vertical = tan of the incidence), an S moves the horizontals. A PhaseNet P
    peak on an onset that raises the horizontals more than ``p_max_hv`` (3) times the
    vertical is not a P pick (PhaseNet takes the S for a P where it missed a weak P); an
    onset in an S coda is judged by what it adds; a vertical copied into the horizontals
    (sqrt 2) and a window without the samples are never dropped."""
    from stream.picker import onset_hv_ratio, picks_in_window

    params, n, onset, noise, t, rng = _noise_window(8)
    pulse = 40 * np.sin(2 * np.pi * 6 * t / 100.0) * np.exp(-t / 40)

    def arrival(e, nn, z, base=noise):
        w = base.copy()
        w[:, onset:] += np.array([[e], [nn], [z]]) * pulse
        return w

    incidence = np.radians(20.0)
    p_wave = arrival(0.6 * np.tan(incidence), 0.8 * np.tan(incidence), 1.0)
    s_wave = arrival(0.8, 0.6, 0.15)
    assert onset_hv_ratio(p_wave, onset) == pytest.approx(np.tan(incidence), rel=0.15)
    assert onset_hv_ratio(s_wave, onset) == pytest.approx(1 / 0.15, rel=0.15)
    # an S coda (horizontals ringing at 30 noise sigmas) with a P arriving in it
    coda = noise.copy()
    coda[:2, onset - 300 :] += 30 * rng.standard_normal((2, n - onset + 300))
    assert onset_hv_ratio(arrival(0.2, 0.2, 1.0, coda), onset) < 2.0  # 1.27: not an S
    copied = arrival(1.0, 1.0, 1.0, np.repeat(noise[2:], 3, axis=0))
    assert onset_hv_ratio(copied, onset) == pytest.approx(np.sqrt(2), rel=0.05)
    nan = s_wave.copy()
    nan[1, onset + 10] = np.nan
    assert np.isnan(onset_hv_ratio(nan, onset))
    assert np.isnan(onset_hv_ratio(s_wave[:, : onset + 10], onset))  # not enough after it

    prob = np.zeros((3, n), np.float32)
    prob[1, onset - 10 : onset + 11] = np.hanning(21) * 0.95
    prob[0] = 1.0 - prob[1]

    def p_picks(w, p=params):
        return [sp for sp in picks_in_window(prob, 0, 0, 0, p, {}, None, w) if sp.phase == "P"]

    assert len(p_picks(p_wave)) == 1 and len(p_picks(copied)) == 1
    assert p_picks(s_wave) == []  # the S PhaseNet took for a P
    assert len(p_picks(s_wave, PickerParams(p_max_hv=0.0))) == 1  # check off
    assert len(p_picks(None)) == 1 and len(p_picks(nan)) == 1
    with pytest.raises(ValueError, match="p_max_hv"):
        PickerParams(p_max_hv=-1.0)
