"""labels_one: the image-level labels of one image, over 10,000 random known IDs, one call at a time.

The timed loop is ``for k in keys: r = lookup(k); <labels>; <confidences>``: the issue's
``r = release.labels(id); r.label; r.confidence`` for oicore, and the same two arrays from each peer. The
IDs are the seeded ``labels_single`` set (images with at least one human or machine label row), given to
every system as Python ints. The report divides the loop's time by the number of calls (``per call``) and
also times a sample of 2,000 calls one by one (``p50``, ``p99``, less the cost of the timer itself).

Answers: per call, the label rows of the image, human rows first, then machine rows, each in file order.
"""

from __future__ import annotations

from types import SimpleNamespace

from bench.task import Context, System, Task
from bench.tasks import _lance as LN
from bench.tasks import _lookups as L

QUERY = "labels_single"


def _count(st):
    return len(st.keys)


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
    labels = st.release.labels
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            r = labels(k)
            r.label
            r.confidence
            append(r)
        return st.release, out
    for k in st.keys:
        r = labels(k)
        r.label
        r.confidence
    return len(st.keys)


def _one_oicore(st):
    labels = st.release.labels

    def one(k):
        r = labels(k)
        r.label
        r.confidence

    return one


def _normalize_oicore(result):
    import numpy as np

    if isinstance(result, int):
        return {"calls": result}
    release, out = result
    codes = np.concatenate([r.label for r in out]) if out else np.zeros(0, np.int64)
    conf = np.concatenate([r.confidence for r in out]) if out else np.zeros(0, np.float32)
    return L.ragged([len(r) for r in out], {"LabelName": L.Codes(codes, release.mids), "Confidence": conf})


# ------------------------------------------------------------------------------------------------ pandas


def _pandas_frame(ctx):
    """Labels as a pandas DataFrame (categorical LabelName, float32 Confidence) sorted by a signed view of
    the IDs, indexed by it."""
    import numpy as np
    import pandas as pd

    table = L.labels_table(ctx)
    with L.measure(ctx, "build"):
        key = table["ImageID"].to_numpy().view(np.int64)
        order = np.argsort(key, kind="stable")
        df = table.select(["LabelName", "Confidence"]).take(order).to_pandas()
        df.index = pd.Index(key[order], name="ImageID")
        del table
    assert df.index.is_monotonic_increasing
    return df


def _setup_pandas_loc(ctx: Context):
    df = _pandas_frame(ctx)
    return SimpleNamespace(df=df, keys=L.keys_int64(ctx, QUERY, slow=True), keep=ctx.keep)


def _run_pandas_loc(st):
    loc = st.df.loc
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            r = loc[k:k]
            r.LabelName.values
            r.Confidence.values
            append(r)
        return out
    for k in st.keys:
        r = loc[k:k]
        r.LabelName.values
        r.Confidence.values
    return len(st.keys)


def _one_pandas_loc(st):
    loc = st.df.loc

    def one(k):
        r = loc[k:k]
        r.LabelName.values
        r.Confidence.values

    return one


def _normalize_frames(result):
    """A list of pandas or polars frames with LabelName and Confidence columns."""
    import numpy as np

    if isinstance(result, int):
        return {"calls": result}
    if result and type(result[0]).__module__.split(".")[0] == "polars":
        import polars as pl

        whole = pl.concat(result) if result else None
        labels = L.codes_of(whole["LabelName"]) if whole is not None else L.Codes(np.zeros(0, np.int64), [])
        conf = whole["Confidence"].to_numpy() if whole is not None else np.zeros(0)
        return L.ragged([r.height for r in result], {"LabelName": labels, "Confidence": conf})
    import pandas as pd

    whole = pd.concat(result) if result else None
    labels = L.codes_of(whole["LabelName"]) if whole is not None else L.Codes(np.zeros(0, np.int64), [])
    conf = whole["Confidence"].to_numpy() if whole is not None else np.zeros(0)
    return L.ragged([len(r) for r in result], {"LabelName": labels, "Confidence": conf})


def _setup_pandas_groupby(ctx: Context):
    import numpy as np
    import pandas as pd

    keys = L.keys(ctx, QUERY, slow=True)
    table = L.labels_table(ctx)
    with L.measure(ctx, "build"):
        df = table.select(["LabelName", "Confidence"]).to_pandas()
        df.index = pd.Index(table["ImageID"].to_numpy(), name="ImageID")
        del table
        if not ctx.keep:
            # A timing process keeps only the queried images' groups: the full dict takes minutes to build
            # (the check process builds all of it, and its time and memory are the ones reported).
            df = df[df.index.isin(np.asarray(keys, dtype=np.uint64))]
        groups = {int(k): g for k, g in df.groupby(level=0, sort=False)}
        del df
    return SimpleNamespace(groups=groups, keys=keys, keep=ctx.keep)


def _run_pandas_groupby(st):
    groups = st.groups
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            r = groups[k]
            r.LabelName.values
            r.Confidence.values
            append(r)
        return out
    for k in st.keys:
        r = groups[k]
        r.LabelName.values
        r.Confidence.values
    return len(st.keys)


