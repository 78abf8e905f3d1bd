"""The disk a run needs, estimated from its scale before anything is written, against the disk that is free.

A run keeps the synthetic sources (``bench/data/v3-scale{S}``), the shared stored forms the lookup tasks read
(``work/…/_stores``) and the output of every ``convert`` system (``work/…/convert``). All of them grow with the
rows, so each is estimated as a share of the sources' bytes, measured at scale 0.1 (Lance: at 0.01). At
scale 1.0 the sources alone are about 7.8 GB.
"""

from __future__ import annotations

import shutil
from pathlib import Path

SOURCE_BYTES_PER_SCALE = 7.79e9  # synthetic V3 CSVs: 779 MB at scale 0.1, 78.5 MB at 0.01
# bytes on disk ÷ the sources' bytes, per stored form
STORED_SHARE = {
    "convert: oicore": 0.16,
    "convert: parquet": 0.17,
    "convert: parquet-typed": 0.18,
    "convert: feather": 0.33,
    "convert: duckdb": 0.49,
    "convert: lance": 0.50,
    "shared: oicore.oic": 0.16,
    "shared: typed Parquet": 0.18,
    "shared: typed Feather": 0.05,
    "shared: DuckDB file": 0.49,
    "shared: Lance datasets": 0.50,
}
MARGIN = 1.15  # temporary files (oicore's .tmp, DuckDB's WAL), page rounding, estimation error


def _bytes_under(path: Path) -> int:
    if not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def estimate(scale: float | None, sources: Path, work: Path, source_bytes: int | None = None) -> dict:
    """Bytes the run needs in all (``total``), of which ``present`` are already on disk, and ``free`` bytes.

    ``source_bytes`` is the size of an existing release (``--data``); otherwise it is estimated from ``scale``.
    """
    if source_bytes is None:
        source_bytes = int(SOURCE_BYTES_PER_SCALE * scale)
    stored = int(source_bytes * sum(STORED_SHARE.values()))
    total = int((source_bytes + stored) * MARGIN)
    present = _bytes_under(sources) + _bytes_under(work)
    root = next(p for p in (work, *work.parents) if p.exists())
    return {
        "sources": source_bytes,
        "stored": stored,
        "total": total,
        "present": present,
        "needed": max(0, total - present),
        "free": shutil.disk_usage(root).free,
        "where": str(root),
    }


def describe(e: dict, scale: float | None) -> str:
    what = f"scale {scale:g}" if scale is not None else "this release"
    return (
        f"disk: {what} needs about {e['total'] / 1e9:.1f} GB (sources {e['sources'] / 1e9:.1f} GB + stored forms "
        f"{e['stored'] / 1e9:.1f} GB + {MARGIN - 1:.0%}), {e['present'] / 1e9:.1f} GB of it already there; "
        f"{e['free'] / 1e9:.1f} GB free on {e['where']}"
    )
