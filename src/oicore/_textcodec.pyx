"""Cython layer of the text encodings (include/oic_textcodec.h; FORMAT.md, "Text encodings").

Encode side: bit packing, MD5 parsing, URL template matching, grouping strings into sorted dictionaries,
each over a range of rows with the GIL released (two threads may work on disjoint ranges of one column).
Decode side: whole-column rendering in three passes (lengths, write, or compare with the input to check
an encoding before it is written), and per-row readers for lookups that touch only the bytes the row
needs: raw arrays in the memory map, or one zstd frame through the caller's cache.

Structural checks of the directory entries are in ``textcodec.py``; these functions check what only the
bytes can tell (value ranges, exception order, block shapes) and report it as a status and a row, or as
``FormatError`` in the per-row readers.
"""

from libc.stdint cimport INT64_MAX, INT64_MIN, int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

cimport numpy as cnp

from oicore.errors import FormatError

cnp.import_array()


cdef extern from "oic_textcodec.h" nogil:
    ctypedef enum oic_tc_status:
        OIC_TC_OK
        OIC_TC_BAD_TEMPLATE
        OIC_TC_BAD_VALUE
        OIC_TC_BAD_EXCEPTION
        OIC_TC_MISMATCH
        OIC_TC_NO_MEMORY
    int OIC_TC_BITS_MAX
    int OIC_TPL_MAX_FIELDS
    ctypedef struct oic_tc_ints:
        const uint8_t *p
        int64_t nbytes
        int64_t base
        const int64_t *add
        int32_t bits
    ctypedef struct oic_tc_exc:
        const int64_t *rows
        const int64_t *off
        const uint8_t *data
        int64_t n
    ctypedef struct oic_tc_sink:
        int mode
        int64_t *lens_or_offsets
        uint8_t *out
        const uint8_t *cmp
        const int64_t *cmp_off
        uint8_t *scratch
        int64_t scratch_len
    ctypedef struct oic_tc_spans:
        const uint8_t *data
        const int64_t *start
        const int32_t *lens
    ctypedef struct oic_tpl_op:
        int32_t kind, field, a, b
    ctypedef struct oic_tpl:
        int32_t n_templates
        int32_t n_fields
        const int32_t *start
        const oic_tpl_op *ops
        const uint8_t *pool
        const int32_t *alt_off
        const int32_t *alt_len
        const int32_t *alt_try
        const int32_t *stop
        const int64_t *const *dict_off
        const uint8_t *const *dict_data
        const int64_t *dict_n
    uint64_t oic_bits_get(const uint8_t *p, int64_t nbytes, int64_t i, int w)
    uint64_t oic_bits_at(const uint8_t *p, int64_t nbytes, uint64_t bit, int w)
    uint64_t oic_tc_ld64_tail(const uint8_t *p, int64_t avail)
    int64_t oic_bits_bytes(int64_t n, int w)
    void oic_bits_pack(const int64_t *v, int64_t n, int64_t base, int w, uint8_t *out)
    void oic_bits_unpack(const uint8_t *p, int64_t nbytes, int64_t n, int w, int64_t base, int64_t *out)
    void oic_md5_render(const uint8_t *b, uint8_t *out)
    int64_t oic_md5_encode(const uint8_t *data, const int64_t *offsets, int64_t lo, int64_t hi, uint8_t *out16,
                           uint8_t *exc)
    oic_tc_status oic_md5_decode(const oic_tc_sink *k, int64_t lo, int64_t hi, const uint8_t *md5, const oic_tc_exc *e,
                                 int64_t *bad_row)
    oic_tc_status oic_dict_decode(const oic_tc_sink *k, int64_t lo, int64_t hi, const oic_tc_ints *codes, int64_t dict_n,
                                  const int64_t *dict_off, const uint8_t *dict_data, const oic_tc_exc *e,
                                  int64_t *bad_row)
    int oic_tc_nul_block(const uint8_t *p, int64_t len, int64_t n, int64_t *off)
    oic_tc_status oic_tc_group(const oic_tc_spans *s, int64_t n, int64_t max_len, int32_t *codes, int64_t *first,
                            int64_t *count)
    void oic_tc_translate(const int64_t *a_off, const uint8_t *a_data, int64_t na, const int64_t *b_off,
                       const uint8_t *b_data, int64_t nb, int64_t *tr)
    int64_t oic_tc_same_as(const oic_tc_spans *s, int64_t n, const int64_t *ref, const int64_t *dict_off,
                           const uint8_t *dict_data, int64_t dict_n, int32_t *codes)
    void oic_tc_gather(const oic_tc_spans *s, const int64_t *order, int64_t n, int nul, uint8_t *out, int64_t *starts)
    int64_t oic_tpl_match(const oic_tpl *t, const uint8_t *data, const int64_t *offsets, int64_t lo, int64_t hi,
                          int64_t rows, int32_t *tpl, int64_t *vals, int32_t *lens, int64_t *stats)
    oic_tc_status oic_tpl_row(const oic_tpl *t, int32_t k, const oic_tc_ints *fields, int64_t r, uint8_t *out,
                              int64_t cap, int64_t *len)
    oic_tc_status oic_tpl_decode(const oic_tpl *t, const oic_tc_sink *k, int64_t lo, int64_t hi, const oic_tc_ints *tpl,
                                 const oic_tc_ints *fields, const oic_tc_exc *e, int64_t *bad_row)


BITS_MAX = OIC_TC_BITS_MAX
MAX_FIELDS = OIC_TPL_MAX_FIELDS
STATUS = {
    OIC_TC_OK: "ok",
    OIC_TC_BAD_TEMPLATE: "a template code above the exception code",
    OIC_TC_BAD_VALUE: "a field value outside its range",
    OIC_TC_BAD_EXCEPTION: "the exception rows do not match the rows marked as exceptions",
    OIC_TC_MISMATCH: "the rendering differs from the text",
    OIC_TC_NO_MEMORY: "out of memory",
}
BLOCK = 1 << 20  # the container's CRC block (FORMAT.md, "Conventions")

