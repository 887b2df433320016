"""Settings: one frozen dataclass tree from a TOML file plus environment variables.

Sources, later wins: built-in defaults < the TOML file < environment variables.

Environment variables are named ``FIRSTMOTION_<SECTION>__<KEY>`` (upper case, a double
underscore between section and key), e.g. ``FIRSTMOTION_REDIS__URL=rediss://:pw@host:6380/0``
or ``FIRSTMOTION_MECHANISM__MIN_POLARITIES=10``. Values are parsed by the key's type: numbers
as numbers, booleans from ``true/false/1/0/yes/no``, lists either comma-separated
(``PR_PR15:EHZ,PR_PR16:EHZ``) or as a TOML/JSON array. A ``FIRSTMOTION_*__*`` variable that
names no known key is an error, as is an unknown key in the file (with a suggestion).

Everything is validated at start-up and every problem is reported at once, one per line, in
words a person understands: ``seedlink.server: expected host:port, got 'abc'``.
Relative paths in the file (``associate.velocity_model``, ``associate.station_delays``,
``mechanism.reversals_file``,
``seedlink.statefile``, ``inventory.stationxml``) are taken relative to the file's directory.

``firstmotion config check [FILE]`` prints the effective settings (TOML or JSON, the Redis
password masked) and exits 1 with the messages when they are invalid.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import os
import re
import sys
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "FIRSTMOTION_"


class ConfigError(ValueError):
    """Invalid settings; the message lists every problem, one per line."""


def _path(**kw: Any) -> Any:
    return field(metadata={"path": True}, **kw)


# --------------------------------------------------------------------------- sections


CONSUMER_OPTIONS = ("block_ms", "lease_ms", "max_deliveries")


@dataclass(frozen=True)
class RedisSettings:
    """The Redis that carries every stream. ``url`` has no default on purpose."""

    url: str = ""
    prefix: str = "fm:"
    stream_maxlen: int = 100_000
    block_ms: int = 1000
    lease_ms: int = 5_000
    max_deliveries: int = 5

    def _problems(self) -> list[str]:
        out = []
        if self.url:
            from firstmotion.bus import check_redis_url

            try:
                check_redis_url(self.url)
            except ValueError as exc:
                out.append(str(exc))
        if not re.fullmatch(r"[A-Za-z0-9_.:-]*", self.prefix):
            out.append(f"redis.prefix: expected letters, digits, '_.:-', got {self.prefix!r}")
        out += _positive("redis", self, "stream_maxlen", "block_ms", "lease_ms", "max_deliveries")
        return out

    def consumer_options(self) -> dict[str, int]:
        """The consumer settings (``block_ms``, ``lease_ms``, ``max_deliveries``) as keyword
        arguments of :class:`firstmotion.bus.Consumer` and the stage workers."""
        return {k: getattr(self, k) for k in CONSUMER_OPTIONS}

    def require_url(self) -> str:
        """The URL, or a clear error when it was never set (no silent localhost)."""
        if not self.url:
            raise ConfigError(
                'redis.url: not set; put url = "redis://host:6379/0" under [redis] in the '
                "config file or set FIRSTMOTION_REDIS__URL"
            )
        return self.url


@dataclass(frozen=True)
class SeedLinkSettings:
    """Where the stream process reads data (SeedLink v3)."""

    server: str = ""
    streams: tuple[str, ...] = ()
    statefile: str = _path(default="")
    netto_s: float = 10.0
    netdly_s: float = 2.0
    timeout_s: float = 30.0

    def _problems(self) -> list[str]:
        out = []
        if self.server and not _is_host_port(self.server):
            out.append(f"seedlink.server: expected host:port, got {self.server!r}")
        for i, s in enumerate(self.streams):
            if not re.fullmatch(r"[A-Za-z0-9?*]{1,2}_[A-Za-z0-9?*]{1,5}(:[A-Za-z0-9?*. -]+)?", s):
                out.append(
                    f"seedlink.streams[{i}]: expected NET_STA or NET_STA:SELECTORS "
                    f"(e.g. 'PR_PR15:EHZ'), got {s!r}"
                )
        out += _positive("seedlink", self, "netto_s", "netdly_s", "timeout_s")
        return out


DEVICE_PATTERN = r"auto|cpu|cuda(:\d+)?|mps"  # detect.phasenet_device, polarity.device
DETECT_REFINE_METHODS = ("aic", "kurtosis", "none")
DETECT_PICKERS = ("phasenet", "stalta")
# the polarity network's precisions (workers.polarity.classifier maps them to torch dtypes;
# "auto": bfloat16 where the device computes it in hardware, else float32)
POLARITY_PRECISIONS = ("float32", "bfloat16", "auto")


def detect_order_problems(p: Any) -> list[str]:
    """The detector settings that must come in order (``sta_s < lta_s``, ``trigger_off <
    trigger_on``, ``freqmin_hz < freqmax_hz``); shared by :class:`DetectSettings` and the
    stream stage's ``DetectParams``. Returns the problems, one message each."""
    out = []
    if p.sta_s >= p.lta_s:
        out.append(f"detect.sta_s: expected < lta_s ({p.lta_s}), got {p.sta_s}")
    if p.trigger_off >= p.trigger_on:
        out.append(
            f"detect.trigger_off: expected < trigger_on ({p.trigger_on}), got {p.trigger_off}"
        )
    if p.freqmin_hz >= p.freqmax_hz:
        out.append(f"detect.freqmin_hz: expected < freqmax_hz ({p.freqmax_hz}), got {p.freqmin_hz}")
    return out


