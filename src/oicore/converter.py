"""``oicore convert``: a release's CSV files into one ``.oic`` file (FORMAT.md, "Tables").

parse (``read_csv``) → order rows by image → encode columns (``columns``) →
learn how the text was written and keep exceptions (``exact``) → write
segments (``format.ContainerWriter``) → build the release-wide image index and
the per-table indexes → directory, footer, fsync, rename.

Tables are converted one at a time, so memory is about one table's columns.
"""

from __future__ import annotations

import json
import os
import tarfile
import time
import uuid as uuidlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from oicore import columns as C
from oicore import exact, schema
from oicore._version import __version__
from oicore.errors import OicoreWarning
from oicore.format import ContainerWriter
from oicore.schema import ColumnType
from oicore.sources import SPLITS, Source, find_sources, source_bytes, source_sha256
from oicore.threads import resolve as resolve_threads

__all__ = ["convert", "ConvertReport", "IMAGE_TABLES", "SPLIT_CODES", "detect_release"]

# Tables whose rows belong to images: stored in lookup order (by ImageID, then part, then file order).
IMAGE_TABLES = ("images", "human_labels", "machine_labels", "boxes", "points", "vrd", "segmentation")
SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}
UNKNOWN_SPLIT = 255
_SPLIT_RANK = {None: 3, **SPLIT_CODES}
# Subset values of an images file holding several splits.
_SUBSETS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}


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
    from oicore.reader import read_csv

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
    from tqdm import tqdm

    bar = tqdm(total=total, unit="B", unit_scale=True, desc="convert", disable=not progress, leave=False)
    caught: list[warnings.WarningMessage] = []
    with ContainerWriter(out, force=force) as writer, ThreadPoolExecutor(n_threads, thread_name_prefix="oicore-convert") as pool, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        hashes = {s.name: pool.submit(source_sha256, s) for s in found}
        job = _Job(writer, pool, level, n_threads, block_size, read_csv, bar)
        by_table: dict[str, list[Source]] = {}
        for s in found:
            by_table.setdefault(s.table, []).append(s)
        order = ["class_descriptions", "class_lists", "hierarchy", *IMAGE_TABLES]
        names = sorted(by_table, key=lambda t: (order.index(t) if t in order else len(order), t))
        for table in names:
            # Lookup parts first (train, validation, test), then export-only ones: lookups read a prefix of rows.
            parts = sorted(by_table[table], key=lambda s: (s.export_only, _SPLIT_RANK.get(s.split, 3), s.name))
            job.table(table, parts)
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
    bar.close()
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


def _stderr_is_tty() -> bool:
    import sys

    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass
class _Part:
    source: Source
    table: object  # pyarrow.Table
    rows: int
    names: list[str]
    data_offset: int


