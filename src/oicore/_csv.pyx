"""Cython layer of the CSV reader: one chunk of bytes in, typed numpy buffers out.

The Python side (reader.py) splits the file into chunks of whole records,
hands each to :func:`parse_chunk` (which releases the GIL for the whole
chunk, so two threads parse two chunks at once) and stitches the results into
a pyarrow table. Statuses become exceptions in reader.py's one funnel.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy

import numpy as np

cimport numpy as cnp

from oicore._csv cimport *

cnp.import_array()

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


cdef class Vocabulary:
    """Byte strings -> dense int32 codes, in order of first appearance.

    One per dictionary column of a read: each chunk parses with a copy
    (:meth:`copy`, taken on the reading thread), and :meth:`merge` folds the
    copy's new values back, giving the map from the chunk's codes.
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


cdef inline void* _data(cnp.ndarray a):
    return cnp.PyArray_DATA(a)


PAD = OIC_PAD


def parse_chunk(const uint8_t[::1] buf, Py_ssize_t start, Py_ssize_t end, bint at_eof, tuple types,
                tuple required, Py_ssize_t max_rows=-1, tuple bases=None):
    """Parse records of ``buf[start:end]`` into columns of the given types.

    ``end`` is a record boundary, or the end of the file when ``at_eof``.
    When ``PAD`` bytes after ``end`` are readable, chunks without quotes or
    CRs take the word-at-a-time fast path.

    Returns a :class:`ChunkResult`. Its ``columns`` hold, per column:
    ``(values, validity, null_count)`` for numbers and image IDs,
    ``(codes, values_bytes_list)`` for dictionaries, ``(offsets, data)`` for
    strings; ``rows`` values are valid (the arrays may be longer).

    ``bases`` gives, per dictionary column, the :class:`Vocabulary` so far
    (or None): shared by every chunk, read and never changed. Values found
    there take its codes; new ones get codes from ``len(base)`` up in the
    chunk's own vocabulary. The column's result is ``(codes, new_values,
    len(base))`` with ``new_values`` that chunk vocabulary.
    """
    cdef int32_t ncols = len(types), i
    cdef int64_t n = end
    cdef const uint8_t *base = &buf[0] if buf.shape[0] else NULL
    cdef int64_t rows_cap
    cdef uint32_t *ends = NULL
    cdef bint padded = buf.shape[0] - end >= OIC_PAD
    cdef oic_parser p
    cdef oic_status st
    cdef oic_column *cols = NULL
    cdef Vocabulary vocab
    cdef int64_t nends = 0, nlf = 0
    cdef bint plain = False
    if not 0 <= start <= end <= buf.shape[0]:
        raise ValueError(f"[{start}:{end}] outside the buffer of {buf.shape[0]} bytes")
    cols = <oic_column *>calloc(ncols if ncols else 1, sizeof(oic_column))
    if cols == NULL:
        raise MemoryError()
    try:
        if padded and ncols > 0 and start < n and n <= 0xFFFFFFFF:
            # The fast path's first pass also counts the rows; it stops at the first quote or CR.
            ends = <uint32_t *>malloc((n - start + 1) * sizeof(uint32_t))
            if ends == NULL:
                raise MemoryError()
            with nogil:
                plain = oic_plain_index(base, start, n, ends, &nends, &nlf)
            if plain:
                rows_cap = nlf + 1
        if not plain:
            with nogil:
                rows_cap = oic_count_terminators(base + start, n - start) + 1 if n else 1
        if max_rows >= 0 and rows_cap > max_rows:
            rows_cap = max_rows
        return _parse_chunk(buf, start, end, at_eof, types, required, max_rows, bases, cols, ncols, rows_cap,
                            plain, ends, nends)
    finally:
        free(ends)
        free(cols)


cdef _parse_chunk(const uint8_t[::1] buf, Py_ssize_t start, Py_ssize_t end, bint at_eof, tuple types,
                  tuple required, Py_ssize_t max_rows, tuple bases, oic_column *cols, int32_t ncols,
                  int64_t rows_cap, bint plain, const uint32_t *ends, int64_t nends):
    """parse_chunk's second half: allocate the columns, parse, collect the results."""
    cdef int64_t n = end
    cdef const uint8_t *base = &buf[0] if buf.shape[0] else NULL
    cdef int32_t i
    cdef oic_parser p
    cdef oic_status st
    cdef Vocabulary vocab
    keep = []  # numpy buffers, referenced until returned
    for i in range(ncols):
        t = types[i]
        cols[i].type = t
        cols[i].required = bool(required[i])
        if t == OIC_COL_STRING:
            offsets = np.zeros(rows_cap + 1, dtype=np.int32)
            data = np.empty(max(n - start, 1), dtype=np.uint8)
            cols[i].offsets = <int32_t *>_data(offsets)
            cols[i].data = <uint8_t *>_data(data)
            cols[i].data_cap = n - start
            keep.append((offsets, data))
            continue
        values = np.empty(rows_cap, dtype=_VALUE_DTYPES[t])
        cols[i].values = _data(values)
        if t == OIC_COL_DICTIONARY:
            base_vocab = bases[i] if bases is not None else None
            vocab = Vocabulary()
            cols[i].dict = &vocab.d
            if base_vocab is not None:
                cols[i].base = &(<Vocabulary?>base_vocab).d  # checked cast: a TypeError, not a crash
            # The base rides along in the result so it outlives the parse.
            keep.append((values, vocab, len(base_vocab) if base_vocab is not None else 0, base_vocab))
        elif t != OIC_COL_IMAGE_ID and not cols[i].required:
            validity = np.zeros((rows_cap + 7) // 8 or 1, dtype=np.uint8)
            cols[i].validity = <uint8_t *>_data(validity)
            keep.append((values, validity))
        else:
            keep.append((values, None))

    _init_parser(&p, base, n, start, at_eof, rows_cap, max_rows)
    with nogil:
        if plain:
            st = oic_parse_plain(&p, cols, ncols, ends, nends)
        else:
            st = oic_parse_chunk(&p, cols, ncols)

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
            offsets, data = keep[i]
            # Exact-size copy: the scratch buffer was as large as the chunk.
            out.append((offsets[: p.rows + 1], data[: cols[i].data_len].copy()))
        elif t == OIC_COL_DICTIONARY:
            out.append((keep[i][0][: p.rows], keep[i][1], keep[i][2], keep[i][3]))
        elif keep[i][1] is not None:
            # Nulls counted from the bits: the fast path converts some rows more than once.
            valid = int(np.unpackbits(keep[i][1], count=p.rows, bitorder="little").sum()) if p.rows else 0
            out.append((keep[i][0][: p.rows], keep[i][1], p.rows - valid))
        else:
            out.append((keep[i][0][: p.rows], None, 0))
    result.columns = out
    return result


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


def remap_codes(int32_t[::1] codes, const int32_t[::1] mapping, int32_t start=0):
    """In place: codes from ``start`` up become ``mapping[code - start]`` (chunk codes to the vocabulary's)."""
    cdef Py_ssize_t i, n = codes.shape[0], m = mapping.shape[0]
    cdef int32_t c
    cdef bint bad = False
    with nogil:
        for i in range(n):
            c = codes[i] - start
            if c >= 0:
                if c >= m:
                    bad = True
                    break
                codes[i] = mapping[c]
    if bad:
        raise IndexError(f"code {codes[i]} outside a mapping of {m} from {start}")
