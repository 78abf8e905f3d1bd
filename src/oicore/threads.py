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
