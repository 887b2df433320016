"""``firstmotion worker polarity``: Pick messages in, Polarity messages out, in batches.

Consumes ``<prefix>picks`` in consumer group ``polarity`` through :class:`firstmotion.bus.
Consumer` (at-least-once: the Polarity messages are published and the picks acknowledged in
one MULTI/EXEC; a crashed worker's pending picks are reclaimed by the others after the lease),
classifies each batch with :class:`~workers.polarity.PolarityClassifier` and publishes to
``<prefix>polarities``. Any number of workers (one per GPU, or several per CPU host) share the
group.

Dynamic batching: a read blocks for the first pick, then keeps reading until ``max_batch``
picks are in hand or ``max_wait_ms`` has passed since the first one (the latency a pick may
pay to fill a GPU batch). Picks of a batch are grouped by (sampling rate, window length) for
:meth:`PolarityClassifier.classify`. The handler is idempotent: the output depends only on the
pick and the model.

Metrics (besides the standard ``firstmotion_stage_*`` series with ``stage="polarity"``, which
include the batch-size histogram): ``firstmotion_polarity_inference_seconds`` (histogram per
batch), ``firstmotion_polarity_windows_total{outcome=up|down|unknown|bad|not_p}`` (its rate is the
windows/s), ``firstmotion_polarity_queue_lag_seconds`` (histogram of pick creation to
classification), ``firstmotion_polarity_read_at_arrival_total`` (picks read at their arrival
time, their refined onset giving no sign), ``firstmotion_polarity_read_at_own_onset_total``
(picks given alone read at the reader's own onset estimate), and the stage's pending/backlog
gauges.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter, defaultdict

import numpy as np

from firstmotion.bus import Bus, Consumer, Delivery, add_stage_arguments, run_stage
from firstmotion.config import POLARITY_PRECISIONS, PolaritySettings
from firstmotion.messages import Message, Pick, Polarity
from firstmotion.metrics import counter, histogram
from workers.polarity.classifier import READ_REASONS, REASON_LOW_CONFIDENCE
from workers.polarity.preprocess import resamplable

log = logging.getLogger(__name__)

INPUT_STREAM = "picks"
OUTPUT_STREAM = "polarities"
GROUP = "polarity"
INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class PolarityHandler:
    """Classify a batch of Pick deliveries; returns ``[("polarities", Polarity), ...]``."""

    def __init__(self, classifier, *, min_confidence: float = 0.0, firs=None) -> None:
        self.clf = classifier
        self.min_confidence = float(min_confidence)
        self.firs = firs  # ChannelFirs: remove the channels' FIR precursors first (None: off)
        card = classifier.card
        self.model_version = f"{card.get('name', 'polarity')}@{card.get('weights_sha256', '')[:8]}"
        self.inference_s = histogram(
            "firstmotion_polarity_inference_seconds",
            "Seconds of polarity classification per batch (preprocessing + model)",
            buckets=INFERENCE_BUCKETS,
        )
        self.windows = counter(
            "firstmotion_polarity_windows_total",
            "Windows classified, by outcome",
            ("outcome",),
        )
        self.fir_corrected = counter(
            "firstmotion_polarity_fir_corrected_total",
            "P picks read after removing their channel's linear-phase FIR precursor",
        )
        self.read_at_arrival = counter(
            "firstmotion_polarity_read_at_arrival_total",
            "P picks read at their arrival time (the learned picker's peak) because their "
            "refined onset gave no sign",
        )
        self.read_at_own_onset = counter(
            "firstmotion_polarity_read_at_own_onset_total",
            "P picks given alone read at the reader's own onset estimate near them because "
            "the pick gave no sign",
        )
        self.lag = histogram(
            "firstmotion_polarity_queue_lag_seconds",
            "Seconds from pick creation to its classification",
            buckets=LAG_BUCKETS,
        )

    def __call__(self, batch: list[Delivery]) -> list[tuple[str, Message]]:
        picks: list[Pick] = []
        for d in batch:
            if not isinstance(d.message, Pick):
                kind = type(d.message).__name__
                raise TypeError(f"entry {d.entry_id}: expected a Pick, got {kind}")
            if d.message.phase != "P":  # S picks are for the associator: acknowledged, unread
                self.windows.labels(outcome="not_p").inc()
                continue
            picks.append(d.message)
        if not picks:
            return []
        t0 = time.perf_counter()
        results = classify_picks(self.clf, picks, self.firs)
        self.inference_s.observe(time.perf_counter() - t0)
        if self.firs is not None:
            self.fir_corrected.inc(sum(1 for r in results if r[4].get("fir_corrected")))
        self.read_at_arrival.inc(sum(1 for r in results if r[4].get("read_at_arrival")))
        self.read_at_own_onset.inc(sum(1 for r in results if r[4].get("read_at_own_onset")))
        now = time.time()
        out: list[tuple[str, Message]] = []
        outcomes: Counter[str] = Counter()
        observe = self.lag.observe
        for pick, (polarity, probs, confidence, reason, evidence) in zip(
            picks, results, strict=True
        ):
            if polarity != 0 and confidence < self.min_confidence:
                polarity, reason = 0, REASON_LOW_CONFIDENCE
            outcome = {1: "up", -1: "down"}.get(polarity, "unknown")
            if reason not in READ_REASONS:
                outcome = "bad"
            outcomes[outcome] += 1
            observe(max(0.0, now - pick.created_epoch_s))
            out.append(
                (
                    OUTPUT_STREAM,
                    Polarity(
                        pick_id=pick.pick_id,
                        station_id=pick.station_id,
                        time_epoch_s=pick.time_epoch_s,
                        polarity=int(polarity),
                        probabilities=tuple(probs),
                        confidence=float(min(max(confidence, 0.0), 1.0)),
                        model_version=self.model_version,
                        reason=reason,
                        latitude_deg=pick.latitude_deg,
                        longitude_deg=pick.longitude_deg,
                        elevation_m=pick.elevation_m,
                        created_epoch_s=now,
                        **evidence,
                    ),
                )
            )
        for outcome, n in outcomes.items():
            self.windows.labels(outcome=outcome).inc(n)
        return out


def classify_picks(
    clf, picks: list[Pick], firs=None
) -> list[tuple[int, list[float], float, str, dict]]:
    """(polarity, probabilities, confidence, reason, evidence) per pick, batched by (rate,
    length, FIR stages); evidence holds the :class:`Polarity` evidence fields the model gives
    (none for a model without them). ``firs``: a
    :class:`~workers.polarity.fircorrect.ChannelFirs`; a pick on a channel with linear-phase
    FIR stages and no gap in its window is read after their precursor is removed
    (``fir_corrected`` in its evidence fields)."""
    groups: dict[tuple[float, int, int], list[int]] = defaultdict(list)
    stages: dict[int, tuple] = {0: ()}
    for i, p in enumerate(picks):
        fir = firs.get(p.station_id, p.time_epoch_s) if firs is not None else ()
        stages.setdefault(id(fir) if fir else 0, fir)
        groups[(float(p.sampling_rate_hz), int(p.samples.size), id(fir) if fir else 0)].append(i)
    out: list = [None] * len(picks)
    for (rate, _n, fir_key), idx in groups.items():
        if rate < 40.0:  # the model's floor: say so per pick instead of failing the batch
            for i in idx:
                out[i] = (0, [0.0, 0.0, 1.0], 1.0, "rate_below_40_hz", {})
            continue
        config = getattr(clf, "config", None)  # (a reader that says nothing: not checked)
        if config is not None and not resamplable(rate, config):  # 1 MHz: not a retried failure
            for i in idx:
                out[i] = (0, [0.0, 0.0, 1.0], 1.0, "rate_not_resamplable", {})
            continue
        data = np.stack([picks[i].samples for i in idx])
        fir = stages[fir_key]
        at = np.array([picks[i].pick_index for i in idx])
        # the picker's arrival time, a second estimate of the onset where it is not the
        # sample read at (the learned picker's peak beside its refined onset)
        second = np.array([arrival_index(picks[i]) for i in idx])
        res = clf.classify(data, rate, at, fir=list(fir) if fir else None, second_index=second)
        corrected = np.isfinite(data).all(axis=1) if fir else np.zeros(len(idx), dtype=bool)
        rows = zip(
            res.polarity.tolist(),
            res.probabilities.tolist(),
            res.confidence.tolist(),
            res.reason.tolist(),
            strict=True,
        )
        for j, (i, row) in enumerate(zip(idx, rows, strict=True)):
            evidence = _evidence_fields(res, j, picks[i])
            out[i] = (*row, {**evidence, "fir_corrected": True} if corrected[j] else evidence)
    return out


def arrival_index(pick: Pick) -> float:
    """The sample of ``pick.samples`` at the pick's arrival time (``time_epoch_s``; the learned
    picker's probability peak, which its ``pick_index``, the refined onset, may differ from);
    NaN when that time lies outside the window."""
    k = (pick.time_epoch_s - pick.start_time_epoch_s) * float(pick.sampling_rate_hz)
    return float(k) if 0 <= k < pick.samples.size else float("nan")


def _evidence_fields(res, j: int, pick: Pick) -> dict:
    """The :class:`Polarity` evidence fields of row ``j`` of a classifier result."""
    if getattr(res, "first_lobe_sign", None) is None:
        return {}

    def finite(value: float) -> float | None:
        return float(value) if np.isfinite(value) else None

    offset = finite(res.onset_offset_s[j])  # from the sample read at, pick.pick_index
    at_s = pick.start_time_epoch_s + pick.pick_index / float(pick.sampling_rate_hz)
    onset = at_s + offset if offset is not None else None
    return {
        "first_lobe_sign": int(res.first_lobe_sign[j]),
        "first_lobe_snr": finite(res.first_lobe_snr[j]),
        "onset_sharpness": finite(res.onset_sharpness[j]),
        "onset_time_epoch_s": onset if onset is not None and onset >= 0 else None,
        "precursor": bool(res.precursor[j]),
        "read_at_arrival": bool(
            getattr(res, "second_read", None) is not None and res.second_read[j]
        ),
        "read_at_own_onset": bool(
            getattr(res, "own_onset_read", None) is not None and res.own_onset_read[j]
        ),
    }


def build_consumer(
    bus: Bus,
    classifier,
    *,
    max_batch: int = PolaritySettings.max_batch,
    max_wait_ms: int = PolaritySettings.max_wait_ms,
    min_confidence: float = PolaritySettings.min_confidence,
    name: str | None = None,
    block_ms: int = 1000,
    lease_ms: int = 5_000,
    max_deliveries: int = 5,
    firs=None,
) -> Consumer:
    """The polarity stage's consumer on ``bus`` (group ``polarity``), with the bus's dynamic
    batching (``max_wait_ms``); defaults as ``[polarity]`` of the config; ``firs``: the
    channels' FIR stages to correct (:class:`~workers.polarity.fircorrect.ChannelFirs`)."""
    handler = PolarityHandler(classifier, min_confidence=min_confidence, firs=firs)
    return Consumer(
        bus,
        INPUT_STREAM,
        GROUP,
        handler,
        name=name,
        batch_size=max_batch,
        block_ms=block_ms,
        lease_ms=lease_ms,
        max_deliveries=max_deliveries,
        max_wait_ms=max_wait_ms,
        stage="polarity",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_stage_arguments(parser)
    parser.add_argument("--model", default=None, help="model stem (default: shipped weights)")
    parser.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:N")
    parser.add_argument(
        "--precision", default=None, choices=POLARITY_PRECISIONS,
        help="network precision (default: polarity.precision; bfloat16 runs under autocast; "
        "auto: bfloat16 where the device computes it in hardware, else float32)",
    )  # fmt: skip
    parser.add_argument(
        "--inventory", default=None,
        help="StationXML with responses (default: inventory.stationxml; for --fir-correction)",
    )  # fmt: skip
    parser.add_argument(
        "--fir-correction", action="store_true", default=None,
        help="remove each channel's linear-phase FIR precursor (its StationXML FIR stages) "
        "before reading (default: polarity.fir_correction)",
    )  # fmt: skip
    parser.add_argument("--max-batch", type=int, default=None)
    parser.add_argument("--max-wait-ms", type=int, default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per worker: blocks of a batch's rows read at once, each on one torch "
        "thread (default 1: scale with more workers; torch's own intra-op threads measured "
        "slower, see benchmarks/bench_polarity.py); on a GPU, torch's CPU threads",
    )


def run(args: argparse.Namespace) -> int:
    from firstmotion.config import load_settings
    from firstmotion.metrics import flag_check
    from workers.polarity import PolarityClassifier

    settings = load_settings(args.config)
    pol = settings.polarity
    bus = Bus.from_settings(settings.redis, url=args.redis)
    model = args.model or pol.model or None
    device = args.device or pol.device
    import torch

    torch.set_num_threads(max(1, args.threads))
    clf = PolarityClassifier.load(
        model, device=device, precision=args.precision or pol.precision, threads=args.threads
    )
    threads = clf.threads if clf.device.type == "cpu" else torch.get_num_threads()
    log.info("polarity model %s on %s, %s, %d thread(s)", clf.card.get("name"), clf.device,
             clf.precision, threads)  # fmt: skip
    firs = None
    if args.fir_correction or pol.fir_correction:
        inventory = args.inventory or settings.inventory.stationxml
        if not inventory:
            log.error(
                "FIR correction needs the channels' responses: give --inventory or "
                "inventory.stationxml (a StationXML with responses)"
            )
            return 2
        from workers.polarity.fircorrect import ChannelFirs

        firs = ChannelFirs.read(inventory)
        log.info(
            "FIR correction: %d of %d channel epochs in %s have linear-phase FIR stages",
            len(firs), firs.channels, inventory,
        )  # fmt: skip
    consumer = build_consumer(
        bus,
        clf,
        max_batch=args.max_batch or pol.max_batch,
        max_wait_ms=pol.max_wait_ms if args.max_wait_ms is None else args.max_wait_ms,
        min_confidence=pol.min_confidence,
        name=args.name,
        firs=firs,
        **settings.redis.consumer_options(),
    )
    n = run_stage(
        consumer,
        drain=args.drain,
        metrics_host=settings.metrics.host,
        metrics_port=args.metrics_port,
        loop_check=False,
        checks={"model": flag_check(lambda: clf.model is not None, "model loaded")},
        on_exit=(bus.close,),
    )
    log.info("polarity worker %s processed %d picks", consumer.name, n)
    return 0
