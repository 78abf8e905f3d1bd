"""How many threads oicore may use: ``set_num_threads`` or ``OICORE_NUM_THREADS``, else all cores.

No pool is created at import; work that wants threads asks here each time, so
N DataLoader workers can be held to one thread each.
"""

from __future__ import annotations

import os

_num_threads: int | None = None


def set_num_threads(n: int | None) -> None:
    """Bound the threads oicore uses (``None`` restores the default)."""
    global _num_threads
    if n is not None:
        n = int(n)
        if n < 1:
            raise ValueError(f"expected a thread count >= 1, got {n}")
    _num_threads = n


def get_num_threads() -> int:
    """The thread bound in force: set_num_threads, else OICORE_NUM_THREADS, else the usable cores."""
    if _num_threads is not None:
        return _num_threads
    env = os.environ.get("OICORE_NUM_THREADS")
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"OICORE_NUM_THREADS must be a whole number >= 1, got {env!r}") from None
        if n < 1:
            raise ValueError(f"OICORE_NUM_THREADS must be a whole number >= 1, got {env!r}")
        return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve(threads: int | None) -> int:
    """An explicit ``threads`` argument, checked, or the bound in force."""
    if threads is None:
        return get_num_threads()
    threads = int(threads)
    if threads < 1:
        raise ValueError(f"expected threads >= 1, got {threads}")
    return threads


_pool = None
_pool_size = 0


def pool():
    """A shared thread pool of ``get_num_threads()`` threads, made on first use (and again after fork)."""
    global _pool, _pool_size
    n = get_num_threads()
    if _pool is None or _pool_size != n:
        from concurrent.futures import ThreadPoolExecutor

        old = _pool
        _pool, _pool_size = ThreadPoolExecutor(n, thread_name_prefix="oicore"), n
        if old is not None:
            old.shutdown(wait=False)
    return _pool


def run_ranges(fn, n: int, *, min_items: int = 65536) -> list:
    """``fn(lo, hi)`` over [0, n) cut into one range per thread (one range when n is small); results in order."""
    k = min(get_num_threads(), max(1, n // min_items))
    return run_bounds(fn, [n * i // k for i in range(k + 1)])


def _forget_pool_in_child():
    # The parent's pool threads do not exist in a forked child.
    global _pool, _pool_size
    _pool, _pool_size = None, 0


os.register_at_fork(after_in_child=_forget_pool_in_child)


def run_bounds(fn, bounds: list) -> list:
    """``fn(bounds[i], bounds[i + 1])`` for each i, on the pool when there is more than one range; results in order."""
    k = len(bounds) - 1
    if k <= 1:
        return [fn(bounds[0], bounds[-1])]
    return list(pool().map(lambda i: fn(bounds[i], bounds[i + 1]), range(k)))
