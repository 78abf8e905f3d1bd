"""Column encodings of ``.oic`` tables (FORMAT.md, "Column encodings"): encode at convert, decode on read.

Each encoder takes one column of a table in lookup order (numpy arrays) and a
``ContainerWriter``, writes the column's segments and returns its directory
entry. ``decode`` turns an entry back into a ``Decoded`` column. What lookups
read is stored raw so that it is memory-mapped and shared; text is stored in
zstd frames of about 64 KiB, each holding whole rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from oicore.errors import FormatError

__all__ = ["Records", "strings_range", "column_rows", "store_ints", "ints_array", "ints_range", "blocked_offsets", "column_ints", "take_rows", "slice_rows", "gather_text", "encode_codes", "encode_dict", "encode_ints", "encode_decimal", "encode_float64", "to_decimal", "rescale_decimal", "pack_ints", "encode_strings", "decode", "Decoded", "narrowest"]

# Text blocks: whole rows, about this many raw bytes each (FORMAT.md: 64 KiB to 1 MiB).
STRING_BLOCK = 64 << 10
MAX_SCALE = 9  # decimals with up to 9 digits after the point are stored as integers
# A part's fixed spelling writes at most this many digits after the point (FORMAT.md, "decimals"): k·10^d fits int64.
MAX_FIXED_DECIMALS = 18
_EXACT = 2**53
_PACK_CHUNK = 1 << 20  # values converted to int64 at a time (a multiple of 64)
_SCAN_CHUNK = 1 << 20  # floats tested or converted at a time when looking for a decimal scale

_DTYPES = {"u1": np.uint8, "u2": np.uint16, "u4": np.uint32, "u8": np.uint64, "i1": np.int8, "i2": np.int16, "i4": np.int32, "i8": np.int64}


def narrowest(lo: int, hi: int) -> str:
    """The narrowest dtype code of ``_DTYPES`` that holds every integer in [lo, hi]."""
    for code in ("u1", "u2", "u4", "u8") if lo >= 0 else ("i1", "i2", "i4"):
        info = np.iinfo(_DTYPES[code])
        if info.min <= lo and hi <= info.max:
            return code
    return "i8"


def dtype_of(code: str) -> np.dtype:
    try:
        return np.dtype(_DTYPES[code])
    except KeyError:
        raise ValueError(f"unknown dtype code {code!r}") from None


def _store_array(writer, array: np.ndarray) -> int:
    return writer.add_raw(np.ascontiguousarray(array))


def store_ints(writer, values: np.ndarray) -> dict:
    """Integers as a raw bit-packed *ints* object (FORMAT.md, "Packed integers"): ``bits`` just wide enough
    for ``max - min``, ``base = min``; no segment when every value is the same."""
    from oicore import _textcodec as _tc

    values = np.ascontiguousarray(values)
    lo, hi = (int(values.min()), int(values.max())) if len(values) else (0, 0)
    bits = (hi - lo).bit_length()
    if bits > _tc.BITS_MAX:
        raise ValueError(f"values span {hi - lo}, more than {_tc.BITS_MAX} bits")
    segment = writer.add_raw(pack_ints(values, lo, bits)) if bits else None
    return {"bits": bits, "base": lo, "segment": segment}


def pack_ints(values: np.ndarray, base: int, bits: int) -> np.ndarray:
    """``values - base`` bit-packed (FORMAT.md), from any integer dtype: converted to int64 a chunk at a time.

    A chunk holds a multiple of 64 values, so it packs into whole bytes and the chunks' streams concatenate.
    """
    from oicore import _textcodec as _tc

    if values.dtype == np.int64 or len(values) <= _PACK_CHUNK:
        return _tc.pack(np.ascontiguousarray(values, dtype=np.int64), base, bits)
    out = np.empty((len(values) * bits + 7) // 8, np.uint8)
    step = _PACK_CHUNK * bits // 8
    for k, lo in enumerate(range(0, len(values), _PACK_CHUNK)):
        packed = _tc.pack(values[lo : lo + _PACK_CHUNK].astype(np.int64), base, bits)
        out[k * step : k * step + len(packed)] = packed
    return out


def _store_column(writer, entry: dict, stored: np.ndarray, records: "Records | None" = None) -> None:
    """A column's integers: bit-packed (``ints``) when they span at most 56 bits from a base below 2^62
    (FORMAT.md, "Packed integers"), else raw in their dtype. With ``records``, packed integers wait to be
    interleaved with the other columns of the record (``Records.write`` fills in ``ints``)."""
    lo, hi = (int(stored.min()), int(stored.max())) if len(stored) else (0, 0)
    if -(2**62) < lo and hi < 2**62 and hi - lo < 2**56:
        if records is not None:
            records.add(entry, stored, lo, (hi - lo).bit_length())
        else:
            entry["ints"] = store_ints(writer, stored)
    else:
        entry["segment"] = _store_array(writer, stored)


class Records:
    """Columns of one table packed as records in one raw segment: row ``r``'s fields are the ``r``-th
    ``stride`` bits, each column's at its ``shift`` (FORMAT.md, "Packed integers"), so one load reads a
    row's fields (a label table's code, confidence and source for ``labels()``). Columns whose fields would
    make a record wider than 56 bits are packed on their own."""

    def __init__(self):
        self._fields: list[tuple[dict, str, np.ndarray, int, int]] = []  # (where, key, values, base, bits)

    def add(self, where: dict, values: np.ndarray, base: int, bits: int, key: str = "ints") -> None:
        """``values`` (``base`` their smallest, ``bits`` the width of their span) become ``where[key]``."""
        self._fields.append((where, key, values, base, bits))

    def add_values(self, where: dict, key: str, values: np.ndarray) -> None:
        lo, hi = (int(values.min()), int(values.max())) if len(values) else (0, 0)
        self.add(where, values, lo, (hi - lo).bit_length(), key)

    def write(self, writer) -> None:
        from oicore import _textcodec as _tc

        packed = [f for f in self._fields if f[4]]
        for where, key, _, base, bits in self._fields:
            if not bits:
                where[key] = {"bits": 0, "base": base, "segment": None}
        while packed and sum(f[4] for f in packed) > _tc.BITS_MAX:  # the widest go alone
            where, key, values, _, _ = packed.pop(max(range(len(packed)), key=lambda i: packed[i][4]))
            where[key] = store_ints(writer, values)
        if len(packed) == 1:
            where, key, values, _, _ = packed[0]
            where[key] = store_ints(writer, values)
        elif packed:
            shifts = np.cumsum([0] + [f[4] for f in packed]).tolist()
            stride = shifts.pop()
            segment = writer.add_raw(_pack_records([(v, base, shift) for (_, _, v, base, _), shift in zip(packed, shifts)], stride))
            for (where, key, _, base, bits), shift in zip(packed, shifts):
                where[key] = {"bits": bits, "base": base, "segment": segment, "stride": stride, "shift": shift}
        self._fields = []


def _pack_records(fields: list[tuple[np.ndarray, int, int]], stride: int) -> np.ndarray:
    """Rows of ``(values - base) << shift`` summed over the fields, packed ``stride`` bits each, a chunk at a time."""
    from oicore import _textcodec as _tc

    n = len(fields[0][0])
    out = np.empty((n * stride + 7) // 8, np.uint8)
    step = _PACK_CHUNK * stride // 8
    for k, lo in enumerate(range(0, n, _PACK_CHUNK)):
        record = np.zeros(min(_PACK_CHUNK, n - lo), np.int64)
        for values, base, shift in fields:
            record |= (values[lo : lo + _PACK_CHUNK].astype(np.int64) - base) << shift
        chunk = _tc.pack(record, 0, stride)
        out[k * step : k * step + len(chunk)] = chunk
    return out


def _store_nulls(writer, nulls: np.ndarray | None) -> int | None:
    if nulls is None or not nulls.any():
        return None
    return writer.add_raw(np.packbits(nulls.astype(bool), bitorder="little"))


# ---- encoders ------------------------------------------------------------------------------


def encode_codes(writer, name: str, codes: np.ndarray, n_codes: int, records: Records | None = None):
    """Codes into the release vocabulary, as the narrowest unsigned integers; returns (entry, Decoded)."""
    code = narrowest(0, max(n_codes - 1, 0))
    stored = codes.astype(dtype_of(code))
    entry = {"name": name, "encoding": "code", "dtype": code}
    _store_column(writer, entry, stored, records)
    return entry, Decoded("code", values=stored)


def encode_dict(writer, name: str, codes: np.ndarray, values: list[str], records: Records | None = None):
    """A small dictionary kept in the directory; one value needs no segment. Returns (entry, Decoded)."""
    entry = {"name": name, "encoding": "dict", "values": list(values)}
    if len(values) <= 1:
        entry["values"] = list(values) or [""]
        entry["segment"] = None
        return entry, Decoded("dict", values=np.zeros(len(codes), np.uint8), dictionary=entry["values"])
    code = narrowest(0, len(values) - 1)
    stored = codes.astype(dtype_of(code))
    entry["dtype"] = code
    _store_column(writer, entry, stored, records)
    return entry, Decoded("dict", values=stored, dictionary=entry["values"])


def to_decimal(values, nulls: np.ndarray | None = None, hint: int | None = None, *, pool=None):
    """``(e, k)``: the float64 ``values`` as integers ``k`` with ``values == k / 10**e`` exactly and
    ``|k| < 2**53``, in the narrowest dtype, nulls as 0; ``e`` is ``hint`` when it fits, otherwise the
    smallest that does (at most ``MAX_SCALE``). None when no scale is exact (NaN, infinities, -0.0, too
    many digits). ``pool`` (an executor) works on chunks side by side.

    ``values`` is one array or a list of arrays (a column's chunks, read in place: no float64 copy of the
    whole column is made); ``nulls`` is one mask over all of them.

    ``k / 10**e`` in double arithmetic is the correctly rounded quotient (both operands exact), the same
    double that Python's ``float()`` makes of the decimal text, so the integers reproduce the values exactly.
    One pass tests a scale and one writes the integers (``_kernels``), with no temporary arrays.
    """
    from oicore import _kernels

    pieces = [np.ascontiguousarray(v, dtype=np.float64) for v in (values if isinstance(values, list) else [values])]
    flags = None if nulls is None else np.ascontiguousarray(nulls, dtype=bool).view(np.uint8)
    spans = []  # (piece, lo, hi, first row of the span in the column)
    start = 0
    for i, v in enumerate(pieces):
        spans += [(i, lo, min(lo + _SCAN_CHUNK, len(v)), start + lo) for lo in range(0, len(v), _SCAN_CHUNK)]
        start += len(v)
    if flags is not None and len(flags) != start:
        raise ValueError(f"{len(flags)} null flags for {start} values")
    if flags is None and start == 0 or flags is not None and np.count_nonzero(flags) == start:
        return 0, np.zeros(start, dtype_of(narrowest(0, 0)))  # no values (or only nulls): scale 0, whatever the hint

    def run(fn):
        return list(pool.map(fn, spans)) if pool is not None and len(spans) > 1 else [fn(s) for s in spans]

    def flags_of(span):
        i, lo, hi, at = span
        return None if flags is None else flags[at : at + hi - lo]

    candidates = list(range(MAX_SCALE + 1))
    if hint is not None and 0 <= hint <= MAX_SCALE:
        # The text's own spelling (say, 6 fixed decimals) usually fits: one pass instead of up to seven.
        candidates = [hint, *(e for e in candidates if e != hint)]
    for e in candidates:
        checks = run(lambda span: _kernels.decimal_check(pieces[span[0]][span[1] : span[2]], e, flags_of(span)))
        if all(bad < 0 for bad, _, _ in checks):
            break
    else:
        return None
    lo = min([0, *(a for _, a, _ in checks)])
    hi = max([0, *(b for _, _, b in checks)])
    out = np.empty(start, dtype_of(narrowest(lo, hi)))
    run(lambda span: _kernels.decimal_fill(pieces[span[0]][span[1] : span[2]], e, out[span[3] : span[3] + span[2] - span[1]], flags_of(span)))
    return e, out


def rescale_decimal(k: np.ndarray, e: int, to: int) -> np.ndarray | None:
    """Decimal integers at scale ``e`` as integers at scale ``to`` ≥ ``e`` (the same doubles), or None when
    one would reach 2**53."""
    if to == e or len(k) == 0:
        return k
    factor = 10 ** (to - e)
    wide = k.astype(np.int64)
    if int(np.abs(wide).max()) * factor >= _EXACT:
        return None
    wide *= factor
    return wide.astype(dtype_of(narrowest(int(wide.min()), int(wide.max()))), copy=False)


def encode_ints(writer, name: str, values: np.ndarray, nulls: np.ndarray | None):
    """Integers (nulls stored as 0) as the narrowest integer type; returns (entry, Decoded)."""
    valid = values if nulls is None else values[~nulls]
    lo, hi = (int(valid.min()), int(valid.max())) if len(valid) else (0, 0)
    code = narrowest(lo, hi)
    filled = values if nulls is None else np.where(nulls, 0, values)
    stored = filled.astype(dtype_of(code), copy=False)
    entry = {"name": name, "encoding": "int", "dtype": code}
    _store_column(writer, entry, stored)
    entry["nulls"] = _store_nulls(writer, nulls)
    return entry, Decoded("int", values=stored, nulls=nulls)


def encode_decimal(writer, name: str, k: np.ndarray, nulls: np.ndarray | None, scale: int, records: Records | None = None):
    """Decimals as integers ``k`` (nulls 0) and their scale ``e``: value = k / 10**e. Returns (entry, Decoded)."""
    lo, hi = (int(k.min()), int(k.max())) if len(k) else (0, 0)
    code = narrowest(lo, hi)
    stored = k.astype(dtype_of(code), copy=False)
    entry = {"name": name, "encoding": "decimal", "scale": scale, "dtype": code}
    _store_column(writer, entry, stored, records)
    entry["nulls"] = _store_nulls(writer, nulls)
    return entry, Decoded("decimal", values=stored, nulls=nulls, scale=scale)


def encode_float64(writer, name: str, values: np.ndarray, nulls: np.ndarray | None):
    """Floats that no decimal scale holds exactly, as raw float64 (nulls 0.0). Returns (entry, Decoded)."""
    stored = np.ascontiguousarray(values if nulls is None else np.where(nulls, 0.0, values), dtype=np.float64)
    entry = {"name": name, "encoding": "float64", "segment": _store_array(writer, stored)}
    entry["nulls"] = _store_nulls(writer, nulls)
    return entry, Decoded("float64", values=stored, nulls=nulls)


def string_blocks(offsets: np.ndarray, data, block: int = STRING_BLOCK):
    """Cut rows into blocks of about ``block`` bytes: yields ``(first_row, stop_row, payload)``.

    A payload is ``uint32 n``, ``uint32 offsets[n + 1]`` (from 0), then the rows' bytes.
    """
    n = len(offsets) - 1
    data = memoryview(data).cast("B")
    row = 0
    while row < n:
        # The first row past `block` bytes from here, at least one row, at most what fits a frame.
        stop = int(np.searchsorted(offsets, offsets[row] + block, side="right"))
        stop = min(max(stop, row + 1), n)
        while stop > row + 1 and (offsets[stop] - offsets[row]) + 4 * (stop - row + 2) > _MAX_PAYLOAD:
            stop = row + max(1, (stop - row) // 2)
        size = int(offsets[stop] - offsets[row]) + 4 * (stop - row + 2)
        if size > _MAX_PAYLOAD:
            raise ValueError(f"row {row}: a text field of {size} bytes is longer than a block can hold ({_MAX_PAYLOAD})")
        local = (offsets[row : stop + 1] - offsets[row]).astype(np.uint32)
        payload = np.uint32(stop - row).tobytes() + local.tobytes() + bytes(data[offsets[row] : offsets[stop]])
        yield row, stop, payload
        row = stop


def _max_payload():
    from oicore.format import ZSTD_RAW_MAX

    return ZSTD_RAW_MAX


_MAX_PAYLOAD = _max_payload()
# The longest text value any encoding can store: one row alone in a block, with its count and two offsets.
MAX_TEXT_FIELD = _MAX_PAYLOAD - 12


def encode_strings(writer, name: str, offsets: np.ndarray, data, *, level: int = 3, pool=None):
    """Text as zstd frames of whole rows; ``block_rows`` lists the rows of each frame."""
    block_rows, payloads = [], []
    for first, stop, payload in string_blocks(offsets, data):
        block_rows.append(stop - first)
        payloads.append(payload)
    segment = writer.add_zstd_frames(payloads, level=level, pool=pool)
    entry = {"name": name, "encoding": "strings", "segment": segment, "block_rows": block_rows}
    return entry, Decoded("strings", offsets=offsets, data=memoryview(data).cast("B"))


# ---- decoding ------------------------------------------------------------------------------


@dataclass
class Decoded:
    """One decoded column: ``values`` (numpy) or text (``offsets`` + ``data``), and ``nulls`` (bool) or None."""

    encoding: str
    values: np.ndarray | None = None
    nulls: np.ndarray | None = None
    offsets: np.ndarray | None = None  # strings: int64 offsets, rows + 1
    data: bytes | None = None  # strings: UTF-8 bytes
    scale: int | None = None  # decimal
    dictionary: list[str] | None = None  # dict

    def floats(self) -> np.ndarray:
        """Numbers as float64 (decimals divided out exactly)."""
        if self.encoding == "decimal":
            return self.values.astype(np.float64) / 10.0**self.scale
        return self.values.astype(np.float64)


def raw_array(container, segment: int, code: str, count: int, what: str) -> np.ndarray:
    """A raw segment as ``count`` items of dtype ``code``; its length must match (FORMAT.md check 6)."""
    dt = dtype_of(code)
    view = container.raw(segment)
    if len(view) != count * dt.itemsize:
        seg = container.segments[segment]
        raise FormatError(
            f"{what}: expected {count} × {dt.itemsize} bytes in segment {segment}, got {len(view)}",
            path=container.path,
            byte_offset=seg["offset"],
        )
    return np.frombuffer(view, dtype=dt)


def is_int(x) -> bool:
    """An int of the directory's JSON (not a bool)."""
    return isinstance(x, int) and not isinstance(x, bool)


