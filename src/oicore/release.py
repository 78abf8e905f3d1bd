"""``oicore.open``: a converted release, opened in milliseconds, looked up in microseconds.

open → index → lookup: ``open`` memory-maps the ``.oic`` file and checks its
header, footer and directory, nothing more. The first lookup of each kind
builds its small C-level view of the segments it reads (``oicore._lookup``);
the MID↔name maps and the hierarchy load on first use too. Segments are
checked block by block (CRC-32C) the first time they are touched.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from oicore import _lookup
from oicore import columns as C
from oicore import textcodec  # packed integers and text: imported with open, not in a lookup's first call
from oicore.classes import Classes
from oicore.errors import FormatError
from oicore.hierarchy import Hierarchy
from oicore.store import GAVE_UP, Store

__all__ = ["open", "Release", "ImageInfo", "Labels", "Boxes", "LabelsBatch", "BoxesBatch"]

Labels = _lookup.Labels
Boxes = _lookup.Boxes
SPLITS = ("train", "validation", "test")
DEFAULT_CACHE_BYTES = 64 << 20
_LABEL_TABLES = ("human_labels", "machine_labels")
_MID_SCANS = 16  # MIDs looked up by a scan of the vocabulary's bytes before its dict is built
_open_releases: "weakref.WeakSet[Release]" = weakref.WeakSet()


def open(path, *, verify: bool = False, cache_bytes: int = DEFAULT_CACHE_BYTES) -> "Release":
    """Open an ``.oic`` file.

    Parameters
    ----------
    path : str or os.PathLike
        A file written by ``oicore convert``.
    verify : bool
        Check every block's CRC-32C now (otherwise each block is checked the first time a lookup reads it).
    cache_bytes : int
        Bound on decoded text blocks and per-class results kept per Release (default 64 MiB).

    Returns
    -------
    Release

    Raises
    ------
    FormatError
        Not an ``.oic`` file, truncated or damaged (``ChecksumError`` for a bad CRC).

    Examples
    --------
    >>> import oicore
    >>> with oicore.open("openimages-v3.oic") as release:  # doctest: +SKIP
    ...     r = release.labels("000002b66c9c498e")
    ...     r.mids, r.confidence
    """
    return Release(path, verify=verify, cache_bytes=cache_bytes)


@dataclass(frozen=True)
class ImageInfo:
    """One row of the images table. ``md5`` holds the original base64 text."""

    image_id: str
    subset: str | None = None
    original_url: str | None = None
    original_landing_url: str | None = None
    license: str | None = None
    author_profile_url: str | None = None
    author: str | None = None
    title: str | None = None
    original_size: int | None = None
    md5: str | None = None
    thumbnail_300k_url: str | None = None
    rotation: float | None = None


_NUMBER_ENCODINGS = ("code", "dict", "decimal", "int", "float64")
_IMAGE_FIELDS = {
    "Subset": "subset",
    "OriginalURL": "original_url",
    "OriginalLandingURL": "original_landing_url",
    "License": "license",
    "AuthorProfileURL": "author_profile_url",
    "Author": "author",
    "Title": "title",
    "OriginalSize": "original_size",
    "OriginalMD5": "md5",
    "Thumbnail300KURL": "thumbnail_300k_url",
    "Rotation": "rotation",
}


@dataclass(frozen=True)
class LabelsBatch:
    """Ragged labels of many images: image ``j`` has rows ``offsets[j]:offsets[j+1]`` of the flat arrays."""

    offsets: np.ndarray
    label: np.ndarray
    confidence: np.ndarray
    source: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, j: int):
        a, b = self.offsets[j], self.offsets[j + 1]
        return self.label[a:b], self.confidence[a:b], self.source[a:b]


@dataclass(frozen=True)
class BoxesBatch:
    """Ragged boxes of many images: image ``j`` has rows ``offsets[j]:offsets[j+1]`` of ``boxes``."""

    offsets: np.ndarray
    boxes: Boxes

    def __len__(self) -> int:
        return len(self.offsets) - 1


class _Cache:
    """A bounded, thread-safe LRU of decoded blocks and per-class results, by bytes."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self.items: OrderedDict = OrderedDict()  # key -> (value, size)
        self.lock = threading.Lock()

    def get(self, key, default=None):
        with self.lock:
            hit = self.items.get(key)
            if hit is None:
                return default
            self.items.move_to_end(key)
            return hit[0]

    def __contains__(self, key) -> bool:
        return key in self.items

    def __getitem__(self, key):
        hit = self.get(key, _MISSING)
        if hit is _MISSING:
            raise KeyError(key)
        return hit

    def __setitem__(self, key, value):
        self.put(key, value, len(value) if hasattr(value, "__len__") else 64)

    def put(self, key, value, size: int) -> None:
        if size > self.limit:
            return
        with self.lock:
            if key in self.items:
                return
            self.items[key] = (value, size)
            self.used += size
            while self.used > self.limit and self.items:
                _, (_, old_size) = self.items.popitem(last=False)
                self.used -= old_size


