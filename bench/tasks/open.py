"""open: from a stored form on disk (warm page cache) to something that can answer a labels lookup.

oicore memory-maps its ``.oic`` file (``oicore.open``: header, footer and directory checked; nothing is
built). DuckDB connects to its database file (the whole release with its ART indexes, read-only), and Lance
opens the label tables' datasets (their manifests; data and indexes are read by the queries). The
others must load what a labels lookup reads, the human and machine label tables (typed: uint64 IDs,
dictionary labels), into memory: pyarrow from Parquet or from Feather (Arrow IPC + zstd), pandas and
polars from Parquet. Indexes the peers would then build are measured by the lookup tasks' setup columns.

Answers: the number of label rows the opened form holds (checked outside the timed region).
"""

from __future__ import annotations

from types import SimpleNamespace

from bench.task import Context, System, Task, same_state
from bench.tasks import _lance as LN
from bench.tasks import _lookups as L
from bench.tasks import _stores

LABEL_TABLES = ("human_labels", "machine_labels")


def _prepare_oic(ctx: Context) -> None:
    _stores.ensure(ctx.data_dir, "oic")


def _prepare_typed(ctx: Context) -> None:
    _stores.ensure(ctx.data_dir, "typed")


def _prepare_feather(ctx: Context) -> None:
    _stores.ensure(ctx.data_dir, "typed_feather")


def _prepare_duckdb(ctx: Context) -> None:
    _stores.ensure(ctx.data_dir, "duckdb")


def _typed_paths(ctx):
    return [str(_stores.typed_path(ctx.data_dir, t)) for t in LABEL_TABLES]


def _setup_oicore(ctx: Context):
    import numpy  # noqa: F401

    import oicore
    import oicore.release  # noqa: F401  (resolved before the baseline, as a user's import would)

    return SimpleNamespace(open=oicore.open, path=str(L.oic_path(ctx)))


def _run_oicore(st):
    return st.open(st.path)


def _setup_parquet(ctx: Context):
    import pyarrow.parquet as pq

    return SimpleNamespace(read=pq.read_table, paths=_typed_paths(ctx))


def _setup_feather(ctx: Context):
    import pyarrow.feather as feather

    root = _stores.ensure(ctx.data_dir, "typed_feather")
    return SimpleNamespace(read=feather.read_table, paths=[str(root / f"{t}.arrow") for t in LABEL_TABLES])


def _setup_pandas(ctx: Context):
    import pandas as pd
    import pyarrow.parquet  # noqa: F401

    return SimpleNamespace(read=pd.read_parquet, paths=_typed_paths(ctx))


def _setup_polars(ctx: Context):
    import polars as pl

    return SimpleNamespace(read=pl.read_parquet, paths=_typed_paths(ctx))


def _run_reads(st):
    read = st.read
    return [read(p) for p in st.paths]


def _setup_duckdb(ctx: Context):
    import duckdb

    return SimpleNamespace(connect=duckdb.connect, path=str(_stores.ensure(ctx.data_dir, "duckdb")))


def _run_duckdb(st):
    return st.connect(st.path, read_only=True)


def _setup_lance(ctx: Context):
    import lance

    return SimpleNamespace(read=lance.dataset, paths=[str(_stores.lance_path(ctx.data_dir, t)) for t in LABEL_TABLES])


def _label_rows(result) -> int:
    family = type(result).__module__.split(".")[0]
    if isinstance(result, list):
        return sum(t.count_rows() if hasattr(t, "count_rows") else len(t) for t in result)
    if family == "oicore":
        batch = result.labels_many(result.image_ids(), missing="empty")
        return len(batch.label)
    if family in ("duckdb", "_duckdb"):
        return sum(result.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in LABEL_TABLES)
    raise TypeError(f"cannot count the label rows of a {type(result)}")


def _normalize(result):
    return {"label_rows": _label_rows(result)}


def _result_bytes(result):
    family = type(result).__module__.split(".")[0]
    if isinstance(result, list):
        if all(hasattr(t, "count_rows") for t in result):
            return 0  # Lance datasets, opened: metadata only
        return sum(L.result_bytes(t) or 0 for t in result)
    if family == "oicore":
        return 0  # a memory map: pages are shared with the page cache, nothing is copied
    return None


TASK = Task(
    name="open",
    title="open a stored form, or load the label tables a lookup needs",
    inputs=(),
    systems=(
        System(
            "oicore", ("oicore", "numpy"), _setup_oicore, _run_oicore, "oicore.open(path)",
            prepare=_prepare_oic, normalize=_normalize,
        ),
        System(
            "pandas", ("pandas", "pyarrow"), _setup_pandas, _run_reads,
            "[pd.read_parquet(p) for p in (human, machine)]  (typed Parquet)",
            prepare=_prepare_typed, normalize=_normalize,
        ),
        System(
            "pyarrow", ("pyarrow",), _setup_parquet, _run_reads,
            "[pq.read_table(p) for p in (human, machine)]  (typed Parquet)",
            prepare=_prepare_typed, normalize=_normalize,
        ),
        System(
            "pyarrow-feather", ("pyarrow",), _setup_feather, _run_reads,
            "[feather.read_table(p) for p in (human, machine)]  (Arrow IPC + zstd)",
            prepare=_prepare_feather, normalize=_normalize,
        ),
        System(
            "polars", ("polars",), _setup_polars, _run_reads,
            "[pl.read_parquet(p) for p in (human, machine)]  (typed Parquet)",
            prepare=_prepare_typed, normalize=_normalize,
        ),
        System(
            "duckdb", ("duckdb",), _setup_duckdb, _run_duckdb,
            "duckdb.connect(path, read_only=True)  (the whole release, with ART indexes)",
            prepare=_prepare_duckdb, normalize=_normalize,
        ),
        System(
            "lance", ("lance",), _setup_lance, _run_reads,
            "[lance.dataset(p) for p in (human, machine)]  (Lance datasets, with their indexes)",
            prepare=LN.prepare, normalize=_normalize,
        ),
    ),  # fmt: skip
    fingerprint=lambda canon: dict(canon),
    quick=lambda canon: dict(canon),
    result_bytes=_result_bytes,
    describe=L.describe,
    throughput=False,
    reuse=same_state,
    runs=3,
    note=(
        "median of 3 timed opens per process (1 below scale 0.1), after one untimed open (each result dropped before the next); "
        "peak extra = the memory the loaded tables take (oicore maps its file: its pages are the page cache's)."
    ),
)