@dataclass(frozen=True)
class DetectSettings:
    """STA/LTA trigger and onset refinement (obspy recursive STA/LTA + AIC)."""

    sta_s: float = 0.5
    lta_s: float = 10.0
    trigger_on: float = 3.5
    trigger_off: float = 1.5
    freqmin_hz: float = 1.0
    freqmax_hz: float = 20.0
    refine: str = "aic"
    refine_window_s: float = 1.0
    min_snr: float = 2.0
    dead_time_s: float = 2.0
    window_before_s: float = 2.0
    window_after_s: float = 2.0
    # the learned picker (PhaseNet) is the default; "stalta" is the classic STA/LTA + AIC
    picker: str = "phasenet"
    phasenet_model: str = _path(default="")  # "" = model_weights/phasenet_original
    p_threshold: float = 0.3
    s_threshold: float = 0.3
    phasenet_stride_s: float = 2.0
    phasenet_tail_s: float = 1.5
    phasenet_highpass_hz: float = 1.0
    phasenet_min_snr: float = 2.0  # P onset SNR on the 1-20 Hz vertical (as min_snr); 0 = none
    phasenet_s_min_snr: float = 2.0  # S onset SNR on the 1-20 Hz horizontals (same); 0 = none
    phasenet_window_after_s: float = 1.0
    phasenet_hot_stride_s: float = 0.5  # next window this soon after one with P rising; 0 = off
    phasenet_hot_pick_p: float = 0.7  # P picks of those windows need this probability
    phasenet_device: str = "auto"
    # each window's probabilities read again this long before its end: onsets PhaseNet is sure
    # of only given the coda after them (no extra forward pass; picks that late); 0 = none
    phasenet_second_look_tail_s: float = 18.0
    # candidate P onsets (Pick.candidate; the associator takes one only at the P time a located
    # event predicts): PhaseNet peaks in [phasenet_candidate_p, p_threshold) and P picks the
    # onset SNR gate drops (ungated), and STA/LTA onsets of ratio >= phasenet_candidate_stalta
    # with an onset SNR >= phasenet_candidate_min_snr; 0 turns each source off
    phasenet_candidate_p: float = 0.1
    phasenet_candidate_stalta: float = 3.0
    phasenet_candidate_min_snr: float = 2.0
    # a P peak or candidate whose onset raises the 2-20 Hz horizontals more than this many
    # times the vertical is an S onset (polarization; not a P pick); 0 = no such check
    phasenet_p_max_hv: float = 3.0

    def _problems(self) -> list[str]:
        out = _positive(
            "detect", self, "sta_s", "lta_s", "trigger_on", "trigger_off", "freqmin_hz",
            "freqmax_hz", "refine_window_s", "window_before_s", "window_after_s",
            "phasenet_stride_s", "phasenet_window_after_s",
        )  # fmt: skip
        out += _non_negative(
            "detect", self, "phasenet_tail_s", "phasenet_highpass_hz", "phasenet_min_snr",
            "phasenet_s_min_snr", "phasenet_second_look_tail_s", "phasenet_hot_stride_s",
            "phasenet_candidate_stalta", "phasenet_candidate_min_snr", "phasenet_p_max_hv",
        )  # fmt: skip
        if not 0 <= self.phasenet_candidate_p < self.p_threshold:
            out.append(
                "detect.phasenet_candidate_p: expected 0 (off) or in (0, p_threshold), got "
                f"{self.phasenet_candidate_p!r}"
            )
        if not 0 < self.phasenet_hot_pick_p < 1:
            out.append(
                f"detect.phasenet_hot_pick_p: expected in (0, 1), got {self.phasenet_hot_pick_p!r}"
            )
        if self.picker not in DETECT_PICKERS:
            out.append(
                f"detect.picker: expected one of {list(DETECT_PICKERS)}, got {self.picker!r}"
            )
        for name in ("p_threshold", "s_threshold"):
            if not 0 < getattr(self, name) < 1:
                out.append(f"detect.{name}: expected in (0, 1), got {getattr(self, name)!r}")
        out += _non_negative("detect", self, "min_snr", "dead_time_s")
        out += detect_order_problems(self)
        if self.refine not in DETECT_REFINE_METHODS:
            out.append(f"detect.refine: expected 'aic', 'kurtosis' or 'none', got {self.refine!r}")
        if not re.fullmatch(DEVICE_PATTERN, self.phasenet_device):
            out.append("detect.phasenet_device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or "
                       f"'mps', got {self.phasenet_device!r}")  # fmt: skip
        return out


