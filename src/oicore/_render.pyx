"""Cython layer of the CSV renderer: encoded columns back to CSV records (include/oic_render.h).

``oicore convert`` calls :func:`compare` to find the records that rendering
would not give back byte for byte (the exceptions, kept raw); ``oicore
export`` calls :func:`render` and splices the exceptions in.

A column is a tuple ``(kind, quote, values, nulls, aux1, aux2)``:

========== ================== ============================ ===========================
kind       values             aux1                         aux2
========== ================== ============================ ===========================
"hex64"    uint64             None                         None
"strings"  None               int64 offsets (rows + 1)     uint8 data (array or bytes)
"dict"     int32 codes        int64 offsets (entries + 1)  uint8 data of the entries
"decimal"  int64 k            scale e (0..18): k / 10**e   "fixed", "trim" or "trim1"
"int"      int64              None                         None
"float"    float64 (repr)     None                         None
========== ================== ============================ ===========================

``quote`` is 0 (minimal: quotes iff the field holds ``,``, ``"``, CR or LF),
1 (always, as csv.QUOTE_ALL) or 2 (never). ``nulls`` is None or a uint8 (or
bool) array, nonzero = null: an empty field, never quoted. Arrays are 1-D,
C-contiguous, of exactly that dtype, and cover every row asked for.
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

import numpy as np

cimport numpy as cnp

cnp.import_array()


cdef extern from "<locale.h>" nogil:
    ctypedef struct __locale_struct:
        pass
    ctypedef __locale_struct *locale_t
    int LC_ALL_MASK
    locale_t newlocale(int category_mask, const char *locale, locale_t base)


cdef extern from "Python.h":
    # Raw references, for a bytes object that is resized in place (it must have no other reference).
    PyObject *_bytes_new "PyBytes_FromStringAndSize"(const char *v, Py_ssize_t n) except NULL
    char *_bytes_data "PyBytes_AS_STRING"(PyObject *b) nogil
    int _PyBytes_Resize(PyObject **b, Py_ssize_t n) except -1


cdef extern from "oic_render.h" nogil:
    int OIC_RENDER_HEX64, OIC_RENDER_STRINGS, OIC_RENDER_DICT, OIC_RENDER_DECIMAL, OIC_RENDER_INT, OIC_RENDER_FLOAT
    int OIC_QUOTE_MINIMAL, OIC_QUOTE_ALL, OIC_QUOTE_NEVER
    int OIC_DECIMAL_FIXED, OIC_DECIMAL_TRIM, OIC_DECIMAL_TRIM1
    int OIC_RENDER_OK, OIC_RENDER_FULL, OIC_RENDER_EXC_FULL, OIC_RENDER_SOURCE_ENDED, OIC_RENDER_BAD_VALUE
    int OIC_RENDER_PAD

    ctypedef struct oic_render_column:
        int32_t kind
        int32_t quote
        const void *values
        const uint8_t *nulls
        const int64_t *offsets
        const uint8_t *data
        int64_t data_len
        int64_t count
        int32_t rendered
        int32_t scale
        int32_t style
        locale_t c_locale

    ctypedef struct oic_render_state:
        const oic_render_column *cols
        int32_t ncols
        const uint8_t *term
        int32_t term_len
        int64_t row
        int64_t pos
        int64_t need
        int32_t bad_column

    int64_t oic_render_table(const int64_t *offsets, const uint8_t *data, int64_t count, int32_t quote,
                             int64_t *out_offsets, uint8_t *out, int64_t cap)
    int oic_render_rows(oic_render_state *st, int64_t stop, uint8_t *out, int64_t cap)
    int64_t oic_record_end(const uint8_t *s, int64_t len, int64_t pos)
    int oic_compare(oic_render_state *st, const uint8_t *src, int64_t len, int64_t n_rows, uint8_t *scratch,
                    int64_t scratch_cap, int64_t *exc, int64_t exc_cap, int64_t *n_exc)


# One C locale for strtod_l, so a process-wide setlocale() cannot change how floats read back.
cdef locale_t C_LOCALE = newlocale(LC_ALL_MASK, b"C", NULL)
if C_LOCALE == NULL:
    raise MemoryError("newlocale(C) failed")

_KINDS = {"hex64": OIC_RENDER_HEX64, "strings": OIC_RENDER_STRINGS, "dict": OIC_RENDER_DICT,
          "decimal": OIC_RENDER_DECIMAL, "int": OIC_RENDER_INT, "float": OIC_RENDER_FLOAT}
_VALUE_DTYPES = {OIC_RENDER_HEX64: np.dtype(np.uint64), OIC_RENDER_DICT: np.dtype(np.int32),
                 OIC_RENDER_DECIMAL: np.dtype(np.int64), OIC_RENDER_INT: np.dtype(np.int64),
                 OIC_RENDER_FLOAT: np.dtype(np.float64)}
_STYLES = {"fixed": OIC_DECIMAL_FIXED, "trim": OIC_DECIMAL_TRIM, "trim1": OIC_DECIMAL_TRIM1}
_TERMINATORS = (b"\n", b"\r\n", b"\r")

KINDS = tuple(_KINDS)
STYLES = tuple(_STYLES)
QUOTE_MINIMAL, QUOTE_ALL, QUOTE_NEVER = OIC_QUOTE_MINIMAL, OIC_QUOTE_ALL, OIC_QUOTE_NEVER


cdef bytes _terminator(object terminator):
    if not isinstance(terminator, bytes):
        raise TypeError(f"terminator must be bytes, got {type(terminator).__name__}")
    if terminator not in _TERMINATORS:
        raise ValueError(f"terminator must be b'\\n', b'\\r\\n' or b'\\r', got {terminator!r}")
    return terminator


cdef object _array(object a, object dtype, Py_ssize_t need, Py_ssize_t i, str what):
    """``a`` checked: a 1-D C-contiguous numpy array of ``dtype`` with at least ``need`` entries."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"column {i}: {what} must be a numpy {dtype} array, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"column {i}: {what} must have dtype {dtype}, got {a.dtype}")
    if a.ndim != 1 or not a.flags.c_contiguous:
        raise ValueError(f"column {i}: {what} must be 1-D and C-contiguous")
    if a.shape[0] < need:
        raise ValueError(f"column {i}: {what} has {a.shape[0]} entries, needs at least {need}")
    return a


