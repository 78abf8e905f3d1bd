# cython: freethreading_compatible = False
"""The lookups' hot paths: image IDs to indexes, labels and boxes per image and per class.

Everything here reads raw, memory-mapped segments through guards that check
each 1 MiB block's CRC-32C the first time it is touched (oic_lookup.h). The
Python layer (``oicore.release``) builds these objects lazily, on first use.
"""

from cpython.buffer cimport PyBuffer_FillInfo
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.long cimport PyLong_AsUnsignedLongLong
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF
from cpython.unicode cimport PyUnicode_AsUTF8AndSize
from libc.stdint cimport SIZE_MAX, int8_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

import numpy as np
cimport numpy as cnp

from oicore.errors import ChecksumError, FormatError, InvalidImageIDError

cnp.import_array()

cdef extern from "oic_lookup.h" nogil:
    void oic_crc32c_init()
    ctypedef struct oic_guard:
        const uint8_t *base
        size_t length
        const uint32_t *crcs
        uint8_t *checked
    int64_t oic_guard_check(const oic_guard *g, size_t lo, size_t hi)
    ctypedef struct oic_col:
        const oic_guard *guard
        int width
        int kind
        int bits
        int stride
        int shift
        int64_t base
        double divisor
        int64_t constant
        const float *f32_table
    ctypedef struct oic_offsets:
        oic_col base
        oic_col local
        int shift
    int64_t oic_offset(const oic_offsets *o, size_t i)
    void oic_offset_pair(const oic_offsets *o, size_t i, int64_t *lo, int64_t *hi)
    void oic_col_span(const oic_col *c, size_t lo_row, size_t hi_row, size_t *lo, size_t *hi)
    int64_t oic_col_int(const oic_col *c, size_t row)
    double oic_col_double(const oic_col *c, size_t row)
    void oic_col_prefetch(const oic_col *c, size_t row)
    int64_t oic_find_image(const uint64_t *ids, size_t n, const uint32_t *buckets, int bits, uint64_t id)
    int oic_bucket(const uint32_t *buckets, int bits, size_t n, uint64_t id, size_t *lo, size_t *hi)
    int64_t oic_search_ids(const uint64_t *ids, size_t lo, size_t hi, uint64_t id)
    void oic_offsets_prefetch(const oic_offsets *o, size_t i)
    void __builtin_prefetch(const void *p)
    int oic_parse_hex_id(const char *s, size_t n, uint64_t *out)
    int OIC_COL_UNSIGNED, OIC_COL_SIGNED, OIC_COL_FLOAT

oic_crc32c_init()

_WIDTH = {"u1": (1, 0), "u2": (2, 0), "u4": (4, 0), "u8": (8, 0), "i1": (1, 1), "i2": (2, 1), "i4": (4, 1), "i8": (8, 1)}
cdef uint8_t _EMPTY = 0
cdef cnp.dtype _INT32 = np.dtype(np.int32)
cdef cnp.dtype _FLOAT32 = np.dtype(np.float32)
cdef cnp.dtype _UINT64 = np.dtype(np.uint64)
cdef cnp.dtype _INT8 = np.dtype(np.int8)
cdef cnp.dtype _UINT8 = np.dtype(np.uint8)


cdef extern from "numpy/arrayobject.h":
    # Declared here with raw pointers: it steals its reference to the dtype.
    ctypedef struct _Descr "PyArray_Descr"
    object _new_from_descr "PyArray_NewFromDescr" (PyTypeObject *subtype, _Descr *descr, int nd, cnp.npy_intp *dims,
                                                   cnp.npy_intp *strides, void *data, int flags, PyObject *obj)


cdef cnp.ndarray _view_of(object owner, cnp.dtype dtype, void *data, size_t n):
    """A writeable 1-D array of ``n`` items at ``data``, inside ``owner``'s memory, which it keeps alive:
    cheaper than an array with its own allocation (no data allocator, no allocator lookup)."""
    cdef cnp.npy_intp dim = <cnp.npy_intp>n
    Py_INCREF(dtype)  # PyArray_NewFromDescr steals a reference to the dtype
    cdef cnp.ndarray arr = _new_from_descr(<PyTypeObject *>cnp.ndarray, <_Descr *>dtype, 1, &dim, NULL, data, cnp.NPY_ARRAY_CARRAY, NULL)
    cnp.set_array_base(arr, owner)
    return arr


cdef cnp.ndarray _rows_view_of(object owner, cnp.dtype dtype, void *data, size_t n, size_t width):
    """As ``_view_of``, a C-contiguous ``n`` × ``width`` array."""
    cdef cnp.npy_intp dims[2]
    dims[0] = <cnp.npy_intp>n
    dims[1] = <cnp.npy_intp>width
    Py_INCREF(dtype)
    cdef cnp.ndarray arr = _new_from_descr(<PyTypeObject *>cnp.ndarray, <_Descr *>dtype, 2, dims, NULL, data, cnp.NPY_ARRAY_CARRAY, NULL)
    cnp.set_array_base(arr, owner)
    return arr


cdef enum:
    _GATHER_AHEAD = 16  # rows a class's gather asks memory for ahead of the row it reads


cdef inline size_t _gathered_row(const oic_col *rowcol, const uint32_t *rows, size_t i) noexcept nogil:
    """Entry ``i`` of what a gather walks: a packed row column, an array of rows, or (neither) the rows themselves."""
    if rowcol != NULL:
        return <size_t>oic_col_int(rowcol, i)
    return rows[i] if rows != NULL else i


cdef int _fill_source_map(uint8_t *source_map, list source_codes, path) except -1:
    """A table's Source codes (index) to the release's (value), 255 for none: one byte each, so at most 255
    values (convert refuses more; an untrusted file is checked here, before any is written)."""
    if len(source_codes) > 255 or any(not 0 <= c < 255 for c in source_codes):
        raise FormatError("more than 255 Source values", path=path)
    cdef int k
    for k in range(256):
        source_map[k] = 255
    for k, code in enumerate(source_codes):
        source_map[k] = code
    return 0


