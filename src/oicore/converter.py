"""``oicore convert``: a release's CSV files into one ``.oic`` file (FORMAT.md, "Tables").

parse and narrow each part (``parts``) → order rows by image → encode columns
(``columns``) → compare every row with its source, a chunk at a time, and keep
exceptions (``exact``) → write segments (``format.ContainerWriter``) → build the
release-wide image index and the per-table indexes → directory, footer, fsync, rename.

Tables are converted one at a time, and each part is narrowed as soon as it is parsed, so memory is
about one table's stored columns plus its image IDs (and, for the images table, its text); sources are
hashed on their own thread through a small buffer.
"""

from __future__ import annotations

import mmap
import os
import threading
import time
import uuid as uuidlib
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from oicore import _csv, _kernels
from oicore import columns as C
from oicore import exact, schema
from oicore._version import __version__
from oicore.errors import CSVError, OicoreWarning
from oicore.format import ContainerWriter
from oicore.hierarchy import Hierarchy
from oicore.schema import ColumnType
from oicore.parts import SPLIT_CODES, UNKNOWN_SPLIT, Part, row_location, load_part
from oicore.reader import read_csv
from oicore.roworder import row_order
from oicore.sources import SPLITS, Source, find_sources, source_bytes, source_reader, source_sha256
from oicore.threads import resolve as resolve_threads

__all__ = ["convert", "ConvertReport", "IMAGE_TABLES", "SPLIT_CODES", "detect_release"]

# Tables whose rows belong to images: stored in lookup order (by ImageID, then part, then file order).
IMAGE_TABLES = ("images", "human_labels", "machine_labels", "boxes", "points", "vrd", "segmentation")
_SPLIT_RANK = {None: 3, **SPLIT_CODES}
_RECORD_TABLES = ("human_labels", "machine_labels")  # what labels() and labels_many() read
# The images table is encoded beside the others when it and the largest other table hold at most this
# much CSV together (peak RSS grows by about 0.4 bytes per CSV byte when two tables are in memory at once).
SIDE_BY_SIDE_MAX_BYTES = 3 << 30
MAX_SOURCES = 255  # distinct Source values of a release: lookups code them in a byte, 255 meaning none
_RECORD_COLUMNS = ("LabelName", "Confidence", "Source")
# Rows rendered and compared with the source at a time: bounds the renderer's inputs, and the source's
# pages are let go of chunk by chunk (a mapped file's resident pages count in our RSS).
_EXACT_CHUNK = 1 << 20
_EXACT_BYTES = 64 << 20  # text rows compared at a time (the images table's are ~350 bytes)


@dataclass
class ConvertReport:
    """What ``convert`` wrote: the file, its tables' rows, sources, sizes and time."""

    path: Path
    uuid: str
    release: str
    tables: dict[str, int]
    sources: list[dict]
    bytes_read: int
    bytes_written: int
    seconds: float
    exceptions: int
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        ratio = self.bytes_written / self.bytes_read if self.bytes_read else 0.0
        rows = ", ".join(f"{name} {n:,}" for name, n in self.tables.items())
        return (
            f"wrote {self.path} ({self.bytes_written:,} bytes, {ratio:.2f}× the {self.bytes_read:,} bytes of "
            f"{len(self.sources)} source files) in {self.seconds:.1f} s; rows: {rows}"
        )


def detect_release(sources: list[Source]) -> str:
    """The release a set of sources most likely is, from file names: ``v1``…``v7`` or ``unknown``."""
    names = " ".join(s.name.lower() for s in sources)
    for release, marker in (("v7", "oidv7-"), ("v7", "point-labels"), ("v6", "oidv6-"), ("v5", "segmentation"), ("v5", "vrd")):
        if marker in names:
            return release
    if "annotations-human-bbox" in names or "annotations-machine" in names:
        return "v3" if "rotation" not in names else "v4"
    if "-annotations-bbox" in names or "imagelabels" in names:
        return "v4"
    if "dict.csv" in names or "labels.csv" in names:
        return "v1"
    return "unknown"


class _Vocabulary:
    """The release-wide MID vocabulary: codes in order of first appearance (descriptions first)."""

    def __init__(self):
        self.codes: dict[str, int] = {}
        self.named: set[str] = set()
        self._buffers = None  # (size, buffers) of the last buffers() call

    def code_map(self, values: list[str]) -> np.ndarray:
        out = np.empty(len(values), np.int64)
        for i, v in enumerate(values):
            code = self.codes.get(v)
            if code is None:
                code = self.codes[v] = len(self.codes)
            out[i] = code
        return out

    def buffers(self):
        if self._buffers is not None and self._buffers[0] == len(self.codes):
            return self._buffers[1]
        encoded = [m.encode("utf-8") for m in self.codes]
        offsets = np.zeros(len(encoded) + 1, np.int64)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        result = offsets, np.frombuffer(b"".join(encoded), np.uint8).copy()
        self._buffers = (len(self.codes), result)
        return result