@dataclass(frozen=True)
class PolaritySettings:
    """The polarity worker: model, device and dynamic batching."""

    model: str = _path(default="")  # "" = the default weights in model_weights/
    device: str = "auto"
    # "auto": bfloat16 (torch autocast) on a GPU or a CPU with AVX512-BF16/AMX, else float32
    precision: str = "auto"
    max_batch: int = 256
    max_wait_ms: int = 50
    min_confidence: float = 0.0
    # read each pick after removing its channel's linear-phase FIR precursor (the FIR stages
    # of inventory.stationxml's response; docs/polarity.md "FIR correction")
    fir_correction: bool = False

    def _problems(self) -> list[str]:
        out = _positive("polarity", self, "max_batch")
        if self.precision not in POLARITY_PRECISIONS:
            out.append(
                f"polarity.precision: expected {' or '.join(map(repr, POLARITY_PRECISIONS))}, "
                f"got {self.precision!r}"
            )
        out += _non_negative("polarity", self, "max_wait_ms")
        if not re.fullmatch(DEVICE_PATTERN, self.device):
            out.append(
                "polarity.device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got "
                f"{self.device!r}"
            )
        if not 0.0 <= self.min_confidence <= 1.0:
            out.append(f"polarity.min_confidence: expected 0..1, got {self.min_confidence}")
        return out


MIN_LOCATE_PICKS = 4  # a hypocentre has four unknowns (x, y, depth, origin time)
MISFIT_FLOORS = ("reads", "fixed")  # mechanism.misfit_floor
FINAL_LOSSES = ("cauchy", "soft_l1")  # associate.final_loss


