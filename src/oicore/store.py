"""Reading an ``.oic`` file's tables (FORMAT.md, "Tables"): the layer under export, info, verify and lookups.

``Store`` wraps a checked ``Container``: the release vocabulary, the image
index, and each table's columns, decoded on first use. Raw arrays are views
into the memory map.
"""

from __future__ import annotations

import numpy as np

from oicore import columns as C
from oicore.columns import is_int as _is_int
from oicore.errors import FormatError
from oicore.format import MAX_PARTS, Container

__all__ = ["Store", "TableView"]


GAVE_UP = -1  # entry_index: the key is inside too many entries to look further; use a dict


def entry_index(raw: bytes, offsets: np.ndarray, key: bytes, tries: int = 32) -> int | None:
    """The index of the first entry ``raw[offsets[i]:offsets[i + 1]]`` equal to ``key`` (``offsets``: sorted
    int64, entries + 1 of them), or None; a scan, for lookups too few to pay for a dict of every entry.
    ``GAVE_UP`` when more than ``tries`` places hold the key without being that entry (``b"/m/"`` is in every
    MID): a scan would then cost more than the dict."""
    if not key:
        empty = np.flatnonzero(np.diff(offsets) == 0)
        return int(empty[0]) if len(empty) else None
    at = 0
    for _ in range(tries):
        at = raw.find(key, at)
        if at < 0:
            return None
        # The entry that starts at `at` is the last of those starting there (any before it are empty).
        k = int(np.searchsorted(offsets, at, side="right")) - 1
        if k < len(offsets) - 1 and offsets[k] == at and offsets[k + 1] == at + len(key):
            return k
        at += 1
    return GAVE_UP


class Store:
    """An opened ``.oic`` file: directory, provenance, vocabulary, image index and tables."""

    def __init__(self, path, *, verify: bool = False):
        self.container = Container(path, verify=verify)
        self.path = self.container.path
        d = self.container.directory
        self.directory = d
        self._require(d, "tables", dict)
        self._require(d, "provenance", dict)
        self._require(d, "images", dict)
        self._require(d, "vocabulary", dict)
        self.provenance = d["provenance"]
        self.sources = self.provenance.get("sources", [])
        if not isinstance(self.sources, list) or not all(isinstance(s, dict) for s in self.sources):
            raise FormatError("expected a list of source objects in the provenance", path=self.path)
        _check_directory(self)
        self.tables = {name: TableView(self, name, entry) for name, entry in d["tables"].items()}
        self._vocab = None
        self._vocab_bytes = None  # the vocabulary's bytes, copied once (_vocabulary_bytes)
        self._images = None

    def _require(self, obj, key, typ):
        if not isinstance(obj.get(key), typ):
            raise FormatError(f"expected {key!r} ({typ.__name__}) in the directory", path=self.path)

    def fail(self, reason: str, segment: int | None = None):
        offset = None
        if segment is not None and 0 <= segment < len(self.container.segments):
            offset = self.container.segments[segment]["offset"]
        raise FormatError(reason, path=self.path, byte_offset=offset)

    # ---- release-wide ------------------------------------------------------------------------

    @property
    def vocabulary(self) -> tuple[np.ndarray, np.ndarray]:
        """The MIDs as (int64 offsets, uint8 bytes)."""
        if self._vocab is None:
            v = self.directory["vocabulary"]
            n = v["count"]
            offsets = C.raw_array(self.container, v["offsets"], "u4", n + 1, "vocabulary offsets").astype(np.int64)
            data = np.frombuffer(self.container.raw(v["data"]), np.uint8)
            if n and (offsets[0] != 0 or (np.diff(offsets) < 0).any() or offsets[-1] != len(data)):
                self.fail("vocabulary offsets are not monotone within its bytes", v["offsets"])
            self._vocab = (offsets, data)
        return self._vocab

    def mid_code(self, mid: str) -> int | None:
        """The code of ``mid``, found by a scan of the vocabulary's bytes (no list or dict of 20,000 strings
        built: a process's first lookups stay well under a millisecond); None when it is not there, and
        ``GAVE_UP`` when the scan would cost more than a dict (see :func:`entry_index`)."""
        try:
            key = mid.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: no MID
            return None
        return entry_index(self._vocabulary_bytes(), self.vocabulary[0], key)

    def _vocabulary_bytes(self) -> bytes:
        """The vocabulary's bytes as one ``bytes``, copied from the map once (scans and slices of it are fast)."""
        if self._vocab_bytes is None:
            self._vocab_bytes = self.vocabulary[1].tobytes()
        return self._vocab_bytes

    def mids(self) -> list[str]:
        raw = self._vocabulary_bytes()
        bounds = self.vocabulary[0].tolist()  # Python ints: slicing with numpy scalars is several times slower
        return [raw[a:b].decode("utf-8") for a, b in zip(bounds, bounds[1:])]

    @property
    def images(self) -> dict:
        """``ids`` (sorted uint64), ``buckets``, ``bucket_bits`` and ``split`` (uint8 codes)."""
        if self._images is None:
            e = self.directory["images"]
            n = e["count"]
            ids = C.raw_array(self.container, e["ids"], "u8", n, "image IDs")
            if n > 1 and (ids[1:] <= ids[:-1]).any():
                self.fail("image IDs are not sorted and unique", e["ids"])
            bits = e["bucket_bits"]
            if not 1 <= bits <= 24:
                self.fail(f"bucket_bits {bits} outside 1..24")
            buckets = C.raw_array(self.container, e["buckets"], e.get("buckets_dtype", "u4"), (1 << bits) + 1, "image buckets")
            split = C.raw_array(self.container, e["split"], "u1", n, "image splits")
            self._images = {"ids": ids, "buckets": buckets, "bucket_bits": bits, "split": split, "splits": e["splits"]}
        return self._images

    def close(self):
        self.container.close()


