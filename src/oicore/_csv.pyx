"""Cython layer of the CSV reader: one chunk of bytes in, typed numpy buffers out.

The Python side (reader.py) splits the file into chunks of whole records,
hands each to :func:`parse_chunk` (which releases the GIL for the whole
chunk, so two threads parse two chunks at once) and stitches the results into
a pyarrow table. Statuses become exceptions in reader.py's one funnel.
Records without quotes or CRs take the fast path (include/oic_csv_fast.h).
"""

from cpython.buffer cimport PyBuffer_FillInfo
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

import numpy as np

cimport numpy as cnp

from oicore._csv cimport *

cnp.import_array()


cdef extern from "oic_csv_fast.h" nogil:
    size_t OIC_SEGMENT_SIZE
    size_t oic_round_up(size_t n, size_t to)
    void *oic_segment_map(size_t size)
    void oic_segment_unmap(void *p, size_t size)
    void oic_segment_trim(void *p, size_t used, size_t warm, size_t size)
    void oic_segment_keep(void *p, size_t warm)
    oic_status oic_parse_fast(oic_parser *p, oic_column *cols, int32_t ncols)
    int64_t oic_count_set_bits(const uint8_t *v, int64_t bits)
    int64_t oic_after_last_lf(const uint8_t *s, int64_t n)
    int64_t oic_remap_codes(int32_t *codes, int64_t n, const int32_t *mapping, int32_t m, int32_t start)
    int64_t oic_remap_rows(int32_t *codes, int64_t n, const int32_t *rows, int64_t nrows, const int32_t *mapping,
                           int32_t m)
    void oic_column_map_codes(oic_column *col, const int32_t *gmap, int64_t n)
    int64_t oic_column_local_rows(const oic_column *col, const int32_t **rows)
    void oic_column_release(oic_column *col)

# One C locale for strtod_l, so a process-wide setlocale() cannot change numbers.
cdef locale_t C_LOCALE = newlocale(LC_ALL_MASK, b"C", NULL)
if C_LOCALE == NULL:
    raise MemoryError("newlocale(C) failed")

# Pinned status codes (include/oic_status.h), by name.
STATUS = {
    "OK": OIC_OK,
    "STRAY_QUOTE": OIC_ERR_STRAY_QUOTE,
    "AFTER_QUOTE": OIC_ERR_AFTER_QUOTE,
    "UNTERMINATED_QUOTE": OIC_ERR_UNTERMINATED_QUOTE,
    "EMPTY_LINE": OIC_ERR_EMPTY_LINE,
    "TOO_MANY_FIELDS": OIC_ERR_TOO_MANY_FIELDS,
    "TOO_FEW_FIELDS": OIC_ERR_TOO_FEW_FIELDS,
    "UTF8": OIC_ERR_UTF8,
    "IMAGE_ID": OIC_ERR_IMAGE_ID,
    "NUMBER": OIC_ERR_NUMBER,
    "INTEGER": OIC_ERR_INTEGER,
    "INT_RANGE": OIC_ERR_INT_RANGE,
    "EMPTY_REQUIRED": OIC_ERR_EMPTY_REQUIRED,
    "NO_MEMORY": OIC_ERR_NO_MEMORY,
    "CAPACITY": OIC_ERR_CAPACITY,
    "NEED_MORE": OIC_NEED_MORE,
}

_VALUE_DTYPES = {
    OIC_COL_IMAGE_ID: np.uint64,
    OIC_COL_DICTIONARY: np.int32,
    OIC_COL_FLOAT64: np.float64,
    OIC_COL_INT8: np.int8,
    OIC_COL_INT32: np.int32,
    OIC_COL_INT64: np.int64,
}


def find_split(const uint8_t[::1] buf):
    """Length of the longest prefix of ``buf`` that ends with a whole record (0 if none)."""
    cdef int64_t n = buf.shape[0], split
    if n == 0:
        return 0
    with nogil:
        split = oic_find_split(&buf[0], n)
    return split


