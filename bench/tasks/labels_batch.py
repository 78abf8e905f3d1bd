"""labels_batch: the labels of 1,000,000 random known IDs at once (ragged), as IDs per second.

Below scale 0.1 the batch is 10,000,000 × scale IDs (100,000 at 0.01; ``_stores.batch_size``).

Every system gets the seeded ``labels_batch`` IDs (drawn with replacement from the images with labels) as one
uint64 numpy array (pandas: its signed view) and returns, for each ID in order, the image's label rows
(human first, then machine, each in file order): oicore as offsets + flat arrays, the peers as one joined
table with the query's position, from which the per-ID counts are derived when checking.
"""

from __future__ import annotations

from types import SimpleNamespace

from bench.task import Context, System
from bench.tasks import _lance as LN
from bench.tasks import _lookups as L
from bench.tasks.labels_one import _numpy_csr, _pandas_frame, duckdb_labels

QUERY = "labels_batch"


def _setup_oicore(ctx: Context):
    return SimpleNamespace(release=L.open_release(ctx), ids=L.id_array(ctx, QUERY))


def _run_oicore(st):
    return st.release, st.release.labels_many(st.ids)


def _normalize_oicore(result):
    import numpy as np

    release, batch = result
    return L.ragged(
        np.diff(np.asarray(batch.offsets, dtype=np.int64)),
        {"LabelName": L.Codes(batch.label, release.mids), "Confidence": batch.confidence},
    )


def _setup_pandas(ctx: Context):
    import numpy as np

    df = _pandas_frame(ctx).reset_index()  # columns ImageID (signed view), LabelName, Confidence
    return SimpleNamespace(df=df, ids=L.id_array(ctx, QUERY).view(np.int64), n=len(L.id_array(ctx, QUERY)))


def _run_pandas(st):
    import numpy as np
    import pandas as pd

    query = pd.DataFrame({"ImageID": st.ids, "q": np.arange(len(st.ids))})
    return query.merge(st.df, on="ImageID", how="inner", sort=False)


def _normalize_joined(result, n):
    """A table with the query's position ``q``, LabelName and Confidence, in query order."""
    import numpy as np

    family = type(result).__module__.split(".")[0]
    if family == "pandas":
        q = result["q"].to_numpy()
    elif family == "polars":
        q = result.get_column("q").to_numpy()
    else:
        q = result["q"].to_numpy()
    if len(q) > 1 and np.any(np.diff(q) < 0):
        raise AssertionError("rows are not in the order of the query")
    return L.ragged(
        np.bincount(q, minlength=n),
        {"LabelName": L.codes_of(result["LabelName"]), "Confidence": np.asarray(result["Confidence"])},
    )


def _normalizer(n_of):
    def normalize(result):
        st, out = result
        return _normalize_joined(out, n_of(st))

    return normalize


def _with_state(run):
    def wrapped(st):
        return st, run(st)

    return wrapped


def _setup_numpy(ctx: Context):
    import numpy as np

    st = _numpy_csr(ctx)
    st.offsets = np.asarray(st.offsets, dtype=np.int64)
    st.ids = L.id_array(ctx, QUERY)
    return st


def _run_numpy(st):
    import numpy as np

    p = st.uniq.searchsorted(st.ids)
    start = st.offsets[p]
    count = st.offsets[p + 1] - start
    out_offsets = np.zeros(len(count) + 1, dtype=np.int64)
    np.cumsum(count, out=out_offsets[1:])
    rows = np.arange(out_offsets[-1], dtype=np.int64) + np.repeat(start - out_offsets[:-1], count)
    return st.vocab, out_offsets, st.codes[rows], st.conf[rows]


def _normalize_numpy(result):
    import numpy as np

    vocab, offsets, codes, conf = result
    return L.ragged(np.diff(offsets), {"LabelName": L.Codes(codes, vocab), "Confidence": conf})


def _setup_polars(ctx: Context):
    import polars as pl

    table = L.labels_table(ctx)
    with L.measure(ctx, "build"):
        df = pl.from_arrow(table.select(["ImageID", "LabelName", "Confidence"]))
        del table
    return SimpleNamespace(df=df, ids=L.id_array(ctx, QUERY))


def _run_polars(st):
    import polars as pl

    query = pl.DataFrame({"ImageID": st.ids}).with_row_index("q")
    return query.join(st.df, on="ImageID", how="inner", maintain_order="left_right")