cdef class Segment:
    """A raw segment of the map and its per-block CRC guard."""

    cdef oic_guard g
    cdef const uint8_t[::1] view
    cdef const uint32_t[::1] crcs
    cdef uint8_t[::1] checked
    cdef readonly int index
    cdef readonly object path
    cdef readonly size_t length
    cdef object _offset
    cdef bint whole  # every block has been checked

    def __init__(self, container, index):
        if not isinstance(index, int) or not 0 <= index < len(container.segments):
            raise FormatError(f"expected a segment index in [0, {len(container.segments)}), got {index!r}", path=container.path)
        seg = container.segments[index]
        if seg["codec"] != "raw":
            raise FormatError(f"segment {index} is {seg['codec']}, not raw", path=container.path, byte_offset=seg["offset"])
        self.index = index
        self.path = container.path
        self._offset = seg["offset"]
        self.length = seg["length"]
        self.view = container.view[seg["offset"] : seg["offset"] + seg["length"]]
        self.crcs = np.ascontiguousarray(container.blocks[seg["first_block"] : seg["first_block"] + seg["block_count"], 2], dtype=np.uint32)
        self.checked = container._checked[index]
        self.g.base = &self.view[0] if self.length else &_EMPTY
        self.g.length = self.length
        self.g.crcs = &self.crcs[0] if len(self.crcs) else NULL
        self.g.checked = &self.checked[0] if len(self.checked) else NULL

    cdef inline int check(self, size_t lo, size_t hi) except -1:
        cdef size_t b
        if hi > self.length:
            raise FormatError(f"segment {self.index}: bytes [{lo}, {hi}) past its {self.length}", path=self.path, byte_offset=self._offset)
        if hi <= lo:
            return 0
        # The common case, every block already checked, costs a few loads and no GIL release.
        for b in range(lo >> 20, ((hi - 1) >> 20) + 1):
            if not self.g.checked[b]:
                return self.check_slow(lo, hi)
        return 0

    cdef bint all_checked(self):
        """Whether every block has been checked (by any reader of this container's segment)."""
        cdef size_t b
        if not self.whole:
            for b in range(<size_t>self.checked.shape[0]):
                if not self.checked[b]:
                    return False
            self.whole = True
        return True

    cdef int check_slow(self, size_t lo, size_t hi) except -1:
        cdef int64_t bad
        with nogil:
            bad = oic_guard_check(&self.g, lo, hi)
        if bad >= 0:
            self.bad(bad)
        return 0

    cdef int bad(self, int64_t block) except -1:
        raise ChecksumError(
            f"segment {self.index} block {block}: CRC-32C mismatch",
            path=self.path,
            byte_offset=self._offset + block * (1 << 20),
            segment=self.index,
            block=block,
        )

    def array(self, dtype):
        """The whole segment as a numpy view, every block checked."""
        self.check(0, self.length)
        return np.frombuffer(self.view, dtype=dtype)


cdef class Column:
    """One column read row by row: raw in any width, bit-packed (FORMAT.md, "Packed integers"), or a constant."""

    cdef oic_col c
    cdef readonly Segment segment
    cdef readonly size_t rows
    cdef float[::1] f32_values

    def __init__(self, container, entry, size_t rows):
        enc = entry["encoding"]
        self.rows = rows
        self.c.divisor = 10.0 ** int(entry["scale"]) if enc == "decimal" else 1.0
        self.c.constant = 0
        self.c.f32_table = NULL
        self.c.guard = NULL
        self.c.bits = self.c.stride = self.c.shift = 0
        self.c.base = 0
        self.segment = None
        cdef size_t expected
        if enc == "float64":
            self.c.width, self.c.kind = 8, OIC_COL_FLOAT
        else:
            try:
                self.c.width, signed = _WIDTH[entry["dtype"]]
            except KeyError:
                if enc != "dict" or entry.get("segment") is not None or "ints" in entry:
                    raise FormatError(f"column {entry['name']!r}: unknown dtype {entry.get('dtype')!r}", path=container.path) from None
                self.c.width, signed = 1, 0  # a one-value dictionary: every row is code 0
            self.c.kind = OIC_COL_SIGNED if signed else OIC_COL_UNSIGNED
        ints = entry.get("ints")
        if ints is not None:
            # oicore.store checked bits (0..56), base, stride, shift and the segment's length against the rows.
            self.c.base = ints["base"]
            if ints["bits"] == 0:
                self.c.constant = ints["base"]
                return
            self.c.width, self.c.bits = 0, ints["bits"]
            self.c.stride, self.c.shift = ints.get("stride", self.c.bits), ints.get("shift", 0)
            if not self.c.bits + self.c.shift <= self.c.stride <= 64:
                raise FormatError(f"column {entry['name']!r}: {self.c.bits} bits at {self.c.shift} of {self.c.stride}-bit records", path=container.path)
            self.segment = Segment(container, ints["segment"])
            expected = (rows * <size_t>self.c.stride + 7) >> 3
            if self.c.bits <= 8:
                self.f32_values = ((np.arange(256, dtype=np.float64) + self.c.base) / self.c.divisor).astype(np.float32)
                self.c.f32_table = &self.f32_values[0]
        elif entry.get("segment") is None:
            if enc != "dict":
                raise FormatError(f"column {entry['name']!r}: no segment", path=container.path)
            return
        else:
            self.segment = Segment(container, entry["segment"])
            expected = rows * <size_t>self.c.width
            if self.c.width == 1 and self.c.kind == OIC_COL_UNSIGNED:
                self.f32_values = (np.arange(256, dtype=np.float64) / self.c.divisor).astype(np.float32)
                self.c.f32_table = &self.f32_values[0]
        if self.segment.length != expected:
            raise FormatError(f"column {entry['name']!r}: expected {expected} bytes for {rows} rows, got {self.segment.length}", path=container.path)
        self.c.guard = &self.segment.g

    cdef bint all_checked(self):
        return self.segment is None or self.segment.all_checked()

    cdef inline int check(self, size_t lo, size_t hi) except -1:
        cdef size_t a, b
        if self.segment is None:
            return 0
        oic_col_span(&self.c, lo, hi, &a, &b)
        return self.segment.check(a, b)

    def value(self, size_t row):
        """Row ``row``'s stored value: the integer (a decimal's ``k``), or a float64 column's float."""
        if row >= self.rows:
            raise IndexError(f"row {row} outside the column's {self.rows}")
        self.check(row, row + 1)
        if self.c.kind == OIC_COL_FLOAT:
            return oic_col_double(&self.c, row)
        return oic_col_int(&self.c, row)


def _ints_column(container, desc, size_t rows, name, bint strided=False):
    """A Column over a packed index array (an *ints* object), read as unsigned 64-bit integers; only
    ``strided`` ones (blocked offsets' ``local``) may be fields of records (FORMAT.md)."""
    if not strided and isinstance(desc, dict) and ("stride" in desc or "shift" in desc):
        raise FormatError(f"{name}: this index array cannot have a stride", path=container.path)
    return Column(container, {"name": name, "encoding": "int", "ints": desc, "dtype": "u8"}, rows)


