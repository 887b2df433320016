"""Sharding the associator and the mechanism worker across replicas on one Redis (spine:
both stages use it).

A :class:`Shard` ``i/N`` (``--shard i/N``) owns:

* for the associator, the epicentres in every N-th longitude band of ``band_deg`` degrees
  (band ``floor(lon / band_deg)``, owned by replica ``band mod N``). Each replica reads every
  pick in its own consumer group (``associate-<i>of<N>``) but keeps only picks of stations
  within ``reach_km`` of one of its bands (the association distance plus a margin), so every
  station that can see an event in its bands is in its window. It builds every event it sees,
  but publishes only those whose (canonical, order-free) epicentre lies in its bands: an event
  near a border is built by both neighbours from the same picks and published by one. Its state
  keys carry the tag ``{s<i>of<N>}`` (one Redis Cluster hash slot per shard); event ids come
  from one shared counter, so they never collide.
* for the mechanism worker, the events whose id hashes (CRC-32) to ``i`` modulo N; each replica
  reads origins and polarities in its own group (``mechanism-<i>of<N>``), stores every polarity
  (idempotent writes of the same value) and inverts only its own events.

``0/1`` (the default) is one replica owning everything, with the unsharded keys and groups.
Choose ``band_deg`` near the network's east-west extent divided by N, and well above
``reach_km`` (in degrees), or every replica reads nearly every station.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

KM_PER_DEG = 111.195  # mean Earth radius 6371 km


@dataclass(frozen=True)
class Shard:
    """Replica ``index`` of ``count`` (see module doc)."""

    index: int = 0
    count: int = 1
    band_deg: float = 2.0

    def __post_init__(self) -> None:
        if not (self.count >= 1 and 0 <= self.index < self.count):
            raise ValueError(f"shard: expected 0 <= index < count, got {self.index}/{self.count}")
        if not self.band_deg > 0:
            raise ValueError(f"shard band_deg: expected > 0, got {self.band_deg}")

    @classmethod
    def parse(cls, text: str, band_deg: float = 2.0) -> Shard:
        """``"i/N"`` (e.g. ``"0/2"``)."""
        try:
            i, n = (int(x) for x in str(text).split("/"))
        except ValueError:
            raise ValueError(f"shard: expected 'INDEX/COUNT' like '0/2', got {text!r}") from None
        return cls(i, n, band_deg)

    @property
    def sharded(self) -> bool:
        return self.count > 1

    @property
    def tag(self) -> str:
        """The state-key tag (``""`` unsharded)."""
        return f"s{self.index}of{self.count}" if self.sharded else ""

    def group(self, base: str) -> str:
        """This replica's consumer group for a stage whose unsharded group is ``base``."""
        return f"{base}-{self.index}of{self.count}" if self.sharded else base

    def _band(self, lon_deg: float) -> int:
        return math.floor(((lon_deg + 180.0) % 360.0) / self.band_deg)

    def owns(self, lat_deg: float, lon_deg: float) -> bool:
        """Whether an epicentre belongs to this replica."""
        return not self.sharded or self._band(lon_deg) % self.count == self.index

    def wants_station(self, lat_deg: float, lon_deg: float, reach_km: float) -> bool:
        """Whether a station lies within ``reach_km`` (east-west) of one of this replica's
        bands: its picks may belong to an event this replica publishes."""
        if not self.sharded:
            return True
        coslat = max(math.cos(math.radians(lat_deg)), 1e-3)
        reach_deg = reach_km / (KM_PER_DEG * coslat)
        if reach_deg >= 180.0:
            return True
        x = (lon_deg + 180.0) % 360.0
        lo = math.floor((x - reach_deg) / self.band_deg)
        hi = math.floor((x + reach_deg) / self.band_deg)
        n_bands = math.ceil(360.0 / self.band_deg)
        return any((b % n_bands) % self.count == self.index for b in range(lo, hi + 1))

    def owns_event(self, event_id: str) -> bool:
        """Whether this (mechanism) replica handles ``event_id``."""
        return not self.sharded or zlib.crc32(event_id.encode()) % self.count == self.index
