"""The polarity worker on a real Redis: batching, sharing, crash safety, bad windows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from polarity_cards import SHIPPED_CARD, tiny_card

from firstmotion import synth
from firstmotion.bus import Bus
from firstmotion.messages import Pick, make_pick_id
from firstmotion.metrics import registry
from workers.polarity import PolarityClassifier
from workers.polarity.model import PolarityCNN
from workers.polarity.worker import build_consumer

REPO = Path(__file__).resolve().parents[1]
SHIPPED = SHIPPED_CARD
PREFIX = "tp:"


def tiny_classifier() -> PolarityClassifier:
    torch.manual_seed(0)
    return PolarityClassifier(PolarityCNN(in_channels=2), tiny_card(), device="cpu")


def make_pick(i: int, *, rate: float = 100.0, sign: float = 1.0, bad: str = "") -> Pick:
    """An 8 s window with a P pulse at 5 s in broadband noise (SNR ~30)."""
    rng = np.random.default_rng(i)
    n = int(8 * rate)
    samples = sign * synth.p_pulse(n, rate, 5.0, 8.0, 0.01)
    samples = samples + synth.ambient_noise(n, rate, rng, profile="broadband", level=1 / 30)
    if bad == "nan":
        samples[int(5.05 * rate)] = np.nan
    elif bad == "zeros":
        samples[:] = 0.0
    station = f"XX.S{i:03d}..HHZ"
    t = 1.7e9 + i
    return Pick(
        pick_id=make_pick_id(station, t),
        station_id=station,
        time_epoch_s=t,
        sampling_rate_hz=rate,
        start_time_epoch_s=t - 5.0,
        pick_index=int(5 * rate),
        samples=samples,
        snr=30.0,
        amplitude=1.0,
    )


@pytest.fixture
def bus(redis_client, redis_url):
    b = Bus.from_url(redis_url, prefix=PREFIX)
    yield b
    b.close()


def outputs(bus: Bus) -> dict:
    return {m.pick_id: m for _, m in bus.messages("polarities")}


def test_worker_classifies_every_pick_and_acks(bus):
    picks = [make_pick(i, rate=100.0 if i % 2 else 200.0) for i in range(20)]
    fast = make_pick(23)  # 1 MHz: a rate no resampling reaches, said, not a retried failure
    fast = replace(fast, sampling_rate_hz=1e6, start_time_epoch_s=fast.time_epoch_s - 0.002,
                   samples=np.random.default_rng(23).normal(size=4000),
                   pick_index=2000)  # fmt: skip
    picks += [make_pick(20, bad="nan"), make_pick(21, bad="zeros"), make_pick(22, rate=20.0), fast]
    for p in picks:
        bus.publish("picks", p)
    consumer = build_consumer(bus, tiny_classifier(), max_batch=8, max_wait_ms=10, name="w1")
    assert consumer.run(drain=True, timeout_s=60) == len(picks)
    out = outputs(bus)
    assert set(out) == {p.pick_id for p in picks}
    assert bus.pending_count("picks", "polarity") == 0
    assert out[picks[20].pick_id].reason == "nan" and out[picks[20].pick_id].polarity == 0
    assert out[picks[21].pick_id].reason == "flat"
    assert out[picks[22].pick_id].reason == "rate_below_40_hz"
    assert out[picks[23].pick_id].reason == "rate_not_resamplable"
    assert bus.dead_letters() == []
    for m in out.values():
        assert abs(sum(m.probabilities) - 1.0) < 1e-5
        assert m.model_version
    reg = registry()
    assert reg.get_sample_value("firstmotion_polarity_windows_total", {"outcome": "bad"}) >= 3
    assert reg.get_sample_value("firstmotion_polarity_inference_seconds_count") >= 3
    assert reg.get_sample_value("firstmotion_polarity_queue_lag_seconds_count") >= len(picks)


def test_worker_acks_s_picks_without_reading_them(bus):
    from dataclasses import replace

    p_picks = [make_pick(i) for i in range(3)]
    s_picks = [replace(make_pick(10 + i), phase="S", pick_id=f"s{i}") for i in range(3)]
    for p in [p_picks[0], *s_picks, *p_picks[1:]]:
        bus.publish("picks", p)
    consumer = build_consumer(bus, tiny_classifier(), max_batch=8, max_wait_ms=10, name="w1")
    consumer.run(drain=True, timeout_s=60)
    assert set(outputs(bus)) == {p.pick_id for p in p_picks}
    assert bus.pending_count("picks", "polarity") == 0
    skipped = registry().get_sample_value(
        "firstmotion_polarity_windows_total", {"outcome": "not_p"}
    )
    assert skipped >= 3


def test_dynamic_batching_waits_to_fill_but_not_longer_than_max_wait(bus):
    for i in range(40):
        bus.publish("picks", make_pick(i))
    consumer = build_consumer(bus, tiny_classifier(), max_batch=16, max_wait_ms=200, name="w")
    assert consumer.run_once() == 16  # full batch available: no waiting needed
    for i in range(40, 43):
        bus.publish("picks", make_pick(i))
    consumer2 = build_consumer(bus, tiny_classifier(), max_batch=64, max_wait_ms=100, name="w2")
    t0 = time.monotonic()
    taken = consumer2.run_once()
    waited = time.monotonic() - t0
    assert taken == 40 - 16 + 3  # everything available, one batch
    assert waited < 5.0


def test_several_workers_share_the_load_without_duplicates(bus):
    n = 60
    for i in range(n):
        bus.publish("picks", make_pick(i))
    consumers = [
        build_consumer(bus, tiny_classifier(), max_batch=4, max_wait_ms=0, name=f"w{k}")
        for k in range(2)
    ]
    threads = [
        threading.Thread(target=c.run, kwargs={"drain": True, "timeout_s": 60}) for c in consumers
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert all(c.processed > 0 for c in consumers)
    assert sum(c.processed for c in consumers) == n
    ids = Counter(m.pick_id for _, m in bus.messages("polarities"))
    assert ids == Counter({make_pick(i).pick_id: 1 for i in range(n)})


CHILD = textwrap.dedent(
    """
    import sys, time
    from firstmotion.bus import Bus
    from tests.test_polarity_worker import tiny_classifier
    from workers.polarity.worker import build_consumer

    bus = Bus.from_url(sys.argv[1], prefix="tp:")
    c = build_consumer(bus, tiny_classifier(), max_batch=5, max_wait_ms=0, block_ms=200,
                       name="child")
    inner = c.handler

    def slow(batch):
        time.sleep(0.4)
        return inner(batch)

    c.handler = slow
    print("processed", c.run(), flush=True)
    """
)


def test_worker_killed_mid_batch_loses_nothing(bus, redis_url):
    n = 30
    for i in range(n):
        bus.publish("picks", make_pick(i))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "tests")]))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, redis_url],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if bus.length("polarities") >= 5 and bus.pending_count("picks", "polarity") > 0:
                break
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.02)
        else:
            pytest.fail("child worker never got going")
        proc.kill()  # SIGKILL mid-batch: no cleanup at all
        proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert bus.pending_count("picks", "polarity") > 0  # the batch it held, unacked
    survivor = build_consumer(bus, tiny_classifier(), max_batch=8, lease_ms=200, name="survivor")
    survivor.run(drain=True, timeout_s=60)
    ids = Counter(m.pick_id for _, m in bus.messages("polarities"))
    assert set(ids) == {make_pick(i).pick_id for i in range(n)}
    assert bus.pending_count("picks", "polarity") == 0


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_cli_drain_mode_with_a_model_file(bus, redis_url, tmp_path, capfd, precision):
    from firstmotion.cli import main

    torch.manual_seed(0)
    torch.save(PolarityCNN(in_channels=2).state_dict(), tmp_path / "m.pt")
    card = tiny_card()
    card["name"] = "m"
    (tmp_path / "m.json").write_text(json.dumps(card))
    for i in range(5):
        bus.publish("picks", make_pick(i))
    env_prefix = os.environ.get("FIRSTMOTION_REDIS__PREFIX")
    os.environ["FIRSTMOTION_REDIS__PREFIX"] = PREFIX
    try:
        rc = main(
            ["worker", "polarity", "--redis", redis_url, "--model", str(tmp_path / "m"), "--drain",
             "--precision", precision]
        )  # fmt: skip
    finally:
        if env_prefix is None:
            os.environ.pop("FIRSTMOTION_REDIS__PREFIX", None)
        else:
            os.environ["FIRSTMOTION_REDIS__PREFIX"] = env_prefix
    assert rc == 0
    assert len(outputs(bus)) == 5
    assert f"on cpu, {precision}" in capfd.readouterr().err


def test_shipped_model_worker_reads_clear_onsets(bus):
    if not SHIPPED.exists():
        pytest.skip("no shipped model in model_weights/")
    picks = [make_pick(i, sign=1.0 if i % 2 else -1.0) for i in range(16)]
    for p in picks:
        bus.publish("picks", p)
    consumer = build_consumer(bus, PolarityClassifier.load(device="cpu"), max_batch=16)
    consumer.run(drain=True, timeout_s=60)
    out = outputs(bus)
    got = np.array([out[p.pick_id].polarity for p in picks])
    want = np.array([1 if i % 2 else -1 for i in range(16)])
    assert np.mean(got == want) >= 0.9, got


def test_first_lobe_reads_are_published_and_counted_as_reads(bus, monkeypatch):
    """A read the card's first-lobe rule makes (the network left it unknown) goes out with
    its sign, the network's probabilities and reason ``first_lobe``, and counts as up."""
    clf = PolarityClassifier.load(str(SHIPPED.with_suffix("")), device="cpu")
    probs = np.array([0.3, 0.05, 0.65], dtype=np.float32)  # unknown wins, leans up
    monkeypatch.setattr(
        clf, "window_probabilities", lambda w, batch_size=1024: np.tile(probs, (len(w), 1))
    )
    pick = make_pick(0, sign=1.0)
    bus.publish("picks", pick)
    reg = registry()
    labels = {"outcome": "up"}
    before = reg.get_sample_value("firstmotion_polarity_windows_total", labels) or 0.0
    bad = reg.get_sample_value("firstmotion_polarity_windows_total", {"outcome": "bad"}) or 0.0
    consumer = build_consumer(bus, clf, max_batch=8, max_wait_ms=10, name="w-lobe")
    assert consumer.run(drain=True, timeout_s=60) == 1
    m = outputs(bus)[pick.pick_id]
    assert m.polarity == 1 and m.reason == "first_lobe", m
    assert m.first_lobe_sign == 1 and m.first_lobe_snr >= 12.0
    np.testing.assert_allclose(m.probabilities, probs, atol=1e-6)
    assert reg.get_sample_value("firstmotion_polarity_windows_total", labels) == before + 1
    assert (
        reg.get_sample_value("firstmotion_polarity_windows_total", {"outcome": "bad"}) or 0.0
    ) == bad


