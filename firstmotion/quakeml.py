"""QuakeML 1.2 of catalog events, shared by the live catalog's export and the reprocessing outputs.

:func:`to_obspy_catalog` builds an :class:`obspy.core.event.Catalog` from
:class:`firstmotion.messages.CatalogEvent` objects: per event the origin (with its arrivals), the
magnitude when known, and the focal mechanism with both nodal planes (plane 1 preferred),
misfit, station polarity count, station distribution ratio and azimuthal gap; the quality
letter, probability and fault-plane uncertainty are in a comment (``quality=B; ...``) and the
creation info's version (``catalog revision N``). The polarities used are P picks with
``polarity`` positive/negative, each tied to the origin by an arrival. QuakeML's takeoff angle
is from the downward vertical: written as ``180 - takeoff_deg`` (firstmotion's takeoff is from
vertical-up). obspy is imported inside the function (no heavy import at module import).
"""

from __future__ import annotations

import re
from typing import Any

from firstmotion.geodesy import KM_PER_DEG
from firstmotion.messages import CatalogEvent

_PICK_TIME_RE = re.compile(r"[@:](\d+(?:\.\d+)?)$")
_URI_BAD_RE = re.compile(r"[^\w\-.*()~'+?=,;#/]")
POLARITY_WORDS = {1: "positive", -1: "negative", 0: "undecidable"}


def uri_part(text: str) -> str:
    """``text`` as a valid QuakeML resource-id path part (``@`` -> ``/``, others -> ``_``)."""
    return _URI_BAD_RE.sub("_", text.replace("@", "/"))


def pick_time_epoch_s(pick_id: str) -> float | None:
    """The pick time encoded in a firstmotion pick id: ``NET.STA.LOC.CHA@<epoch s>``
    (:func:`firstmotion.messages.make_pick_id`), or the stream's ``NET.STA.LOC.CHA:<epoch s>``
    and ``NET.STA.LOC.CHA:<phase>:<epoch s>``; millisecond precision."""
    m = _PICK_TIME_RE.search(pick_id)
    return float(m.group(1)) if m else None


