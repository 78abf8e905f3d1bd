"""What the Lance peer shares across tasks: its prepared datasets, opened in setup, and its filters.

Lance answers from its stored form, as its users query it: ``_stores.write_lance`` wrote one dataset per
table (the typed tables, labels as plain strings) with a ``BTREE`` index on ImageID and a ``BITMAP`` index on
LabelName, once per data set (untimed, like oicore's ``.oic``). Setup only opens the datasets (``load``);
every call then plans and runs a scan, which the indexes turn into lookups. ``scan_in_order=True`` returns
the rows in the dataset's order (split, ImageID, file order), the order oicore promises; Lance's default
(``False``) may interleave fragments, which the answer check would catch.

Lance uses its own thread pool (one thread per core), like the other multithreaded peers.
"""

from __future__ import annotations

from bench.tasks import _lookups as L
from bench.tasks import _stores

MODULES = ("lance", "pyarrow", "numpy")


def prepare(ctx) -> None:
    _stores.ensure(ctx.data_dir, "lance")
    _stores.queries(ctx.data_dir)


def open_datasets(ctx, *tables):
    """The prepared datasets of ``tables``, opened (recorded as ``load``)."""
    import lance

    paths = [str(_stores.lance_path(ctx.data_dir, t)) for t in tables]
    with L.measure(ctx, "load"):
        return [lance.dataset(p) for p in paths]


def image_filter(k: int) -> str:
    return f"ImageID = {k}"


def label_filter(mid: str) -> str:
    return "LabelName = '" + mid.replace("'", "''") + "'"


def scan(ds, columns=None, filter=None):
    """``ds.to_table`` in the dataset's row order (the call every Lance system times)."""
    return ds.to_table(columns=columns, filter=filter, scan_in_order=True)
