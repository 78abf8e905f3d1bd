"""Numeric kernels of the converter, one pass each with the GIL released and no temporary arrays:
decimals as integers (include/oic_decimal.h), runs and positions in sorted image ID lists, and the
longest value of a string array. numpy's forms of the same steps make arrays of the column's size, and
in a convert the page faults on fresh arrays cost more than the arithmetic.
"""

from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np

cimport numpy as cnp

cnp.import_array()


# ---- decimals as integers ------------------------------------------------------------------------


cdef extern from "oic_decimal.h" nogil:
    int OIC_DECIMAL_MAX_SCALE
    int64_t oic_decimal_check(const double *v, const uint8_t *nulls, int64_t n, int e, int64_t *lo, int64_t *hi)
    void oic_decimal_fill(const double *v, const uint8_t *nulls, int64_t n, int e, void *out, int width, int is_signed)


def decimal_check(const double[::1] values, int e, const uint8_t[::1] nulls=None):
    """Whether every value (rows with ``nulls`` set count as 0) is ``k / 10**e`` for an integer
    ``|k| < 2**53``, not -0.0: ``(-1, lo, hi)`` with the least and greatest ``k`` (and 0), else
    ``(row, 0, 0)`` for the first row that is not."""
    if not 0 <= e <= OIC_DECIMAL_MAX_SCALE:
        raise ValueError(f"the scale must be in 0..{OIC_DECIMAL_MAX_SCALE}, got {e}")
    if nulls is not None and nulls.shape[0] != values.shape[0]:
        raise ValueError(f"{nulls.shape[0]} null flags for {values.shape[0]} values")
    cdef int64_t lo = 0, hi = 0, bad, n = values.shape[0]
    cdef const uint8_t *nul = &nulls[0] if nulls is not None and n else NULL
    if n == 0:
        return -1, 0, 0
    with nogil:
        bad = oic_decimal_check(&values[0], nul, n, e, &lo, &hi)
    if bad >= 0:
        return bad, 0, 0
    return -1, lo, hi


def decimal_fill(const double[::1] values, int e, cnp.ndarray out, const uint8_t[::1] nulls=None):
    """``out[i] = rint(values[i] * 10**e)`` (0 where ``nulls`` is set) into ``out``, a contiguous integer
    array of the values' length, after ``decimal_check`` passed and ``out``'s type holds its range."""
    if not 0 <= e <= OIC_DECIMAL_MAX_SCALE:
        raise ValueError(f"the scale must be in 0..{OIC_DECIMAL_MAX_SCALE}, got {e}")
    cdef int64_t n = values.shape[0]
    if out.ndim != 1 or out.shape[0] != n or not out.flags.c_contiguous or out.dtype.kind not in "iu" or not out.flags.writeable:
        raise ValueError(f"out must be a writable contiguous integer array of {n} values")
    if nulls is not None and nulls.shape[0] != n:
        raise ValueError(f"{nulls.shape[0]} null flags for {n} values")
    cdef const uint8_t *nul = &nulls[0] if nulls is not None and n else NULL
    cdef void *dst = cnp.PyArray_DATA(out)
    cdef int width = out.dtype.itemsize, signed = out.dtype.kind == "i"
    if n:
        with nogil:
            oic_decimal_fill(&values[0], nul, n, e, dst, width, signed)



# ---- sorted ID lists and string lengths -----------------------------------------------------------


def sorted_positions(const uint64_t[::1] whole, const uint64_t[::1] ids):
    """Where each of the increasing ``ids`` is in the increasing ``whole``: an int64 array, or None when
    some ID is not there. One merge walk (both sorted) instead of a binary search per ID."""
    cdef int64_t n = whole.shape[0], m = ids.shape[0], i = 0, j = 0
    out = np.empty(m, np.int64)
    cdef int64_t[::1] o = out
    cdef bint missing = False
    with nogil:
        for j in range(m):
            while i < n and whole[i] < ids[j]:
                i += 1
            if i == n or whole[i] != ids[j]:
                missing = True
                break
            o[j] = i
    return None if missing else out


def longest_value(const int32_t[::1] offsets):
    """``(length, i)`` of the longest value of a string array with these ``n + 1`` offsets (the first such
    ``i``; ``(0, -1)`` when ``n`` is 0): one pass, no array of lengths."""
    cdef int64_t n = offsets.shape[0] - 1, i, best = -1
    cdef int32_t longest = 0, d
    if n <= 0:
        return 0, -1
    with nogil:
        for i in range(n):
            d = offsets[i + 1] - offsets[i]
            if best < 0 or d > longest:
                longest, best = d, i
    return longest, best


def is_sorted(const uint64_t[::1] ids):
    """Whether the IDs never decrease."""
    cdef int64_t i, n = ids.shape[0]
    cdef bint ok = True
    with nogil:
        for i in range(1, n):
            if ids[i] < ids[i - 1]:
                ok = False
                break
    return ok


def runs(const uint64_t[::1] ids):
    """Runs of equal IDs in IDs that never decrease: ``(unique, first, counts)``, the run's ID (uint64), its
    first index and its length (int64). ValueError when the IDs decrease somewhere."""
    cdef int64_t i, k = 0, n = ids.shape[0], m = 0
    cdef bint ok = True
    with nogil:
        for i in range(n):
            if i and ids[i] != ids[i - 1]:
                if ids[i] < ids[i - 1]:
                    ok = False
                    break
                m += 1
        if n:
            m += 1
    if not ok:
        raise ValueError(f"IDs decrease at index {i}")
    unique = np.empty(m, np.uint64)
    first = np.empty(m, np.int64)
    counts = np.empty(m, np.int64)
    cdef uint64_t[::1] u = unique
    cdef int64_t[::1] f = first, c = counts
    with nogil:
        for i in range(n):
            if i == 0 or ids[i] != ids[i - 1]:
                u[k] = ids[i]
                f[k] = i
                if k:
                    c[k - 1] = i - f[k - 1]
                k += 1
        if m:
            c[m - 1] = n - f[m - 1]
    return unique, first, counts


