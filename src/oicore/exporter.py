"""``oicore export``: every source file of an ``.oic`` file written back, byte for byte, or as Parquet.

CSV export renders each part from its stored columns with the rules recorded
at convert time and splices in the rows kept as raw bytes (``exact``); the
result's sha256 is checked against the provenance. Parquet export writes
``<table>/<split>.parquet`` with the reader's schema.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np

from oicore import exact
from oicore.columns import take_rows
from oicore.errors import FormatError
from oicore.store import Store

__all__ = ["export", "export_part_bytes", "iter_parts", "iter_tables", "write_part", "write_parts"]


def iter_tables(store: Store):
    """Every table and its stored source files: ``(table view, [(source entry, part index), ...])``, parts in
    provenance order; a table's decoded columns are dropped once the caller is done with it, so exporting a
    release holds one table's columns at a time."""
    for table in store.tables.values():
        found = []
        for k, part in enumerate(table.parts):
            src = part.get("source")
            if not isinstance(src, int) or not 0 <= src < len(store.sources):
                store.fail(f"table {table.name!r} part {k}: no valid source index")
            found.append((src, k))
        yield table, [(store.sources[src], k) for src, k in sorted(found)]
        table.forget()


def iter_parts(store: Store):
    """Every stored source file: ``(source entry, table view, part index)``, table by table."""
    for table, parts in iter_tables(store):
        for source, k in parts:
            yield source, table, k


# Rows of a table rendered at a time when its parts are stored in file order: its text columns are decoded a
# window at a time, so exporting (and verify --against) holds about this many rows of text, not the table's.
_EXPORT_CHUNK = 1 << 18


def write_part(store: Store, table, k: int, out) -> None:
    """Write part ``k`` of ``table`` to the binary stream ``out``."""
    write_parts(store, table, [k], [out])


def write_parts(store: Store, table, ks: list[int], outs: list) -> None:
    """Write parts ``ks`` of ``table``, each to its binary stream in ``outs``.

    A table longer than ``_EXPORT_CHUNK`` rows whose parts are stored in file order (no ``file_order``
    permutation) is rendered a window of physical rows at a time: each column's rows of the window are
    decoded once, and every part writes its rows of the window in turn. Otherwise each part's columns are
    decoded whole."""
    parts = []
    for k, out in zip(ks, outs):
        if "json_segment" in table.parts[k]:
            out.write(store.container.data(table.parts[k]["json_segment"]))
        else:
            parts.append(_Part(store, table, k, out))
    if not parts:
        return
    offsets = table.image_rows() if any(p.id_names for p in parts) else None
    if table.rows <= _EXPORT_CHUNK or not all(p.increasing for p in parts):
        for p in parts:
            p.write_rows(p.positions, {name: take_rows(table.column(name), p.positions) for name in p.value_names}, offsets, 0)
            p.out.write(p.suffix)
        return
    for w in range(0, table.rows, _EXPORT_CHUNK):
        hi = min(w + _EXPORT_CHUNK, table.rows)
        spans = [np.searchsorted(p.positions, [w, hi]) for p in parts]  # each part's rows in the window
        names = {name for p, (a, b) in zip(parts, spans) if b > a for name in p.value_names}
        window = {name: table.column_rows(name, w, hi) for name in names}
        for p, (a, b) in zip(parts, spans):
            if b > a:
                local = p.positions[a:b] - w
                p.write_rows(p.positions[a:b], {name: take_rows(window[name], local) for name in p.value_names}, offsets, int(a))
    for p in parts:
        p.out.write(p.suffix)


class _Part:
    """One source file being written: its rows' physical positions (file order), rules and exceptions."""

    def __init__(self, store: Store, table, k: int, out):
        part = table.parts[k]
        self.store, self.out = store, out
        self.positions = table.part_positions(k)
        self.increasing = bool(len(self.positions) < 2 or (np.diff(self.positions) > 0).all())
        self.names = part["columns"]
        self.id_names = [n for n in self.names if table.columns.get(n, {}).get("encoding") == "image"]
        self.value_names = [n for n in self.names if n not in self.id_names]
        for name in self.value_names:
            if name not in table.columns:
                store.fail(f"table {table.name!r} part {k}: column {name!r} is not stored")
        self.table, self.terminator = table, part["terminator"]
        self.rules = {
            "quote": dict(zip(self.names, part["quote"])),
            "style": {n: s for n, s in zip(self.names, part["style"]) if s is not None},
            "decimals": {n: d for n, d in zip(self.names, part.get("decimals") or [None] * len(self.names)) if d is not None},
        }
        self.exc_rows, self.exc_texts = table.exceptions(k)
        self.suffix = part["suffix"].encode("utf-8")
        out.write(part["prefix"].encode("utf-8"))

    def write_rows(self, positions: np.ndarray, cols: dict, offsets, first: int) -> None:
        """The part's rows ``[first, first + len(positions))`` (file order), stored at ``positions``, whose
        columns are ``cols``; rows kept as raw bytes are written as they are."""
        ids = self.table.row_image_ids(positions, offsets) if self.id_names else None
        lo, hi = np.searchsorted(self.exc_rows, [first, first + len(positions)])
        specs = exact.column_specs(self.names, cols, self.rules, ids, self.store.vocabulary)
        exact.render_rows(self.out, specs, len(positions), self.terminator, self.exc_rows[lo:hi] - first, self.exc_texts[lo:hi])


def export_part_bytes(store: Store, table, k: int) -> bytes:
    buf = io.BytesIO()
    write_part(store, table, k, buf)
    return buf.getvalue()


