"""numpy's array memory kept warm during a convert (include/oic_warm.h); used through ``oicore.warm``."""

from cpython.pycapsule cimport PyCapsule_New
from libc.stdint cimport int64_t, uint64_t

cimport numpy as cnp

cnp.import_array()

cdef extern from "<pthread.h>":
    int pthread_atfork(void (*prepare)() noexcept nogil, void (*parent)() noexcept nogil, void (*child)() noexcept nogil)

cdef extern from "oic_warm.h":
    ctypedef struct PyDataMem_Handler:
        pass
    ctypedef struct oic_warm_stats:
        uint64_t hits, misses, hit_bytes, miss_bytes, waiting_bytes, waiting_peak
        int64_t active
    PyDataMem_Handler oic_warm_handler
    size_t OIC_WARM_MIN
    void oic_warm_after_fork() noexcept nogil
    void oic_warm_enter(size_t limit) nogil
    void oic_warm_leave() nogil
    oic_warm_stats oic_warm_get_stats() nogil
    object PyDataMem_SetHandler(object handler)

pthread_atfork(NULL, NULL, oic_warm_after_fork)

HANDLER = PyCapsule_New(&oic_warm_handler, "mem_handler", NULL)
MIN_BYTES = OIC_WARM_MIN  # smaller blocks are plain malloc


def set_handler(handler=HANDLER):
    """Make ``handler`` numpy's allocator in the calling thread's context; returns the one it replaces."""
    return PyDataMem_SetHandler(handler)


def enter(size_t limit):
    """A convert starts: freed large blocks wait for reuse, up to ``limit`` bytes in all."""
    oic_warm_enter(limit)


def leave():
    """A convert ends: after the last one, the waiting blocks are unmapped."""
    oic_warm_leave()


def stats() -> dict:
    """Counters since the process started: large requests served warm (hits) or by a new map (misses)."""
    cdef oic_warm_stats s = oic_warm_get_stats()
    return {"hits": s.hits, "misses": s.misses, "hit_bytes": s.hit_bytes, "miss_bytes": s.miss_bytes,
            "waiting_bytes": s.waiting_bytes, "waiting_peak": s.waiting_peak, "active": s.active}