def after_last_lf(const uint8_t[::1] buf):
    """The length of the longest prefix of ``buf`` that ends with LF (0 if none).

    A cut that ignores quotes: right for files without quoted line breaks, and
    parse_chunk says NEED_MORE when it was not.
    """
    cdef int64_t n = buf.shape[0], split
    if n == 0:
        return 0
    with nogil:
        split = oic_after_last_lf(&buf[0], n)
    return split


cdef class Vocabulary:
    """Byte strings -> dense int32 codes, in order of first appearance.

    Per dictionary column of a read, the table's (values added in file order),
    and one per reading thread, which its chunks add to: the reader interns
    each chunk's new values into the table's (:meth:`intern_all`), which gives
    the map from the thread's codes.
    """

    def __cinit__(self):
        if oic_dict_init(&self.d) != OIC_OK:
            raise MemoryError()

    def __dealloc__(self):
        oic_dict_free(&self.d)

    def __len__(self):
        return self.d.count

    def copy(self):
        cdef Vocabulary other = Vocabulary.__new__(Vocabulary)
        oic_dict_free(&other.d)
        if oic_dict_clone(&other.d, &self.d) != OIC_OK:
            raise MemoryError()
        return other

    def values(self, Py_ssize_t start=0):
        """The values with codes ``start`` and up, as bytes."""
        if not 0 <= start <= self.d.count:
            raise IndexError(f"start {start} outside a vocabulary of {self.d.count}")
        return _dict_values(&self.d, start)

    def string_buffers(self):
        """``(offsets, data)``: int32 offsets (count + 1) and the values' bytes, as Arrow's string layout."""
        cdef int32_t k
        if self.d.bytes_len > 0x7FFFFFFF:
            raise OverflowError("dictionary values exceed 2 GiB")
        offsets = np.empty(self.d.count + 1, dtype=np.int32)
        cdef int32_t[::1] o = offsets
        for k in range(self.d.count + 1):
            o[k] = <int32_t>self.d.offsets[k]
        data = np.empty(self.d.bytes_len, dtype=np.uint8)
        if self.d.bytes_len:
            memcpy(cnp.PyArray_DATA(data), self.d.bytes, self.d.bytes_len)
        return offsets, data

    def intern_all(self, list values not None):
        """The codes of ``values`` (bytes), adding the new ones in order (int32 array)."""
        cdef Py_ssize_t k, n = len(values)
        cdef int32_t code
        cdef int added
        cdef bytes v
        out = np.empty(n, dtype=np.int32)
        cdef int32_t[::1] view = out
        for k in range(n):
            v = values[k]
            if oic_dict_intern(&self.d, <const uint8_t *><const char *>v, len(v), &code, &added) != OIC_OK:
                raise MemoryError()
            view[k] = code
        return out

    def merge(self, Vocabulary chunk not None, int32_t start):
        """Add ``chunk``'s values with codes >= ``start``; return their codes here (int32 array)."""
        cdef int32_t k, code
        cdef int added
        if not 0 <= start <= chunk.d.count:
            raise IndexError(f"start {start} outside a vocabulary of {chunk.d.count}")
        cdef int32_t n = chunk.d.count - start
        out = np.empty(n, dtype=np.int32)
        cdef int32_t[::1] view = out
        cdef oic_status st
        for k in range(n):
            st = oic_dict_intern(&self.d, chunk.d.bytes + chunk.d.offsets[start + k],
                                 chunk.d.offsets[start + k + 1] - chunk.d.offsets[start + k], &code, &added)
            if st != OIC_OK:
                raise MemoryError()
            view[k] = code
        return out


class ChunkResult:
    """What :func:`parse_chunk` found: columns, counts, and the error if any."""

    __slots__ = ("status", "rows", "pos", "lines", "err_line", "err_column", "err_offset", "columns")