def convert(
    sources,
    out,
    *,
    level: int = 3,
    threads: int | None = None,
    force: bool = False,
    progress: bool | None = None,
    release: str = "auto",
    strict: bool = False,
    block_size: int | None = None,
) -> ConvertReport:
    """Convert Open Images CSV files into one ``.oic`` file.

    Parameters
    ----------
    sources : path or list of paths
        Release directories, laid out as Google ships them, or single files.
    out : path
        The ``.oic`` file to write. It appears only when complete (temporary file, fsync, rename).
    level : int
        zstd level for text (default 3).
    threads : int, optional
        Threads for parsing and compression (default: ``oicore.get_num_threads()``).
    force : bool
        Replace ``out`` if it exists; otherwise an existing file raises ``FileExistsError``.
    progress : bool, optional
        Show a progress bar on stderr (default: when stderr is a terminal).
    release : str
        ``"auto"`` (from the file names) or ``"v1"``…``"v7"``, recorded in the provenance.
    strict : bool
        Unknown files raise instead of being skipped with a warning.
    block_size : int, optional
        The CSV reader's block size.

    Returns
    -------
    ConvertReport

    Raises
    ------
    CSVError, UnknownHeaderError
        A source breaks the CSV dialect or its kind's grammar (file, line and column named).
    FileExistsError
        ``out`` exists and ``force`` is false.
    """
    started = time.perf_counter()
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    if release != "auto" and release not in schema.RELEASES:
        raise ValueError(f"unknown release {release!r}; expected auto or one of {', '.join(schema.RELEASES)}")
    if not 1 <= level <= 22:
        raise ValueError(f"zstd level must be within 1..22, got {level}")
    found = find_sources(sources, strict=strict)
    if not found:
        raise ValueError(f"no Open Images files found in {', '.join(map(str, sources))}")
    out = Path(out)
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists (use force=True, or --force, to replace it)")
    n_threads = resolve_threads(threads)
    total = sum(s.size for s in found)
    if progress is None:
        progress = _stderr_is_tty()
    bar = tqdm(total=total, unit="B", unit_scale=True, desc="convert", disable=not progress, leave=False)
    spares = _csv.spare_limit(0)  # each table is read once: no reader output is kept for later reads
    try:
        return _convert(found, out, force, n_threads, level, block_size, release, bar, total, started, read_csv)
    finally:
        _csv.spare_limit(spares)
        bar.close()