class TableView:
    """One table: its columns (decoded on first use, cached), parts and indexes."""

    def __init__(self, store: Store, name: str, entry: dict):
        self.store, self.name, self.entry = store, name, entry
        if not isinstance(entry, dict) or not isinstance(entry.get("rows"), int) or not isinstance(entry.get("parts"), list):
            store.fail(f"table {name!r}: expected rows and parts")
        self.rows = entry["rows"]
        self.lookup_rows = entry.get("lookup_rows", self.rows)
        self.columns = {c["name"]: c for c in entry.get("columns", [])}
        self.parts = entry["parts"]
        self._decoded: dict[str, C.Decoded] = {}
        self._row_decoders: dict = {}

    def column(self, name: str) -> C.Decoded:
        col = self._decoded.get(name)
        if col is None:
            entry = self.columns[name]
            vocab = self.store.directory["vocabulary"]["count"] if entry.get("encoding") == "code" else None
            col = self._decoded[name] = C.decode(self.store.container, entry, self.rows, vocabulary_size=vocab)
        return col

    def column_rows(self, name: str, lo: int, hi: int) -> C.Decoded:
        """Rows ``[lo, hi)`` of a column; text is decoded only for those rows (``columns.column_rows``)."""
        decode = self._row_decoders.get(name)
        if decode is None:
            entry = self.columns[name]
            vocab = self.store.directory["vocabulary"]["count"] if entry.get("encoding") == "code" else None
            decode = self._row_decoders[name] = C.column_rows(self.store.container, entry, self.rows, vocabulary_size=vocab)
        return decode(lo, hi)

    def forget(self) -> None:
        """Drop the decoded columns (they are decoded again when asked for)."""
        self._decoded.clear()
        self._row_decoders.clear()

    def image_rows(self) -> np.ndarray:
        """Offsets (int64, n_images + 1): the lookup rows of image i are ``[o[i], o[i+1])``."""
        n = self.store.directory["images"]["count"]
        what = f"table {self.name!r} image row offsets"
        arr = C.blocked_offsets(self.store.container, self.entry["image_rows"], n + 1, what)
        if arr[0] != 0 or (np.diff(arr) < 0).any() or int(arr[-1]) > self.lookup_rows:
            self.store.fail(f"{what} are not monotone within its rows")
        return arr

    def ints(self, desc: dict, count: int, what: str) -> np.ndarray:
        """A packed index array (int64) of this table."""
        return C.ints_array(self.store.container, desc, count, f"table {self.name!r} {what}")

    def row_part(self) -> np.ndarray | None:
        seg = self.entry.get("row_part")
        if seg is None:
            return None
        data = np.frombuffer(self.store.container.data(seg), np.uint8)
        if len(data) != self.rows or (len(data) and int(data.max()) >= len(self.parts)):
            self.store.fail(f"table {self.name!r}: row parts do not match its rows and parts", seg)
        return data

    def part_positions(self, k: int) -> np.ndarray:
        """The physical rows of part ``k`` in its file's order."""
        row_part = self.row_part()
        if row_part is None:
            if len(self.parts) != 1:
                self.store.fail(f"table {self.name!r}: several parts but no row parts")
            positions = np.arange(self.rows)
        else:
            positions = np.flatnonzero(row_part == k)
        part = self.parts[k]
        if len(positions) != part["rows"]:
            self.store.fail(f"table {self.name!r} part {k}: {len(positions)} rows stored, {part['rows']} expected")
        seg = part.get("file_order")
        if seg is not None:
            order = np.frombuffer(self.store.container.data(seg), np.uint32)
            if len(order) != len(positions) or not np.array_equal(np.sort(order), np.arange(len(order))):
                self.store.fail(f"table {self.name!r} part {k}: file order is not a permutation", seg)
            positions = positions[order]
        return positions

    def row_image_ids(self, positions: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
        """The image ID of each physical row in ``positions``; ``offsets``: ``image_rows()``, when the caller
        has them already (export asks chunk by chunk)."""
        offsets = self.image_rows() if offsets is None else offsets
        out = np.empty(len(positions), np.uint64)
        lookup = positions < self.lookup_rows
        index = np.searchsorted(offsets, positions[lookup], side="right") - 1
        out[lookup] = self.store.images["ids"][index]
        if not lookup.all():  # export-only rows keep their own IDs
            seg = self.entry.get("export_ids")
            extra = np.frombuffer(self.store.container.data(seg), np.uint64) if seg is not None else np.zeros(0, np.uint64)
            if len(extra) != self.rows - self.lookup_rows:
                self.store.fail(f"table {self.name!r}: export-only image IDs do not match its rows", seg)
            out[~lookup] = extra[positions[~lookup] - self.lookup_rows]
        return out

    def exceptions(self, k: int) -> tuple[np.ndarray, list[bytes]]:
        part = self.parts[k]
        n = part.get("exceptions", 0)
        if not n:
            return np.zeros(0, np.int64), []
        seg = part["exception_segment"]
        blob = self.store.container.data(seg)
        if len(blob) < 16 * n:
            self.store.fail(f"table {self.name!r} part {k}: exception block too short", seg)
        rows = np.frombuffer(blob, np.int64, n)
        lengths = np.frombuffer(blob, np.int64, n, 8 * n)
        if (lengths < 0).any() or 16 * n + int(lengths.sum()) != len(blob) or (n > 1 and (np.diff(rows) <= 0).any()) or rows[0] < 0 or rows[-1] >= part["rows"]:
            self.store.fail(f"table {self.name!r} part {k}: exceptions do not fit their block", seg)
        texts, pos = [], 16 * n
        for length in lengths.tolist():
            texts.append(bytes(blob[pos : pos + length]))
            pos += length
        return rows, texts


# ---- the directory's shape (FORMAT.md, "What a reader must check", items 4 and 6) ---------------------------

_INT_CODES = {"u1": 1, "u2": 2, "u4": 4, "u8": 8, "i1": 1, "i2": 2, "i4": 4, "i8": 8}
_UNSIGNED_CODES = ("u1", "u2", "u4", "u8")
_TERMINATORS = ("\n", "\r\n", "\r")
_QUOTES = frozenset((0, 1, 2))
_STYLES = frozenset((None, "fixed", "trim", "trim1"))


def _all_in(values, allowed: frozenset) -> bool:
    try:
        return set(values) <= allowed and bool not in set(map(type, values))
    except TypeError:  # an unhashable item
        return False


class _Checker:
    """Checks every number the directory gives before any reader (Python or the C lookups) uses it: segment
    references are indexes of segments of the right codec, counts are non-negative, and each raw array fits
    its segment exactly. It reads the block table only, no segment."""

    def __init__(self, store: Store):
        self.store = store
        c = store.container
        self.segments = c.segments
        # Raw length of each segment: its blocks' raw lengths summed (the container checked the blocks).
        ends = np.zeros(len(c.blocks) + 1, np.int64)
        np.cumsum(c.blocks[:, 1], dtype=np.int64, out=ends[1:])
        first = np.array([seg["first_block"] for seg in self.segments], np.int64)
        count = np.array([seg["block_count"] for seg in self.segments], np.int64)
        self.raw_lengths = (ends[first + count] - ends[first]).tolist()

    def fail(self, what: str, reason: str):
        raise FormatError(f"directory: {what}: {reason}", path=self.store.path, byte_offset=self.store.container.directory_span[0])

    def count(self, value, what: str, lo: int = 0, hi: int | None = None) -> int:
        if not _is_int(value) or value < lo or (hi is not None and value > hi):
            self.fail(what, f"expected an integer in [{lo}, {'∞' if hi is None else hi}], got {value!r}")
        return value

    def obj(self, value, what: str) -> dict:
        if not isinstance(value, dict):
            self.fail(what, f"expected an object, got {type(value).__name__}")
        return value

    def segment(self, value, what: str, codec: str, *, optional: bool = False, size: int | None = None) -> int | None:
        """A segment index of ``codec``; ``size`` is the raw length it must have."""
        if value is None and optional:
            return None
        if not _is_int(value) or not 0 <= value < len(self.segments):
            self.fail(what, f"expected a segment index in [0, {len(self.segments)}), got {value!r}")
        if self.segments[value]["codec"] != codec:
            self.fail(what, f"expected a {codec} segment, segment {value} is {self.segments[value]['codec']}")
        if size is not None and self.raw_lengths[value] != size:
            self.fail(what, f"expected {size} bytes in segment {value}, it holds {self.raw_lengths[value]}")
        return value

    def ints(self, value, what: str, count: int, lo: int = -(2**62), hi: int = 2**62, *, strided: bool = False) -> None:
        """A raw bit-packed *ints* object of ``count`` values whose ``base`` (the smallest value) is in [lo, hi];
        with ``strided`` (a column's), it may have a ``stride`` and a ``shift`` (FORMAT.md, "Packed integers").
        The largest value, ``base`` plus the packed one, is checked where the values are read."""
        self.obj(value, what)
        bits, base = value.get("bits"), value.get("base")
        if not _is_int(bits) or not 0 <= bits <= 56:
            self.fail(f"{what} bits", f"expected an integer in [0, 56], got {bits!r}")
        if not _is_int(base) or not lo <= base <= hi:
            self.fail(f"{what} base", f"expected an integer in [{lo}, {hi}], got {base!r}")
        problem = C.stride_problem(value, bits, strided)
        if problem:
            self.fail(what, problem)
        if bits:
            self.segment(value.get("segment"), what, "raw", size=(count * C.ints_layout(value)[0] + 7) // 8)
        elif value.get("segment") is not None:
            self.fail(what, "expected no segment for 0-bit values")

    def offsets(self, value, what: str, count: int) -> None:
        """FORMAT.md's blocked offsets: ``block`` (a power of two), ``base`` and ``local`` ints."""
        self.obj(value, what)
        block = value.get("block")
        if not _is_int(block) or not 1 <= block <= 1 << 16 or block & (block - 1):
            self.fail(f"{what} block", f"expected a power of two up to 65536, got {block!r}")
        self.ints(value.get("base"), f"{what} base", -(-count // block), 0, 2**48)
        self.ints(value.get("local"), f"{what} local", count, 0, 2**48, strided=True)

    def dtype(self, value, what: str, codes=tuple(_INT_CODES)) -> int:
        if value not in codes:
            self.fail(what, f"expected a dtype of {', '.join(codes)}, got {value!r}")
        return _INT_CODES[value]


def _check_directory(store: Store) -> None:
    d = store.directory
    ck = _Checker(store)
    images = ck.obj(d["images"], "images")
    vocab = ck.obj(d["vocabulary"], "vocabulary")
    n_images = ck.count(images.get("count"), "images.count", 0, 2**32 - 1)
    ck.segment(images.get("ids"), "images.ids", "raw", size=8 * n_images)
    bits = ck.count(images.get("bucket_bits"), "images.bucket_bits", 1, 24)
    width = ck.dtype(images.get("buckets_dtype", "u4"), "images.buckets_dtype", ("u4", "u8"))
    ck.segment(images.get("buckets"), "images.buckets", "raw", size=width * ((1 << bits) + 1))
    ck.segment(images.get("split"), "images.split", "raw", size=n_images)
    splits = images.get("splits", ["train", "validation", "test"])
    if not isinstance(splits, list) or not all(isinstance(x, str) for x in splits):
        ck.fail("images.splits", "expected a list of names")
    n_vocab = ck.count(vocab.get("count"), "vocabulary.count", 0, 2**32 - 1)
    ck.segment(vocab.get("offsets"), "vocabulary.offsets", "raw", size=4 * (n_vocab + 1))
    ck.segment(vocab.get("data"), "vocabulary.data", "raw")
    n_codes = max(n_vocab, 1)
    for name, t in d["tables"].items():
        _check_table(ck, str(name), ck.obj(t, f"table {name!r}"), n_images, n_codes, len(store.sources))


def _check_table(ck: _Checker, name: str, t: dict, n_images: int, n_codes: int, n_sources: int) -> None:
    what = f"table {name!r}"
    rows = ck.count(t.get("rows"), f"{what} rows", 0, 2**40)
    lookup = ck.count(t.get("lookup_rows", rows), f"{what} lookup_rows", 0, rows)
    columns, parts = t.get("columns", []), t.get("parts")
    if not isinstance(columns, list) or not isinstance(parts, list):
        ck.fail(what, "expected lists of columns and parts")
    names: set = set()
    for i, col in enumerate(columns):
        cw = f"{what} column {i}"
        ck.obj(col, cw)
        if not isinstance(col.get("name"), str) or col["name"] in names:
            ck.fail(cw, f"expected a new column name, got {col.get('name')!r}")
        names.add(col["name"])
        _check_column(ck, f"{what} column {col['name']!r}", col, rows, n_codes)
    names = frozenset(names)
    if len(parts) > MAX_PARTS or (len(parts) > 1 and "row_part" not in t):
        ck.fail(what, f"{len(parts)} parts need row_part (at most {MAX_PARTS} parts)")
    ck.segment(t.get("row_part"), f"{what} row_part", "zstd", optional=True, size=rows)
    if "export_ids" in t:
        ck.segment(t["export_ids"], f"{what} export_ids", "zstd", size=8 * (rows - lookup))
    if "image_rows" in t:
        ck.offsets(t["image_rows"], f"{what} image_rows", n_images + 1)
    if "row_image" in t:
        ck.ints(t["row_image"], f"{what} row_image", lookup, 0, 2**32 - 1)
    for key, inner in (("class_rows", "rows"), ("positive_images", "images")):
        if key in t:
            spec = ck.obj(t[key], f"{what} {key}")
            ck.segment(spec.get("offsets"), f"{what} {key} offsets", "raw", size=4 * (n_codes + 1))
            if key == "class_rows":
                ck.ints(spec.get(inner), f"{what} {key} {inner}", lookup, 0, 2**32 - 1)
            else:  # as many images as the offsets' last entry says: checked where read
                ck.obj(spec.get(inner), f"{what} {key} {inner}")
    total = 0
    for k, part in enumerate(parts):
        pw = f"{what} part {k}"
        ck.obj(part, pw)
        ck.count(part.get("source"), f"{pw} source", 0, n_sources - 1)
        n = ck.count(part.get("rows"), f"{pw} rows", 0, rows)
        total += n
        if "json_segment" in part:
            ck.segment(part["json_segment"], f"{pw} json_segment", "zstd")
            continue
        cols = part.get("columns")
        if not isinstance(cols, list) or not _all_in(cols, names):
            ck.fail(pw, f"expected a list of the table's column names, got {cols!r}")
        for key, allowed in (("quote", _QUOTES), ("style", _STYLES)):
            values = part.get(key)
            if not isinstance(values, list) or len(values) != len(cols) or not _all_in(values, allowed):
                ck.fail(f"{pw} {key}", f"expected one of {sorted(allowed, key=str)} per column, got {values!r}")
        digits = part.get("decimals", [None] * len(cols))
        if not isinstance(digits, list) or len(digits) != len(cols) or not all(d is None or (_is_int(d) and 0 <= d <= C.MAX_FIXED_DECIMALS) for d in digits):
            ck.fail(f"{pw} decimals", f"expected null or 0..{C.MAX_FIXED_DECIMALS} per column, got {digits!r}")
        if part.get("terminator") not in _TERMINATORS:
            ck.fail(f"{pw} terminator", f"expected LF, CRLF or CR, got {part.get('terminator')!r}")
        for key in ("prefix", "suffix"):
            if not isinstance(part.get(key), str):
                ck.fail(f"{pw} {key}", "expected text")
        n_exc = ck.count(part.get("exceptions", 0), f"{pw} exceptions", 0, n)
        ck.segment(part.get("exception_segment"), f"{pw} exception_segment", "zstd", optional=not n_exc)
        ck.segment(part.get("file_order"), f"{pw} file_order", "zstd", optional=True, size=4 * n)
    if total != rows:
        ck.fail(what, f"its parts hold {total} rows, the table {rows}")


def _check_integers(ck: _Checker, what: str, col: dict, rows: int, codes) -> None:
    """A column's integers: bit-packed ``ints`` whose values fit its ``dtype``, or a raw array of it."""
    width = ck.dtype(col.get("dtype"), f"{what} dtype", codes)
    if "ints" in col:
        info = np.iinfo(C.dtype_of(col["dtype"]))
        ck.ints(col["ints"], f"{what} ints", rows, int(info.min), int(info.max), strided=True)
    else:
        ck.segment(col.get("segment"), what, "raw", size=width * rows)


def _check_column(ck: _Checker, what: str, col: dict, rows: int, n_codes: int) -> None:
    enc = col.get("encoding")
    if enc == "image":
        return
    if enc == "code":
        _check_integers(ck, what, col, rows, _UNSIGNED_CODES)
    elif enc == "dict":
        values = col.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            ck.fail(what, "expected a non-empty list of text values")
        if col.get("segment") is not None or "ints" in col:
            _check_integers(ck, what, col, rows, _UNSIGNED_CODES)
    elif enc in ("decimal", "int", "float64"):
        if enc == "float64":
            ck.segment(col.get("segment"), what, "raw", size=8 * rows)
        else:
            _check_integers(ck, what, col, rows, tuple(_INT_CODES))
        if enc == "decimal":
            ck.count(col.get("scale"), f"{what} scale", 0, 18)
        ck.segment(col.get("nulls"), f"{what} nulls", "raw", optional=True, size=(rows + 7) // 8)
    elif enc == "strings":
        seg = ck.segment(col.get("segment"), what, "zstd")
        block_rows = col.get("block_rows")
        if (not isinstance(block_rows, list) or not all(_is_int(n) and n >= 0 for n in block_rows)
                or sum(block_rows) != rows or len(block_rows) != ck.segments[seg]["block_count"]):
            ck.fail(f"{what} block_rows", f"expected one row count per block adding up to {rows}")
    elif enc in ("md5", "text_dict", "template"):
        # FORMAT.md, "Text encodings": ``rows`` is checked first; an exceptions object lists distinct rows
        # below the table's, one frame of texts per block_rows entry. The rest is checked where decoded.
        if col.get("rows") != rows:
            ck.fail(f"{what} rows", f"expected the table's {rows} rows, got {col.get('rows')!r}")
        exc = col.get("exceptions")
        if exc is not None:
            ck.obj(exc, f"{what} exceptions")
            block_rows = exc.get("block_rows")
            if not isinstance(block_rows, list) or not all(_is_int(n) and n >= 0 for n in block_rows) or sum(block_rows) > rows:
                ck.fail(f"{what} exceptions block_rows", f"expected row counts adding up to at most {rows}, got {block_rows!r}")
            if sum(block_rows):
                seg = ck.segment(exc.get("segment"), f"{what} exceptions", "zstd")
                if ck.segments[seg]["block_count"] != len(block_rows):
                    ck.fail(f"{what} exceptions block_rows", f"{len(block_rows)} entries for {ck.segments[seg]['block_count']} frames")
        if enc == "md5":
            ck.segment(col.get("segment"), what, "raw", size=16 * rows)
    else:
        # A newer minor version's encoding: the column is rejected when used, not the file (FORMAT.md,
        # "Compatibility"); any segment it names must still be one.
        for key in ("segment", "nulls"):
            if col.get(key) is not None and (not _is_int(col[key]) or not 0 <= col[key] < len(ck.segments)):
                ck.fail(f"{what} {key}", f"expected a segment index, got {col[key]!r}")
