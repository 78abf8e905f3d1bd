"""boxes_image: the boxes of one image, over 10,000 random IDs of images with boxes, one call at a time.

The timed loop is ``for k in keys: b = lookup(k); <N×4 coordinates>; <labels>``: oicore's
``b = release.boxes_for_image(k); b.boxes; b.label``, and the same from each peer (pandas and polars
``to_numpy()`` of the four coordinate columns, numpy a slice of its N×4 array, DuckDB the fetched columns).
IDs: the seeded ``boxes_single`` set, as Python ints. Answers: per call, the image's boxes in file order.
"""

from __future__ import annotations

from types import SimpleNamespace

from bench.task import Context, System, Task
from bench.tasks import _lance as LN
from bench.tasks import _lookups as L
from bench.tasks._stores import COORDS
from bench.tasks.labels_one import _sampler

QUERY = "boxes_single"
COLUMNS = ["ImageID", "LabelName", *COORDS]


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


# ------------------------------------------------------------------------------------------------ oicore


def _setup_oicore(ctx: Context):
    import numpy  # noqa: F401

    import oicore

    path = L.oic_path(ctx)
    opener = oicore.open  # resolves the lazily imported oicore.release first
    with L.measure(ctx, "load"):
        release = opener(path)
    return SimpleNamespace(release=release, keys=L.keys(ctx, QUERY), keep=ctx.keep)


def _run_oicore(st):
    boxes_for_image = st.release.boxes_for_image
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            b = boxes_for_image(k)
            b.boxes
            b.label
            append(b)
        return st.release, out
    for k in st.keys:
        b = boxes_for_image(k)
        b.boxes
        b.label
    return len(st.keys)


def _one_oicore(st):
    boxes_for_image = st.release.boxes_for_image

    def one(k):
        b = boxes_for_image(k)
        b.boxes
        b.label

    return one


def _normalize_oicore(result):
    import numpy as np

    if isinstance(result, int):
        return {"calls": result}
    release, out = result
    codes = np.concatenate([b.label for b in out]) if out else np.zeros(0, np.int64)
    coords = np.concatenate([b.boxes for b in out]) if out else np.zeros((0, 4), np.float32)
    return L.ragged([len(b) for b in out], {"LabelName": L.Codes(codes, release.mids), "boxes": coords})


# ------------------------------------------------------------------------------------------------ pandas


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


def _setup_pandas_loc(ctx: Context):
    df = _pandas_boxes(ctx)
    return SimpleNamespace(df=df, keys=L.keys_int64(ctx, QUERY, slow=True), keep=ctx.keep, coords=list(COORDS))


def _run_pandas_loc(st):
    loc, coords = st.df.loc, st.coords
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            r = loc[k:k]
            r[coords].to_numpy()
            r.LabelName.values
            append(r)
        return out
    for k in st.keys:
        r = loc[k:k]
        r[coords].to_numpy()
        r.LabelName.values
    return len(st.keys)


def _one_pandas_loc(st):
    loc, coords = st.df.loc, st.coords

    def one(k):
        r = loc[k:k]
        r[coords].to_numpy()
        r.LabelName.values

    return one


def _setup_pandas_groupby(ctx: Context):
    import numpy as np

    keys = [int(k) for k in L.id_array(ctx, QUERY, slow=True).view(np.int64)]
    df = _pandas_boxes(ctx)
    with L.measure(ctx, "build"):
        if not ctx.keep:  # a timing process keeps only the queried images' groups (see labels_one)
            df = df[df.index.isin(np.asarray(keys, dtype=np.int64))]
        groups = {int(k): g for k, g in df.groupby(level=0, sort=False)}
        del df
    return SimpleNamespace(groups=groups, keys=keys, keep=ctx.keep, coords=list(COORDS))


def _run_pandas_groupby(st):
    groups, coords = st.groups, st.coords
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            r = groups[k]
            r[coords].to_numpy()
            r.LabelName.values
            append(r)
        return out
    for k in st.keys:
        r = groups[k]
        r[coords].to_numpy()
        r.LabelName.values
    return len(st.keys)


def _one_pandas_groupby(st):
    groups, coords = st.groups, st.coords

    def one(k):
        r = groups[k]
        r[coords].to_numpy()
        r.LabelName.values

    return one


def _normalize_frames(result):
    import numpy as np

    if isinstance(result, int):
        return {"calls": result}
    if result and type(result[0]).__module__.split(".")[0] == "polars":
        import polars as pl

        whole = pl.concat(result)
        coords = whole.select(list(COORDS)).to_numpy()
        labels = L.codes_of(whole.get_column("LabelName"))
        return L.ragged([r.height for r in result], {"LabelName": labels, "boxes": coords})
    import pandas as pd

    if not result:
        return L.ragged([], {"LabelName": L.Codes(np.zeros(0, np.int64), []), "boxes": np.zeros((0, 4))})
    whole = pd.concat(result)
    return L.ragged(
        [len(r) for r in result],
        {"LabelName": L.codes_of(whole["LabelName"]), "boxes": whole[list(COORDS)].to_numpy()},
    )


