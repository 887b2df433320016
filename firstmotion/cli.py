"""The ``firstmotion`` command line.

Each command lives in its own module, imported only when that command runs (so ``--help`` is
fast and nothing heavy is imported for a command that does not need it). A command module
exposes two functions::

    def add_arguments(parser: argparse.ArgumentParser) -> None: ...
    def run(args: argparse.Namespace) -> int: ...

A command whose module does not exist yet says so and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from firstmotion import __version__
from firstmotion.log import setup_logging

log = logging.getLogger(__name__)

# command -> (module, help) ; grouped commands: command -> {subcommand: (module, help)}
Command = tuple[str, str]
COMMANDS: dict[str, Command | dict[str, Command]] = {
    "demo": ("firstmotion.demo", "run the main job on an embedded scenario, end to end"),
    "run": ("firstmotion.run", "production: every stage in one process tree (--config FILE)"),
    "stream": ("stream.ingest", "one stream process: SeedLink ingest, buffer, detect"),
    "worker": {
        "polarity": ("workers.polarity.worker", "classify P first-motion polarities"),
        "associate": ("workers.associate", "group picks into events and locate them"),
        "mechanism": ("workers.mechanism.worker", "invert polarities for focal mechanisms"),
        "catalog": ("workers.catalog", "maintain the live catalog"),
        "stress": ("workers.stress.worker", "keep the stress tensor of every cell up to date"),
    },
    "replay": ("stream.replay", "SeedLink v3 server streaming recorded miniSEED"),
    "scenario": ("stream.scenario.cli", "synthetic network data with known mechanisms"),
    "stress": ("workers.stress.cli", "stress tensor from focal mechanisms (CSV, QuakeML, Redis)"),
    "reprocess": (
        "workers.reprocess.pipeline",
        "polarities and mechanisms for an existing catalog from its waveform archive",
    ),
    "invert": ("workers.mechanism.cli", "batch focal-mechanism inversion (JSONL or SKHASH CSV)"),
    "polarity": {
        "train": ("workers.polarity.train", "train the polarity model"),
        "eval": ("workers.polarity.evaluate", "evaluate a polarity model"),
        "show": (
            "workers.polarity.show",
            "plot a pick's window (or an event's) as the model sees it",
        ),
    },
    "picker": {
        "eval": ("stream.picker_eval", "the stream's pickers against your analysts' P and S"),
    },
    "catalog": {
        "export": ("workers.catalog_export", "export the live catalog (QuakeML, JSON, CSV)"),
        "prune": ("workers.catalog_prune", "remove events older than a date from the live catalog"),
        "station-delays": (
            "workers.catalog_station_delays",
            "station delays for the associator from a catalog's arrival residuals",
        ),
    },
    "config": {
        "check": ("firstmotion.config", "validate a config file and print the effective config"),
    },
    "dead-letters": ("firstmotion.dead_letters", "list, requeue or drop dead letters (fm:dead)"),
}

NOT_BUILT_EXIT = 2
INPUT_ERROR_EXIT = 2  # a file that is not there or cannot be read as what it should be


def _load(module: str):
    """Import a command module; ``None`` when that module itself does not exist yet."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (module == exc.name or module.startswith(exc.name + ".")):
            return None
        raise


def _describe() -> str:
    lines = ["commands:"]
    for name, entry in COMMANDS.items():
        if isinstance(entry, dict):
            for sub, (_, text) in entry.items():
                lines.append(f"  {name + ' ' + sub:<20} {text}")
        else:
            lines.append(f"  {name:<20} {entry[1]}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog="firstmotion",
        description="Real-time P first-motion polarities and focal mechanisms.",
        epilog=_describe(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"firstmotion {__version__}")
    top.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    top.add_argument("--log-json", action="store_true", help="one JSON object per log line")
    top.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    top.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    ns = top.parse_args(argv)

    entry = COMMANDS[ns.command]
    prog = f"firstmotion {ns.command}"
    rest = ns.rest
    if isinstance(entry, dict):
        if not rest or rest[0] not in entry:
            choices = ", ".join(entry)
            if rest and rest[0] in ("-h", "--help"):
                print(f"usage: {prog} {{{choices}}} ...")
                return 0
            print(f"{prog}: expected one of {{{choices}}}", file=sys.stderr)
            return NOT_BUILT_EXIT
        sub, rest = rest[0], rest[1:]
        module_name, text = entry[sub]
        prog = f"{prog} {sub}"
    else:
        module_name, text = entry

    module = _load(module_name)
    if module is None or not hasattr(module, "run"):
        print(f"{prog}: not built yet ({text}).", file=sys.stderr)
        return NOT_BUILT_EXIT

    parser = argparse.ArgumentParser(prog=prog, description=text)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    setup_logging(ns.log_level, json_lines=ns.log_json)
    from firstmotion.config import ConfigError
    from firstmotion.errors import InputError

    try:
        return int(module.run(args) or 0)
    except ConfigError as exc:  # a bad config file or environment: say what, no traceback
        print(f"{prog}: invalid configuration:\n{exc}", file=sys.stderr)
        return 1
    except InputError as exc:  # an input of the wrong form: which, and why
        print(f"{prog}: {exc}", file=sys.stderr)
        return INPUT_ERROR_EXIT
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as exc:
        if exc.filename is None:
            raise
        log.debug("%s", exc, exc_info=True)
        print(f"{prog}: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return INPUT_ERROR_EXIT
    except Exception as exc:  # Redis refused or away where a command cannot wait: one line
        if type(exc).__module__.split(".")[0] != "redis":
            raise
        from firstmotion.bus import describe_redis_error

        print(f"{prog}: {describe_redis_error(exc, getattr(args, 'redis', None))}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