cdef inline const void *_ptr(object a) noexcept:
    return cnp.PyArray_DATA(<cnp.ndarray>a)


cdef class _Columns:
    """Column specs checked and turned into C descriptors; holds every buffer they point into."""

    cdef oic_render_column *cols
    cdef int32_t ncols
    cdef list keep

    def __dealloc__(self):
        free(self.cols)

    cdef int setup(self, object columns, Py_ssize_t lo, Py_ssize_t hi) except -1:
        """Checks the columns for rows [lo, hi): dtypes, lengths, tables, codes."""
        cdef Py_ssize_t i, r
        cdef int64_t count, k
        cdef const int64_t[::1] offs
        cdef const int32_t[::1] codes
        cdef const uint8_t[::1] data
        cdef oic_render_column *c
        if not isinstance(columns, (tuple, list)):
            raise TypeError(f"columns must be a tuple or list, got {type(columns).__name__}")
        if not columns:
            raise ValueError("no columns")
        if len(columns) > 0x7FFFFFFF:
            raise ValueError("too many columns")
        self.keep = []
        self.ncols = len(columns)
        self.cols = <oic_render_column *>malloc(self.ncols * sizeof(oic_render_column))
        if self.cols == NULL:
            raise MemoryError()
        for i, spec in enumerate(columns):
            c = &self.cols[i]
            c.values = NULL
            c.nulls = NULL
            c.offsets = NULL
            c.data = NULL
            c.data_len = c.count = 0
            c.rendered = c.scale = c.style = 0
            c.c_locale = C_LOCALE
            if not isinstance(spec, tuple) or len(spec) != 6:
                raise TypeError(f"column {i}: expected a tuple (kind, quote, values, nulls, aux1, aux2)")
            kind, quote, values, nulls, aux1, aux2 = spec
            if kind not in _KINDS:
                raise ValueError(f"column {i}: kind must be one of {', '.join(_KINDS)}, got {kind!r}")
            c.kind = _KINDS[kind]
            if not isinstance(quote, (int, np.integer)) or quote not in (OIC_QUOTE_MINIMAL, OIC_QUOTE_ALL,
                                                                         OIC_QUOTE_NEVER):
                raise ValueError(f"column {i}: quote must be 0 (minimal), 1 (all) or 2 (never), got {quote!r}")
            c.quote = quote
            if nulls is not None:
                if isinstance(nulls, np.ndarray) and nulls.dtype == np.bool_:
                    nulls = nulls.view(np.uint8)
                self.keep.append(_array(nulls, np.dtype(np.uint8), hi, i, "nulls"))
                c.nulls = <const uint8_t *>_ptr(nulls)
            if c.kind == OIC_RENDER_STRINGS:
                if values is not None:
                    raise TypeError(f"column {i}: strings take values=None (the text is aux1, aux2)")
                self.keep.append(_array(aux1, np.dtype(np.int64), hi + 1, i, "offsets (aux1)"))
                c.offsets = <const int64_t *>_ptr(aux1)
                data = _data(aux2, i)
                self.keep.append(data)
                c.data = &data[0] if data.shape[0] else NULL
                c.data_len = data.shape[0]
                continue
            self.keep.append(_array(values, _VALUE_DTYPES[c.kind], hi, i, "values"))
            c.values = _ptr(values)
            if c.kind == OIC_RENDER_DICT:
                offs = _array(aux1, np.dtype(np.int64), 1, i, "table offsets (aux1)")
                data = _data(aux2, i)
                count = offs.shape[0] - 1
                if count > 0x7FFFFFFF:
                    raise ValueError(f"column {i}: a table of {count} entries is more than int32 codes reach")
                codes = values
                for r in range(lo, hi):
                    if not 0 <= codes[r] < count and not (c.nulls != NULL and c.nulls[r]):
                        raise ValueError(f"column {i}: code {codes[r]} at row {r} outside a table of {count}")
                c.count = count
                if count <= hi - lo:
                    # Rendered once when that costs less than the rows (so not for a few rows of a large
                    # vocabulary): then each row is one copy.
                    for k in range(count):
                        if offs[k] < 0 or offs[k + 1] < offs[k]:
                            raise ValueError(f"column {i}: table offsets must be >= 0 and non-decreasing "
                                             f"(entry {k})")
                    if offs[count] > data.shape[0]:
                        raise ValueError(f"column {i}: table offsets run past its {data.shape[0]} bytes")
                    table_offsets, table = self.render_table(offs, data, count, c.quote)
                    c.offsets = <const int64_t *>_ptr(table_offsets)
                    c.data = <const uint8_t *>_ptr(table)
                    c.data_len = table.shape[0] - OIC_RENDER_PAD
                    c.rendered = 1
                else:
                    # The rows' entries are checked as they are rendered.
                    self.keep.append(aux1)
                    self.keep.append(data)
                    c.offsets = &offs[0]
                    c.data = &data[0] if data.shape[0] else NULL
                    c.data_len = data.shape[0]
            elif c.kind == OIC_RENDER_DECIMAL:
                if not isinstance(aux1, (int, np.integer)) or not 0 <= aux1 <= 18:
                    raise ValueError(f"column {i}: decimal scale (aux1) must be an int in 0..18, got {aux1!r}")
                if aux2 not in _STYLES:
                    raise ValueError(f"column {i}: decimal style (aux2) must be one of {', '.join(_STYLES)}, "
                                     f"got {aux2!r}")
                c.scale = aux1
                c.style = _STYLES[aux2]
            elif aux1 is not None or aux2 is not None:
                raise TypeError(f"column {i}: {kind} takes aux1=None and aux2=None")
        return 0

    cdef tuple render_table(self, const int64_t[::1] offs, const uint8_t[::1] data, int64_t count, int32_t quote):
        """The dictionary's entries rendered once, padded for fixed-size copies: (offsets, bytes)."""
        cdef const uint8_t *d = &data[0] if data.shape[0] else NULL
        cdef int64_t size
        with nogil:
            size = oic_render_table(&offs[0], d, count, quote, NULL, NULL, 0)
        table_offsets = np.empty(count + 1, dtype=np.int64)
        table = np.zeros(size + OIC_RENDER_PAD, dtype=np.uint8)
        cdef int64_t[::1] to = table_offsets
        cdef uint8_t[::1] t = table
        with nogil:
            oic_render_table(&offs[0], d, count, quote, &to[0], &t[0], size)
        self.keep.append(table_offsets)
        self.keep.append(table)
        return table_offsets, table


