"""Every stage its own process on a real Redis, as ``firstmotion demo`` runs them: for the
benchmarks that time or watch the whole chain (``bench_mechanism_latency.py``, ``soak.py``)."""

from __future__ import annotations

import argparse
import glob
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path


def add_scenario_arguments(
    ap: argparse.ArgumentParser, *, n_events: int, duration_s: float, speed: float, seed: int
) -> None:
    """The scenario and replay options these benchmarks share (30 stations by default), with
    each benchmark's own defaults, and ``--config`` for the stages."""
    ap.add_argument("--n-stations", type=int, default=30)
    ap.add_argument("--n-events", type=int, default=n_events)
    ap.add_argument("--duration-s", type=float, default=duration_s)
    ap.add_argument("--speed", type=float, default=speed)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--config", help="a TOML config for the stages (e.g. [detect] settings)")


def write_scenario_files(args: argparse.Namespace, out: Path) -> list[str]:
    """The scenario of ``args`` (:func:`add_scenario_arguments`; a 60 km region) written to
    ``out``; its miniSEED files, sorted."""
    from stream.scenario import ScenarioConfig, make_scenario, write_scenario

    cfg = ScenarioConfig(
        n_stations=args.n_stations, n_events=args.n_events, duration_s=args.duration_s,
        region_km=60.0, seed=args.seed,
    )  # fmt: skip
    write_scenario(make_scenario(cfg), str(out))
    return sorted(glob.glob(f"{out}/mseed/*.mseed"))


def warn_tracebacks(out: Path, names) -> None:
    """Print the end of each stage's log (``out/<name>.log``) that holds a traceback."""
    for name in names:
        log = out / f"{name}.log"
        if "Traceback" in log.read_text(errors="replace"):
            print(f"warning: {name} logged a traceback:\n{log.read_text()[-1500:]}")


def start_stages(
    stack: ExitStack,
    redis_url: str,
    inventory: str,
    out: Path,
    replay,
    conf: list[str],
    *,
    exit_when_idle_s: float = 5.0,
    warm_up_s: float = 15.0,
) -> dict[str, subprocess.Popen]:
    """The polarity, associate, mechanism and catalog workers (each logging to
    ``out/<name>.log``, terminated when ``stack`` closes), then, once they have had
    ``warm_up_s`` to load their models, the replay server ``replay`` (a
    :class:`stream.replay.ReplayThread`) and ``firstmotion stream`` reading it with the
    learned picker on every component. Returns the processes by stage name."""
    from firstmotion.demo import _cli, _free_port, _process

    workers = {
        "polarity": _cli("worker", "polarity", "--redis", redis_url, *conf),
        "associate": _cli("worker", "associate", "--redis", redis_url,
                          "--inventory", inventory, *conf),
        "mechanism": _cli("worker", "mechanism", "--redis", redis_url, *conf),
        "catalog": _cli("worker", "catalog", "--redis", redis_url,
                        "--web-port", str(_free_port()), "--inventory", inventory, *conf),
    }  # fmt: skip
    procs = {}
    for name, cmd in workers.items():
        procs[name] = stack.enter_context(
            _process([*cmd, "--metrics-port", str(_free_port())], out / f"{name}.log")
        )
    time.sleep(warm_up_s)
    host, port = replay.start()
    procs["stream"] = stack.enter_context(
        _process(
            [*_cli("stream", "--seedlink", f"{host}:{port}", "--streams", "*_*",
                   "--picker", "phasenet", "--inventory", inventory, "--redis", redis_url,
                   "--exit-when-idle-s", f"{exit_when_idle_s:g}",
                   "--metrics-port", str(_free_port()), *conf)],
            out / "stream.log",
        )
    )  # fmt: skip
    return procs
