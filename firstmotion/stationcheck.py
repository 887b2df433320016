"""Stations whose first motions disagree with the mechanisms: a reversed channel, found.

A station whose vertical is wired or described upside down (a sensor mounted reversed, a
datalogger channel swapped, a response with the wrong sign) reads every first motion the wrong
way. Networks keep reversal lists for this (HASH's ``scsn.reverse``; ``mechanism.reversals_file``)
and find the entries the way this module does: by comparing each station's polarities with
the mechanisms of the events it recorded.

For each pick, the event is inverted again without it (leave one out: the pick cannot pull
its own prediction) and the mechanism predicts its sign from the P radiation pattern
(:func:`firstmotion.radiation.p_radiation`; > 0 compression, up). A prediction counts only
where it is reliable: the mechanism's quality is in ``qualities`` (A-C by default) and the ray
leaves at least ``min_radiation`` of the largest P radiation (0.3: at least about 9 degrees
from a nodal plane), since near a nodal plane any mechanism within its uncertainty predicts
either sign. Each station then has ``agree`` and ``disagree`` counts. Under "the station is
wired right" its disagreements follow a binomial law with the catalog's misfit rate ``q``
(the share of disagreeing predictions over the stations not flagged; at least 2%); a station
is *likely reversed* when most of its predictions disagree and the one-sided binomial
probability of that many disagreements is under ``alpha`` (0.05) divided by the number of
stations checked (Bonferroni: over a whole network, the chance of flagging any station wired
right stays under ``alpha``). A station with few reliable predictions cannot reach that: the
table gives every station's counts and probability for a closer look.

Checked on HASH's example 1 (24 Northridge aftershocks) read without its reversal list: the
flagged stations are all in ``scsn.reverse`` (``tests/test_mechanism_io.py``; docs/mechanism.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from firstmotion.radiation import p_radiation

MIN_MISFIT_RATE = 0.02  # the catalog's misfit rate is taken as at least this


@dataclass(frozen=True)
class StationCheck:
    """One station's polarities against the mechanisms (see the module docstring)."""

    station: str
    agree: int
    disagree: int
    p_value: float  # one-sided binomial: this many disagreements at the catalog's misfit rate
    likely_reversed: bool
    first_disagree_s: float | None  # epoch seconds of its first and last disagreeing pick
    last_disagree_s: float | None

    @property
    def n(self) -> int:
        return self.agree + self.disagree


def left_out_predictions(
    azimuth_deg: ArrayLike,
    takeoff_deg: ArrayLike,
    polarity: ArrayLike,
    invert_without: Callable[[np.ndarray], object | None],
    *,
    min_radiation: float = 0.3,
    qualities: str = "ABC",
) -> np.ndarray:
    """The sign (int8 (n,): +1, -1, 0 = no reliable prediction) the event's mechanism without
    each pick predicts for it. ``invert_without(keep)`` inverts the event's picks where the
    boolean mask ``keep`` is true and returns a mechanism with ``strike``, ``dip``, ``rake`` and
    ``quality`` (or None: too few polarities left). Picks without a polarity get 0."""
    az = np.asarray(azimuth_deg, dtype=float)
    to = np.asarray(takeoff_deg, dtype=float)
    pol = np.asarray(polarity)
    out = np.zeros(pol.shape, dtype=np.int8)
    for i in np.flatnonzero(pol != 0):
        keep = np.ones(pol.shape, dtype=bool)
        keep[i] = False
        m = invert_without(keep)
        if m is None or m.quality not in qualities:
            continue
        gamma = float(p_radiation(m.strike, m.dip, m.rake, az[i], to[i]))
        if abs(gamma) >= min_radiation:
            out[i] = 1 if gamma > 0 else -1
    return out


def mechanism_agreement(
    mechanism, *, min_radiation: float = 0.3, qualities: str = "ABC"
) -> list[tuple[str, bool]]:
    """``(station, agrees)`` for each polarity of a published mechanism (a
    :class:`firstmotion.messages.Mechanism` with its ``picks``) whose sign the mechanism
    predicts reliably (quality in ``qualities``, radiation at least ``min_radiation``): the
    live count, without leaving the pick out: the pick helped place the planes, so a reversed
    station's share of disagreements is understated (the batch check,
    :func:`left_out_predictions`, inverts without it)."""
    if mechanism.quality not in qualities or not mechanism.picks:
        return []
    az = np.array([p.azimuth_deg for p in mechanism.picks])
    to = np.array([p.takeoff_deg for p in mechanism.picks])
    gamma = p_radiation(mechanism.strike, mechanism.dip, mechanism.rake, az, to)
    return [
        (p.station_id, bool(np.sign(g) == p.polarity))
        for p, g in zip(mechanism.picks, np.atleast_1d(gamma).tolist(), strict=True)
        if abs(g) >= min_radiation
    ]


def check_stations(
    rows: Iterable[tuple[str, int, int, float | None]], *, alpha: float = 0.05
) -> list[StationCheck]:
    """Per station, from ``(station, predicted sign, observed sign, time epoch s or None)``
    rows (predicted 0: not counted): counts, the binomial probability and the flag (``alpha``
    over all the stations checked); sorted with the least probable first."""
    from scipy.stats import binom

    counts: dict[str, list[int]] = {}
    times: dict[str, list[float]] = {}
    for station, predicted, observed, time_s in rows:
        if predicted == 0 or observed == 0:
            continue
        c = counts.setdefault(station, [0, 0])
        if int(np.sign(predicted)) == int(np.sign(observed)):
            c[0] += 1
        else:
            c[1] += 1
            if time_s is not None:
                times.setdefault(station, []).append(float(time_s))

    def rate(excluded: set[str]) -> float:
        a = sum(v[0] for k, v in counts.items() if k not in excluded)
        d = sum(v[1] for k, v in counts.items() if k not in excluded)
        return max(MIN_MISFIT_RATE, d / (a + d)) if a + d else MIN_MISFIT_RATE

    def flagged(q: float) -> dict[str, tuple[float, bool]]:
        out = {}
        for k, (a, d) in counts.items():
            p = float(binom.sf(d - 1, a + d, q)) if d else 1.0
            out[k] = (p, d > a and p < alpha / len(counts))
        return out

    # the misfit rate without the reversed stations themselves (they inflate it)
    first = flagged(rate(set()))
    result = flagged(rate({k for k, (_, f) in first.items() if f}))
    checks = [
        StationCheck(
            station=k,
            agree=counts[k][0],
            disagree=counts[k][1],
            p_value=p,
            likely_reversed=f,
            first_disagree_s=min(times[k]) if k in times else None,
            last_disagree_s=max(times[k]) if k in times else None,
        )
        for k, (p, f) in result.items()
    ]
    return sorted(checks, key=lambda c: (c.p_value, -c.disagree, c.station))


def station_rows(
    stations: Sequence[str], predicted: np.ndarray, observed: np.ndarray, time_s: float | None
) -> list[tuple[str, int, int, float | None]]:
    """The rows :func:`check_stations` takes, of one event."""
    return [
        (s, int(p), int(o), time_s)
        for s, p, o in zip(stations, predicted.tolist(), np.asarray(observed).tolist(), strict=True)
    ]
