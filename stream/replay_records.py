"""Recorded miniSEED for ``firstmotion replay``: find files, re-record into 512-byte records,
hold many records compactly.

:class:`RecordTable` is what the replay server keeps in memory: one ``(N, 512)`` uint8 array of
records plus per-record start/end times (epoch ns) and a stream index, about 540 bytes per
record. Files of 512-byte records are parsed vectorized
(:func:`~stream.seedlink_protocol.parse_record_headers_512`); other record lengths are
re-recorded with obspy (:func:`rerecord_512`) and parsed record by record
(:func:`~stream.seedlink_protocol.parse_record_header`, the slow twin).
"""

from __future__ import annotations

import glob
import io
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stream import seedlink_protocol as slp

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Record:
    """One 512-byte miniSEED data record and its parsed header."""

    header: slp.RecordHeader
    data: bytes


def find_mseed_files(sources: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Files named by ``sources``: files, folders (searched recursively, keeping the files that
    look like miniSEED) and glob patterns. Raises ``ValueError`` when a source matches nothing.
    """
    found: dict[Path, None] = {}
    for source in sources:
        text = os.fspath(source)
        path = Path(text)
        if path.is_file():
            found[path.resolve()] = None
        elif path.is_dir():
            for candidate in sorted(p for p in path.rglob("*") if p.is_file()):
                if _sniff_mseed(candidate):
                    found[candidate.resolve()] = None
        elif glob.has_magic(text):
            matches = sorted(Path(p) for p in glob.glob(text, recursive=True))
            files = [p for p in matches if p.is_file()]
            if not files:
                raise ValueError(f"replay source {text!r}: the pattern matches no file")
            for p in files:
                found[p.resolve()] = None
        else:
            raise ValueError(f"replay source {text!r}: no such file, folder or pattern")
    return list(found)


def _sniff_mseed(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return slp.looks_like_mseed(fh.read(64))
    except OSError:
        return False


def rerecord_512(raw: bytes) -> list[bytes]:
    """Re-record miniSEED bytes into 512-byte records with obspy (``reclen=512``).

    Keeps the source encoding where it fits SeedLink use: FLOAT32/FLOAT64 for float samples,
    STEIM1 stays STEIM1, other integer encodings become STEIM2 (INT32 if Steim2 cannot hold
    the differences).
    """
    import obspy

    stream = obspy.read(io.BytesIO(raw), format="MSEED")
    out: list[bytes] = []
    for trace in stream:
        source = getattr(trace.stats, "mseed", {}).get("encoding", "")
        if trace.data.dtype.kind == "f":
            encodings = ["FLOAT64" if trace.data.dtype.itemsize == 8 else "FLOAT32"]
        elif trace.data.dtype.kind in "iu":
            trace.data = trace.data.astype(np.int32)
            encodings = ["STEIM1" if source == "STEIM1" else "STEIM2", "INT32"]
        else:
            continue  # ASCII log records carry no samples to replay
        for encoding in encodings:
            buf = io.BytesIO()
            try:
                trace.write(buf, format="MSEED", reclen=slp.SL_RECORD_BYTES, encoding=encoding)
            except Exception as exc:  # obspy raises plain Exceptions for Steim overflow
                log.debug("re-recording %s as %s failed: %s", trace.id, encoding, exc)
                continue
            data = buf.getvalue()
            out.extend(
                data[i : i + slp.SL_RECORD_BYTES] for i in range(0, len(data), slp.SL_RECORD_BYTES)
            )
            break
        else:
            raise ValueError(f"cannot re-record {trace.id} into 512-byte records")
    return out


def split_records(raw: bytes) -> list[bytes] | None:
    """The 512-byte records of ``raw`` when every record in it is 512 bytes, else ``None``."""
    if len(raw) % slp.SL_RECORD_BYTES:
        return None
    out = []
    for offset in range(0, len(raw), slp.SL_RECORD_BYTES):
        chunk = raw[offset : offset + slp.SL_RECORD_BYTES]
        try:
            header = slp.parse_record_header(chunk)
        except ValueError:
            return None
        if header.record_bytes != slp.SL_RECORD_BYTES:
            return None
        out.append(chunk)
    return out


def records_from_bytes(raw: bytes) -> list[Record]:
    """Data records (samples > 0, rate > 0) of one miniSEED file's bytes, as 512-byte records."""
    chunks = split_records(raw)
    if chunks is None:
        chunks = rerecord_512(raw)
    out = []
    for chunk in chunks:
        header = slp.parse_record_header(chunk)
        if header.n_samples > 0 and header.sampling_rate_hz > 0:
            out.append(Record(header, chunk))
    return out


def load_records(sources: Iterable[str | os.PathLike[str]]) -> list[Record]:
    """All data records of the miniSEED files named by ``sources`` (see
    :func:`find_mseed_files`) as :class:`Record` objects (the slow, per-record path; the
    server uses :func:`load_table`)."""
    records: list[Record] = []
    for path in find_mseed_files(sources):
        records.extend(records_from_bytes(path.read_bytes()))
    return records


@dataclass(frozen=True, eq=False)
class RecordTable:
    """Many 512-byte data records, compactly: one ``(N, 512)`` uint8 array plus per-record
    ``start_ns``/``end_ns`` (int64) and ``stream_index`` (int32) into ``streams`` (sorted
    ``(net, sta, loc, cha)`` tuples). About 540 bytes per record."""

    data: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray
    stream_index: np.ndarray
    streams: tuple[tuple[str, str, str, str], ...]

    def __len__(self) -> int:
        return int(self.data.shape[0])

    @classmethod
    def empty(cls) -> RecordTable:
        z = np.zeros(0, dtype=np.int64)
        return cls(np.zeros((0, slp.SL_RECORD_BYTES), np.uint8), z, z, z.astype(np.int32), ())

    @classmethod
    def from_records(cls, records: Sequence[Record]) -> RecordTable:
        """A table of :class:`Record` objects (data records only are expected)."""
        if not records:
            return cls.empty()
        keys = [
            (r.header.network, r.header.station, r.header.location, r.header.channel)
            for r in records
        ]
        streams = tuple(sorted(set(keys)))
        lookup = {k: i for i, k in enumerate(streams)}
        return cls(
            data=np.frombuffer(b"".join(r.data for r in records), np.uint8).reshape(-1, 512),
            start_ns=np.array([r.header.start_ns for r in records], dtype=np.int64),
            end_ns=np.array([r.header.end_ns for r in records], dtype=np.int64),
            stream_index=np.array([lookup[k] for k in keys], dtype=np.int32),
            streams=streams,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> RecordTable:
        """Data records (samples > 0, rate > 0) of one miniSEED file's bytes.

        Files of 512-byte records are parsed vectorized
        (:func:`~stream.seedlink_protocol.parse_record_headers_512`); anything else goes
        through :func:`records_from_bytes` (re-recording into 512-byte records).
        """
        if raw and len(raw) % slp.SL_RECORD_BYTES == 0:
            data = np.frombuffer(raw, np.uint8).reshape(-1, slp.SL_RECORD_BYTES)
            heads = slp.parse_record_headers_512(data)
            if heads is not None and np.all(heads.record_bytes == slp.SL_RECORD_BYTES):
                keep = (heads.n_samples > 0) & (heads.sampling_rate_hz > 0)
                uniq, inverse = np.unique(heads.ids[keep], return_inverse=True)
                decoded = [slp.decode_id(bytes(u)) for u in uniq]
                order = sorted(range(len(decoded)), key=decoded.__getitem__)
                rank = np.empty(len(order), dtype=np.int32)
                rank[order] = np.arange(len(order), dtype=np.int32)
                return cls(
                    data=data[keep],
                    start_ns=heads.start_ns[keep],
                    end_ns=heads.end_ns[keep],
                    stream_index=rank[inverse.reshape(-1)],
                    streams=tuple(decoded[i] for i in order),
                )
        return cls.from_records(records_from_bytes(raw))

    @classmethod
    def concat(cls, tables: Sequence[RecordTable]) -> RecordTable:
        """One table of several (stream indices remapped to the union of streams)."""
        tables = [t for t in tables if len(t)]
        if not tables:
            return cls.empty()
        streams = tuple(sorted({s for t in tables for s in t.streams}))
        lookup = {k: i for i, k in enumerate(streams)}
        remapped = [
            np.array([lookup[k] for k in t.streams], dtype=np.int32)[t.stream_index] for t in tables
        ]
        return cls(
            data=np.concatenate([t.data for t in tables]),
            start_ns=np.concatenate([t.start_ns for t in tables]),
            end_ns=np.concatenate([t.end_ns for t in tables]),
            stream_index=np.concatenate(remapped),
            streams=streams,
        )

    def take(self, index: np.ndarray) -> RecordTable:
        """The records at ``index`` (in that order)."""
        return RecordTable(
            data=self.data[index],
            start_ns=self.start_ns[index],
            end_ns=self.end_ns[index],
            stream_index=self.stream_index[index],
            streams=self.streams,
        )


def load_table(
    sources: Iterable[str | os.PathLike[str]],
    *,
    skipped: list[tuple[Path, str]] | None = None,
) -> RecordTable:
    """All data records of the miniSEED files named by ``sources`` (see
    :func:`find_mseed_files`), re-recorded into 512-byte records where needed.

    A file that cannot be read or parsed (corrupt records, bytes that are not miniSEED) is
    reported (one ERROR line naming the file and the problem) and skipped; the others are
    served. ``skipped`` (if given) receives ``(path, problem)`` for each. A truncated file
    keeps its whole records (obspy drops the partial last one with a warning).
    """
    tables = []
    for path in find_mseed_files(sources):
        try:
            table = RecordTable.from_bytes(path.read_bytes())
        except Exception as exc:  # obspy raises plain Exceptions (InternalMSEEDError...)
            problem = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            log.error("replay: skipping %s: %s", path, problem)
            if skipped is not None:
                skipped.append((path, problem))
            continue
        log.debug("%s: %d records", path, len(table))
        tables.append(table)
    return RecordTable.concat(tables)