# ---- merging sorted parts -------------------------------------------------------------------------


def merge_sorted(parts):
    """Sorted uint64 arrays merged into one: ``(merged, selector)``, where ``selector[i]`` is the part that
    row ``i`` comes from (uint8; at most 255 parts). Stable: equal IDs keep part order, so this is the order
    of a stable sort of the parts one after another. ValueError when a part is not sorted."""
    cdef Py_ssize_t k = len(parts)
    if not 0 < k <= 255:
        raise ValueError(f"1 to 255 parts can be merged, got {k}")
    arrays = [np.ascontiguousarray(p, dtype=np.uint64) for p in parts]
    cdef int64_t n = 0, i, j
    for i in range(k):
        if not is_sorted(arrays[i]):
            raise ValueError(f"part {i} is not sorted")
        n += arrays[i].shape[0]
    merged = np.empty(n, np.uint64)
    selector = np.empty(n, np.uint8)
    cdef uint64_t[::1] m = merged
    cdef uint8_t[::1] s = selector
    cdef const uint64_t **src = <const uint64_t **>malloc(k * sizeof(uint64_t *))
    cdef int64_t *left = <int64_t *>malloc(k * sizeof(int64_t))
    if src == NULL or left == NULL:
        free(src)
        free(left)
        raise MemoryError()
    cdef const uint64_t[::1] a
    for i in range(k):
        a = arrays[i]
        src[i] = &a[0] if a.shape[0] else NULL
        left[i] = a.shape[0]
    cdef int best
    cdef uint64_t v
    with nogil:
        for i in range(n):  # k is small (the splits): a scan of the heads beats a heap
            best = -1
            for j in range(k):
                if left[j] and (best < 0 or src[j][0] < v):
                    best, v = <int>j, src[j][0]
            m[i] = v
            s[i] = <uint8_t>best
            src[best] += 1
            left[best] -= 1
    free(src)
    free(left)
    return merged, selector


def merge_gather(const uint8_t[::1] selector, arrays, cnp.ndarray out):
    """``out[i]`` = the next value of ``arrays[selector[i]]``: the parts' values in the merged order that
    ``merge_sorted`` gave. Every array has ``out``'s dtype, and part ``p`` exactly as many values as
    ``selector`` has rows ``p``; ValueError otherwise."""
    cdef Py_ssize_t k = len(arrays)
    cdef int64_t n = selector.shape[0], i
    if out.ndim != 1 or out.shape[0] != n or not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"out must be a writable contiguous array of {n} values")
    if not 0 < k <= 256:
        raise ValueError(f"1 to 256 parts, got {k}")
    parts = [np.ascontiguousarray(a) for a in arrays]
    for a in parts:
        if a.dtype != out.dtype or a.ndim != 1:
            raise ValueError(f"every part must be one-dimensional {out.dtype}, not {a.dtype}")
    counts = np.bincount(selector, minlength=k) if n else np.zeros(k, np.int64)
    if len(counts) > k or any(int(counts[p]) != parts[p].shape[0] for p in range(k)):
        raise ValueError(f"the selector's rows per part {counts.tolist()} are not the parts' sizes {[a.shape[0] for a in parts]}")
    cdef size_t width = out.dtype.itemsize
    cdef char **src = <char **>malloc(k * sizeof(char *))
    if src == NULL:
        raise MemoryError()
    for i in range(k):
        src[i] = <char *>cnp.PyArray_DATA(parts[i])
    cdef char *dst = <char *>cnp.PyArray_DATA(out)
    cdef uint8_t p
    with nogil:
        if width == 1:
            for i in range(n):
                p = selector[i]
                (<uint8_t *>dst)[i] = (<uint8_t *>src[p])[0]
                src[p] += 1
        elif width == 2:
            for i in range(n):
                p = selector[i]
                (<uint16_t *>dst)[i] = (<uint16_t *>src[p])[0]
                src[p] += 2
        elif width == 4:
            for i in range(n):
                p = selector[i]
                (<uint32_t *>dst)[i] = (<uint32_t *>src[p])[0]
                src[p] += 4
        elif width == 8:
            for i in range(n):
                p = selector[i]
                (<uint64_t *>dst)[i] = (<uint64_t *>src[p])[0]
                src[p] += 8
        else:
            for i in range(n):
                p = selector[i]
                memcpy(dst + i * width, src[p], width)
                src[p] += width
    free(src)
    return out


def part_positions(const uint8_t[::1] selector, Py_ssize_t k):
    """For each part ``p < k``, the rows ``i`` with ``selector[i] == p``, increasing (int64 arrays)."""
    cdef int64_t n = selector.shape[0], i
    counts = np.bincount(selector, minlength=k) if n else np.zeros(k, np.int64)
    if len(counts) > k:
        raise ValueError(f"the selector names part {len(counts) - 1}; there are {k}")
    out = [np.empty(int(c), np.int64) for c in counts]
    cdef int64_t **dst = <int64_t **>malloc(max(k, 1) * sizeof(int64_t *))
    if dst == NULL:
        raise MemoryError()
    for i in range(k):
        dst[i] = <int64_t *>cnp.PyArray_DATA(out[i])
    with nogil:
        for i in range(n):
            dst[selector[i]][0] = i
            dst[selector[i]] += 1
    free(dst)
    return out