cdef class Offsets:
    """Offsets with n entries: items of entry i are [o[i], o[i+1]). Either FORMAT.md's blocked form
    (``block``, ``base``, ``local``) or a raw uint32 array (``segment``)."""

    cdef oic_offsets o
    cdef readonly Column base, local
    cdef size_t n  # entries (n_items + 1)
    cdef size_t limit

    def __init__(self, container, spec, size_t n, size_t limit):
        cdef size_t block
        if "block" in spec:
            block = spec["block"]
            self.base = _ints_column(container, spec["base"], (n + block - 1) // block, "offsets base")
            self.local = _ints_column(container, spec["local"], n, "offsets local", True)
            self.o.shift = (block - 1).bit_length()
        else:
            self.base = Column(container, {"name": "offsets base", "encoding": "dict"}, 1)  # constant 0
            self.local = Column(container, {"name": "offsets", "encoding": "int", "segment": spec["segment"], "dtype": spec["dtype"]}, n)
            self.o.shift = 0
        self.o.base = self.base.c
        self.o.local = self.local.c
        self.n = n
        self.limit = limit

    cdef int check_all(self) except -1:
        self.base.check(0, self.base.rows)
        self.local.check(0, self.n)
        return 0

    def pair(self, size_t i):
        """The item range ``(lo, hi)`` of entry ``i``, checked against the items' count."""
        cdef size_t lo, hi
        if i + 1 >= self.n:
            raise IndexError(f"entry {i} outside the offsets' {self.n - 1}")
        self.range(i, &lo, &hi)
        return lo, hi

    cdef bint all_checked(self):
        return self.base.all_checked() and self.local.all_checked()

    cdef int range(self, size_t i, size_t *lo, size_t *hi, bint check=True) except -1:
        """Entry ``i``'s item range, checked against the items' count; ``check`` False skips the CRC checks
        (every block already checked: ``all_checked``)."""
        cdef int64_t a, b
        if check:
            self.local.check(i, i + 2)
            self.base.check(i >> self.o.shift, ((i + 1) >> self.o.shift) + 1)
        oic_offset_pair(&self.o, i, &a, &b)
        if a < 0 or a > b or <size_t>b > self.limit:
            raise FormatError(f"offsets [{a}, {b}) at {i} outside 0..{self.limit}", path=self.local.segment.path if self.local.segment is not None else None)
        lo[0], hi[0] = <size_t>a, <size_t>b
        return 0


def images_matching(Offsets offsets not None, Column code not None, Column confidence, Column source, int64_t want_code,
                    int64_t want_source=-1, int positive=-1, double threshold=-1e300):
    """Sorted indexes of the images with a row of label ``want_code`` that passes the filters: stored Source
    value ``want_source`` (-1: any), ``positive`` (1: confidence > 0, 0: confidence == 0, -1: either) and
    confidence >= ``threshold``. One pass over the offsets and the rows in place, without the GIL; every
    block is checked first, and every row range against the table's rows."""
    cdef size_t n = offsets.n - 1, i, r
    cdef int64_t a, b
    cdef double v
    cdef bint use_conf = confidence is not None and (positive >= 0 or threshold > -1e300)
    if want_source >= 0 and source is None:
        raise ValueError("a Source filter needs the Source column")
    offsets.check_all()
    code.check(0, code.rows)
    if use_conf:
        confidence.check(0, confidence.rows)
    if want_source >= 0:
        source.check(0, source.rows)
    out = np.empty(n, np.int64)
    cdef int64_t[::1] o = out
    cdef size_t k = 0, bad = n
    with nogil:
        for i in range(n):
            oic_offset_pair(&offsets.o, i, &a, &b)
            if a < 0 or a > b or <size_t>b > offsets.limit or <size_t>b > code.rows:
                bad = i
                break
            for r in range(<size_t>a, <size_t>b):
                if oic_col_int(&code.c, r) != want_code:
                    continue
                if want_source >= 0 and oic_col_int(&source.c, r) != want_source:
                    continue
                if use_conf:
                    v = oic_col_double(&confidence.c, r)
                    if (positive == 1 and not v > 0) or (positive == 0 and v != 0) or v < threshold:
                        continue
                o[k] = <int64_t>i
                k += 1
                break
    if bad < n:
        raise FormatError(f"offsets [{a}, {b}) at {bad} outside 0..{offsets.limit}", path=code.segment.path if code.segment is not None else None)
    return out[:k].copy()


cdef int to_id(object x, uint64_t *out) except -1:
    """A 16-hex string (either case), a Python int or a numpy integer, as a uint64."""
    cdef const char *s
    cdef Py_ssize_t n
    if isinstance(x, str):
        s = PyUnicode_AsUTF8AndSize(x, &n)
        if oic_parse_hex_id(s, <size_t>n, out) != 0:
            raise InvalidImageIDError(f"expected an image ID of 16 hex digits, got {x!r}")
        return 0
    if type(x) is int:
        try:  # negative and too large ints raise OverflowError (no comparison of Python ints on the hot path)
            out[0] = <uint64_t>x  # Cython's conversion reads an int's digits directly
        except OverflowError:
            raise InvalidImageIDError(f"expected an image ID within uint64, got {x}") from None
        return 0
    if isinstance(x, bool) or not (isinstance(x, int) or isinstance(x, np.integer)):
        raise InvalidImageIDError(f"expected an image ID (16 hex digits or an integer), got {type(x).__name__} {x!r}")
    v = int(x)
    if not 0 <= v < 2**64:
        raise InvalidImageIDError(f"expected an image ID within uint64, got {v}")
    out[0] = <uint64_t>v
    return 0


def parse_id(x):
    """An image ID as a Python int (InvalidImageIDError when malformed)."""
    cdef uint64_t v
    to_id(x, &v)
    return v


cdef class ImageIndex:
    """Sorted unique image IDs and the bucket table on their top bits."""

    cdef Segment ids_seg, buckets_seg
    cdef const uint64_t *ids
    cdef const uint32_t *buckets
    cdef readonly size_t n
    cdef int bits
    cdef object path

    def __init__(self, container, entry):
        self.path = container.path
        self.n = entry["count"]
        self.bits = entry["bucket_bits"]
        if not 1 <= self.bits <= 24 or entry.get("buckets_dtype", "u4") != "u4":
            raise FormatError(f"image buckets: expected 1..24 bits of u4, got {self.bits}", path=self.path)
        self.ids_seg = Segment(container, entry["ids"])
        self.buckets_seg = Segment(container, entry["buckets"])
        if self.ids_seg.length != self.n * 8 or self.buckets_seg.length != ((<size_t>1 << self.bits) + 1) * 4:
            raise FormatError("image IDs or buckets: sizes do not match the count", path=self.path)
        self.ids = <const uint64_t *>self.ids_seg.g.base
        self.buckets = <const uint32_t *>self.buckets_seg.g.base

    cdef bint all_checked(self):
        return self.ids_seg.all_checked() and self.buckets_seg.all_checked()

    cdef int bucket(self, uint64_t id, size_t *lo, size_t *hi, bint check=True) except -1:
        """The IDs of ``id``'s bucket, ``ids[lo, hi)``, within the IDs; their lines are fetched from here on.
        ``check`` False skips the CRC checks (every block already checked: ``all_checked``)."""
        cdef uint64_t top = id >> (64 - self.bits)
        if check:
            self.buckets_seg.check(top * 4, top * 4 + 8)
        if oic_bucket(self.buckets, self.bits, self.n, id, lo, hi) != 0:
            raise FormatError(f"image bucket {top}: [{lo[0]}, {hi[0]}) outside the {self.n} IDs", path=self.path)
        if check:
            self.ids_seg.check(lo[0] * 8, hi[0] * 8)
        if hi[0] > lo[0]:
            __builtin_prefetch(self.ids + lo[0])
            __builtin_prefetch(self.ids + hi[0] - 1)
        return 0

    cdef inline int64_t search(self, uint64_t id, size_t lo, size_t hi):
        """The index of ``id`` in its bucket ``[lo, hi)`` (from ``bucket``), or -1."""
        return oic_search_ids(self.ids, lo, hi, id)

    cdef int64_t find(self, uint64_t id) except -2:
        cdef size_t lo, hi
        self.bucket(id, &lo, &hi)
        return oic_search_ids(self.ids, lo, hi, id)

    def index(self, image_id):
        """The index of an image ID, or -1."""
        cdef uint64_t v
        to_id(image_id, &v)
        return self.find(v)

    def find_many(self, cnp.ndarray ids_array):
        """Indexes (int64, -1 when absent) of a uint64 array of IDs; the GIL is released."""
        cdef const uint64_t[::1] ids = np.ascontiguousarray(ids_array, dtype=np.uint64)
        cdef Py_ssize_t i, n = ids.shape[0]
        out = np.empty(n, np.int64)
        cdef int64_t[::1] o = out
        self.ids_seg.check(0, self.ids_seg.length)
        self.buckets_seg.check(0, self.buckets_seg.length)
        # Whole segments checked: the loop below reads only sound bytes. Buckets were checked monotone
        # by oicore.store when the release opened them for batches.
        with nogil:
            for i in range(n):
                o[i] = oic_find_image(self.ids, self.n, self.buckets, self.bits, ids[i])
        return out


cdef extern from "oic_batch.h" nogil:
    ctypedef struct oic_batch_table:
        const oic_offsets *offsets
        size_t limit
        const oic_col *code
        const oic_col *conf
        const oic_col *source
        const uint8_t *source_map
        int want
        int fast
        size_t safe
    ctypedef struct oic_batch:
        const uint64_t *ids
        size_t n_ids
        const uint32_t *buckets
        int bits
        int n_tables
        oic_batch_table t[4]
        int want_source
        double threshold
        int filtered
    void oic_batch_table_init(oic_batch_table *t)
    void oic_batch_decode_fast(const oic_batch_table *t, size_t lo, size_t m, int32_t *label, float *conf, uint8_t *src)
    int64_t oic_batch_count(const oic_batch *c, const uint64_t *query, size_t j0, size_t j1, uint32_t *range, int64_t *count, size_t *missing)
    void oic_batch_fill(const oic_batch *c, const uint32_t *range, const int64_t *start, size_t j0, size_t j1, int32_t *label, float *conf, uint8_t *src)


cdef class LabelTable:
    """One image-level label table (human or machine): offsets per image, codes, confidences, sources."""

    cdef readonly Offsets offsets
    cdef readonly Column code, confidence, source
    cdef uint8_t source_map[256]
    cdef readonly int is_human
    cdef oic_batch_table run  # the table as oic_batch.h reads it: its fast path decided once

    def __init__(self, container, entry, size_t n_images, list source_codes, int is_human):
        rows = entry["rows"]
        cols = {c["name"]: c for c in entry["columns"]}
        ir = entry["image_rows"]
        self.offsets = Offsets(container, ir, n_images + 1, entry.get("lookup_rows", rows))
        self.code = Column(container, cols["LabelName"], rows)
        self.confidence = Column(container, cols["Confidence"], rows)
        self.source = Column(container, cols["Source"], rows) if "Source" in cols else None
        _fill_source_map(self.source_map, source_codes, container.path)
        self.is_human = is_human
        self.run.offsets = &self.offsets.o
        self.run.limit = self.offsets.limit
        self.run.code = &self.code.c
        self.run.conf = &self.confidence.c
        self.run.source = &self.source.c if self.source is not None else NULL
        self.run.source_map = self.source_map
        self.run.want = 1
        oic_batch_table_init(&self.run)

    cdef bint all_checked(self):
        return (self.offsets.all_checked() and self.code.all_checked() and self.confidence.all_checked()
                and (self.source is None or self.source.all_checked()))


cdef class _Coded:
    """A lookup result whose ``label`` codes index the release's vocabulary."""

    cdef readonly object label
    cdef object _release

    def __len__(self):
        return len(self.label)

    @property
    def mids(self):
        return self._release._mid_list(self.label)

    @property
    def names(self):
        return self._release._name_list(self.label)


cdef class Labels(_Coded):
    """The image-level labels of one image: human rows first, then machine, each in file order.

    ``label`` (int32 codes into ``release.mids``), ``confidence`` (float32) and ``source`` (uint8 codes into
    ``release.sources``) are numpy arrays; ``mids`` and ``names`` are lists of str.
    """

    cdef readonly object confidence
    cdef bytes _buffer  # labels, confidences and sources as decoded (labels() made it)
    cdef size_t _sources_at
    cdef object _source

    @property
    def source(self):
        # Most callers read labels and confidences only: an array fewer to make and free per call.
        if self._source is None:
            self._source = np.frombuffer(self._buffer, np.uint8, len(self.label), self._sources_at).copy()
        return self._source

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(
            {
                "LabelName": self.mids,
                "DisplayName": self.names,
                "Confidence": self.confidence,
                "Source": [self._release.sources[s] for s in self.source],
            }
        )

    def __repr__(self):
        return f"<Labels: {len(self.label)} rows>"


cdef int _source_filter(object source, list tables, uint8_t *want_table, int *want_source, list sources) except -1:
    cdef int t
    want_source[0] = -1
    for t in range(len(tables)):
        want_table[t] = 1
    if source is None:
        return 0
    if source == "human" or source == "machine":
        for t in range(len(tables)):
            want_table[t] = (<LabelTable>tables[t]).is_human == (source == "human")
        return 0
    try:
        want_source[0] = sources.index(source)
    except ValueError:
        raise ValueError(f"unknown source {source!r}; expected 'human', 'machine' or one of {sources}") from None
    return 0


def threshold_of(min_confidence) -> float:
    """``min_confidence`` as the double that confidences are compared with (``>=``); -1e300 for None."""
    if min_confidence is None:
        return -1e300
    if isinstance(min_confidence, (str, bytes)):
        raise TypeError(f"min_confidence must be a number or None, got {min_confidence!r}")
    v = float(min_confidence)
    if v != v:
        raise ValueError("min_confidence must be a number, not NaN (no confidence is >= NaN)")
    return v


cdef class _Deferred:
    """A lookup whose tables are set up on first use: ``build(lookup)`` calls its ``setup``. A Release makes
    its lookups at open (nothing read) and hands out their bound methods, so ``f = release.labels`` taken
    before any call is as fast as a call after it; ``close()`` makes every later call raise."""

    cdef object build
    cdef readonly bint ready
    cdef bint closed
    cdef object closed_message

    def __init__(self, build):
        self.build = build

    cdef inline int prepare(self) except -1:
        if not self.ready or self.closed:
            if self.closed:
                raise ValueError(self.closed_message)
            self.build(self)  # under the Release's lock; calls setup, which sets ready
        return 0

    def prepared(self):
        """The lookup, set up (building its tables now if needed)."""
        self.prepare()
        return self

    def close(self, message="operation on a closed Release"):
        self.closed = True
        self.closed_message = message


cdef class LabelLookup(_Deferred):
    """``labels()`` and ``labels_many()`` over the release's label tables."""

    cdef ImageIndex images
    cdef list tables
    cdef object release
    cdef list sources
    cdef readonly bint hot  # every block labels() reads has been checked: it skips the per-call CRC bookkeeping
    cdef unsigned int cold_calls

    def setup(self, ImageIndex images, list tables, release, list sources):
        self.images = images
        self.tables = tables
        self.release = release
        self.sources = sources
        self.ready = True

    cdef bint all_checked(self):
        cdef LabelTable tab
        if not self.images.all_checked():
            return False
        for tab in self.tables:
            if not tab.all_checked():
                return False
        return True

    def labels(self, image_id, source=None, min_confidence=None):
        """Every image-level label row of an image: human tables first, then machine, each in file order.

        ``source`` is ``"human"``, ``"machine"`` or an exact Source value; ``min_confidence`` keeps rows with
        confidence ≥ it. Malformed IDs raise ``InvalidImageIDError``; IDs in no table raise ``KeyError``.
        """
        cdef uint64_t id
        cdef int64_t i
        cdef size_t lo[4]
        cdef size_t hi[4]
        cdef size_t total = 0, r, k = 0, blo, bhi
        cdef int t, nt
        cdef uint8_t want_table[4]
        cdef int want_source
        cdef LabelTable tab
        cdef double threshold = -1e300
        cdef double v
        cdef uint8_t s
        self.prepare()
        # Until every block these reads touch has been checked, each read checks its blocks first. Row
        # ranges are checked against the tables' sizes on every call.
        cdef bint check = not self.hot
        nt = len(self.tables)
        to_id(image_id, &id)
        # The image's index is in [blo, bhi), a few entries: its offsets are fetched while the IDs are,
        # so the two cache misses overlap instead of following each other.
        self.images.bucket(id, &blo, &bhi, check)
        for t in range(nt):
            oic_offsets_prefetch(&(<LabelTable>self.tables[t]).offsets.o, blo)
            oic_offsets_prefetch(&(<LabelTable>self.tables[t]).offsets.o, bhi)
        i = self.images.search(id, blo, bhi)
        if i < 0:
            raise KeyError(f"image {id:016x} is in no table of this release")
        if source is not None:
            _source_filter(source, self.tables, want_table, &want_source, self.sources)
        else:
            want_source = -1
            for t in range(nt):
                want_table[t] = 1
        if min_confidence is not None:
            threshold = threshold_of(min_confidence)
        for t in range(nt):
            tab = self.tables[t]
            tab.offsets.range(<size_t>i, &lo[t], &hi[t], check)
            oic_col_prefetch(&tab.code.c, lo[t])
            oic_col_prefetch(&tab.confidence.c, lo[t])
            if tab.source is not None:
                oic_col_prefetch(&tab.source.c, lo[t])
        for t in range(nt):
            tab = self.tables[t]
            if want_table[t]:
                total += hi[t] - lo[t]
                if check:
                    tab.code.check(lo[t], hi[t])
                    tab.confidence.check(lo[t], hi[t])
                    if tab.source is not None:
                        tab.source.check(lo[t], hi[t])
        # One buffer holds the labels, the confidences and the sources; the two arrays are views of it.
        cdef bytes buf = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(9 * total))
        cdef bint unfiltered = threshold <= -1e300 and want_source < 0
        cdef int32_t *pl = <int32_t *>PyBytes_AS_STRING(buf)
        cdef float *pc = <float *>(PyBytes_AS_STRING(buf) + 4 * total)
        cdef uint8_t *ps = <uint8_t *>(PyBytes_AS_STRING(buf) + 8 * total)
        for t in range(nt):
            if not want_table[t]:
                continue
            tab = self.tables[t]
            if unfiltered and tab.run.fast and hi[t] <= tab.run.safe:
                oic_batch_decode_fast(&tab.run, lo[t], hi[t] - lo[t], pl + k, pc + k, ps + k)
                k += hi[t] - lo[t]
                continue
            for r in range(lo[t], hi[t]):
                v = oic_col_double(&tab.confidence.c, r)
                s = tab.source_map[oic_col_int(&tab.source.c, r) & 255] if tab.source is not None else 255
                if v < threshold or (want_source >= 0 and s != want_source):
                    continue
                pl[k] = <int32_t>oic_col_int(&tab.code.c, r)
                pc[k] = <float>v
                ps[k] = s
                k += 1
        if check:
            self.cold_calls += 1
            if self.cold_calls % 64 == 0:
                self.hot = self.all_checked()
        cdef Labels out = Labels.__new__(Labels)
        out.label = _view_of(buf, _INT32, pl, k)
        out.confidence = _view_of(buf, _FLOAT32, pc, k)
        out._buffer, out._sources_at, out._release = buf, 8 * total, self.release
        return out

    def labels_many(self, cnp.ndarray ids, source=None, min_confidence=None, missing="raise"):
        """Ragged labels of many images: (offsets int64[n+1], label int32, confidence float32, source uint8).

        Runs without the GIL on ``oicore.get_num_threads()`` threads (oic_batch.h).
        """
        if missing not in ("raise", "empty"):
            raise ValueError(f"missing must be 'raise' or 'empty', got {missing!r}")
        self.prepare()
        cdef BatchRun b = BatchRun.__new__(BatchRun)
        b.setup(self, source, min_confidence)
        return b.run(np.ascontiguousarray(ids, dtype=np.uint64), missing, self.images.path)