cdef inline void _init_parser(oic_parser *p, const uint8_t *buf, int64_t n, int64_t start, bint at_eof,
                              int64_t rows_cap, int64_t max_rows) noexcept nogil:
    p.buf = buf
    p.len = n
    p.at_eof = at_eof
    p.c_locale = C_LOCALE
    p.pos = start
    p.lines = 0
    p.rows = 0
    p.rows_cap = rows_cap
    p.max_rows = max_rows
    p.err_line = p.err_column = p.err_offset = 0


PAD = OIC_PAD


# Segments freed by tables no longer used, kept for the next reads (oic_csv_fast.h): touched
# again, their pages cost no faults. At most _SPARE_MAX of them, holding _SPARE_BYTES at most.
cdef enum:
    _SPARE_MAX = 64
cdef void *_spare_base[_SPARE_MAX]
cdef size_t _spare_warm[_SPARE_MAX]
cdef int _spare_count = 0
cdef size_t _spare_bytes = 0
cdef size_t _SPARE_BYTES = <size_t>512 << 20


def spare_limit(Py_ssize_t limit=-1):
    """Keep at most ``limit`` bytes of freed output segments for the next reads (512 MiB unless set), and
    unmap the spares over it; returns the previous limit. ``-1`` only reads it.

    ``convert`` lowers it while it runs: its tables are read once, and its memory bound counts every page.
    """
    global _SPARE_BYTES, _spare_count, _spare_bytes
    cdef size_t previous = _SPARE_BYTES
    if limit < 0:
        return previous
    _SPARE_BYTES = <size_t>limit
    while _spare_count > 0 and _spare_bytes > _SPARE_BYTES:
        _spare_count -= 1
        _spare_bytes -= _spare_warm[_spare_count]
        oic_segment_unmap(_spare_base[_spare_count], OIC_SEGMENT_SIZE)
    return previous


cdef class _Segment:
    """One map that columns are written to; kept as a spare, or unmapped, when its buffers are gone."""

    cdef char *base
    cdef size_t size, warm  # warm: bytes from base that may have been touched

    def __dealloc__(self):
        global _spare_count, _spare_bytes
        if self.base == NULL:
            return
        if (self.size == OIC_SEGMENT_SIZE and _spare_count < _SPARE_MAX
                and _spare_bytes + self.warm <= _SPARE_BYTES):
            oic_segment_keep(self.base, self.warm)
            _spare_base[_spare_count] = self.base
            _spare_warm[_spare_count] = self.warm
            _spare_count += 1
            _spare_bytes += self.warm
        else:
            oic_segment_unmap(self.base, self.size)


cdef _Segment _segment_for(size_t need):
    """A segment with room for `need` bytes: the last kept spare when it fits, else a new map
    (base NULL when maps are not available)."""
    global _spare_count, _spare_bytes
    cdef _Segment seg = _Segment.__new__(_Segment)
    cdef int i, best = 0
    if need <= OIC_SEGMENT_SIZE and _spare_count > 0:
        # The warmest spare: a read fills all but the last segment of each column whole, so
        # whole warm ones go to those and partly warm ones to the ends, where they fault least.
        for i in range(1, _spare_count):
            if _spare_warm[i] > _spare_warm[best]:
                best = i
        seg.base = <char *>_spare_base[best]
        seg.warm = _spare_warm[best]
        seg.size = OIC_SEGMENT_SIZE
        _spare_bytes -= seg.warm
        _spare_count -= 1
        _spare_base[best] = _spare_base[_spare_count]
        _spare_warm[best] = _spare_warm[_spare_count]
        return seg
    seg.size = need if need > OIC_SEGMENT_SIZE else OIC_SEGMENT_SIZE
    seg.size = oic_round_up(seg.size, 2 << 20)
    seg.base = <char *>oic_segment_map(seg.size)
    seg.warm = 0
    return seg


