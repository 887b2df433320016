"""``firstmotion stress``: the stress tensor from a catalog of focal mechanisms.

    firstmotion stress --input mechs.csv --output stress.json
    firstmotion stress --input catalog.xml --output cells.json --grid-deg 0.5 \\
        --min-mechanisms 20 --quality A,B --plot map.png --geojson cells.geojson
    firstmotion stress --redis redis://localhost:6379/0 --output stress.json

Without ``--grid-deg`` the JSON object has exactly the keys ``sigma1``, ``sigma2``, ``sigma3``
(``{"azimuth_deg", "plunge_deg"}``), ``shape_ratio``, ``shmax_azimuth_deg``, ``n_mechanisms``
and ``uncertainty``; with it, ``{"cells": [...]}``, each cell such an object plus ``cell``,
``centre``, ``count`` and ``regime``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import numpy as np

from workers.stress.cells import cell_object, invert_cells, parse_quality
from workers.stress.invert import invert_stress
from workers.stress.io import read_mechanisms, read_redis, to_geojson, write_json

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="CSV (strike, dip, rake, ...), JSON lines or QuakeML file")
    src.add_argument("--redis", help="read the live catalog from this Redis URL")
    parser.add_argument("--prefix", default="fm:", help="Redis key prefix (default fm:)")
    parser.add_argument("--output", required=True, help="JSON file to write")
    parser.add_argument("--grid-deg", type=float, default=None, help="cell size in degrees")
    parser.add_argument("--min-mechanisms", type=int, default=20, help="least per cell")
    parser.add_argument("--quality", default=None, help="mechanism qualities to use, e.g. A,B")
    parser.add_argument("--friction", type=float, default=None,
                        help="fixed fault friction (0 or none: chosen by the inversion, as "
                        "stress.friction = 0 in the config)")  # fmt: skip
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the bootstrap")
    parser.add_argument("--plot", default=None, help="map PNG to write")
    parser.add_argument("--geojson", default=None, help="GeoJSON file to write")


def run(args: argparse.Namespace) -> int:
    try:
        quality = parse_quality(args.quality)
    except ValueError as exc:
        print(f"firstmotion stress: --{exc}", file=sys.stderr)
        return 2
    if args.grid_deg is not None and not args.grid_deg > 0:
        print("firstmotion stress: --grid-deg must be > 0", file=sys.stderr)
        return 2
    if args.redis:
        import redis

        client = redis.Redis.from_url(args.redis)
        try:
            table = read_redis(client, args.prefix)
        finally:
            client.close()
    else:
        try:
            table = read_mechanisms(args.input)
        except (OSError, ValueError) as exc:
            where = "" if str(exc).startswith(str(args.input)) else f"{args.input}: "
            print(f"firstmotion stress: {where}{exc}", file=sys.stderr)
            return 2
    table = table.with_quality(quality)
    kw = {"friction": args.friction or None, "n_bootstrap": args.bootstrap, "seed": args.seed}
    placed = int(np.sum(np.isfinite(table.latitude) & np.isfinite(table.longitude)))
    if placed < len(table) and (args.grid_deg is not None or args.plot or args.geojson):
        log.warning("%d of %d mechanisms have no epicentre: left out of the cells and the map",
                    len(table) - placed, len(table))  # fmt: skip
    if args.grid_deg is None:
        if len(table) < max(4, args.min_mechanisms):
            print(f"firstmotion stress: {len(table)} mechanisms, fewer than --min-mechanisms "
                  f"{args.min_mechanisms}", file=sys.stderr)  # fmt: skip
            return 1
        res = invert_stress(table.strike, table.dip, table.rake, **kw)
        out = res.to_dict()
        ok = np.isfinite(table.latitude) & np.isfinite(table.longitude)
        cells = []
        if ok.any():
            lat, lon = float(np.mean(table.latitude[ok])), float(np.mean(table.longitude[ok]))
            span = max(np.ptp(table.latitude[ok]), 0.05)
            cells = [{**out, "cell": "all", "regime": res.regime, "count": res.n_mechanisms,
                      "centre": {"latitude_deg": lat, "longitude_deg": lon},
                      "_half_deg": 0.4 * span}]  # fmt: skip
        log.info(
            "%d mechanisms: sigma1 %s sigma3 %s R %.2f SHmax %.1f (%s)",
            res.n_mechanisms,
            out["sigma1"],
            out["sigma3"],
            res.shape_ratio,
            res.shmax_azimuth_deg,
            res.regime,
        )
    else:
        least = max(4, args.min_mechanisms)  # a stress tensor needs four mechanisms
        results = invert_cells(table, args.grid_deg, min_mechanisms=least,
                               progress=sys.stderr.isatty(), **kw)  # fmt: skip
        cells = [cell_object(r, args.grid_deg, *key) for key, r in results]
        out = {"cells": cells}
        for c in cells:
            c["_half_deg"] = 0.4 * args.grid_deg
        log.info("%d mechanisms, %d cells with >= %d", len(table), len(cells), least)
    public = json.loads(json.dumps(out, default=float))
    for c in public.get("cells", []):
        c.pop("_half_deg", None)
    write_json(args.output, public)
    if args.geojson:
        write_json(args.geojson, to_geojson([{k: v for k, v in c.items() if k != "_half_deg"}
                                             for c in cells]))  # fmt: skip
    if args.plot:
        from workers.stress.plot import plot_stress_map

        plot_stress_map(cells, table, args.plot)
    return 0