class _Job:
    """The state of one convert: the writer, the vocabulary, and each image table's per-image counts."""

    def __init__(self, writer, pool, level, threads, block_size, read_csv, bar):
        self.writer, self.pool, self.level, self.threads = writer, pool, level, threads
        self.block_size, self.read_csv, self.bar = block_size, read_csv, bar
        self.vocab = _Vocabulary()
        self.tables: dict[str, dict] = {}
        self.image_counts: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # table -> (sorted unique IDs, rows)
        self.image_splits: list[tuple[np.ndarray, np.ndarray]] = []  # (IDs, split codes), first wins
        self.exceptions = 0
        self.images_entry: dict = {}
        self._table_arrays: dict[str, dict[str, C.Decoded]] = {}

    # ---- reading -----------------------------------------------------------------------

    def _read(self, source: Source) -> _Part:
        if source.member is None:
            t = self.read_csv(source.path, kind=source.kind, block_size=self.block_size, threads=self.threads)
        else:  # an archive member: parsed as it is decompressed
            with tarfile.open(source.path, "r:*") as tar:
                stream = _NamedStream(tar.extractfile(source.member), source.where)
                t = self.read_csv(stream, kind=source.kind, block_size=self.block_size, threads=self.threads)
        self.bar.update(source.size)
        offset = int(t.schema.metadata[b"oicore.data_offset"])
        return _Part(source, t, t.num_rows, list(t.column_names), offset)

    # ---- one table ---------------------------------------------------------------------

    def table(self, name: str, sources: list[Source]) -> None:
        if name == "hierarchy":
            self._hierarchy(sources)
            return
        parts = [self._read(s) for s in sources]
        if name == "class_descriptions":
            for p in parts:
                self.vocab.named.update(_dictionary_values(p.table.column("LabelName")))
        self._check_named(name, parts)
        kind = schema.kind(sources[0].kind)
        names = [c.name for c in kind.columns if any(c.name in p.names for p in parts)]
        names += [n for p in parts for n in p.names if n not in names]
        image_table = name in IMAGE_TABLES
        id_name = next((n for n in names if n in ("ImageID", "ImageId")), None) if image_table else None
        order, row_part = self._row_order(name, parts, id_name)
        entry: dict = {"rows": int(sum(p.rows for p in parts)), "columns": [], "parts": []}
        decoded: dict[str, C.Decoded] = {}
        for col_name in names:
            if col_name == id_name:
                entry["columns"].append({"name": col_name, "encoding": "image"})
                continue
            col_entry, col = self._encode_column(name, col_name, parts, order)
            entry["columns"].append(col_entry)
            decoded[col_name] = col
        if row_part is not None:
            entry["row_part"] = self.writer.add_zstd(np.ascontiguousarray(row_part[order] if order is not None else row_part), level=self.level)
        entry["lookup_rows"] = int(self._lookup_rows)
        if id_name is not None and self._lookup_rows < entry["rows"]:
            entry["export_ids"] = self.writer.add_zstd(np.ascontiguousarray(self._sorted_ids[self._lookup_rows :]), level=self.level)
        self._exactness(name, entry, parts, decoded, order, row_part, id_name)
        if name in ("boxes", "human_labels"):
            self._table_arrays[name] = {k: decoded[k] for k in ("LabelName", "Confidence") if k in decoded}
        self.tables[name] = entry

    def _check_named(self, table: str, parts: list[_Part]) -> None:
        if not self.vocab.named or table in ("class_descriptions",):
            return
        for p in parts:
            for col in p.names:
                if not schema.column(col).mid:
                    continue
                unknown = [m for m in _dictionary_values(p.table.column(col)) if m not in self.vocab.named]
                if unknown:
                    warnings.warn(
                        f"{p.source.name}: {len(unknown)} {col} value(s) in no class description file "
                        f"(e.g. {', '.join(unknown[:3])}); added to the vocabulary without a name",
                        OicoreWarning,
                        stacklevel=4,
                    )
                    break

    def _row_order(self, table: str, parts: list[_Part], id_name: str | None):
        """Physical order of the table's rows (None: the parts' concatenation), and each row's part.

        Rows of lookup parts come first, sorted by image ID (stable: part, then file order); rows of
        export-only parts follow in file order. ``image_counts`` gets the lookup rows per image.
        """
        row_part = np.repeat(np.arange(len(parts), dtype=np.uint8), [p.rows for p in parts]) if len(parts) > 1 else None
        self._sorted_ids = None
        self._lookup_rows = sum(p.rows for p in parts if not p.source.export_only)
        if id_name is None:
            return None, row_part
        ids = []
        for p in parts:
            part_ids = _numbers(p.table.column(id_name))[0].astype(np.uint64, copy=False)
            if len(part_ids) > 1 and (part_ids[1:] < part_ids[:-1]).any():
                warnings.warn(
                    f"{p.source.name}: rows are not sorted by {id_name}; stored with a permutation",
                    OicoreWarning,
                    stacklevel=4,
                )
            ids.append(part_ids)
        all_ids = np.concatenate(ids) if ids else np.zeros(0, np.uint64)
        n_lookup = self._lookup_rows
        head = all_ids[:n_lookup]
        if len(head) > 1 and (head[1:] < head[:-1]).any():
            order = np.argsort(head, kind="stable")  # timsort: sorted parts merge in linear time
            order = np.concatenate([order, np.arange(n_lookup, len(all_ids))])
            physical_ids = all_ids[order]
        else:
            order, physical_ids = None, all_ids
        self.image_counts[table] = _runs(physical_ids[:n_lookup])
        for p, part_ids in zip(parts, ids):
            if p.source.export_only:
                continue
            split = _split_codes(p, id_name)
            if split is not None:
                self.image_splits.append((part_ids, split))
        self._sorted_ids = physical_ids
        return order, row_part

    def _encode_column(self, table: str, name: str, parts: list[_Part], order):
        col = schema.column(name)
        present = [p for p in parts if name in p.names]
        rows = sum(p.rows for p in parts)

        def gather(per_part, fill):
            arrays = [per_part(p) if name in p.names else np.full(p.rows, fill) for p in parts]
            values = np.concatenate(arrays) if arrays else np.zeros(0)
            return values[order] if order is not None else values

        if col.type is ColumnType.DICTIONARY:
            if col.mid:
                codes = gather(lambda p: _codes(p.table.column(name), self.vocab.code_map), 0)
                return C.encode_codes(self.writer, name, codes, max(len(self.vocab.codes), 1))
            values: list[str] = []
            index: dict[str, int] = {}

            def local(mapping_values):
                out = np.empty(len(mapping_values), np.int64)
                for i, v in enumerate(mapping_values):
                    out[i] = index.setdefault(v, len(index))
                return out

            codes = gather(lambda p: _codes(p.table.column(name), local), 0)
            values = list(index)
            return C.encode_dict(self.writer, name, codes, values)
        if col.type is ColumnType.STRING:
            import pyarrow as pa

            pieces = [p.table.column(name) if name in p.names else pa.chunked_array([pa.array([""] * p.rows, pa.string())]) for p in parts]
            arr = pa.chunked_array([c for piece in pieces for c in piece.chunks], type=pa.string()).cast(pa.large_string()).combine_chunks()
            if order is not None:
                arr = arr.take(C.arrow_indices(order))
            offsets = np.frombuffer(arr.buffers()[1], np.int64, len(arr) + 1, arr.offset * 8).copy()
            data = arr.buffers()[2]
            data = memoryview(data) if data is not None else memoryview(b"")
            base = int(offsets[0])
            offsets -= base
            data = data[base : base + int(offsets[-1])]
            from oicore.textcodec import encode_text

            # URLs as templates, MD5s as bytes, repeated text as dictionaries; plain zstd text otherwise.
            return encode_text(self.writer, name, offsets, data, level=self.level, pool=self.pool)
        # numbers
        fill = -1 if col.type is ColumnType.INT8 else 0
        values = gather(lambda p: _numbers(p.table.column(name))[0], fill)
        nulls_parts = [(_numbers(p.table.column(name))[1] if name in p.names else None) for p in parts]
        nulls = None
        if any(n is not None for n in nulls_parts):
            nulls = np.concatenate([n if n is not None else np.zeros(p.rows, bool) for n, p in zip(nulls_parts, parts)])
            nulls = nulls[order] if order is not None else nulls
        scale = None
        if col.type is ColumnType.FLOAT64:
            scale = self._fixed_scale(name, present)
        return C.encode_numbers(self.writer, name, values, nulls, scale=scale)

    def _fixed_scale(self, name: str, parts: list[_Part]) -> int | None:
        best = None
        for p in parts:
            rules = self._rules(p)
            d = rules["decimals"].get(name)
            if d is not None:
                best = d if best is None else max(best, d)
        return best

    def _rules(self, p: _Part) -> dict:
        cached = getattr(p, "rules", None)
        if cached is None:
            numeric = {n for n in p.names if schema.column(n).type in (ColumnType.FLOAT64, ColumnType.INT8, ColumnType.INT32, ColumnType.INT64)}
            with source_bytes(p.source) as source:
                sample = exact.sample_fields(source, p.data_offset, p.rows)
            cached = p.rules = exact.learn_rules(sample, p.names, numeric)
        return cached

    # ---- exactness ---------------------------------------------------------------------

    def _exactness(self, table, entry, parts, decoded, order, row_part, id_name):
        """Per part: the rules, the exceptions found by rendering every row, prefix and suffix."""
        vocabulary = self.vocab.buffers()
        n = entry["rows"]
        if order is not None:
            inverse = np.empty(n, np.int64)
            inverse[order] = np.arange(n)
        else:
            inverse = None
        sorted_ids = self._sorted_ids if id_name is not None else None
        starts = np.cumsum([0] + [p.rows for p in parts])

        def check(i: int):
            # Rows of this part, in file order, as positions in lookup order.
            p = parts[i]
            positions = np.arange(starts[i], starts[i + 1])
            if inverse is not None:
                positions = inverse[positions]
            rules = self._rules(p)
            cols = {name: C.take_rows(col, positions) for name, col in decoded.items() if name in p.names}
            ids = sorted_ids[positions] if sorted_ids is not None else None
            specs = exact.column_specs(p.names, cols, rules, ids, vocabulary)
            file_order = None
            if order is not None and not _is_sorted_positions(positions):
                file_order = np.ascontiguousarray(_rank_within(positions)).astype(np.uint32)
            with source_bytes(p.source) as source:
                prefix = bytes(source[: p.data_offset])
                exc, end = exact.find_exceptions(specs, p.rows, source, p.data_offset, rules["terminator"])
                suffix = bytes(source[end:])
                texts = [bytes(source[b:e]) for _, b, e in exc]
            return rules, file_order, prefix, suffix, exc, texts

        # Parts are checked in parallel (the renderer releases the GIL); segments are written in order.
        for i, (rules, file_order, prefix, suffix, exc, texts) in enumerate(self.pool.map(check, range(len(parts)))):
            p = parts[i]
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
                rows = np.ascontiguousarray(exc[:, 0], dtype=np.int64)
                lengths = np.array([len(t) for t in texts], np.int64)
                blob = rows.tobytes() + lengths.tobytes() + b"".join(texts)
                part_entry["exception_segment"] = self.writer.add_zstd(blob, level=self.level)
            self.exceptions += len(texts)
            entry["parts"].append(part_entry)
            p.table = None  # free the part's columns

    # ---- hierarchy ---------------------------------------------------------------------

    def _hierarchy(self, sources: list[Source]) -> None:
        entry = {"rows": 0, "columns": [], "parts": []}
        for s in sources:
            with source_bytes(s) as source:
                data = bytes(source)
            try:
                json.loads(data.decode("utf-8-sig"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                from oicore.errors import HierarchyError

                raise HierarchyError(f"expected a JSON label hierarchy, got {e}", path=s.where) from None
            self.bar.update(len(data))
            entry["parts"].append({"name": s.name, "rows": 0, "columns": [], "json_segment": self.writer.add_zstd(data, level=self.level)})
        self.tables["hierarchy"] = entry

    # ---- release-wide structures -------------------------------------------------------

    def finish_images(self) -> None:
        lists = [ids for ids, _ in self.image_counts.values()]
        # Each list is sorted and unique: a stable sort merges them in linear time, then drop repeats.
        merged = np.sort(np.concatenate(lists), kind="stable") if lists else np.zeros(0, np.uint64)
        ids = _runs(merged)[0]
        n = len(ids)
        w = self.writer
        bits = max(1, min(24, n.bit_length() - 2))  # about 2-4 IDs per bucket: one cache line
        top = (ids >> np.uint64(64 - bits)).astype(np.int64)
        buckets = np.searchsorted(top, np.arange((1 << bits) + 1), side="left").astype(np.uint32 if n < 2**32 else np.uint64)
        splits = np.full(n, UNKNOWN_SPLIT, np.uint8)
        for part_ids, codes in reversed(self.image_splits):  # the first source wins
            splits[np.searchsorted(ids, part_ids)] = codes
        self.images_entry = {
            "count": n,
            "ids": w.add_raw(ids),
            "bucket_bits": bits,
            "buckets": w.add_raw(buckets),
            "buckets_dtype": "u4" if buckets.dtype == np.uint32 else "u8",
            "split": w.add_raw(splits),
            "splits": list(SPLITS),
        }
        for table, (uniq, counts) in self.image_counts.items():
            full = np.zeros(n, np.int64)
            full[np.searchsorted(ids, uniq)] = counts
            offsets = np.zeros(n + 1, np.int64)
            np.cumsum(full, out=offsets[1:])
            entry = self.tables[table]
            entry["image_rows"] = _blocked_offsets(w, offsets)
            arrays = self._table_arrays.get(table, {})
            if table == "boxes" and "LabelName" in arrays:
                self._class_index(entry, offsets, splits, arrays["LabelName"].values)
            if table == "human_labels" and "LabelName" in arrays and "Confidence" in arrays:
                self._positive_index(entry, offsets, arrays["LabelName"].values, arrays["Confidence"].floats())

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
        pairs = np.sort(codes[pos].astype(np.int64) * (1 << 32) + row_image[pos])
        if len(pairs) > 1:
            pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]]
        class_offsets = np.zeros(n_codes + 1, np.int64)
        np.cumsum(np.bincount(pairs >> 32, minlength=n_codes), out=class_offsets[1:])
        entry["positive_images"] = {
            "offsets": self.writer.add_raw(class_offsets.astype(np.uint32)),
            "images": C.store_ints(self.writer, pairs & 0xFFFFFFFF),
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


class _NamedStream:
    """An archive member's stream, named as errors should name it (``archive.tar.gz:member``)."""

    def __init__(self, stream, name: str):
        self.readinto, self.read, self.name = stream.readinto, stream.read, name


_OFFSET_BLOCKS = (16, 32, 64, 128, 256)


def _blocked_offsets(writer, offsets: np.ndarray) -> dict:
    """Monotone offsets as FORMAT.md's blocked form: per block of ``B`` entries the first offset (``base``),
    per entry its distance from it (``local``), both bit-packed; ``B`` is the one that packs smallest."""
    n = len(offsets)
    best = None
    for block in _OFFSET_BLOCKS:
        base = offsets[::block]
        local = offsets - np.repeat(base, block)[:n]
        size = n * int(local.max()).bit_length() + len(base) * int(base.max() - base.min()).bit_length()
        if best is None or size < best[0]:
            best = (size, block, base, local)
    _, block, base, local = best
    return {"block": block, "base": C.store_ints(writer, base), "local": C.store_ints(writer, local)}



def _runs(sorted_ids: np.ndarray):
    if len(sorted_ids) == 0:
        return sorted_ids.astype(np.uint64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    counts = np.diff(np.r_[starts, len(sorted_ids)])
    return sorted_ids[starts].astype(np.uint64), counts


def _is_sorted_positions(positions: np.ndarray) -> bool:
    return len(positions) < 2 or bool((positions[1:] > positions[:-1]).all())


def _rank_within(positions: np.ndarray) -> np.ndarray:
    """For each file row, its rank among the part's lookup positions."""
    return np.argsort(np.argsort(positions, kind="stable"), kind="stable")


def _dictionary_values(chunked) -> list[str]:
    seen: dict[str, None] = {}
    for chunk in chunked.chunks:
        for v in chunk.dictionary.to_pylist():
            seen.setdefault(v, None)
        break  # every chunk shares the table's final dictionary
    return list(seen)


def _codes(chunked, mapper) -> np.ndarray:
    """A dictionary column's values as codes of ``mapper`` (a function of the dictionary's values)."""
    if chunked.num_chunks == 0:
        return np.zeros(0, np.int64)
    mapping = mapper(chunked.chunk(0).dictionary.to_pylist())
    indices = np.concatenate([_view(c.indices) for c in chunked.chunks])
    return mapping.take(indices) if len(mapping) else indices.astype(np.int64)


def _numbers(chunked):
    """A numeric column as a numpy array (nulls filled with 0) and a null mask (or None)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if chunked.null_count:
        nulls = _to_numpy(chunked.is_null())
        values = _to_numpy(pc.fill_null(chunked, 0))
        return values, nulls
    return _to_numpy(chunked), None


def _to_numpy(arrow) -> np.ndarray:
    """An arrow array or chunked array of a fixed-width type as one numpy array (views where possible).

    pyarrow's own ``to_numpy`` imports pandas (about half a second) on first use; the buffers are enough.
    """
    import pyarrow as pa

    if isinstance(arrow, pa.ChunkedArray):
        parts = [_view(c) for c in arrow.chunks]
        if not parts:
            return np.zeros(0, dtype=_NUMPY_TYPES.get(str(arrow.type), np.float64))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    return _view(arrow)


_NUMPY_TYPES = {
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "float32": np.float32, "float64": np.float64, "float": np.float32, "double": np.float64,
}


def _view(arr) -> np.ndarray:
    """One arrow array's values (validity ignored): a view of its data buffer; booleans unpacked."""
    name = str(arr.type)
    data = arr.buffers()[1]
    if name == "bool":
        if data is None:
            return np.zeros(len(arr), bool)
        bits = np.unpackbits(np.frombuffer(data, np.uint8), count=arr.offset + len(arr), bitorder="little")
        return bits[arr.offset :].astype(bool)
    dtype = np.dtype(_NUMPY_TYPES[name])
    if data is None or len(arr) == 0:
        return np.zeros(len(arr), dtype)
    return np.frombuffer(data, dtype, len(arr), arr.offset * dtype.itemsize)


def _split_codes(p: _Part, id_name: str):
    if p.source.split is not None:
        return np.full(p.rows, SPLIT_CODES[p.source.split], np.uint8)
    if "Subset" in p.names:
        values = p.table.column("Subset")
        mapping = np.array([SPLIT_CODES.get(_SUBSETS.get(v.lower(), ""), UNKNOWN_SPLIT) for v in values.chunk(0).dictionary.to_pylist()], np.uint8) if values.num_chunks else np.zeros(0, np.uint8)
        idx = np.concatenate([_view(c.indices) for c in values.chunks]) if values.num_chunks else np.zeros(0, np.int64)
        return mapping[idx] if len(mapping) else np.zeros(0, np.uint8)
    return None
