"""The mechanism worker with S/P amplitude ratios, on a real Redis."""

import numpy as np
import pytest

from firstmotion.bus import Bus
from firstmotion.kagan import kagan_angle_deg
from firstmotion.messages import Arrival, Origin, Pick, Polarity
from firstmotion.radiation import p_polarity
from workers.mechanism.amplitude import predicted_log_ratio
from workers.mechanism.worker import MechanismWorker, WorkerParams

TRUTH = (200.0, 45.0, 90.0)
T0 = 1.7e9
N = 12


def _geometry():
    rng = np.random.default_rng(3)
    return np.sort(rng.uniform(0, 360, N)), rng.uniform(95, 150, N)


def _pick(pid, sid, phase, t, amp, noise):
    return Pick(pick_id=pid, station_id=sid, phase=phase, time_epoch_s=t, sampling_rate_hz=100.0,
                start_time_epoch_s=t - 1.0, pick_index=100, samples=np.zeros(201, np.float32),
                snr=10.0, amplitude=amp, method="phasenet", vector_amplitude=amp,
                vector_noise=noise)  # fmt: skip


def _event(noisy=(), close=(), late=()):
    """12 stations with a P and an S arrival; P polarities; picks whose amplitudes make the
    truth's S/P ratio (log10 noise 0.1). Stations in ``noisy`` have an S barely above the
    noise, those in ``close`` an S 0.3 s after the P (inside the P amplitude window), those in
    ``late`` an S arrival 0.8 s behind its prediction (a mispick)."""
    az, to = _geometry()
    pol = p_polarity(*TRUTH, az, to)
    ratio = predicted_log_ratio(*TRUTH, az, to) + np.random.default_rng(4).normal(0, 0.1, N)
    arrivals, polarities, picks = [], [], []
    for k in range(N):
        sid = f"XX.S{k:02d}..HHZ"
        tp = T0 + 2 + 0.1 * k
        ts = tp + (0.3 if k in close else 1.5)
        p_id, s_id = f"{sid}:P:{tp:.3f}", f"{sid}:S:{ts:.3f}"
        for pid, phase in ((p_id, "P"), (s_id, "S")):
            res = 0.8 if phase == "S" and k in late else 0.05
            arrivals.append(Arrival(pick_id=pid, station_id=sid, phase=phase,
                                    azimuth_deg=float(az[k]), takeoff_deg=float(to[k]),
                                    distance_km=10.0, residual_s=res))  # fmt: skip
        probs = (0.95, 0.03, 0.02) if pol[k] > 0 else (0.03, 0.95, 0.02)
        polarities.append(Polarity(pick_id=p_id, station_id=sid, time_epoch_s=tp,
                                   polarity=int(pol[k]), probabilities=probs, confidence=0.95,
                                   model_version="test"))  # fmt: skip
        amp_p = 1000.0
        amp_s = amp_p * 10 ** ratio[k]
        noise = amp_s / 2.0 if k in noisy else 10.0
        picks += [_pick(p_id, sid, "P", tp, amp_p, noise), _pick(s_id, sid, "S", ts, amp_s, 5.0)]
    origin = Origin(event_id="ev1", revision=0, time_epoch_s=T0, latitude_deg=10.0,
                    longitude_deg=20.0, depth_km=5.0, arrivals=tuple(arrivals))  # fmt: skip
    return origin, polarities, picks


@pytest.fixture
def bus(redis_client, redis_url):
    b = Bus.from_url(redis_url)
    yield b
    b.close()


def _run(bus, params, origin, pols, picks, picks_first=True):
    if picks_first:
        for p in picks:
            bus.publish("picks", p)
    bus.publish("origins", origin)
    for p in pols:
        bus.publish("polarities", p)
    if not picks_first:
        for p in picks:
            bus.publish("picks", p)
    MechanismWorker(bus, params, name="w").run(drain=True, timeout_s=120)
    return [m for _, m in bus.messages("mechanisms")]


def test_ratios_are_used_when_enabled_and_narrow_the_solution(bus, redis_client):
    origin, pols, picks = _event()
    off = _run(bus, WorkerParams(), origin, pols, picks)[-1]
    assert off.n_sp_ratios == 0
    redis_client.flushall()
    on = _run(bus, WorkerParams(sp_ratios=True), origin, pols, picks)[-1]
    assert on.n_sp_ratios == N and on.n_polarities == N
    assert on.probability > off.probability + 0.2
    k_on = kagan_angle_deg(on.strike, on.dip, on.rake, *TRUTH)
    k_off = kagan_angle_deg(off.strike, off.dip, off.rake, *TRUTH)
    assert k_on < k_off and k_on < 20.0


def test_picks_after_the_origin_revise_it_and_unusable_ratios_are_left_out(bus):
    origin, pols, picks = _event(noisy=(1, 2), close=(5,), late=(7,))
    params = WorkerParams(sp_ratios=True, revise_min_change_deg=0.0)
    ms = _run(bus, params, origin, pols, picks, picks_first=False)
    # S/N 2 < sp_ratmin 3 at two stations, an S inside the P window at a third, an S arrival
    # 0.8 s off its prediction at a fourth
    assert ms[-1].n_sp_ratios == N - 4
    assert ms[0].n_sp_ratios < ms[-1].n_sp_ratios  # the first solution came before the picks


def test_a_correction_shifts_every_ratio(bus, redis_client):
    origin, pols, picks = _event()
    stage = MechanismWorker(bus, WorkerParams(sp_ratios=True), name="w").stage
    bus.publish("origins", origin)
    for p in picks:
        bus.publish("picks", p)
    MechanismWorker(bus, WorkerParams(sp_ratios=True), name="w").run(drain=True, timeout_s=120)
    p_arr = sorted((a for a in origin.arrivals if a.phase == "P"), key=lambda a: a.pick_id)
    plain = stage.sp_log_ratios(origin, p_arr)
    shifted = MechanismWorker(
        bus, WorkerParams(sp_ratios=True, sp_correction_log10=0.25), name="w"
    ).stage.sp_log_ratios(origin, p_arr)
    assert len(plain) == N and plain.keys() == shifted.keys()
    for sid, v in plain.items():
        assert shifted[sid] == pytest.approx(v + 0.25)


def test_a_free_level_worker_is_blind_to_the_correction(bus, redis_client):
    """With ``sp_free_level`` the worker's mechanism is the same whatever correction its
    ratios carry (the level is the event's own); without it the correction moves it."""
    origin, pols, picks = _event()
    got = {}
    for free in (False, True):
        for corr in (0.0, 0.5):
            redis_client.flushall()
            params = WorkerParams(sp_ratios=True, sp_free_level=free, sp_correction_log10=corr)
            got[free, corr] = _run(bus, params, origin, pols, picks)[-1]
    for free in (False, True):
        assert all(m.n_sp_ratios == N for m in (got[free, 0.0], got[free, 0.5]))
    a, b = got[True, 0.0], got[True, 0.5]
    assert (a.strike, a.dip, a.rake, a.quality, a.probability) == (
        b.strike, b.dip, b.rake, b.quality, b.probability
    )  # fmt: skip
    c, d = got[False, 0.0], got[False, 0.5]
    assert (c.strike, c.dip, c.rake, c.probability) != (d.strike, d.dip, d.rake, d.probability)