# ---- batches ---------------------------------------------------------------------------------------

cdef extern from "oic_pool.h":
    size_t oic_pool_min
    void *oic_pool_alloc(size_t n, size_t *cap)
    void oic_pool_free(void *p, size_t cap)
    void oic_pool_clear()


cdef class _Block:
    """Memory that numpy arrays view (np.frombuffer keeps the block alive); back to the pool when they die."""

    cdef char *p
    cdef size_t cap
    cdef Py_ssize_t nbytes

    def __getbuffer__(self, Py_buffer *buf, int flags):
        PyBuffer_FillInfo(buf, self, self.p, self.nbytes, 0, flags)

    def __dealloc__(self):
        oic_pool_free(self.p, self.cap)
        self.p = NULL


cdef _Block _block(size_t nbytes):
    cdef _Block b = _Block.__new__(_Block)
    b.p = <char *>oic_pool_alloc(nbytes, &b.cap)
    if b.p == NULL:
        raise MemoryError(f"cannot allocate {nbytes} bytes for a batch")
    b.nbytes = <Py_ssize_t>nbytes
    return b


def _pool_settings(min_bytes=None, clear=False):
    """Tests: the smallest pooled buffer (None: unchanged), and free the waiting ones; returns the old minimum."""
    global oic_pool_min
    old = oic_pool_min
    if min_bytes is not None:
        oic_pool_min = min_bytes
    if clear:
        oic_pool_clear()
    return old


