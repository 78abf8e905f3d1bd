"""Reading an ``.oic`` file's tables (FORMAT.md, "Tables"): the layer under export, info, verify and lookups.

``Store`` wraps a checked ``Container``: the release vocabulary, the image
index, and each table's columns, decoded on first use. Raw arrays are views
into the memory map.
"""

from __future__ import annotations

import numpy as np

from oicore import columns as C
from oicore.errors import FormatError
from oicore.format import Container

__all__ = ["Store", "TableView"]


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
        self.tables = {name: TableView(self, name, entry) for name, entry in d["tables"].items()}
        self._vocab = None
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

    def mids(self) -> list[str]:
        offsets, data = self.vocabulary
        raw = data.tobytes()
        return [raw[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]

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

    def column(self, name: str) -> C.Decoded:
        col = self._decoded.get(name)
        if col is None:
            entry = self.columns[name]
            vocab = self.store.directory["vocabulary"]["count"] if entry.get("encoding") == "code" else None
            col = self._decoded[name] = C.decode(self.store.container, entry, self.rows, vocabulary_size=vocab)
        return col

    def offsets(self, key: str, count: int, what: str) -> np.ndarray:
        """A monotone offsets array of ``count`` entries ending within this table's rows."""
        spec = self.entry[key]
        arr = C.raw_array(self.store.container, spec["segment"], spec["dtype"], count, f"{self.name} {what}")
        if count and (arr[0] != 0 or (np.diff(arr.astype(np.int64)) < 0).any() or int(arr[-1]) > self.rows):
            self.store.fail(f"table {self.name!r}: {what} are not monotone within its rows", spec["segment"])
        return arr

    def image_rows(self) -> np.ndarray:
        """Offsets (n_images + 1): the lookup rows of image i are ``[o[i], o[i+1])``."""
        n = self.store.directory["images"]["count"]
        return self.offsets("image_rows", n + 1, "image row offsets")

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

    def row_image_ids(self, positions: np.ndarray) -> np.ndarray:
        """The image ID of each physical row in ``positions`` (lookup rows only)."""
        offsets = self.image_rows().astype(np.int64)
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
