# cython: language_level=3
"""C-speed helpers for oicore.synthetic: render rows of text from per-column numpy arrays.

A :class:`Template` is a list of *segments* over ``n`` rows. Rendering row ``i`` writes every segment's text
for row ``i``, in order: literal bytes, an integer, a fixed-point decimal, hex digits, base64, or an entry
of a :class:`StringTable` picked by a code. A ``cond`` segment skips the next ``k`` segments of rows whose
mask byte is 0, which gives empty and optional fields. Separators and line ends are literals, so one template
renders CSV lines, URLs, or a table of strings (with ``offsets``).

Everything is checked when the template is built (dtypes, lengths, code ranges); rendering then runs
without the GIL and stops at a row boundary when the output buffer is full, so callers stream through one
fixed buffer.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

cdef extern from "oic_format_text.h" nogil:
    int OIC_FMT_ENOSPC
    int OIC_FMT_I64_MAX
    int OIC_FMT_FIXED_MAX
    int OIC_FMT_B64_16_LEN
    int oic_fmt_hex(uint64_t v, int width, uint8_t *out, size_t cap)
    int oic_fmt_i64(int64_t v, uint8_t *out, size_t cap)
    int oic_fmt_fixed(int64_t v, int decimals, int trim, uint8_t *out, size_t cap)
    int oic_fmt_b64_16(const uint8_t *src, uint8_t *out, size_t cap)

__all__ = ["StringTable", "Template", "dedupe_in_groups", "hash64"]

cdef enum SegKind:
    SEG_LIT = 0
    SEG_HEX = 1
    SEG_INT = 2
    SEG_FIXED = 3
    SEG_DICT = 4
    SEG_B64 = 5
    SEG_COND = 6

_KINDS = {"lit": SEG_LIT, "hex": SEG_HEX, "int": SEG_INT, "fixed": SEG_FIXED, "fixed_trim": SEG_FIXED,
          "dict": SEG_DICT, "b64": SEG_B64, "cond": SEG_COND}

cdef struct Seg:
    int kind
    int param          # hex width, or decimals
    int trim           # fixed: drop trailing zeros
    Py_ssize_t skip    # cond: segments to skip when the mask byte is 0
    const uint8_t *data     # literal bytes, table bytes, or b64 source (16 bytes per row)
    Py_ssize_t len_         # literal length
    const int64_t *i64      # int / fixed values, or table offsets
    const uint64_t *u64     # hex values
    const int32_t *codes    # dict codes
    const uint8_t *mask     # cond mask


cdef class StringTable:
    """Byte strings stored end to end: entry ``i`` is ``data[offsets[i]:offsets[i+1]]``.

    Build it from a list of ``bytes`` (``StringTable(items)``) or from rendered output
    (``StringTable.from_buffers(data, offsets)``).
    """

    cdef readonly object data
    cdef readonly object offsets
    cdef readonly Py_ssize_t maxlen

    def __init__(self, items=()):
        items = [bytes(x) for x in items]
        lens = np.fromiter((len(x) for x in items), dtype=np.int64, count=len(items))
        offsets = np.zeros(len(items) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        self._set(np.frombuffer(b"".join(items), dtype=np.uint8).copy(), offsets)

    @classmethod
    def from_buffers(cls, data, offsets):
        """A table over ``data`` (uint8) cut at ``offsets`` (int64, non-decreasing, ``len(entries) + 1``)."""
        self = cls.__new__(cls)
        self._set(np.ascontiguousarray(data, dtype=np.uint8), np.ascontiguousarray(offsets, dtype=np.int64))
        return self

    def _set(self, data, offsets):
        if offsets.ndim != 1 or len(offsets) < 1 or offsets[0] != 0 or offsets[len(offsets) - 1] > len(data):
            raise ValueError("StringTable offsets must start at 0 and end inside the data")
        lens = np.diff(offsets)
        if len(lens) and lens.min() < 0:
            raise ValueError("StringTable offsets must not decrease")
        self.data = data
        self.offsets = offsets
        self.maxlen = int(lens.max()) if len(lens) else 0

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, Py_ssize_t i):
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return bytes(self.data[self.offsets[i]:self.offsets[i + 1]])

    def tolist(self):
        """Every entry as ``bytes``."""
        return [self[i] for i in range(len(self))]


cdef class Template:
    """Segments rendered for each of ``nrows`` rows.

    ``segments`` is a list of tuples:

    * ``("lit", b"text")``: the same bytes in every row;
    * ``("hex", uint64[n], width)``: the low ``width`` hex digits, zero-padded;
    * ``("int", int64[n])``: a decimal integer;
    * ``("fixed", int64[n], decimals)``: ``v / 10**decimals`` with exactly ``decimals`` decimals;
    * ``("fixed_trim", int64[n], decimals)``: the same without trailing zeros (``"0.8875"``, ``"1"``);
    * ``("dict", int32[n], StringTable)``: the table entry at the row's code;
    * ``("b64", uint8[16 * n])``: base64 of the row's 16 bytes (24 characters);
    * ``("cond", uint8[n], k)``: skip the next ``k`` segments when the row's byte is 0.

    Arrays are converted to the named dtype (a copy only when needed) and kept alive by the template.
    """

    cdef Seg *segs
    cdef Py_ssize_t nsegs
    cdef readonly Py_ssize_t nrows
    cdef readonly Py_ssize_t row_max
    cdef list keep

    def __cinit__(self):
        self.segs = NULL
        self.nsegs = 0

    def __dealloc__(self):
        free(self.segs)

    def __init__(self, list segments, Py_ssize_t nrows):
        if nrows < 0:
            raise ValueError("nrows must be >= 0")
        self.nrows = nrows
        self.keep = []
        self.nsegs = len(segments)
        self.segs = <Seg *>malloc(max(1, self.nsegs) * sizeof(Seg))
        if self.segs == NULL:
            raise MemoryError()
        cdef Py_ssize_t s, row_max = 0
        cdef Seg *g
        for s, spec in enumerate(segments):
            g = &self.segs[s]
            g.kind = -1
            g.param = 0
            g.trim = 0
            g.skip = 0
            g.data = NULL
            g.len_ = 0
            g.i64 = NULL
            g.u64 = NULL
            g.codes = NULL
            g.mask = NULL
            name = spec[0]
            if name not in _KINDS:
                raise ValueError(f"segment {s}: unknown kind {name!r}")
            g.kind = _KINDS[name]
            row_max += self._fill(s, g, name, spec)
        self.row_max = row_max

    cdef Py_ssize_t _fill(self, Py_ssize_t s, Seg *g, str name, tuple spec) except -1:
        cdef const uint8_t[::1] u8
        cdef const int64_t[::1] i64
        cdef const uint64_t[::1] u64
        cdef const int32_t[::1] i32
        cdef StringTable table
        n = self.nrows
        if name == "lit":
            b = bytes(spec[1])
            self.keep.append(b)
            u8 = b
            g.len_ = len(b)
            g.data = &u8[0] if len(b) else NULL
            return len(b)
        if name == "hex":
            arr = self._array(s, spec[1], np.uint64, n)
            width = int(spec[2])
            if not 1 <= width <= 16:
                raise ValueError(f"segment {s}: hex width must be 1..16, got {width}")
            g.param = width
            if n:
                u64 = arr
                g.u64 = &u64[0]
            return width
        if name == "int":
            arr = self._array(s, spec[1], np.int64, n)
            if n:
                i64 = arr
                g.i64 = &i64[0]
            return OIC_FMT_I64_MAX
        if name in ("fixed", "fixed_trim"):
            arr = self._array(s, spec[1], np.int64, n)
            decimals = int(spec[2])
            if not 0 <= decimals <= 18:
                raise ValueError(f"segment {s}: decimals must be 0..18, got {decimals}")
            g.param = decimals
            g.trim = name == "fixed_trim"
            if n:
                i64 = arr
                g.i64 = &i64[0]
            return OIC_FMT_FIXED_MAX
        if name == "dict":
            table = spec[2]
            arr = self._array(s, spec[1], np.int32, n)
            if n and (arr.min() < 0 or arr.max() >= len(table)):
                raise ValueError(f"segment {s}: codes must be in 0..{len(table) - 1}")
            self.keep.append(table)
            if n:
                i32 = arr
                g.codes = &i32[0]
            if len(table.data):
                u8 = table.data
                g.data = &u8[0]
            i64 = table.offsets
            g.i64 = &i64[0]
            return table.maxlen
        if name == "b64":
            arr = self._array(s, spec[1], np.uint8, 16 * n)
            if n:
                u8 = arr
                g.data = &u8[0]
            return OIC_FMT_B64_16_LEN
        # cond
        arr = self._array(s, spec[1], np.uint8, n)
        k = int(spec[2])
        if k < 0 or s + k >= self.nsegs:
            raise ValueError(f"segment {s}: cond skips {k} segments, past the end of the template")
        g.skip = k
        if n:
            u8 = arr
            g.mask = &u8[0]
        return 0

    cdef object _array(self, Py_ssize_t s, obj, dtype, Py_ssize_t want):
        arr = np.ascontiguousarray(obj, dtype=dtype).reshape(-1)
        if len(arr) != want:
            raise ValueError(f"segment {s}: expected {want} values, got {len(arr)}")
        self.keep.append(arr)
        return arr

    def render(self, Py_ssize_t start, uint8_t[::1] out, int64_t[::1] offsets=None):
        """Render rows ``start, start+1, ...`` into ``out`` until the rows or the room run out.

        Returns ``(stop, nbytes)``: rows ``start..stop-1`` are in ``out[:nbytes]``. A row is never cut:
        rendering stops before a row when fewer than ``row_max`` bytes are left. With ``offsets``
        (int64, at least ``stop - start + 1`` long), ``offsets[i - start]`` is where row ``i`` starts and
        ``offsets[stop - start] == nbytes``.
        """
        if start < 0 or start > self.nrows:
            raise ValueError(f"start {start} outside 0..{self.nrows}")
        if start < self.nrows and out.shape[0] < self.row_max:
            raise ValueError(f"output buffer of {out.shape[0]} bytes is smaller than one row ({self.row_max})")
        cdef Py_ssize_t cap = out.shape[0]
        cdef Py_ssize_t noff = -1 if offsets is None else offsets.shape[0]
        if noff == 0:
            raise ValueError("offsets must hold at least one entry")
        cdef int64_t *offp = NULL if offsets is None else &offsets[0]
        cdef uint8_t *buf = &out[0] if cap else NULL
        cdef Py_ssize_t i = start, pos = 0, s, a, b
        cdef Seg *g
        cdef int r = 0
        with nogil:
            while i < self.nrows:
                if cap - pos < self.row_max:
                    break
                if offp != NULL:
                    if i - start + 1 >= noff:
                        break
                    offp[i - start] = pos
                s = 0
                while s < self.nsegs:
                    g = &self.segs[s]
                    if g.kind == SEG_LIT:
                        if g.len_:
                            memcpy(buf + pos, g.data, g.len_)
                            pos += g.len_
                    elif g.kind == SEG_HEX:
                        r = oic_fmt_hex(g.u64[i], g.param, buf + pos, cap - pos)
                    elif g.kind == SEG_INT:
                        r = oic_fmt_i64(g.i64[i], buf + pos, cap - pos)
                    elif g.kind == SEG_FIXED:
                        r = oic_fmt_fixed(g.i64[i], g.param, g.trim, buf + pos, cap - pos)
                    elif g.kind == SEG_DICT:
                        a = g.i64[g.codes[i]]
                        b = g.i64[g.codes[i] + 1]
                        if b > a:
                            memcpy(buf + pos, g.data + a, b - a)
                            pos += b - a
                    elif g.kind == SEG_B64:
                        r = oic_fmt_b64_16(g.data + 16 * i, buf + pos, cap - pos)
                    elif g.kind == SEG_COND:
                        if g.mask[i] == 0:
                            s += g.skip
                    if r < 0:
                        break
                    if g.kind == SEG_HEX or g.kind == SEG_INT or g.kind == SEG_FIXED or g.kind == SEG_B64:
                        pos += r
                    s += 1
                if r < 0:
                    break
                i += 1
            if offp != NULL and r >= 0:
                offp[i - start] = pos
        if r < 0:
            # Cannot happen: row_max bounds every segment. Kept as the one place a status becomes an error.
            raise RuntimeError(f"text formatting failed with status {r} in row {i}")
        return i, pos

    def render_all(self):
        """Every row as one ``bytes`` plus int64 row offsets (``nrows + 1``): for building tables."""
        out = np.empty(max(1, self.nrows * self.row_max), dtype=np.uint8)
        offsets = np.empty(self.nrows + 1, dtype=np.int64)
        stop, nbytes = self.render(0, out, offsets)
        assert stop == self.nrows
        return out[:nbytes], offsets

    def to_table(self):
        """Every row rendered as one entry of a :class:`StringTable`."""
        data, offsets = self.render_all()
        return StringTable.from_buffers(data.copy(), offsets)


def dedupe_in_groups(int32_t[::1] codes, const int64_t[::1] offsets, int32_t ncodes):
    """Make codes distinct within each group ``codes[offsets[g]:offsets[g+1]]``, in place.

    A code already seen earlier in its group moves to the next free code (mod ``ncodes``). Groups
    longer than ``ncodes`` cannot be made distinct and are left as they are. Returns how many codes moved.
    """
    cdef Py_ssize_t ngroups = offsets.shape[0] - 1, gi, j, k, a, b, tries
    cdef int64_t moved = 0
    cdef int32_t c
    cdef bint clash
    if ngroups < 0:
        raise ValueError("offsets must hold at least one entry")
    if ncodes <= 0:
        raise ValueError("ncodes must be positive")
    if offsets[0] < 0 or offsets[ngroups] > codes.shape[0]:
        raise ValueError("offsets reach outside codes")
    for gi in range(ngroups):
        if offsets[gi + 1] < offsets[gi]:
            raise ValueError("offsets must not decrease")
    with nogil:
        for gi in range(ngroups):
            a = offsets[gi]
            b = offsets[gi + 1]
            if b - a > ncodes:
                continue
            for j in range(a + 1, b):
                c = codes[j]
                tries = 0
                while True:
                    clash = False
                    for k in range(a, j):
                        if codes[k] == c:
                            clash = True
                            break
                    if not clash or tries >= ncodes:
                        break
                    c = c + 1
                    if c >= ncodes:
                        c = 0
                    tries += 1
                if c != codes[j]:
                    codes[j] = c
                    moved += 1
    return moved


def hash64(const uint64_t[::1] x, uint64_t key, Py_ssize_t nstreams=1):
    """``nstreams`` independent pseudo-random uint64 streams keyed by ``x`` (shape ``(nstreams, len(x))``).

    Stream ``j`` is the SplitMix64 finalizer of ``x ^ (key + j * 0xD1B54A32D192ED03)`` plus the SplitMix64
    increment: a bijection of ``x`` for each stream, so equal inputs give equal outputs in every file and
    every release.
    """
    if nstreams < 0:
        raise ValueError("nstreams must be >= 0")
    cdef Py_ssize_t n = x.shape[0], i, j
    out = np.empty((nstreams, n), dtype=np.uint64)
    if n == 0 or nstreams == 0:
        return out
    cdef uint64_t[:, ::1] o = out
    cdef uint64_t z, k
    with nogil:
        for j in range(nstreams):
            k = key + <uint64_t>j * 0xD1B54A32D192ED03ULL
            for i in range(n):
                z = (x[i] ^ k) + 0x9E3779B97F4A7C15ULL
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
                o[j, i] = z ^ (z >> 31)
    return out
