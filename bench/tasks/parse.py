"""parse: read the train machine labels CSV into a typed in-memory table.

Input: ``train/annotations-machine.csv`` of the V3 release (scale 0.1: 7.9 M
rows, 302 MB). Every system gets the path and returns a table; each uses its
defaults (threads included), as a user would call it.
"""

from __future__ import annotations

import functools

from bench.task import Context, System, Task, same_state
from bench.tasks import _tables

INPUT = "train/annotations-machine.csv"


def _call(state):
    function, path = state
    return function(path)


def _setup_oicore(ctx: Context):
    import pyarrow  # noqa: F401  (part of the baseline: the result is a pyarrow table)

    import oicore

    # oicore.read_csv is served lazily; resolving it here loads oicore.reader and
    # its extension before the memory baseline, not inside the timed call.
    return oicore.read_csv, str(ctx.input(INPUT))


def _validate_oicore(table) -> None:
    import pyarrow as pa

    label = pa.dictionary(pa.int32(), pa.string())
    want = pa.schema([("ImageID", pa.uint64()), ("Source", label), ("LabelName", label), ("Confidence", pa.float64())])
    assert isinstance(table, pa.Table), f"oicore.read_csv returned a {type(table)}, not a pyarrow.Table"
    got = pa.schema([(f.name, f.type) for f in table.schema])  # types only; metadata and nullability aside
    assert got.equals(want), f"oicore.read_csv schema is\n{got}\nexpected\n{want}"


def _setup_pandas(engine):
    def setup(ctx: Context):
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas 3 stores strings in pyarrow; load it before the baseline)

        function = pd.read_csv if engine is None else functools.partial(pd.read_csv, engine=engine)
        return function, str(ctx.input(INPUT))

    return setup


def _setup_pyarrow(ctx: Context):
    import pyarrow.csv

    return pyarrow.csv.read_csv, str(ctx.input(INPUT))


def _setup_polars(ctx: Context):
    import polars

    return polars.read_csv, str(ctx.input(INPUT))


def _setup_duckdb(ctx: Context):
    import duckdb
    import pyarrow  # noqa: F401  (the result is materialized as a pyarrow table)

    connection = duckdb.connect()  # in-memory, default threads

    def read(path):
        # duckdb's recommended way to get Arrow out: con.sql(query).to_arrow_table()
        return connection.sql("SELECT * FROM read_csv('" + path.replace("'", "''") + "')").to_arrow_table()

    return read, str(ctx.input(INPUT))


TASK = Task(
    name="parse",
    title=f"parse `{INPUT}` into a typed table",
    inputs=(INPUT,),
    systems=(
        System(
            "oicore",
            ("oicore", "pyarrow"),
            _setup_oicore,
            _call,
            "oicore.read_csv(path)",
            validate=_validate_oicore,
        ),
        System("pandas", ("pandas", "pyarrow"), _setup_pandas(None), _call, "pandas.read_csv(path)"),
        System(
            "pandas-pyarrow",
            ("pandas", "pyarrow"),
            _setup_pandas("pyarrow"),
            _call,
            'pandas.read_csv(path, engine="pyarrow")',
        ),
        System("pyarrow", ("pyarrow",), _setup_pyarrow, _call, "pyarrow.csv.read_csv(path)"),
        System("polars", ("polars",), _setup_polars, _call, "polars.read_csv(path)"),
        System(
            "duckdb",
            ("duckdb", "pyarrow"),
            _setup_duckdb,
            _call,
            """duckdb.connect().sql("SELECT * FROM read_csv('path')").to_arrow_table()""",
        ),
    ),
    fingerprint=_tables.image_labels_fingerprint,
    quick=lambda result: {"rows": _tables.num_rows(result)},
    result_bytes=_tables.result_bytes,
    reuse=same_state,
    describe=_tables.describe,
)
