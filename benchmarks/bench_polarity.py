"""Polarity throughput: windows per second at batch 256, against a Ross-2018-sized CNN.

Run from the repository root::

    .venv/bin/python benchmarks/bench_polarity.py [--threads 2] [--model NAME_OR_PATH]

Timed in the same run, on the same threads:

* ``shipped, model only``: the shipped PolarityCNN on preprocessed windows, with the flip
  test-time augmentation (two forward passes per window), as served;
* ``shipped, classify()``: the full path from raw 100 Hz (and 200 Hz) rows of 8 s: windowing,
  demean, resampling, causal high-pass, normalisation, TTA, decision, the reading (noise
  rows, and rows with an onset of 2-50 noise sigmas at the pick, where the reads under 0.9
  confidence are read again with the pick moved, the shift check);
* ``window_probabilities()``: preprocessed windows to probabilities (TTA, temperature,
  softmax) as the classifier serves them, float32 and ``precision="bfloat16"`` (the network
  under :func:`torch.autocast`; same decisions as float32, see tests/test_polarity.py), and
  ``classify()`` in bf16 too (what ``precision="auto"``, the polarity worker's default,
  serves on a CPU with bfloat16 in hardware: the header says which this CPU gets);
* ``torch threads vs row threads``: the 100 Hz classify() rows read by one reader whose
  network runs on N torch threads (N = ``--threads``) and by ``PolarityClassifier(threads=N)``
  (blocks of rows read by N threads at once, each on one torch thread), alternated round by
  round (``--rounds``) so that the host's drift hits both alike;
* ``glitch repair on vs off``: the 100 Hz classify() rows read with the repair of one-sample
  glitches (``PolarityClassifier.despike``, the default) and without, alternated;
* ``Ross-2018-sized baseline``: :class:`workers.polarity.model.RossPolarityCNN` (400 samples,
  32/64/128 conv filters, two 512-unit dense layers) with the same TTA; the ratio
  ``shipped / baseline`` is printed.

On a CUDA device (when present) also, at batch 65,536: the model alone on device-resident
windows (bf16 autocast, TTA) and the served ``window_probabilities()`` path (numpy windows in,
probabilities out, host-device copies included) in float32 and bf16.
Each figure is the median of ``--repeats`` timed runs after warm-up (the first calls build
oneDNN primitives). The machine may be shared: rerun when quiet, and compare ``--threads 1``
with ``--threads 2``: when other processes hold a core, two intra-op threads wait on each other
at every layer (measured here: ~650 windows/s with 2 threads vs ~20,000 with 1 on the same
loaded machine), which is why the worker defaults to one thread and scales by replicas.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from workers.polarity import PolarityClassifier
from workers.polarity.classifier import resolve_precision
from workers.polarity.model import RossPolarityCNN, count_parameters


def timed(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def alternated(paths, n: int, repeats: int, rounds: int) -> list[float]:
    """Median windows/s (``n`` per call) of each ``(torch threads, fn)`` path over ``rounds``
    rounds, each path timed ``repeats`` calls per round on its own torch thread count."""
    rates: list[list[float]] = [[] for _ in paths]
    for _ in range(rounds):
        for (threads, fn), out in zip(paths, rates, strict=True):
            torch.set_num_threads(threads)
            out.append(n / timed(fn, repeats, warmup=1))
    return [statistics.median(r) for r in rates]


def tta_forward(model: torch.nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        model(x)
        model(-x)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=8, help="rounds of the alternated pair")
    parser.add_argument("--model", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    b = args.batch
    auto = resolve_precision("auto", torch.device("cpu"))
    print(
        f"torch {torch.__version__}, {args.threads} threads, batch {b}, "
        f"load average {os.getloadavg()[0]:.2f} (1 min); precision auto on this CPU: {auto}"
    )

    clf = PolarityClassifier.load(args.model, device="cpu")
    w = clf.config.window_samples
    ross = RossPolarityCNN().eval()
    shape = (b, w) if clf.config.n_channels == 1 else (b, clf.config.n_channels, w)
    windows = rng.standard_normal(shape).astype(np.float32)
    x_ship = torch.from_numpy(windows)
    x_ross = torch.randn(b, 400)
    print(
        f"shipped {clf.card['architecture']['class']} {count_parameters(clf.model):,} params, "
        f"{w} samples; baseline RossPolarityCNN {count_parameters(ross):,} params, 400 samples"
    )

    clf16 = PolarityClassifier(clf.model, clf.card, device="cpu", precision="bfloat16")
    rows = {}
    rows["shipped, model only (TTA)"] = b / timed(
        lambda: tta_forward(clf.model, x_ship), args.repeats
    )
    for name, c in (("float32", clf), ("bf16", clf16)):
        rows[f"shipped, window_probabilities(), {name}"] = b / timed(
            lambda c=c: c.window_probabilities(windows), args.repeats
        )
    rows["Ross-2018-sized baseline, model only (TTA)"] = b / timed(
        lambda: tta_forward(ross, x_ross), max(3, args.repeats // 4)
    )
    noise = {}
    for rate in (100.0, 200.0):
        raw = rng.standard_normal((b, int(8 * rate))) * 100.0
        picks = np.full(b, int(5 * rate))
        noise[rate] = (raw, picks)
        for name, c in (("", clf), (", bf16", clf16)):
            rows[f"shipped, classify() raw {rate:g} Hz rows{name}"] = b / timed(
                lambda raw=raw, picks=picks, rate=rate, c=c: c.classify(raw, rate, picks),
                args.repeats,
            )
    # rows with an onset at the pick (random sign, 2-50 noise sigmas): the reads the network
    # is unsure of are read twice more by the shift check (card reading.shift_check_s)
    raw = rng.standard_normal((b, 800))
    tail = np.exp(-np.arange(300) / 5.0) * np.sin(np.pi * np.arange(300) / 12.0)
    raw[:, 500:] += (rng.choice([-1.0, 1.0], b) * rng.uniform(2.0, 50.0, b))[:, None] * tail
    picks = np.full(b, 500)
    for name, c in (("", clf), (", bf16", clf16)):
        rows[f"shipped, classify() 100 Hz rows with onsets{name}"] = b / timed(
            lambda c=c: c.classify(raw, 100.0, picks), args.repeats
        )
    base = rows["Ross-2018-sized baseline, model only (TTA)"]
    print(f"{'path':<62} {'windows/s':>12} {'x baseline':>11}")
    for name, rate in rows.items():
        print(f"{name:<62} {rate:>12,.0f} {rate / base:>10.1f}x")

    # the glitch repair (PolarityClassifier.despike, on by default) against reading the rows
    # as given, alternated round by round on the same rows
    as_given = PolarityClassifier(clf.model, clf.card, device="cpu")
    as_given.despike = False
    print(f"classify(), glitch repair on vs off (alternated, {args.rounds} rounds, medians):")
    for label, (rr, pp) in (("raw 100 Hz rows", noise[100.0]),
                            ("100 Hz rows with onsets", (raw, picks))):  # fmt: skip
        on_rate, off_rate = alternated(
            [(args.threads, lambda rr=rr, pp=pp: clf.classify(rr, 100.0, pp)),
             (args.threads, lambda rr=rr, pp=pp: as_given.classify(rr, 100.0, pp))],
            b, max(3, args.repeats // 4), args.rounds,
        )  # fmt: skip
        print(f"  {label:<34} repair on {on_rate:>9,.0f}   off {off_rate:>9,.0f} windows/s   "
              f"({on_rate / off_rate:.2f}x)")  # fmt: skip

    if args.threads > 1:
        # the same rows read in blocks by `--threads` threads, each on one torch thread
        # (PolarityClassifier(threads=N), which sets torch's intra-op threads to 1), against
        # one reader on N torch threads, alternated round by round: the host's drift hits both
        print(f"classify(), {args.threads} torch threads vs {args.threads} row threads "
              f"(alternated, {args.rounds} rounds, medians):")  # fmt: skip
        for name, precision in (("float32", "float32"), ("bf16", "bfloat16")):
            served = clf if precision == "float32" else clf16
            rowed = PolarityClassifier(clf.model, clf.card, device="cpu", precision=precision,
                                       threads=args.threads)  # fmt: skip
            for label, (rr, pp) in (("raw 100 Hz rows", noise[100.0]),
                                    ("100 Hz rows with onsets", (raw, picks))):  # fmt: skip
                torch_rate, row_rate = alternated(
                    [(args.threads, lambda c=served, rr=rr, pp=pp: c.classify(rr, 100.0, pp)),
                     (1, lambda c=rowed, rr=rr, pp=pp: c.classify(rr, 100.0, pp))],
                    b, max(3, args.repeats // 4), args.rounds,
                )  # fmt: skip
                print(
                    f"  {label + ', ' + name:<34} torch threads {torch_rate:>9,.0f}   "
                    f"row threads {row_rate:>9,.0f} windows/s   ({row_rate / torch_rate:.2f}x)"
                )
        torch.set_num_threads(args.threads)

    if torch.cuda.is_available():
        dev = torch.device("cuda")
        gpu_model = clf.model.to(dev)
        big = 65536
        xg = torch.randn(big, *shape[1:], device=dev)

        def gpu_tta() -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                gpu_model(xg)
                gpu_model(-xg)
            torch.cuda.synchronize()

        cpu_rate = rows["shipped, model only (TTA)"]
        gpu_rows = {"model only, device-resident windows, bf16": big / timed(gpu_tta, 10)}
        host = rng.standard_normal((big, *shape[1:])).astype(np.float32)
        for precision in ("float32", "bfloat16"):
            served = PolarityClassifier(clf.model, clf.card, device=dev, precision=precision)
            gpu_rows[f"window_probabilities(), {precision}"] = big / timed(
                lambda served=served: served.window_probabilities(host, batch_size=big), 5
            )
        print(f"GPU {torch.cuda.get_device_name()}, batch {big}:")
        for name, rate in gpu_rows.items():
            print(f"  {name:<43} {rate:>12,.0f} windows/s ({rate / cpu_rate:.0f}x CPU model only)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
