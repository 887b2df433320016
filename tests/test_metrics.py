"""Metrics registry, naming rules, and /metrics + /healthz scraped over HTTP."""

from __future__ import annotations

import json
import platform
import time
import urllib.error
import urllib.request

import pytest

from firstmotion import __version__
from firstmotion.metrics import (
    Health,
    age_check,
    counter,
    flag_check,
    gauge,
    redis_ping_check,
    registry,
    stage_metrics,
    start_http_server,
)


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read().decode()


def test_metrics_endpoint_serves_build_info_and_stage_series():
    m = stage_metrics("t_scrape")
    m.items_in.inc(7)
    m.batch_size.observe(7)
    m.last_processed.set(1234.5)
    with start_http_server(port=0) as server:
        assert server.host == "127.0.0.1"  # loopback by default
        code, ctype, body = get(server.url + "/metrics")
    assert code == 200 and ctype.startswith("text/plain")
    labels = f'python="{platform.python_version()}",version="{__version__}"'
    assert f"firstmotion_build_info{{{labels}}} 1.0" in body
    assert 'firstmotion_stage_items_in_total{stage="t_scrape"} 7.0' in body
    assert 'firstmotion_stage_batch_size_bucket{le="8.0",stage="t_scrape"} 1.0' in body
    assert 'firstmotion_stage_last_processed_timestamp_seconds{stage="t_scrape"} 1234.5' in body
    assert "_created" not in body
    # every series carries the project prefix: the registry is the project's own
    names = [ln.split("{")[0].split(" ")[0] for ln in body.splitlines() if not ln.startswith("#")]
    assert names and all(n.startswith("firstmotion_") for n in names)


def test_healthz_is_200_when_all_checks_pass_and_503_otherwise():
    health = Health()
    loaded = {"model": False}
    newest = {"t": time.time()}
    health.register("model_loaded", flag_check(lambda: loaded["model"], "fmnet"))
    health.register("newest_packet", age_check(lambda: newest["t"], max_age_s=60))
    with start_http_server(port=0, health=health) as server:
        code, ctype, body = get(server.url + "/healthz")
        assert code == 503 and ctype == "application/json"
        data = json.loads(body)
        assert data["status"] == "fail"
        assert data["checks"]["model_loaded"] == {"ok": False, "detail": "fmnet"}
        assert data["checks"]["newest_packet"]["ok"] is True
        loaded["model"] = True
        code, _, body = get(server.url + "/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"
        newest["t"] = time.time() - 3600
        code, _, body = get(server.url + "/healthz")
        assert code == 503
        assert json.loads(body)["checks"]["newest_packet"]["detail"]["age_s"] > 3000
        assert get(server.url + "/nope")[0] == 404


def test_a_check_that_raises_is_a_failed_check_with_its_error():
    health = Health()

    def broken():
        raise ConnectionError("redis down")

    health.register("redis", broken)
    ok, results = health.run()
    assert not ok
    assert results["redis"] == {"ok": False, "detail": "ConnectionError: redis down"}


def test_redis_ping_check_on_real_redis(redis_client):
    ok, results = Health().run()
    assert ok and results == {}  # no checks: healthy
    health = Health()
    health.register("redis", redis_ping_check(redis_client))
    assert health.run()[0]


def test_age_check_before_anything_arrived():
    ok, detail = age_check(lambda: None, 10)()
    assert not ok and detail == "nothing received yet"


def test_naming_rules_are_enforced():
    with pytest.raises(ValueError, match="counters end in _total"):
        counter("firstmotion_things", "x")
    with pytest.raises(ValueError, match="expected firstmotion_"):
        gauge("things_seconds", "x")
    with pytest.raises(ValueError, match="stage"):
        stage_metrics("XX.STA..HHZ")  # never an id as a label value
    c = counter("firstmotion_test_widgets_total", "widgets", ("outcome",))
    assert counter("firstmotion_test_widgets_total", "widgets", ("outcome",)) is c
    with pytest.raises(ValueError, match="already registered"):
        gauge("firstmotion_test_widgets_total", "widgets")
    c.labels(outcome="ok").inc()
    assert registry().get_sample_value("firstmotion_test_widgets_total", {"outcome": "ok"}) >= 1


def test_bad_port_is_refused():
    with pytest.raises(ValueError, match="metrics.port"):
        start_http_server(port=70000)
