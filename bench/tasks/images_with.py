"""images_with: the sorted unique IDs of the images with a positive human label for one class.

``release.images_with(mid)`` (source "human", positive: confidence > 0) for the class with the most such
images in the synthetic release. The peers filter the human label table (every split) and sort the
unique IDs; the pandas groupby dict holds each class's sorted unique IDs, built once.
"""

from __future__ import annotations

from types import SimpleNamespace

from bench.task import Context, System
from bench.tasks import _lance as LN
from bench.tasks import _lookups as L
from bench.tasks.boxes_class import REPS, _repeat, repeating, slow_reps

COLUMNS = ["ImageID", "LabelName", "Confidence"]


def _mid(ctx) -> str:
    return L.queries(ctx)["images_with_label"]["mid"]


def _human(ctx):
    with L.measure(ctx, "load"):
        return L.read_typed(ctx, "human_labels", COLUMNS)


def _setup_oicore(ctx: Context):
    return SimpleNamespace(release=L.open_release(ctx), mid=_mid(ctx))


def _run_oicore(st):
    return st.release.images_with(st.mid)


def _pandas(ctx):
    table = _human(ctx)
    with L.measure(ctx, "build"):
        return table.to_pandas()


def _setup_pandas(ctx: Context):
    import numpy as np

    return SimpleNamespace(df=_pandas(ctx), mid=_mid(ctx), np=np)


def _run_pandas(st):
    df = st.df
    ids = df.loc[(df.LabelName == st.mid) & (df.Confidence > 0), "ImageID"]
    return st.np.sort(ids.unique())


def _setup_pandas_groupby(ctx: Context):
    import numpy as np

    df = _pandas(ctx)
    with L.measure(ctx, "build"):
        positive = df[df.Confidence > 0]
        groups = {k: np.unique(g.to_numpy()) for k, g in positive.groupby("LabelName", observed=True)["ImageID"]}
        del df, positive
    return SimpleNamespace(groups=groups, mid=_mid(ctx))


def _run_pandas_groupby(st):
    return st.groups[st.mid]


def _setup_polars(ctx: Context):
    import polars as pl

    table = _human(ctx)
    with L.measure(ctx, "build"):
        df = pl.from_arrow(table)
    return SimpleNamespace(df=df, mid=_mid(ctx), pl=pl)


def _run_polars(st):
    pl = st.pl
    return st.df.filter((pl.col("LabelName") == st.mid) & (pl.col("Confidence") > 0)).get_column("ImageID").unique().sort()


DUCKDB_QUERY = "SELECT DISTINCT ImageID FROM human WHERE LabelName = $1 AND Confidence > 0 ORDER BY ImageID"


def _setup_duckdb(ctx: Context):
    return SimpleNamespace(con=L.duckdb_table(ctx, "human", lambda: _human(ctx)), mid=_mid(ctx))


def _run_duckdb(st):
    return st.con.sql(DUCKDB_QUERY, params=[st.mid]).fetchnumpy()["ImageID"]


def _setup_lance(ctx: Context):
    import numpy as np

    (human,) = LN.open_datasets(ctx, "human_labels")
    return SimpleNamespace(human=human, where=f"{LN.label_filter(_mid(ctx))} AND Confidence > 0", unique=np.unique)


def _run_lance(st):
    return st.unique(LN.scan(st.human, ["ImageID"], st.where)["ImageID"].to_numpy())


def _normalize(result):
    import numpy as np

    ids = L.as_numpy(result)
    if ids.dtype != np.uint64:
        raise AssertionError(f"image IDs of dtype {ids.dtype}, not uint64")
    return L.ragged(None, {"ImageID": ids}, calls=1)


def _validate_oicore(result) -> None:
    import numpy as np

    assert isinstance(result, np.ndarray) and result.dtype == np.uint64, f"images_with returned {type(result)}"
    assert len(result) < 2 or bool(np.all(result[1:] > result[:-1])), "images_with is not sorted and unique"


TASK = L.lookup_task(
    name="images_with",
    title="images with a positive human label for one class (`images_with(label)`)",
    systems=(
        System(
            "oicore", ("oicore", "numpy"), repeating(_setup_oicore), _repeat(_run_oicore), "release.images_with(mid)",
            first=_run_oicore, prepare=L.prepare_oic, normalize=_normalize, validate=_validate_oicore,
        ),
        System(
            "pandas", ("pandas", "pyarrow", "numpy"), repeating(_setup_pandas), _repeat(_run_pandas),
            'np.sort(df.loc[(df.LabelName == mid) & (df.Confidence > 0), "ImageID"].unique())',
            first=_run_pandas, prepare=L.prepare_typed, normalize=_normalize,
        ),
        System(
            "pandas-groupby", ("pandas", "pyarrow", "numpy"), repeating(_setup_pandas_groupby), _repeat(_run_pandas_groupby),
            "groups[mid]  (sorted unique IDs per class of the positive rows, built once)",
            first=_run_pandas_groupby, prepare=L.prepare_typed, normalize=_normalize,
        ),
        System(
            "polars", ("polars", "pyarrow"), repeating(_setup_polars), _repeat(_run_polars),
            'df.filter((pl.col("LabelName") == mid) & (pl.col("Confidence") > 0))["ImageID"].unique().sort()',
            first=_run_polars, prepare=L.prepare_typed, normalize=_normalize,
        ),
        System(
            "duckdb", ("duckdb", "pyarrow", "numpy"), repeating(_setup_duckdb, slow_reps), _repeat(_run_duckdb),
            f'con.sql("{DUCKDB_QUERY}", params=[mid]).fetchnumpy()',
            first=_run_duckdb, prepare=L.prepare_typed, normalize=_normalize, calls=slow_reps,
        ),
        System(
            "lance", LN.MODULES, repeating(_setup_lance, slow_reps), _repeat(_run_lance),
            f'np.unique(ds.to_table(columns=["ImageID"], filter="{LN.label_filter("mid")} AND Confidence > 0")'
            '["ImageID"].to_numpy())  (BITMAP index on LabelName)',
            first=_run_lance, prepare=LN.prepare, normalize=_normalize, calls=slow_reps,
        ),
    ),  # fmt: skip
    calls=REPS,
    runs=3,
    cold=True,
    note=(
        "per call = a timed run of 20 calls ÷ 20 (3 runs per process, 1 below scale 0.1, after an untimed run; "
        "below scale 0.1, duckdb and Lance make 4 calls a run); "
        "cold (1st call) = "
        "the first call in a fresh process, after open/load and any build in setup."
    ),
)