def ints_layout(desc: dict) -> tuple[int, int]:
    """``(stride, shift)`` of a checked ints object: value ``i`` starts at stream bit ``i * stride + shift``."""
    return desc.get("stride", desc["bits"]), desc.get("shift", 0)


def stride_problem(desc: dict, bits: int, allowed: bool) -> str | None:
    """What is wrong with an ints object's ``stride`` and ``shift`` (FORMAT.md, "Packed integers"), or None:
    only where ``allowed``, only for values of at least one bit, and ``bits + shift <= stride <= 64``."""
    if "stride" not in desc and "shift" not in desc:
        return None
    if not allowed or not bits:
        return "a stride or shift where none may be"
    stride, shift = desc.get("stride", bits), desc.get("shift", 0)
    if not is_int(stride) or not is_int(shift) or not 0 <= shift or not bits + shift <= stride <= 64:
        return f"stride {stride!r} and shift {shift!r}: expected bits + shift <= stride <= 64"
    return None


def ints_array(container, desc: dict, count: int, what: str, *, allow_stride: bool = False) -> np.ndarray:
    """A raw *ints* object's ``count`` values as int64 (its segment's length checked); ``allow_stride`` where
    FORMAT.md lets it be a field of records."""
    from oicore.textcodec import _read_ints

    if not isinstance(desc, dict):
        raise FormatError(f"{what}: expected a packed-integer object", path=container.path)
    return _read_ints(container, desc, count, what, allow_ref=False, allow_stride=allow_stride)


