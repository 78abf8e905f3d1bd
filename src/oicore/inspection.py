"""``oicore info`` and ``oicore verify``: what an ``.oic`` file holds, and whether every byte of it is sound.

``info`` reads only the directory. ``verify`` checks every block's CRC-32C and
every structural invariant of FORMAT.md, decoding each column and index; with
``against``, it also renders each source file in memory and compares it with
the given CSV files.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from oicore.errors import ChecksumError, OicoreError
from oicore.store import Store

__all__ = ["info", "verify", "VerifyMismatchError", "INFO_KEYS"]

# The keys of info()'s result (README: "oicore info --json").
INFO_KEYS = {
    "path": "the file",
    "size": "its size in bytes",
    "format": "[major, minor] of FORMAT.md",
    "uuid": "the file's UUID",
    "release": "v1…v7 or unknown",
    "oicore_version": "the oicore that wrote it",
    "created": "when (UTC)",
    "exact": "true when export reproduces every source byte for byte",
    "exceptions": "rows kept as raw bytes because no rule reproduces them",
    "sources": "every source file: name, size, sha256, table, split, kind, export_only, list_name",
    "vocabulary": "distinct label MIDs",
    "images": "distinct image IDs",
    "tables": "per table: rows, rows_per_split, stored_bytes, raw_bytes and columns "
    "(name, encoding, stored_bytes, raw_bytes, ratio)",
    "index_bytes": "stored bytes of the image index, vocabulary and per-table indexes",
}


class VerifyMismatchError(OicoreError, ValueError):
    """``verify --against``: an exported file differs from the given source (``path``, ``line`` say where)."""

    def __init__(self, reason: str, *, path=None, line=None):
        self.reason, self.path, self.line = reason, path, line
        super().__init__(reason)

    def __reduce__(self):
        return (type(self), (self.reason,), {"path": self.path, "line": self.line})


_CHECK_ROWS = 1 << 18  # rows of a column decoded at a time by verify


def _segment_bytes(container, segments) -> tuple[int, int]:
    stored = raw = 0
    for i in segments:
        if i is None:
            continue
        seg = container.segments[i]
        blocks = container.blocks[seg["first_block"] : seg["first_block"] + seg["block_count"]]
        stored += int(blocks[:, 0].sum(dtype="int64"))
        raw += int(blocks[:, 1].sum(dtype="int64"))
    return stored, raw


def _column_segments(entry, found=None) -> set:
    """Every segment a column entry names, however deeply (text encodings nest them)."""
    found = set() if found is None else found
    if isinstance(entry, dict):
        for key, value in entry.items():
            if key in ("segment", "nulls") and isinstance(value, int):
                found.add(value)
            elif key != "ref":  # a reference points at another column's segment: counted there
                _column_segments(value, found)
    elif isinstance(entry, list):
        for value in entry:
            _column_segments(value, found)
    return found


def _column_bytes(container, col: dict) -> tuple[int, int]:
    """A column's stored and raw bytes; of a segment it shares as records (``stride``), its fields' share."""
    ints = col.get("ints")
    segments = _column_segments(col)
    if not isinstance(ints, dict) or ints.get("stride") in (None, ints.get("bits")):
        return _segment_bytes(container, segments)
    shared = ints["segment"]
    stored, raw = _segment_bytes(container, segments - {shared})
    s, r = _segment_bytes(container, [shared])
    return stored + s * ints["bits"] // ints["stride"], raw + r * ints["bits"] // ints["stride"]


def info(path) -> dict:
    """A summary of an ``.oic`` file from its directory (keys: ``INFO_KEYS``)."""
    store = Store(path)
    try:
        c = store.container
        prov = store.provenance
        tables = {}
        index_segments = [store.directory["images"].get(k) for k in ("ids", "buckets", "split")]
        index_segments += [store.directory["vocabulary"].get(k) for k in ("offsets", "data")]
        exceptions = 0
        for name, t in store.tables.items():
            cols = []
            for col in t.entry.get("columns", []):
                stored, raw = _column_bytes(c, col)
                cols.append(
                    {
                        "name": col["name"],
                        "encoding": col["encoding"],
                        "stored_bytes": stored,
                        "raw_bytes": raw,
                        "ratio": round(stored / raw, 4) if raw else None,
                    }
                )
            per_split: dict[str, int] = {}
            for part in t.parts:
                split = store.sources[part["source"]].get("split") or "none"
                per_split[split] = per_split.get(split, 0) + part["rows"]
                exceptions += part.get("exceptions", 0)
            for key in ("image_rows", "class_rows", "positive_images", "row_image"):
                if key in t.entry:
                    index_segments.extend(_column_segments(t.entry[key]))
            stored = sum(x["stored_bytes"] for x in cols)
            raw = sum(x["raw_bytes"] for x in cols)
            tables[name] = {"rows": t.rows, "rows_per_split": per_split, "stored_bytes": stored, "raw_bytes": raw, "columns": cols}
        return {
            "path": os.fspath(path),
            "size": c.size,
            "format": list(c.version),
            "uuid": prov.get("uuid"),
            "release": prov.get("release"),
            "oicore_version": prov.get("oicore_version"),
            "created": prov.get("created"),
            "exact": True,
            "exceptions": exceptions,
            "sources": store.sources,
            "vocabulary": store.directory["vocabulary"].get("count"),
            "images": store.directory["images"].get("count"),
            "tables": tables,
            "index_bytes": _segment_bytes(c, set(index_segments))[0],  # a segment two tables share counts once
        }
    finally:
        store.close()


def verify(path, against=None) -> dict:
    """Check every checksum and invariant of ``path``; raise at the first problem.

    Returns a summary (segments, blocks, sources checked). ``against`` (paths of release folders or
    files) also exports every source in memory and compares it with the file of the same name.
    """
    from oicore.exporter import iter_tables, write_parts

    store = Store(path)  # header, footer, directory and its shape
    try:
        _check_every_block(store)
        store.images  # image IDs sorted and unique, buckets and splits sized
        buckets_ok = _check_buckets(store)
        for name, t in store.tables.items():
            for col in t.columns:
                if t.columns[col]["encoding"] != "image":
                    for w in range(0, max(t.rows, 1), _CHECK_ROWS):  # text a window at a time: memory stays bounded
                        t.column_rows(col, w, min(w + _CHECK_ROWS, t.rows))
            if "image_rows" in t.entry:
                offsets = t.image_rows()
                if int(offsets[-1]) != t.lookup_rows:
                    store.fail(f"table {name!r}: image rows end at {int(offsets[-1])}, expected {t.lookup_rows}")
            _check_class_index(store, t)
            for k in range(len(t.parts)):
                t.exceptions(k)
                if "json_segment" not in t.parts[k]:
                    t.part_positions(k)
            t.forget()  # one table's decoded columns at a time
        compared = 0
        if against is not None:
            compared = _compare(store, against, iter_tables, write_parts)
        return {
            "path": os.fspath(path),
            "segments": len(store.container.segments),
            "blocks": len(store.container.blocks),
            "buckets": buckets_ok,
            "compared": compared,
        }
    finally:
        store.close()


def _segment_owners(directory: dict) -> dict[int, str]:
    """What each segment holds, for messages: ``{segment: "table 'boxes' column 'XMin'"}`` (first owner wins)."""
    owners: dict[int, str] = {}

    def own(seg, what):
        if isinstance(seg, int) and not isinstance(seg, bool):
            owners.setdefault(seg, what)

    for key in ("ids", "buckets", "split"):
        own(directory.get("images", {}).get(key), f"image index {key}")
    for key in ("offsets", "data"):
        own(directory.get("vocabulary", {}).get(key), f"vocabulary {key}")
    for name, t in directory.get("tables", {}).items():
        if not isinstance(t, dict):
            continue
        for col in t.get("columns", []) if isinstance(t.get("columns"), list) else []:
            if isinstance(col, dict):
                for seg in sorted(_column_segments(col)):
                    own(seg, f"table {name!r} column {col.get('name')!r}")
        for key in ("row_part", "export_ids"):
            own(t.get(key), f"table {name!r} {key}")
        for key in ("image_rows", "class_rows", "positive_images", "row_image"):
            spec = t.get(key)
            if isinstance(spec, dict):
                for inner, value in spec.items():
                    for seg in sorted(_column_segments({"segment": value} if inner in ("offsets", "segment") else value)):
                        own(seg, f"table {name!r} {key}" if inner in ("segment", "bits", "base") else f"table {name!r} {key} {inner}")
        for k, part in enumerate(t.get("parts", []) if isinstance(t.get("parts"), list) else []):
            if isinstance(part, dict):
                for key in ("exception_segment", "file_order", "json_segment"):
                    own(part.get(key), f"table {name!r} part {k} {key}")
    return owners


def _check_every_block(store) -> None:
    """Every block's CRC-32C; a mismatch names the table and column (or index) the segment belongs to."""
    try:
        store.container.verify()
    except ChecksumError as e:
        owner = _segment_owners(store.directory).get(e.segment, "a segment of no table")
        raise ChecksumError(f"{owner}: {e.reason}", path=e.path, byte_offset=e.byte_offset, segment=e.segment, block=e.block) from None