_MISSING = object()
# What a cached vocabulary costs per MID beyond its column array: the str (~60 bytes) and two pointers to it.
_VOCABULARY_ENTRY_BYTES = 80


class Release:
    """An opened ``.oic`` file. Safe to share between threads, picklable, and safe in forked workers.

    Use ``oicore.open(path)``. A context manager: after ``close()``, arrays already returned stay valid and
    any other use raises ``ValueError``.
    """

    def __init__(self, path, *, verify: bool = False, cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.path = os.path.abspath(os.fspath(path))
        self._store = Store(self.path, verify=verify)
        self._verify = verify
        self._cache_bytes = cache_bytes
        self.uuid = self._store.provenance.get("uuid")
        self.size = self._store.container.size
        self.release = self._store.provenance.get("release")
        self._closed = False
        self._reset()
        _open_releases.add(self)

    def _reset(self):
        """Forget everything built lazily (at open, and in a forked child)."""
        self._lock = threading.RLock()
        self._cache = _Cache(self._cache_bytes)
        self._image_index = None
        # The lookups exist from open but read nothing until first used (_lookup._Deferred); their bound C
        # methods are handed out as release.labels and release.boxes_for_image, so a method taken before the
        # first call is as fast as one looked up after it. A forked child gets new ones; methods bound before
        # the fork keep their lookups, which hold no lock and read only the shared map.
        self._label_lookup = _lookup.LabelLookup(_builder(self, "_build_labels"))
        self._box_lookup = _lookup.BoxLookup(_builder(self, "_build_boxes"))
        self.labels = self._label_lookup.labels
        self.boxes_for_image = self._box_lookup.for_image
        self._image_lookup = None
        self._classes = None
        self._hierarchy = None
        self._mids = None
        self._mid_codes = None
        self._mid_scans = 0  # MIDs looked up by a scan of the vocabulary before its dict is built
        self._sources = None
        self._splits = None

    # ---- life cycle --------------------------------------------------------------------------

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def cache_info(self) -> dict:
        """The per-Release cache of decoded blocks, per-class results and label-matrix vocabularies.

        Returns
        -------
        dict
            ``bytes`` (estimated size of what it holds), ``limit`` (``cache_bytes`` given to ``open``;
            least recently used entries go first past it) and ``entries``.

        Examples
        --------
        >>> release.cache_info()  # doctest: +SKIP
        {'bytes': 12345, 'limit': 67108864, 'entries': 3}
        """
        self._check_open()
        cache = self._cache
        with cache.lock:
            return {"bytes": cache.used, "limit": cache.limit, "entries": len(cache.items)}

    def close(self) -> None:
        """Close the file; arrays already returned keep the mapping alive."""
        if self._closed:
            return
        if self._label_lookup.ready or self._box_lookup.ready or self._cache.used:
            # Results already handed out may still ask for their .mids and .names: load them while we can.
            # A damaged or name-less file still closes; those results then raise when asked.
            try:
                self.mids
                self.classes
                self.sources
                self.splits
            except (ValueError, LookupError, OSError):
                pass
        self._closed = True
        message = f"operation on a closed Release ({self.path})"
        self._label_lookup.close(message)  # methods taken from this Release raise from now on
        self._box_lookup.close(message)
        self._image_index = self._image_lookup = None
        self.__dict__.pop("labels", None)  # back to the methods, which raise on a closed Release
        self.__dict__.pop("boxes_for_image", None)
        self._store.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self):
        if self._closed:
            raise ValueError(f"operation on a closed Release ({self.path})")

    def __reduce__(self):
        return (_reopen, (self.path, self.uuid, self.size, self._verify, self._cache_bytes))

    def __repr__(self):
        state = "closed" if self._closed else f"{len(self):,} images"
        return f"<oicore.Release {self.release} {self.path!r}: {state}>"

    # ---- lazily built views ------------------------------------------------------------------

    @property
    def _images(self) -> _lookup.ImageIndex:
        index = self._image_index
        if index is None:
            self._check_open()
            with self._lock:
                if self._image_index is None:
                    self._image_index = _lookup.ImageIndex(self._store.container, self._store.directory["images"])
                index = self._image_index
        return index

    @property
    def sources(self) -> list[str]:
        """Every Source value of the label and box tables; ``.source`` arrays are codes into this list."""
        if self._sources is None:
            self._check_open()  # close() loads it for the results already handed out
            seen: dict[str, None] = {}
            for name in (*_LABEL_TABLES, "boxes"):
                t = self._store.tables.get(name)
                # A table of no rows stores its empty dictionary as one value, "", which no row holds.
                col = t.columns.get("Source") if t and t.rows else None
                if col is not None and col["encoding"] == "dict":
                    for v in col["values"]:
                        seen.setdefault(v, None)
            self._sources = list(seen)
        return self._sources

    @property
    def splits(self) -> list[str]:
        """Split names; ``.split`` arrays are codes into this list (255: unknown)."""
        if self._splits is None:
            self._check_open()  # close() loads it for the results already handed out
            self._splits = list(self._store.directory["images"].get("splits", SPLITS))
        return list(self._splits)

    def _source_codes(self, table) -> list[int]:
        col = table.columns.get("Source")
        if col is None or col["encoding"] != "dict" or not table.rows:
            return []
        return [self.sources.index(v) for v in col["values"]]

    def _labels_lookup(self) -> _lookup.LabelLookup:
        self._check_open()
        return self._label_lookup.prepared()

    def _build_labels(self, lookup) -> None:
        tables = []
        n = self._images.n
        for name in _LABEL_TABLES:
            t = self._store.tables.get(name)
            if t is not None and "image_rows" in t.entry:
                tables.append(_lookup.LabelTable(self._store.container, t.entry, n, self._source_codes(t), name == "human_labels"))
        lookup.setup(self._images, tables, self, self.sources)

    def _boxes_lookup(self) -> _lookup.BoxLookup:
        self._check_open()
        return self._box_lookup.prepared()

    def _build_boxes(self, lookup) -> None:
        t = self._store.tables.get("boxes")
        if t is None:  # no boxes file: every known image has none
            lookup.setup_without_boxes(self._images, self)
            return
        if "class_rows" not in t.entry:
            raise LookupError(f"{self.path} holds no boxes")
        d = self._store.directory
        table = _lookup.BoxTable(self._store.container, t.entry, self._images.n, max(d["vocabulary"]["count"], 1), self._source_codes(t))
        lookup.setup(self._images, table, self, self._store.container, d["images"]["split"])

    # ---- classes -----------------------------------------------------------------------------

    @property
    def mids(self) -> list[str]:
        """The release vocabulary: ``.label`` codes index this list."""
        if self._mids is None:
            self._check_open()
            self._mids = self._store.mids()
        return self._mids

    @property
    def classes(self) -> Classes:
        """MID ↔ display name maps and the class lists (``classes.lists["trainable"]``)."""
        if self._classes is None:
            self._check_open()
            with self._lock:
                if self._classes is None:
                    self._classes = Classes.from_store(self._store, self.mids)
        return self._classes

    @property
    def hierarchy(self) -> Hierarchy:
        """The label hierarchy (``parents``, ``children``, ``ancestors``, ``descendants``)."""
        if self._hierarchy is None:
            self._check_open()
            with self._lock:
                if self._hierarchy is None:
                    self._hierarchy = Hierarchy.from_store(self._store)
        return self._hierarchy

    def _mid_list(self, codes) -> list[str]:
        mids = self.mids
        return [mids[c] for c in codes.tolist()]

    def _name_list(self, codes) -> list[str | None]:
        names = self.classes.names_by_code
        return [names[c] for c in codes.tolist()]

    def label_code(self, label) -> int:
        """A label given as a MID, a code or a display name, as its code."""
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            code = int(label)
            if not 0 <= code < len(self.mids):
                raise KeyError(f"label code {code} outside 0..{len(self.mids) - 1}")
            return code
        if not isinstance(label, str):
            raise TypeError(f"expected a MID, a label code or a display name, got {type(label).__name__}")
        # MIDs need only the vocabulary, not the names. A process's first few are found by a scan of its bytes
        # (~0.1 ms) rather than building the dict of every MID (5-10 ms): a cold first call stays cheap.
        codes, code = self._mid_codes, GAVE_UP
        if codes is None and self._mid_scans < _MID_SCANS:
            self._check_open()
            self._mid_scans += 1
            code = self._store.mid_code(label)
        if code == GAVE_UP:
            if codes is None:  # the first of equal MIDs wins, as the scan's does (convert writes none)
                mids = self.mids
                codes = self._mid_codes = dict(zip(reversed(mids), range(len(mids) - 1, -1, -1)))
            code = codes.get(label)
        if code is not None:
            return code
        return self.classes.code_of_mid(self.classes.mid(label))

    # ---- per image ---------------------------------------------------------------------------

    def labels(self, image_id, source=None, min_confidence=None) -> Labels:
        """Every image-level label row of an image: human tables first, then machine, each in file order.

        ``source`` is ``"human"``, ``"machine"`` or an exact Source value; ``min_confidence`` keeps rows with
        confidence ≥ it. Malformed IDs raise ``InvalidImageIDError``; IDs in no table raise ``KeyError``.
        """
        return self._labels_lookup().labels(image_id, source, min_confidence)

    def boxes_for_image(self, image_id) -> Boxes:
        """The boxes of one image, in file order."""
        return self._boxes_lookup().for_image(image_id)

    def image(self, image_id) -> ImageInfo:
        """The images-table row of an image."""
        self._check_open()
        index = self._images.index(image_id)
        if index < 0:
            raise KeyError(f"image {_lookup.parse_id(image_id):016x} is in no table of this release")
        t = self._store.tables.get("images")
        if t is None:
            raise KeyError(f"{self.path} has no images table")
        rows, numbers, lacking = self._image_rows_lookup()
        lo, hi = rows.pair(index)
        values = {"image_id": f"{_lookup.parse_id(image_id):016x}"}
        if hi == lo:
            raise KeyError(f"image {values['image_id']} has no row in the images table")
        part = t.parts[self._row_part(t, lo)] if lacking else None
        for name, entry in t.columns.items():
            field_name = _IMAGE_FIELDS.get(name)
            if field_name is None:
                continue
            if part is not None and name not in part["columns"]:
                values[field_name] = None
                continue
            values[field_name] = self._cell(t, name, entry, lo, numbers.get(name))
        return ImageInfo(**values)

    def _row_part(self, table, row: int) -> int:
        """The part (source file) of a table's physical row: its row-part array, decoded once into the bounded
        cache."""
        key = ("row_part", table.name)
        parts = self._cache.get(key)
        if parts is None:
            parts = table.row_part()
            if parts is None:
                return 0
            parts.flags.writeable = False
            self._cache.put(key, parts, parts.nbytes + 100)
        return int(parts[row])

    def _image_rows_lookup(self):
        """The images table's row offsets, its number columns as readers of single rows (nothing decoded
        whole: a row costs a few loads at any scale), and the columns some of its files lack."""
        lookup = self._image_lookup
        if lookup is None:
            with self._lock:
                if self._image_lookup is None:
                    t = self._store.tables["images"]
                    if "image_rows" not in t.entry:
                        raise KeyError(f"{self.path}: the images table has no image index")
                    c = self._store.container
                    rows = _lookup.Offsets(c, t.entry["image_rows"], self._images.n + 1, t.lookup_rows)
                    numbers = {n: _lookup.Column(c, e, t.rows) for n, e in t.columns.items() if e["encoding"] in _NUMBER_ENCODINGS and n in _IMAGE_FIELDS}
                    # Columns some images file lacks (V1's first layouts, Rotation before V4): None for its rows.
                    lacking = frozenset(name for part in t.parts for name in t.columns if name not in part["columns"])
                    self._image_lookup = (rows, numbers, lacking)
                lookup = self._image_lookup
        return lookup

    def _cell(self, table, name: str, entry: dict, row: int, reader=None):
        enc = entry["encoding"]
        if reader is not None:  # a number column: the row's value, read in place
            seg = entry.get("nulls")
            if seg is not None and self._store.container.raw(seg, row >> 3, (row >> 3) + 1)[0] >> (row & 7) & 1:
                return None
            v = reader.value(row)
            if enc == "dict":
                if not 0 <= v < len(entry["values"]):
                    raise FormatError(f"images column {name!r}: row {row} holds code {v} of {len(entry['values'])}", path=self.path)
                return entry["values"][v]
            if enc == "code":
                if not 0 <= v < len(self.mids):
                    raise FormatError(f"images column {name!r}: row {row} holds code {v} of {len(self.mids)}", path=self.path)
                return self.mids[v]
            if enc == "decimal":
                return float(v) / 10.0 ** entry["scale"]
            return v
        if enc == "strings":
            return C.string_row(self._store.container, entry, table.rows, row, self._cache)
        if enc not in ("code", "dict", "decimal", "int", "float64"):
            return textcodec.text_row(self._store.container, entry, table.rows, row, self._cache)
        col = table.column(name)
        if col.nulls is not None and col.nulls[row]:
            return None
        if enc == "dict":
            return col.dictionary[int(col.values[row])]
        if enc == "code":
            return self.mids[int(col.values[row])]
        if enc == "decimal":
            return float(col.values[row]) / 10.0 ** col.scale
        if enc == "float64":
            return float(col.values[row])
        return int(col.values[row])

    # ---- per class ---------------------------------------------------------------------------

    def boxes(self, label, split=None) -> Boxes:
        """The boxes of a class (MID, code or display name), ordered by split, then ImageID, then file order."""
        self._check_open()
        code = self.label_code(label)
        split_code = -1 if split is None else self._split_code(split)
        key = ("boxes", code, split_code)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        result = self._boxes_lookup().for_class(code, split_code)
        _lookup.freeze(result)  # shared through the cache: read-only, so no caller can change another's answer
        self._cache.put(key, result, 40 * len(result) + 200)
        return result

    def _split_code(self, split) -> int:
        if split in ("val",):
            split = "validation"
        try:
            return self.splits.index(split)
        except ValueError:
            raise ValueError(f"unknown split {split!r}; expected one of {self.splits}") from None

    def images_with(self, label, source="human", positive=True, min_confidence=None, split=None) -> np.ndarray:
        """Sorted unique uint64 IDs of the images with a label row for ``label``.

        ``source`` is ``"human"``, ``"machine"``, ``"boxes"`` or an exact Source value; ``positive`` keeps rows
        with confidence > 0 (False: confidence 0, the verified negatives; None: either).
        """
        code = self.label_code(label)
        self._check_open()
        store = self._store
        image_ids = store.images["ids"]
        human = store.tables.get("human_labels")
        if source == "human" and positive is True and min_confidence is None and human is not None and "positive_images" in human.entry:
            spec = human.entry["positive_images"]
            offsets = np.frombuffer(store.container.raw(spec["offsets"]), np.uint32)
            if code + 1 >= len(offsets):
                return np.zeros(0, np.uint64)
            lo, hi = int(offsets[code]), int(offsets[code + 1])
            images = C.ints_range(store.container, spec["images"], int(offsets[-1]), lo, hi, "positive images")
            if len(images) and (int(images.min()) < 0 or int(images.max()) >= len(image_ids)):
                raise FormatError("positive images outside the image index", path=self.path)
        else:
            images = self._scan_images(code, source, positive, min_confidence)
        if split is not None:
            images = images[store.images["split"][images] == self._split_code(split)]
        return image_ids[images]

    def _scan_images(self, code, source, positive, min_confidence) -> np.ndarray:
        names = {"human": ["human_labels"], "machine": ["machine_labels"], "boxes": ["boxes"]}.get(source, [*_LABEL_TABLES, "boxes"])
        exact = source not in ("human", "machine", "boxes", None)
        if exact and source not in self.sources:
            raise ValueError(f"unknown source {source!r}; expected 'human', 'machine', 'boxes' or one of {self.sources}")
        found = []
        c = self._store.container
        for name in names:
            t = self._store.tables.get(name)
            if t is None or "image_rows" not in t.entry or "LabelName" not in t.columns:
                continue
            want_source = -1
            if exact:
                entry = t.columns.get("Source")
                if entry is None or entry["encoding"] != "dict" or source not in entry["values"]:
                    continue
                want_source = entry["values"].index(source)
            columns = {n: _lookup.Column(c, t.columns[n], t.rows) if n in t.columns else None for n in ("LabelName", "Confidence", "Source")}
            offsets = _lookup.Offsets(c, t.entry["image_rows"], self._images.n + 1, t.lookup_rows)
            found.append(
                _lookup.images_matching(
                    offsets, columns["LabelName"], columns["Confidence"], columns["Source"], code, want_source,
                    -1 if positive is None else int(bool(positive)), _lookup.threshold_of(min_confidence),
                )
            )
        if not found:
            return np.zeros(0, np.int64)
        if len(found) == 1:
            return found[0]  # sorted and unique already
        merged = np.sort(np.concatenate(found))  # (np.unique hashes: many times slower on millions of ints)
        return merged[np.concatenate(([True], merged[1:] != merged[:-1]))] if len(merged) else merged

    def class_counts(self, table: str = "boxes"):
        """Rows per label, split and source of ``table`` (``boxes``, ``human_labels`` or ``machine_labels``), as a
        pandas DataFrame with columns ``LabelName``, ``split``, ``Source`` and ``count``."""
        import pandas as pd

        self._check_open()
        t = self._store.tables.get(table)
        if t is None or "image_rows" not in t.entry:
            raise KeyError(f"no table {table!r} with image rows; expected one of {[n for n, x in self._store.tables.items() if 'image_rows' in x.entry]}")
        n = t.lookup_rows
        c = self._store.container
        # Decoded here, not through the table view, so the Release keeps nothing of them.
        codes = C.decode(c, t.columns["LabelName"], t.rows, vocabulary_size=len(self.mids)).values[:n]
        offsets = t.image_rows()
        split = self._store.images["split"][np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))]
        split = np.minimum(split, len(self.splits))  # unknown (255) counts as one more split
        src_col = C.decode(c, t.columns["Source"], t.rows) if "Source" in t.columns else None
        dictionary = src_col.dictionary if src_col is not None else [None]
        n_src, n_split = max(len(dictionary), 1), len(self.splits) + 1
        key = codes.astype(np.int64) * (n_split * n_src) + split.astype(np.int64) * n_src
        if src_col is not None:
            key += src_col.values[:n]
        counts = np.bincount(key, minlength=len(self.mids) * n_split * n_src) if n else np.zeros(0, np.int64)
        present = np.flatnonzero(counts)
        mids, splits = self.mids, self.splits
        return pd.DataFrame(
            {
                "LabelName": [mids[k] for k in (present // (n_split * n_src)).tolist()],
                "split": [splits[s] if s < len(splits) else None for s in ((present // n_src) % n_split).tolist()],
                "Source": [dictionary[s] for s in (present % n_src).tolist()],
                "count": counts[present],
            }
        )

    # ---- index-based access ------------------------------------------------------------------

    def image_ids(self, split=None) -> np.ndarray:
        """Every image's uint64 ID, sorted (a zero-copy view when ``split`` is None)."""
        self._check_open()
        ids = self._store.images["ids"]
        if split is None:
            return ids
        return ids[self._store.images["split"] == self._split_code(split)]

    def __len__(self) -> int:
        self._check_open()
        return self._store.directory["images"]["count"]

    def __contains__(self, image_id) -> bool:
        self._check_open()
        try:
            return self._images.index(image_id) >= 0
        except (ValueError, TypeError):
            return False

    def split_of(self, image_id) -> str | None:
        """The split of an image (None when unknown)."""
        index = self._images.index(image_id)
        if index < 0:
            raise KeyError(f"image {_lookup.parse_id(image_id):016x} is in no table of this release")
        code = int(self._store.images["split"][index])
        return self.splits[code] if code < len(self.splits) else None

    # ---- batches -----------------------------------------------------------------------------

    def _id_array(self, ids) -> np.ndarray:
        if isinstance(ids, np.ndarray) and ids.dtype.kind in "ui":
            if ids.dtype.kind == "i" and len(ids) and ids.min() < 0:
                from oicore.errors import InvalidImageIDError

                raise InvalidImageIDError("negative image ID in the batch")
            return np.ascontiguousarray(ids, dtype=np.uint64)
        return np.fromiter((_lookup.parse_id(x) for x in ids), dtype=np.uint64)

    def labels_many(self, ids, source=None, min_confidence=None, missing: str = "raise") -> LabelsBatch:
        """Labels of many images at once (ragged). Unknown IDs raise ``KeyError`` naming the ID and its index,
        unless ``missing="empty"``."""
        arr = self._id_array(ids)
        offsets, label, conf, src = self._labels_lookup().labels_many(arr, source, min_confidence, missing)
        return LabelsBatch(offsets, label, conf, src)

    def boxes_for_images(self, ids, missing: str = "raise") -> BoxesBatch:
        """Boxes of many images at once (ragged)."""
        arr = self._id_array(ids)
        offsets, boxes = self._boxes_lookup().for_images(arr, missing)
        return BoxesBatch(offsets, boxes)

    def label_matrix(self, ids, vocabulary="trainable", *, mode="multi_hot", source="human", min_confidence=0.5, expand=False, dtype=np.int8):
        """A (len(ids), len(vocabulary)) array of labels.

        ``multi_hot``: 1 positive, 0 otherwise. ``ternary``: 1 positive, 0 verified negative, −1 unknown. Human
        rows override machine rows and positives override negatives. A positive has confidence ≥ ``min_confidence``
        (None: above 0). ``vocabulary`` is a class-list name or a list of MIDs. ``expand`` adds ancestors of
        positives and descendants of negatives (the hierarchy).
        """
        if mode not in ("multi_hot", "ternary"):
            raise ValueError(f"mode must be 'multi_hot' or 'ternary', got {mode!r}")
        mids, column = self._vocabulary_columns(vocabulary)
        source = None if source in (None, "all") else source
        arr = self._id_array(ids)
        # Positives: confidence >= min_confidence, compared exactly (in double precision, as labels() does);
        # without one, confidence > 0 (the smallest double above zero), so a verified negative stays one.
        if min_confidence is None:
            min_confidence = float(np.nextafter(0.0, 1.0))
        pos = self.labels_many(arr, source=source, min_confidence=min_confidence)
        every = self.labels_many(arr, source=source)
        neg_rows = every.confidence == 0  # exact in float32 too
        n = len(every)
        out = np.full((n, len(mids)), -1 if mode == "ternary" else 0, dtype=dtype)
        row_pos = np.repeat(np.arange(n), np.diff(pos.offsets))
        row_all = np.repeat(np.arange(n), np.diff(every.offsets))
        labels = np.concatenate([pos.label, every.label[neg_rows]]).astype(np.int64)
        row_of = np.concatenate([row_pos, row_all[neg_rows]])
        # Which rows came from a human table (by table, not by Source text, which both kinds may share): an
        # image's human rows come first in its slice.
        human_pos = self._from_human_tables(arr, pos, row_pos, source, min_confidence)
        human_all = self._from_human_tables(arr, every, row_all, source, None)
        human = np.concatenate([human_pos, human_all[neg_rows]])
        positive = np.r_[np.ones(len(pos.label), bool), np.zeros(int(neg_rows.sum()), bool)]
        negative = ~positive
        if expand:
            labels, row_of, positive, negative, human = self._expand(labels, row_of, positive, negative, human)
        cols = column[labels]
        ok = cols >= 0
        # Apply in increasing priority: machine negatives, machine positives, human negatives, human positives.
        for is_human in (False, True):
            for value, mask in ((0, negative), (1, positive)):
                m = ok & mask & (human == is_human)
                if mode == "multi_hot" and value == 0:
                    if is_human:  # a human negative overrides a machine positive
                        out[row_of[m], cols[m]] = 0
                    continue
                out[row_of[m], cols[m]] = value
        return out

    def _vocabulary_columns(self, vocabulary) -> tuple[list[str], np.ndarray]:
        """A vocabulary's MIDs and, per release code, its column (-1: not in it); kept per vocabulary, since
        training code asks for the same one every batch."""
        key = ("vocabulary", vocabulary if isinstance(vocabulary, str) else tuple(vocabulary))
        found = self._cache.get(key)
        if found is None:
            mids = self.classes.lists[vocabulary] if isinstance(vocabulary, str) else list(vocabulary)
            column = np.full(len(self.mids), -1, np.int64)
            for j, mid in enumerate(mids):
                code = self.classes.code_of_mid(mid)
                if code is None:
                    raise KeyError(f"{mid!r} is not a label of this release")
                if column[code] >= 0:  # one column per label: a second would stay empty
                    raise ValueError(f"the vocabulary lists {mid!r} twice (columns {column[code]} and {j})")
                column[code] = j
            column.flags.writeable = False
            found = (mids, column)
            # In the bounded cache with the rest: a loop over many ad-hoc vocabularies cannot grow it.
            self._cache.put(key, found, column.nbytes + _VOCABULARY_ENTRY_BYTES * len(mids) + 200)
        return found

    def _from_human_tables(self, arr, batch: "LabelsBatch", row_image, source, min_confidence) -> np.ndarray:
        """Per row of ``batch`` (``labels_many(arr, source, min_confidence)``), whether it came from a human
        table: each image's human rows come first, so they are the first ``count`` of its slice, where
        ``count`` is its rows under the same filters in the human tables alone."""
        if source in ("human", "machine"):
            return np.full(len(batch.label), source == "human")
        human = self.labels_many(arr, source="human", min_confidence=min_confidence)
        keep = np.ones(len(human.label), bool) if source is None else human.source == self.sources.index(source)
        image_of = np.repeat(np.arange(len(arr)), np.diff(human.offsets))
        count = np.bincount(image_of[keep], minlength=len(arr))
        return np.arange(len(batch.label)) - batch.offsets[row_image] < count[row_image]

    def _expand(self, labels, row_of, positive, negative, human):
        h = self.hierarchy
        mids = self.mids
        extra = [(labels, row_of, positive, negative, human)]
        add_l, add_r, add_p, add_n, add_h = [], [], [], [], []
        for k in range(len(labels)):
            mid = mids[labels[k]]
            related = h.ancestors(mid) if positive[k] else h.descendants(mid) if negative[k] else ()
            for m in related:
                code = self.classes.code_of_mid(m)
                if code is None:
                    continue
                add_l.append(code)
                add_r.append(row_of[k])
                add_p.append(positive[k])
                add_n.append(negative[k])
                add_h.append(human[k])
        if add_l:
            extra.append((np.array(add_l), np.array(add_r), np.array(add_p, bool), np.array(add_n, bool), np.array(add_h, bool)))
        return tuple(np.concatenate([e[i] for e in extra]) for i in range(5))

    # ---- whole tables ------------------------------------------------------------------------

    def table(self, name: str, split=None):
        """A whole table as a ``pyarrow.Table`` with the reader's schema, plus a ``split`` column when
        ``split`` is None."""
        import pyarrow as pa

        from oicore.exporter import part_table

        self._check_open()
        t = self._store.tables.get(name)
        if t is None:
            raise KeyError(f"no table {name!r}; this release has {', '.join(self._store.tables)}")
        if name == "hierarchy":
            return self.hierarchy.table()
        want = None if split is None else self.splits[self._split_code(split)]
        pieces = []
        for k, part in enumerate(t.parts):
            source = self._store.sources[part["source"]]
            if source.get("export_only") or "json_segment" in part:
                continue
            if want is not None and source.get("split") != want:
                continue
            piece = part_table(self._store, t, k, image_id="uint64")
            if split is None:
                piece = piece.append_column("split", pa.array([source.get("split")] * piece.num_rows, pa.string()))
            pieces.append(piece)
        if not pieces:
            raise KeyError(f"table {name!r} has no rows for split {split!r}")
        return pa.concat_tables(pieces, promote_options="default") if len(pieces) > 1 else pieces[0]


def _builder(release: Release, method: str):
    """``build(lookup)`` for a deferred lookup: the Release's ``method`` sets it up, once, on an open Release
    and under its lock; the Release is reached through a weak reference (the lookup holds no reference to it
    until it is set up, as before)."""
    ref = weakref.ref(release)

    def build(lookup) -> None:
        owner = ref()
        if owner is None:
            raise ValueError("operation on a closed Release")
        owner._check_open()
        with owner._lock:
            if not lookup.ready:
                getattr(owner, method)(lookup)

    return build


def _reopen(path, uuid, size, verify, cache_bytes):
    release = Release(path, verify=verify, cache_bytes=cache_bytes)
    if release.uuid != uuid or release.size != size:
        release.close()
        raise FormatError(f"the file was replaced since it was pickled (uuid {uuid}, {size} bytes expected)", path=path)
    return release


def _after_fork_in_child():
    # Locks held by other threads of the parent are never released in the child: start fresh.
    for release in list(_open_releases):
        release._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
