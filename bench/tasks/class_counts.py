"""class_counts: a full-scan aggregate, the number of boxes per class, split and Source.

``release.class_counts()`` (the boxes table) against a group-by over every box row in each peer. Answers:
the (LabelName, split, Source, count) rows, compared as a set.
"""

from __future__ import annotations

from types import SimpleNamespace

from bench.task import Context, System
from bench.tasks import _lance as LN
from bench.tasks import _lookups as L

KEYS = ["LabelName", "split", "Source"]


def _setup_oicore(ctx: Context):
    import pandas  # noqa: F401  (class_counts returns a DataFrame)

    return SimpleNamespace(release=L.open_release(ctx))


def _run_oicore(st):
    return st.release.class_counts()


def _boxes(ctx):
    with L.measure(ctx, "load"):
        return L.read_typed(ctx, "boxes", KEYS)


def _setup_pandas(ctx: Context):
    table = _boxes(ctx)
    with L.measure(ctx, "build"):
        df = table.to_pandas()
    return SimpleNamespace(df=df)


def _run_pandas(st):
    return st.df.groupby(KEYS, observed=True).size().reset_index(name="count")


def _setup_pyarrow(ctx: Context):
    import pyarrow.compute  # noqa: F401

    return SimpleNamespace(table=_boxes(ctx))


def _run_pyarrow(st):
    return st.table.group_by(KEYS).aggregate([([], "count_all")]).rename_columns([*KEYS, "count"])


def _setup_polars(ctx: Context):
    import polars as pl

    table = _boxes(ctx)
    with L.measure(ctx, "build"):
        df = pl.from_arrow(table)
    return SimpleNamespace(df=df)


def _run_polars(st):
    return st.df.group_by(KEYS).len(name="count")


DUCKDB_QUERY = "SELECT LabelName, split, Source, count(*) AS count FROM boxes GROUP BY ALL"


def _setup_duckdb(ctx: Context):
    return SimpleNamespace(con=L.duckdb_table(ctx, "boxes", lambda: _boxes(ctx)))


def _run_duckdb(st):
    return st.con.sql(DUCKDB_QUERY).to_arrow_table()  # duckdb's copy-free way to Arrow


def _setup_lance(ctx: Context):
    import pyarrow.compute  # noqa: F401

    (boxes,) = LN.open_datasets(ctx, "boxes")
    return SimpleNamespace(boxes=boxes)


def _run_lance(st):
    # Lance has no aggregation of its own: its users scan the columns and aggregate them in Arrow
    table = st.boxes.to_table(columns=KEYS)
    return table.group_by(KEYS).aggregate([([], "count_all")]).rename_columns([*KEYS, "count"])


def _normalize(result):
    """Rows sorted by (LabelName, split, Source), whatever order and types the system gave them in."""
    import numpy as np

    table = L._tables_to_arrow(result)
    keys = [L.codes_of(table[k]) for k in KEYS]
    strings = [[c.vocab[i] for i in np.asarray(c.codes).tolist()] for c in keys]
    counts = L.as_numpy(table["count"]).astype(np.int64)
    rows = sorted(zip(*strings, counts.tolist(), strict=True))
    columns = {}
    for j, name in enumerate(KEYS):
        values = [r[j] for r in rows]
        vocab = sorted(set(values))
        index = {v: i for i, v in enumerate(vocab)}
        columns[name] = L.Codes(np.array([index[v] for v in values], dtype=np.int64), vocab)
    columns["count"] = np.array([r[3] for r in rows], dtype=np.int64)
    return L.ragged(None, columns, calls=1)


TASK = L.lookup_task(
    name="class_counts",
    title="boxes per class, split and Source (`class_counts()`), a full-scan aggregate",
    systems=(
        System(
            "oicore", ("oicore", "numpy", "pandas"), _setup_oicore, _run_oicore, "release.class_counts()",
            prepare=L.prepare_oic, normalize=_normalize,
        ),
        System(
            "pandas", ("pandas", "pyarrow"), _setup_pandas, _run_pandas,
            'df.groupby(["LabelName", "split", "Source"], observed=True).size()  (categorical columns)',
            prepare=L.prepare_typed, normalize=_normalize,
        ),
        System(
            "pyarrow", ("pyarrow",), _setup_pyarrow, _run_pyarrow,
            'table.group_by(["LabelName", "split", "Source"]).aggregate([([], "count_all")])',
            prepare=L.prepare_typed, normalize=_normalize,
        ),
        System(
            "polars", ("polars", "pyarrow"), _setup_polars, _run_polars,
            'df.group_by(["LabelName", "split", "Source"]).len()', prepare=L.prepare_typed, normalize=_normalize,
        ),
        System(
            "duckdb", ("duckdb", "pyarrow"), _setup_duckdb, _run_duckdb,
            f'con.sql("{DUCKDB_QUERY}").to_arrow_table()', prepare=L.prepare_typed, normalize=_normalize,
        ),
        System(
            "lance", LN.MODULES, _setup_lance, _run_lance,
            'ds.to_table(columns=["LabelName", "split", "Source"]).group_by(...).aggregate([([], "count_all")])  '
            "(a scan of the dataset in every call)",
            prepare=LN.prepare, normalize=_normalize,
        ),
    ),  # fmt: skip
    runs=3,
    note="median of 3 timed calls per process (1 below scale 0.1), after one untimed call.",
)
