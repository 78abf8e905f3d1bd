"""A slow, pure-Python reader of ``.oic`` files, written from FORMAT.md alone.

It imports nothing from oicore: ``struct`` and ``json`` for the structures, a table-driven CRC-32C in Python,
and ``zstandard`` for the frames. ``tests/test_format_spec.py`` checks that it decodes what oicore's fast
reader decodes and that its export (FORMAT.md, "Export") gives the source files back byte for byte. Where
FORMAT.md leaves a choice open, the choice made here is marked "FORMAT.md does not say".
"""

from __future__ import annotations

import json
import math
import re
import struct

import zstandard

__all__ = ["crc32c", "SpecError", "OicFile"]

# ---- conventions ------------------------------------------------------------------------------------------

MAGIC = bytes.fromhex("89 4F 49 43 0D 0A 1A 0A")
END_MAGIC = bytes.fromhex("0A 1A 0A 0D 43 49 4F 89")
HEADER_SIZE = FOOTER_SIZE = 64
ALIGNMENT = 64
BLOCK = 1_048_576
KNOWN_MAJOR = 0
DTYPES = {"u1": "B", "u2": "H", "u4": "I", "u8": "Q", "i1": "b", "i2": "h", "i4": "i", "i8": "q"}
SPLITS = ["train", "validation", "test"]


def _crc_tables():
    poly = 0x82F63B78  # 0x1EDC6F41 reflected
    t0 = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t0.append(c)
    tables = [t0]
    for _ in range(7):  # slicing-by-8: table k advances a byte by k more zero bytes
        prev = tables[-1]
        tables.append([(prev[n] >> 8) ^ t0[prev[n] & 0xFF] for n in range(256)])
    return tables


_T = _crc_tables()