cdef size_t _align64(size_t n) noexcept nogil:
    return (n + 63) & ~(<size_t>63)


cdef class BatchRun:
    """One labels_many call: the C context and raw pointers into its arrays, each pass run range by range on
    several threads (oicore.threads)."""

    cdef oic_batch ctx
    cdef const uint64_t *query
    cdef uint32_t *range
    cdef int64_t *start
    cdef int32_t *label
    cdef float *conf
    cdef uint8_t *src

    cdef setup(self, LabelLookup owner, source, min_confidence):
        cdef LabelTable tab
        cdef int t
        cdef uint8_t want[4]
        cdef int want_source
        images = owner.images
        if images.n >= 0x7FFFFFFF:
            raise FormatError(f"{images.n} images: labels_many handles fewer than 2^31 - 1", path=images.path)
        images.ids_seg.check(0, images.ids_seg.length)
        images.buckets_seg.check(0, images.buckets_seg.length)
        self.ctx.ids = images.ids
        self.ctx.n_ids = images.n
        self.ctx.buckets = images.buckets
        self.ctx.bits = images.bits
        self.ctx.n_tables = len(owner.tables)
        _source_filter(source, owner.tables, want, &want_source, owner.sources)
        self.ctx.want_source = want_source
        self.ctx.threshold = threshold_of(min_confidence)
        self.ctx.filtered = want_source >= 0 or self.ctx.threshold > -1e300
        for t in range(self.ctx.n_tables):
            tab = owner.tables[t]
            # Whole columns are checked once: the C loops then read only sound bytes.
            tab.offsets.check_all()
            tab.code.check(0, tab.code.rows)
            tab.confidence.check(0, tab.confidence.rows)
            if tab.source is not None:
                tab.source.check(0, tab.source.rows)
            if tab.offsets.limit >= 0xFFFFFFFF:
                raise FormatError(f"{tab.offsets.limit} rows: labels_many handles tables below 2^32 - 1 rows", path=images.path)
            self.ctx.t[t] = tab.run
            self.ctx.t[t].want = want[t]

    def count_range(self, size_t j0, size_t j1):
        cdef int64_t bad = -1
        cdef size_t missing = j1
        if self.range == NULL:
            raise RuntimeError("count_range outside run()")
        if j1 > j0:
            with nogil:
                bad = oic_batch_count(&self.ctx, self.query, j0, j1, self.range, self.start + 1, &missing)
        return bad, (<int64_t>missing if missing < j1 else -1)

    def fill_range(self, size_t j0, size_t j1):
        if self.label == NULL:
            raise RuntimeError("fill_range outside run()")
        if j1 > j0:
            with nogil:
                oic_batch_fill(&self.ctx, self.range, self.start, j0, j1, self.label, self.conf, self.src)

    def run(self, query, missing, path):
        """The batch of a uint64 array: (offsets, label, conf, src), each a view of a pooled block."""
        try:
            return self._run(query, missing, path)
        finally:  # the pointers die with the blocks
            self.query, self.range, self.start, self.label, self.conf, self.src = NULL, NULL, NULL, NULL, NULL, NULL

    cdef _run(self, query, missing, path):
        from oicore.threads import get_num_threads, run_bounds, run_ranges

        cdef size_t n = len(query), j, total
        cdef const uint64_t[::1] q = query
        cdef _Block head, rows, scratch
        head = _block(8 * (n + 1))  # the offsets (int64, n + 1)
        self.start = <int64_t *>head.p
        self.start[0] = 0
        scratch = _block(8 * n * self.ctx.n_tables)  # each query's row range in each table (uint32 pairs)
        self.range = <uint32_t *>scratch.p
        self.query = &q[0] if n else NULL
        found = run_ranges(self.count_range, n, min_items=BATCH_MIN_QUERIES)
        for bad, _ in found:
            if bad >= 0:
                raise FormatError(f"image row offsets outside their table (query {bad})", path=path)
        first_missing = min([m for _, m in found if m >= 0] + [n])
        if missing == "raise" and first_missing < n:
            raise KeyError(f"image {int(query[first_missing]):016x} (at index {first_missing}) is in no table of this release")
        with nogil:
            for j in range(n):
                self.start[j + 1] += self.start[j]
        total = <size_t>self.start[n]
        rows = _block(_align64(4 * total) * 2 + total)
        self.label = <int32_t *>rows.p
        self.conf = <float *>(rows.p + _align64(4 * total))
        self.src = <uint8_t *>(rows.p + 2 * _align64(4 * total))
        offsets = np.frombuffer(head, np.int64, n + 1)
        k = max(1, min(get_num_threads(), total // BATCH_MIN_ROWS))
        if k > 1:  # ranges of about equal rows: the fill's work is in its rows
            bounds = np.searchsorted(offsets, np.arange(k + 1) * (total / k), "left")
            bounds[0], bounds[k] = 0, n
            run_bounds(self.fill_range, bounds.tolist())
        else:
            self.fill_range(0, n)
        return (
            offsets,
            np.frombuffer(rows, np.int32, total, 0),
            np.frombuffer(rows, np.float32, total, _align64(4 * total)),
            np.frombuffer(rows, np.uint8, total, 2 * _align64(4 * total)),
        )


# Work per thread below which a batch pass runs on fewer threads (tests lower them).
BATCH_MIN_QUERIES = 65536
BATCH_MIN_ROWS = 500000


cdef class BoxTable:
    """The boxes table's lookup columns: offsets per image, row images, the class index."""

    cdef readonly Offsets offsets
    cdef readonly Column code, source, conf
    cdef readonly Column xmin, xmax, ymin, ymax
    cdef readonly list flags  # five Columns or None (absent: -1)
    cdef readonly list flag_nulls  # per flag, the Segment of its null bitmap (empty fields: -1), or None
    cdef readonly Column row_image
    cdef readonly Offsets class_offsets
    cdef readonly Column class_rows
    cdef uint8_t source_map[256]
    cdef readonly size_t rows

    def __init__(self, container, entry, size_t n_images, size_t n_codes, list source_codes):
        rows = entry.get("lookup_rows", entry["rows"])
        all_rows = entry["rows"]
        self.rows = rows
        cols = {c["name"]: c for c in entry["columns"]}
        ir = entry["image_rows"]
        self.offsets = Offsets(container, ir, n_images + 1, rows)
        self.code = Column(container, cols["LabelName"], all_rows)
        self.source = Column(container, cols["Source"], all_rows) if "Source" in cols else None
        self.xmin = Column(container, cols["XMin"], all_rows)
        self.xmax = Column(container, cols["XMax"], all_rows)
        self.ymin = Column(container, cols["YMin"], all_rows)
        self.ymax = Column(container, cols["YMax"], all_rows)
        self.flags = [Column(container, cols[f], all_rows) if f in cols else None for f in FLAGS]
        self.flag_nulls = []
        for f in FLAGS:
            nulls = cols[f].get("nulls") if f in cols else None
            seg = Segment(container, nulls) if nulls is not None else None
            if seg is not None and seg.length != (all_rows + 7) // 8:
                raise FormatError(f"column {f!r}: a null bitmap of {seg.length} bytes for {all_rows} rows", path=container.path)
            self.flag_nulls.append(seg)
        self.row_image = _ints_column(container, entry["row_image"], rows, "row_image")
        cr = entry["class_rows"]
        self.class_offsets = Offsets(container, {"segment": cr["offsets"], "dtype": "u4"}, n_codes + 1, rows)
        self.class_rows = _ints_column(container, cr["rows"], rows, "class_rows")
        _fill_source_map(self.source_map, source_codes, container.path)

    cdef bint all_checked(self):
        """Whether every block that boxes_for_image reads has been checked."""
        for col in (self.code, self.source, self.xmin, self.xmax, self.ymin, self.ymax, self.row_image, *self.flags):
            if col is not None and not (<Column>col).all_checked():
                return False
        for seg in self.flag_nulls:
            if seg is not None and not (<Segment>seg).all_checked():
                return False
        return self.offsets.all_checked()

    cdef int check_nulls(self, size_t lo, size_t hi) except -1:
        """Check the flags' null bitmaps over rows [lo, hi)."""
        for seg in self.flag_nulls:
            if seg is not None and hi > lo:
                (<Segment>seg).check(lo >> 3, ((hi - 1) >> 3) + 1)
        return 0


FLAGS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")


cdef class Boxes(_Coded):
    """Boxes: ``image_id`` (uint64), ``label`` (int32 codes), ``boxes`` (N×4 float32: XMin, XMax, YMin, YMax),
    the five flags (int8, −1 unknown), ``source`` and ``split`` (uint8 codes into ``release.sources`` and
    ``release.splits``)."""

    cdef readonly object image_id, boxes, is_occluded, is_truncated, is_group_of, is_depiction, is_inside
    cdef readonly object source, split

    @property
    def xmin(self):
        return self.boxes[:, 0]

    @property
    def xmax(self):
        return self.boxes[:, 1]

    @property
    def ymin(self):
        return self.boxes[:, 2]

    @property
    def ymax(self):
        return self.boxes[:, 3]

    def to_pandas(self):
        import pandas as pd

        return pd.DataFrame(
            {
                "ImageID": [f"{int(i):016x}" for i in self.image_id],
                "LabelName": self.mids,
                "XMin": self.boxes[:, 0],
                "XMax": self.boxes[:, 1],
                "YMin": self.boxes[:, 2],
                "YMax": self.boxes[:, 3],
                "IsOccluded": self.is_occluded,
                "IsTruncated": self.is_truncated,
                "IsGroupOf": self.is_group_of,
                "IsDepiction": self.is_depiction,
                "IsInside": self.is_inside,
                "Source": [self._release.sources[s] if s < len(self._release.sources) else None for s in self.source],
                "split": [self._release.splits[s] if s < len(self._release.splits) else None for s in self.split],
            }
        )

    def __repr__(self):
        return f"<Boxes: {len(self.image_id)} rows>"


def freeze(Boxes b):
    """Make a Boxes' arrays read-only (results shared through a cache)."""
    for a in (b.image_id, b.label, b.boxes, b.is_occluded, b.is_truncated, b.is_group_of, b.is_depiction, b.is_inside, b.source, b.split):
        a.flags.writeable = False


cdef class BoxLookup(_Deferred):
    """``boxes_for_image()`` and ``boxes()`` (per class) over the boxes table."""

    cdef ImageIndex images
    cdef BoxTable table
    cdef object release
    cdef const uint8_t *splits
    cdef Segment split_seg
    cdef readonly bint hot  # every block boxes_for_image reads has been checked: no per-call CRC bookkeeping
    cdef unsigned int cold_calls

    def setup(self, ImageIndex images, BoxTable table, release, container, split_segment):
        split_seg = Segment(container, split_segment)
        if split_seg.length != images.n:
            raise FormatError("image splits: size does not match the image count", path=container.path)
        self.images, self.table, self.release = images, table, release
        self.split_seg = split_seg
        self.splits = self.split_seg.g.base
        self.ready = True

    def setup_without_boxes(self, ImageIndex images, release):
        """A release with no boxes file: known images have no boxes, unknown ones raise KeyError."""
        self.images, self.table, self.release = images, None, release
        self.ready = True

    cdef Boxes empty(self):
        return self.boxes_in(b"", 0, 0)

    cdef Boxes boxes_in(self, bytes buf, size_t n, size_t k):
        """A Boxes of the first ``k`` rows laid out in ``buf`` for ``n`` (gather's layout): views of it."""
        cdef char *base = PyBytes_AS_STRING(buf)
        cdef int8_t *pf = <int8_t *>(base + 28 * n)
        cdef Boxes out = Boxes.__new__(Boxes)
        out.image_id = _view_of(buf, _UINT64, base, k)
        out.label = _view_of(buf, _INT32, base + 24 * n, k)
        out.boxes = _rows_view_of(buf, _FLOAT32, base + 8 * n, k, 4)
        out.is_occluded = _view_of(buf, _INT8, pf, k)
        out.is_truncated = _view_of(buf, _INT8, pf + n, k)
        out.is_group_of = _view_of(buf, _INT8, pf + 2 * n, k)
        out.is_depiction = _view_of(buf, _INT8, pf + 3 * n, k)
        out.is_inside = _view_of(buf, _INT8, pf + 4 * n, k)
        out.source = _view_of(buf, _UINT8, base + 33 * n, k)
        out.split = _view_of(buf, _UINT8, base + 34 * n, k)
        out._release = self.release
        return out

    cdef Boxes gather(self, const oic_col *rowcol, const uint32_t *rows, size_t lo, size_t hi, int split_filter):
        """Rows [lo, hi), or the rows listed at [lo, hi) of rowcol (a packed column) or of rows, keeping one
        split when split_filter >= 0."""
        cdef BoxTable t = self.table
        cdef size_t n = hi - lo, i, r, k = 0
        cdef int f
        cdef uint64_t img
        # One buffer holds every array (35 bytes a row, the 8-byte IDs first); boxes_in makes the arrays, views
        # of it, from the same offsets.
        cdef bytes buf = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>(35 * n))
        cdef char *base = PyBytes_AS_STRING(buf)
        cdef uint64_t *pid = <uint64_t *>base
        cdef float *pb = <float *>(base + 8 * n)
        cdef int32_t *pl = <int32_t *>(base + 24 * n)
        cdef int8_t *pf = <int8_t *>(base + 28 * n)  # five rows of n: IsOccluded ... IsInside
        cdef uint8_t *ps = <uint8_t *>(base + 33 * n)
        cdef uint8_t *psp = <uint8_t *>(base + 34 * n)
        cdef const oic_col *fc[5]
        cdef const uint8_t *fn[5]  # a null (empty field) reads as -1, as an absent column does
        for f in range(5):
            fc[f] = &(<Column>t.flags[f]).c if t.flags[f] is not None else NULL
            fn[f] = (<Segment>t.flag_nulls[f]).g.base if t.flag_nulls[f] is not None else NULL
        cdef const oic_col *sc = &t.source.c if t.source is not None else NULL
        cdef uint8_t sp
        cdef int damaged = 0
        cdef size_t ahead
        cdef uint64_t img_ahead
        with nogil:
            for i in range(lo, hi):
                # A class's rows are scattered over the table: ask for the lines of the row _GATHER_AHEAD on
                # now, and for the image arrays of the row half as far on, whose row image is loaded by now.
                if i + _GATHER_AHEAD < hi:
                    ahead = _gathered_row(rowcol, rows, i + _GATHER_AHEAD)
                    if ahead < t.rows:
                        oic_col_prefetch(&t.row_image.c, ahead)
                        oic_col_prefetch(&t.code.c, ahead)
                        oic_col_prefetch(&t.xmin.c, ahead)
                        oic_col_prefetch(&t.xmax.c, ahead)
                        oic_col_prefetch(&t.ymin.c, ahead)
                        oic_col_prefetch(&t.ymax.c, ahead)
                    ahead = _gathered_row(rowcol, rows, i + _GATHER_AHEAD // 2)
                    if ahead < t.rows:
                        img_ahead = <uint64_t>oic_col_int(&t.row_image.c, ahead)
                        if img_ahead < self.images.n:
                            __builtin_prefetch(&self.images.ids[img_ahead])
                            __builtin_prefetch(&self.splits[img_ahead])
                r = _gathered_row(rowcol, rows, i)
                if r >= t.rows:
                    damaged = 1
                    break
                img = <uint64_t>oic_col_int(&t.row_image.c, r)
                if img >= self.images.n:
                    damaged = 1
                    break
                sp = self.splits[img]
                if split_filter >= 0 and sp != split_filter:
                    continue
                pid[k] = self.images.ids[img]
                pl[k] = <int32_t>oic_col_int(&t.code.c, r)
                pb[4 * k] = <float>oic_col_double(&t.xmin.c, r)
                pb[4 * k + 1] = <float>oic_col_double(&t.xmax.c, r)
                pb[4 * k + 2] = <float>oic_col_double(&t.ymin.c, r)
                pb[4 * k + 3] = <float>oic_col_double(&t.ymax.c, r)
                for f in range(5):
                    if fc[f] == NULL or (fn[f] != NULL and (fn[f][r >> 3] >> (r & 7)) & 1):
                        pf[f * n + k] = -1
                    else:
                        pf[f * n + k] = <int8_t>oic_col_int(fc[f], r)
                ps[k] = t.source_map[oic_col_int(sc, r) & 255] if sc != NULL else 255
                psp[k] = sp
                k += 1
        if damaged:
            raise FormatError("box rows or row images outside their table", path=self.images.path)
        return self.boxes_in(buf, n, k)

    cdef bint all_checked(self):
        return self.images.all_checked() and self.table.all_checked() and self.split_seg.all_checked()

    cdef int check_all(self) except -1:
        cdef BoxTable t = self.table
        for col in (t.code, t.source, t.xmin, t.xmax, t.ymin, t.ymax, t.row_image, *t.flags):
            if col is not None:
                (<Column>col).check(0, t.rows)
        t.check_nulls(0, t.rows)
        self.split_seg.check(0, self.split_seg.length)
        self.images.ids_seg.check(0, self.images.ids_seg.length)
        return 0

    def for_image(self, image_id):
        """The boxes of one image, in file order."""
        cdef uint64_t id
        cdef int64_t i
        cdef size_t lo, hi
        self.prepare()
        # As in labels(): until every block these reads touch has been checked, each call checks its
        # blocks first. Row ranges are checked against the table's size on every call.
        cdef bint check = not self.hot
        to_id(image_id, &id)
        self.images.bucket(id, &lo, &hi, check)
        oic_offsets_prefetch(&self.table.offsets.o, lo)
        oic_offsets_prefetch(&self.table.offsets.o, hi)
        i = self.images.search(id, lo, hi)
        if i < 0:
            raise KeyError(f"image {id:016x} is in no table of this release")
        if self.table is None:
            return self.empty()
        self.table.offsets.range(<size_t>i, &lo, &hi, check)
        cdef BoxTable t = self.table
        if check:
            for col in (t.code, t.source, t.xmin, t.xmax, t.ymin, t.ymax, t.row_image, *t.flags):
                if col is not None:
                    (<Column>col).check(lo, hi)
            t.check_nulls(lo, hi)
            self.split_seg.check(<size_t>i, <size_t>i + 1)
        out = self.gather(NULL, NULL, lo, hi, -1)
        if check:
            self.cold_calls += 1
            if self.cold_calls % 64 == 0:
                self.hot = self.all_checked()
        return out

    def for_images(self, cnp.ndarray ids, missing="raise"):
        """Ragged boxes of many images: (offsets int64[n+1], Boxes)."""
        self.prepare()
        cdef int64_t[::1] index = self.images.find_many(ids)
        if missing not in ("raise", "empty"):
            raise ValueError(f"missing must be 'raise' or 'empty', got {missing!r}")
        if missing == "raise":
            bad = np.flatnonzero(np.asarray(index) < 0)
            if len(bad):
                raise KeyError(f"image {int(ids[bad[0]]):016x} (at index {bad[0]}) is in no table of this release")
        if self.table is None:
            return np.zeros(index.shape[0] + 1, np.int64), self.empty()
        self.check_all()
        self.table.offsets.check_all()
        cdef Py_ssize_t j, n = index.shape[0]
        offsets = np.zeros(n + 1, np.int64)
        cdef int64_t[::1] off = offsets
        cdef size_t lo, hi, total = 0
        cdef const oic_offsets *oc = &self.table.offsets.o
        for j in range(n):
            if index[j] >= 0:
                lo = <size_t>oic_offset(oc, index[j])
                hi = <size_t>oic_offset(oc, index[j] + 1)
                if lo > hi or hi > self.table.rows:
                    raise FormatError("image row offsets outside the boxes table", path=self.images.path)
                total += hi - lo
            off[j + 1] = total
        rows = np.empty(total, np.uint32)
        cdef uint32_t[::1] pr = rows
        cdef size_t k = 0, r
        with nogil:
            for j in range(n):
                if index[j] >= 0:
                    lo = <size_t>oic_offset(oc, index[j])
                    hi = <size_t>oic_offset(oc, index[j] + 1)
                    for r in range(lo, hi):
                        pr[k] = <uint32_t>r
                        k += 1
        return offsets, self.gather(NULL, &pr[0] if total else NULL, 0, total, -1)

    def for_class(self, size_t code, int split_filter=-1):
        cdef size_t lo, hi
        self.prepare()
        if self.table is None:
            return self.empty()
        cdef BoxTable t = self.table
        self.table.class_offsets.range(code, &lo, &hi)
        self.check_all()
        t.class_rows.check(lo, hi)
        if hi == lo:
            return self.gather(NULL, NULL, 0, 0, split_filter)
        return self.gather(&t.class_rows.c, NULL, lo, hi, split_filter)
