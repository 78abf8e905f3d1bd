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

from bench.tasks import _lance as LN
from bench.tasks import _lookups as L
from bench.tasks import _single as S
from bench.tasks._single import Lookup, label, numbers

QUERY = "labels_single"
ANSWER = {"LabelName": label("LabelName"), "Confidence": numbers("Confidence")}


# ------------------------------------------------------------------------------------------------ the peers' tables


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


DUCKDB_QUERY = "SELECT LabelName, Confidence FROM labels WHERE ImageID = $1 ORDER BY row"


def duckdb_labels(ctx):
    """An in-memory DuckDB table of the labels with an ART index on ImageID (default threads)."""
    return L.duckdb_table(ctx, "labels", lambda: L.labels_table(ctx), index="ImageID")


# ------------------------------------------------------------------------------------------------ setups


def _oicore(ctx, keys):
    release = L.open_release(ctx)
    return {"labels": release.labels, "release": release}


def _pandas_loc(ctx, keys):
    return {"loc": _pandas_frame(ctx).loc}


def _pandas_groupby(ctx, keys):
    import numpy as np
    import pandas as pd

    wanted = S.groups_of(ctx, QUERY)
    table = L.labels_table(ctx)
    with L.measure(ctx, "build"):
        df = table.select(["LabelName", "Confidence"]).to_pandas()
        df.index = pd.Index(table["ImageID"].to_numpy(), name="ImageID")
        del table
        if wanted is not None:
            df = df[df.index.isin(np.asarray(wanted, dtype=np.uint64))]
        groups = {int(k): g for k, g in df.groupby(level=0, sort=False)}
        del df
    return {"groups": groups}


def _numpy(ctx, keys):
    csr = _numpy_csr(ctx)
    return {"search": csr.uniq.searchsorted, "offsets": csr.offsets, "codes": csr.codes, "conf": csr.conf, "vocab": csr.vocab}


def _polars(ctx, keys):
    import polars as pl

    table = L.labels_table(ctx)
    with L.measure(ctx, "build"):
        df = pl.from_arrow(table.select(["ImageID", "LabelName", "Confidence"]))
        df = df.with_columns(pl.col("ImageID").set_sorted())
        del table
    return {"search": df.get_column("ImageID").search_sorted, "slice_": df.slice}


def _duckdb(ctx, keys):
    return {"execute": duckdb_labels(ctx).execute, "query": DUCKDB_QUERY}


def _lance(ctx, keys):
    import pyarrow as pa

    human, machine = LN.open_datasets(ctx, "human_labels", "machine_labels")
    return {"human": human, "machine": machine, "concat": pa.concat_tables, "scan": LN.scan,
            "where": LN.image_filter, "columns": ["LabelName", "Confidence"]}  # fmt: skip


def _oicore_labels(r, names):
    return L.Codes(r.label, names["release"].mids)


def _numpy_labels(r, names):
    return L.Codes(r[0], names["vocab"])


SYSTEMS = (
    Lookup(
        "oicore", ("oicore", "numpy"), _oicore, "r = labels(k); r.label; r.confidence",
        {"LabelName": _oicore_labels, "Confidence": lambda r, names: r.confidence}, prepare=L.prepare_oic,
        note="labels = release.labels",
    ),
    Lookup(
        "pandas", ("pandas", "pyarrow", "numpy"), _pandas_loc, "r = loc[k:k]; r.LabelName.values; r.Confidence.values",
        ANSWER, keys="int64", calls=L.slow_calls, note="loc = df.loc: sorted index, categorical labels",
    ),
    Lookup(
        "pandas-groupby", ("pandas", "pyarrow", "numpy"), _pandas_groupby,
        "r = groups[k]; r.LabelName.values; r.Confidence.values", ANSWER, calls=L.slow_calls,
        note="dict of the groupby's frames, built once",
    ),
    Lookup(
        "numpy", ("numpy", "pyarrow"), _numpy, "p = search(k); a = offsets[p]; b = offsets[p + 1]; r = (codes[a:b], conf[a:b])",
        {"LabelName": _numpy_labels, "Confidence": lambda r, names: r[1]}, keys="numpy",
        note="search = ids.searchsorted: sorted IDs, CSR offsets",
    ),
    Lookup(
        "polars", ("polars", "pyarrow"), _polars,
        'a = search(k, "left"); r = slice_(a, search(k, "right") - a); r.get_column("LabelName"); r.get_column("Confidence")',
        ANSWER, calls=L.slow_calls, note="search = ids.search_sorted, slice_ = df.slice",
    ),
    Lookup(
        "duckdb", ("duckdb", "pyarrow", "numpy"), _duckdb,
        'r = execute(query, [k]).fetchnumpy(); r["LabelName"]; r["Confidence"]', ANSWER, calls=L.slow_calls,
        note=f'query = "{DUCKDB_QUERY}"; ART index on ImageID',
    ),
    Lookup(
        "lance", LN.MODULES, _lance,
        'f = where(k); r = concat([scan(human, columns, f), scan(machine, columns, f)]); r["LabelName"]; r["Confidence"]',
        ANSWER, calls=L.indexed_scan_calls, prepare=LN.prepare,
        note=f'scan = ds.to_table(columns=..., filter="{LN.image_filter("k")}", scan_in_order=True); BTREE index on ImageID',
    ),
)  # fmt: skip


TASK = S.task(
    "labels_one",
    "labels of one image (`labels(id)`), one call at a time over random known IDs",
    QUERY,
    SYSTEMS,
    note=(
        "per call = the timed loop's median ÷ calls; p50/p99 = up to 2,000 calls timed one by one (timer cost "
        "subtracted). Peers that take tens of µs or more per call time the first 1,000 of the same IDs, Lance "
        "(a query planned per call) the first 200; the answers of every system to the first 2,000 are checked "
        "(below scale 0.1, a fifth of each). setup = loading the stored form + building the index or dictionary "
        "(untimed); setup "
        "memory = resident memory it added. pandas keys its index on the IDs' signed 64-bit view: a uint64 "
        "index makes `.loc` take milliseconds. pandas-groupby: from scale 0.1 on, the setup figures are the whole "
        "dict's (built in the check process) and its timing processes build the groups of the queried IDs only, "
        "to save minutes; below scale 0.1 every process builds the queried IDs' groups only (setup figures "
        "included)."
    ),
)
