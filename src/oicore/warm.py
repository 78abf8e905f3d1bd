"""Warm memory for a convert: numpy's large arrays reused instead of fresh pages (``include/oic_warm.h``).

A convert makes and drops gigabytes of large arrays, few alive at once; fresh pages cost a fault and the
kernel's zeroing on first touch, which in a VM costs more than most of the work done in them. Inside
:func:`converting`, arrays made on threads that called :func:`use_warm_arrays` come from oicore's allocator,
and a freed block of ``MIN_BYTES`` or more waits, up to ``LIMIT`` bytes in all, for the next request of
about its size. The last convert to end unmaps what waits. Arrays outside a convert's threads are numpy's own.
"""

from __future__ import annotations

from contextlib import contextmanager

from oicore import _warm

LIMIT = 256 << 20  # bytes of freed blocks waiting at most: about +90 MB of peak RSS at scale 0.1
MIN_BYTES = _warm.MIN_BYTES


@contextmanager
def converting(limit: int = LIMIT):
    """While inside (any thread's), freed large blocks of warm arrays wait for reuse."""
    _warm.enter(limit)
    try:
        yield
    finally:
        _warm.leave()


def use_warm_arrays():
    """numpy's arrays made from now on in the calling thread come from the warm allocator (a thread pool's
    ``initializer``). Returns numpy's handler it replaced, for :func:`restore`."""
    return _warm.set_handler()


def restore(handler) -> None:
    """Give the calling thread back ``handler`` (what :func:`use_warm_arrays` returned)."""
    _warm.set_handler(handler)


@contextmanager
def warm_arrays():
    """numpy's arrays made on the calling thread inside come from the warm allocator."""
    previous = use_warm_arrays()
    try:
        yield
    finally:
        restore(previous)


def stats() -> dict:
    """Counters since the process started: ``hits``/``misses`` (large requests served by a waiting block or
    a new map), their bytes, ``waiting_bytes`` now, ``waiting_peak``, and ``active`` converts."""
    return _warm.stats()
