"""``firstmotion polarity eval``: measure a polarity model on held-out synthetic and real data.

Evaluation sets:

* ``synthetic_hard``: windows from :class:`workers.polarity.dataset.WindowSampler` with a seed
  the training never used and the harder mix of :meth:`SamplerConfig.hard` (80% real noise,
  more drift, emergent onsets and coda; half the signals through a datalogger FIR), with
  up/down accuracy per input rate, and two robustness sets: picks 0.15-0.6 s off a clear onset
  (should be unknown), onsets that all passed a linear-phase datalogger FIR (its precursor
  must not be read), up/down accuracy against a fixed pick error (-0.08..+0.08 s) and at odd
  rates never trained on (44.1, 75.19, 99 Hz: the fine-grid resampler's path);
* ``texnet``: the analyst first-motion polarities of ``shared/data/texnet2017`` (QuakeML picks
  with polarity positive/negative), classified through :meth:`PolarityClassifier.classify` from
  the raw vertical miniSEED trace cut at the analyst's P pick; also with the pick moved by
  +-0.02 and +-0.05 s (a picker's error) as a robustness check;
* ``pr2017``: 12 clear P first motions of small local earthquakes in the Puerto Rico noise hour
  (``shared/data/pr2017_noise``, EHZ, 100 Hz), read by us, not by the network's analysts
  (``firstmotion/data/pr2017_onsets.json`` says how), evaluated like ``texnet``: a second
  network, short-period sensors, impulsive onsets;
* ``uh2010``: 10 clear P first motions of two small induced earthquakes at Unterhaching (BW.UH1-
  UH4, short-period verticals at 50, 100 and 200 Hz) in the waveforms obspy ships as test data,
  read blind by us (``firstmotion/data/uh2010_onsets.json``), evaluated like ``texnet``.

* ``ingv``: the INGV analysts' 88 P first motions (U/D with a vertical trace) of five
  central-Italy earthquakes in ``shared/data/ingv_fmpc`` (HYPO71 cards, :func:`load_ingv_fmpc`).

* ``labelled`` (``--labels``, instead of the sets above): a network's own analyst first
  motions, P picks with a polarity in QuakeML, HYPO71 phase cards, the CSV pair that
  ``firstmotion reprocess`` reads or its picks CSV alone, each read from the vertical of its
  station in ``--waveforms`` (files, folders, globs or an SDS root: :mod:`firstmotion.archive`),
  cut ``LABELLED_BEFORE_S`` before and ``LABELLED_AFTER_S`` after the pick
  (:func:`load_labelled`).

Every real set is read by the model and by the naive rule
(:func:`workers.polarity.evidence.naive_polarity`) at the labelled pick and with the pick
moved by +-0.02 and +-0.05 s; ``real_reliability`` pools the real picks into a reliability
diagram (``--reliability-plot``). ``--real-only`` skips the synthetic sets.

Metrics: 3-class accuracy, per-class precision/recall, up/down accuracy for SNR >= 5, the
fraction of noise-only windows called unknown, coverage and accuracy at confidence thresholds,
and the expected calibration error (ECE, 15 equal-width bins of the top probability; Guo et al.
2017, Naeini et al. 2015).
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from firstmotion.channels import is_vertical
from firstmotion.errors import InputError
from firstmotion.event_catalogs import arrival_phase
from workers.polarity.classifier import PolarityClassifier
from workers.polarity.dataset import (
    LABEL_DOWN,
    LABEL_UNKNOWN,
    LABEL_UP,
    SamplerConfig,
    WindowSampler,
    generate_dataset,
    load_real_noise,
    shared_data_dir,
)
from workers.polarity.evidence import naive_polarity
from workers.polarity.model import LABELS
from workers.polarity.preprocess import (
    PreprocessConfig,
    model_band,
    model_resampling,
    prepare_windows,
)

log = logging.getLogger(__name__)
POLARITY_OF_LABEL = np.array([1, -1, 0], dtype=np.int8)


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE of the top-class probability: sum over bins of |accuracy - confidence| x weight."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1]), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            ece += sel.mean() * abs(correct[sel].mean() - conf[sel].mean())
    return float(ece)


def classification_metrics(
    probs: np.ndarray,
    labels: np.ndarray,
    polarity: np.ndarray,
    confidence: np.ndarray,
    snr: np.ndarray | None = None,
) -> dict:
    """Metrics of decided polarities (+1/-1/0) and probabilities against labels (0/1/2)."""
    truth = POLARITY_OF_LABEL[labels]
    pred_label = np.select([polarity == 1, polarity == -1], [LABEL_UP, LABEL_DOWN], LABEL_UNKNOWN)
    out: dict = {"n": int(labels.size), "accuracy_3class": float(np.mean(pred_label == labels))}
    per_class = {}
    for k, name in enumerate(LABELS):
        tp = np.sum((pred_label == k) & (labels == k))
        n_pred, n_true = np.sum(pred_label == k), np.sum(labels == k)
        per_class[name] = {
            "precision": float(tp / n_pred) if n_pred else None,
            "recall": float(tp / n_true) if n_true else None,
            "n_true": int(n_true),
        }
    out["per_class"] = per_class
    out["ece"] = expected_calibration_error(probs, labels)
    signed = truth != 0
    coverage = {}
    for thr in (0.5, 0.7, 0.9):
        took = signed & (polarity != 0) & (confidence >= thr)
        coverage[f"{thr:.1f}"] = {
            "coverage": float(took.sum() / max(signed.sum(), 1)),
            "accuracy": float(np.mean(polarity[took] == truth[took])) if took.any() else None,
        }
    out["updown_coverage_at_confidence"] = coverage
    if snr is not None:
        hi = signed & (snr >= 5)
        out["updown_accuracy_snr_ge_5"] = float(np.mean(polarity[hi] == truth[hi]))
        out["updown_precision_snr_ge_5"] = (
            float(np.mean(polarity[hi & (polarity != 0)] == truth[hi & (polarity != 0)]))
            if (hi & (polarity != 0)).any()
            else None
        )
        out["n_updown_snr_ge_5"] = int(hi.sum())
        noise_only = (labels == LABEL_UNKNOWN) & (snr == 0)
        out["noise_only_unknown_rate"] = float(np.mean(polarity[noise_only] == 0))
        out["n_noise_only"] = int(noise_only.sum())
        by_snr = {}
        for lo, hi_edge in ((2, 3), (3, 5), (5, 10), (10, 30), (30, 100), (100, 1e3), (1e3, 1e9)):
            sel = signed & (snr >= lo) & (snr < hi_edge)
            if sel.any():
                by_snr[f"{lo:g}-{hi_edge:g}"] = {
                    "n": int(sel.sum()),
                    "accuracy": float(np.mean(polarity[sel] == truth[sel])),
                    "wrong_sign": float(np.mean(polarity[sel] == -truth[sel])),
                }
        out["updown_by_snr"] = by_snr
    return out


def evaluate_synthetic(
    clf: PolarityClassifier,
    n: int,
    seed: int,
    real_noise: list | None = None,
    plot_path: str | None = None,
) -> dict:
    """Metrics on ``n`` held-out windows of the hard mix with ``seed`` (optional figure)."""
    data = generate_dataset(
        n, clf.config, SamplerConfig().hard(), seed=seed, real_noise=real_noise, progress=False
    )
    probs = clf.prepared_probabilities(data["windows"], native_rate_hz=data["rate_hz"])
    polarity, confidence = clf.decide(probs)
    metrics = classification_metrics(probs, data["labels"], polarity, confidence, data["snr"])
    metrics["seed"] = seed
    metrics["mix"] = "SamplerConfig().hard()"
    # picks 0.15-0.6 s off a clear onset (SNR >= 5): nothing to read at the pick
    off = generate_dataset(
        max(200, n // 10),
        clf.config,
        replace(
            SamplerConfig().hard(),
            mispick_fraction=1.0,
            noise_only_fraction=0.0,
            snr_range=(5.0, 100.0),
        ),
        seed=seed + 1,
        real_noise=real_noise,
        progress=False,
    )
    off_polarity, _ = clf.decide(
        clf.prepared_probabilities(off["windows"], native_rate_hz=off["rate_hz"])
    )
    metrics["mispicked_unknown_rate"] = float(np.mean(off_polarity == 0))
    metrics["n_mispicked"] = int(off_polarity.size)
    truth = POLARITY_OF_LABEL[data["labels"]]
    by_rate = {}
    for rate in np.unique(data["rate_hz"]):
        sel = (data["rate_hz"] == rate) & (truth != 0) & (data["snr"] >= 5)
        by_rate[f"{rate:g}"] = float(np.mean(polarity[sel] == truth[sel])) if sel.any() else None
    metrics["updown_accuracy_snr_ge_5_by_rate_hz"] = by_rate
    metrics["linear_phase_fir"] = evaluate_linear_phase_fir(
        clf, max(200, n // 10), seed + 2, real_noise
    )
    metrics["updown_by_pick_error_s"] = evaluate_pick_errors(
        clf, max(200, n // 10), seed + 3, real_noise
    )
    metrics["odd_rates_snr_ge_5"] = evaluate_odd_rates(clf, max(200, n // 10), seed + 4, real_noise)
    metrics["sharp_onsets_100hz"] = evaluate_sharp_onsets(
        clf, max(200, n // 10), seed + 5, real_noise
    )
    metrics["whole_reader"] = evaluate_whole_reader(clf, max(400, n // 4), seed + 1000, real_noise)
    if plot_path:
        plot_synthetic(probs, data["labels"], polarity, data["snr"], plot_path)
    return metrics


def plot_synthetic(
    probs: np.ndarray, labels: np.ndarray, polarity: np.ndarray, snr: np.ndarray, path: str
) -> None:
    """Two panels: up/down outcome vs SNR, and the reliability diagram of the top class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    truth = POLARITY_OF_LABEL[labels]
    signed = truth != 0
    edges = np.geomspace(1.0, 1e5, 21)
    mid = np.sqrt(edges[1:] * edges[:-1])
    right, wrong, unknown = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = signed & (snr >= lo) & (snr < hi)
        k = max(sel.sum(), 1)
        right.append(np.sum(polarity[sel] == truth[sel]) / k)
        wrong.append(np.sum(polarity[sel] == -truth[sel]) / k)
        unknown.append(np.sum(polarity[sel] == 0) / k)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.semilogx(mid, right, "o-", label="correct")
    a.semilogx(mid, unknown, "s-", label="unknown")
    a.semilogx(mid, wrong, "x-", label="wrong sign")
    a.axvline(5, color="grey", ls=":")
    a.set(xlabel="first-motion SNR (first-lobe peak / noise std)", ylabel="fraction of windows")
    a.set_title("held-out synthetic (hard mix): up/down windows")
    a.legend()
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    bins = np.linspace(1 / 3, 1, 11)
    centres, accs = [], []
    for lo, hi in zip(bins[:-1], bins[1:], strict=True):
        sel = (conf >= lo) & (conf < hi + 1e-9)
        if sel.sum() >= 20:
            centres.append(conf[sel].mean())
            accs.append(correct[sel].mean())
    b.plot([1 / 3, 1], [1 / 3, 1], color="grey", ls=":")
    b.plot(centres, accs, "o-")
    ece = expected_calibration_error(probs, labels)
    b.set(xlabel="top-class probability", ylabel="accuracy", title=f"reliability (ECE {ece:.3f})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def load_texnet_polarities(data_dir: Path | None = None) -> list[dict]:
    """Analyst P polarities with their raw vertical traces, one dict per pick.

    Keys: ``event``, ``station_id``, ``sampling_rate_hz``, ``data`` (float64 trace),
    ``pick_index``, ``time`` (ISO UTC), ``polarity`` (+1 positive, -1 negative). Picks without
    a vertical trace in the miniSEED (MSTX) are left out.
    """
    import obspy

    data_dir = (shared_data_dir() if data_dir is None else Path(data_dir)) / "texnet2017"
    out = []
    for qml in sorted(data_dir.glob("*.qml")):
        mseed = qml.with_suffix(".mseed")
        if not mseed.exists():
            continue
        stream = obspy.read(str(mseed))
        event = obspy.read_events(str(qml))[0]
        for pick in event.picks:
            if pick.polarity not in ("positive", "negative"):
                continue
            if arrival_phase(pick.phase_hint or "") != "P":
                continue
            wid = pick.waveform_id
            band = (wid.channel_code or "")[:2]
            traces = stream.select(network=wid.network_code, station=wid.station_code)
            traces = [tr for tr in traces if is_vertical(tr.stats.channel)]
            traces.sort(key=lambda tr: not tr.stats.channel.startswith(band))
            if not traces:
                continue
            tr = traces[0]
            rate = float(tr.stats.sampling_rate)
            out.append(
                {
                    "event": qml.stem,
                    "station_id": tr.id,
                    "sampling_rate_hz": rate,
                    "data": tr.data.astype(np.float64),
                    "pick_index": int(round((pick.time - tr.stats.starttime) * rate)),
                    "time": str(pick.time),
                    "polarity": 1 if pick.polarity == "positive" else -1,
                }
            )
    return out


def _labelled_onsets(labels: Path, event: str, traces_of) -> list[dict]:
    """The onsets of a labels file (``firstmotion/data/*_onsets.json``) with their raw traces.

    ``traces_of(station_id)`` gives the station's obspy traces (empty: data absent, and the
    whole set is empty). Each onset takes the trace that holds its time; ``ValueError`` when
    none does.
    """
    import obspy

    doc = json.loads(labels.read_text())
    cache: dict[str, list[tuple[obspy.Trace, np.ndarray]]] = {}
    out = []
    for onset in doc["onsets"]:
        sid = onset["station_id"]
        if sid not in cache:
            cache[sid] = [(tr, tr.data.astype(np.float64)) for tr in traces_of(sid)]
            if not cache[sid]:
                return []
        when = obspy.UTCDateTime(onset["time"])
        held = [(tr, d) for tr, d in cache[sid] if tr.stats.starttime <= when < tr.stats.endtime]
        if not held:
            raise ValueError(f"{sid} onset {onset['time']} is outside its trace")
        tr, data = held[0]
        rate = float(tr.stats.sampling_rate)
        out.append(
            {
                "event": event,
                "station_id": sid,
                "sampling_rate_hz": rate,
                "data": data,
                "pick_index": int(round((when - tr.stats.starttime) * rate)),
                "time": onset["time"],
                "polarity": int(onset["polarity"]),
            }
        )
    return out


def load_pr2017_onsets(data_dir: Path | None = None, labels: Path | None = None) -> list[dict]:
    """The polarities of ``firstmotion/data/pr2017_onsets.json`` with their raw EHZ traces, as
    dicts like :func:`load_texnet_polarities` (``event`` is ``"pr2017"``). Empty when the
    miniSEED hour is absent; ``ValueError`` when a labelled onset is not inside its trace."""
    import obspy

    data_dir = (shared_data_dir() if data_dir is None else Path(data_dir)) / "pr2017_noise"
    if labels is None:
        labels = resources.files("firstmotion") / "data" / "pr2017_onsets.json"

    def traces_of(sid: str) -> list:
        net, sta, loc, cha = sid.split(".")
        paths = sorted(data_dir.glob(f"{sta}.{net}.{cha}.{loc}.*.mseed"))
        return list(obspy.read(str(paths[0])).merge()) if paths else []

    return _labelled_onsets(labels, "pr2017", traces_of)


def obspy_test_data_dir() -> Path:
    """The waveform test data the installed obspy ships (``obspy/signal/tests/data``; may be
    absent in a stripped install)."""
    import obspy

    return Path(obspy.__file__).resolve().parent / "signal" / "tests" / "data"


def load_uh2010_onsets(data_dir: Path | None = None, labels: Path | None = None) -> list[dict]:
    """The polarities of ``firstmotion/data/uh2010_onsets.json`` (two induced earthquakes at
    Unterhaching, BW.UH1-UH4, read by us) with the raw vertical traces obspy ships as test data
    (``data_dir``, default :func:`obspy_test_data_dir`), as dicts like
    :func:`load_texnet_polarities` (``event`` is ``"uh2010"``). Empty when the traces are
    absent; ``ValueError`` when a labelled onset is not inside its station's traces."""
    import obspy

    data_dir = obspy_test_data_dir() if data_dir is None else Path(data_dir)
    if labels is None:
        labels = resources.files("firstmotion") / "data" / "uh2010_onsets.json"

    def traces_of(sid: str) -> list:
        net, sta, loc, cha = sid.split(".")
        paths = sorted(data_dir.glob(f"{net}.{sta}.{loc or '_'}.{cha}.D.2010.147.*slist.gz"))
        return [tr for path in paths for tr in obspy.read(str(path))]

    return _labelled_onsets(labels, "uh2010", traces_of)


def _ingv_station_matches(card_code: str, file_station: str) -> bool:
    """A HYPO71 card's 4-letter code names the file's station (``T107`` is ``T0107``, ``AQU``
    is ``AQU``)."""
    code = card_code.strip()
    return file_station == code or (
        len(code) == 4 and code[1:].isdigit() and file_station == code[0] + "0" + code[1:]
    )


def parse_hypo71_p_readings(text: str) -> list[dict]:
    """The P readings with a first motion of HYPO71 phase cards: ``station`` (columns 1-4),
    ``onset`` (column 5, ``I``/``E``), ``polarity`` (column 7: ``U`` +1, ``D`` -1) and
    ``time`` (:class:`obspy.UTCDateTime`: YYMMDDhhmm in columns 10-19 plus the seconds of
    columns 20-24, which may exceed 60). CRLF or LF lines; other cards are skipped."""
    import obspy

    out = []
    for line in text.replace("\r", "").split("\n"):
        if len(line) < 24 or line[5] != "P" or line[6] not in "UD":
            continue
        stamp = line[9:19]
        minute = obspy.UTCDateTime(
            f"20{stamp[:2]}-{stamp[2:4]}-{stamp[4:6]}T{stamp[6:8]}:{stamp[8:10]}:00"
        )
        out.append(
            {
                "station": line[:4].strip(),
                "onset": line[4],
                "polarity": 1 if line[6] == "U" else -1,
                "time": minute + float(line[19:24]),
            }
        )
    return out


def load_ingv_fmpc(data_dir: Path | None = None) -> list[dict]:
    """The INGV analysts' P first motions of ``shared/data/ingv_fmpc`` (five central-Italy
    earthquakes, HYPO71 cards) with their raw vertical traces, as dicts like
    :func:`load_texnet_polarities` (plus ``onset``: ``I`` impulsive, ``E`` emergent). A
    station with several verticals takes HH, then EH, then HN; readings without a vertical
    trace are left out. Empty when the set is absent."""
    import obspy

    root = (shared_data_dir() if data_dir is None else Path(data_dir)) / "ingv_fmpc"
    out = []
    for card in sorted((root / "Phases_file").glob("*.dat")):
        files = sorted((root / "mseed" / f"{card.stem}_mseed").glob("*Z.mseed"))
        for reading in parse_hypo71_p_readings(card.read_bytes().decode("ascii", "replace")):
            found = [
                f
                for f in files
                if _ingv_station_matches(reading["station"], f.name.split(".")[2].strip("_"))
            ]
            found.sort(key=lambda f: {"HH": 0, "EH": 1, "HN": 2}.get(f.name.split(".")[3][:2], 3))
            if not found:
                continue
            tr = obspy.read(str(found[0]))[0]
            rate = float(tr.stats.sampling_rate)
            out.append(
                {
                    "event": card.stem,
                    "station_id": tr.id,
                    "sampling_rate_hz": rate,
                    "data": tr.data.astype(np.float64),
                    "pick_index": int(round((reading["time"] - tr.stats.starttime) * rate)),
                    "time": str(reading["time"]),
                    "polarity": reading["polarity"],
                    "onset": reading["onset"],
                }
            )
    return out


LABELLED_BEFORE_S = 60.0  # the naive rule's and the noise measure's history, with room
LABELLED_AFTER_S = 5.0


def load_labelled(
    events: list[str],
    waveforms: list[str],
    *,
    before_s: float = LABELLED_BEFORE_S,
    after_s: float = LABELLED_AFTER_S,
    left_out: list[dict] | None = None,
) -> list[dict]:
    """A network's own analyst P first motions as real-set rows (dicts like
    :func:`load_ingv_fmpc`): the P picks with a polarity of ``events`` (QuakeML, HYPO71 phase
    cards or the CSV pair, :func:`firstmotion.event_catalogs.read_events`), each with its
    station's vertical from ``waveforms`` (:func:`firstmotion.archive.cut_windows`,
    samples missing in the window NaN). Picks with no waveform and files that are not seismic
    data are logged, counted and left out (and listed in ``left_out``, when given, with why);
    an input with no labelled P pick, or none with a waveform, is an
    :class:`~firstmotion.errors.InputError`."""
    from obspy import UTCDateTime

    from firstmotion.archive import Request, cut_windows
    from firstmotion.event_catalogs import read_events

    labelled = {}
    for ev in read_events(events, option="--labels"):
        for k, p in enumerate(ev.picks):
            if p.analyst_polarity and p.phase.upper().startswith("P"):
                labelled[f"{ev.event_id}#{k}"] = (ev.event_id, p)
    if not labelled:
        raise InputError(f"--labels {' '.join(events)}: no P pick with a first motion (U/D, "
                         "positive/negative, +1/-1)")  # fmt: skip
    requests = [
        Request(key, p.network, p.station, p.location, p.channel, p.time_epoch_s)
        for key, (_, p) in labelled.items()
    ]
    windows, report = cut_windows(requests, waveforms, before_s=before_s, after_s=after_s)
    for path, why in report.bad_files.items():
        log.warning("--waveforms: %s: %s", path, why)
    for k, why in report.missing.items():
        if left_out is not None:
            left_out.append({"label": labelled[k][1].label, "event": labelled[k][0],
                             "why": why})  # fmt: skip
    if report.missing:
        log.warning("%d of %d labelled picks have no vertical in --waveforms, left out: %s",
                    len(report.missing), len(requests),
                    "; ".join(f"{labelled[k][1].label} ({why})"
                              for k, why in list(report.missing.items())[:10]))  # fmt: skip
    if not windows:
        raise InputError(f"--waveforms {' '.join(waveforms)}: no vertical trace for any of the "
                         f"{len(requests)} labelled picks")  # fmt: skip
    order = {key: i for i, key in enumerate(labelled)}
    out, in_gap = [], []
    for w in sorted(windows, key=lambda w: order[w.key]):
        event, p = labelled[w.key]
        cut = w.around_pick()  # the unbroken record holding the pick
        data = np.asarray(cut.samples, dtype=np.float64)
        if not np.isfinite(data[cut.pick_index]):
            in_gap.append(f"{event} {w.station_id}")
            if left_out is not None:
                left_out.append({"label": p.label, "event": event, "why": "gap at the pick"})
            continue
        row = {
            "event": event,
            "station_id": w.station_id,
            "sampling_rate_hz": float(w.sampling_rate_hz),
            "data": data,
            "pick_index": int(cut.pick_index),
            "time": str(UTCDateTime(p.time_epoch_s)),
            "polarity": int(p.analyst_polarity),
        }
        if p.onset:
            row["onset"] = p.onset[:1].upper()  # I / E, as the INGV set
        out.append(row)
    if in_gap:
        log.warning("%d labelled picks lie outside their station's record (before it, after "
                    "it or in a gap at the pick), left out: %s", len(in_gap),
                    "; ".join(in_gap[:10]))  # fmt: skip
    return out


def onset_noise_exceedance(
    data: np.ndarray,
    sampling_rate_hz: float,
    pick_index: int,
    config: PreprocessConfig,
    span_s: float = 0.03,
    noise_s: float = 20.0,
) -> tuple[float, float]:
    """How far the motion at a pick stands out of the station's own noise, in the model's view.

    The trace is resampled and high-passed as the model's preprocessing does (:func:`model_band`).
    The departure at a sample is the largest ``|x[i + j] - x[i]|`` for ``0 < j <= span``; the
    result is (signed departure at the pick, fraction of the noise samples, ``noise_s`` seconds
    ending 0.2 s before the pick, whose departure is at least as large). A fraction near 0: the
    first motion stands out; near 0.5: it is one noise wiggle among many.
    """
    rate = config.sampling_rate_hz
    x = np.asarray(data, dtype=np.float64)[None, :]
    x = model_band(x - x[:, :pick_index].mean(), sampling_rate_hz, config)[0]
    up, down = model_resampling(sampling_rate_hz, config)
    k = int(round(pick_index * up / down))
    span = max(1, int(round(span_s * rate)))
    seg = x[k + 1 : k + span + 1] - x[k]
    departure = float(seg[np.argmax(np.abs(seg))])
    lo = max(int(2.0 * rate), k - int(noise_s * rate))  # skip the filters' settling
    hi = k - int(0.2 * rate) - span
    if hi - lo < 10:
        return departure, float("nan")
    windows = sliding_window_view(x[lo : hi + span + 1], span + 1)
    noise = np.max(np.abs(windows[:, 1:] - windows[:, :1]), axis=1)
    return departure, float(np.mean(noise >= abs(departure)))


PICK_SHIFTS_S = (-0.05, -0.02, 0.02, 0.05)


def _outcome_counts(outcomes: list[int]) -> dict:
    return {"right": outcomes.count(1), "wrong_sign": outcomes.count(-1), "n": len(outcomes)}


def evaluate_real_picks(clf: PolarityClassifier, picks: list[dict]) -> dict:
    """Per-pick results at the labelled pick (analysts', or ours on pr2017/uh2010), and with
    the pick shifted, for the model and the naive rule
    (:func:`workers.polarity.evidence.naive_polarity`) on the same rows."""
    rows = []
    shifted: dict[float, list[int]] = {shift: [] for shift in PICK_SHIFTS_S}
    naive_shifted: dict[float, list[int]] = {shift: [] for shift in PICK_SHIFTS_S}
    for p in picks:
        res = clf.classify(p["data"][None, :], p["sampling_rate_hz"], [p["pick_index"]])
        departure, exceedance = onset_noise_exceedance(
            p["data"], p["sampling_rate_hz"], p["pick_index"], clf.config
        )
        naive = naive_polarity(p["data"], p["sampling_rate_hz"], [p["pick_index"]])
        row = {
            "station_id": p["station_id"],
            "event": p["event"],
            "time": p["time"],
            "analyst": int(p["polarity"]),
            "model": int(res.polarity[0]),
            "naive": int(naive[0]),
            "p_up": round(float(res.probabilities[0, 0]), 4),
            "p_down": round(float(res.probabilities[0, 1]), 4),
            "p_unknown": round(float(res.probabilities[0, 2]), 4),
            "departure_sign_at_pick": int(np.sign(departure)) if np.isfinite(departure) else 0,
            "noise_exceedance": _round(exceedance, 3),
            "reason": str(res.reason[0]),  # why a read is unknown (e.g. a gap, a short row)
        }
        if "onset" in p:
            row["onset"] = p["onset"]
        if res.first_lobe_sign is not None:
            row["evidence"] = {
                "first_lobe_sign": int(res.first_lobe_sign[0]),
                "lobe_snr": _round(res.first_lobe_snr[0], 1),
                "onset_sharpness": _round(res.onset_sharpness[0], 1),
                "onset_offset_s": _round(res.onset_offset_s[0], 3),
                "precursor": bool(res.precursor[0]),
            }
        rows.append(row)
        for shift_s in PICK_SHIFTS_S:
            k = p["pick_index"] + int(round(shift_s * p["sampling_rate_hz"]))
            r = clf.classify(p["data"][None, :], p["sampling_rate_hz"], [k])
            shifted[shift_s].append(int(r.polarity[0]) * p["polarity"])
            nv = naive_polarity(p["data"], p["sampling_rate_hz"], [k])
            naive_shifted[shift_s].append(int(nv[0]) * p["polarity"])
    correct = [r["analyst"] == r["model"] for r in rows]
    shifted_correct = [v == 1 for outcomes in shifted.values() for v in outcomes]
    at_pick = [r["analyst"] * r["model"] for r in rows]
    naive_at_pick = [r["analyst"] * r["naive"] for r in rows]
    return {
        "n": len(rows),
        "n_correct": int(sum(correct)),
        "accuracy": float(np.mean(correct)) if rows else None,
        "accuracy_pick_shifted_pm_0.02_0.05_s": (
            float(np.mean(shifted_correct)) if shifted_correct else None
        ),
        "at_pick": _outcome_counts(at_pick),
        # pick moved by the key (s; < 0 earlier than the labelled onset): right, wrong sign
        "pick_shifted": {f"{shift:+g}": _outcome_counts(v) for shift, v in shifted.items()},
        "naive_rule": {
            "at_pick": _outcome_counts(naive_at_pick),
            "pick_shifted": {
                f"{shift:+g}": _outcome_counts(v) for shift, v in naive_shifted.items()
            },
        },
        "picks": rows,
    }


def _round(value: float, digits: int) -> float | None:
    return round(float(value), digits) if np.isfinite(value) else None


def real_reliability(sets: dict[str, dict], n_bins: int = 10) -> dict:
    """Reliability of the top-class probability over the labelled real picks of all sets (at
    the labelled pick): per equal-width bin the count, mean confidence and accuracy (the
    label is up or down, so an unknown read is never correct), and the ECE."""
    conf, correct = [], []
    for result in sets.values():
        for r in result["picks"]:
            probs = np.array([r["p_up"], r["p_down"], r["p_unknown"]])
            conf.append(probs.max())
            correct.append(POLARITY_OF_LABEL[int(np.argmax(probs))] == r["analyst"])
    conf_a, correct_a = np.array(conf), np.array(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.digitize(conf_a, edges[1:-1]), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        sel = idx == b
        if sel.any():
            ece += sel.mean() * abs(correct_a[sel].mean() - conf_a[sel].mean())
        bins.append(
            {
                "lo": round(float(edges[b]), 3),
                "hi": round(float(edges[b + 1]), 3),
                "n": int(sel.sum()),
                "confidence": round(float(conf_a[sel].mean()), 4) if sel.any() else None,
                "accuracy": round(float(correct_a[sel].mean()), 4) if sel.any() else None,
            }
        )
    return {"sets": sorted(sets), "n": int(conf_a.size), "ece": round(float(ece), 4), "bins": bins}


def plot_reliability(rel: dict, path: str) -> None:
    """The reliability diagram of :func:`real_reliability` (bar counts on a second axis)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.5))
    full = [b for b in rel["bins"] if b["n"]]
    ax.plot([0, 1], [0, 1], color="grey", ls=":")
    ax.plot([b["confidence"] for b in full], [b["accuracy"] for b in full], "o-")
    for b in full:
        ax.annotate(str(b["n"]), (b["confidence"], b["accuracy"]), fontsize=7,
                    textcoords="offset points", xytext=(3, -10))  # fmt: skip
    ax.set(
        xlabel="top-class probability",
        ylabel="fraction read right",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
        title=f"real labelled first motions ({rel['n']}; ECE {rel['ece']:.3f})\n"
        + ", ".join(rel["sets"]),
    )
    ax.title.set_fontsize(8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_real_picks(
    clf: PolarityClassifier, picks: list[dict], rows: list[dict], path: str, who: str = "analyst"
) -> None:
    """The labelled windows as the model sees them (first channel), with both answers (the
    human reading titled ``who``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {1: "up", -1: "down", 0: "unknown"}
    fig, axes = plt.subplots(len(picks), 1, figsize=(8, 1.6 * len(picks)), sharex=True)
    axes = np.atleast_1d(axes)
    rate = clf.config.sampling_rate_hz
    t = (np.arange(clf.config.window_samples) - clf.config.window_pre_samples) / rate
    for ax, p, r in zip(axes, picks, rows, strict=True):
        win, _ = prepare_windows(p["data"][None, :], p["sampling_rate_hz"], [p["pick_index"]],
                                 clf.config)  # fmt: skip
        ax.plot(t, win[0, 0] if win.ndim == 3 else win[0], lw=0.9)
        ax.axvline(0.0, color="r", lw=0.8)
        ax.axhline(0.0, color="k", lw=0.3)
        ax.set_ylabel(p["station_id"].split(".")[1], fontsize=8)
        ax.set_title(
            f"{p['station_id']} {p['time'][11:22]}  {who}: {names[r['analyst']]}  "
            f"model: {names[r['model']]} (up {r['p_up']:.2f}, down {r['p_down']:.2f}, "
            f"unknown {r['p_unknown']:.2f})",
            fontsize=8,
        )
    axes[-1].set_xlabel(
        f"seconds from the labelled P onset (model input, {rate:g} Hz, "
        f"{clf.config.highpass_hz:g} Hz high-pass)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def signed_outcomes(polarity: np.ndarray, labels: np.ndarray) -> dict:
    """Of the windows labelled up or down: how many (``n``), and the fractions read with the
    right sign, the wrong sign and as unknown."""
    truth = POLARITY_OF_LABEL[labels]
    signed = truth != 0
    return {
        "n": int(signed.sum()),
        "right": float(np.mean(polarity[signed] == truth[signed])),
        "wrong_sign": float(np.mean(polarity[signed] == -truth[signed])),
        "unknown": float(np.mean(polarity[signed] == 0)),
    }


def evaluate_linear_phase_fir(
    clf: PolarityClassifier, n: int, seed: int, real_noise: list | None = None
) -> dict:
    """Onsets (SNR 3-100, hard mix) that all passed a datalogger's linear-phase anti-alias FIR,
    which rings before a sharp onset: right / wrong-sign / unknown, at 100 Hz (the common rate,
    where the ringing is inside the model's band unless the input is band-limited) and at all
    training rates."""
    out = {}
    for name, rates in (("100hz", (100.0,)), ("all_rates", SamplerConfig().rates_hz)):
        cfg = replace(
            SamplerConfig().hard(),
            rates_hz=rates,
            digitizer_fraction=1.0,
            digitizer_linear_phase_share=1.0,
            noise_only_fraction=0.0,
            snr_range=(3.0, 100.0),
            loud_fraction=0.0,
        )
        data = generate_dataset(n, clf.config, cfg, seed=seed, real_noise=real_noise)
        polarity, _ = clf.decide(
            clf.prepared_probabilities(data["windows"], native_rate_hz=data["rate_hz"])
        )
        out[name] = signed_outcomes(polarity, data["labels"])
    return out


# the sharp onsets of dataset 9 (corner near Nyquist, t* under a sample: see the dataset module)
SHARP_ONSETS = {
    "sharp_onset_fraction": 1.0,
    "sharp_digitizer_fraction": 1.0,
    "sharp_corner_fraction_range": (0.2, 0.45),
    "sharp_tstar_samples_range": (0.01, 0.5),
    "sharp_kaiser_beta_range": (1.0, 6.0),
}


def evaluate_sharp_onsets(
    clf: PolarityClassifier, n: int, seed: int, real_noise: list | None = None
) -> dict:
    """Hard-mix onsets (first-lobe SNR 3-3000 at 100 Hz: a precursor of a few % of the swing
    stands out of the noise only above SNR ~100) of two kinds that look alike and must be told
    apart by shape: ``fir_precursor``: sharp impulsive onsets through a linear-phase datalogger
    FIR, which rings 1-9% of the swing before them (label: the ground's sign, the main swing);
    ``weak_first_motion``: a true weak first lobe then a 3-50x larger arrival of the other sign
    10-80 ms later (label: the weak lobe's sign). Right / wrong-sign / unknown (the network
    alone)."""
    base = replace(
        SamplerConfig().hard(),
        rates_hz=(100.0,),
        noise_only_fraction=0.0,
        snr_range=(3.0, 3000.0),
        loud_fraction=0.0,
    )
    kinds = {
        "fir_precursor": replace(base, digitizer_linear_phase_share=1.0, **SHARP_ONSETS),
        "weak_first_motion": replace(base, weak_first_fraction=1.0),
    }
    out = {}
    for i, (name, cfg) in enumerate(kinds.items()):
        data = generate_dataset(n, clf.config, cfg, seed=seed + i, real_noise=real_noise)
        polarity, _ = clf.decide(
            clf.prepared_probabilities(data["windows"], native_rate_hz=data["rate_hz"])
        )
        out[name] = signed_outcomes(polarity, data["labels"])
    return out


ODD_RATES_HZ = (44.1, 75.19, 99.0)


def evaluate_odd_rates(
    clf: PolarityClassifier, n: int, seed: int, real_noise: list | None = None
) -> dict:
    """Onsets with SNR >= 5 (hard mix) at rates never trained on whose ratio to the model rate
    needs the fine-grid resampler (:func:`workers.polarity.preprocess.causal_interp_resample`):
    right / wrong-sign / unknown per rate."""
    out = {}
    for rate in ODD_RATES_HZ:
        cfg = replace(SamplerConfig().hard(), rates_hz=(rate,), noise_only_fraction=0.0)
        data = generate_dataset(n, clf.config, cfg, seed=seed, real_noise=real_noise)
        polarity, _ = clf.decide(
            clf.prepared_probabilities(data["windows"], native_rate_hz=data["rate_hz"])
        )
        clear = data["snr"] >= 5
        out[f"{rate:g}"] = signed_outcomes(polarity[clear], data["labels"][clear])
    return out


PICK_ERRORS_S = (-0.08, -0.05, -0.03, -0.015, 0.0, 0.015, 0.03, 0.05, 0.08)


def evaluate_pick_errors(
    clf: PolarityClassifier,
    n: int,
    seed: int,
    real_noise: list | None = None,
    errors_s: tuple[float, ...] = PICK_ERRORS_S,
) -> dict:
    """How far a pick may be off: onsets of the hard mix (no noise-only rows, no mispicks)
    with every onset exactly ``e`` seconds after its pick (``e < 0``: the pick is late, as the
    stream stage's are), ``n`` windows per error and SNR band (3-10, 10-100), the same
    seed for every error; right / wrong-sign / unknown fractions."""
    out: dict = {}
    for lo, hi in ((3.0, 10.0), (10.0, 100.0)):
        cfg = replace(
            SamplerConfig().hard(),
            noise_only_fraction=0.0,
            mispick_fraction=0.0,
            snr_range=(lo, hi),
            loud_fraction=0.0,
        )
        band = {}
        for e in errors_s:
            sampler = WindowSampler(clf.config, cfg, real_noise, seed, pick_error_s=e)
            windows, labels, _, rates = sampler.sample(n)
            polarity, _ = clf.decide(clf.prepared_probabilities(windows, native_rate_hz=rates))
            outcome = signed_outcomes(polarity, labels)
            band[f"{e:+g}"] = {k: v if k == "n" else round(v, 4) for k, v in outcome.items()}
        out[f"snr_{lo:g}_{hi:g}"] = band
    return out


def evaluate_reader(
    clf: PolarityClassifier,
    n: int,
    seed: int,
    real_noise: list | None = None,
    config: SamplerConfig | None = None,
    pick_error_s: float | None = None,
) -> dict:
    """The whole reader (:meth:`PolarityClassifier.classify` on the raw rows, with its
    evidence check and onset re-reads) on ``n`` rows of ``config`` (default the hard mix):
    right / wrong-sign / unknown of the onsets with SNR >= 5 (or all up/down onsets with a
    fixed ``pick_error_s``) and the unknown rate of the rows with nothing to read at the pick
    (noise only, or mispicked)."""
    cfg = config or SamplerConfig().hard()
    sampler = WindowSampler(clf.config, cfg, real_noise, seed, pick_error_s=pick_error_s)
    polarity, labels, snr = [], [], []
    for start in range(0, n, 2000):
        sampler.raw_rows = []
        _, lab, sn, _ = sampler.sample(min(2000, n - start))
        pol = np.zeros(lab.size, dtype=np.int8)
        for rows, rate, raw, pick in sampler.raw_rows:
            pol[rows] = clf.classify(raw, rate, np.full(rows.size, pick)).polarity
        polarity.append(pol)
        labels.append(lab)
        snr.append(sn)
    polarity, labels, snr = (np.concatenate(v) for v in (polarity, labels, snr))
    truth = POLARITY_OF_LABEL[labels]
    sel = (truth != 0) & ((snr >= 5) if pick_error_s is None else True)
    out = {k: v if k == "n" else round(v, 4) for k, v in signed_outcomes(
        polarity[sel], labels[sel]).items()}  # fmt: skip
    nothing = snr == 0
    if pick_error_s is None and nothing.any():
        out["nothing_to_read_unknown_rate"] = round(float(np.mean(polarity[nothing] == 0)), 4)
    return out


def evaluate_whole_reader(
    clf: PolarityClassifier, n: int, seed: int, real_noise: list | None = None
) -> dict:
    """:func:`evaluate_reader` on the hard mix (``n`` rows, ``seed``), and on onsets with
    SNR 3-100 (``n // 4`` rows each) exactly 50 ms before and after their picks (``+0.05``:
    the onset after the pick, an early pick) and 50 ms after them among weak first motions
    before larger swings of the other sign (an early pick sees the swing first)."""
    onsets = replace(
        SamplerConfig().hard(),
        noise_only_fraction=0.0,
        mispick_fraction=0.0,
        snr_range=(3.0, 100.0),
        loud_fraction=0.0,
    )
    out = {"hard_snr_ge_5": evaluate_reader(clf, n, seed, real_noise)}
    for e in (-0.05, 0.05):
        out[f"onset_after_pick_{e:+g}_s"] = evaluate_reader(
            clf, n // 4, seed + 1, real_noise, onsets, pick_error_s=e
        )
    weak = replace(onsets, rates_hz=(100.0,), weak_first_fraction=1.0)
    out["weak_first_motion_onset_after_pick_+0.05_s"] = evaluate_reader(
        clf, n // 4, seed + 2, real_noise, weak, pick_error_s=0.05
    )
    return out


def cut_row(pick: dict, before_s: float | None, after_s: float | None) -> dict:
    """A real pick's row cut to ``before_s`` before its labelled pick and ``after_s`` after
    it (None: as it is); the pick index follows."""
    rate = pick["sampling_rate_hz"]
    k = pick["pick_index"]
    a = 0 if before_s is None else max(0, k - int(round(before_s * rate)))
    b = None if after_s is None else k + int(round(after_s * rate))
    return {**pick, "data": pick["data"][a:b], "pick_index": k - a}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="model stem or shipped name (default)")
    parser.add_argument("--n", type=int, default=20000, help="synthetic held-out windows")
    parser.add_argument("--seed", type=int, default=1000, help="synthetic held-out seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--update-card", action="store_true", help="write metrics into card")
    parser.add_argument("--json", default=None, help="also write the metrics to this file")
    parser.add_argument("--plot", default=None, help="write a PNG: outcome vs SNR, reliability")
    parser.add_argument(
        "--reliability-plot", default=None, help="write the real-data reliability diagram (PNG)"
    )
    parser.add_argument(
        "--real-only", action="store_true", help="skip the synthetic sets (real data only)"
    )
    parser.add_argument(
        "--cut-before-s", type=float, default=None,
        help="real sets: cut each row this long before its labelled pick (as event datasets "
             "cut windows; default: the whole record)",
    )  # fmt: skip
    parser.add_argument(
        "--cut-after-s", type=float, default=None,
        help="real sets: cut each row this long after its labelled pick",
    )  # fmt: skip
    parser.add_argument(
        "--labels", nargs="+", default=None, metavar="FILE",
        help="your analyst first motions instead of the shipped real sets: P picks with a "
             "polarity in QuakeML or another event format obspy reads (SEISAN S-files, "
             "NonLinLoc .hyp; a file or folder), HYPO71 phase cards (a file or folder), the CSV "
             "pair events.csv picks.csv, or a picks CSV alone (station_id, phase, time, "
             "polarity); needs --waveforms",
    )  # fmt: skip
    parser.add_argument(
        "--waveforms", nargs="+", default=None, metavar="PATH",
        help="with --labels: miniSEED (or anything obspy reads) files, folders, globs, or an "
             "SDS archive root holding the labelled stations' verticals",
    )  # fmt: skip
    parser.add_argument(
        "--data-dir", default=None,
        help="folder holding texnet2017/, pr2017_noise/, ingv_fmpc/ (default: shared/data "
             "beside the checkout, or $FIRSTMOTION_SHARED_DATA)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(2)
    clf = PolarityClassifier.load(args.model, device=args.device)
    for name in ("cut_before_s", "cut_after_s"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise InputError(f"--{name.replace('_', '-')} must be > 0, got {value}")
    if bool(args.labels) != bool(args.waveforms):
        raise InputError("--labels and --waveforms go together (your first motions and the "
                         "records they were read on)")  # fmt: skip
    data_dir = Path(args.data_dir) if args.data_dir else shared_data_dir()
    if args.data_dir and not data_dir.is_dir():
        raise InputError(f"--data-dir {data_dir}: no such folder")
    real_noise = load_real_noise(data_dir) if data_dir.exists() else []
    if not real_noise and not args.real_only:
        log.warning("no real noise under %s: the synthetic sets use synthetic noise only, "
                    "so their figures are not the card's (--data-dir)", data_dir)  # fmt: skip
    metrics = (
        {}
        if args.real_only
        else {"synthetic_hard": evaluate_synthetic(clf, args.n, args.seed, real_noise, args.plot)}
    )
    real_sets = (  # each loader gives [] where its waveforms are absent
        ("texnet2017_manual_polarities", "_texnet", lambda: load_texnet_polarities(data_dir),
         "analyst"),
        ("pr2017_onsets_read_by_us", "_pr2017", lambda: load_pr2017_onsets(data_dir),
         "our reading"),
        ("uh2010_onsets_read_by_us", "_uh2010", load_uh2010_onsets, "our reading"),
        ("ingv_fmpc_analyst_polarities", "_ingv", lambda: load_ingv_fmpc(data_dir), "analyst"),
    )  # fmt: skip
    left_out: list[dict] = []  # the user's labels not read, and why
    if args.labels:  # the user's own labels replace the shipped sets
        real_sets = (("labelled", "_labelled",
                      lambda: load_labelled(args.labels, args.waveforms, left_out=left_out),
                      "analyst"),)  # fmt: skip
    for key, suffix, loader, who in real_sets:
        picks = loader()
        if not picks:
            log.warning("%s: no waveforms under %s, skipped (--data-dir)", key, data_dir)
            continue
        picks = [cut_row(p, args.cut_before_s, args.cut_after_s) for p in picks]
        metrics[key] = evaluate_real_picks(clf, picks)
        if key == "labelled":
            metrics[key]["left_out"] = left_out
        if args.plot:
            stem = Path(args.plot)
            path = str(stem.with_name(stem.stem + suffix + stem.suffix))
            plot_real_picks(clf, picks, metrics[key]["picks"], path, who)
    real = {k: v for k, v in metrics.items() if k != "synthetic_hard"}
    if real:
        metrics["real_reliability"] = real_reliability(real)
        if args.reliability_plot:
            plot_reliability(metrics["real_reliability"], args.reliability_plot)
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    if args.update_card:
        if args.model is None or "/" not in str(args.model):
            log.error("--update-card needs --model PATH (a file stem, not a shipped name)")
            return 2
        stem = Path(args.model).with_suffix("") if args.model.endswith(".json") else args.model
        card_path = Path(str(stem) + ".json")
        card = json.loads(card_path.read_text())
        if args.real_only:
            log.error("--update-card needs the synthetic sets too (drop --real-only)")
            return 2
        card.setdefault("metrics", {}).update(metrics)
        card["metrics"]["eval_command"] = (
            f"firstmotion polarity eval --model {args.model} --n {args.n} --seed {args.seed}"
        )
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        log.info("metrics written into %s", card_path)
    return 0