def _convert(found, out, force, n_threads, level, block_size, release, bar, total, started, read_csv) -> ConvertReport:
    caught: list[warnings.WarningMessage] = []
    with (
        ContainerWriter(out, force=force) as writer,
        ThreadPoolExecutor(n_threads, thread_name_prefix="oicore-convert") as pool,
        _Hasher() as hasher,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        # One thread hashes the sources front to back beside the work (not in the pool, where the
        # tables' parallel steps would queue behind it).
        hashes = {s.name: hasher.submit(source_sha256, s) for s in found}
        job = _Job(writer, pool, level, n_threads, block_size, read_csv, bar)
        by_table: dict[str, list[Source]] = {}
        for s in found:
            by_table.setdefault(s.table, []).append(s)
        order = ["class_descriptions", "class_lists", "hierarchy", *IMAGE_TABLES]
        names = sorted(by_table, key=lambda t: (order.index(t) if t in order else len(order), t))
        # Lookup parts first (train, validation, test), then export-only ones: lookups read a prefix of rows.
        parts = {t: sorted(by_table[t], key=lambda s: (s.export_only, _SPLIT_RANK.get(s.split, 3), s.name)) for t in names}
        _encode_tables(job, names, parts)
        job.finish_images()
        prov_sources = []
        for i, s in enumerate(found):
            digest, size = hashes[s.name].result()
            prov_sources.append(
                {
                    "name": s.name,
                    "size": size,
                    "sha256": digest,
                    "table": s.table,
                    "split": s.split,
                    "kind": s.kind,
                    "export_only": s.export_only,
                    "list_name": s.list_name,
                }
            )
        job.link_sources({s.name: i for i, s in enumerate(found)})
        rel = detect_release(found) if release == "auto" else release
        directory = {
            "tables": job.tables,
            "vocabulary": job.vocabulary_entry(),
            "images": job.images_entry,
            "provenance": {
                "release": rel,
                "oicore_version": __version__,
                "uuid": str(uuidlib.UUID(bytes=writer.uuid)),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "sources": prov_sources,
            },
        }
        path = writer.finish(directory)
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return ConvertReport(
        path=path,
        uuid=directory["provenance"]["uuid"],
        release=rel,
        tables={name: t["rows"] for name, t in job.tables.items()},
        sources=prov_sources,
        bytes_read=total,
        bytes_written=path.stat().st_size,
        seconds=time.perf_counter() - started,
        exceptions=job.exceptions,
        warnings=[str(w.message) for w in caught],
    )


def _encode_tables(job: _Job, names: list[str], parts: dict[str, list[Source]]) -> None:
    """Every table, the images table beside the others when there are both.

    The images table is mostly text (parsing, URL templates, zstd, rendering), shares no vocabulary with
    the label and box tables, and each side alone leaves a core idle much of the time. The pool's
    threads serve both sides; the writer takes one segment at a time. Two tables at once hold two
    tables' arrays: above ``SIDE_BY_SIDE_MAX_BYTES`` of CSV they go one at a time, which keeps the
    full V3 release under its memory bound.
    """
    side_name = None
    if "images" in names and len(names) > 1 and job.threads > 1:
        size = {t: sum(s.size for s in parts[t]) for t in names}
        if size["images"] + max(v for t, v in size.items() if t != "images") <= SIDE_BY_SIDE_MAX_BYTES:
            side_name = "images"
    if side_name is None:
        for table in names:
            job.table(table, parts[table])
        return
    with ThreadPoolExecutor(1, thread_name_prefix="oicore-images") as side:
        beside = side.submit(job.table, side_name, parts[side_name])
        beside.add_done_callback(lambda f: f.exception() is not None and job.cancelled.set())  # each side stops the other
        table = None
        try:
            for table in (t for t in names if t != side_name):
                job.table(table, parts[table])
            beside.result()  # inside: an interrupt while waiting stops the images table too
        except Exception as error:
            # Of two errors, the one raised is the one a convert of one table at a time would raise: that
            # of the table first in order.
            job.cancelled.set()
            side_error = beside.exception()
            if side_error is not None and not isinstance(side_error, _Cancelled):
                if isinstance(error, _Cancelled) or names.index(side_name) < names.index(table):
                    raise side_error from None
            raise
        except BaseException:  # KeyboardInterrupt and the like: stop the images table, then go
            job.cancelled.set()
            beside.exception()
            raise


def _stderr_is_tty() -> bool:
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class _Cancelled(Exception):
    """A table stopped because another failed; the other's error is the one raised."""


class _Hasher(ThreadPoolExecutor):
    """One thread for the sources' sha256; on an error its queued files are dropped, not hashed."""

    def __init__(self):
        super().__init__(1, thread_name_prefix="oicore-sha256")

    def __exit__(self, exc_type, exc, tb):
        self.shutdown(wait=True, cancel_futures=exc_type is not None)
        return False


class _Job:
    """The state of one convert: the writer, the vocabulary, and each image table's per-image counts."""

    def __init__(self, writer, pool, level, threads, block_size, read_csv, bar):
        self.writer, self.pool, self.level, self.threads = writer, pool, level, threads
        self.block_size, self.read_csv, self.bar = block_size, read_csv, bar
        self.vocab = _Vocabulary()
        self.tables: dict[str, dict] = {}
        self.image_counts: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # table -> (sorted unique IDs, rows)
        # Per table, its parts' (unique IDs, split codes, source name); the first in table order wins.
        self.image_splits: dict[str, list[tuple[np.ndarray, np.ndarray, str]]] = {}
        self.exceptions = 0
        self._lock = threading.Lock()
        self.cancelled = threading.Event()  # set when another table failed: stop at the next step
        self.source_values: dict[str, None] = {}  # Source values of the label and box tables so far
        self.images_entry: dict = {}
        self._table_arrays: dict[str, dict[str, C.Decoded]] = {}

    # ---- one table ---------------------------------------------------------------------

    def table(self, name: str, sources: list[Source]) -> None:
        if name == "hierarchy":
            self._hierarchy(sources)
            return
        local_values: dict[str, dict[str, int]] = {}
        parts = []
        for s in sources:
            named = self.vocab.named if self.vocab.named and name != "class_descriptions" else None
            p = load_part(s, self.read_csv, vocab=self.vocab, local_values=local_values, named=named, block_size=self.block_size, threads=self.threads, pool=self.pool)
            if name == "class_descriptions":
                self.vocab.named.update(m for m in self.vocab.codes if m not in self.vocab.named)
            self.bar.update(s.size)
            parts.append(p)
        if name in (*_RECORD_TABLES, "boxes"):
            self._check_sources(parts, local_values.get("Source", {}))
        kind = schema.kind(sources[0].kind)
        names = [c.name for c in kind.columns if any(c.name in p.names for p in parts)]
        names += [n for p in parts for n in p.names if n not in names]
        image_table = name in IMAGE_TABLES
        id_name = next((n for n in names if n in ("ImageID", "ImageId")), None) if image_table else None
        self._check_cancel()
        order, row_part, sorted_ids, lookup_rows = self._row_order(name, parts, id_name)
        entry: dict = {"rows": int(sum(p.rows for p in parts)), "columns": [], "parts": []}
        decoded: dict[str, C.Decoded] = {}
        # A label table's code, confidence and source share one segment as records: labels() reads a row's
        # three fields with one load, and a batch touches a third of the cache lines.
        records = C.Records() if name in _RECORD_TABLES else None
        for col_name in names:
            self._check_cancel()
            if col_name == id_name:
                entry["columns"].append({"name": col_name, "encoding": "image"})
                continue
            col_entry, col = self._encode_column(col_name, parts, order, local_values, records if col_name in _RECORD_COLUMNS else None)
            entry["columns"].append(col_entry)
            decoded[col_name] = col
            for p in parts:  # the table's column now holds these rows
                p.columns.pop(col_name, None)
        if records is not None:
            records.write(self.writer)
        if row_part is not None:
            physical = order.row_part() if order is not None else row_part
            entry["row_part"] = self.writer.add_zstd(np.ascontiguousarray(physical), level=self.level)
        entry["lookup_rows"] = int(lookup_rows)
        if id_name is not None and lookup_rows < entry["rows"]:
            entry["export_ids"] = self.writer.add_zstd(np.ascontiguousarray(sorted_ids[lookup_rows:]), level=self.level)
        self._check_cancel()
        self._exactness(entry, parts, decoded, order, sorted_ids)
        if name in ("boxes", "human_labels"):
            self._table_arrays[name] = {k: decoded[k] for k in ("LabelName", "Confidence") if k in decoded}
        self.tables[name] = entry

    def _check_cancel(self) -> None:
        if self.cancelled.is_set():
            raise _Cancelled()

    def _check_sources(self, parts: list[Part], values: dict[str, int]) -> None:
        """Lookups code Source in one byte, release-wide, with 255 for none: the first value past
        MAX_SOURCES is bad data, named by its file, line and column."""
        known = self.source_values
        for value, code in values.items():
            if value in known:
                continue
            if len(known) == MAX_SOURCES:
                part = next(p for p in parts if "Source" in p.columns and (p.columns["Source"].values == code).any())
                row = int(np.flatnonzero(part.columns["Source"].values == code)[0])
                line, offset = row_location(part, row, part.names.index("Source"))
                raise CSVError(
                    f"a {MAX_SOURCES + 1}th distinct Source value ({value[:40]!r}); a release holds at most {MAX_SOURCES}",
                    path=part.source.where, line=line, column=part.names.index("Source") + 1, column_name="Source", byte_offset=offset,
                )
            known[value] = None

    def _row_order(self, table: str, parts: list[Part], id_name: str | None):
        """Physical order of the table's rows (None: the parts' concatenation), each row's part, the image
        IDs in that order (None without an ID column) and how many rows lookups see.

        Rows of lookup parts come first, sorted by image ID (stable: part, then file order); rows of
        export-only parts follow in file order. ``image_counts`` gets the lookup rows per image.
        """
        row_part = np.repeat(np.arange(len(parts), dtype=np.uint8), [p.rows for p in parts]) if len(parts) > 1 else None
        lookup_rows = sum(p.rows for p in parts if not p.source.export_only)
        if id_name is None:
            return None, row_part, None, lookup_rows
        for p in parts:
            if not p.ids_sorted:
                warnings.warn(
                    f"{p.source.name}: rows are not sorted by {id_name}; stored with a permutation",
                    OicoreWarning,
                    stacklevel=4,
                )
            if p.splits is not None:
                self.image_splits.setdefault(table, []).append((*p.splits, p.source.name))
        lookup_parts = sum(not p.source.export_only for p in parts)
        order, physical_ids = row_order([p.ids for p in parts], [p.ids_sorted for p in parts], lookup_parts)
        for p in parts:
            p.ids = None
        self.image_counts[table] = _runs(physical_ids[:lookup_rows])
        return order, row_part, physical_ids, lookup_rows

    def _encode_column(self, name: str, parts: list[Part], order, local_values: dict, records=None):
        """One column of the table: its parts' narrowed values in the table's row order, encoded and written."""
        col = schema.column(name)
        kind = next(p.columns[name].kind for p in parts if name in p.columns)

        def gather(arrays):
            if order is not None:
                return order.gather(arrays)
            return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]

        def values(fill, dtype):
            return gather([p.columns[name].values if name in p.columns else np.full(p.rows, fill, dtype) for p in parts])

        def nulls():
            if all(name not in p.columns or p.columns[name].nulls is None for p in parts):
                return None
            return gather([p.columns[name].nulls if name in p.columns and p.columns[name].nulls is not None else np.zeros(p.rows, bool) for p in parts])

        if kind == "code":
            return C.encode_codes(self.writer, name, values(0, np.uint8), max(len(self.vocab.codes), 1), records)
        if kind == "dict":
            return C.encode_dict(self.writer, name, values(0, np.uint8), list(local_values.get(name, {})), records)
        if kind == "strings":
            return self._encode_text(name, parts, order)
        if kind == "int":
            return C.encode_ints(self.writer, name, values(-1 if col.type is ColumnType.INT8 else 0, np.int8), nulls())
        # Decimals: one scale for the table, the largest of the parts' (each exact at any larger one).
        present = [p.columns[name] for p in parts if name in p.columns]
        if all(c.kind == "decimal" for c in present):
            scale = max(c.scale for c in present)
            rescaled = [C.rescale_decimal(c.values, c.scale, scale) for c in present]
            if all(r is not None for r in rescaled):
                for c, r in zip(present, rescaled):
                    c.values, c.scale = r, scale
                return C.encode_decimal(self.writer, name, values(0, np.uint8), nulls(), scale, records)
        for c in present:  # some part is not decimal: the table's floats are stored as float64
            if c.kind == "decimal":
                c.values, c.kind = c.values / 10.0**c.scale, "float64"
        return C.encode_float64(self.writer, name, values(0.0, np.float64), nulls())

    def _encode_text(self, name: str, parts: list[Part], order):
        offsets, data = _combine_text(name, parts, order.perm if order is not None else None)
        from oicore.textcodec import encode_text

        # URLs as templates, MD5s as bytes, repeated text as dictionaries; plain zstd text otherwise.
        return encode_text(self.writer, name, offsets, data, level=self.level, pool=self.pool)

    # ---- exactness ---------------------------------------------------------------------

    def _exactness(self, entry, parts, decoded, order, sorted_ids):
        """Per part: the rules, the exceptions found by rendering every row, prefix and suffix."""
        vocabulary = self.vocab.buffers()
        n = entry["rows"]
        starts = np.cumsum([0] + [p.rows for p in parts])
        # Rows per chunk: fewer when rows are long (text), so that a chunk's copies stay near _EXACT_BYTES.
        text_bytes = sum(len(col.data) for col in decoded.values() if col.encoding == "strings")
        step = max(1, min(_EXACT_CHUNK, _EXACT_BYTES * max(n, 1) // max(text_bytes, 1)))

        def compare(p, first, positions, lo, hi, source, pos):
            """Rows [lo, hi) of part `p` (file order), a chunk at a time, against `source` from byte `pos`:
            views of the table's columns (positions in lookup order when rows were reordered), rendered and
            compared. Returns the exceptions' rows and texts, and where the rows end."""
            exc_rows, texts = [], []
            released = pos
            for a in range(lo, hi, step):
                b = min(a + step, hi)
                if positions is None:
                    cols = {name: C.slice_rows(col, first + a, first + b) for name, col in decoded.items() if name in p.names}
                    ids = sorted_ids[first + a : first + b] if sorted_ids is not None else None
                else:
                    chunk = positions[a:b]
                    cols = {name: C.take_rows(col, chunk) for name, col in decoded.items() if name in p.names}
                    ids = sorted_ids[chunk] if sorted_ids is not None else None
                specs = exact.column_specs(p.names, cols, p.rules, ids, vocabulary)
                exc, pos = exact.find_exceptions(specs, b - a, source, pos, p.rules["terminator"])
                for row, start, end in exc.tolist():
                    exc_rows.append(a + row)
                    texts.append(bytes(source[start:end]))
                released = _release_pages(source, released, pos)
            return exc_rows, texts, pos

        def check(task):
            # Rows [lo, hi) of part i, from the record at byte `at`: of a mapped file, or (an archive member,
            # one task for the part) of the member as it is decompressed, a reader block at a time.
            i, lo, hi, at = task
            p = parts[i]
            first = int(starts[i])
            positions = order.positions(i) if order is not None else None
            if p.source.member is not None:
                return _compare_stream(p, lambda lo, hi, window: compare(p, first, positions, lo, hi, window, 0))
            with source_bytes(p.source) as source:
                exc_rows, texts, pos = compare(p, first, positions, lo, hi, source, at)
                prefix = bytes(source[: p.data_offset]) if lo == 0 else None
                suffix = bytes(source[pos:]) if hi == p.rows else None
            return exc_rows, texts, pos, prefix, suffix

        # Parts, and long parts' row ranges (cut where the reader saw a record start), are checked in
        # parallel: the renderer releases the GIL. Segments are written in order.
        tasks = [(i, lo, hi, at) for i, p in enumerate(parts) for lo, hi, at in _ranges(p, self.threads)]
        results = iter(self.pool.map(check, tasks))
        for i, p in enumerate(parts):
            exc_rows, texts, prefix, suffix, previous_end = [], [], b"", b"", None
            for _, lo, hi, at in (t for t in tasks if t[0] == i):
                rows, got, end, head, tail = next(results)
                if previous_end is not None and at != previous_end:
                    raise RuntimeError(f"oicore internal error: {p.source.where}: row {lo} starts at byte {at}, not {previous_end}")
                exc_rows += rows
                texts += got
                prefix = head if head is not None else prefix
                suffix = tail if tail is not None else suffix
                previous_end = end
            positions = order.positions(i) if order is not None else None
            file_order = None
            if positions is not None and not _is_sorted_positions(positions):
                file_order = np.ascontiguousarray(_rank_within(positions)).astype(np.uint32)
            rules = p.rules
            part_entry = {
                "name": p.source.name,
                "rows": p.rows,
                "columns": p.names,
                "terminator": rules["terminator"],
                "quote": [rules["quote"].get(n, 0) for n in p.names],
                "style": [rules["style"].get(n) for n in p.names],
                "decimals": [rules["decimals"].get(n) for n in p.names],
            }
            if file_order is not None:
                part_entry["file_order"] = self.writer.add_zstd(file_order, level=self.level)
            part_entry["prefix"] = prefix.decode("utf-8")
            part_entry["suffix"] = suffix.decode("utf-8")
            part_entry["exceptions"] = len(texts)
            if texts:
                rows = np.array(exc_rows, dtype=np.int64)
                lengths = np.array([len(t) for t in texts], np.int64)
                blob = rows.tobytes() + lengths.tobytes() + b"".join(texts)
                part_entry["exception_segment"] = self.writer.add_zstd(blob, level=self.level)
            with self._lock:
                self.exceptions += len(texts)
            entry["parts"].append(part_entry)

    # ---- hierarchy ---------------------------------------------------------------------

    def _hierarchy(self, sources: list[Source]) -> None:
        entry = {"rows": 0, "columns": [], "parts": []}
        for s in sources:
            with source_bytes(s) as source:
                data = bytes(source)
            # Read as lookups will read it, so a file they would reject is rejected now, by name.
            Hierarchy.from_json(data, path=s.where)
            self.bar.update(len(data))
            entry["parts"].append({"name": s.name, "rows": 0, "columns": [], "json_segment": self.writer.add_zstd(data, level=self.level)})
        self.tables["hierarchy"] = entry

    # ---- release-wide structures -------------------------------------------------------

    def finish_images(self) -> None:
        # In table order, whatever order the tables were encoded in.
        rank = {t: i for i, t in enumerate(IMAGE_TABLES)}
        counted = sorted(self.image_counts.items(), key=lambda kv: rank[kv[0]])
        image_splits = [s for t in sorted(self.image_splits, key=rank.__getitem__) for s in self.image_splits[t]]
        # Every list is sorted and unique, and every ID of a split list is in some counted table.
        ids, where = _union([uniq for _, (uniq, _) in counted] + [part_ids for part_ids, _, _ in image_splits])
        n = len(ids)
        w = self.writer
        bits = max(1, min(24, n.bit_length() - 2))  # about 2-4 IDs per bucket: one cache line
        top = (ids >> np.uint64(64 - bits)).astype(np.int64)
        buckets = np.zeros((1 << bits) + 1, np.uint32 if n < 2**32 else np.uint64)
        np.cumsum(np.bincount(top, minlength=1 << bits), out=buckets[1:])
        splits = np.full(n, UNKNOWN_SPLIT, np.uint8)
        _assign_splits(splits, ids, where[len(counted) :], image_splits)
        self.images_entry = {
            "count": n,
            "ids": w.add_raw(ids),
            "bucket_bits": bits,
            "buckets": w.add_raw(buckets),
            "buckets_dtype": "u4" if buckets.dtype == np.uint32 else "u8",
            "split": w.add_raw(splits),
            "splits": list(SPLITS),
        }
        # The label tables' image rows side by side (records): one load finds an image's rows in both.
        records = C.Records()
        for (table, (_, counts)), positions in zip(counted, where):
            full = np.zeros(n, np.int64)
            full[positions] = counts
            offsets = np.zeros(n + 1, np.int64)
            np.cumsum(full, out=offsets[1:])
            entry = self.tables[table]
            entry["image_rows"] = _blocked_offsets(w, offsets, records if table in _RECORD_TABLES else None)
            arrays = self._table_arrays.get(table, {})
            if table == "boxes" and "LabelName" in arrays:
                self._class_index(entry, offsets, splits, arrays["LabelName"].values)
            if table == "human_labels" and "LabelName" in arrays and "Confidence" in arrays:
                self._positive_index(entry, offsets, arrays["LabelName"].values, arrays["Confidence"].floats())
        records.write(w)

    def _class_index(self, entry: dict, offsets: np.ndarray, splits: np.ndarray, codes: np.ndarray) -> None:
        """Boxes per class: row numbers ordered by split, then row (ImageID, file order)."""
        lookup_rows = int(offsets[-1])
        codes = codes[:lookup_rows].astype(np.int64)
        row_image = np.repeat(np.arange(len(offsets) - 1, dtype=np.uint32), np.diff(offsets))
        row_split = splits[row_image]
        order = np.lexsort((np.arange(lookup_rows), row_split, codes))
        n_codes = max(len(self.vocab.codes), 1)
        class_offsets = np.zeros(n_codes + 1, np.int64)
        np.cumsum(np.bincount(codes, minlength=n_codes), out=class_offsets[1:])
        entry["row_image"] = C.store_ints(self.writer, row_image)
        entry["class_rows"] = {"offsets": self.writer.add_raw(class_offsets.astype(np.uint32)), "rows": C.store_ints(self.writer, order)}

    def _positive_index(self, entry: dict, offsets: np.ndarray, codes: np.ndarray, conf: np.ndarray) -> None:
        """Human labels: per class, the sorted unique images with a positive label."""
        lookup_rows = int(offsets[-1])
        codes, conf = codes[:lookup_rows], conf[:lookup_rows]
        row_image = np.repeat(np.arange(len(offsets) - 1, dtype=np.int64), np.diff(offsets))
        pos = conf > 0
        n_codes = max(len(self.vocab.codes), 1)
        # Rows are in image order, so a stable sort by class (a radix sort for 16-bit codes) leaves each
        # class's images increasing; then repeats of a (class, image) pair are neighbours.
        classes, images = codes[pos], row_image[pos]
        by_class = np.argsort(classes, kind="stable")
        classes, images = classes[by_class], images[by_class]
        if len(images) > 1:
            first = np.r_[True, (classes[1:] != classes[:-1]) | (images[1:] != images[:-1])]
            classes, images = classes[first], images[first]
        class_offsets = np.zeros(n_codes + 1, np.int64)
        np.cumsum(np.bincount(classes, minlength=n_codes), out=class_offsets[1:])
        entry["positive_images"] = {
            "offsets": self.writer.add_raw(class_offsets.astype(np.uint32)),
            "images": C.store_ints(self.writer, images),
        }

    def vocabulary_entry(self) -> dict:
        offsets, data = self.vocab.buffers()
        return {
            "count": len(self.vocab.codes),
            "offsets": self.writer.add_raw(offsets.astype(np.uint32)),
            "data": self.writer.add_raw(data),
        }

    def link_sources(self, index: dict[str, int]) -> None:
        for entry in self.tables.values():
            for part in entry["parts"]:
                part["source"] = index[part.pop("name")]


# ---- helpers -------------------------------------------------------------------------------


_OFFSET_BLOCKS = (16, 32, 64, 128, 256)


def _blocked_offsets(writer, offsets: np.ndarray, records=None) -> dict:
    """Monotone offsets as FORMAT.md's blocked form: per block of ``B`` entries the first offset (``base``),
    per entry its distance from it (``local``), both bit-packed; ``B`` is the one that packs smallest. With
    ``records`` (``columns.Records``), ``local`` is written with the other offsets of the records."""
    n = len(offsets)
    best = None
    for block in _OFFSET_BLOCKS:
        base = offsets[::block]
        local = offsets - np.repeat(base, block)[:n]
        size = n * int(local.max()).bit_length() + len(base) * int(base.max() - base.min()).bit_length()
        if best is None or size < best[0]:
            best = (size, block, base, local)
    _, block, base, local = best
    spec = {"block": block, "base": C.store_ints(writer, base)}
    if records is None:
        spec["local"] = C.store_ints(writer, local)
    else:
        records.add_values(spec, "local", local)
    return spec



def _combine_text(name: str, parts: list[Part], order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A text column of every part, as one buffer in the table's row order: int64 offsets (from 0) and the
    bytes. Row ``i`` is row ``order[i]`` of the parts one after another (``order`` None: that order).

    The parts' Arrow chunks are taken from them and let go of one by one as they are copied, each row
    straight to its place, so the column is in memory about once, not twice or three times (a part missing
    the column gives empty strings).
    """
    from oicore import _textcodec as _tc

    pending: deque = deque()
    for p in parts:
        col = p.columns.pop(name, None)
        if col is None:
            pending.append(p.rows)
        else:
            pending.extend(col.text.chunks)
        del col
    rows = sum(c if isinstance(c, int) else len(c) for c in pending)
    lengths = np.zeros(rows, np.int64)  # per row of the parts one after another
    row = 0
    for chunk in pending:
        n = chunk if isinstance(chunk, int) else len(chunk)
        if not isinstance(chunk, int):
            lengths[row : row + n] = np.diff(_chunk_span(chunk)[0])
        row += n
    offsets = np.zeros(rows + 1, np.int64)
    np.cumsum(lengths if order is None else lengths[order], out=offsets[1:])
    if order is None:
        dest = offsets[:-1]
    else:  # where each row of the parts lands
        dest = np.empty(rows, np.int64)
        dest[order] = offsets[:-1]
    del lengths
    data = np.empty(int(offsets[-1]), np.uint8)
    row = 0
    while pending:
        chunk = pending.popleft()
        if isinstance(chunk, int):
            row += chunk
            continue
        local, n = _chunk_span(chunk)
        buffers = chunk.buffers()
        if n:
            source = np.frombuffer(buffers[2], np.uint8, n, int(local[0]))
            _tc.scatter(source, local - local[0], np.ascontiguousarray(dest[row : row + len(chunk)]), data)
        row += len(chunk)
        del chunk, buffers
    return offsets, data


def _chunk_span(chunk) -> tuple[np.ndarray, int]:
    """A string chunk's int32 offsets (as int64) and its bytes' length."""
    local = np.frombuffer(chunk.buffers()[1], np.int32, len(chunk) + 1, chunk.offset * 4).astype(np.int64)
    return local, int(local[-1] - local[0])


def _union(lists: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """The sorted union of sorted unique ID lists, and each list's positions in it.

    Usually one list (the images table's) holds every ID: then the others' positions are one merge walk
    each. Otherwise one stable sort of the concatenation (a merge of sorted runs).
    """
    if not lists:
        return np.zeros(0, np.uint64), []
    whole = np.ascontiguousarray(max(lists, key=len), dtype=np.uint64)
    positions = [_kernels.sorted_positions(whole, np.ascontiguousarray(x, dtype=np.uint64)) for x in lists]
    if all(p is not None for p in positions):
        return whole, positions
    joined = np.concatenate(lists).astype(np.uint64, copy=False)
    order = np.argsort(joined, kind="stable")
    merged = joined[order]
    first = np.ones(len(merged), bool)
    np.not_equal(merged[1:], merged[:-1], out=first[1:])
    rank = np.empty(len(merged), np.int64)
    rank[order] = np.cumsum(first) - 1
    bounds = np.cumsum([0] + [len(x) for x in lists])
    return merged[first], [rank[bounds[i] : bounds[i + 1]] for i in range(len(lists))]


def _assign_splits(splits: np.ndarray, ids: np.ndarray, positions: list[np.ndarray], parts: list) -> None:
    """Each image's split from the first part that names one (FORMAT.md, ``split``); one warning when some image
    is listed under two splits, naming an example and its two files."""
    for where, (_, codes, _) in reversed(list(zip(positions, parts))):  # the first part wins
        splits[where] = codes
    clashes, example = 0, None
    for where, (_, codes, name) in zip(positions, parts):
        clash = np.flatnonzero(splits[where] != codes)  # listed first by another part, under another split
        if len(clash) and example is None:
            k = where[clash[0]]
            first = next(n for w, (_, _, n) in zip(positions, parts) if (w == k).any())
            example = (int(ids[k]), int(splits[k]), first, int(codes[clash[0]]), name)
        clashes += len(clash)
    if example is not None:
        image, had, first, got, name = example
        def label(code):
            return SPLITS[code] if code < len(SPLITS) else "unknown"

        warnings.warn(
            f"{clashes} images are listed under a second split: {image:016x} is {label(had)} in {first} but "
            f"{label(got)} in {name}; each image keeps the split of the first file that lists it",
            OicoreWarning,
            stacklevel=2,
        )


def _runs(sorted_ids: np.ndarray):
    unique, _, counts = _kernels.runs(np.ascontiguousarray(sorted_ids, dtype=np.uint64))
    return unique, counts


def _compare_stream(part: Part, compare) -> tuple:
    """Check an archive member's rows with ``compare(lo, hi, window)``, reading it front to back between the
    reader's checkpoints (about a block each), so the member is never whole in memory.

    Returns what ``check`` does: exceptions' rows and texts, the end offset, prefix and suffix.
    """
    exc_rows, texts = [], []
    points = [(int(r), int(o)) for r, o in part.checkpoints] if part.rows else []
    if not points or points[0] != (0, part.data_offset):
        points = [(0, part.data_offset)]
    with source_reader(part.source) as reader:
        prefix = reader.read_exactly(part.data_offset)
        for k, (lo, at) in enumerate(points):
            last = k + 1 == len(points)
            hi, end = (part.rows, part.source.size) if last else points[k + 1]
            window = reader.read_exactly(end - at)
            rows, got, pos = compare(lo, hi, window)
            if not last and pos != len(window):
                raise RuntimeError(f"oicore internal error: {part.source.where}: rows {lo}-{hi} end at byte {at + pos}, not {end}")
            exc_rows += rows
            texts += got
        suffix = window[pos:]
    return exc_rows, texts, at + pos, prefix, suffix


def _ranges(part: Part, threads: int) -> list[tuple[int, int, int]]:
    """A part's rows as ranges ``(lo, hi, byte offset of row lo)`` to check side by side: cut at the
    reader's checkpoints into about two per thread when the part is long (in rows, or in bytes: the images
    table's rows are long), else one."""
    whole = [(0, part.rows, part.data_offset)]
    cuts = part.checkpoints
    n = min(2 * threads, max(part.rows // _EXACT_CHUNK, part.source.size // _EXACT_BYTES))
    if part.source.member is not None or n < 2 or len(cuts) < 2 or threads < 2:
        return whole  # an archive member would be decompressed once per range
    want = [part.rows * k // n for k in range(1, n)]
    picked = sorted({int(cuts[min(np.searchsorted(cuts[:, 0], w), len(cuts) - 1), 0]) for w in want} - {0})
    at = {int(r): int(o) for r, o in cuts}
    bounds = [0, *picked, part.rows]
    return [(lo, hi, part.data_offset if lo == 0 else at[lo]) for lo, hi in zip(bounds, bounds[1:]) if hi > lo]


def _release_pages(source, released: int, upto: int) -> int:
    """Let go of a mapped source's pages before ``upto`` (from ``released``, page-aligned); returns the new mark.

    Rendering reads the source once, front to back: pages behind it are not needed again, and dropping
    them keeps a 3 GB file's pages out of our RSS (a file map's stay in the page cache).
    """
    if not isinstance(source, mmap.mmap):
        return released
    upto &= ~(mmap.PAGESIZE - 1)
    start = released & ~(mmap.PAGESIZE - 1)
    if upto - start >= _RELEASE_STEP:
        source.madvise(mmap.MADV_DONTNEED, start, upto - start)
        return upto
    return released


_RELEASE_STEP = 64 << 20


def _is_sorted_positions(positions: np.ndarray) -> bool:
    return len(positions) < 2 or bool((positions[1:] > positions[:-1]).all())


def _rank_within(positions: np.ndarray) -> np.ndarray:
    """For each file row, its rank among the part's lookup positions."""
    return np.argsort(np.argsort(positions, kind="stable"), kind="stable")