cdef uint8_t _ZEROS[16]
cdef int64_t _ZERO64[2]


cdef inline const uint8_t *_ptr(const uint8_t[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] else _ZEROS


cdef inline uint8_t *_wptr(uint8_t[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] else _ZEROS


cdef inline const int64_t *_ptr64(const int64_t[::1] a) noexcept nogil:
    return &a[0] if a.shape[0] else _ZERO64


# ---- bit packing ------------------------------------------------------------------------------------


def pack(const int64_t[::1] values, int64_t base, int bits):
    """``values - base`` (each in [0, 2**bits)) as a bit-packed stream (FORMAT.md): a uint8 array."""
    if not 0 <= bits <= OIC_TC_BITS_MAX:
        raise ValueError(f"bits must be in 0..{OIC_TC_BITS_MAX}, got {bits}")
    cdef int64_t n = values.shape[0], size = oic_bits_bytes(n, bits)
    out = np.zeros(size + 8, np.uint8)
    cdef uint8_t[::1] o = out
    if n and bits:
        with nogil:
            oic_bits_pack(&values[0], n, base, bits, &o[0])
    return out[:size]


def unpack(const uint8_t[::1] stream, int64_t n, int bits, int64_t base):
    """``n`` values of ``bits`` bits plus ``base``, as int64; bytes past the stream's end read as zero."""
    if not 0 <= bits <= OIC_TC_BITS_MAX:
        raise ValueError(f"bits must be in 0..{OIC_TC_BITS_MAX}, got {bits}")
    out = np.empty(n, np.int64)
    cdef int64_t[::1] o = out
    if n:
        with nogil:
            oic_bits_unpack(_ptr(stream), stream.shape[0], n, bits, base, &o[0])
    return out


def unpack_at(const uint8_t[::1] stream, int64_t first_bit, int64_t n, int bits, int64_t base, int stride=-1):
    """``n`` values of ``bits`` bits, value ``i`` at stream bit ``first_bit + i * stride`` (``stride``: ``bits``
    unless given; FORMAT.md's interleaved columns), plus ``base``, as int64. Bytes past the stream read as zero."""
    if stride < 0:
        stride = bits
    if not 0 <= bits <= OIC_TC_BITS_MAX or first_bit < 0 or not bits <= stride <= 64:
        raise ValueError(f"bits must be in 0..{OIC_TC_BITS_MAX}, the first bit >= 0 and the stride in bits..64, got {bits}, {first_bit}, {stride}")
    out = np.empty(n, np.int64)
    cdef int64_t[::1] o = out
    cdef int64_t i
    cdef int64_t nbytes = stream.shape[0]
    cdef const uint8_t *p = _ptr(stream)
    with nogil:
        for i in range(n):
            o[i] = base + <int64_t>oic_bits_at(p, nbytes, <uint64_t>(first_bit + i * stride), bits)
    return out


def min_max(const int64_t[::1] v, bint skip_negative=False):
    """``(min, max, count)`` of the values (of those >= 0 when ``skip_negative``); (0, 0, 0) when none."""
    cdef int64_t lo = INT64_MAX, hi = INT64_MIN, count = 0, i, x
    with nogil:
        for i in range(v.shape[0]):
            x = v[i]
            if skip_negative and x < 0:
                continue
            count += 1
            if x < lo:
                lo = x
            if x > hi:
                hi = x
    if count == 0:
        return 0, 0, 0
    return lo, hi, count


def fill_missing(int64_t[::1] v, int64_t value, const int64_t[::1] ref=None):
    """In place: every negative value becomes ``value`` (or ``ref[i]``)."""
    cdef int64_t i, n = v.shape[0]
    if ref is not None and ref.shape[0] != n:
        raise ValueError("ref must have one value per row")
    with nogil:
        for i in range(n):
            if v[i] < 0:
                v[i] = ref[i] if ref is not None else value


def difference(const int64_t[::1] v, const int64_t[::1] ref, int64_t[::1] out):
    """``out = v - ref`` where ``v >= 0``, else 0; returns ``(min, max)`` of out."""
    cdef int64_t i, n = v.shape[0], lo = 0, hi = 0, d
    if ref.shape[0] != n or out.shape[0] != n:
        raise ValueError("difference: arrays of different lengths")
    with nogil:
        for i in range(n):
            d = v[i] - ref[i] if v[i] >= 0 else 0
            out[i] = d
            if d < lo:
                lo = d
            if d > hi:
                hi = d
    return lo, hi


# ---- packed arrays and exceptions as the decoders read them ---------------------------------------------


cdef class IntsSet:
    """C descriptions (``oic_tc_ints``) of packed arrays, built from ``(stream, bits, base, add)`` tuples:
    ``stream`` a uint8 array of the packed values, ``add`` None or int64 values added per row (a
    reference already decoded). Keeps the arrays alive while C reads them."""

    cdef oic_tc_ints *a
    cdef public int n
    cdef list keep
    cdef int64_t min_add

    def __cinit__(self):
        self.a = NULL

    def __init__(self, items):
        items = list(items)
        self.n = len(items)
        self.a = <oic_tc_ints *>malloc(max(self.n, 1) * sizeof(oic_tc_ints))
        if self.a == NULL:
            raise MemoryError()
        self.keep = []
        self.min_add = INT64_MAX
        cdef const uint8_t[::1] s
        cdef const int64_t[::1] add
        for i, (stream, bits, base, extra) in enumerate(items):
            if not 0 <= bits <= OIC_TC_BITS_MAX:
                raise ValueError(f"bits {bits} outside 0..{OIC_TC_BITS_MAX}")
            s = np.ascontiguousarray(stream, np.uint8) if stream is not None else np.zeros(0, np.uint8)
            self.keep.append(s)
            self.a[i].p = _ptr(s)
            self.a[i].nbytes = s.shape[0]
            self.a[i].bits = bits
            self.a[i].base = base
            self.a[i].add = NULL
            if extra is not None:
                add = np.ascontiguousarray(extra, np.int64)
                self.keep.append(add)
                self.a[i].add = _ptr64(add)
                self.min_add = min(self.min_add, add.shape[0])

    def __dealloc__(self):
        free(self.a)

    cdef check_rows(self, int64_t hi):
        if self.min_add != INT64_MAX and self.min_add < hi:
            raise ValueError("a reference array shorter than the rows read")


cdef class Exc:
    """Exceptions as the decoders read them: rows (int64, strictly increasing), offsets (n + 1), bytes."""

    cdef oic_tc_exc e
    cdef object keep

    def __init__(self, rows, offsets, data):
        cdef const int64_t[::1] r = np.ascontiguousarray(rows, np.int64)
        cdef const int64_t[::1] o = np.ascontiguousarray(offsets, np.int64)
        cdef const uint8_t[::1] d = np.ascontiguousarray(data, np.uint8)
        cdef int64_t i, n = r.shape[0]
        if o.shape[0] != n + 1 or o[0] != 0 or o[n] != d.shape[0]:
            raise ValueError("exception offsets do not cover the exception bytes")
        for i in range(n):
            if o[i + 1] < o[i] or (i and r[i] <= r[i - 1]):
                raise ValueError("exception offsets or rows are not monotone")
        self.keep = (r, o, d)
        self.e.rows = _ptr64(r)
        self.e.off = _ptr64(o)
        self.e.data = _ptr(d)
        self.e.n = n


cdef class Sink:
    """Where a decoder's rows [lo, hi) go: mode 0 lengths (``lens``, hi - lo), 1 written into ``out`` at
    ``offsets`` (hi - lo + 1, from pass 0), 2 compared with ``cmp`` / ``cmp_off`` (the column's offsets)."""

    cdef oic_tc_sink k
    cdef object keep
    cdef public int64_t lo, hi

    def __init__(self, int mode, int64_t lo, int64_t hi, lens_or_offsets=None, out=None, cmp=None, cmp_off=None):
        cdef int64_t[::1] lo_v
        cdef uint8_t[::1] out_v
        cdef const uint8_t[::1] cmp_v
        cdef const int64_t[::1] co
        cdef int64_t i, n = hi - lo, longest = 0
        if n < 0 or lo < 0:
            raise ValueError("bad row range")
        self.lo, self.hi = lo, hi
        self.k.mode = mode
        self.k.lens_or_offsets = NULL
        self.k.out = NULL
        self.k.cmp = NULL
        self.k.cmp_off = NULL
        self.k.scratch = NULL
        self.k.scratch_len = 0
        if mode == 0:
            lo_v = lens_or_offsets
            if lo_v.shape[0] < n:
                raise ValueError("lengths array too short")
            self.k.lens_or_offsets = &lo_v[0] if n else _ZERO64
            self.keep = lo_v
        elif mode == 1:
            lo_v = lens_or_offsets
            out_v = out
            if lo_v.shape[0] < n + 1 or lo_v[0] < 0 or lo_v[n] > out_v.shape[0]:
                raise ValueError("offsets do not fit the output")
            for i in range(n):
                if lo_v[i + 1] < lo_v[i]:
                    raise ValueError("offsets are not monotone")
            self.k.lens_or_offsets = &lo_v[0]
            self.k.out = _wptr(out_v)
            self.keep = (lo_v, out_v)
        elif mode == 2:
            cmp_v = cmp
            co = cmp_off
            if co.shape[0] <= hi or co[hi] > cmp_v.shape[0] or co[lo] < 0:
                raise ValueError("compare offsets do not fit the text")
            for i in range(lo, hi):
                if co[i + 1] < co[i]:
                    raise ValueError("compare offsets are not monotone")
                if co[i + 1] - co[i] > longest:
                    longest = co[i + 1] - co[i]
            scratch = np.zeros(longest + 16, np.uint8)
            out_v = scratch
            self.k.cmp = _ptr(cmp_v)
            self.k.cmp_off = &co[0]
            self.k.scratch = &out_v[0]
            self.k.scratch_len = longest
            self.keep = (cmp_v, co, out_v)
        else:
            raise ValueError(f"mode must be 0, 1 or 2, got {mode}")


# ---- MD5 ----------------------------------------------------------------------------------------------


def md5_encode(const uint8_t[::1] data, const int64_t[::1] offsets, int64_t lo, int64_t hi, uint8_t[::1] out16,
               uint8_t[::1] exc):
    """Rows [lo, hi): 16 bytes per canonical base64 MD5 into ``out16``, ``exc[r] = 1`` otherwise; the count."""
    cdef int64_t n = offsets.shape[0] - 1, misses = 0
    if not (0 <= lo <= hi <= n) or out16.shape[0] < 16 * n or exc.shape[0] < n or offsets[n] > data.shape[0]:
        raise ValueError("md5_encode: bad bounds")
    if hi > lo:
        with nogil:
            misses = oic_md5_encode(_ptr(data), &offsets[0], lo, hi, &out16[0], &exc[0])
    return misses


def md5_decode(Sink sink, const uint8_t[::1] md5, Exc exc):
    """Rows [sink.lo, sink.hi) of an MD5 column: ``(status, row)``."""
    cdef int64_t bad = -1
    cdef oic_tc_status st
    if md5.shape[0] < 16 * sink.hi:
        raise ValueError("md5_decode: fewer MD5s than rows")
    with nogil:
        st = oic_md5_decode(&sink.k, sink.lo, sink.hi, _ptr(md5), &exc.e, &bad)
    return int(st), bad


# ---- dictionaries -------------------------------------------------------------------------------------


cdef oic_tc_spans _spans(const uint8_t[::1] data, const int64_t[::1] starts, const int32_t[::1] lens, int64_t n) except *:
    cdef oic_tc_spans s
    cdef int64_t i, size = data.shape[0]
    s.data = _ptr(data)
    s.start = _ptr64(starts)
    s.lens = NULL
    if lens is None:
        if starts.shape[0] < n + 1 or (n and (starts[0] < 0 or starts[n] > size)):
            raise ValueError("offsets outside the data")
        for i in range(n):
            if starts[i + 1] < starts[i]:
                raise ValueError("offsets are not monotone")
    else:
        if starts.shape[0] < n or lens.shape[0] < n:
            raise ValueError("spans: arrays too short")
        for i in range(n):
            if starts[i] >= 0 and (lens[i] < 0 or starts[i] + lens[i] > size):
                raise ValueError("spans outside the data")
        s.lens = &lens[0] if n else NULL
    return s


def group(const uint8_t[::1] data, const int64_t[::1] starts, const int32_t[::1] lens, int64_t n, int64_t max_len):
    """Number the distinct strings among ``n`` spans in bytewise order (``lens`` None: ``starts`` is an
    offsets array). Returns ``(codes, first)``: int32 per span (-1: skipped: negative start, longer than
    ``max_len``, or holding a NUL), and for each entry a span that holds it."""
    cdef oic_tc_spans s = _spans(data, starts, lens, n)
    codes = np.empty(n, np.int32)
    first = np.empty(max(n, 1), np.int64)
    cdef int32_t[::1] c = codes
    cdef int64_t[::1] f = first
    cdef int64_t count = 0
    cdef oic_tc_status st = OIC_TC_OK
    if n:
        with nogil:
            st = oic_tc_group(&s, n, max_len, &c[0], &f[0], &count)
    if st != OIC_TC_OK:
        raise MemoryError("grouping strings")
    return codes, first[:count]


def same_as(const uint8_t[::1] data, const int64_t[::1] starts, const int32_t[::1] lens, int64_t n,
            const int64_t[::1] ref, const int64_t[::1] dict_off, const uint8_t[::1] dict_data):
    """Codes of the spans that equal the dictionary entry ``ref[i]`` (else -1), and how many did not."""
    cdef oic_tc_spans s = _spans(data, starts, lens, n)
    _check_offsets(dict_off, dict_data)
    if ref.shape[0] < n:
        raise ValueError("same_as: one reference per span")
    codes = np.empty(n, np.int32)
    cdef int32_t[::1] c = codes
    cdef int64_t misses = 0
    if n:
        with nogil:
            misses = oic_tc_same_as(&s, n, &ref[0], &dict_off[0], _ptr(dict_data), dict_off.shape[0] - 1, &c[0])
    return codes, misses


def gather(const uint8_t[::1] data, const int64_t[::1] starts, const int32_t[::1] lens, int64_t n,
           const int64_t[::1] order, bint nul):
    """The spans ``order[i]`` one after another (each followed by a NUL when ``nul``): ``(bytes, starts)``."""
    cdef oic_tc_spans s = _spans(data, starts, lens, n)
    cdef int64_t i, k, total = 0, m = order.shape[0]
    for i in range(m):
        k = order[i]
        if k < 0 or k >= n or (lens is not None and starts[k] < 0):
            raise ValueError("order outside the spans")
        total += (lens[k] if lens is not None else starts[k + 1] - starts[k]) + (1 if nul else 0)
    out = np.empty(total, np.uint8)
    where = np.empty(m + 1, np.int64)
    cdef uint8_t[::1] o = out
    cdef int64_t[::1] w = where
    with nogil:
        oic_tc_gather(&s, _ptr64(order), m, nul, _wptr(o), &w[0])
    return out, where


def scatter(const uint8_t[::1] data, const int64_t[::1] offsets, const int64_t[::1] dest, uint8_t[::1] out):
    """Copy row ``i`` of ``data`` (``offsets``: int64, rows + 1 entries) to ``out[dest[i]:]``, for every row."""
    cdef int64_t i, n = offsets.shape[0] - 1, size = out.shape[0], have = data.shape[0], bad = -1, length
    if n < 0 or dest.shape[0] < n:
        raise ValueError("scatter: one destination per row")
    cdef const uint8_t *src = _ptr(data)
    cdef uint8_t *o = _wptr(out)
    with nogil:
        for i in range(n):
            length = offsets[i + 1] - offsets[i]
            if offsets[i] < 0 or length < 0 or offsets[i + 1] > have or dest[i] < 0 or dest[i] + length > size:
                bad = i
                break
            memcpy(o + dest[i], src + offsets[i], <size_t>length)
    if bad >= 0:
        raise ValueError(f"scatter: row {bad} is outside the buffers")


def translate(const int64_t[::1] a_off, const uint8_t[::1] a_data, const int64_t[::1] b_off,
              const uint8_t[::1] b_data):
    """Two sorted dictionaries of unique entries: for each entry of B, its index in A or -1."""
    cdef int64_t na = a_off.shape[0] - 1, nb = b_off.shape[0] - 1
    _spans(a_data, a_off, None, na)
    _spans(b_data, b_off, None, nb)
    tr = np.empty(max(nb, 0), np.int64)
    cdef int64_t[::1] t = tr
    if nb > 0:
        with nogil:
            oic_tc_translate(&a_off[0], _ptr(a_data), na, &b_off[0], _ptr(b_data), nb, &t[0])
    return tr


def nul_split(const uint8_t[::1] block, int64_t n, int64_t[::1] out_offsets):
    """Fills ``out_offsets`` (n + 1) with where each NUL-terminated entry starts; False unless the block is
    exactly n entries."""
    if out_offsets.shape[0] < n + 1:
        raise ValueError("offsets too short")
    cdef int ok
    with nogil:
        ok = oic_tc_nul_block(_ptr(block), block.shape[0], n, &out_offsets[0])
    return bool(ok)


cdef _check_offsets(const int64_t[::1] off, const uint8_t[::1] data):
    cdef int64_t i, n = off.shape[0] - 1
    if n < 0 or off[0] != 0 or off[n] > data.shape[0]:
        raise ValueError("dictionary offsets outside its bytes")
    for i in range(n):
        if off[i + 1] < off[i]:
            raise ValueError("dictionary offsets are not monotone")


def dict_decode(Sink sink, IntsSet codes, const int64_t[::1] dict_off, const uint8_t[::1] dict_data, Exc exc):
    """Rows [sink.lo, sink.hi) of a dictionary column: ``(status, row)``."""
    cdef int64_t bad = -1
    cdef oic_tc_status st
    _check_offsets(dict_off, dict_data)
    if codes.n != 1:
        raise ValueError("one code array")
    codes.check_rows(sink.hi)
    with nogil:
        st = oic_dict_decode(&sink.k, sink.lo, sink.hi, codes.a, dict_off.shape[0] - 1, &dict_off[0],
                             _ptr(dict_data), &exc.e, &bad)
    return int(st), bad


# ---- templates -------------------------------------------------------------------------------------------


cdef class Program:
    """Compiled templates (``oic_tpl``).

    ``start`` int32 [n_templates + 1]; ``ops`` int32 [n_ops, 4] (kind, field, a, b); ``pool`` bytes;
    ``alt_off``, ``alt_len``, ``alt_try`` int32; ``stop`` int32 per field; ``dicts`` a list of
    ``(offsets int64, data uint8)`` by DICT slot. Every index of every op is checked here.
    """

    cdef oic_tpl t
    cdef object arrays
    cdef const int64_t **dict_off
    cdef const uint8_t **dict_data
    cdef int64_t *dict_n
    cdef public int n_templates, n_fields, n_dicts
    cdef const int32_t[::1] start_v
    cdef const int32_t[:, ::1] ops_v

    def __cinit__(self):
        self.dict_off = NULL
        self.dict_data = NULL
        self.dict_n = NULL

    def __init__(self, start, ops, pool, alt_off, alt_len, alt_try, stop, int n_fields, dicts=()):
        start = np.ascontiguousarray(start, np.int32)
        ops = np.ascontiguousarray(ops, np.int32).reshape(-1, 4)
        pool = np.frombuffer(bytes(pool) + bytes(16), np.uint8)
        alt_off = np.ascontiguousarray(alt_off, np.int32)
        alt_len = np.ascontiguousarray(alt_len, np.int32)
        alt_try = np.ascontiguousarray(alt_try, np.int32)
        stop = np.ascontiguousarray(stop, np.int32)
        if not 0 <= n_fields <= OIC_TPL_MAX_FIELDS or len(stop) != n_fields:
            raise ValueError(f"at most {OIC_TPL_MAX_FIELDS} fields, each with a stop byte")
        n_templates = len(start) - 1
        if n_templates < 0 or start[0] != 0 or start[n_templates] != len(ops) or (np.diff(start) < 0).any():
            raise ValueError("template starts do not cover the ops")
        dict_arrays = [(np.ascontiguousarray(o, np.int64), np.ascontiguousarray(d, np.uint8)) for o, d in dicts]
        for oa, da in dict_arrays:
            _check_offsets(oa, da)
        pool_len = len(pool) - 16
        for kind, field, a, b in ops.tolist():
            if kind == 0:
                ok = a >= 0 and b >= 0 and a + b <= pool_len
            elif kind in (1, 2, 3, 4):
                ok = 0 <= field < n_fields
                if kind == 2:
                    ok = ok and 1 <= a <= 13
                elif kind == 3:
                    ok = ok and 0 < b and 0 <= a and a + b <= len(alt_off)
                elif kind == 4:
                    ok = ok and 0 <= b < len(dict_arrays)
            else:
                ok = False
            if not ok:
                raise ValueError(f"bad template op {(kind, field, a, b)}")
        if len(alt_off) != len(alt_len) or len(alt_try) != len(alt_off):
            raise ValueError("choice tables of different lengths")
        for ao_, al_ in zip(alt_off.tolist(), alt_len.tolist()):
            if ao_ < 0 or al_ < 0 or ao_ + al_ > pool_len:
                raise ValueError("a choice outside the pool")
        # alt_try holds, per slot, a value relative to its op's first slot (checked per op below).
        for kind, field, a, b in ops.tolist():
            if kind == 3 and any(not 0 <= v < b for v in alt_try[a : a + b].tolist()):
                raise ValueError("a choice order outside its alternatives")
        if len(alt_off) == 0:
            alt_off = alt_len = alt_try = np.zeros(1, np.int32)
        if len(ops) == 0:
            ops = np.zeros((1, 4), np.int32)
        if n_fields == 0:
            stop = np.zeros(1, np.int32)
        self.arrays = (start, ops, pool, alt_off, alt_len, alt_try, stop, dict_arrays)
        self.start_v = start
        self.ops_v = ops
        cdef const int32_t[::1] ao = alt_off, al = alt_len, at = alt_try, sp = stop
        cdef const uint8_t[::1] p = pool
        self.n_templates = n_templates
        self.n_fields = n_fields
        self.t.n_templates = n_templates
        self.t.n_fields = n_fields
        self.t.start = &self.start_v[0]
        self.t.ops = <const oic_tpl_op *>&self.ops_v[0, 0]
        self.t.pool = &p[0]
        self.t.alt_off = &ao[0]
        self.t.alt_len = &al[0]
        self.t.alt_try = &at[0]
        self.t.stop = &sp[0]
        self.n_dicts = len(dict_arrays)
        n = max(self.n_dicts, 1)
        self.dict_off = <const int64_t **>malloc(n * sizeof(int64_t *))
        self.dict_data = <const uint8_t **>malloc(n * sizeof(uint8_t *))
        self.dict_n = <int64_t *>malloc(n * sizeof(int64_t))
        if not self.dict_off or not self.dict_data or not self.dict_n:
            raise MemoryError()
        cdef const int64_t[::1] o
        cdef const uint8_t[::1] d
        for i, (oa, da) in enumerate(dict_arrays):
            o = oa
            d = da
            self.dict_off[i] = &o[0]
            self.dict_data[i] = _ptr(d)
            self.dict_n[i] = len(oa) - 1
        self.t.dict_off = self.dict_off
        self.t.dict_data = self.dict_data
        self.t.dict_n = self.dict_n

    def __dealloc__(self):
        free(self.dict_off)
        free(self.dict_data)
        free(self.dict_n)

    def match(self, const uint8_t[::1] data, const int64_t[::1] offsets, int64_t lo, int64_t hi,
              int32_t[::1] tpl, int64_t[:, ::1] vals, int32_t[:, ::1] lens, int64_t[::1] stats):
        """Rows [lo, hi) of the column (``oic_tpl_match``); returns how many rows matched no template.

        ``vals`` is [n_fields, rows], ``lens`` [n_dicts, rows], ``stats`` [3 n_fields]. Releases the GIL:
        threads may match disjoint row ranges into the same arrays (each with its own ``stats``).
        """
        cdef int64_t n = offsets.shape[0] - 1, misses = 0
        if not (0 <= lo <= hi <= n) or tpl.shape[0] < n or offsets[n] > data.shape[0]:
            raise ValueError("match: bad bounds")
        if vals.shape[0] < self.n_fields or (self.n_fields and vals.shape[1] != n):
            raise ValueError("match: vals must be [n_fields, rows]")
        if lens.shape[0] < self.n_dicts or (self.n_dicts and lens.shape[1] != n):
            raise ValueError("match: lens must be [n_dicts, rows]")
        if stats.shape[0] < 3 * self.n_fields:
            raise ValueError("match: stats too short")
        if hi > lo:
            with nogil:
                misses = oic_tpl_match(&self.t, _ptr(data), &offsets[0], lo, hi, n, &tpl[0],
                                       &vals[0, 0] if self.n_fields else NULL,
                                       &lens[0, 0] if self.n_dicts else NULL, &stats[0] if self.n_fields else NULL)
        return misses

    def decode(self, Sink sink, IntsSet tpl, IntsSet fields, Exc exc):
        """Rows [sink.lo, sink.hi) of a template column: ``(status, row)``."""
        cdef int64_t bad = -1
        cdef oic_tc_status st
        if tpl.n != 1 or fields.n != self.n_fields:
            raise ValueError("decode: one template array and one array per field")
        tpl.check_rows(sink.hi)
        fields.check_rows(sink.hi)
        with nogil:
            st = oic_tpl_decode(&self.t, &sink.k, sink.lo, sink.hi, tpl.a, fields.a, &exc.e, &bad)
        return int(st), bad


# ---- per-row readers (lookups) -------------------------------------------------------------------------
#
# Readers may be shared by threads: a lookup never reads through a pointer another lookup may replace. Each
# zstd block is a bytes object held by a local reference while it is read (the bounded cache may drop it).


cdef extern from "Python.h":
    char *PyBytes_AS_STRING(object b)
    Py_ssize_t PyBytes_GET_SIZE(object b)


cdef class Ints:
    """Random access to one packed integer array (FORMAT.md, "Packed integers").

    mode 0: every value is ``base``; 1: a raw segment read in place, each 1 MiB block's CRC checked the
    first time a value in it is read; 2: zstd frames of ``block_rows`` values each, decompressed through
    the cache. ``ref`` (and ``map``) add the referenced array's value (``map[ref]``).
    """

    cdef int bits, mode
    cdef public int64_t base, n
    cdef int64_t nbytes, K
    cdef const uint8_t *p
    cdef const uint8_t[::1] keep
    cdef object container, cache, current
    cdef int seg
    cdef bytearray checked
    cdef Ints ref, map

    def __init__(self, container, cache, int bits, int64_t base, int64_t n, seg, int64_t block_rows=0,
                 Ints ref=None, Ints map=None):
        self.container = container
        self.cache = cache
        self.bits = bits
        self.base = base
        self.n = n
        self.ref = ref
        self.map = map
        self.current = None
        self.p = _ZEROS
        self.nbytes = 0
        if seg is None or bits == 0:
            self.mode = 0
            self.seg = -1
            return
        self.seg = seg
        info = container.segments[seg]
        if info["codec"] == "raw":
            self.mode = 1
            self.nbytes = info["length"]
            if self.nbytes:
                self.keep = container.view[info["offset"] : info["offset"] + self.nbytes]
                self.p = &self.keep[0]
            self.checked = bytearray((self.nbytes + BLOCK - 1) // BLOCK)
        else:
            self.mode = 2
            self.K = block_rows

    cdef int _check(self, int64_t first, int64_t last) except -1:
        cdef int64_t b
        last = min(last, self.nbytes - 1)
        for b in range(first >> 20, (last >> 20) + 1):
            if not self.checked[b]:
                self.container.raw(self.seg, b * BLOCK, min((b + 1) * BLOCK, self.nbytes))
                self.checked[b] = 1
        return 0

    cdef bytes _block(self, int64_t k):
        """Frame k's bytes: the last one read, the cache's, or decompressed (and checked) now."""
        current = self.current  # one read: (k, block), never half of one lookup and half of another
        if current is not None and (<tuple>current)[0] == k:
            return (<tuple>current)[1]
        key = ("oic-text", self.seg, k)
        block = self.cache.get(key)
        cdef int64_t rows
        if block is None:
            block = self.container.frame_data(self.seg, k)
            rows = min(self.K, self.n - k * self.K)
            if type(block) is not bytes or len(block) != oic_bits_bytes(rows, self.bits):
                raise FormatError(f"segment {self.seg} frame {k}: expected {oic_bits_bytes(rows, self.bits)} bytes "
                                  f"of {rows} packed values, got {len(block)}", path=self.container.path)
            self.cache[key] = block
        self.current = (k, block)
        return block

    cdef int64_t get(self, int64_t i) except? -1:
        cdef uint64_t v = 0
        cdef uint64_t bit
        cdef int64_t k, x, r
        cdef bytes block
        if i < 0 or i >= self.n:
            raise FormatError(f"value {i} of a packed array of {self.n}", path=self.container.path)
        if self.mode == 1:
            bit = <uint64_t>i * <uint64_t>self.bits
            self._check(<int64_t>(bit >> 3), <int64_t>((bit + self.bits - 1) >> 3))
            v = oic_bits_get(self.p, self.nbytes, i, self.bits)
        elif self.mode == 2:
            k = i // self.K
            block = self._block(k)
            v = oic_bits_get(<const uint8_t *>PyBytes_AS_STRING(block), PyBytes_GET_SIZE(block), i - k * self.K,
                             self.bits)
        r = self.base + <int64_t>v
        if self.ref is not None:
            x = self.ref.get(i)
            if self.map is not None:
                if x < 0 or x >= self.map.n:
                    raise FormatError(f"a reference {x} outside its map of {self.map.n}", path=self.container.path)
                x = self.map.get(x)
            r += x
        return r

    def __getitem__(self, int64_t i):
        return self.get(i)


cdef class Blocks:
    """Random access to the entries of a segment of text frames: ``kind`` 0 the ``strings`` payload
    (uint32 n, uint32 offsets[n + 1], bytes; checked by ``strings_parse``), 1 NUL-terminated entries.
    ``block_rows`` lists each frame's entries. A decoded frame is cached as ``(payload bytes, offset of
    the entries' bytes in it, int64 offsets of the entries)``."""

    cdef object container, cache, current, strings_parse
    cdef int seg, kind
    cdef int64_t[::1] cum
    cdef public int64_t count

    def __init__(self, container, cache, int seg, block_rows, int kind, strings_parse=None):
        self.container = container
        self.cache = cache
        self.seg = seg
        self.kind = kind
        cum = np.zeros(len(block_rows) + 1, np.int64)
        np.cumsum(np.asarray(block_rows, np.int64), out=cum[1:])
        self.cum = cum
        self.count = int(cum[len(cum) - 1])
        self.current = None
        self.strings_parse = strings_parse

    cdef tuple _frame(self, int64_t k):
        current = self.current
        if current is not None and (<tuple>current)[0] == k:
            return (<tuple>current)[1]
        key = ("oic-text", self.seg, k)
        hit = self.cache.get(key)
        cdef int64_t n = self.cum[k + 1] - self.cum[k]
        if hit is None:
            payload = self.container.frame_data(self.seg, k)
            if type(payload) is not bytes:
                payload = bytes(payload)
            if self.kind == 1:
                offsets = np.empty(n + 1, np.int64)
                if not nul_split(payload, n, offsets):
                    raise FormatError(f"segment {self.seg} frame {k}: expected {n} NUL-terminated entries",
                                      path=self.container.path)
                hit = (payload, 0, offsets)
            else:
                local, body = self.strings_parse(payload)
                if len(local) != n + 1:
                    raise FormatError(f"segment {self.seg} frame {k}: holds {len(local) - 1} rows, expected {n}",
                                      path=self.container.path)
                hit = (payload, len(payload) - len(body), np.ascontiguousarray(local, np.int64))
            self.cache[key] = hit
        self.current = (k, hit)
        return hit

    cdef bytes entry(self, int64_t i, const uint8_t **p, int64_t *length):
        """Entry i: points *p at its bytes and returns the object that owns them (hold it while reading)."""
        cdef int64_t lo = 0, hi = self.cum.shape[0] - 1, mid, j, a, b
        if i < 0 or i >= self.count:
            raise FormatError(f"entry {i} of {self.count}", path=self.container.path)
        while hi - lo > 1:  # the last frame k with cum[k] <= i
            mid = (lo + hi) >> 1
            if self.cum[mid] <= i:
                lo = mid
            else:
                hi = mid
        frame = self._frame(lo)
        payload = <bytes>frame[0]
        cdef int64_t start = frame[1]
        cdef cnp.ndarray offsets = frame[2]
        cdef const int64_t *off = <const int64_t *>cnp.PyArray_DATA(offsets)
        j = i - self.cum[lo]
        a = off[j]
        b = off[j + 1] - (1 if self.kind == 1 else 0)
        if a < 0 or b < a or start + b > PyBytes_GET_SIZE(payload):
            raise FormatError(f"segment {self.seg} frame {lo}: entry {j} outside its bytes", path=self.container.path)
        p[0] = <const uint8_t *>PyBytes_AS_STRING(payload) + start + a
        length[0] = b - a
        return payload

    def __getitem__(self, int64_t i):
        cdef const uint8_t *p
        cdef int64_t n
        owner = self.entry(i, &p, &n)
        return (<const char *>p)[:n]


cdef class Exceptions:
    """The exceptions of a column, for lookups: sorted row numbers (``Ints``) and their texts (``Blocks``)."""

    cdef Ints rows
    cdef Blocks texts
    cdef public int64_t n

    def __init__(self, Ints rows, Blocks texts):
        self.rows = rows
        self.texts = texts
        self.n = rows.n

    cdef int64_t find(self, int64_t r) except -2:
        """The index of row r in the exceptions, or -1."""
        cdef int64_t lo = 0, hi = self.n, mid
        while lo < hi:
            mid = (lo + hi) >> 1
            if self.rows.get(mid) < r:
                lo = mid + 1
            else:
                hi = mid
        if lo < self.n and self.rows.get(lo) == r:
            return lo
        return -1

    cdef str text(self, int64_t j):
        cdef const uint8_t *p
        cdef int64_t n
        owner = self.texts.entry(j, &p, &n)
        return _utf8(p, n, self.texts.container)


cdef str _utf8(const uint8_t *p, int64_t n, container):
    try:
        return (<const char *>p)[:n].decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(f"a text value that is not UTF-8 ({e})", path=container.path) from None


cdef str _exception_text(Exceptions exc, int64_t r, container):
    cdef int64_t j = exc.find(r) if exc is not None else -1
    if j < 0:
        raise FormatError(f"row {r} is marked as an exception but is not in the exceptions", path=container.path)
    return exc.text(j)


cdef int _not_an_exception(Exceptions exc, int64_t r, container) except -1:
    """A row not marked as an exception must not be listed as one (the whole-column decoder checks the same)."""
    if exc is not None and exc.n and exc.find(r) >= 0:
        raise FormatError(f"row {r} is listed as an exception but not marked as one", path=container.path)
    return 0


cdef class StringsRows:
    """Rows of a ``strings`` column (columns.encode_strings)."""

    cdef Blocks blocks

    def __init__(self, Blocks blocks):
        self.blocks = blocks

    def row(self, int64_t r):
        cdef const uint8_t *p
        cdef int64_t n
        owner = self.blocks.entry(r, &p, &n)
        return _utf8(p, n, self.blocks.container)


cdef class Md5Rows:
    """Rows of an ``md5`` column: 16 raw bytes per row, or an exception."""

    cdef const uint8_t[::1] md5
    cdef object container
    cdef int seg
    cdef bytearray checked
    cdef Exceptions exc

    def __init__(self, container, int seg, Exceptions exc):
        info = container.segments[seg]
        self.container = container
        self.seg = seg
        self.md5 = container.view[info["offset"] : info["offset"] + info["length"]]
        self.checked = bytearray((info["length"] + BLOCK - 1) // BLOCK)
        self.exc = exc

    def row(self, int64_t r):
        cdef int64_t j, b
        cdef uint8_t text[24]
        if r < 0 or 16 * r + 16 > self.md5.shape[0]:
            raise IndexError(f"row {r} outside the column")
        if self.exc is not None and self.exc.n:
            j = self.exc.find(r)
            if j >= 0:
                return self.exc.text(j)
        b = (16 * r) >> 20
        if not self.checked[b]:
            self.container.raw(self.seg, b * BLOCK, min((b + 1) * BLOCK, self.md5.shape[0]))
            self.checked[b] = 1
        oic_md5_render(&self.md5[16 * r], text)
        return (<char *>text)[:24].decode("ascii")


cdef class DictRows:
    """Rows of a ``text_dict`` column: a code per row into a dictionary; the count marks an exception."""

    cdef Ints codes
    cdef Blocks values
    cdef Exceptions exc

    def __init__(self, Ints codes, Blocks values, Exceptions exc):
        self.codes = codes
        self.values = values
        self.exc = exc

    def row(self, int64_t r):
        cdef int64_t c = self.codes.get(r), n
        cdef const uint8_t *p
        if c == self.values.count:
            return _exception_text(self.exc, r, self.values.container)
        _not_an_exception(self.exc, r, self.values.container)
        if c < 0 or c > self.values.count:
            raise FormatError(f"row {r}: code {c} outside the dictionary of {self.values.count}",
                              path=self.values.container.path)
        owner = self.values.entry(c, &p, &n)
        return _utf8(p, n, self.values.container)


cdef class TemplateRows:
    """Rows of a ``template`` column, one at a time: the row's template code, then only its fields."""

    cdef Program prog
    cdef Ints tpl
    cdef list fields
    cdef list dicts
    cdef Exceptions exc
    cdef object container

    def __init__(self, container, Program prog, Ints tpl, list fields, list dicts, Exceptions exc):
        if len(fields) != prog.n_fields or len(dicts) != prog.n_dicts:
            raise ValueError("one reader per field and per dictionary")
        self.container = container
        self.prog = prog
        self.tpl = tpl
        self.fields = fields
        self.dicts = dicts
        self.exc = exc

    def row(self, int64_t r):
        cdef int64_t k = self.tpl.get(r), n, total, v
        cdef oic_tc_ints vals[64]
        cdef int64_t one_off[64][2]
        cdef const int64_t *d_off[64]
        cdef const uint8_t *d_data[64]
        cdef int64_t d_n[64]
        cdef oic_tpl t
        cdef oic_tc_status st
        cdef int i
        cdef const oic_tpl_op *op
        cdef Blocks blocks
        cdef uint8_t small[512]
        cdef uint8_t *buf
        cdef const uint8_t *p
        cdef list owners = None
        if k == self.prog.n_templates:
            return _exception_text(self.exc, r, self.container)
        _not_an_exception(self.exc, r, self.container)
        if k < 0 or k > self.prog.n_templates:
            raise FormatError(f"row {r}: template code {k} outside 0..{self.prog.n_templates}", path=self.container.path)
        t = self.prog.t
        for i in range(self.prog.start_v[k], self.prog.start_v[k + 1]):
            op = <const oic_tpl_op *>&self.prog.ops_v[i, 0]
            if op.kind == 0:
                continue
            v = (<Ints>self.fields[op.field]).get(r)
            if op.kind == 4:  # DICT: a one-entry dictionary holding the row's entry
                blocks = <Blocks>self.dicts[op.b]
                if v < 0 or v >= blocks.count:
                    raise FormatError(f"row {r}: code {v} outside a dictionary of {blocks.count}",
                                      path=self.container.path)
                if owners is None:
                    owners = []
                owners.append(blocks.entry(v, &p, &n))
                d_data[op.b] = p
                one_off[op.b][0] = 0
                one_off[op.b][1] = n
                d_off[op.b] = one_off[op.b]
                d_n[op.b] = 1
                v = 0
            vals[op.field].p = _ZEROS
            vals[op.field].nbytes = 0
            vals[op.field].bits = 0
            vals[op.field].base = v
            vals[op.field].add = NULL
        t.dict_off = d_off
        t.dict_data = d_data
        t.dict_n = d_n
        st = oic_tpl_row(&t, <int32_t>k, vals, 0, NULL, 0, &total)
        if st != OIC_TC_OK:
            raise FormatError(f"row {r}: {STATUS[st]}", path=self.container.path)
        if total <= 512:
            buf = small
        else:
            buf = <uint8_t *>malloc(total)
            if buf == NULL:
                raise MemoryError()
        try:
            oic_tpl_row(&t, <int32_t>k, vals, 0, buf, total, &n)
            return _utf8(buf, total, self.container)
        finally:
            if buf != small:
                free(buf)