cdef class Region:
    """Where one reading thread writes one column, chunk after chunk: segments filled in turn.

    parse_chunk takes a chunk's buffer at the free end of the current segment
    (or of a new one) and :meth:`commit` moves the end past what it kept;
    :meth:`trim` gives back the pages past it when the read is done. Buffers
    keep their segment alive.
    """

    cdef _Segment seg
    cdef size_t used

    cdef char *room(self, size_t size):
        """The free end of the current segment when `size` bytes fit there, else of a new one;
        NULL when maps are not available."""
        if self.seg is None or self.seg.size - self.used < size:
            self.trim()
            self.seg = _segment_for(size)
            self.used = 0
            if self.seg.base == NULL:
                self.seg = None
                return NULL
        return self.seg.base + self.used

    cdef void commit(self, char *p, size_t size):
        self.used = <size_t>(p - self.seg.base) + oic_round_up(size, 64)
        if self.used > self.seg.size:
            self.used = self.seg.size
        if self.used > self.seg.warm:
            self.seg.warm = self.used

    def trim(self):
        """Give back the pages past the end of the current segment (no chunk will take more)."""
        if self.seg is not None:
            oic_segment_trim(self.seg.base, self.used, self.seg.warm, self.seg.size)
            self.seg.warm = oic_round_up(self.used, 4096)


cdef class _Buffer:
    """An output buffer handed to numpy and Arrow without a copy: a piece of a
    Region's segment, or its own malloc'ed block (resized in place)."""

    cdef void *ptr
    cdef Py_ssize_t size
    cdef Region region  # None: ptr is malloc'ed and owned
    cdef _Segment seg   # the segment ptr is in, kept alive

    def __dealloc__(self):
        if self.region is None:
            free(self.ptr)

    def __getbuffer__(self, Py_buffer *view, int flags):
        PyBuffer_FillInfo(view, self, self.ptr, self.size, 0, flags)

    def __releasebuffer__(self, Py_buffer *view):
        pass


cdef _Buffer _new_buffer(Py_ssize_t size, bint zeroed, Region region=None):
    """A buffer of `size` bytes: in the region (contents undefined), else malloc'ed."""
    cdef _Buffer b = _Buffer.__new__(_Buffer)
    cdef char *p = region.room(size) if region is not None and not zeroed else NULL
    if p != NULL:
        b.ptr = p
        b.region = region
        b.seg = region.seg
        b.size = size
        return b
    # At least a byte: malloc(0) may give NULL.
    b.ptr = calloc(size if size else 1, 1) if zeroed else malloc(size if size else 1)
    if b.ptr == NULL:
        raise MemoryError()
    b.size = size
    return b


cdef int _resize(_Buffer b, Py_ssize_t size, bint zeroed) except -1:
    """Grow or shrink; new bytes are zeroed when asked. A region's piece grows by a copy."""
    cdef void *q
    if b.region is not None:
        if size <= b.size:
            b.size = size
            return 0
        q = malloc(size)
        if q == NULL:
            raise MemoryError()
        memcpy(q, b.ptr, b.size)
        if zeroed:
            memset(<char *>q + b.size, 0, size - b.size)
        b.ptr = q
        b.size = size
        b.region = None
        b.seg = None
        return 0
    q = realloc(b.ptr, size if size else 1)
    if q == NULL:
        if size <= b.size:
            b.size = size  # shrinking failed: keep the larger block
            return 0
        raise MemoryError()
    if zeroed and size > b.size:
        memset(<char *>q + b.size, 0, size - b.size)
    b.ptr = q
    b.size = size
    return 0


cdef int _finish(_Buffer b, Py_ssize_t size) except -1:
    """The buffer's final size: a region's piece is kept (the region moves past it, to a
    64-byte boundary), a malloc'ed block shrinks."""
    if b.region is None:
        return _resize(b, size, False)
    b.size = size
    b.region.commit(<char *>b.ptr, size)
    return 0


cdef Py_ssize_t _value_size(int t):
    if t == OIC_COL_IMAGE_ID or t == OIC_COL_FLOAT64 or t == OIC_COL_INT64:
        return 8
    if t == OIC_COL_INT8:
        return 1
    return 4  # dictionary codes, int32