def _one_pandas_groupby(st):
    groups = st.groups

    def one(k):
        r = groups[k]
        r.LabelName.values
        r.Confidence.values

    return one


# ------------------------------------------------------------------------------------------------ numpy


def _numpy_csr(ctx):
    """Sorted unique IDs, row offsets per ID (CSR), label codes and confidences as numpy arrays."""
    import numpy as np

    table = L.labels_table(ctx)
    with L.measure(ctx, "build"):
        ids = table["ImageID"].to_numpy()
        label = table["LabelName"].combine_chunks()
        codes = label.indices.to_numpy()
        vocab = label.dictionary.to_pylist()
        conf = table["Confidence"].to_numpy()
        uniq, first = np.unique(ids, return_index=True)
        offsets = np.append(first, len(ids)).tolist()  # a list: scalar indexing is ~4x cheaper than numpy's
        del table, ids, label
    return SimpleNamespace(uniq=uniq, offsets=offsets, codes=codes, vocab=vocab, conf=conf)


def _setup_numpy(ctx: Context):
    import numpy as np

    st = _numpy_csr(ctx)
    st.keys = list(L.id_array(ctx, QUERY).astype(np.uint64))  # numpy's own scalars
    st.keep = ctx.keep
    return st


def _run_numpy(st):
    search, offsets, codes, conf = st.uniq.searchsorted, st.offsets, st.codes, st.conf
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            p = search(k)
            a = offsets[p]
            b = offsets[p + 1]
            r = (codes[a:b], conf[a:b])
            append(r)
        return st.vocab, out
    for k in st.keys:
        p = search(k)
        a = offsets[p]
        b = offsets[p + 1]
        codes[a:b]
        conf[a:b]
    return len(st.keys)


def _one_numpy(st):
    search, offsets, codes, conf = st.uniq.searchsorted, st.offsets, st.codes, st.conf

    def one(k):
        p = search(k)
        a = offsets[p]
        b = offsets[p + 1]
        codes[a:b]
        conf[a:b]

    return one


def _normalize_numpy(result):
    import numpy as np

    if isinstance(result, int):
        return {"calls": result}
    vocab, out = result
    codes = np.concatenate([c for c, _ in out]) if out else np.zeros(0, np.int64)
    conf = np.concatenate([f for _, f in out]) if out else np.zeros(0)
    return L.ragged([len(c) for c, _ in out], {"LabelName": L.Codes(codes, vocab), "Confidence": conf})


# ------------------------------------------------------------------------------------------------ polars


def _setup_polars(ctx: Context):
    import polars as pl

    table = L.labels_table(ctx)
    with L.measure(ctx, "build"):
        df = pl.from_arrow(table.select(["ImageID", "LabelName", "Confidence"]))
        df = df.with_columns(pl.col("ImageID").set_sorted())
        del table
    return SimpleNamespace(df=df, ids=df.get_column("ImageID"), keys=L.keys(ctx, QUERY, slow=True), keep=ctx.keep)


def _run_polars(st):
    search, slice_ = st.ids.search_sorted, st.df.slice
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            a = search(k, "left")
            r = slice_(a, search(k, "right") - a)
            r.get_column("LabelName")
            r.get_column("Confidence")
            append(r)
        return out
    for k in st.keys:
        a = search(k, "left")
        r = slice_(a, search(k, "right") - a)
        r.get_column("LabelName")
        r.get_column("Confidence")
    return len(st.keys)


def _one_polars(st):
    search, slice_ = st.ids.search_sorted, st.df.slice

    def one(k):
        a = search(k, "left")
        r = slice_(a, search(k, "right") - a)
        r.get_column("LabelName")
        r.get_column("Confidence")

    return one


# ------------------------------------------------------------------------------------------------ duckdb

DUCKDB_QUERY = "SELECT LabelName, Confidence FROM labels WHERE ImageID = $1 ORDER BY row"


def duckdb_labels(ctx):
    """An in-memory DuckDB table of the labels with an ART index on ImageID (default threads)."""
    import duckdb

    table = L.labels_table(ctx)
    with L.measure(ctx, "build"):
        con = duckdb.connect()
        con.register("labels_arrow", table)
        con.execute("CREATE TABLE labels AS SELECT * FROM labels_arrow")
        con.unregister("labels_arrow")
        del table
        con.execute("CREATE INDEX labels_image ON labels (ImageID)")
    return con


def _setup_duckdb(ctx: Context):
    con = duckdb_labels(ctx)
    return SimpleNamespace(con=con, keys=L.keys(ctx, QUERY, slow=True), keep=ctx.keep)


def _run_duckdb(st):
    execute = st.con.execute
    if st.keep:
        out = []
        append = out.append
        for k in st.keys:
            r = execute(DUCKDB_QUERY, [k]).fetchnumpy()
            r["LabelName"]
            r["Confidence"]
            append(r)
        return out
    for k in st.keys:
        r = execute(DUCKDB_QUERY, [k]).fetchnumpy()
        r["LabelName"]
        r["Confidence"]
    return len(st.keys)


