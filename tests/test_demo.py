"""The whole pipeline, as ``make demo`` runs it: every stage its own process, real SeedLink
traffic from the replay server, a real Redis, and the live catalog checked against the truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from firstmotion.redis_server import free_port


@pytest.mark.timeout(400)
def test_demo_pipeline_finds_every_event_and_reads_polarities(tmp_path, redis_url):
    out = tmp_path / "demo"
    cmd = [
        sys.executable, "-m", "firstmotion.cli", "demo", "--out", str(out),
        "--seed", "3", "--n-stations", "16", "--n-events", "2", "--duration-s", "150",
        "--region-km", "50", "--speed", "20",
        "--metrics-port", str(free_port()), "--web-port", str(free_port()),
        "--report", str(out / "report.json"),
    ]  # fmt: skip
    env = {**os.environ, "REDIS_URL": redis_url}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=380, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 2
    assert all(r["detected"] for r in rows), proc.stdout[-2000:]
    correct = sum(r["polarity_correct"] for r in rows)
    wrong = sum(r["polarity_wrong"] for r in rows)
    assert correct >= 20 and wrong <= 0.1 * (correct + wrong), rows
    assert all("kagan_deg" in r and r["quality"] in "ABCD" for r in rows), rows
    assert (out / "demo.png").stat().st_size > 10_000
    assert "the live catalog against the scenario's truth" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert [e["event_id"] for e in report["events"]] == [r["event_id"] for r in rows]
    for e, r in zip(report["events"], rows, strict=True):
        assert e["detected"] and 0 <= e["origin_error_km"] < 25
        assert e["origin_error_km"] >= r["epicentre_error_km"]
        assert e["kagan_deg"] == r["kagan_deg"] and e["quality"] == r["quality"]
        assert e["n_polarities"] >= 8 and 0.9 <= e["polarity_accuracy"] <= 1
        assert e["latency_s"]["location_to_mechanism"] > 0
    s = report["summary"]
    assert s["n_true_events"] == 2 and s["n_detected"] == 2
    assert 0.5 < s["pick_recall"] <= 1 and s["n_picks"] > 20
    assert s["latency_s"]["first_pick_to_mechanism"]["n"] == 2