cdef Py_ssize_t _min_fast_record(tuple types, tuple required):
    """The fewest bytes a record takes on the fast path (for the first guess of the row count)."""
    cdef Py_ssize_t total = 0
    for t, r in zip(types, required):
        if t == OIC_COL_IMAGE_ID:
            total += 17
        elif t == OIC_COL_DICTIONARY or (t != OIC_COL_STRING and r):
            total += 2
        else:
            total += 1
    return max(total, 2)


def output_regions(tuple types, tuple required, Py_ssize_t nbytes):
    """Per column, the Region (two for a string column: offsets, data) that one reading
    thread writes its chunks of a text of ``nbytes`` bytes to; None for a small text (a huge
    page partly written costs up to 2 MiB per region: worth it for large texts only)."""
    if nbytes < (64 << 20):
        return None
    return tuple((Region(), Region()) if t == OIC_COL_STRING else Region() for t in types)


def parse_chunk(const uint8_t[::1] buf, Py_ssize_t start, Py_ssize_t end, bint at_eof, tuple types,
                tuple required, Py_ssize_t max_rows=-1, tuple vocabs=None, tuple regions=None, tuple maps=None):
    """Parse records of ``buf[start:end]`` into columns of the given types.

    ``end`` is a record boundary, or the end of the file when ``at_eof`` (a
    caller that cut the chunk without looking at quotes gets ``NEED_MORE`` and
    the rows before the unfinished record when the cut was inside a quoted
    field). When ``PAD`` bytes after ``end`` are readable, records without
    quotes or CRs take the fast path.

    Returns a :class:`ChunkResult`. Its ``columns`` hold, per column:
    ``(values, validity, null_count)`` for numbers and image IDs,
    ``(codes, new_values, first_code, local_rows)`` for dictionaries,
    ``(offsets, data)`` for strings, as numpy arrays of exactly ``rows``
    values.

    ``vocabs`` gives, per dictionary column, the :class:`Vocabulary` to code
    values with (or None for a new one): a reading thread passes its own,
    chunk after chunk, so that the table stays warm. Values it lacks are
    added; ``new_values`` (bytes) are those, with codes from ``first_code``.

    ``regions`` (from :func:`output_regions`, one set per reading thread)
    gives the address space the columns are written to; by default each
    chunk's buffers are malloc'ed.

    ``maps`` gives, per dictionary column, the int32 array from the
    vocabulary's codes to the table's, as far as known (or None): rows get
    the table's codes where it knows them. ``local_rows`` lists the rows
    left with the vocabulary's codes (int32), or is None when any row may be.
    """
    cdef int32_t ncols = len(types), i
    cdef const uint8_t *base = &buf[0] if buf.shape[0] else NULL
    cdef bint padded = buf.shape[0] - end >= OIC_PAD
    cdef oic_parser p
    cdef oic_status st
    cdef oic_column *cols = NULL
    cdef Vocabulary vocab
    cdef _Buffer b
    cdef int64_t rows_cap, more, valid, nfix
    cdef const int32_t[::1] gmap
    cdef const int32_t *fix_rows
    cdef list values = [None] * ncols, extra = [None] * ncols, firsts = [0] * ncols
    if not 0 <= start <= end <= buf.shape[0]:
        raise ValueError(f"[{start}:{end}] outside the buffer of {buf.shape[0]} bytes")
    if len(required) != ncols or any(x is not None and len(x) != ncols for x in (vocabs, regions, maps)):
        raise ValueError("types, required, vocabs, regions and maps differ in length")
    if padded:
        # An upper bound for fast-path records; records of the general path may be shorter,
        # and then the buffers grow. Pages past the rows parsed are never touched.
        rows_cap = (end - start) // _min_fast_record(types, required) + 1
    else:
        with nogil:
            rows_cap = oic_count_terminators(base + start, end - start) + 1 if end > start else 1
    if 0 <= max_rows < rows_cap:
        rows_cap = max_rows
    cols = <oic_column *>calloc(ncols if ncols else 1, sizeof(oic_column))
    if cols == NULL:
        raise MemoryError()
    try:
        for i in range(ncols):
            t = types[i]
            cols[i].type = t
            cols[i].required = bool(required[i])
            r = regions[i] if regions is not None else None
            if t == OIC_COL_STRING:
                b = _new_buffer((rows_cap + 1) * 4, False, r[0] if r is not None else None)
                (<int32_t *>b.ptr)[0] = 0  # offsets, from 0
                values[i] = b
                cols[i].offsets = <int32_t *>b.ptr
                b = _new_buffer(end - start, False, r[1] if r is not None else None)
                extra[i] = b
                cols[i].data = <uint8_t *>b.ptr
                cols[i].data_cap = end - start
                continue
            b = _new_buffer(rows_cap * _value_size(t), False, r)
            values[i] = b
            cols[i].values = b.ptr
            if t == OIC_COL_DICTIONARY:
                v = vocabs[i] if vocabs is not None else None
                vocab = Vocabulary() if v is None else <Vocabulary?>v  # checked: a TypeError, not a crash
                extra[i] = vocab
                firsts[i] = vocab.d.count
                cols[i].dict = &vocab.d
                m = maps[i] if maps is not None else None
                if m is not None and len(m) and padded:
                    gmap = m  # the caller's array, kept by the caller for the parse
                    oic_column_map_codes(&cols[i], &gmap[0], gmap.shape[0])
                else:
                    oic_column_map_codes(&cols[i], NULL, 0)
            elif t != OIC_COL_IMAGE_ID and not cols[i].required:
                b = _new_buffer((rows_cap + 7) // 8, True)
                extra[i] = b
                cols[i].validity = <uint8_t *>b.ptr

        _init_parser(&p, base, end, start, at_eof, rows_cap, max_rows)
        while True:
            with nogil:
                st = oic_parse_fast(&p, cols, ncols) if padded else oic_parse_chunk(&p, cols, ncols)
            if not (st == OIC_ERR_CAPACITY and p.rows == p.rows_cap and p.pos < end):
                break
            # Shorter records than guessed: room for every terminator left, then go on.
            with nogil:
                more = oic_count_terminators(base + p.pos, end - p.pos) + 1
            p.rows_cap = p.rows + more if max_rows < 0 else min(p.rows + more, max_rows)
            _grow(cols, ncols, values, extra, p.rows_cap)

        result = ChunkResult()
        result.status = st
        result.rows = p.rows
        result.pos = p.pos
        result.lines = p.lines
        result.err_line = p.err_line
        result.err_column = p.err_column
        result.err_offset = p.err_offset
        out = []
        for i in range(ncols):
            t = types[i]
            if t == OIC_COL_STRING:
                _finish(values[i], (p.rows + 1) * 4)
                _finish(extra[i], cols[i].data_len)
                out.append((np.frombuffer(values[i], np.int32), np.frombuffer(extra[i], np.uint8)))
                continue
            _finish(values[i], p.rows * _value_size(t))
            arr = np.frombuffer(values[i], _VALUE_DTYPES[t])
            if t == OIC_COL_DICTIONARY:
                nfix = oic_column_local_rows(&cols[i], &fix_rows)
                local_rows = None
                if nfix >= 0:
                    local_rows = np.empty(nfix, dtype=np.int32)
                    if nfix:
                        memcpy(cnp.PyArray_DATA(local_rows), fix_rows, nfix * sizeof(int32_t))
                out.append((arr, (<Vocabulary>extra[i]).values(firsts[i]), firsts[i], local_rows))
            elif extra[i] is not None:
                b = extra[i]
                _finish(b, (p.rows + 7) // 8)
                # Nulls counted from the bits: a record redone by the general path sets them again.
                with nogil:
                    valid = oic_count_set_bits(<const uint8_t *>b.ptr, p.rows)
                out.append((arr, np.frombuffer(b, np.uint8), p.rows - valid))
            else:
                out.append((arr, None, 0))
        result.columns = out
        return result
    finally:
        for i in range(ncols):
            oic_column_release(&cols[i])
        free(cols)


cdef int _grow(oic_column *cols, int32_t ncols, list values, list extra, int64_t rows_cap) except -1:
    """Room for rows_cap rows in every column, after the capacity ran out."""
    cdef int32_t i
    cdef _Buffer b
    for i in range(ncols):
        b = values[i]
        if cols[i].type == OIC_COL_STRING:
            _resize(b, (rows_cap + 1) * 4, True)
            cols[i].offsets = <int32_t *>b.ptr
            continue
        _resize(b, rows_cap * _value_size(cols[i].type), False)
        cols[i].values = b.ptr
        if cols[i].validity != NULL:
            b = extra[i]
            _resize(b, (rows_cap + 7) // 8, True)
            cols[i].validity = <uint8_t *>b.ptr
    return 0


cdef list _dict_values(oic_dict *d, Py_ssize_t start):
    cdef int32_t k
    cdef const char *b = <const char *>d.bytes
    return [b[d.offsets[k]:d.offsets[k + 1]] for k in range(start, d.count)]


def read_record(const uint8_t[::1] buf, Py_ssize_t start, bint at_eof, int32_t max_fields=100000):
    """Tokenize the one record at ``buf[start:]`` (a header) into raw field bytes.

    Returns ``(status, fields, end, lines, err_line, err_column, err_offset)``;
    ``fields`` are ``(text, content_start, content_end)`` with the text
    unescaped but not decoded, and the span still escaped.
    """
    cdef int64_t n = buf.shape[0]
    cdef oic_parser p
    cdef int32_t nfields = 0, f
    cdef oic_status st
    cdef int64_t *spans = <int64_t *>calloc(3 * <size_t>max_fields + 3, sizeof(int64_t))
    if spans == NULL:
        raise MemoryError()
    try:
        _init_parser(&p, &buf[0] if n else NULL, n, start, at_eof, 1, 1)
        with nogil:
            st = oic_read_record(&p, spans, max_fields, &nfields)
        fields = []
        if st == OIC_OK:
            for f in range(min(nfields, max_fields)):
                raw = bytes(buf[spans[3 * f]:spans[3 * f + 1]])
                fields.append((raw.replace(b'""', b'"') if spans[3 * f + 2] else raw,
                               spans[3 * f], spans[3 * f + 1]))
        return st, fields, p.pos, p.lines, p.err_line, p.err_column, p.err_offset
    finally:
        free(spans)


def remap_rows(int32_t[::1] codes, const int32_t[::1] rows, const int32_t[::1] mapping):
    """In place: ``codes[r]`` becomes ``mapping[codes[r]]`` for each row ``r`` of ``rows`` (increasing)."""
    cdef Py_ssize_t n = codes.shape[0], m = mapping.shape[0], nrows = rows.shape[0], bad
    if m > 0x7FFFFFFF:
        raise OverflowError("mapping too long")
    with nogil:
        bad = oic_remap_rows(&codes[0] if n else NULL, n, &rows[0] if nrows else NULL, nrows,
                             &mapping[0] if m else NULL, <int32_t>m)
    if bad >= 0:
        raise IndexError(f"row {rows[bad]} (of {n}) or its code outside a mapping of {m}")


def remap_codes(int32_t[::1] codes, const int32_t[::1] mapping, int32_t start=0):
    """In place: codes from ``start`` up become ``mapping[code - start]`` (chunk codes to the vocabulary's)."""
    cdef Py_ssize_t n = codes.shape[0], m = mapping.shape[0], bad
    if m > 0x7FFFFFFF:
        raise OverflowError("mapping too long")
    with nogil:
        bad = oic_remap_codes(&codes[0] if n else NULL, n, &mapping[0] if m else NULL, <int32_t>m, start)
    if bad >= 0:
        raise IndexError(f"code {codes[bad]} outside a mapping of {m} from {start}")
