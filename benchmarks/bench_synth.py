"""Synthetic data speed: labelled P windows per second, and scenario build/write time.

Run from the repository root::

    .venv/bin/python benchmarks/bench_synth.py [--n 4000] [--repeats 3]

Timed in the same run:

* ``baseline``: the obviously-right per-window loop: for each window one
  :func:`firstmotion.synth.p_pulse` and one :func:`firstmotion.synth.ambient_noise` call
  (broadband, 40 s of noise generated per window, then cropped), summed;
* ``labelled_p_windows``: the batched generator (all four noise profiles, sensor responses,
  labels) for ``--n`` windows of 4 s at 100 Hz;
* ``make_scenario`` / ``write_scenario``: the default scenario (30 stations, 5 events, 600 s,
  100 Hz: 90 channels, 5.4 M samples) in memory, then to miniSEED/StationXML/QuakeML/JSON.

Printed: windows/s and the ratio to the baseline; scenario seconds and the real-time factor
(seconds of network data per second of work). Medians of ``--repeats``. The machine may be
shared with other jobs: rerun when quiet.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from firstmotion import synth
from stream.scenario import ScenarioConfig, make_scenario, write_scenario

FS, WINDOW = 100.0, 400


def baseline_windows(n: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((n, WINDOW), dtype=np.float32)
    for k in range(n):
        pulse = synth.p_pulse(
            WINDOW, FS, 2.0 + rng.normal(0, 0.05), float(np.exp(rng.uniform(0, 3))),
            float(np.exp(rng.uniform(np.log(0.005), np.log(0.05)))),
        )  # fmt: skip
        noise = synth.ambient_noise(int(40 * FS), FS, rng)[:WINDOW]
        out[k] = noise + rng.uniform(-10, 10) * pulse
    return out


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000, help="windows per timing")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n_base = max(args.n // 10, 50)
    t_base = _median_time(lambda: baseline_windows(n_base, rng), args.repeats) / n_base
    t_batch = (
        _median_time(lambda: synth.labelled_p_windows(args.n, FS, WINDOW, rng), args.repeats)
        / args.n
    )
    print(f"baseline per-window loop : {1 / t_base:10.0f} windows/s  (ratio 1.0)")
    print(
        f"labelled_p_windows       : {1 / t_batch:10.0f} windows/s  (ratio {t_base / t_batch:.1f})"
    )
    config = ScenarioConfig()
    t_make = _median_time(lambda: make_scenario(config), args.repeats)
    sc = make_scenario(config)
    with tempfile.TemporaryDirectory() as tmp:
        t_write = _median_time(lambda: write_scenario(sc, tmp), args.repeats)
    data_s = config.duration_s * config.n_stations
    print(
        f"make_scenario (30 st, 5 ev, 600 s): {t_make:6.2f} s  "
        f"({data_s / t_make:8.0f} station-seconds of 3-C data per second)"
    )
    print(f"write_scenario                    : {t_write:6.2f} s")


if __name__ == "__main__":
    main()