@dataclass(frozen=True)
class AssociateSettings:
    """Association and location (PyOcto with a 1-D velocity model)."""

    velocity_model: str = _path(default="")  # "" = the built-in model
    # per-station P and S delays of that model (firstmotion.station_delays); "" = none
    station_delays: str = _path(default="")
    min_picks: int = 4
    window_s: float = 20.0
    max_distance_km: float = 200.0
    max_residual_s: float = 1.5
    wait_s: float = 10.0
    use_s: bool = True  # associate and locate S picks too
    min_station_ratio: float = 0.3  # of the stations nearest an event, the share that picked it
    # a located event keeps picks within residual_floor_s + residual_fraction x travel time
    # (at most max_residual_s): tight across a small network, max_residual_s far away
    residual_floor_s: float = 0.5
    residual_fraction: float = 0.1
    # candidate P onsets (Pick.candidate) join located events at the P time they predict
    use_candidates: bool = True
    candidate_fit: float = 1.0  # ... within this share of the residual rule above
    # a candidate PhaseNet is this sure of (probability; the onset gate dropped it) counts as
    # a pick: it may make an event with the others (an event still needs min_picks P
    # stations fitting one hypocentre); 0 = a candidate never counts as a pick
    candidate_pick_p: float = 0.5
    # the published hypocentre: the event's picks relocated under this loss from the
    # association's solution ("cauchy": an outlying pick barely pulls it); "soft_l1": the
    # association's own solution as it is
    final_loss: str = "cauchy"

    def _problems(self) -> list[str]:
        out = _positive(
            "associate", self, "min_picks", "window_s", "max_distance_km", "max_residual_s",
            "min_station_ratio", "residual_floor_s", "candidate_fit",
        ) + _non_negative("associate", self, "wait_s", "residual_fraction")  # fmt: skip
        if not 0.0 <= self.candidate_pick_p <= 1.0:
            out.append(
                f"associate.candidate_pick_p: expected 0 (off) to 1, got {self.candidate_pick_p}"
            )
        if self.final_loss not in FINAL_LOSSES:
            out.append(
                f"associate.final_loss: expected one of {', '.join(FINAL_LOSSES)}, "
                f"got {self.final_loss!r}"
            )
        if isinstance(self.min_picks, int) and 0 < self.min_picks < MIN_LOCATE_PICKS:
            out.append(
                f"associate.min_picks: expected >= {MIN_LOCATE_PICKS} (an event is first located "
                f"from its P picks alone: four unknowns), got {self.min_picks}"
            )
        if self.velocity_model:  # read as the associator will read it
            from firstmotion.velocity import VelocityModel

            if not Path(self.velocity_model).is_file():
                out.append(f"associate.velocity_model: no such file {self.velocity_model!r}")
            else:
                try:
                    VelocityModel.from_file(self.velocity_model)
                except (OSError, ValueError) as exc:  # InputError is a ValueError
                    out.append(f"associate.velocity_model: {exc}")
        if self.station_delays:
            from firstmotion.station_delays import read_station_delays

            if not Path(self.station_delays).is_file():
                out.append(f"associate.station_delays: no such file {self.station_delays!r}")
            else:
                try:
                    read_station_delays(self.station_delays)
                except (OSError, ValueError) as exc:
                    out.append(f"associate.station_delays: {exc}")
        return out


