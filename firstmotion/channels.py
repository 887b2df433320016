"""Channel codes: which component a channel records, and which sensor it belongs to.

SEED codes (``HHZ``, ``EH1``) name the component by their last letter: Z vertical, N and E
(or 1 and 2, unoriented) horizontal; the letters before it are the band and instrument codes
that group a sensor's channels. Two-letter codes (SEISAN's Nordic components: ``HZ``, ``SZ``)
are the band code and the component. Japanese records read from their own formats use other
names: NIED Hi-net's WIN32 channels converted to SAC or miniSEED are ``U``, ``N``, ``E`` (U:
up), and obspy's K-NET / KiK-net reader gives ``UD``, ``NS``, ``EW`` (KiK-net's borehole and
surface sensors ``UD1`` / ``UD2`` and so on). In a SEED code a last letter U (as V and W) is a
triaxial sensor's inclined component, not the vertical, so U is read as up only where the
whole code is ``U`` or ``UD``.
"""

from __future__ import annotations

_JAPANESE = {"UD": "Z", "NS": "N", "EW": "E"}


def _japanese(code: str) -> tuple[str, str] | None:
    """(component, sensor) of a Hi-net or K-NET / KiK-net code, else None."""
    if code in ("U", "N", "E"):
        return ("Z" if code == "U" else code), ""
    head, tail = code[:2], code[2:]
    if head in _JAPANESE and (tail == "" or tail.isdigit()):
        return _JAPANESE[head], tail
    return None


def component(channel: str) -> str | None:
    """The component ``channel`` records: ``"Z"`` (vertical), ``"N"``, ``"E"``, ``"1"`` or
    ``"2"`` (horizontal), or None (another component or no code)."""
    code = str(channel or "").strip().upper()
    if not code:
        return None
    japanese = _japanese(code)
    if japanese is not None:
        return japanese[0]
    last = code[-1]
    return last if last in "ZNE12" else None


def is_vertical(channel: str) -> bool:
    """Whether the code names a vertical channel (:func:`component` is Z)."""
    return component(channel) == "Z"


def sensor(channel: str) -> str:
    """The part of the code that names the sensor, shared by its components: a SEED code's
    band and instrument codes (``HH`` of ``HHZ``), a two-letter code's band (``S`` of ``SZ``),
    KiK-net's sensor number (``1`` of ``UD1``), ``""`` for Hi-net's and K-NET's one-sensor
    codes."""
    code = str(channel or "").strip()
    japanese = _japanese(code.upper())
    if japanese is not None:
        return japanese[1]
    return code[:-1]
