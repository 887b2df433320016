"""Station delays: the per-station P and S time corrections of a network's 1-D model.

A 1-D model leaves each station a systematic residual (the structure right under it, a
sensor's timing); location programs carry them as station delays (HYPO71's and SEISAN's
``STATION0.HYP`` columns, VELEST's station corrections, HYPOINVERSE's delays). The
associator adds a station's delay to every time it predicts there, as SEISAN subtracts it
from the reading (docs/association.md).

:func:`read_station_delays` reads, by content:

* CSV with a header naming ``station``, ``p_delay_s`` and ``s_delay_s`` (``station`` as
  ``NET.STA`` or ``STA``);
* SEISAN ``STATION0.HYP`` (HYPO71's station lines): the P delay in columns 28-33, the S delay
  in 34-38 (blank: 0);
* VELEST station files (a Fortran format line ``(a4,f7.4,a1,...)``, then ``STA lat lon elev
  model icc ptcor stcor``): the P and S corrections.

A ``STATION0.HYP`` given as the velocity model brings its delays along
(:func:`model_file_delays`), as SEISAN's location program takes them from that one file.
Delays are seconds, positive where the arrivals come late. :func:`delay_for` finds a
station's row by ``NET.STA`` first, then ``STA`` (a station without one has no delay).

:func:`estimate_station_delays` makes them from a catalog's own arrivals, as VELEST's station
corrections are made: per station and phase the median residual of its located arrivals,
less the median over stations (a delay common to all is the origin time's); added to the
delays the catalog was located with, it is the next iteration's table
(``firstmotion catalog station-delays``).
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from firstmotion.errors import InputError
from firstmotion.velocity import HYP_STATION_LINE

MAX_DELAY_S = 10.0  # a station delay beyond this is no delay of a 1-D model: a unit error


def read_station_delays(path: str | Path) -> dict[str, tuple[float, float]]:
    """``{station code: (P delay s, S delay s)}`` of a delay file (module docstring); an
    :class:`~firstmotion.errors.InputError` naming the file when it is none of the forms."""
    path = Path(path)
    text = path.read_text(errors="replace")
    try:
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise ValueError("empty")
        if lines[0].lstrip().lower().startswith("(a"):
            out = _velest(lines[1:])
        elif any(HYP_STATION_LINE.match(line) for line in lines):
            out = _seisan(lines)
        else:
            out = _csv(text)
        for code, (p, s) in out.items():
            if not (math.isfinite(p) and math.isfinite(s)) or max(abs(p), abs(s)) > MAX_DELAY_S:
                raise ValueError(f"station {code}: delays ({p}, {s}) s beyond +-{MAX_DELAY_S:g} s")
        if not out:
            raise ValueError("no station delays")
    except ValueError as exc:
        raise InputError(
            f"{path}: {exc} (station delays: a CSV with columns station, p_delay_s, "
            "s_delay_s; SEISAN's STATION0.HYP; or a VELEST station file)"
        ) from None
    return out


def model_file_delays(path: str | Path) -> dict[str, tuple[float, float]]:
    """The station delays a velocity model file carries: a SEISAN ``STATION0.HYP`` holds its
    model and its stations' delays in one file (SEISAN applies both); other model files hold
    none ({}). Only delays that are not all zero count."""
    lines = Path(path).read_text(errors="replace").splitlines()
    if not any(HYP_STATION_LINE.match(line) for line in lines):
        return {}
    delays = read_station_delays(path)
    return delays if any(p or s for p, s in delays.values()) else {}


def delay_for(
    delays: Mapping[str, tuple[float, float]], station_key: str
) -> tuple[float, float] | None:
    """The (P, S) delay of a station (``NET.STA`` or ``NET.STA.LOC``): its ``NET.STA`` row,
    else its ``STA`` row, else None."""
    parts = station_key.split(".")
    for code in (".".join(parts[:2]), parts[1] if len(parts) > 1 else parts[0]):
        if code in delays:
            return delays[code]
    return None


def _csv(text: str) -> dict[str, tuple[float, float]]:
    reader = csv.DictReader(text.splitlines())
    cols = {c.strip().lower(): c for c in reader.fieldnames or []}
    need = ("station", "p_delay_s", "s_delay_s")
    if any(c not in cols for c in need):
        raise ValueError(f"not a delay CSV (columns {list(cols)}; need {list(need)})")
    out = {}
    for row in reader:
        code = (row[cols["station"]] or "").strip()
        if code:
            out[code] = (float(row[cols["p_delay_s"]] or 0), float(row[cols["s_delay_s"]] or 0))
    return out


def _seisan(lines: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for line in lines:
        if not HYP_STATION_LINE.match(line):
            continue
        code = line[1:6].strip()
        p, s = line[27:33].strip(), line[33:38].strip()
        out[code] = (float(p) if p else 0.0, float(s) if s else 0.0)
    return out


def _velest(lines: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for line in lines:  # a4 (a 4-letter code touches the latitude), then free fields
        parts = line[4:].split()
        if len(parts) < 7:
            raise ValueError(f"VELEST station line needs a code and 7 fields, got {line!r}")
        out[line[:4].strip()] = (float(parts[5]), float(parts[6]))
    return out


MAX_RESIDUAL_S = 1.0  # an arrival this far from its event's fit is a wrong pick, not a delay


def estimate_station_delays(
    arrivals: Iterable[tuple[str, str, float]],
    *,
    min_arrivals: int = 10,
    current: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, tuple[float, float, int, int]]:
    """``{station: (P delay, S delay, P arrivals, S arrivals)}`` from ``(station, phase,
    residual s)`` rows of located events (residual = observed - predicted): per station and
    phase the median residual of at least ``min_arrivals`` arrivals within
    ``MAX_RESIDUAL_S`` (else 0), less that phase's median over the stations so estimated;
    plus the ``current`` delay the residuals were computed with (:func:`delay_for` of the
    station)."""
    if min_arrivals < 1:
        raise ValueError(f"min_arrivals: expected >= 1, got {min_arrivals}")
    by: dict[tuple[str, str], list[float]] = defaultdict(list)
    for station, phase, residual in arrivals:
        phase = phase.strip().upper()[:1]
        if phase in ("P", "S") and math.isfinite(residual) and abs(residual) <= MAX_RESIDUAL_S:
            by[(station, phase)].append(float(residual))
    stations = sorted({st for st, _ in by})
    med = {k: float(np.median(v)) for k, v in by.items() if len(v) >= min_arrivals}
    centre = {}
    for phase in ("P", "S"):
        values = [v for (_, ph), v in med.items() if ph == phase]
        centre[phase] = float(np.median(values)) if values else 0.0
    out = {}
    for st in stations:
        now = delay_for(current or {}, st) or (0.0, 0.0)
        p = med[(st, "P")] - centre["P"] if (st, "P") in med else 0.0
        s = med[(st, "S")] - centre["S"] if (st, "S") in med else 0.0
        out[st] = (now[0] + p, now[1] + s, len(by.get((st, "P"), [])), len(by.get((st, "S"), [])))
    return out


def write_station_delays(path: str | Path, delays: Mapping[str, tuple[float, float, int, int]]):
    """The CSV form :func:`read_station_delays` reads (with the arrival counts beside)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["station", "p_delay_s", "s_delay_s", "n_p", "n_s"])
        for st, (p, s, n_p, n_s) in sorted(delays.items()):
            w.writerow([st, f"{p:.3f}", f"{s:.3f}", n_p, n_s])