# ------------------------------------------------------------------------------------------------ numpy


def _setup_numpy(ctx: Context):
    import numpy as np

    table = _sorted_boxes(ctx)
    with L.measure(ctx, "build"):
        ids = table["ImageID"].to_numpy()
        label = table["LabelName"].combine_chunks()
        codes = label.indices.to_numpy()
        vocab = label.dictionary.to_pylist()
        boxes = np.ascontiguousarray(np.column_stack([table[c].to_numpy() for c in COORDS]))
        uniq, first = np.unique(ids, return_index=True)
        offsets = np.append(first, len(ids)).tolist()
        del table, ids, label
    keys = list(L.id_array(ctx, QUERY))  # numpy's own uint64 scalars
    return SimpleNamespace(uniq=uniq, offsets=offsets, codes=codes, vocab=vocab, boxes=boxes, keys=keys, keep=ctx.keep)


def _run_numpy(st):
    search, offsets, codes, boxes = st.uniq.searchsorted, st.offsets, st.codes, st.boxes
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            p = search(k)
            a = offsets[p]
            b = offsets[p + 1]
            append((boxes[a:b], codes[a:b]))
        return st.vocab, out
    for k in st.keys:
        p = search(k)
        a = offsets[p]
        b = offsets[p + 1]
        boxes[a:b]
        codes[a:b]
    return len(st.keys)


def _one_numpy(st):
    search, offsets, codes, boxes = st.uniq.searchsorted, st.offsets, st.codes, st.boxes

    def one(k):
        p = search(k)
        a = offsets[p]
        b = offsets[p + 1]
        boxes[a:b]
        codes[a:b]

    return one


def _normalize_numpy(result):
    import numpy as np

    if isinstance(result, int):
        return {"calls": result}
    vocab, out = result
    coords = np.concatenate([b for b, _ in out]) if out else np.zeros((0, 4), np.float32)
    codes = np.concatenate([c for _, c in out]) if out else np.zeros(0, np.int64)
    return L.ragged([len(c) for _, c in out], {"LabelName": L.Codes(codes, vocab), "boxes": coords})


# ------------------------------------------------------------------------------------------------ polars


def _setup_polars(ctx: Context):
    import polars as pl

    table = _sorted_boxes(ctx)
    with L.measure(ctx, "build"):
        df = pl.from_arrow(table.select(["ImageID", "LabelName", *COORDS]))
        df = df.with_columns(pl.col("ImageID").set_sorted())
        del table
    return SimpleNamespace(
        df=df, ids=df.get_column("ImageID"), keys=L.keys(ctx, QUERY, slow=True), keep=ctx.keep, coords=list(COORDS)
    )


def _run_polars(st):
    search, slice_, coords = st.ids.search_sorted, st.df.slice, st.coords
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            a = search(k, "left")
            r = slice_(a, search(k, "right") - a)
            r.select(coords).to_numpy()
            r.get_column("LabelName")
            append(r)
        return out
    for k in st.keys:
        a = search(k, "left")
        r = slice_(a, search(k, "right") - a)
        r.select(coords).to_numpy()
        r.get_column("LabelName")
    return len(st.keys)


def _one_polars(st):
    search, slice_, coords = st.ids.search_sorted, st.df.slice, st.coords

    def one(k):
        a = search(k, "left")
        r = slice_(a, search(k, "right") - a)
        r.select(coords).to_numpy()
        r.get_column("LabelName")

    return one


# ------------------------------------------------------------------------------------------------ duckdb

DUCKDB_QUERY = "SELECT LabelName, XMin, XMax, YMin, YMax FROM boxes WHERE ImageID = $1 ORDER BY row"


def _setup_duckdb(ctx: Context):
    import duckdb

    table = _sorted_boxes(ctx)
    with L.measure(ctx, "build"):
        con = duckdb.connect()
        con.register("boxes_arrow", table)
        con.execute("CREATE TABLE boxes AS SELECT * FROM boxes_arrow")
        con.unregister("boxes_arrow")
        del table
        con.execute("CREATE INDEX boxes_image ON boxes (ImageID)")
    return SimpleNamespace(con=con, keys=L.keys(ctx, QUERY, slow=True), keep=ctx.keep)


def _run_duckdb(st):
    execute = st.con.execute
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            r = execute(DUCKDB_QUERY, [k]).fetchnumpy()
            r["XMin"], r["XMax"], r["YMin"], r["YMax"]
            r["LabelName"]
            append(r)
        return out
    for k in st.keys:
        r = execute(DUCKDB_QUERY, [k]).fetchnumpy()
        r["XMin"], r["XMax"], r["YMin"], r["YMax"]
        r["LabelName"]
    return len(st.keys)


def _one_duckdb(st):
    execute = st.con.execute

    def one(k):
        r = execute(DUCKDB_QUERY, [k]).fetchnumpy()
        r["XMin"], r["XMax"], r["YMin"], r["YMax"]
        r["LabelName"]

    return one