def _one_duckdb(st):
    execute = st.con.execute

    def one(k):
        r = execute(DUCKDB_QUERY, [k]).fetchnumpy()
        r["LabelName"]
        r["Confidence"]

    return one


def _normalize_fetchnumpy(result):
    import numpy as np

    if isinstance(result, int):
        return {"calls": result}
    labels = np.concatenate([np.asarray(r["LabelName"], dtype=object) for r in result]) if result else []
    conf = np.concatenate([np.asarray(r["Confidence"]) for r in result]) if result else np.zeros(0)
    return L.ragged([len(r["Confidence"]) for r in result], {"LabelName": L.codes_of(labels), "Confidence": conf})


# ------------------------------------------------------------------------------------------------ lance

LANCE_COLUMNS = ["LabelName", "Confidence"]


def _setup_lance(ctx: Context):
    import pyarrow as pa

    human, machine = LN.open_datasets(ctx, "human_labels", "machine_labels")
    keys = L.keys(ctx, QUERY, slow=L.indexed_scan_calls)
    return SimpleNamespace(human=human, machine=machine, concat=pa.concat_tables, keys=keys, keep=ctx.keep)


def _one_lance(st):
    human, machine, concat, scan, where = st.human, st.machine, st.concat, LN.scan, LN.image_filter

    def one(k):
        f = where(k)
        r = concat([scan(human, LANCE_COLUMNS, f), scan(machine, LANCE_COLUMNS, f)])
        r["LabelName"]
        r["Confidence"]
        return r

    return one


def _run_lance(st):
    one = _one_lance(st)
    if st.keep:
        return [one(k) for k in st.keys]
    for k in st.keys:
        one(k)
    return len(st.keys)


def _sampler(make_one):
    def sample(st):
        return L.latency_sample(make_one(st), st.keys)

    return sample


TASK = Task(
    name="labels_one",
    title="labels of one image (`labels(id)`), one call at a time over random known IDs",
    inputs=(),
    systems=(
        System(
            "oicore", ("oicore", "numpy"), _setup_oicore, _run_oicore,
            "r = release.labels(k); r.label; r.confidence",
            prepare=L.prepare_oic, normalize=_normalize_oicore, sample=_sampler(_one_oicore),
        ),
        System(
            "pandas", ("pandas", "pyarrow", "numpy"), _setup_pandas_loc, _run_pandas_loc,
            "r = df.loc[k:k]; r.LabelName.values; r.Confidence.values  (sorted index, categorical labels)",
            prepare=L.prepare_typed, normalize=_normalize_frames, sample=_sampler(_one_pandas_loc), calls=L.slow_calls,
        ),
        System(
            "pandas-groupby", ("pandas", "pyarrow", "numpy"), _setup_pandas_groupby, _run_pandas_groupby,
            "r = groups[k]; r.LabelName.values; r.Confidence.values  (dict of the groupby's frames, built once)",
            prepare=L.prepare_typed, normalize=_normalize_frames, sample=_sampler(_one_pandas_groupby),
            calls=L.slow_calls,
        ),
        System(
            "numpy", ("numpy", "pyarrow"), _setup_numpy, _run_numpy,
            "p = ids.searchsorted(k); a, b = offsets[p], offsets[p + 1]; codes[a:b]; conf[a:b]",
            prepare=L.prepare_typed, normalize=_normalize_numpy, sample=_sampler(_one_numpy),
        ),
        System(
            "polars", ("polars", "pyarrow"), _setup_polars, _run_polars,
            "a = ids.search_sorted(k); r = df.slice(a, ids.search_sorted(k, 'right') - a); r['LabelName']; r['Confidence']",
            prepare=L.prepare_typed, normalize=_normalize_frames, sample=_sampler(_one_polars), calls=L.slow_calls,
        ),
        System(
            "duckdb", ("duckdb", "pyarrow", "numpy"), _setup_duckdb, _run_duckdb,
            f'con.execute("{DUCKDB_QUERY}", [k]).fetchnumpy()  (ART index on ImageID)',
            prepare=L.prepare_typed, normalize=_normalize_fetchnumpy, sample=_sampler(_one_duckdb), calls=L.slow_calls,
        ),
        System(
            "lance", LN.MODULES, _setup_lance, _run_lance,
            f'r = pa.concat_tables([ds.to_table(columns=["LabelName", "Confidence"], filter="{LN.image_filter("k")}", '
            "scan_in_order=True) for ds in (human, machine)])  (BTREE index on ImageID)",
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
        "per call = the timed loop's median ÷ calls; p50/p99 = up to 2,000 calls timed one by one (timer cost "
        "subtracted). Peers that take tens of µs or more per call time the first 1,000 of the same IDs, Lance "
        "(a query planned per call) the first 200; the answers of every system to the first 2,000 are checked "
        "(below scale 0.1, a fifth of each). setup = loading the stored form + building the index or dictionary "
        "(untimed); setup "
        "memory = resident memory it added. pandas keys its index on the IDs' signed 64-bit view: a uint64 "
        "index makes `.loc` take milliseconds. pandas-groupby: the setup figures are the whole dict's (built in "
        "the check process); its timing processes build the groups of the queried IDs only, to save minutes."
    ),
)