def crc32c(data, crc: int = 0) -> int:
    """CRC-32C (Castagnoli): reflected, initial value and final XOR 0xFFFFFFFF."""
    t0, t1, t2, t3, t4, t5, t6, t7 = _T
    crc ^= 0xFFFFFFFF
    data = memoryview(data).cast("B")
    n = len(data) - len(data) % 8
    if n:
        for (w,) in struct.iter_unpack("<Q", data[:n]):
            x = crc ^ (w & 0xFFFFFFFF)
            hi = w >> 32
            crc = (t7[x & 0xFF] ^ t6[(x >> 8) & 0xFF] ^ t5[(x >> 16) & 0xFF] ^ t4[x >> 24]
                   ^ t3[hi & 0xFF] ^ t2[(hi >> 8) & 0xFF] ^ t1[(hi >> 16) & 0xFF] ^ t0[hi >> 24])
    for b in data[n:]:
        crc = t0[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


class SpecError(ValueError):
    """The file breaks a rule of FORMAT.md (the message says which)."""


def _need(cond, message):
    if not cond:
        raise SpecError(message)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


# ---- the container ----------------------------------------------------------------------------------------


class OicFile:
    """An ``.oic`` file read and checked as FORMAT.md says a reader must ("What a reader must check")."""

    def __init__(self, data: bytes):
        self.data = bytes(data)
        d = self.data
        size = len(d)
        # 1. size, magics, header and footer CRCs
        _need(size >= 128, "the file is shorter than 128 bytes")
        _need(d[:8] == MAGIC, "bad magic")
        _need(d[-8:] == END_MAGIC, "bad end magic")
        _need(crc32c(d[:60]) == struct.unpack_from("<I", d, 60)[0], "header CRC")
        fo = size - FOOTER_SIZE
        _need(crc32c(d[fo : fo + 52]) == struct.unpack_from("<I", d, fo + 52)[0], "footer CRC")
        major, minor, flags = struct.unpack_from("<HHI", d, 8)
        self.uuid = d[16:32]
        (file_length,) = struct.unpack_from("<Q", d, 32)
        d_off, d_len, d_crc, fflags = struct.unpack_from("<QQII", d, fo)
        f_uuid = d[fo + 24 : fo + 40]
        (f_length,) = struct.unpack_from("<Q", d, fo + 40)
        # 2. lengths and uuids
        _need(file_length == size and f_length == size, "file_length differs from the file's size")
        _need(f_uuid == self.uuid, "the uuids differ")
        # 3. major, reserved fields and flags
        _need(major == KNOWN_MAJOR, f"unknown major version {major}")
        _need(flags == 0 and fflags == 0, "reserved flags set")
        _need(d[40:60] == bytes(20) and d[fo + 48 : fo + 52] == bytes(4), "reserved bytes set")
        self.version = (major, minor)
        # 4. the directory
        _need(d_off % ALIGNMENT == 0 and HEADER_SIZE <= d_off and d_off + d_len <= fo, "directory outside the body")
        _need(crc32c(d[d_off : d_off + d_len]) == d_crc, "directory CRC")
        _need(d[d_off + d_len : fo] == bytes(fo - d_off - d_len), "padding after the directory")
        directory = json.loads(d[d_off : d_off + d_len].decode("utf-8"))
        _need(isinstance(directory, dict) and directory.get("format") == [major, minor], "directory format")
        self.directory = directory
        # 5. the block table and the segments
        bt = directory["block_table"]
        bt_off, count = bt["offset"], bt["count"]
        _need(bt_off % ALIGNMENT == 0 and bt_off + 12 * count <= d_off, "block table outside the body")
        _need(crc32c(d[bt_off : bt_off + 12 * count]) == bt["crc32c"], "block table CRC")
        _need(d[bt_off + 12 * count : d_off] == bytes(d_off - bt_off - 12 * count), "padding before the directory")
        self.blocks = [struct.unpack_from("<III", d, bt_off + 12 * i) for i in range(count)]
        self.segments = directory["segments"]
        end, next_block = HEADER_SIZE, 0
        for i, seg in enumerate(self.segments):
            off, length, k0, k = seg["offset"], seg["length"], seg["first_block"], seg["block_count"]
            _need(off % ALIGNMENT == 0 and off >= end and off + length <= bt_off, f"segment {i} placement")
            _need(d[end:off] == bytes(off - end), f"padding before segment {i}")
            _need(k0 == next_block and k0 + k <= count, f"segment {i} blocks do not follow")
            blocks = self.blocks[k0 : k0 + k]
            _need(sum(b[0] for b in blocks) == length, f"segment {i} block lengths")
            _need(all(b[0] <= BLOCK and b[1] <= BLOCK for b in blocks), f"segment {i} block over 1 MiB")
            if seg["codec"] == "raw":
                _need(all(b[0] == b[1] for b in blocks), f"raw segment {i} raw != stored")
                _need(all(b[0] == BLOCK for b in blocks[:-1]), f"raw segment {i} not cut in 1 MiB blocks")
            end, next_block = off + length, k0 + k
        _need(next_block == count, "blocks of no segment")
        _need(d[end:bt_off] == bytes(bt_off - end), "padding before the block table")
        self._data_cache: dict[int, bytes] = {}

    # ---- segments ---------------------------------------------------------------------------------------

    def frames(self, i: int) -> list[bytes]:
        """The blocks of segment ``i``, each CRC checked; zstd blocks decompressed."""
        seg = self.segments[i]
        out, pos = [], seg["offset"]
        for stored, raw, crc in self.blocks[seg["first_block"] : seg["first_block"] + seg["block_count"]]:
            block = self.data[pos : pos + stored]
            _need(crc32c(block) == crc, f"segment {i}: block CRC")
            if seg["codec"] == "zstd":
                block = zstandard.ZstdDecompressor().decompress(block, max_output_size=BLOCK)
            elif seg["codec"] != "raw":
                raise SpecError(f"segment {i}: unknown codec {seg['codec']!r}")
            _need(len(block) == raw, f"segment {i}: raw length")
            out.append(block)
            pos += stored
        return out

    def segment(self, i: int) -> bytes:
        if i not in self._data_cache:
            self._data_cache[i] = b"".join(self.frames(i))
        return self._data_cache[i]

    def array(self, i: int, dtype: str, count: int | None = None) -> list[int]:
        data = self.segment(i)
        size = struct.calcsize("<" + DTYPES[dtype])
        if count is None:
            _need(len(data) % size == 0, f"segment {i}: not a whole number of {dtype}")
            count = len(data) // size
        _need(len(data) == count * size, f"segment {i}: expected {count} × {dtype}, got {len(data)} bytes")
        return list(struct.unpack(f"<{count}{DTYPES[dtype]}", data))

    def offsets(self, i: int, dtype: str, count: int, limit: int) -> list[int]:
        o = self.array(i, dtype, count)
        _need(all(a <= b for a, b in zip(o, o[1:])) and (not o or o[-1] <= limit), f"segment {i}: offsets")
        return o

    def blocked_offsets(self, obj: dict, count: int, limit: int) -> list[int]:
        """Blocked offsets: offset i is base[i // block] + local[i]."""
        block = obj.get("block")
        _need(isinstance(block, int) and 1 <= block <= 65536 and block & (block - 1) == 0, "offsets block")
        base = self.raw_ints(obj["base"], -(-count // block), "offsets base")
        local = self.raw_ints(obj["local"], count, "offsets local", allow_stride=True)
        o = [base[i // block] + local[i] for i in range(count)]
        _need(all(a <= b for a, b in zip(o, o[1:])) and (not o or o[-1] <= limit), "blocked offsets")
        return o

    def raw_ints(self, obj, n: int, what: str, *, allow_stride: bool = False) -> list[int]:
        """An ints object stored raw, without a reference (columns and indexes; columns may interleave)."""
        _need(isinstance(obj, dict) and "ref" not in obj, f"{what}: not a plain ints object")
        _need(obj.get("segment") is None or self.segments[obj["segment"]]["codec"] == "raw", f"{what}: not raw")
        return self.ints(obj, n, what, allow_ref=False, allow_stride=allow_stride)

    def integers(self, name: str, col: dict, rows: int) -> list[int]:
        """The integers of a code, dict, decimal or int column: packed ``ints`` or a raw ``segment``."""
        if "ints" in col:
            values = self.raw_ints(col["ints"], rows, name, allow_stride=True)
            lo, hi = {"u1": (0, 255), "u2": (0, 65535), "u4": (0, 2**32 - 1), "u8": (0, 2**64 - 1), "i1": (-128, 127),
                      "i2": (-(2**15), 2**15 - 1), "i4": (-(2**31), 2**31 - 1), "i8": (-(2**63), 2**63 - 1)}[col["dtype"]]
            _need(all(lo <= v <= hi for v in values), f"{name}: a value outside its dtype")
            return values
        return self.array(col["segment"], col["dtype"], rows)

    # ---- release-wide structures ------------------------------------------------------------------------

    @property
    def provenance(self) -> dict:
        return self.directory["provenance"]

    def vocabulary(self) -> list[str]:
        if "_vocabulary" in self.__dict__:
            return self._vocabulary
        v = self.directory["vocabulary"]
        data = self.segment(v["data"])
        o = self.offsets(v["offsets"], "u4", v["count"] + 1, len(data))
        self._vocabulary = [data[o[k] : o[k + 1]].decode("utf-8") for k in range(v["count"])]
        return self._vocabulary

    def images(self) -> dict:
        if "_images" in self.__dict__:
            return self._images
        e = self.directory["images"]
        n = e["count"]
        ids = self.array(e["ids"], "u8", n)
        _need(all(a < b for a, b in zip(ids, ids[1:])), "image IDs not sorted and unique")
        bits = e["bucket_bits"]
        _need(1 <= bits <= 24, "bucket_bits")
        buckets = self.array(e["buckets"], e.get("buckets_dtype", "u4"), (1 << bits) + 1)
        # buckets[t]..buckets[t+1] are the indexes of the IDs whose top b bits are t
        for t in range(1 << bits):
            for idx in range(buckets[t], buckets[t + 1]):
                _need(ids[idx] >> (64 - bits) == t, "bucket table")
        _need(buckets[0] == 0 and buckets[-1] == n, "bucket table ends")
        split = self.array(e["split"], "u1", n)
        self._images = {"ids": ids, "buckets": buckets, "bits": bits, "split": split, "splits": e.get("splits", SPLITS)}
        return self._images

    # ---- tables -----------------------------------------------------------------------------------------

    def table_names(self) -> list[str]:
        return list(self.directory["tables"])

    def _row_images(self, t: dict) -> list[int] | None:
        """Each physical row's ImageID (image tables): from image_rows, then export_ids."""
        if "image_rows" not in t:
            return None
        im = self.images()
        n = len(im["ids"])
        o = self.blocked_offsets(t["image_rows"], n + 1, t["rows"])
        lookup = t.get("lookup_rows", t["rows"])
        _need(o[-1] == lookup, "image_rows end at lookup_rows")
        out = []
        for i in range(n):
            out.extend([im["ids"][i]] * (o[i + 1] - o[i]))
        if lookup < t["rows"]:
            extra = self.segment(t["export_ids"])
            _need(len(extra) == 8 * (t["rows"] - lookup), "export_ids length")
            out.extend(struct.unpack(f"<{t['rows'] - lookup}Q", extra))
        return out

    def column(self, name: str, col: dict, rows: int, row_images=None, *, raw: bool = False) -> list:
        """A column's values per physical row: int (ImageID), str, float, int or None (null). With ``raw``,
        decimals are their integers ``k``."""
        enc = col["encoding"]
        if enc == "image":
            _need(row_images is not None and len(row_images) == rows, f"{name}: no image rows")
            return list(row_images)
        if enc == "code":
            vocab = self.vocabulary()
            codes = self.integers(name, col, rows)
            _need(all(c < len(vocab) for c in codes), f"{name}: code outside the vocabulary")
            return [vocab[c] for c in codes]
        if enc == "dict":
            values = col["values"]
            if col.get("segment") is None and "ints" not in col:
                _need(len(values) == 1, f"{name}: dict without a segment has {len(values)} values")
                return [values[0]] * rows
            codes = self.integers(name, col, rows)
            _need(all(c < len(values) for c in codes), f"{name}: code outside its values")
            return [values[c] for c in codes]
        if enc in ("decimal", "int", "float64"):
            if enc == "float64":
                stored = self.segment(col["segment"])
                _need(len(stored) == 8 * rows, f"{name}: float64 length")
                values = list(struct.unpack(f"<{rows}d", stored))
            else:
                values = self.integers(name, col, rows)
            if enc == "decimal" and not raw:
                scale = 10.0 ** col["scale"]
                values = [k / scale for k in values]
            nulls = col.get("nulls")
            if nulls is not None:
                bitmap = self.segment(nulls)
                _need(len(bitmap) == math.ceil(rows / 8), f"{name}: nulls length")
                for r in range(rows):
                    if bitmap[r // 8] >> (r % 8) & 1:
                        _need(values[r] == 0, f"{name}: a null row stores {values[r]}")
                        values[r] = None
            return values
        if enc == "strings":
            frames = self.frames(col["segment"])
            _need(len(frames) == len(col["block_rows"]), f"{name}: block_rows")
            out = []
            for frame, n in zip(frames, col["block_rows"]):
                (m,) = struct.unpack_from("<I", frame, 0)
                _need(m == n, f"{name}: a frame holds {m} rows, block_rows says {n}")
                o = struct.unpack_from(f"<{n + 1}I", frame, 4)
                body = frame[4 * (n + 2) :]
                _need(o[0] == 0 and all(a <= b for a, b in zip(o, o[1:])) and o[-1] == len(body), f"{name}: frame offsets")
                out.extend(body[o[k] : o[k + 1]].decode("utf-8") for k in range(n))
            _need(len(out) == rows, f"{name}: {len(out)} strings for {rows} rows")
            return out
        if enc in ("md5", "text_dict", "template"):
            _need(col.get("rows") == rows, f"{name}: rows {col.get('rows')!r}, the table has {rows}")
            return [t.decode("utf-8") for t in getattr(self, "_text_" + enc)(name, col, rows)]
        raise SpecError(f"{name}: unknown encoding {enc!r}")

    # ---- text encodings (FORMAT.md, "Text encodings") ---------------------------------------------------

    def ints(self, obj, n: int, what: str, *, allow_ref: bool = True, allow_stride: bool = False) -> list[int]:
        """An ints object's ``n`` values: ``base + p_i`` (+ ``r_i`` with a ``ref``); value ``i``'s bits start at
        ``i * stride + shift`` (stride ``w`` and shift 0 unless a column's object says otherwise)."""
        _need(isinstance(obj, dict), f"{what}: not an ints object")
        w, base, seg = obj.get("bits"), obj.get("base"), obj.get("segment")
        _need(_is_int(w) and 0 <= w <= 56, f"{what}: bits {w!r}")
        _need(_is_int(base) and abs(base) < 2**62, f"{what}: base {base!r}")
        s, h = obj.get("stride", w), obj.get("shift", 0)
        if "stride" in obj or "shift" in obj:
            _need(allow_stride and w > 0, f"{what}: a stride where none may be")
            _need(_is_int(s) and _is_int(h) and h >= 0 and w + h <= s <= 64, f"{what}: stride {s!r}, shift {h!r}")
            _need(self.segments[seg]["codec"] == "raw", f"{what}: a stride on a zstd segment")
        if w == 0:
            _need(seg is None, f"{what}: a segment for 0 bits")
            packed = [0] * n
        else:
            _need(_is_int(seg) and 0 <= seg < len(self.segments), f"{what}: segment {seg!r}")
            if self.segments[seg]["codec"] == "raw":
                stream = self.segment(seg)
                _need(len(stream) == math.ceil(n * s / 8), f"{what}: {len(stream)} bytes for {n} × {s} bits")
            else:
                k = obj.get("block_rows")
                _need(_is_int(k) and k > 0 and k % 8 == 0, f"{what}: block_rows {k!r}")
                frames = self.frames(seg)
                _need(len(frames) == math.ceil(n / k), f"{what}: {len(frames)} frames for {n} values of {k}")
                for j, frame in enumerate(frames):
                    _need(len(frame) == math.ceil(min(k, n - j * k) * w / 8), f"{what}: frame {j} length")
                stream = b"".join(frames)
            mask = (1 << w) - 1
            width = (w + 7) // 8 + 1
            packed = []
            for i in range(n):
                bit = i * s + h
                packed.append(int.from_bytes(stream[bit >> 3 : (bit >> 3) + width], "little") >> (bit & 7) & mask)
            _need(int.from_bytes(stream[(n * s) >> 3 :], "little") >> ((n * s) & 7) == 0, f"{what}: unused bits set")
        ref = obj.get("ref")
        if ref is None:
            return [base + v for v in packed]
        _need(allow_ref and isinstance(ref, dict), f"{what}: a ref where none may be")
        r = self.ints(ref.get("ints"), n, what + " ref", allow_ref=False)
        if "map" in ref:
            count = ref.get("count")
            _need(_is_int(count) and count >= 0, f"{what}: ref count {count!r}")
            table = self.ints(ref["map"], count, what + " map", allow_ref=False)
            _need(all(0 <= x < count for x in r), f"{what}: a referenced value outside its map")
            r = [table[x] for x in r]
        return [base + v + x for v, x in zip(packed, r)]

    def dictionary(self, obj, what: str) -> list[bytes]:
        _need(isinstance(obj, dict), f"{what}: not a dictionary object")
        count, seg, block_rows = obj.get("count"), obj.get("segment"), obj.get("block_rows")
        _need(isinstance(block_rows, list) and all(_is_int(x) and x >= 0 for x in block_rows), f"{what}: block_rows")
        _need(count == sum(block_rows), f"{what}: count {count!r} is not the sum of block_rows")
        if count == 0:
            _need(seg is None, f"{what}: a segment for no entries")
            return []
        _need(_is_int(seg) and 0 <= seg < len(self.segments) and self.segments[seg]["codec"] == "zstd", f"{what}: segment")
        frames = self.frames(seg)
        _need(len(frames) == len(block_rows), f"{what}: {len(frames)} frames, {len(block_rows)} block_rows")
        entries = []
        for frame, m in zip(frames, block_rows):
            _need(frame.count(0) == m and frame.endswith(b"\0"), f"{what}: a frame of {m} entries")
            entries.extend(frame.split(b"\0")[:-1])
        _need(all(a < b for a, b in zip(entries, entries[1:])), f"{what}: entries not sorted and distinct")
        return entries

    def text_exceptions(self, obj, rows: int, what: str) -> dict[int, bytes]:
        if obj is None:
            return {}
        _need(isinstance(obj, dict), f"{what}: not an exceptions object")
        block_rows = obj.get("block_rows")
        _need(isinstance(block_rows, list) and all(_is_int(x) and x >= 0 for x in block_rows), f"{what}: block_rows")
        m = sum(block_rows)
        rows_of = self.ints(obj.get("rows"), m, what + " rows", allow_ref=False)
        _need(all(a < b for a, b in zip(rows_of, rows_of[1:])) and all(0 <= r < rows for r in rows_of), f"{what}: rows")
        frames = self.frames(obj["segment"]) if m else []
        _need(len(frames) == len(block_rows) or not m, f"{what}: frames")
        texts = []
        for frame, n in zip(frames, block_rows):
            (k,) = struct.unpack_from("<I", frame, 0)
            _need(k == n, f"{what}: a frame of {k} texts, block_rows says {n}")
            o = struct.unpack_from(f"<{n + 1}I", frame, 4)
            body = frame[4 * (n + 2) :]
            _need(o[0] == 0 and all(a <= b for a, b in zip(o, o[1:])) and o[-1] == len(body), f"{what}: offsets")
            texts.extend(body[o[j] : o[j + 1]] for j in range(n))
        return dict(zip(rows_of, texts))

    def _text_md5(self, name, col, rows) -> list[bytes]:
        import base64

        exc = self.text_exceptions(col.get("exceptions"), rows, name + " exceptions")
        raw = self.segment(col["segment"])
        _need(self.segments[col["segment"]]["codec"] == "raw" and len(raw) == 16 * rows, f"{name}: md5 segment")
        return [exc[r] if r in exc else base64.b64encode(raw[16 * r : 16 * r + 16]) for r in range(rows)]

    def _text_text_dict(self, name, col, rows) -> list[bytes]:
        entries = self.dictionary(col.get("dictionary"), name + " dictionary")
        codes = self.ints(col.get("codes"), rows, name + " codes")
        exc = self.text_exceptions(col.get("exceptions"), rows, name + " exceptions")
        _need(all(0 <= c <= len(entries) for c in codes), f"{name}: a code outside the dictionary")
        _need({r for r, c in enumerate(codes) if c == len(entries)} == set(exc), f"{name}: exception rows")
        return [exc[r] if c == len(entries) else entries[c] for r, c in enumerate(codes)]

    def _text_template(self, name, col, rows) -> list[bytes]:
        templates, fields = col.get("templates"), col.get("fields")
        _need(isinstance(templates, list) and 0 < len(templates) < 65536, f"{name}: templates")
        _need(isinstance(fields, list) and len(fields) <= 64, f"{name}: fields")
        for t in templates:
            _need(isinstance(t, list) and all(isinstance(x, str) or (_is_int(x) and 0 <= x < len(fields)) for x in t), f"{name}: template items")
            used = [x for x in t if _is_int(x)]
            _need(len(used) == len(set(used)), f"{name}: a field twice in one template")
        text_of = []
        values = []
        for f, field in enumerate(fields):
            kind = field.get("kind")
            values.append(self.ints(field.get("ints"), rows, f"{name} field {f}"))
            if kind == "dec":
                text_of.append(lambda v: str(v).encode() if 0 <= v < 10**15 else None)
            elif kind == "hex":
                w = field.get("width")
                _need(_is_int(w) and 1 <= w <= 13, f"{name} field {f}: width {w!r}")
                text_of.append(lambda v, w=w: format(v, f"0{w}x").encode() if 0 <= v < 16**w else None)
            elif kind == "choice":
                options = field.get("values")
                _need(isinstance(options, list) and options and all(isinstance(x, str) for x in options), f"{name} field {f}: values")
                text_of.append(lambda v, o=options: o[v].encode("utf-8") if 0 <= v < len(o) else None)
            elif kind == "dict":
                entries = self.dictionary(field.get("dictionary"), f"{name} field {f} dictionary")
                text_of.append(lambda v, e=entries: e[v] if 0 <= v < len(e) else None)
            else:
                raise SpecError(f"{name} field {f}: unknown kind {kind!r}")
        chosen = self.ints(col.get("template"), rows, name + " template")
        exc = self.text_exceptions(col.get("exceptions"), rows, name + " exceptions")
        _need(all(0 <= t <= len(templates) for t in chosen), f"{name}: a template outside the list")
        _need({r for r, t in enumerate(chosen) if t == len(templates)} == set(exc), f"{name}: exception rows")
        out = []
        for r, t in enumerate(chosen):
            if t == len(templates):
                out.append(exc[r])
                continue
            pieces = []
            for item in templates[t]:
                if isinstance(item, str):
                    pieces.append(item.encode("utf-8"))
                else:
                    text = text_of[item](values[item][r])
                    _need(text is not None, f"{name} row {r}: field {item} value {values[item][r]} outside its kind")
                    pieces.append(text)
            out.append(b"".join(pieces))
        return out

    def table(self, name: str, *, raw: bool = False) -> dict[str, list]:
        """Every column of a table, in physical row order (``raw``: decimals as their integers)."""
        key = (name, raw)
        cache = self.__dict__.setdefault("_tables", {})
        if key not in cache:
            t = self.directory["tables"][name]
            row_images = self._row_images(t)
            cache[key] = {c["name"]: self.column(c["name"], c, t["rows"], row_images, raw=raw) for c in t.get("columns", [])}
        return cache[key]

    def part_positions(self, name: str, k: int) -> list[int]:
        """The physical rows of part ``k``, in its file's order."""
        t = self.directory["tables"][name]
        part = t["parts"][k]
        if "row_part" in t:
            row_part = self.segment(t["row_part"])
            _need(len(row_part) == t["rows"], "row_part length")
            positions = [r for r in range(t["rows"]) if row_part[r] == k]
        else:
            _need(len(t["parts"]) == 1, "several parts without row_part")
            positions = list(range(t["rows"]))
        _need(len(positions) == part["rows"], f"part {k}: {len(positions)} rows, expected {part['rows']}")
        if "file_order" in part:
            order = self.array(part["file_order"], "u4", part["rows"])
            _need(sorted(order) == list(range(part["rows"])), "file_order is not a permutation")
            positions = [positions[j] for j in order]
        return positions

    def part_rows(self, name: str, k: int, *, raw: bool = False) -> list[dict]:
        """Part ``k``'s rows in file order, each a {column: value} of its own columns."""
        table = self.table(name, raw=raw)
        part = self.directory["tables"][name]["parts"][k]
        return [{c: table[c][r] for c in part["columns"]} for r in self.part_positions(name, k)]

    def exceptions(self, part: dict) -> dict[int, bytes]:
        n = part.get("exceptions", 0)
        if not n:
            return {}
        blob = self.segment(part["exception_segment"])
        rows = struct.unpack_from(f"<{n}q", blob, 0)
        lengths = struct.unpack_from(f"<{n}q", blob, 8 * n)
        _need(all(a < b for a, b in zip(rows, rows[1:])), "exception rows not increasing")
        _need(16 * n + sum(lengths) == len(blob), "exception segment length")
        out, pos = {}, 16 * n
        for r, length in zip(rows, lengths):
            out[r] = blob[pos : pos + length]
            pos += length
        return out

    # ---- export -----------------------------------------------------------------------------------------

    def export_part(self, name: str, k: int) -> bytes:
        """The source file of part ``k`` (FORMAT.md, "Export")."""
        t = self.directory["tables"][name]
        part = t["parts"][k]
        if "json_segment" in part:
            return self.segment(part["json_segment"])
        columns = {c["name"]: c for c in t["columns"]}
        positions = self.part_positions(name, k)
        table = self.table(name, raw=True)
        # Fields column by column, then joined row by row (the same bytes, far fewer Python frames).
        fields = []
        for i, c in enumerate(part["columns"]):
            values, col, quote, style = table[c], columns[c], part["quote"][i], part["style"][i]
            digits = (part.get("decimals") or [None] * len(part["columns"]))[i]
            fields.append(render_column([values[r] for r in positions], col, quote, style, digits))
        # FORMAT.md does not say whether exception rows count in file order or physical order: file order.
        raw = self.exceptions(part)
        _need(not raw or max(raw) < len(positions), "exception row past the part's rows")
        term = part["terminator"].encode()
        lines = [b",".join(row) + term for row in zip(*fields)] if fields else [term] * len(positions)
        for j, text in raw.items():
            lines[j] = text
        return part["prefix"].encode("utf-8") + b"".join(lines) + part["suffix"].encode("utf-8")

    def sources(self) -> list[tuple[dict, str, int]]:
        """Every source file: (provenance entry, table name, part index)."""
        found = []
        for name, t in self.directory["tables"].items():
            for k, part in enumerate(t["parts"]):
                found.append((self.provenance["sources"][part["source"]], name, k))
        return sorted(found, key=lambda x: x[0]["name"])


def render_number(value, col: dict, style, digits=None) -> str:
    enc = col["encoding"]
    if enc == "float64":
        return repr(float(value))
    if enc == "int":
        return str(int(value))
    if enc == "image":
        return f"{value:016x}"
    # decimal: the integer k stored for k / 10^e, spelled from k and e exactly
    e = col["scale"]
    k = value
    if (style or "fixed") == "fixed" and digits is not None and digits != e:
        # The part's own number of decimals (FORMAT.md, part key `decimals`).
        k = k * 10 ** (digits - e) if digits > e else k // 10 ** (e - digits)
        e = digits
    sign = "-" if k < 0 else ""
    digits = str(abs(k)).rjust(e + 1, "0")
    whole, frac = digits[: len(digits) - e], digits[len(digits) - e :]
    # FORMAT.md does not say what a null style means for a decimal column: "fixed" here.
    style = style or "fixed"
    if style == "fixed":
        text = whole + ("." + frac if e else "")
    elif style == "trim":
        frac = frac.rstrip("0")
        text = whole + ("." + frac if frac else "")
    elif style == "trim1":
        # FORMAT.md does not say what trim1 does with e = 0 (no point): "1.0" here, as for 1.000.
        frac = frac.rstrip("0") or "0"
        text = whole + "." + frac
    else:
        raise SpecError(f"unknown number style {style!r}")
    return sign + text


def render_column(values: list, col: dict, quote: int, style, digits=None) -> list[bytes]:
    """``render_field`` of every value, with the common cases (text needing no quotes) done in bulk."""
    if col["encoding"] in ("decimal", "int", "float64", "image") or quote != 0:
        return [render_field(v, col, quote, style, digits) for v in values]
    out = [v.encode("utf-8") if v is not None else b"" for v in values]
    for i, data in enumerate(out):
        if _NEEDS_QUOTES.search(data):
            out[i] = b'"' + data.replace(b'"', b'""') + b'"'
    return out


_NEEDS_QUOTES = re.compile(rb'[,"\r\n]')


def render_field(value, col: dict, quote: int, style, digits=None) -> bytes:
    """One field: nulls empty, numbers spelled per ``style``, text quoted per ``quote`` (0 minimal, 1 always)."""
    if value is None:
        # FORMAT.md: "nulls as empty fields"; it does not say whether quote = 1 quotes them: not here.
        return b""
    enc = col["encoding"]
    if enc in ("decimal", "int", "float64", "image"):
        data = render_number(value, col, style, digits).encode()  # digits, '.', '-', 'e', '+': never needs quotes
        return b'"' + data + b'"' if quote == 1 else data
    data = value.encode("utf-8")  # text, whatever its encoding (strings, code, dict, md5, text_dict, template)
    if quote == 1 or (quote == 0 and _NEEDS_QUOTES.search(data)):
        return b'"' + data.replace(b'"', b'""') + b'"'
    return data
