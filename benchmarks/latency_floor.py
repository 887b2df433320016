"""The P-pick latency floor that whole records set: from the record holding the onset to the
records bringing the data a window needs, for a range of ``tail_s`` and strides.

Run from the repository root::

    .venv/bin/python benchmarks/latency_floor.py [--n-stations 60] [--n-events 4]

A scenario (:mod:`stream.scenario`, 512-byte Steim-2 records as the replay serves them) and
its true P onsets (SNR > 2). Per onset, the picker needs ``onset + tail_s`` on every
component, rounded up to the end of a window on the stride grid (anchored at the vertical's
first sample; "none": no grid wait); the replay releases a record when its last sample's time
has passed. Printed: p50 / p95 of (release of the last record needed) - (release of the
vertical's record holding the onset), i.e. the latency with no processing time at all.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile

import numpy as np
from obspy import UTCDateTime

from benchmarks.bench_mechanism_latency import record_ends


def main(argv: list[str] | None = None) -> None:
    import glob

    from stream.scenario import ScenarioConfig, make_scenario, write_scenario

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-stations", type=int, default=60)
    ap.add_argument("--n-events", type=int, default=4)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = ScenarioConfig(n_stations=args.n_stations, n_events=args.n_events,
                             duration_s=240.0, region_km=60.0, seed=args.seed)  # fmt: skip
        write_scenario(make_scenario(cfg), tmp)
        records = record_ends(sorted(glob.glob(f"{tmp}/mseed/*.mseed")))
        truth = json.loads(open(f"{tmp}/truth.json").read())
    onsets = [
        (row["station_id"], UTCDateTime(row["p_time"]).timestamp)
        for ev in truth["events"]
        for row in ev["stations"]
        if row.get("p_in_data", True) and (row.get("snr") or 0) > 2
    ]
    durations = [e - s for recs in records.values() for s, e in recs]
    print(f"{len(onsets)} onsets; records of {np.median(durations):.2f} s (median)")

    def released(channel: str, t: float) -> float | None:
        ends = [e for _, e in records[channel] if e >= t]
        return min(ends) if ends else None

    print("tail_s | " + " | ".join(f"stride {s:g} s" for s in (2.0, 1.0, 0.5)) + " | none")
    for tail in (1.5, 1.25, 1.0, 0.75, 0.5):
        cells = []
        for stride in (2.0, 1.0, 0.5, 0.0):
            lat = []
            for z, t in onsets:
                chans = [c for c in records if c.startswith(z[:-1])]
                onset_rec = [e for s, e in records[z] if s <= t < e]
                need = t + tail
                if stride > 0:
                    anchor = records[z][0][0]
                    k = math.ceil((need - anchor - 30.0) / stride + 1e-9)
                    need = anchor + k * stride + 30.0
                have = [released(c, need) for c in chans]
                if onset_rec and None not in have:
                    lat.append(max(have) - onset_rec[0])
            cells.append(f"{np.median(lat):.2f} / {np.percentile(lat, 95):.2f}")
        print(f"{tail:g} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