def _check_buckets(store) -> bool:
    im = store.images
    ids, buckets, bits = im["ids"], im["buckets"].astype(np.int64), im["bucket_bits"]
    top = (ids >> np.uint64(64 - bits)).astype(np.int64)
    expected = np.searchsorted(top, np.arange((1 << bits) + 1), side="left")
    if not np.array_equal(expected, buckets):
        store.fail("the image bucket table does not match the image IDs", store.directory["images"]["buckets"])
    return True


def _check_class_index(store, t) -> None:
    n_codes = max(store.directory["vocabulary"]["count"], 1)
    n_images = store.directory["images"]["count"]
    for key, inner, limit in (("class_rows", "rows", t.lookup_rows), ("positive_images", "images", n_images)):
        spec = t.entry.get(key)
        if spec is None:
            continue
        from oicore.columns import ints_array, raw_array

        offsets = raw_array(store.container, spec["offsets"], "u4", n_codes + 1, f"{t.name} {key} offsets")
        if offsets[0] != 0 or (np.diff(offsets.astype(np.int64)) < 0).any():
            store.fail(f"table {t.name!r}: {key} offsets are not monotone", spec["offsets"])
        items = ints_array(store.container, spec[inner], int(offsets[-1]), f"table {t.name!r} {key} {inner}")
        if len(items) and (int(items.min()) < 0 or int(items.max()) >= limit):
            store.fail(f"table {t.name!r}: {key} entries do not fit", spec[inner].get("segment"))
    if "row_image" in t.entry:
        row_image = t.ints(t.entry["row_image"], t.lookup_rows, "row images")
        offsets = t.image_rows()
        expected = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        if not np.array_equal(row_image, expected):
            store.fail(f"table {t.name!r}: row images do not match its image rows", t.entry["row_image"].get("segment"))