def ints_range(container, desc: dict, count: int, start: int, stop: int, what: str) -> np.ndarray:
    """Values ``[start, stop)`` of a raw *ints* object of ``count`` values, reading only their bytes."""
    from oicore import _textcodec as _tc
    from oicore.textcodec import _check_ints

    bits, base, seg, _, _ = _check_ints(container, desc, count, what, allow_ref=False, allow_stride=True)
    if not 0 <= start <= stop <= count:
        raise FormatError(f"{what}: values [{start}, {stop}) outside its {count}", path=container.path)
    if not bits or stop == start:
        return np.full(stop - start, base, np.int64)
    stride, shift = ints_layout(desc)
    first = start * stride + shift
    lo, hi = first >> 3, ((stop - 1) * stride + shift + bits + 7) >> 3
    stream = np.frombuffer(container.raw(seg, lo, hi), np.uint8)
    return _tc.unpack_at(stream, first - 8 * lo, stop - start, bits, base, stride)


def blocked_offsets(container, spec: dict, count: int, what: str) -> np.ndarray:
    """FORMAT.md's blocked offsets as ``count`` int64 values: ``base[i // block] + local[i]``."""
    block = spec.get("block") if isinstance(spec, dict) else None
    if not isinstance(block, int) or not 1 <= block <= 1 << 16 or block & (block - 1):
        raise FormatError(f"{what}: expected a block of a power of two, got {block!r}", path=container.path)
    base = ints_array(container, spec.get("base"), -(-count // block), what + " base")
    local = ints_array(container, spec.get("local"), count, what + " local", allow_stride=True)
    return np.repeat(base, block)[:count] + local


def _nulls(container, entry, rows: int, what: str) -> np.ndarray | None:
    seg = entry.get("nulls")
    if seg is None:
        return None
    packed = raw_array(container, seg, "u1", math.ceil(rows / 8), what + " nulls")
    return np.unpackbits(packed, count=rows, bitorder="little").astype(bool)


def column_ints(container, entry: dict, rows: int, what: str) -> np.ndarray:
    """The integers of a ``code``/``dict``/``decimal``/``int`` column, in its ``dtype``: bit-packed
    (``ints``) or raw (``segment``)."""
    code = entry.get("dtype")
    if code not in _DTYPES:
        raise FormatError(f"{what}: unknown dtype {code!r}", path=container.path)
    if "ints" not in entry:
        return raw_array(container, entry["segment"], code, rows, what)
    from oicore.textcodec import _check_ints, _read_ints

    _check_ints(container, entry["ints"], rows, what, allow_ref=False, allow_stride=True)
    values = _read_ints(container, entry["ints"], rows, what, allow_ref=False, allow_stride=True)
    info = np.iinfo(_DTYPES[code])
    if len(values) and (int(values.min()) < info.min or int(values.max()) > info.max):
        raise FormatError(f"{what}: values outside its dtype {code}", path=container.path)
    return values.astype(_DTYPES[code])


def decode(container, entry: dict, rows: int, *, vocabulary_size: int | None = None) -> Decoded:
    """Decode column ``entry`` of a table with ``rows`` rows; structural problems raise FormatError."""
    what = f"column {entry.get('name')!r}"
    enc = entry.get("encoding")
    if enc == "code":
        values = column_ints(container, entry, rows, what)
        if vocabulary_size is not None and len(values) and int(values.max()) >= vocabulary_size:
            raise FormatError(f"{what}: a code ≥ the vocabulary's {vocabulary_size} entries", path=container.path)
        return Decoded(enc, values=values)
    if enc == "dict":
        dictionary = entry["values"]
        if entry.get("segment") is None and "ints" not in entry:
            return Decoded(enc, values=np.zeros(rows, np.uint8), dictionary=dictionary)
        values = column_ints(container, entry, rows, what)
        if len(values) and int(values.max()) >= len(dictionary):
            raise FormatError(f"{what}: a code ≥ its {len(dictionary)} values", path=container.path)
        return Decoded(enc, values=values, dictionary=dictionary)
    if enc == "float64":
        values = np.frombuffer(container.raw(entry["segment"]), dtype=np.float64)
        if len(values) != rows:
            raise FormatError(f"{what}: expected {rows} values, got {len(values)}", path=container.path)
        return Decoded(enc, values=values, nulls=_nulls(container, entry, rows, what))
    if enc in ("decimal", "int"):
        values = column_ints(container, entry, rows, what)
        return Decoded(enc, values=values, nulls=_nulls(container, entry, rows, what), scale=entry.get("scale"))
    if enc == "strings":
        offsets, data = read_strings(container, entry, rows, what)
        return Decoded(enc, offsets=offsets, data=data)
    from oicore.textcodec import ENCODINGS, decode_text

    if enc in ENCODINGS:  # template, md5, text_dict: decoded to plain text
        offsets, data = decode_text(container, entry, rows)
        return Decoded("strings", offsets=offsets, data=data)
    raise FormatError(f"{what}: unknown encoding {enc!r}", path=container.path)


def column_rows(container, entry: dict, rows: int, *, vocabulary_size: int | None = None):
    """``decode(lo, hi) -> Decoded``: rows ``[lo, hi)`` of a column. Text is decoded a range at a time (its
    packed values, dictionaries and exceptions are read once), so a long text column never needs to be
    whole in memory; other columns are decoded whole, once, and sliced."""
    from oicore.textcodec import ENCODINGS, text_decoder

    if entry.get("encoding") == "strings" or entry.get("encoding") in ENCODINGS:
        text = text_decoder(container, entry, rows)

        def rows_of(lo: int, hi: int) -> Decoded:
            offsets, data = text(lo, hi)
            return Decoded("strings", offsets=offsets, data=data)

        return rows_of
    whole = decode(container, entry, rows, vocabulary_size=vocabulary_size)
    return lambda lo, hi: slice_rows(whole, lo, hi)


def parse_block(payload: bytes, what: str, path) -> tuple[np.ndarray, memoryview]:
    """A text block's local offsets (uint32, rows + 1) and bytes, checked."""
    if len(payload) < 8:
        raise FormatError(f"{what}: a text block of {len(payload)} bytes", path=path)
    n = int(np.frombuffer(payload, np.uint32, 1)[0])
    if 4 * (n + 2) > len(payload):
        raise FormatError(f"{what}: a text block claims {n} rows in {len(payload)} bytes", path=path)
    local = np.frombuffer(payload, np.uint32, n + 1, 4)
    body = memoryview(payload)[4 * (n + 2) :]
    if local[0] != 0 or (np.diff(local.astype(np.int64)) < 0).any() or int(local[-1]) != len(body):
        raise FormatError(f"{what}: a text block's offsets are not monotone within its bytes", path=path)
    return local, body


def read_strings(container, entry: dict, rows: int, what: str) -> tuple[np.ndarray, bytes]:
    """The whole text column: int64 offsets (rows + 1) and the bytes."""
    return strings_range(container, entry, rows, 0, rows, what)


def strings_range(container, entry: dict, rows: int, lo: int, hi: int, what: str) -> tuple[np.ndarray, bytes]:
    """Rows ``[lo, hi)`` of a ``strings`` column: int64 offsets from 0 and the bytes, decoding only the blocks
    that hold them (and the empty blocks among them, so that a whole read checks every block)."""
    seg = entry["segment"]
    block_rows = entry["block_rows"]
    if len(block_rows) != container.block_count(seg) or sum(block_rows) != rows:
        raise FormatError(f"{what}: its blocks do not hold {rows} rows", path=container.path)
    if not 0 <= lo <= hi <= rows:
        raise FormatError(f"{what}: rows [{lo}, {hi}) outside its {rows}", path=container.path)
    offsets = np.zeros(hi - lo + 1, np.int64)
    chunks, first, base = [], 0, 0
    for k, n in enumerate(block_rows):
        a, b = max(lo, first), min(hi, first + n)  # this block's rows that are wanted
        if a < b or (n == 0 and lo <= first <= hi):
            local, body = parse_block(container.frame_data(seg, k), what, container.path)
            if len(local) != n + 1:
                raise FormatError(f"{what}: block {k} holds {len(local) - 1} rows, expected {n}", path=container.path)
            start, stop = int(local[a - first]), int(local[b - first])
            offsets[a - lo + 1 : b - lo + 1] = local[a - first + 1 : b - first + 1].astype(np.int64) - start + base
            chunks.append(body[start:stop])
            base += stop - start
        first += n
        if first > hi:
            break
    return offsets, b"".join(chunks)


def string_row(container, entry: dict, rows: int, row: int, cache) -> str:
    """Row ``row`` of a ``strings`` column, decoding one block (kept in ``cache``, a dict-like)."""
    key = ("strings-starts", entry["segment"])
    starts = cache.get(key) if hasattr(cache, "get") else None
    if starts is None:
        starts = np.zeros(len(entry["block_rows"]) + 1, np.int64)
        np.cumsum(entry["block_rows"], out=starts[1:])
        if starts[-1] != rows or len(entry["block_rows"]) != container.block_count(entry["segment"]):
            raise FormatError(f"column {entry.get('name')!r}: its blocks do not hold {rows} rows", path=container.path)
        cache[key] = starts
    if not 0 <= row < rows:
        raise IndexError(f"row {row} outside 0..{rows - 1}")
    k = int(np.searchsorted(starts, row, side="right")) - 1
    bkey = ("strings-block", entry["segment"], k)
    block = cache.get(bkey) if hasattr(cache, "get") else None
    if block is None:
        local, body = parse_block(container.frame_data(entry["segment"], k), f"column {entry.get('name')!r}", container.path)
        if len(local) != entry["block_rows"][k] + 1:
            raise FormatError(f"column {entry.get('name')!r}: block {k} holds {len(local) - 1} rows", path=container.path)
        block = (local, bytes(body))
        cache[bkey] = block
    local, body = block
    i = row - int(starts[k])
    return body[local[i] : local[i + 1]].decode("utf-8")


# ---- rows in another order (convert and export render parts in file order) ----------------------


def slice_rows(col: "Decoded", lo: int, hi: int) -> "Decoded":
    """Rows ``[lo, hi)`` of a decoded column, as views."""
    if col.encoding == "strings":
        offsets = col.offsets[lo : hi + 1]
        base = int(offsets[0])
        return Decoded("strings", offsets=offsets - base, data=memoryview(col.data)[base : int(offsets[-1])])
    return Decoded(
        col.encoding,
        values=col.values[lo:hi],
        nulls=None if col.nulls is None else col.nulls[lo:hi],
        scale=col.scale,
        dictionary=col.dictionary,
    )


def take_rows(col: "Decoded", positions: np.ndarray) -> "Decoded":
    """The rows ``positions`` of a decoded column, in that order."""
    if col.encoding == "strings":
        if _is_contiguous(positions):
            lo = int(positions[0]) if len(positions) else 0
            offsets = col.offsets[lo : lo + len(positions) + 1]
            base = int(offsets[0])
            return Decoded("strings", offsets=offsets - base, data=memoryview(col.data)[base : int(offsets[-1])])
        data, offsets = gather_text(col.offsets, np.frombuffer(col.data, np.uint8), positions)
        return Decoded("strings", offsets=offsets, data=memoryview(data))
    return Decoded(
        col.encoding,
        values=col.values[positions],
        nulls=None if col.nulls is None else col.nulls[positions],
        scale=col.scale,
        dictionary=col.dictionary,
    )


def gather_text(offsets: np.ndarray, data, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``positions`` of text (int64 ``offsets`` from 0 and the bytes), in that order: ``(bytes, offsets)``."""
    from oicore import _textcodec as _tc

    text = np.frombuffer(data, np.uint8) if len(data) else np.zeros(0, np.uint8)
    return _tc.gather(text, np.ascontiguousarray(offsets, np.int64), None, len(offsets) - 1, np.ascontiguousarray(positions, np.int64), False)


def _is_contiguous(positions: np.ndarray) -> bool:
    return len(positions) == 0 or (
        positions[-1] - positions[0] + 1 == len(positions) and (len(positions) < 2 or bool((positions[1:] > positions[:-1]).all()))
    )