cdef const uint8_t[::1] _data(object aux2, Py_ssize_t i) except *:
    if not isinstance(aux2, (bytes, np.ndarray)):
        raise TypeError(f"column {i}: data (aux2) must be bytes or a numpy uint8 array, got {type(aux2).__name__}")
    if isinstance(aux2, np.ndarray) and (aux2.dtype != np.uint8 or aux2.ndim != 1 or not aux2.flags.c_contiguous):
        raise TypeError(f"column {i}: data (aux2) must be a 1-D C-contiguous uint8 array, got {aux2.dtype}")
    return aux2


cdef _Columns _columns(object columns, Py_ssize_t lo, Py_ssize_t hi):
    cdef _Columns c = _Columns.__new__(_Columns)
    c.setup(columns, lo, hi)
    return c


cdef _raise_bad(_Columns c, oic_render_state *st):
    # Codes were checked before rendering: a dictionary's failure is its table's offsets.
    what = "table offsets of the entry" if c.cols[st.bad_column].kind == OIC_RENDER_DICT else "string offsets"
    raise ValueError(f"column {st.bad_column}: {what} at row {st.row} outside the data")


def render(columns, Py_ssize_t start, Py_ssize_t stop, terminator=b"\n"):
    """CSV records of rows ``[start, stop)``: each row's fields joined by ``,``, then ``terminator``.

    Examples
    --------
    >>> import numpy as np
    >>> ids = ("hex64", 2, np.array([0xabc, 1], dtype=np.uint64), None, None, None)
    >>> conf = ("decimal", 0, np.array([5, 10], dtype=np.int64), None, 1, "trim")
    >>> render([ids, conf], 0, 2)
    b'0000000000000abc,0.5\\n0000000000000001,1\\n'
    """
    cdef bytes term = _terminator(terminator)
    if not 0 <= start <= stop:
        raise ValueError(f"rows [{start}:{stop}) must have 0 <= start <= stop")
    cdef _Columns c = _columns(columns, start, stop)
    cdef oic_render_state st
    st.cols = c.cols
    st.ncols = c.ncols
    st.term = term
    st.term_len = len(term)
    st.row = start
    st.pos = 0
    st.need = 0
    st.bad_column = 0
    # The output is a bytes object from the start, grown and finally cut by realloc rather than copied out
    # of a scratch buffer: for a whole file, moving bytes is most of the work. Its first size is a guess
    # from the first rows.
    cdef int64_t cap = 1 << 16
    cdef uint8_t *first = <uint8_t *>malloc(cap)
    if first == NULL:
        raise MemoryError()
    with nogil:
        oic_render_rows(&st, min(stop, start + 64), first, cap)
    free(first)
    if st.row > start:
        cap = st.pos + st.pos // (st.row - start) * (stop - st.row) // 16 * 17 + 64
    elif stop == start:
        cap = 0
    st.row = start
    st.pos = 0
    cdef PyObject *out = _bytes_new(NULL, cap)
    cdef int rc = OIC_RENDER_OK
    try:
        with nogil:
            while True:
                rc = oic_render_rows(&st, stop, <uint8_t *>_bytes_data(out), cap)
                if rc != OIC_RENDER_FULL:
                    break
                cap = max(2 * cap, st.pos + st.need + 64)
                with gil:
                    _PyBytes_Resize(&out, cap)
        if rc == OIC_RENDER_BAD_VALUE:
            _raise_bad(c, &st)
        _PyBytes_Resize(&out, st.pos)
        return <object>out
    finally:
        Py_XDECREF(out)


