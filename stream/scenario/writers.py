"""Write a scenario as a network center would have it: miniSEED, StationXML, model, truth."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from stream.scenario.build import Scenario
from stream.scenario.truth import truth_catalog

log = logging.getLogger(__name__)

RECORD_LENGTH = 512
ENCODING = "STEIM2"


def write_mseed_hourly(stream, out_dir: Path) -> list[Path]:
    """One file per channel per hour, ``NET.STA.LOC.CHA.YYYY.DDD.HH.mseed``, 512-byte STEIM2
    records of int32 counts."""
    from obspy import Stream, UTCDateTime

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for tr_id in sorted({tr.id for tr in stream}):
        channel = stream.select(id=tr_id)
        start = min(tr.stats.starttime for tr in channel)
        end = max(tr.stats.endtime for tr in channel)
        hour = UTCDateTime(start.year, start.month, start.day, start.hour)
        while hour <= end:
            nxt = hour + 3600
            # [hour, nxt): nearest_sample=False keeps the first sample at or after `hour`
            part = Stream(
                [t for t in channel.slice(hour, nxt - 1e-6, nearest_sample=False) if t.stats.npts]
            )
            if len(part):
                path = out_dir / f"{tr_id}.{hour.year:04d}.{hour.julday:03d}.{hour.hour:02d}.mseed"
                for tr in part:
                    tr.data = tr.data.astype("int32", copy=False)
                part.write(str(path), format="MSEED", encoding=ENCODING, reclen=RECORD_LENGTH)
                paths.append(path)
            hour = nxt
    return paths


def write_scenario(scenario: Scenario, out_dir: str | Path) -> dict[str, Path | list[Path]]:
    """Write everything under ``out_dir``: ``mseed/*.mseed``, ``stations.xml``,
    ``velocity_model.txt``, ``truth.json``, ``truth.xml`` (QuakeML), ``reversals.csv`` (stations
    wired upside down, SKHASH's CSV reversal format, open-ended; header only when none).
    ``*.mseed`` files already in ``out_dir/mseed`` (an earlier scenario's) are removed first:
    whatever reads the folder (``firstmotion replay --data``) must see this scenario alone.
    Returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stale = sorted((out / "mseed").glob("*.mseed"))
    for path in stale:
        path.unlink()
    if stale:
        log.info(
            "removed %d miniSEED files of an earlier scenario from %s", len(stale), out / "mseed"
        )
    mseed = write_mseed_hourly(scenario.stream(), out / "mseed")
    stationxml = out / "stations.xml"
    scenario.inventory().write(str(stationxml), format="STATIONXML")
    model_path = scenario.model.write(out / "velocity_model.txt")
    truth = dict(scenario.truth)
    truth["files"] = {
        "mseed": "mseed/", "stationxml": "stations.xml", "velocity_model": "velocity_model.txt",
        "quakeml": "truth.xml",
    }  # fmt: skip
    reversals = out / "reversals.csv"
    rows = ["network,station,location,channel,start_time,end_time"]
    z = scenario.config.sensor_spec().channels[0]
    rows += [f"{s.network},{s.code},,{z},0,0" for s in scenario.stations if s.reversed]
    reversals.write_text("\n".join(rows) + "\n")
    truth["files"]["reversals"] = "reversals.csv"
    truth_json = out / "truth.json"
    truth_json.write_text(json.dumps(truth, indent=1) + "\n")
    quakeml = out / "truth.xml"
    truth_catalog(scenario.truth).write(str(quakeml), format="QUAKEML")
    return {
        "mseed": mseed,
        "stationxml": stationxml,
        "velocity_model": model_path,
        "truth_json": truth_json,
        "quakeml": quakeml,
        "reversals": reversals,
    }
