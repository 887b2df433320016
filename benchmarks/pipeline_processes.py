"""Every stage its own process on a real Redis, as ``firstmotion demo`` runs them: for the
benchmarks that time or watch the whole chain (``bench_mechanism_latency.py``, ``soak.py``)."""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from pathlib import Path


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