def to_obspy_catalog(events: list[CatalogEvent]) -> Any:
    """An :class:`obspy.core.event.Catalog` of ``events`` (see the module docstring)."""
    from obspy import UTCDateTime
    from obspy.core.event import (
        Arrival,
        Catalog,
        Comment,
        CreationInfo,
        FocalMechanism,
        Magnitude,
        NodalPlane,
        NodalPlanes,
        OriginQuality,
        Pick,
        ResourceIdentifier,
        WaveformStreamID,
    )
    from obspy.core.event import Event as QEvent
    from obspy.core.event import Origin as QOrigin

    def pick(resource_id, pick_id: str, station_id: str, phase: str, polarity: int,
             time_epoch_s: float | None = None) -> Pick:  # fmt: skip
        net, sta, loc, cha = station_id.split(".")
        t = time_epoch_s if time_epoch_s is not None else pick_time_epoch_s(pick_id)
        return Pick(
            resource_id=resource_id,
            time=UTCDateTime(t) if t is not None else None,
            waveform_id=WaveformStreamID(net, sta, loc, cha),
            phase_hint=phase,
            polarity=POLARITY_WORDS.get(polarity),
            evaluation_mode="automatic",
        )

    cat = Catalog(
        resource_id=ResourceIdentifier("smi:firstmotion/catalog"),
        creation_info=CreationInfo(agency_id="FM", author="firstmotion", creation_time=None),
        description="firstmotion live catalog",
    )
    for ev in events:
        o, m = ev.origin, ev.mechanism
        base = f"smi:firstmotion/{uri_part(ev.event_id)}"
        info = CreationInfo(
            agency_id="FM",
            author="firstmotion",
            creation_time=UTCDateTime(ev.updated_epoch_s),
            version=f"catalog revision {ev.revision}",
        )
        origin = QOrigin(
            resource_id=ResourceIdentifier(f"{base}/origin/{o.revision}"),
            time=UTCDateTime(o.time_epoch_s),
            latitude=o.latitude_deg,
            longitude=o.longitude_deg,
            depth=o.depth_km * 1000.0,
            method_id=ResourceIdentifier(f"smi:firstmotion/method/{uri_part(o.method)}"),
            evaluation_mode="automatic",
            evaluation_status="rejected" if ev.status == "deleted" else ev.status,
            quality=OriginQuality(
                associated_phase_count=len(o.arrivals),
                standard_error=o.rms_s,
            ),
            creation_info=CreationInfo(
                agency_id="FM", creation_time=UTCDateTime(o.created_epoch_s),
                version=str(o.revision),
            ),
        )  # fmt: skip
        polarity_of = {p.pick_id: p.polarity for p in (m.picks if m is not None else ())}
        picks = []
        pick_ids = {}
        for a in o.arrivals:
            pid = ResourceIdentifier(f"{base}/pick/{uri_part(a.pick_id)}")
            pick_ids[a.pick_id] = pid
            picks.append(pick(pid, a.pick_id, a.station_id, a.phase,
                              polarity_of.get(a.pick_id, 0), a.time_epoch_s))  # fmt: skip
            origin.arrivals.append(
                Arrival(
                    pick_id=pid,
                    phase=a.phase,
                    azimuth=a.azimuth_deg,
                    distance=a.distance_km / KM_PER_DEG,
                    takeoff_angle=180.0 - a.takeoff_deg,
                    time_residual=a.residual_s,
                )
            )
        for p in m.picks if m is not None else ():  # polarities without an arrival
            if p.pick_id in pick_ids:
                continue
            pid = ResourceIdentifier(f"{base}/pick/{uri_part(p.pick_id)}")
            picks.append(pick(pid, p.pick_id, p.station_id, "P", p.polarity))
            origin.arrivals.append(
                Arrival(
                    pick_id=pid, phase="P", azimuth=p.azimuth_deg,
                    takeoff_angle=180.0 - p.takeoff_deg,
                )
            )  # fmt: skip
        qevent = QEvent(
            resource_id=ResourceIdentifier(base),
            event_type="not existing" if ev.status == "deleted" else "earthquake",
            origins=[origin],
            picks=picks,
            creation_info=info,
        )
        qevent.preferred_origin_id = origin.resource_id
        if o.magnitude is not None:
            mag = Magnitude(
                resource_id=ResourceIdentifier(f"{base}/magnitude/{o.revision}"),
                mag=o.magnitude,
                magnitude_type="M",
                origin_id=origin.resource_id,
            )
            qevent.magnitudes.append(mag)
            qevent.preferred_magnitude_id = mag.resource_id
        if m is not None:
            fm = FocalMechanism(
                resource_id=ResourceIdentifier(f"{base}/focal_mechanism/{m.revision}"),
                triggering_origin_id=origin.resource_id,
                nodal_planes=NodalPlanes(
                    nodal_plane_1=NodalPlane(strike=m.strike, dip=m.dip, rake=m.rake),
                    nodal_plane_2=NodalPlane(strike=m.aux_strike, dip=m.aux_dip, rake=m.aux_rake),
                    preferred_plane=1,
                ),
                azimuthal_gap=m.azimuthal_gap_deg,
                station_polarity_count=m.n_polarities,
                misfit=m.misfit,
                station_distribution_ratio=m.station_distribution_ratio,
                method_id=ResourceIdentifier("smi:firstmotion/method/hash-grid-search"),
                evaluation_mode="automatic",
                evaluation_status="final" if ev.status == "final" else "preliminary",
                comments=[
                    Comment(
                        text=(
                            f"quality={m.quality}; probability={m.probability:.3f}; "
                            f"fault_plane_uncertainty_deg={m.fault_plane_uncertainty_deg:.1f}; "
                            f"aux_plane_uncertainty_deg={m.aux_plane_uncertainty_deg:.1f}; "
                            f"mechanism_revision={m.revision}; "
                            f"model_version={m.model_version}"
                        ),
                        resource_id=ResourceIdentifier(f"{base}/focal_mechanism/quality"),
                    )
                ],
                creation_info=CreationInfo(
                    agency_id="FM",
                    creation_time=UTCDateTime(m.created_epoch_s),
                    version=f"quality {m.quality}",
                ),
            )
            qevent.focal_mechanisms.append(fm)
            qevent.preferred_focal_mechanism_id = fm.resource_id
        cat.append(qevent)
    return cat
