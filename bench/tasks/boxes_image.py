"""boxes_image: the boxes of one image, over 10,000 random IDs of images with boxes, one call at a time.

The timed loop is ``for k in keys: b = lookup(k); <N×4 coordinates>; <labels>``: oicore's
``b = release.boxes_for_image(k); b.boxes; b.label``, and the same from each peer (pandas and polars
``to_numpy()`` of the four coordinate columns, numpy a slice of its N×4 array, DuckDB the fetched columns).
IDs: the seeded ``boxes_single`` set, as Python ints. Answers: per call, the image's boxes in file order.
"""

from __future__ import annotations

from bench.tasks import _lance as LN
from bench.tasks import _lookups as L
from bench.tasks import _single as S
from bench.tasks._single import Lookup, label, numbers
from bench.tasks._stores import COORDS

QUERY = "boxes_single"
COLUMNS = ["ImageID", "LabelName", *COORDS]
ANSWER = {"LabelName": label("LabelName"), "boxes": numbers(*COORDS)}


def _sorted_boxes(ctx, signed: bool = False):
    """Box rows stably sorted by ImageID (file order within an image); ``signed`` sorts by the IDs' int64 view."""
    import numpy as np
    import pyarrow as pa

    with L.measure(ctx, "load"):
        table = L.read_typed(ctx, "boxes", COLUMNS)
    with L.measure(ctx, "build"):
        ids = table["ImageID"].to_numpy()
        order = np.argsort(ids.view(np.int64) if signed else ids, kind="stable")
        table = table.take(order).combine_chunks()
        table = table.append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    return table


def _pandas_boxes(ctx):
    import numpy as np
    import pandas as pd

    table = _sorted_boxes(ctx, signed=True)
    with L.measure(ctx, "build"):
        df = table.select(["LabelName", *COORDS]).to_pandas()
        df.index = pd.Index(table["ImageID"].to_numpy().view(np.int64), name="ImageID")
        del table
    assert df.index.is_monotonic_increasing
    return df


# ------------------------------------------------------------------------------------------------ setups


def _oicore(ctx, keys):
    release = L.open_release(ctx)
    return {"boxes_for_image": release.boxes_for_image, "release": release}


def _pandas_loc(ctx, keys):
    return {"loc": _pandas_boxes(ctx).loc, "coords": list(COORDS)}


def _pandas_groupby(ctx, keys):
    import numpy as np

    wanted = S.groups_of(ctx, QUERY)
    df = _pandas_boxes(ctx)
    with L.measure(ctx, "build"):
        if wanted is not None:
            df = df[df.index.isin(np.asarray(wanted, dtype=np.uint64).view(np.int64))]
        groups = {int(k): g for k, g in df.groupby(level=0, sort=False)}
        del df
    return {"groups": groups, "coords": list(COORDS)}


def _numpy(ctx, keys):
    import numpy as np

    table = _sorted_boxes(ctx)
    with L.measure(ctx, "build"):
        ids = table["ImageID"].to_numpy()
        label = table["LabelName"].combine_chunks()
        codes = label.indices.to_numpy()
        vocab = label.dictionary.to_pylist()
        boxes = np.ascontiguousarray(np.column_stack([table[c].to_numpy() for c in COORDS]))
        uniq, first = np.unique(ids, return_index=True)
        offsets = np.append(first, len(ids)).tolist()  # a list: scalar indexing is ~4x cheaper than numpy's
        del table, ids, label
    return {"search": uniq.searchsorted, "offsets": offsets, "codes": codes, "boxes": boxes, "vocab": vocab}


def _polars(ctx, keys):
    import polars as pl

    table = _sorted_boxes(ctx)
    with L.measure(ctx, "build"):
        df = pl.from_arrow(table.select(["ImageID", "LabelName", *COORDS]))
        df = df.with_columns(pl.col("ImageID").set_sorted())
        del table
    return {"search": df.get_column("ImageID").search_sorted, "slice_": df.slice, "coords": list(COORDS)}