def _setup_duckdb(ctx: Context):
    con = duckdb_labels(ctx)
    return SimpleNamespace(con=con, ids=L.id_array(ctx, QUERY))


DUCKDB_JOIN = (
    "SELECT query.q, labels.LabelName, labels.Confidence FROM query JOIN labels USING (ImageID) "
    "ORDER BY query.q, labels.row"
)


def _run_duckdb(st):
    import numpy as np
    import pyarrow as pa

    con = st.con
    con.register("query", pa.table({"ImageID": st.ids, "q": np.arange(len(st.ids))}))
    try:
        return con.sql(DUCKDB_JOIN).to_arrow_table()  # duckdb's copy-free way to Arrow
    finally:
        con.unregister("query")


def _setup_lance(ctx: Context):
    human, machine = LN.open_datasets(ctx, "human_labels", "machine_labels")
    return SimpleNamespace(datasets=(human, machine), ids=L.id_array(ctx, QUERY))


def _run_lance(st):
    """Lance has no join: read the label columns (a scan; a BTREE ``ImageID IN (...)`` of a batch that touches
    most images is many times slower), then gather the batch's rows as the numpy peer does."""
    import numpy as np
    import pyarrow as pa

    whole = pa.concat_tables([LN.scan(ds, ["ImageID", "LabelName", "Confidence"]) for ds in st.datasets])
    ids = whole["ImageID"].to_numpy()
    order = np.argsort(ids, kind="stable")  # per image: human rows, then machine rows, each in file order
    label = whole["LabelName"].take(order).combine_chunks().dictionary_encode()
    uniq, first = np.unique(ids[order], return_index=True)
    csr = SimpleNamespace(
        uniq=uniq,
        offsets=np.append(first, len(ids)),
        codes=label.indices.to_numpy(),
        vocab=label.dictionary.to_pylist(),
        conf=whole["Confidence"].to_numpy()[order],
        ids=st.ids,
    )
    return _run_numpy(csr)


def _len_ids(st):
    return len(st.ids)


TASK = L.lookup_task(
    name="labels_batch",
    title="labels of a batch of random known IDs, 1 M from scale 0.1 on (`labels_many(ids)`)",
    systems=(
        System(
            "oicore", ("oicore", "numpy"), _setup_oicore, _run_oicore, "release.labels_many(ids)",
            prepare=L.prepare_oic, normalize=_normalize_oicore,
        ),
        System(
            "pandas", ("pandas", "pyarrow", "numpy"), _setup_pandas, _with_state(_run_pandas),
            'pd.DataFrame({"ImageID": ids, "q": arange(n)}).merge(df, on="ImageID", how="inner", sort=False)',
            prepare=L.prepare_typed, normalize=_normalizer(_len_ids),
        ),
        System(
            "numpy", ("numpy", "pyarrow"), _setup_numpy, _run_numpy,
            "p = uniq.searchsorted(ids); start = offsets[p]; count = offsets[p+1] - start; "
            "rows = arange(total) + repeat(start - cumsum(count) + count, count); codes[rows], conf[rows]",
            prepare=L.prepare_typed, normalize=_normalize_numpy,
        ),
        System(
            "polars", ("polars", "pyarrow"), _setup_polars, _with_state(_run_polars),
            'pl.DataFrame({"ImageID": ids}).with_row_index("q").join(df, on="ImageID", maintain_order="left_right")',
            prepare=L.prepare_typed, normalize=_normalizer(_len_ids),
        ),
        System(
            "duckdb", ("duckdb", "pyarrow", "numpy"), _setup_duckdb, _with_state(_run_duckdb),
            f"con.register('query', ids); con.sql('{DUCKDB_JOIN}').to_arrow_table()",
            prepare=L.prepare_typed, normalize=_normalizer(_len_ids),
        ),
        System(
            "lance", LN.MODULES, _setup_lance, _run_lance,
            'ds.to_table(columns=["ImageID", "LabelName", "Confidence"], scan_in_order=True) of human and machine; '
            "then numpy: stable argsort by ImageID, searchsorted, repeat (as numpy)",
            prepare=LN.prepare, normalize=_normalize_numpy,
        ),
    ),  # fmt: skip
    calls=L._stores.batch_size,
    rate="IDs/s",
    note=(
        "IDs/s = the batch's IDs ÷ the median (1,000,000 IDs; 10,000,000 × scale below scale 0.1); every system "
        "returns every ID's rows in the order of the IDs."
    ),
)