def _compare(store, against, iter_tables, write_parts) -> int:
    from oicore.sources import find_sources, source_reader

    given = {s.name: s for s in find_sources(against if isinstance(against, (list, tuple)) else [against])}
    compared = 0
    for table, parts in iter_tables(store):
        # A table's files are compared together: each window of its rows is decoded once for all of them.
        present = [(source, k, given[source["name"]]) for source, k in parts if source["name"] in given]
        with contextlib.ExitStack() as stack:
            # Files, or archive members as they are decompressed (source_reader), read as the export comes.
            sinks = [_CompareSink(stack.enter_context(source_reader(s))) for _, _, s in present]
            write_parts(store, table, [k for _, k, _ in present], sinks)
            for (source, _, found), sink in zip(present, sinks):
                offset = sink.finish()
                if offset is not None:
                    raise VerifyMismatchError(
                        f"{source['name']}: the export differs from {found.where} at line {sink.line} (byte {offset})",
                        path=found.where, line=sink.line,
                    )
                compared += 1
    if not compared:
        raise FileNotFoundError(2, "no source file of the .oic file was found among", ", ".join(map(str, against)) if isinstance(against, (list, tuple)) else str(against))
    return compared


class _CompareSink:
    """A file-like sink that compares what an export writes with an open source file as it comes, so a
    3 GB part is never held in memory; ``finish`` returns the first differing byte offset, or None."""

    def __init__(self, f):
        self.f = f
        self.offset = 0  # bytes equal so far
        self.line = 1  # the line of the first difference (1 + newlines before it)
        self.differs = False

    def write(self, data) -> int:
        if self.differs:
            return len(data)
        data = bytes(data)
        original = self.f.read(len(data))
        if original == data:
            self.offset += len(data)
            self.line += data.count(b"\n")
            return len(data)
        line, i = _first_difference(data, original)
        self.offset += i
        self.line += line - 1
        self.differs = True
        return len(data)

    def finish(self) -> int | None:
        if not self.differs and self.f.read(1):
            self.differs = True  # the source goes on after the export ends
        return self.offset if self.differs else None


def _first_difference(a: bytes, b: bytes) -> tuple[int, int]:
    n = min(len(a), len(b))
    lo = 0
    step = 1 << 16
    while lo < n and a[lo : lo + step] == b[lo : lo + step]:
        lo += step
    i = lo
    while i < n and a[i] == b[i]:
        i += 1
    return a[:i].count(b"\n") + 1, i