def compare(columns, Py_ssize_t n_rows, const uint8_t[::1] source, Py_ssize_t start_offset, terminator=b"\n"):
    """Check rows ``[0, n_rows)`` rendered against ``source`` from ``start_offset``.

    Each record rendered (fields and ``terminator``) that the source holds
    exactly at the current position is passed over; one that it does not is
    an exception ``(row, begin, end)``: the source record's span (see
    :func:`record_end`), kept raw.

    Returns ``(end_offset, exceptions)``: the position after the last row's
    record (``source[end_offset:]`` is left over) and an int64 array of shape
    ``(n_exceptions, 3)``. Raises ValueError when the source ends before
    ``n_rows`` records.

    Examples
    --------
    >>> import numpy as np
    >>> col = ("int", 0, np.array([1, 2, 3], dtype=np.int64), None, None, None)
    >>> end, exc = compare([col], 3, b"1\\n02\\n3\\nrest", 0)
    >>> end, exc.tolist()
    (7, [[1, 2, 5]])
    """
    cdef bytes term = _terminator(terminator)
    cdef int64_t length = source.shape[0]
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    if not 0 <= start_offset <= length:
        raise ValueError(f"start_offset {start_offset} outside the source of {length} bytes")
    cdef _Columns c = _columns(columns, 0, n_rows)
    cdef const uint8_t *src = &source[0] if length else NULL
    cdef oic_render_state st
    st.cols = c.cols
    st.ncols = c.ncols
    st.term = term
    st.term_len = len(term)
    st.row = 0
    st.pos = start_offset
    st.need = 0
    st.bad_column = 0
    cdef int64_t scratch_cap = 1 << 16, exc_cap = 1 << 10, n_exc = 0
    cdef uint8_t *scratch = <uint8_t *>malloc(scratch_cap)
    cdef int64_t *exc = <int64_t *>malloc(exc_cap * 3 * sizeof(int64_t))
    cdef void *grown
    cdef int rc = OIC_RENDER_OK
    try:
        if scratch == NULL or exc == NULL:
            raise MemoryError()
        with nogil:
            while True:
                rc = oic_compare(&st, src, length, n_rows, scratch, scratch_cap, exc, exc_cap, &n_exc)
                if rc == OIC_RENDER_FULL:
                    # Slack past the record: short fields are copied 16 bytes at a time.
                    grown = realloc(scratch, st.need + 256)
                    if grown == NULL:
                        break
                    scratch = <uint8_t *>grown
                    scratch_cap = st.need + 256
                elif rc == OIC_RENDER_EXC_FULL:
                    grown = realloc(exc, 2 * exc_cap * 3 * sizeof(int64_t))
                    if grown == NULL:
                        break
                    exc = <int64_t *>grown
                    exc_cap *= 2
                else:
                    break
        if rc == OIC_RENDER_FULL or rc == OIC_RENDER_EXC_FULL:
            raise MemoryError()
        if rc == OIC_RENDER_BAD_VALUE:
            _raise_bad(c, &st)
        if rc == OIC_RENDER_SOURCE_ENDED:
            raise ValueError(f"the source ends (byte {st.pos}) before the record of row {st.row} of {n_rows}")
        exceptions = np.empty((n_exc, 3), dtype=np.int64)
        if n_exc:
            memcpy(cnp.PyArray_DATA(exceptions), exc, n_exc * 3 * sizeof(int64_t))
        return st.pos, exceptions
    finally:
        free(scratch)
        free(exc)


def record_end(const uint8_t[::1] source, Py_ssize_t pos):
    """The end of the CSV record that starts at ``source[pos]``: just past its terminator.

    A terminator is LF, CRLF or a CR not followed by LF, outside quotes; a
    last record without one ends at ``len(source)``.

    >>> record_end(b'a,"b\\r\\n""c"\\r\\nnext', 0)
    12
    """
    cdef int64_t length = source.shape[0], end
    if not 0 <= pos < length:
        raise ValueError(f"pos {pos} outside the source of {length} bytes (no record starts there)")
    with nogil:
        end = oic_record_end(&source[0], length, pos)
    return end