def _normalize_fetchnumpy(result):
    import numpy as np

    if isinstance(result, int):
        return {"calls": result}
    labels = np.concatenate([np.asarray(r["LabelName"], dtype=object) for r in result]) if result else []
    coords = (
        np.concatenate([np.column_stack([np.asarray(r[c]) for c in COORDS]) for r in result])
        if result
        else np.zeros((0, 4))
    )
    return L.ragged([len(r["XMin"]) for r in result], {"LabelName": L.codes_of(labels), "boxes": coords})


# ------------------------------------------------------------------------------------------------ lance

LANCE_COLUMNS = ["LabelName", *COORDS]


def _setup_lance(ctx: Context):
    (boxes,) = LN.open_datasets(ctx, "boxes")
    return SimpleNamespace(boxes=boxes, keys=L.keys(ctx, QUERY, slow=L.indexed_scan_calls), keep=ctx.keep)


def _one_lance(st):
    boxes, scan, where = st.boxes, LN.scan, LN.image_filter

    def one(k):
        r = scan(boxes, LANCE_COLUMNS, where(k))
        r["XMin"], r["XMax"], r["YMin"], r["YMax"]
        r["LabelName"]
        return r

    return one


def _run_lance(st):
    one = _one_lance(st)
    if st.keep:
        return [one(k) for k in st.keys]
    for k in st.keys:
        one(k)
    return len(st.keys)


TASK = Task(
    name="boxes_image",
    title="boxes of one image (`boxes_for_image(id)`), one call at a time over random IDs",
    inputs=(),
    systems=(
        System(
            "oicore", ("oicore", "numpy"), _setup_oicore, _run_oicore,
            "b = release.boxes_for_image(k); b.boxes; b.label",
            prepare=L.prepare_oic, normalize=_normalize_oicore, sample=_sampler(_one_oicore),
        ),
        System(
            "pandas", ("pandas", "pyarrow", "numpy"), _setup_pandas_loc, _run_pandas_loc,
            "r = df.loc[k:k]; r[COORDS].to_numpy(); r.LabelName.values  (sorted index)",
            prepare=L.prepare_typed, normalize=_normalize_frames, sample=_sampler(_one_pandas_loc),
            calls=L.slow_calls,
        ),
        System(
            "pandas-groupby", ("pandas", "pyarrow", "numpy"), _setup_pandas_groupby, _run_pandas_groupby,
            "r = groups[k]; r[COORDS].to_numpy(); r.LabelName.values  (dict of the groupby's frames)",
            prepare=L.prepare_typed, normalize=_normalize_frames, sample=_sampler(_one_pandas_groupby),
            calls=L.slow_calls,
        ),
        System(
            "numpy", ("numpy", "pyarrow"), _setup_numpy, _run_numpy,
            "p = ids.searchsorted(k); a, b = offsets[p], offsets[p + 1]; boxes[a:b]; codes[a:b]",
            prepare=L.prepare_typed, normalize=_normalize_numpy, sample=_sampler(_one_numpy),
        ),
        System(
            "polars", ("polars", "pyarrow"), _setup_polars, _run_polars,
            "a = ids.search_sorted(k); r = df.slice(a, n); r.select(COORDS).to_numpy(); r['LabelName']",
            prepare=L.prepare_typed, normalize=_normalize_frames, sample=_sampler(_one_polars), calls=L.slow_calls,
        ),
        System(
            "duckdb", ("duckdb", "pyarrow", "numpy"), _setup_duckdb, _run_duckdb,
            f'con.execute("{DUCKDB_QUERY}", [k]).fetchnumpy()  (ART index on ImageID)',
            prepare=L.prepare_typed, normalize=_normalize_fetchnumpy, sample=_sampler(_one_duckdb),
            calls=L.slow_calls,
        ),
        System(
            "lance", LN.MODULES, _setup_lance, _run_lance,
            f'r = ds.to_table(columns=["LabelName", *COORDS], filter="{LN.image_filter("k")}", scan_in_order=True)  '
            "(BTREE index on ImageID)",
            prepare=LN.prepare, normalize=_normalize_fetchnumpy, sample=_sampler(_one_lance),
            calls=L.indexed_scan_calls,
        ),
    ),  # fmt: skip
    fingerprint=L.fingerprint,
    quick=L.quick,
    result_bytes=lambda result: None,  # thousands of small answers: their size says nothing
    describe=L.describe,
    throughput=False,
    calls=L._stores.SINGLE_CALLS,
    note=(
        "per call = the timed loop's median ÷ calls; p50/p99 = single calls timed one by one (timer cost "
        "subtracted). Peers that take tens of µs or more per call time the first 1,000 of the same IDs, Lance "
        "(a query planned per call) the first 200; the answers of every system to the first 2,000 are checked "
        "(below scale 0.1, a fifth of each). pandas-groupby: the setup figures are the whole "
        "dict's; its timing processes build the groups of the queried IDs only."
    ),
)