@dataclass(frozen=True)
class MechanismSettings:
    """HASH-style inversion (Hardebeck & Shearer 2002); defaults as SKHASH's example."""

    min_polarities: int = 8
    dang_deg: float = 5.0
    n_trials: int = 30
    badfrac: float = 0.1
    # the misfit allowance floor, in polarities: below ~30 polarities it, not badfrac, sets the
    # accepted set. "reads": the fewest wrong reads more than which are 5% unlikely, from each
    # read's own probabilities (at least read_error_floor wrong each): 1 for 8-18 sure reads,
    # 2 from 19, more for unsure ones. "fixed": badmin, HASH's and SKHASH's 2, which leaves
    # every event of a dozen polarities quality D (docs/mechanism.md)
    misfit_floor: str = "reads"
    read_error_floor: float = 0.02
    badmin: float = 2.0
    cangle_deg: float = 45.0
    prob_max: float = 0.25
    max_azimuth_gap_deg: float = 90.0
    max_takeoff_gap_deg: float = 60.0
    max_distance_km: float = 120.0
    reversals_file: str = _path(default="")
    # the vertical channels inventory.stationxml documents as reversed (dip +90, or a negative
    # sensitivity) are added to the reversal list (firstmotion.inventory.reversed_verticals)
    stationxml_reversals: bool = True
    revise_min_change_deg: float = 10.0
    revise_min_new_polarities: int = 4  # ... or it uses this many more polarities
    # S/P amplitude ratios (HASH's second data type; workers/mechanism/amplitude.py): at a
    # station with a P and an S arrival whose picks carry three-component amplitudes
    sp_ratios: bool = False
    sp_ratmin: float = 3.0  # both amplitudes >= this times the noise before the P
    sp_qbadfrac: float = 0.3  # assumed log10 error of a ratio (0.3: a factor of 2)
    sp_qbadmin: float = 2.0  # floor of the allowed amplitude misfit per event (log10 units)
    sp_correction_log10: float = 0.0  # added to every observed log10(S/P) (network correction)
    sp_max_residual_s: float = 0.25  # P and S arrivals' |travel-time residual| for a ratio
    # compare an event's ratios about their best-fitting level, not about zero: no network
    # correction needed (workers/mechanism/amplitude.py)
    sp_free_level: bool = False

    def _problems(self) -> list[str]:
        out = _positive(
            "mechanism", self, "min_polarities", "dang_deg", "n_trials", "cangle_deg",
            "max_azimuth_gap_deg", "max_takeoff_gap_deg", "max_distance_km", "sp_qbadfrac",
            "revise_min_new_polarities",
        )  # fmt: skip
        out += _non_negative(
            "mechanism",
            self,
            "revise_min_change_deg",
            "badmin",
            "sp_ratmin",
            "sp_qbadmin",
            "sp_max_residual_s",
        )
        if not -3.0 <= self.sp_correction_log10 <= 3.0:
            out.append(
                f"mechanism.sp_correction_log10: expected -3..3, got {self.sp_correction_log10}"
            )
        for name in ("badfrac", "prob_max"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                out.append(f"mechanism.{name}: expected 0..1, got {value}")
        if self.misfit_floor not in MISFIT_FLOORS:
            out.append(
                f"mechanism.misfit_floor: expected one of {', '.join(MISFIT_FLOORS)}, "
                f"got {self.misfit_floor!r}"
            )
        if not 0.0 <= self.read_error_floor < 0.5:
            out.append(
                f"mechanism.read_error_floor: expected 0 to below 0.5, got {self.read_error_floor}"
            )
        if self.dang_deg > 30:
            out.append(f"mechanism.dang_deg: expected <= 30 degrees, got {self.dang_deg}")
        if self.reversals_file and not Path(self.reversals_file).is_file():
            out.append(f"mechanism.reversals_file: no such file {self.reversals_file!r}")
        return out


@dataclass(frozen=True)
class CatalogSettings:
    """The live catalog and its web page."""

    web_host: str = "127.0.0.1"
    web_port: int = 8080
    final_after_s: float = 600.0
    final_max_quality: str = "B"  # a mechanism of this quality or better makes an event final
    alert_urls: tuple[str, ...] = ()  # webhooks (POST JSON); empty = no alerts
    alert_min_magnitude: float = 3.0
    alert_max_quality: str = "B"
    alert_timeout_s: float = 5.0
    # the page: a token required on every request when set (use it on non-loopback binds),
    # the host names browsers may use for it (DNS rebinding defence; loopback names always),
    # the cap on open event streams, and the page's own Redis connections
    web_token: str = ""
    web_allowed_hosts: tuple[str, ...] = ()
    web_max_clients: int = 256
    web_redis_connections: int = 4
    # events older than this (origin time) leave the live catalog; 0 = keep every event
    retention_days: float = 0.0

    def _problems(self) -> list[str]:
        out = _port("catalog.web_port", self.web_port) + _non_negative(
            "catalog", self, "final_after_s", "retention_days"
        )
        out += _positive("catalog", self, "alert_timeout_s", "web_max_clients")
        if 0 < self.retention_days < 1:
            out.append(
                "catalog.retention_days: expected 0 (keep every event) or at least 1 (younger "
                f"events may still be revised), got {self.retention_days}"
            )
        if self.web_redis_connections < 2:
            out.append(
                "catalog.web_redis_connections: expected >= 2 (one listens for changes), "
                f"got {self.web_redis_connections}"
            )
        for i, name in enumerate(self.web_allowed_hosts):
            if not re.fullmatch(r"\*|\[?[A-Za-z0-9_.:-]{1,253}\]?", name):
                out.append(f"catalog.web_allowed_hosts[{i}]: expected a host name, got {name!r}")
        if self.web_token and len(self.web_token) < 16:
            out.append("catalog.web_token: expected at least 16 characters")
        for name in ("final_max_quality", "alert_max_quality"):
            if getattr(self, name) not in ("A", "B", "C", "D"):
                out.append(f"catalog.{name}: expected 'A'..'D', got {getattr(self, name)!r}")
        for i, url in enumerate(self.alert_urls):
            if not re.match(r"https?://[^/\s]+", url):
                out.append(f"catalog.alert_urls[{i}]: expected an http(s):// URL, got {url!r}")
        return out


@dataclass(frozen=True)
class InventorySettings:
    """The network's stations: a StationXML file (coordinates for picks, the associator's
    station table and the live page's map). ``""``: picks must carry their coordinates."""

    stationxml: str = _path(default="")

    def _problems(self) -> list[str]:
        if self.stationxml and not Path(self.stationxml).is_file():
            return [f"inventory.stationxml: no such file {self.stationxml!r}"]
        return []


@dataclass(frozen=True)
class StressSettings:
    """The live stress stage (``firstmotion worker stress``): cells, filter, inversion."""

    grid_deg: float = 0.5
    min_mechanisms: int = 20
    qualities: tuple[str, ...] = ("A", "B", "C")  # mechanisms of these qualities are used
    friction: float = 0.0  # 0 = chosen by the inversion (0.2-1.0, STRESSINVERSE's rule)
    n_bootstrap: int = 300

    def _problems(self) -> list[str]:
        out = _positive("stress", self, "grid_deg", "min_mechanisms")
        out += _non_negative("stress", self, "friction", "n_bootstrap")
        if self.min_mechanisms < 4:
            out.append(f"stress.min_mechanisms: expected >= 4, got {self.min_mechanisms}")
        for q in self.qualities:
            if q not in ("A", "B", "C", "D"):
                out.append(f"stress.qualities: expected letters 'A'..'D', got {q!r}")
        return out


@dataclass(frozen=True)
class MetricsSettings:
    """Prometheus /metrics and /healthz (loopback unless told otherwise)."""

    host: str = "127.0.0.1"
    port: int = 9300

    def _problems(self) -> list[str]:
        return _port("metrics.port", self.port)


@dataclass(frozen=True)
class Settings:
    """All settings; build with :func:`load_settings`."""

    redis: RedisSettings = field(default_factory=RedisSettings)
    seedlink: SeedLinkSettings = field(default_factory=SeedLinkSettings)
    detect: DetectSettings = field(default_factory=DetectSettings)
    polarity: PolaritySettings = field(default_factory=PolaritySettings)
    associate: AssociateSettings = field(default_factory=AssociateSettings)
    mechanism: MechanismSettings = field(default_factory=MechanismSettings)
    catalog: CatalogSettings = field(default_factory=CatalogSettings)
    stress: StressSettings = field(default_factory=StressSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    inventory: InventorySettings = field(default_factory=InventorySettings)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return {
            f.name: {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in _fields_of(getattr(self, f.name)).items()
            }
            for f in dataclasses.fields(self)
        }


def _fields_of(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


# --------------------------------------------------------------------------- checks


def _is_host_port(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def _positive(section: str, obj: Any, *names: str) -> list[str]:
    return [
        f"{section}.{n}: expected a positive number, got {getattr(obj, n)!r}"
        for n in names
        if not getattr(obj, n) > 0
    ]


def _non_negative(section: str, obj: Any, *names: str) -> list[str]:
    return [
        f"{section}.{n}: expected a number >= 0, got {getattr(obj, n)!r}"
        for n in names
        if not getattr(obj, n) >= 0
    ]


def _port(name: str, value: int) -> list[str]:
    return [] if 0 <= value <= 65535 else [f"{name}: expected a port 0..65535, got {value}"]


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(choices)}"


def _coerce(where: str, kind: Any, value: Any, *, from_env: bool) -> Any:
    """Turn a TOML value (or an environment string) into ``kind``; raises ConfigError."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_env and str(value).strip().lower() in ("1", "true", "yes", "on"):
            return True
        if from_env and str(value).strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is int:
        if from_env and isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if kind is float:
        if from_env and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if value != value or value in (float("inf"), float("-inf")):
                raise ConfigError(f"{where}: expected a finite number, got {value!r}")
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if typing.get_origin(kind) is tuple:
        if from_env and isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError:
                    value = tomllib.loads(f"v = {text}")["v"]
            else:
                value = [v.strip() for v in text.split(",") if v.strip()]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    raise TypeError(f"{where}: unsupported setting type {kind!r}")  # programming error


def _section_types() -> dict[str, type]:
    hints = typing.get_type_hints(Settings)
    return {f.name: hints[f.name] for f in dataclasses.fields(Settings)}


def _merge_env(
    raw: dict[str, dict[str, Any]], environ: Mapping[str, str], problems: list[str]
) -> set[tuple[str, str]]:
    """Fold ``FIRSTMOTION_<SECTION>__<KEY>`` variables into ``raw``; returns env-set keys."""
    sections = _section_types()
    from_env: set[tuple[str, str]] = set()
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name[len(ENV_PREFIX) :]:
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("__")
        if section not in sections:
            problems.append(
                f"{name}: unknown section {section!r}{_suggest(section, list(sections))}"
            )
            continue
        keys = [f.name for f in dataclasses.fields(sections[section])]
        if key not in keys:
            problems.append(f"{name}: unknown key {section}.{key}{_suggest(key, keys)}")
            continue
        raw.setdefault(section, {})[key] = value
        from_env.add((section, key))
    return from_env


def settings_from_dict(
    data: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> Settings:
    """Validate a parsed TOML document (plus environment) into :class:`Settings`."""
    problems: list[str] = []
    sections = _section_types()
    raw: dict[str, dict[str, Any]] = {}
    for section, body in data.items():
        if section not in sections:
            problems.append(f"{section}: unknown section{_suggest(section, list(sections))}")
        elif not isinstance(body, Mapping):
            problems.append(f"{section}: expected a [{section}] table, got {body!r}")
        else:
            raw[section] = dict(body)
    from_env = _merge_env(raw, os.environ if environ is None else environ, problems)

    built: dict[str, Any] = {}
    for section, cls in sections.items():
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in raw.get(section, {}).items():
            where = f"{section}.{key}"
            if key not in fields:
                problems.append(f"{where}: unknown key{_suggest(key, list(fields))}")
                continue
            env = (section, key) in from_env
            try:
                value = _coerce(where, hints[key], value, from_env=env)
            except ConfigError as exc:
                problems.append(str(exc))
                continue
            if fields[key].metadata.get("path") and value and not env and base_dir is not None:
                path = Path(value).expanduser()
                value = str(path if path.is_absolute() else (base_dir / path))
            kwargs[key] = value
        obj = cls(**kwargs)
        problems += obj._problems()
        built[section] = obj
    if problems:
        raise ConfigError("invalid settings:\n  " + "\n  ".join(problems))
    return Settings(**built)


def load_settings(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults < TOML file ``path`` (optional) < ``FIRSTMOTION_<SECTION>__<KEY>`` variables."""
    data: dict[str, Any] = {}
    base_dir = None
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{p}: cannot read config file ({exc.strerror or exc})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{p}: not valid TOML ({exc})") from None
        base_dir = p.resolve().parent
    return settings_from_dict(data, environ=environ, base_dir=base_dir)


# --------------------------------------------------------------------------- output


def _mask_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def effective_dict(settings: Settings, *, show_secrets: bool = False) -> dict[str, dict[str, Any]]:
    """Settings as plain data; the Redis password masked unless ``show_secrets``."""
    out = settings.to_dict()
    if not show_secrets:
        out["redis"]["url"] = _mask_url(out["redis"]["url"])
        if out["catalog"]["web_token"]:
            out["catalog"]["web_token"] = "***"
    return out


def to_toml(data: Mapping[str, Mapping[str, Any]]) -> str:
    """A TOML document of ``{section: {key: scalar or list of str}}`` (what Settings holds)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    blocks = []
    for section, body in data.items():
        lines = [f"[{section}]"] + [f"{k} = {value(v)}" for k, v in body.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="TOML config file (default: defaults + env)")
    parser.add_argument("--format", choices=("toml", "json"), default="toml")
    parser.add_argument("--show-secrets", action="store_true", help="print the Redis password")


def run(args: argparse.Namespace) -> int:
    """``firstmotion config check [FILE]``: print the effective settings or the problems."""
    try:
        settings = load_settings(args.file)
        settings.redis.require_url()  # every stage needs it, and it has no default
    except ConfigError as exc:
        print(f"config check: {exc}", file=sys.stderr)
        return 1
    data = effective_dict(settings, show_secrets=args.show_secrets)
    if args.format == "json":
        print(json.dumps(data, indent=2))
    else:
        print(to_toml(data), end="")
    return 0
