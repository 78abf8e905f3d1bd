"""The memory limit every worker runs under, and how a worker that hit it is recognized.

Each worker limits its own address space (``RLIMIT_AS``, 20 GB by default) before it imports or loads
anything, so a peer that needs more fails on its own instead of taking the machine (and the other agents on
it) down. Hitting the limit shows in one of three ways, all reported as "out of memory":

- a Python exception: ``MemoryError`` (pyarrow's ``ArrowMemoryError`` is one), or a library's own
  (duckdb's ``OutOfMemoryException``, an import whose ``mmap`` failed: "Cannot allocate memory");
- an abort with an allocation message on stderr (Rust's "memory allocation of N bytes failed", C++'s
  ``std::bad_alloc``);
- SIGKILL, which is what the kernel's OOM killer sends when the machine itself runs out.
"""

from __future__ import annotations

import re
import signal

DEFAULT = 20 * 10**9  # bytes: the 20 GB per peer

MARKERS = (
    "out of memory",
    "outofmemory",
    "memory allocation of",
    "memory allocation failed",
    "bad_alloc",
    "cannot allocate memory",
    "failed to allocate",
)


def parse_size(text: str) -> int:
    """``"20G"``, ``"1.5GB"``, ``"300M"`` or plain bytes, as bytes (decimal units); 0 means no limit."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([kmgt]?)b?\s*", text.lower())
    if not m:
        raise ValueError(f"not a size: {text!r} (say 20G, 300M or a number of bytes)")
    return int(float(m.group(1)) * 1000 ** " kmgt".index(m.group(2) or " "))


def apply(limit: int) -> None:
    """Limit this process's address space to ``limit`` bytes (0: leave it), never above the hard limit."""
    if not limit:
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _says_oom(text: str) -> bool:
    text = text.lower()
    return any(m in text for m in MARKERS)


def exception_is_oom(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or _says_oom(f"{type(exc).__name__}: {exc}")


def exit_is_oom(returncode: int | None, output: str) -> bool:
    """A worker that died without a report: killed by the OOM killer, or aborted by a failed allocation."""
    if returncode == -signal.SIGKILL:
        return True
    return returncode is not None and returncode != 0 and _says_oom(output[-4000:])


def shown(limit: int) -> str:
    return f"{limit / 1e9:g} GB" if limit else "none"