class _Hashing:
    def __init__(self, f):
        self.f, self.h, self.n = f, hashlib.sha256(), 0

    def write(self, data):
        self.h.update(data)
        self.n += len(data)
        if self.f is not None:
            self.f.write(data)


def export(path, to, *, format: str = "csv", image_id: str = "hex", force: bool = False, check: bool = True) -> list[Path]:
    """Write every source file of ``path`` under the folder ``to``; returns the files written.

    ``format="csv"`` writes each source at its original relative path, byte-identical to the file that
    was converted (its sha256 is checked against the provenance unless ``check=False``).
    ``format="parquet"`` writes ``<table>/<split>.parquet`` (``image_id="hex"`` or ``"uint64"``).
    """
    if format not in ("csv", "parquet"):
        raise ValueError(f"format must be 'csv' or 'parquet', got {format!r}")
    if image_id not in ("hex", "uint64"):
        raise ValueError(f"image_id must be 'hex' or 'uint64', got {image_id!r}")
    store = Store(path)
    to = Path(to)
    written = []
    try:
        if format == "parquet":
            return _export_parquet(store, to, image_id, force)
        for table, parts in iter_tables(store):
            targets, tmps, sinks = [], [], []
            for source, _ in parts:
                target = to / source["name"]
                if ".." in Path(source["name"]).parts or Path(source["name"]).is_absolute():
                    store.fail(f"source name {source['name']!r} leaves the export folder")
                if target.exists() and not force:
                    raise FileExistsError(f"{target} exists (use force=True, or --force, to replace it)")
                targets.append(target)
            try:
                # A table's files are written together: each window of its rows is decoded once for all.
                for target in targets:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    tmps.append(target.with_name(f".{target.name}.{os.getpid()}.tmp"))
                    sinks.append(_Hashing(open(tmps[-1], "wb")))
                write_parts(store, table, [k for _, k in parts], sinks)
                for sink in sinks:
                    sink.f.close()
                for (source, _), sink, tmp, target in zip(parts, sinks, tmps, targets):
                    if check and sink.h.hexdigest() != source["sha256"]:
                        raise FormatError(
                            f"export of {source['name']} does not reproduce its sha256 ({sink.h.hexdigest()} != {source['sha256']})",
                            path=store.path,
                        )
                for tmp, target in zip(tmps, targets):
                    os.replace(tmp, target)
                    written.append(target)
            finally:
                for sink in sinks:
                    sink.f.close()
                for tmp in tmps:
                    if tmp.exists():
                        tmp.unlink()
        return written
    finally:
        store.close()


def part_table(store: Store, table, k: int, image_id: str = "hex"):
    """Part ``k`` of ``table`` as a pyarrow table with the reader's schema (ImageID as ``image_id``)."""
    import pyarrow as pa

    part = table.parts[k]
    positions = table.part_positions(k)
    arrays, names = [], []
    vocab_offsets, vocab_data = store.vocabulary
    mids = None
    for name in part["columns"]:
        entry = table.columns[name]
        if entry["encoding"] == "image":
            ids = table.row_image_ids(positions)
            arr = pa.array(ids, pa.uint64()) if image_id == "uint64" else pa.array(np.char.mod("%016x", ids).astype(object) if len(ids) else [], pa.string())
        else:
            col = take_rows(table.column(name), positions)
            if col.encoding == "code":
                if mids is None:
                    mids = pa.array(store.mids(), pa.string())
                arr = pa.DictionaryArray.from_arrays(pa.array(col.values.astype(np.int32)), mids)
            elif col.encoding == "dict":
                arr = pa.DictionaryArray.from_arrays(pa.array(col.values.astype(np.int32)), pa.array(col.dictionary, pa.string()))
            elif col.encoding == "strings":
                arr = pa.Array.from_buffers(pa.large_string(), len(positions), [None, pa.py_buffer(col.offsets), pa.py_buffer(col.data)]).cast(pa.string())
            else:
                values = col.floats() if col.encoding in ("decimal", "float64") else col.values
                from oicore.schema import column

                target = column(name).type.arrow_name
                try:
                    arr = pa.array(values, mask=col.nulls).cast(target if target in ("int8", "int32", "int64", "float64") else pa.float64())
                except (pa.ArrowInvalid, OverflowError) as e:
                    store.fail(f"table {table.name!r} column {name!r}: stored values do not fit {target} ({e})", table.columns[name].get("segment"))
        arrays.append(arr)
        names.append(name)
    return pa.table(arrays, names=names)


def _export_parquet(store: Store, to: Path, image_id: str, force: bool) -> list[Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    written = []
    groups: dict[tuple[str, str], list] = {}
    for source, table, k in iter_parts(store):
        if "json_segment" in table.parts[k]:
            continue
        stem = Path(source["name"]).stem
        key = source.get("split") or (source.get("list_name") or stem)
        if source.get("export_only"):
            # A subset of a fuller file of the same table and split ("-boxable"): its own file, so that
            # <table>/<split>.parquet holds each row once, as Release.table() does.
            key = f"{key}-boxable" if "boxable" in stem.lower() else f"{key}-{stem}"
        groups.setdefault((table.name, key), []).append(part_table(store, table, k, image_id))
    for (table, split), tables in sorted(groups.items()):
        target = to / table / f"{split}.parquet"
        if target.exists() and not force:
            raise FileExistsError(f"{target} exists (use force=True, or --force, to replace it)")
        target.parent.mkdir(parents=True, exist_ok=True)
        merged = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
        pq.write_table(merged, target, compression="zstd")
        written.append(target)
    return written
