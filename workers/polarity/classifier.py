"""``PolarityClassifier``: raw vertical rows + pick samples in, first-motion polarities out.

The classifier owns windowing, resampling, normalisation (:mod:`workers.polarity.preprocess`),
batching and test-time flip augmentation; callers hand it raw counts at any rate >= 40 Hz.

Flip augmentation: each window ``x`` and its negation ``-x`` are classified in two separate,
identically shaped forward passes; with temperature-scaled softmax outputs ``f``::

    p_up = (f(x)_up + f(-x)_down) / 2,  p_down = (f(x)_down + f(-x)_up) / 2,
    p_unknown = (f(x)_unknown + f(-x)_unknown) / 2

so negating the input swaps ``p_up`` and ``p_down`` exactly (the preprocessing is odd, and the
two passes trade places).

Precision: ``"float32"`` (default) or ``"bfloat16"``, which runs the network's forward passes
under :func:`torch.autocast` (convolutions and matrix products in bf16, softmax and the decision
in float32) on CPU or CUDA; the preprocessing stays float64/float32 either way. On the hard
synthetic mix bf16 gave the same decision as float32 for every window (README, "Polarity
model"); it is what a GPU worker should run.

Decision: ``+1``/``-1`` when ``max(p_up, p_down) >= thresholds.decision`` and that class also
beats ``p_unknown``, else ``0``. ``confidence`` is the probability of the returned class.

.. seealso:: SeisBench ``WaveformModel`` (model-owned pre-processing, rate validation) and its
   ``name.json`` + ``name.pt`` model cards; Guo et al. (2017), On calibration of modern neural
   networks (temperature scaling).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike

from firstmotion import __version__ as FIRSTMOTION_VERSION
from firstmotion.config import POLARITY_PRECISIONS
from firstmotion.devices import torch_device
from firstmotion.onsets import aic_onsets_near
from workers.polarity.evidence import (
    AIC_AFTER_S,
    AIC_BEFORE_S,
    AIC_CONTEXT_S,
    AIC_MIN_CONTEXT_S,
    AIC_MIN_JUMP,
    PRECURSOR_MAX_NATIVE_HZ,
    PRECURSOR_MAX_RISE_RATIO,
    Evidence,
    first_lobe_evidence,
)
from workers.polarity.fircorrect import fir_precursor_correction
from workers.polarity.model import LABELS, build_model, inference_form
from workers.polarity.preprocess import (
    REASON_OK,
    PreprocessConfig,
    complete_rows,
    linear_windows,
    normalise_windows,
    short_rows,
)

CARD_FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "polarity_v13"
# autocast dtype of each precision (None: no autocast); "auto" resolves to one of them
# (:func:`resolve_precision`)
PRECISIONS = {p: None if p == "float32" else getattr(torch, p) for p in POLARITY_PRECISIONS
              if p != "auto"}  # fmt: skip
# forward passes per network call on a CPU: a few hundred windows' activations stay in the
# cores' caches; 2,048 at once ran at half the rate of 512 (2 threads, AVX-512)
CPU_PASSES = 512
# fewest rows a thread of classify() reads as a block: below, one thread reads them all
MIN_BLOCK_ROWS = 32
REASON_LOW_CONFIDENCE = "low_confidence"
REASON_EVIDENCE_CONFLICT = "evidence_conflict"
REASON_FIRST_LOBE = "first_lobe"
REASON_PICK_SENSITIVE = "pick_sensitive"
# the reasons of a window that was read (up, down or unknown); any other reason is a window
# that could not be read (NaN, flat, too short)
READ_REASONS = (
    REASON_OK,
    REASON_LOW_CONFIDENCE,
    REASON_EVIDENCE_CONFLICT,
    REASON_FIRST_LOBE,
    REASON_PICK_SENSITIVE,
)
# the card's optional ``reading`` section (see PolarityClassifier.classify)
READING_KEYS = (
    "k_sigma",
    "precursor_max_ratio",
    "precursor_max_width_s",
    "read_main_swing",
    "refine_unknown",
    "refine_max_s",
    "conflict_min_snr",
    "precursor_native_check",
    "precursor_max_native_hz",
    "precursor_max_rise_ratio",
    "refine_confident_beyond_s",
    "refine_far_min_confidence",
    "evidence_min_snr",
    "shift_check_s",
    "shift_check_below",
    "own_onset_reach_s",
)


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in str(text).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


@dataclass(frozen=True)
class PolarityResult:
    """Output of :meth:`PolarityClassifier.classify` for N windows.

    polarity int8 (N,) +1 up, -1 down, 0 unknown; probabilities float32 (N, 3) columns
    [up, down, unknown]; confidence float32 (N,) probability of the returned class; reason
    str array (N,): '' for a window the network read, 'first_lobe' (read from its first lobe
    where the network left it unknown), 'low_confidence', 'evidence_conflict' or
    'pick_sensitive' (read, unknown: the read of the other sign with the pick moved), else
    why it could not be read: 'nan', 'flat', 'too_short' (probabilities
    [0, 0, 1]); :data:`READ_REASONS` are the reasons of read windows.
    """

    polarity: np.ndarray
    probabilities: np.ndarray
    confidence: np.ndarray
    reason: np.ndarray
    # the evidence of the lobe read (:mod:`workers.polarity.evidence`), None for models whose
    # card has no ``reading`` section: sign of the first lobe beyond 4 noise sigmas (0: none),
    # the read lobe's peak in noise sigmas and its rise in sigmas per 10 ms, the onset the
    # reading refers to in seconds from the given pick, and whether an opposite lobe before
    # the main swing was read as a datalogger precursor
    first_lobe_sign: np.ndarray | None = None
    first_lobe_snr: np.ndarray | None = None
    onset_sharpness: np.ndarray | None = None
    onset_offset_s: np.ndarray | None = None
    window_offset_s: np.ndarray | None = None  # where the read window's centre is (s from pick)
    precursor: np.ndarray | None = None
    # read at the second onset estimate (classify's second_index; None: none was given)
    second_read: np.ndarray | None = None
    # read at the reader's own onset estimate near the pick (the card's
    # reading.own_onset_reach_s; None: a card without it)
    own_onset_read: np.ndarray | None = None


def _scatter(parts: list[tuple[np.ndarray | slice, PolarityResult]], n: int) -> PolarityResult:
    """One result of ``n`` rows from the results of row subsets (boolean masks over the rows,
    or slices: batches)."""
    fields = {}
    for f in PolarityResult.__dataclass_fields__:
        values = [(rows, getattr(r, f)) for rows, r in parts]
        present = [v for _, v in values if v is not None]
        if not present:
            fields[f] = None
            continue
        # a field some subsets lack (a read flag of a step they skip) is False / 0 there
        dtype = np.result_type(*(v.dtype for v in present))
        out = np.zeros((n, *present[0].shape[1:]), dtype=dtype)
        for rows, v in values:
            if v is not None:
                out[rows] = v
        fields[f] = out
    return PolarityResult(**fields)


def validate_card(card: dict) -> None:
    """Raise ``ValueError`` when this code cannot honour a model card."""
    if not isinstance(card, dict):
        raise ValueError("model card must be a JSON object")
    fmt = card.get("format_version")
    if fmt != CARD_FORMAT_VERSION:
        raise ValueError(
            f"model card format_version {fmt!r} not supported (this code reads "
            f"{CARD_FORMAT_VERSION})"
        )
    minimum = card.get("min_firstmotion_version")
    if minimum is None:
        raise ValueError("model card lacks min_firstmotion_version")
    if _version_tuple(minimum) > _version_tuple(FIRSTMOTION_VERSION):
        raise ValueError(
            f"model needs firstmotion >= {minimum}, this is firstmotion {FIRSTMOTION_VERSION}"
        )
    labels = card.get("labels")
    if tuple(labels or ()) != LABELS:
        raise ValueError(f"model card labels {labels!r} differ from {list(LABELS)}")
    arch = card.get("architecture")
    if not isinstance(arch, dict) or "class" not in arch or "args" not in arch:
        raise ValueError("model card lacks architecture.class / architecture.args")
    if "preprocessing" not in card:
        raise ValueError("model card lacks preprocessing")
    PreprocessConfig.from_dict(card["preprocessing"])
    window = card["preprocessing"].get("window_pre_samples", 0) + card["preprocessing"].get(
        "window_post_samples", 0
    )
    n_channels = PreprocessConfig.from_dict(card["preprocessing"]).n_channels
    if arch["args"].get("in_channels", 1) != n_channels:
        norm = card["preprocessing"].get("normalisation")
        raise ValueError(
            f"architecture in_channels {arch['args'].get('in_channels', 1)} differs from the "
            f"{n_channels} channel(s) of normalisation {norm!r}"
        )
    if arch["args"].get("window_samples") != window:
        raise ValueError(
            f"architecture window_samples {arch['args'].get('window_samples')} differs from "
            f"the preprocessing window {window}"
        )
    reading = card.get("reading", {})
    unknown = set(reading) - set(READING_KEYS) if isinstance(reading, dict) else None
    if unknown is None or unknown:
        raise ValueError(f"model card reading must be an object of {READING_KEYS}, got {reading!r}")
    temperature = card.get("temperature", 1.0)
    if not (isinstance(temperature, int | float) and temperature > 0):
        raise ValueError(f"model card temperature must be > 0, got {temperature!r}")
    decision = card.get("thresholds", {}).get("decision")
    if not (isinstance(decision, int | float) and 0.0 <= decision <= 1.0):
        raise ValueError(f"model card thresholds.decision must be in [0, 1], got {decision!r}")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA device of compute capability 8
    or more, or a CPU with AVX512-BF16 or AMX tiles (torch's oneDNN kernels use them).
    Elsewhere autocast to bfloat16 is emulated and slower than float32."""
    if device.type == "cuda":  # compute capability 8+ (emulated below: not faster)
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type != "cpu":
        return False
    probes = (getattr(torch.cpu, name, None)
              for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))  # fmt: skip
    return any(bool(probe()) for probe in probes if probe is not None)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``precision`` itself, or for ``"auto"`` bfloat16 where ``device`` computes it in
    hardware (:func:`native_bf16`) and float32 elsewhere. On the real analyst sets both
    precisions give the same read at every row (docs/polarity.md, throughput)."""
    if precision != "auto":
        return precision
    return "bfloat16" if native_bf16(device) else "float32"


class PolarityClassifier:
    """A trained polarity network with its model card; see :meth:`load` and :meth:`classify`.

    ``threads`` (CPU): :meth:`classify` reads blocks of rows in this many threads at once,
    each block on one torch thread (the whole reader, preprocessing included, runs in
    parallel, where torch's own threads parallelise the network alone and wait on each other
    at every layer); with more than one, the process's torch intra-op threads are set to 1.
    The reads are those of one thread (tested). Ignored on a GPU."""

    def __init__(
        self,
        model: torch.nn.Module,
        card: dict,
        device: str | torch.device = "cpu",
        precision: str = "float32",
        threads: int = 1,
    ) -> None:
        if precision not in POLARITY_PRECISIONS:
            raise ValueError(
                f"precision must be one of {sorted(POLARITY_PRECISIONS)}, got {precision!r}"
            )
        validate_card(card)
        self.card = card
        self.config = PreprocessConfig.from_dict(card["preprocessing"])
        self.temperature = float(card.get("temperature", 1.0))
        self.decision_threshold = float(card["thresholds"]["decision"])
        # the evidence check of classify() (empty: the network's read alone)
        self.reading = dict(card.get("reading") or {})
        # isolated one-sample glitches in the noise before a pick repaired before reading
        # (firstmotion.glitches.repair_glitches); False reads the rows as given
        self.despike = True
        self.device = torch_device(device, "polarity.device")
        self.precision = resolve_precision(precision, self.device)  # "auto" resolved
        self.model = model.to(self.device).eval()
        # what runs: batch norm folded into the convolutions (same output to rounding)
        self._net = inference_form(self.model)
        # CPU threads: blocks of rows read at once, each on one torch thread (classify())
        self.threads = max(1, int(threads)) if self.device.type == "cpu" else 1
        self._pool = None  # (its threads start with the first block read)
        if self.threads > 1:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="polarity-rows")
            torch.set_num_threads(1)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        name_or_path: str | Path | None = None,
        device: str | torch.device = "auto",
        precision: str = "float32",
        threads: int = 1,
    ) -> PolarityClassifier:
        """Load ``<name>.json`` + ``<name>.pt`` to run on ``device`` at ``precision`` (and
        ``threads``: see :class:`PolarityClassifier`).

        ``None`` loads the default shipped model from the ``model_weights`` package (via
        :mod:`importlib.resources`, so it works installed); a bare name loads that shipped
        model; a path (with or without suffix) loads files from disk. Refuses (``ValueError``) a
        card it cannot honour or weights whose SHA-256 differs from the card's.
        """
        if name_or_path is None:
            name_or_path = DEFAULT_MODEL_NAME
        text = str(name_or_path)
        if "/" not in text and "\\" not in text and not text.endswith((".json", ".pt")):
            base = resources.files("model_weights")
            card_bytes = base.joinpath(f"{text}.json").read_bytes()
            weight_bytes = base.joinpath(f"{text}.pt").read_bytes()
        else:
            stem = Path(text)
            if stem.suffix in (".json", ".pt"):
                stem = stem.with_suffix("")
            card_bytes = stem.with_suffix(".json").read_bytes()
            weight_bytes = stem.with_suffix(".pt").read_bytes()
        card = json.loads(card_bytes)
        validate_card(card)
        expected = card.get("weights_sha256")
        if expected and hashlib.sha256(weight_bytes).hexdigest() != expected:
            raise ValueError("model weights do not match the card's weights_sha256")
        model = build_model(card["architecture"]["class"], card["architecture"]["args"])
        state = torch.load(io.BytesIO(weight_bytes), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return cls(model, card, device=device, precision=precision, threads=threads)

    # ------------------------------------------------------------------ inference
    def window_logits(self, windows: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Raw logits (N, 3) float32 of preprocessed windows (N, [C,] window_samples)."""
        out = np.empty((windows.shape[0], len(LABELS)), dtype=np.float32)
        dtype = PRECISIONS[self.precision]
        cast = torch.autocast(self.device.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with torch.inference_mode(), cast:
            for start in range(0, windows.shape[0], batch_size):
                chunk = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size]))
                logits = self._net(chunk.to(self.device, non_blocking=True))
                out[start : start + chunk.shape[0]] = logits.float().cpu().numpy()
        return out

    def window_probabilities(self, windows: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Flip-augmented, temperature-scaled probabilities (N, 3) float32 of windows."""
        windows = np.asarray(windows, dtype=np.float32)
        n = windows.shape[0]
        # the window and its flip side by side: one pass of twice the batch
        both = np.empty((2 * n, *windows.shape[1:]), dtype=np.float32)
        both[0::2] = windows
        np.negative(windows, out=both[1::2])
        chunk = 2 * batch_size if self.device.type != "cpu" else min(2 * batch_size, CPU_PASSES)
        logits = self.window_logits(both, chunk) / self.temperature
        direct, flipped = _softmax(logits[0::2]), _softmax(logits[1::2])
        probs = np.empty_like(direct)
        probs[:, 0] = (direct[:, 0] + flipped[:, 1]) / 2
        probs[:, 1] = (direct[:, 1] + flipped[:, 0]) / 2
        probs[:, 2] = (direct[:, 2] + flipped[:, 2]) / 2
        return probs

    def decide(self, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Polarity int8 (N,) and confidence float32 (N,) from probabilities (N, 3)."""
        up_wins = probs[:, 0] >= probs[:, 1]
        best = np.where(up_wins, probs[:, 0], probs[:, 1])
        sign = np.where(up_wins, 1, -1)
        take = (best >= self.decision_threshold) & (best > probs[:, 2])
        polarity = np.where(take, sign, 0).astype(np.int8)
        confidence = np.where(take, best, probs[:, 2]).astype(np.float32)
        return polarity, confidence

    def classify(
        self,
        data: ArrayLike,
        sampling_rate: float,
        pick_index: ArrayLike,
        *,
        batch_size: int = 1024,
        fir: list[tuple[ArrayLike, float]] | None = None,
        shift_check: bool = True,
        second_index: ArrayLike | None = None,
    ) -> PolarityResult:
        """Classify the P first motion of each row.

        ``data`` (N, L) raw vertical counts or velocity at ``sampling_rate`` Hz (>= 40 Hz, else
        ``ValueError``); ``pick_index`` (N,) the P pick sample in each row. Bad windows (NaN,
        flat, too short) get polarity 0 with a reason, never an exception. A row holding less
        than the model window around the pick is read completed where it holds enough of it
        (:func:`preprocess.complete_rows`: its noise mirrored before, its last value after).
        An isolated one-sample glitch in the noise before the pick (a telemetry bit error) is
        repaired first (:func:`firstmotion.glitches.repair_glitches`; ``self.despike = False``:
        not).

        With a ``reading`` section in the card (:meth:`read_windows`) the network's read is
        checked against the first-lobe evidence: a lobe the evidence reads as a datalogger
        precursor of a much larger opposite swing gives the swing's sign (the network's up/down
        probabilities swap), and a row the network leaves unknown while the evidence sees an
        onset away from the pick is read again with the window centred on that onset; and a
        read under ``reading.shift_check_below`` confidence that the reader gives the other
        sign with the pick moved ``reading.shift_check_s`` earlier or later becomes unknown
        (reason ``pick_sensitive``; ``shift_check=False`` skips this check).

        ``fir``: the linear-phase FIR stages the rows passed, as (taps, input rate in Hz)
        (:func:`workers.polarity.fircorrect.linear_phase_firs` of the channel's StationXML
        response); their acausal precursors are removed first
        (:func:`~workers.polarity.fircorrect.fir_precursor_correction`).

        With ``reading.own_onset_reach_s`` in the card, a row given without a second estimate
        and left unknown is read again at the reader's own estimate of the onset near the pick
        (:meth:`_read_own_onset`; ``own_onset_read`` flags those reads).

        ``second_index`` (N,): a second estimate of each row's onset (the learned picker's
        arrival time beside the refined onset it reads at; NaN or the pick itself: none). A row
        the whole reader leaves unknown at the pick (``low_confidence`` or ``pick_sensitive``)
        is read again, by the whole reader, at its second estimate, and where that gives up or
        down the row takes that read; ``onset_offset_s`` and ``window_offset_s`` then count
        from the given pick as before, so they say where the read was made.
        """
        rows = self._row_blocks(data, pick_index)
        kwargs = {"batch_size": batch_size, "fir": fir, "shift_check": shift_check}
        if rows is None:
            return self._classify(data, sampling_rate, pick_index, second_index=second_index,
                                  **kwargs)  # fmt: skip
        second = None if second_index is None else np.asarray(second_index, dtype=np.float64)
        return self._read_blocks(rows, np.asarray(data), sampling_rate, np.asarray(pick_index),
                                 second, kwargs, self._pool)  # fmt: skip

    def _read_blocks(self, blocks, data, sampling_rate, picks, second, kwargs, pool=None):
        """Rows (N, L) read block by block (``blocks``: slices of the rows), each by
        :meth:`_classify` with ``kwargs``, in ``pool``'s threads when given, merged into one
        result of N rows."""

        def read(block: slice) -> PolarityResult:
            at_second = None if second is None else second[block]
            return self._classify(data[block], sampling_rate, picks[block], **kwargs,
                                  second_index=at_second)  # fmt: skip

        results = pool.map(read, blocks) if pool is not None else map(read, blocks)
        return _scatter(list(zip(blocks, results, strict=True)), data.shape[0])

    def _row_blocks(self, data: ArrayLike, pick_index: ArrayLike) -> list[slice] | None:
        """Contiguous blocks of rows for the threads, or None: one thread, one row per pick
        not given, or too few rows for a block of ``MIN_BLOCK_ROWS`` in each thread."""
        shape, picks = np.shape(data), np.shape(pick_index)
        if self.threads < 2 or len(shape) != 2 or picks != (shape[0],):
            return None
        n_blocks = min(self.threads, shape[0] // MIN_BLOCK_ROWS)
        if n_blocks < 2:
            return None
        edges = np.linspace(0, shape[0], n_blocks + 1).round().astype(int)
        return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]

    def _classify(
        self,
        data: ArrayLike,
        sampling_rate: float,
        pick_index: ArrayLike,
        *,
        batch_size: int = 1024,
        fir: list[tuple[ArrayLike, float]] | None = None,
        shift_check: bool = True,
        second_index: ArrayLike | None = None,
        own_onset: bool = True,
    ) -> PolarityResult:
        """:meth:`classify` in the calling thread (``own_onset=False``: without the reader's
        own onset estimate, for the reads it makes itself)."""
        data = np.asarray(data)
        picks = np.asarray(pick_index)
        second = None if second_index is None else np.asarray(second_index, dtype=np.float64)
        if fir:  # rows with gaps (NaN) stay as they are: a transform would spread the gap
            data = np.array(data, dtype=np.float64, ndmin=2)
            finite = np.isfinite(data).all(axis=1)
            for taps, fir_rate in fir:
                data[finite] = fir_precursor_correction(data[finite], sampling_rate, taps, fir_rate)
        if data.ndim == 1 and picks.size == 1:
            data, picks = data[None, :], picks.reshape(1)
        short = (
            short_rows(data.shape[1], sampling_rate, picks, self.config)
            if data.ndim == 2 and picks.shape == (data.shape[0],)
            else np.zeros(0, dtype=bool)
        )
        if short.any():  # rows cut tight around the pick: read completed
            rows, at = complete_rows(data[short], sampling_rate, picks[short], self.config)
            moved = at - picks[short]
            parts = [(short, self._classify(
                rows, sampling_rate, at, batch_size=batch_size, shift_check=shift_check,
                second_index=None if second is None else second[short] + moved,
                own_onset=False,  # its change point would be sought in the completion
            ))]  # fmt: skip
            if not short.all():
                rest = ~short
                parts.append((rest, self._classify(
                    data[rest], sampling_rate, picks[rest], batch_size=batch_size,
                    shift_check=shift_check,
                    second_index=None if second is None else second[rest],
                    own_onset=own_onset,
                )))  # fmt: skip
            return _scatter(parts, data.shape[0])
        if data.ndim == 2 and picks.ndim == 1 and data.shape[0] == picks.shape[0] > batch_size:
            # bounded memory: preprocess (N, context) float64 segments a batch at a time
            # (the FIR correction is applied already)
            batches = [slice(a, a + batch_size) for a in range(0, data.shape[0], batch_size)]
            kwargs = {"batch_size": batch_size, "shift_check": shift_check,
                      "own_onset": own_onset}  # fmt: skip
            return self._read_blocks(batches, data, sampling_rate, picks, second, kwargs)
        lin, reasons = linear_windows(data, sampling_rate, picks, self.config, despike=self.despike)
        probs, ev = self.read_windows(lin, reasons, batch_size, float(sampling_rate))
        polarity, confidence = self.decide(probs)
        extra: dict = {}
        conflict = np.zeros(polarity.shape, dtype=bool)
        lobe = np.zeros(polarity.shape, dtype=bool)
        if ev is not None:
            probs, ev, offset, conflict, moved = self._recheck(
                data, sampling_rate, picks, reasons, probs, ev, batch_size
            )
            polarity, confidence = self.decide(probs)
            polarity[conflict] = 0
            confidence[conflict] = probs[conflict, 2]
            lobe = self._lobe_reads(polarity, probs, ev, conflict, reasons)
            polarity[lobe] = ev.read_sign[lobe]
            confidence[lobe] = probs[lobe, np.where(ev.read_sign[lobe] > 0, 0, 1)]
            extra = {
                "first_lobe_sign": ev.first_sign.astype(np.int8),
                "first_lobe_snr": ev.first_snr.astype(np.float32),
                "onset_sharpness": ev.sharpness.astype(np.float32),
                "onset_offset_s": (offset / self.config.sampling_rate_hz).astype(np.float32),
                "window_offset_s": (moved / float(sampling_rate)).astype(np.float32),
                "precursor": ev.precursor.copy(),
            }
        ok = reasons == REASON_OK
        polarity[~ok] = 0
        confidence[~ok] = 1.0
        sensitive = np.zeros(polarity.shape, dtype=bool)
        if shift_check and ev is not None:
            sensitive = self._pick_sensitive(data, sampling_rate, picks, polarity, confidence, ok)
            polarity[sensitive] = 0
            confidence[sensitive] = probs[sensitive, 2]
        reasons = reasons.astype(object)
        reasons[ok & (polarity == 0)] = REASON_LOW_CONFIDENCE
        reasons[ok & conflict] = REASON_EVIDENCE_CONFLICT
        reasons[ok & lobe] = REASON_FIRST_LOBE
        reasons[sensitive] = REASON_PICK_SENSITIVE
        result = PolarityResult(
            polarity=polarity,
            probabilities=probs,
            confidence=confidence,
            reason=reasons.astype(str),
            **extra,
        )
        if second is not None and ev is not None:
            result = self._read_second(data, sampling_rate, picks, second, result, batch_size)
        if own_onset and ev is not None and self.reading.get("own_onset_reach_s", 0.0) > 0:
            result = self._read_own_onset(data, sampling_rate, picks, result, batch_size, second)
        return result

    def _read_own_onset(self, data, sampling_rate, picks, result, batch_size, given=None):
        """``result`` with its unknown reads (``low_confidence``, ``pick_sensitive``) of picks
        given alone (no ``given`` second estimate of their onset, or that one at the pick)
        read again at the reader's own estimate of the onset near the pick
        (:func:`firstmotion.onsets.aic_onsets_near`), where the evidence sees a first lobe
        near the pick, the change point is an onset (it raises the 1-20 Hz RMS
        :data:`evidence.AIC_MIN_JUMP` times) and lies within ``reading.own_onset_reach_s`` of
        the pick and, beyond
        ``reading.refine_confident_beyond_s``, the read there has at least
        ``reading.refine_far_min_confidence`` (the bounds of the onset re-reads: a
        change point further away may be a later swing behind a weak first motion), and its
        sign does not contradict a first lobe already seen at the given pick (a weak first
        motion before a larger opposite arrival, whose change point is the arrival)."""
        picks_1d = np.atleast_1d(picks).astype(np.float64)
        alone = np.ones(picks_1d.shape, dtype=bool)
        if given is not None:
            given = np.broadcast_to(given, picks_1d.shape)
            alone = ~np.isfinite(given) | (np.abs(np.rint(given) - np.rint(picks_1d)) < 1)
        # where the evidence sees a first motion (a lobe of 4 noise sigmas) near the pick
        seen = result.first_lobe_sign != 0 if result.first_lobe_sign is not None else alone
        unsure = np.flatnonzero(
            alone & seen & np.isin(result.reason, (REASON_LOW_CONFIDENCE, REASON_PICK_SENSITIVE))
        )
        if unsure.size == 0:
            return self._with_flag(result, "own_onset_read", unsure)
        second = np.full(picks_1d.shape, np.nan)
        onset, jump = aic_onsets_near(
            np.atleast_2d(data)[unsure], sampling_rate, picks_1d[unsure],
            before_s=AIC_BEFORE_S, after_s=AIC_AFTER_S, context_s=AIC_CONTEXT_S,
            min_context_s=AIC_MIN_CONTEXT_S,
        )  # fmt: skip
        second[unsure] = np.where(jump >= AIC_MIN_JUMP, onset, np.nan)  # a change, not noise
        reach = float(self.reading["own_onset_reach_s"]) * float(sampling_rate)
        second[np.abs(second - picks_1d) > reach] = np.nan
        far_s = float(self.reading.get("refine_confident_beyond_s", np.inf))
        far_conf = float(self.reading.get("refine_far_min_confidence", 0.0))
        far = far_s * float(sampling_rate)
        return self._read_second(
            data, sampling_rate, picks, second, result, batch_size, far, far_conf,
            flag="own_onset_read", agree_first_lobe=True,
        )  # fmt: skip

    @staticmethod
    def _with_flag(result: PolarityResult, name: str, rows: np.ndarray) -> PolarityResult:
        """``result`` with its boolean field ``name`` also set at ``rows`` (False elsewhere
        where it was None)."""
        old = getattr(result, name)
        flags = np.zeros(result.polarity.shape, dtype=bool) if old is None else old.copy()
        flags[rows] = True
        return replace(result, **{name: flags})

    def _read_second(
        self,
        data,
        sampling_rate,
        picks,
        second,
        result,
        batch_size,
        far=np.inf,
        far_confidence=0.0,
        flag="second_read",
        agree_first_lobe=False,
    ):
        """``result`` with its unknown reads (``low_confidence``, ``pick_sensitive``) replaced
        by the whole reader's up or down read at ``second`` (input samples), where the rows
        have a second onset estimate at least one sample from the pick (see :meth:`classify`),
        and where it is more than ``far`` samples from the pick, a read of at least
        ``far_confidence``; the rows read so are flagged in the result's field ``flag``."""
        picks_1d = np.atleast_1d(picks).astype(np.float64)
        second = np.broadcast_to(second, picks_1d.shape)
        unsure = np.isin(result.reason, (REASON_LOW_CONFIDENCE, REASON_PICK_SENSITIVE))
        rows = np.flatnonzero(
            unsure & np.isfinite(second) & (np.abs(np.rint(second) - np.rint(picks_1d)) >= 1)
        )
        none = np.zeros(0, dtype=np.int64)
        if rows.size == 0:
            return self._with_flag(result, flag, none)
        at = np.rint(second[rows]).astype(np.int64)
        again = self._classify(
            np.atleast_2d(data)[rows], sampling_rate, at, batch_size=batch_size, own_onset=False
        )
        near = np.abs(at - np.rint(picks_1d[rows])) <= far
        take = (again.polarity != 0) & (near | (again.confidence >= far_confidence))
        if agree_first_lobe and result.first_lobe_sign is not None:
            lobe = result.first_lobe_sign[rows]
            take &= (lobe == 0) | (lobe == again.polarity)
        if not take.any():
            return self._with_flag(result, flag, none)
        rows, src = rows[take], np.flatnonzero(take)
        moved_s = (at[src] - np.rint(picks_1d[rows])) / float(sampling_rate)
        out = {f: getattr(result, f) for f in PolarityResult.__dataclass_fields__}
        for f in out:
            value, new = out[f], getattr(again, f)
            if value is None or new is None:
                continue
            # (reasons as objects: a fixed-width string array would cut a longer reason)
            value = value.astype(object) if f == "reason" else value.copy()
            value[rows] = new[src]
            if f in ("onset_offset_s", "window_offset_s"):  # from the given pick
                value[rows] = new[src] + moved_s
            out[f] = value.astype(str) if f == "reason" else value
        return self._with_flag(PolarityResult(**out), flag, rows)

    def _pick_sensitive(self, data, sampling_rate, picks, polarity, confidence, ok) -> np.ndarray:
        """Rows (bool (N,)) whose read is not the reader's own with the pick moved: each read
        (up or down) under ``reading.shift_check_below`` confidence is made again, by the
        whole reader, with the pick ``reading.shift_check_s`` earlier and later (0: off);
        where either gives the other sign, the read depends on where within the pickers'
        error the pick fell, and is not a first motion to invert. An unknown or unreadable
        neighbour does not contradict."""
        shift_s = float(self.reading.get("shift_check_s", 0.0))
        below = float(self.reading.get("shift_check_below", 1.0))
        rows = np.flatnonzero(ok & (polarity != 0) & (confidence < below))
        step = int(round(shift_s * float(sampling_rate)))
        if shift_s <= 0 or step < 1 or rows.size == 0:
            return np.zeros(polarity.shape, dtype=bool)
        data2 = np.atleast_2d(data)[rows]
        base = np.atleast_1d(picks)[rows]
        moved = self._classify(
            np.concatenate([data2, data2]),
            sampling_rate,
            np.concatenate([base - step, base + step]),
            shift_check=False,
            own_onset=False,
        ).polarity.reshape(2, rows.size)
        out = np.zeros(polarity.shape, dtype=bool)
        out[rows] = (moved == -polarity[rows]).any(axis=0)
        return out

    def _lobe_reads(self, polarity, probs, ev, conflict, reasons) -> np.ndarray:
        """Rows (bool (N,)) the network leaves unknown that the first-lobe evidence reads:
        a first lobe of at least ``reading.evidence_min_snr`` noise sigmas (0: off), not
        flagged as a precursor, of the sign the network leans to (its up/down probabilities
        ordered as the lobe), where no contradiction was found."""
        min_snr = float(self.reading.get("evidence_min_snr", 0.0))
        if min_snr <= 0:
            return np.zeros(polarity.shape, dtype=bool)
        strong = np.nan_to_num(ev.read_snr, nan=0.0) >= min_snr
        lean = np.sign(probs[:, 0] - probs[:, 1])  # the sign the network leans to (0: none)
        return (
            (reasons == REASON_OK)
            & (polarity == 0)
            & ~conflict
            & ~ev.precursor
            & (ev.read_sign != 0)
            & (ev.read_sign == lean)
            & strong
        )

    def _recheck(self, data, sampling_rate, picks, reasons, probs, ev, batch_size):
        """The onset refinement of :meth:`classify`: rows the network left unknown while the
        evidence sees an onset 2 or more samples before the pick, or 2 samples to
        ``reading.refine_max_s`` after it (an onset further after the pick may be a later swing
        behind a weak first motion; the card says why its bound), where the second read
        agrees with the first lobe it is centred on (and, for an onset more than
        ``reading.refine_confident_beyond_s`` after the pick, has a confidence of at least
        ``reading.refine_far_min_confidence``), and rows whose read contradicts a
        lobe of at least ``reading.conflict_min_snr`` noise sigmas (0: off), are read again
        with the window at the evidence's onset. A contradiction that the second read does not
        resolve in the evidence's favour is returned as a conflict (the row becomes unknown).
        Returns (probs, evidence, onset offset in model samples, conflict, the window's move
        in input samples)."""
        offset = np.where(np.isfinite(ev.read_onset), ev.read_onset, 0.0)
        polarity, _ = self.decide(probs)
        ok = reasons == REASON_OK
        redo = np.zeros(polarity.shape, dtype=bool)
        if self.reading.get("refine_unknown", False):
            reach = float(self.reading.get("refine_max_s", 0.05)) * self.config.sampling_rate_hz
            # an onset before the pick is the earliest energy in view; one after it may be a
            # later swing behind a weak first motion, so it must be close
            redo |= ok & (polarity == 0) & (np.abs(offset) >= 2) & (offset <= reach + 1e-9)
        min_snr = float(self.reading.get("conflict_min_snr", 0.0))
        against = np.zeros(polarity.shape, dtype=bool)
        if min_snr > 0:
            strong = np.nan_to_num(ev.read_snr, nan=0.0) >= min_snr
            against = ok & (polarity != 0) & (polarity == -ev.read_sign) & strong
            redo |= against
        conflict = against.copy()
        if not redo.any():
            return probs, ev, offset, conflict, np.zeros(polarity.shape)
        picks_1d = np.rint(np.atleast_1d(picks)).astype(np.int64)
        step = np.rint(offset[redo] * float(sampling_rate) / self.config.sampling_rate_hz)
        rows = np.atleast_2d(data)[redo]
        lin2, reasons2 = linear_windows(
            rows, sampling_rate, picks_1d[redo] + step, self.config, despike=self.despike
        )
        probs2, ev2 = self.read_windows(lin2, reasons2, batch_size, float(sampling_rate))
        pol2, conf2 = self.decide(probs2)
        idx = np.flatnonzero(redo)
        # a second read counts only where it agrees with the first lobe it was centred on
        keep = (pol2 != 0) & (pol2 == ev2.read_sign) & (~against[idx] | (pol2 == ev.read_sign[idx]))
        # and, for an onset far after the pick (maybe a later swing behind a weak first
        # motion), only where it is confident
        far_s = float(self.reading.get("refine_confident_beyond_s", np.inf))
        far = offset[idx] > far_s * self.config.sampling_rate_hz + 1e-9
        keep &= ~far | (conf2 >= float(self.reading.get("refine_far_min_confidence", 0.0)))
        take = idx[keep]
        probs[take] = probs2[keep]
        conflict[take] = False
        ev = _replace_rows(ev, take, _select_rows(ev2, keep))
        offset[take] = offset[take] + np.where(
            np.isfinite(ev2.read_onset[keep]), ev2.read_onset[keep], 0.0
        )
        moved = np.zeros(polarity.shape)
        moved[take] = step[keep]
        return probs, ev, offset, conflict, moved

    def read_windows(
        self,
        lin: np.ndarray,
        reasons: np.ndarray,
        batch_size: int = 1024,
        native_rate_hz: ArrayLike | None = None,
    ) -> tuple[np.ndarray, Evidence | None]:
        """Probabilities (N, 3) of linear windows (:func:`linear_windows`) and their evidence
        (None without a ``reading`` section in the card). Rows with a reason get [0, 0, 1].

        Where the evidence flags a precursor (a first lobe under
        ``reading.precursor_max_ratio`` of the opposite lobe right after it) and the network read
        that lobe's sign, the up and down probabilities swap: the network's confidence in the
        lobe becomes confidence in the main swing it precedes."""
        windows, reasons = normalise_windows(lin, reasons, self.config)
        n = windows.shape[0]
        probs = np.zeros((n, len(LABELS)), dtype=np.float32)
        probs[:, 2] = 1.0
        ok = reasons == REASON_OK
        if ok.any():
            probs[ok] = self.window_probabilities(windows[ok], batch_size)
        return self.check_evidence(probs, lin, ok, native_rate_hz)

    def check_evidence(
        self,
        probs: np.ndarray,
        lin: np.ndarray,
        ok: np.ndarray | None = None,
        native_rate_hz: ArrayLike | None = None,
    ) -> tuple[np.ndarray, Evidence | None]:
        """The precursor check of :meth:`read_windows` on probabilities (N, 3) of windows
        whose first channel (or linear form) is ``lin`` (N, W): the evidence is in noise
        sigmas, so normalised windows give the same. ``native_rate_hz`` (scalar or (N,)):
        the rows' sampling rate before resampling, for the card's native precursor check
        (``reading.precursor_native_check``; None: unknown, the rate bound is not applied).
        Returns (probs, evidence); probs is changed in place."""
        if not self.reading:
            return probs, None
        native = bool(self.reading.get("precursor_native_check", False))
        ev = first_lobe_evidence(
            lin,
            self.config.window_pre_samples,
            self.config.sampling_rate_hz,
            k_sigma=float(self.reading.get("k_sigma", 4.0)),
            precursor_max_ratio=float(self.reading.get("precursor_max_ratio", 0.0)),
            precursor_max_width_s=float(self.reading.get("precursor_max_width_s", 0.06)),
            read_main_swing=bool(self.reading.get("read_main_swing", False)),
            native_rate_hz=native_rate_hz,
            precursor_max_native_hz=float(
                self.reading.get("precursor_max_native_hz", PRECURSOR_MAX_NATIVE_HZ)
            )
            if native
            else 0.0,
            precursor_max_rise_ratio=float(
                self.reading.get("precursor_max_rise_ratio", PRECURSOR_MAX_RISE_RATIO)
            )
            if native
            else 0.0,
        )
        ok = np.ones(probs.shape[0], dtype=bool) if ok is None else ok
        lobe_up = probs[:, 0] >= probs[:, 1]
        read_lobe = np.where(lobe_up, 1, -1) == ev.first_sign
        swap = ok & ev.precursor & read_lobe & (ev.read_sign == ev.main_sign)
        probs[swap] = probs[swap][:, [1, 0, 2]]
        return probs, ev

    def prepared_probabilities(
        self,
        windows: np.ndarray,
        batch_size: int = 1024,
        native_rate_hz: ArrayLike | None = None,
    ) -> np.ndarray:
        """:meth:`window_probabilities` of preprocessed windows followed by the card's
        precursor check (the evidence of their first channel; ``native_rate_hz`` as in
        :meth:`check_evidence`); the onset refinement of :meth:`classify` needs the raw rows
        and is not applied."""
        probs = self.window_probabilities(windows, batch_size)
        first = windows[:, 0] if windows.ndim == 3 else windows
        return self.check_evidence(probs, first, native_rate_hz=native_rate_hz)[0]


def _select_rows(ev: Evidence, rows: np.ndarray) -> Evidence:
    return Evidence(**{f: getattr(ev, f)[rows] for f in Evidence.__dataclass_fields__})


def _replace_rows(ev: Evidence, rows: np.ndarray, new: Evidence) -> Evidence:
    out = {}
    for f in Evidence.__dataclass_fields__:
        a = getattr(ev, f).copy()
        a[rows] = getattr(new, f)
        out[f] = a
    return Evidence(**out)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)