def test_worker_counts_every_read_reason_as_read_not_bad():
    """A window read but left unknown (low confidence, an evidence conflict) or read from its
    first lobe counts as up/down/unknown in the windows metric, never as a bad window."""
    from dataclasses import replace as dc_replace

    from workers.polarity.classifier import (
        READ_REASONS,
        REASON_EVIDENCE_CONFLICT,
        REASON_FIRST_LOBE,
        REASON_LOW_CONFIDENCE,
    )
    from workers.polarity.worker import PolarityHandler

    assert {REASON_EVIDENCE_CONFLICT, REASON_FIRST_LOBE, REASON_LOW_CONFIDENCE} <= set(READ_REASONS)
    reasons = [REASON_EVIDENCE_CONFLICT, REASON_FIRST_LOBE, REASON_LOW_CONFIDENCE, "nan"]

    class Relabelled:
        """The tiny classifier, its reasons replaced row by row."""

        def __init__(self) -> None:
            self.inner = tiny_classifier()
            self.card = self.inner.card

        def classify(self, data, rate, picks, **options):
            res = self.inner.classify(data, rate, picks, **options)
            return dc_replace(res, reason=np.array(reasons[: len(picks)]))

    from firstmotion.bus import Delivery

    handler = PolarityHandler(Relabelled())
    picks = [make_pick(100 + i) for i in range(4)]
    metric = handler.windows

    def count(outcome: str) -> float:
        return metric.labels(outcome=outcome)._value.get()

    before = {o: count(o) for o in ("up", "down", "unknown", "bad")}
    out = handler([Delivery(f"{i}-0", p, 1) for i, p in enumerate(picks)])
    assert [m.reason for _s, m in out] == reasons
    after = {o: count(o) - before[o] for o in before}
    assert after["bad"] == 1  # the NaN row only
    assert after["up"] + after["down"] + after["unknown"] == 3
