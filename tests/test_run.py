"""``firstmotion run``: the supervised process tree (real processes, real Redis)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from firstmotion.redis_server import free_port
from firstmotion.run import STAGES, stage_commands


def test_stage_commands_give_each_stage_its_own_port():
    cmds = dict(stage_commands(Path("f.toml"), list(STAGES), 9300, polarity_replicas=2))
    assert list(cmds) == [
        "stream", "polarity-0", "polarity-1", "associate", "mechanism", "catalog", "stress",
    ]  # fmt: skip
    assert "--metrics-port" not in cmds["stream"]  # the stream serves on metrics.port itself
    ports = [
        int(argv[argv.index("--metrics-port") + 1]) for n, argv in cmds.items() if n != "stream"
    ]
    assert ports == [9301, 9302, 9303, 9304, 9305, 9306]
    assert cmds["mechanism"][-4:-2] == ["--config", "f.toml"]
    # a subset keeps the same ports, so dashboards do not move when a stage runs elsewhere
    sub = dict(stage_commands(Path("f.toml"), ["catalog"], 9300, polarity_replicas=2))
    assert sub["catalog"][-1] == "9305"
    assert not any("--velocity-model" in argv for argv in cmds.values())


@pytest.mark.timeout(30)  # a model taken as good starts the stages, which run until stopped
def test_run_gives_the_model_and_delays_to_the_associator_and_refuses_bad_ones(tmp_path, capsys):
    from firstmotion import cli

    model = Path("/models/network.txt")
    cmds = dict(stage_commands(Path("f.toml"), list(STAGES), 9300, 1, velocity_model=model))
    assert cmds["associate"][-2:] == ["--velocity-model", str(model)]
    assert [n for n, argv in cmds.items() if "--velocity-model" in argv] == ["associate"]
    config = tmp_path / "f.toml"
    config.write_text('[redis]\nurl = "redis://127.0.0.1:1/0"\n')
    bad = tmp_path / "model.txt"
    bad.write_text("0 5500 3200\n2000 6300 3600\n")  # m/s, not km/s
    assert cli.main(["run", "--config", str(config), "--velocity-model", str(bad)]) == 2
    assert f"{bad}: velocity model Vp up to 6300: velocities must be km/s" in (
        capsys.readouterr().err
    )
    delays = Path("/models/delays.csv")
    cmds = dict(stage_commands(Path("f.toml"), list(STAGES), 9300, 1, station_delays=delays))
    assert cmds["associate"][-2:] == ["--station-delays", str(delays)]
    assert [n for n, argv in cmds.items() if "--station-delays" in argv] == ["associate"]
    assert cli.main(["run", "--config", str(config), "--station-delays", str(bad)]) == 2
    assert f"{bad}: not a delay CSV" in capsys.readouterr().err


def test_run_refuses_a_catalog_page_on_a_stage_metrics_port(tmp_path, capsys):
    """catalog.web_port on one of the metrics ports run hands out (metrics.port and the next
    ones): the stage given it crash-looped on 'Address already in use'; now run says so
    before starting anything."""
    from firstmotion import cli

    config = tmp_path / "f.toml"
    config.write_text('[redis]\nurl = "redis://127.0.0.1:1/0"\n[metrics]\nport = 19400\n'
                      "[catalog]\nweb_port = 19401\n")  # fmt: skip
    assert cli.main(["run", "--config", str(config)]) == 1
    assert "catalog.web_port 19401 is the metrics port run gives the polarity stage" in (
        capsys.readouterr().out
    )


def _wait_http(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(url)


def _children(proc: psutil.Process, stage: str) -> list[psutil.Process]:
    out = []
    for child in proc.children():
        try:
            if stage in child.cmdline():
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.timeout(120)
def test_run_restarts_a_dead_stage_and_stops_everything_on_sigterm(tmp_path, redis_url):
    base = free_port()
    config = tmp_path / "firstmotion.toml"
    config.write_text(
        f'[redis]\nurl = "{redis_url}"\n[metrics]\nport = {base}\n'
        f"[catalog]\nweb_port = {free_port()}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "firstmotion.cli", "run", "--config", str(config),
         "--stages", "mechanism,catalog", "--grace-s", "20"],
    )  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{base + 3}/healthz", 60)  # mechanism
        _wait_http(f"http://127.0.0.1:{base + 4}/healthz", 60)  # catalog
        sup = psutil.Process(proc.pid)
        (first,) = _children(sup, "mechanism")
        first.kill()  # a crash: the supervisor must bring the stage back
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = [c for c in _children(sup, "mechanism") if c.pid != first.pid]
            if now:
                break
            time.sleep(0.2)
        assert now, "the killed stage was not restarted"
        _wait_http(f"http://127.0.0.1:{base + 3}/healthz", 60)
        kids = sup.children()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
        gone, alive = psutil.wait_procs(kids, timeout=5)
        assert not alive, f"stages left running: {alive}"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_refuses_a_bad_config_before_starting_anything(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[redis]\nurl = "redis://127.0.0.1:1/0"\n[metrics]\nport = "x"\n')
    out = subprocess.run(
        [sys.executable, "-m", "firstmotion.cli", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "metrics.port" in out.stderr