DUCKDB_QUERY = "SELECT LabelName, XMin, XMax, YMin, YMax FROM boxes WHERE ImageID = $1 ORDER BY row"


def _duckdb(ctx, keys):
    con = L.duckdb_table(ctx, "boxes", lambda: _sorted_boxes(ctx), index="ImageID")
    return {"execute": con.execute, "query": DUCKDB_QUERY}


def _lance(ctx, keys):
    (boxes,) = LN.open_datasets(ctx, "boxes")
    return {"boxes": boxes, "scan": LN.scan, "where": LN.image_filter, "columns": ["LabelName", *COORDS]}


def _oicore_answer(r, names):
    return L.Codes(r.label, names["release"].mids)


SYSTEMS = (
    Lookup(
        "oicore", ("oicore", "numpy"), _oicore, "r = boxes_for_image(k); r.boxes; r.label",
        {"LabelName": _oicore_answer, "boxes": lambda r, names: r.boxes}, prepare=L.prepare_oic,
        note="boxes_for_image = release.boxes_for_image",
    ),
    Lookup(
        "pandas", ("pandas", "pyarrow", "numpy"), _pandas_loc, "r = loc[k:k]; r[coords].to_numpy(); r.LabelName.values",
        ANSWER, keys="int64", calls=L.slow_calls, note="loc = df.loc: sorted index",
    ),
    Lookup(
        "pandas-groupby", ("pandas", "pyarrow", "numpy"), _pandas_groupby,
        "r = groups[k]; r[coords].to_numpy(); r.LabelName.values", ANSWER, keys="int64", calls=L.slow_calls,
        note="dict of the groupby's frames",
    ),
    Lookup(
        "numpy", ("numpy", "pyarrow"), _numpy, "p = search(k); a = offsets[p]; b = offsets[p + 1]; r = (boxes[a:b], codes[a:b])",
        {"LabelName": lambda r, names: L.Codes(r[1], names["vocab"]), "boxes": lambda r, names: r[0]}, keys="numpy",
        note="search = ids.searchsorted: sorted IDs, CSR offsets",
    ),
    Lookup(
        "polars", ("polars", "pyarrow"), _polars,
        'a = search(k, "left"); r = slice_(a, search(k, "right") - a); r.select(coords).to_numpy(); r.get_column("LabelName")',
        ANSWER, calls=L.slow_calls, note="search = ids.search_sorted, slice_ = df.slice",
    ),
    Lookup(
        "duckdb", ("duckdb", "pyarrow", "numpy"), _duckdb,
        'r = execute(query, [k]).fetchnumpy(); r["XMin"], r["XMax"], r["YMin"], r["YMax"]; r["LabelName"]', ANSWER,
        calls=L.slow_calls, note=f'query = "{DUCKDB_QUERY}"; ART index on ImageID',
    ),
    Lookup(
        "lance", LN.MODULES, _lance,
        'r = scan(boxes, columns, where(k)); r["XMin"], r["XMax"], r["YMin"], r["YMax"]; r["LabelName"]', ANSWER,
        calls=L.indexed_scan_calls, prepare=LN.prepare,
        note=f'scan = ds.to_table(columns=..., filter="{LN.image_filter("k")}", scan_in_order=True); BTREE index on ImageID',
    ),
)  # fmt: skip


TASK = S.task(
    "boxes_image",
    "boxes of one image (`boxes_for_image(id)`), one call at a time over random IDs",
    QUERY,
    SYSTEMS,
    note=(
        "per call = the timed loop's median ÷ calls; p50/p99 = single calls timed one by one (timer cost "
        "subtracted). Peers that take tens of µs or more per call time the first 1,000 of the same IDs, Lance "
        "(a query planned per call) the first 200; the answers of every system to the first 2,000 are checked "
        "(below scale 0.1, a fifth of each). pandas-groupby: the setup figures are the whole "
        "dict's (below scale 0.1, the queried IDs' groups only); its timing processes build the groups of the "
        "queried IDs only."
    ),
)
