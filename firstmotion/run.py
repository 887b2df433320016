"""``firstmotion run --config FILE``: every stage in one supervised process tree.

Each stage is its own ``firstmotion`` child process (exactly the command one would run by
hand, so a stage behaves the same under ``run``, under systemd or in a Kubernetes pod); they
meet only through SeedLink and Redis. The supervisor

* validates the configuration first (a bad file stops everything before anything starts);
* gives each stage its own metrics port: the stream gets ``metrics.port``, the workers the
  following ports in the order of :data:`STAGES` (polarity replicas one each);
* restarts a stage that exits unexpectedly, with exponential backoff (1 s doubling to 60 s,
  reset after 5 minutes of good running), and logs each exit with its status;
* on SIGTERM or SIGINT sends SIGTERM to every stage (each drains its batch in hand), waits up
  to ``--grace-s``, then kills what is left, and exits 0.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("firstmotion.run")

STAGES = ("stream", "polarity", "associate", "mechanism", "catalog", "stress")
BACKOFF_MAX_S = 60.0
HEALTHY_AFTER_S = 300.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="TOML configuration file")
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help=f"comma-separated subset of {','.join(STAGES)} (default: all)",
    )
    parser.add_argument(
        "--polarity-replicas", type=int, default=1, help="polarity worker processes"
    )
    parser.add_argument("--grace-s", type=float, default=30.0, help="shutdown grace period")
    parser.add_argument(
        "--velocity-model", type=Path, default=None,
        help="the network's 1-D model for the associator (overrides associate.velocity_model)",
    )  # fmt: skip
    parser.add_argument(
        "--station-delays", type=Path, default=None,
        help="the model's station delays for the associator (overrides "
             "associate.station_delays)",
    )  # fmt: skip


@dataclass
class Child:
    """One supervised stage process."""

    name: str
    command: list[str]
    proc: subprocess.Popen | None = None
    started_s: float = 0.0
    backoff_s: float = 1.0
    restarts: int = 0
    next_start_s: float = 0.0

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command)
        self.started_s = time.monotonic()
        log.info("started %s (pid %d): %s", self.name, self.proc.pid, " ".join(self.command))


def stage_commands(
    config: Path,
    stages: list[str],
    metrics_port: int,
    polarity_replicas: int,
    velocity_model: Path | None = None,
    station_delays: Path | None = None,
) -> list[tuple[str, list[str]]]:
    """``(name, argv)`` of every child; ports: stream on ``metrics_port``, workers after it;
    ``velocity_model`` and ``station_delays`` go to the associator (the one stage that
    traces rays)."""
    base = [sys.executable, "-m", "firstmotion.cli"]
    out: list[tuple[str, list[str]]] = []
    port = metrics_port
    for stage in STAGES:
        if stage not in stages:
            port += polarity_replicas if stage == "polarity" else 1
            continue
        if stage == "stream":
            out.append((stage, [*base, "stream", "--config", str(config)]))
            port += 1
            continue
        replicas = polarity_replicas if stage == "polarity" else 1
        for i in range(replicas):
            name = f"{stage}-{i}" if replicas > 1 else stage
            argv = [*base, "worker", stage, "--config", str(config), "--metrics-port", str(port)]
            if stage == "associate" and velocity_model is not None:
                argv += ["--velocity-model", str(velocity_model)]
            if stage == "associate" and station_delays is not None:
                argv += ["--station-delays", str(station_delays)]
            out.append((name, argv))
            port += 1
    return out


def supervise(children: list[Child], stop: threading.Event, grace_s: float) -> int:
    """Run the children until ``stop`` is set; restart the ones that die. Returns 0."""
    for child in children:
        child.start()
    while not stop.wait(0.5):
        now = time.monotonic()
        for child in children:
            if child.proc is None:
                if now >= child.next_start_s:
                    child.start()
                continue
            rc = child.proc.poll()
            if rc is None:
                if now - child.started_s > HEALTHY_AFTER_S:
                    child.backoff_s = 1.0
                continue
            child.restarts += 1
            log.error(
                "%s exited with status %s; restart %d in %.0f s",
                child.name,
                rc,
                child.restarts,
                child.backoff_s,
            )
            child.proc = None
            child.next_start_s = now + child.backoff_s
            child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)
    shutdown(children, grace_s)
    return 0


def shutdown(children: list[Child], grace_s: float) -> None:
    """SIGTERM every child, wait up to ``grace_s``, then SIGKILL what is left."""
    stop_processes({c.name: c.proc for c in children if c.proc is not None}, grace_s)


def stop_processes(procs: dict[str, subprocess.Popen], grace_s: float) -> None:
    """SIGTERM every live process, wait up to ``grace_s`` in all, then SIGKILL what is left."""
    live = {name: p for name, p in procs.items() if p.poll() is None}
    for proc in live.values():
        proc.terminate()
    deadline = time.monotonic() + grace_s
    for name, proc in live.items():
        try:
            proc.wait(max(deadline - time.monotonic(), 0.05))
            log.info("%s stopped (status %s)", name, proc.returncode)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", name, grace_s)
            proc.kill()
            proc.wait()


def run(args: argparse.Namespace) -> int:
    from firstmotion.config import load_settings

    settings = load_settings(args.config)  # raises ConfigError: the CLI prints it, exit 1
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown or not stages:
        print(f"firstmotion run: --stages: unknown {unknown}; choose from {list(STAGES)}")
        return 2
    if args.polarity_replicas < 1:
        print("firstmotion run: --polarity-replicas must be >= 1")
        return 2
    if not settings.redis.url:
        print("firstmotion run: redis.url is not set (config file or FIRSTMOTION_REDIS__URL)")
        return 1
    model = args.velocity_model
    if model is not None:  # a bad model stops everything before anything starts
        from firstmotion.velocity import VelocityModel

        model = model.resolve()
        VelocityModel.from_file(model)  # InputError / FileNotFoundError: the CLI says which
    delays = args.station_delays
    if delays is not None:  # as the model: checked before anything starts
        from firstmotion.station_delays import read_station_delays

        delays = delays.resolve()
        read_station_delays(delays)
    commands = stage_commands(
        args.config, stages, settings.metrics.port, args.polarity_replicas, model, delays
    )
    web = settings.catalog.web_port
    taken = {int(argv[argv.index("--metrics-port") + 1]): name
             for name, argv in commands if "--metrics-port" in argv}  # fmt: skip
    taken[settings.metrics.port] = "stream"
    if "catalog" in stages and web and settings.metrics.port and web in taken:
        print(f"firstmotion run: catalog.web_port {web} is the metrics port run gives the "
              f"{taken[web]} stage (metrics.port {settings.metrics.port} and the next "
              f"{len(commands) - 1}); move one of them")  # fmt: skip
        return 1
    children = [Child(name, argv) for name, argv in commands]
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping every stage", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return supervise(children, stop, args.grace_s)
