"""What the lookup tasks share: measured setup, the peers' tables, canonical answers and their fingerprints.

Every system of a lookup task gets the same seeded query IDs (``_stores.queries``) and loads its data in its
own, untimed ``setup``, which records in ``ctx.notes`` how long loading (``load_s``) and building an index or a
dictionary (``build_s``) took, and how much resident memory they added (``build_bytes``). The report shows
these beside the query times.

Answers are reduced to a *canonical form* by each system's ``normalize`` (outside the timed region)::

    {"calls": n, "counts": rows per call or None, "columns": {name: array or Codes}}

``Codes`` holds labels as integer codes into a vocabulary of strings (oicore's codes index ``release.mids``; a
pandas categorical has its categories; plain strings are dictionary-encoded), so two systems that give the
same labels compare equal whatever their codes. ``fingerprint`` hashes every column exactly: strings by
value, floats as integer millionths (exact for the 6-decimal values of the release, whether a system holds
them as float32 or float64), integers as they are.
"""

from __future__ import annotations

import gc
import hashlib
import time
from dataclasses import dataclass
from typing import Any

from bench._worker import _status_kib
from bench.task import Task, same_state
from bench.tasks import _stores

LABEL_COLUMNS = ("ImageID", "Source", "LabelName", "Confidence")


# ------------------------------------------------------------------------------------------------ measured setup


class measure:
    """``with measure(ctx, "load"): ...`` adds the block's seconds to ``ctx.notes["load_s"]`` and sets
    ``ctx.notes["build_bytes"]`` to the resident memory added since the first ``measure`` of this setup."""

    def __init__(self, ctx, phase: str):
        self.ctx, self.phase = ctx, phase

    def __enter__(self):
        notes = self.ctx.notes
        if "_rss0_kib" not in notes:
            import sys

            # What the loaders import lazily belongs to the imports, not to loading the data.
            import pyarrow.parquet  # noqa: F401

            if "pandas" in sys.modules:
                import pyarrow.pandas_compat  # noqa: F401
            gc.collect()
            notes["_rss0_kib"] = _status_kib("VmRSS")
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        notes = self.ctx.notes
        key = f"{self.phase}_s"
        notes[key] = notes.get(key, 0.0) + time.perf_counter() - self.t0
        gc.collect()
        rss = _status_kib("VmRSS")
        if rss is not None and notes.get("_rss0_kib") is not None:
            notes["build_bytes"] = (rss - notes["_rss0_kib"]) * 1024
        return False


def lookup_task(**fields) -> Task:
    """A Task with what the lookup tasks share, unless ``fields`` say otherwise: no input files to warm,
    canonical answers (``fingerprint``, ``quick``), no MB/s, and a state that the check and the rounds share."""
    shared = dict(
        inputs=(), fingerprint=fingerprint, quick=quick, result_bytes=result_bytes, describe=describe,
        throughput=False, reuse=same_state,
    )  # fmt: skip
    return Task(**{**shared, **fields})


# ------------------------------------------------------------------------------------------------ inputs


def oic_path(ctx):
    return _stores.ensure(ctx.data_dir, "oic")


def prepare_oic(ctx) -> None:
    _stores.ensure(ctx.data_dir, "oic")
    _stores.queries(ctx.data_dir)


def prepare_typed(ctx) -> None:
    _stores.queries(ctx.data_dir)  # builds the typed tables first


# Single calls (prefixes of the same seeded IDs). A slow peer takes tens of µs to milliseconds per call
# whatever the data's size, so below scale 0.1 (the smoke test) these counts are 5 times smaller.
CHECK_CALLS = 2_000  # answered by every system in the check run
SLOW_CALLS = 1_000  # per timed run of a slow peer
INDEXED_SCAN_CALLS = 200  # per timed run of a peer that plans a query per call (~1 ms or more): Lance
SMALL_SCALE_DIVISOR = 5


def _calls(n: int):
    def calls(data_dir) -> int:
        return n // SMALL_SCALE_DIVISOR if _stores.small_scale(data_dir) else n

    return calls


check_calls, slow_calls, indexed_scan_calls = _calls(CHECK_CALLS), _calls(SLOW_CALLS), _calls(INDEXED_SCAN_CALLS)


def id_array(ctx, name: str, slow=False):
    """The seeded query IDs (uint64). Single-lookup tasks (``name`` ending in ``_single``) answer the first
    ``check_calls`` in the check run, and all of them when timed; a slow peer (``slow=True``) the first
    ``slow_calls``, or the first ``slow(data_dir)`` (e.g. ``indexed_scan_calls``)."""
    ids = _stores.query_ids(ctx.data_dir, name)
    if not name.endswith("_single"):
        return ids
    if ctx.keep:
        return ids[: check_calls(ctx.data_dir)]
    if slow:
        return ids[: (slow_calls if slow is True else slow)(ctx.data_dir)]
    return ids


def keys(ctx, name: str, slow=False) -> list[int]:
    """The seeded query IDs as Python ints (the same for every system)."""
    return id_array(ctx, name, slow).tolist()


def keys_int64(ctx, name: str, slow=False) -> list[int]:
    """The same IDs reinterpreted as signed 64-bit (pandas' uint64 index is pathological: see README)."""
    import numpy as np

    return id_array(ctx, name, slow).view(np.int64).tolist()


def open_release(ctx):
    """oicore's Release of the shared ``.oic`` file, opened (recorded as ``load``)."""
    import numpy  # noqa: F401

    import oicore

    path = oic_path(ctx)
    opener = oicore.open  # resolves the lazily imported oicore.release first
    with measure(ctx, "load"):
        return opener(path)


def duckdb_table(ctx, name: str, load, index: str | None = None):
    """An in-memory DuckDB connection (default threads) holding the Arrow table ``load()`` as table ``name``,
    with an ART index on column ``index`` if given (recorded as ``build``)."""
    import duckdb

    table = load()
    with measure(ctx, "build"):
        con = duckdb.connect()
        con.register(f"{name}_arrow", table)
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {name}_arrow")
        con.unregister(f"{name}_arrow")
        del table
        if index is not None:
            con.execute(f"CREATE INDEX {name}_{index} ON {name} ({index})")
    return con


def queries(ctx) -> dict:
    return _stores.queries(ctx.data_dir)


def read_typed(ctx, table: str, columns=None):
    import pyarrow.parquet as pq

    return pq.read_table(_stores.typed_path(ctx.data_dir, table), columns=columns)


def labels_table(ctx):
    """Human then machine label rows of every split, stably sorted by ImageID: per image, human rows first,
    then machine rows, each in file order (the order ``Release.labels`` promises). Columns ImageID (uint64),
    Source and LabelName (dictionaries), Confidence (float32), ``row`` (position, for SQL ORDER BY)."""
    import numpy as np
    import pyarrow as pa

    with measure(ctx, "load"):
        parts = [read_typed(ctx, t, list(LABEL_COLUMNS)) for t in ("human_labels", "machine_labels")]
    with measure(ctx, "build"):
        table = pa.concat_tables(parts).unify_dictionaries().combine_chunks()
        del parts
        order = np.argsort(table["ImageID"].to_numpy(), kind="stable")
        table = table.take(order)
        table = table.append_column("row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    return table


def boxes_table(ctx):
    """Every box row (splits in order, then ImageID, then file order) with flags (-1: none) and ``split``."""
    with measure(ctx, "load"):
        return read_typed(ctx, "boxes")


# ------------------------------------------------------------------------------------------------ canonical form


@dataclass
class Codes:
    """Labels as codes into a vocabulary of strings."""

    codes: Any  # integer numpy array
    vocab: Any  # sequence of str


def codes_of(values) -> Codes:
    """Strings (numpy/pyarrow/pandas/polars) as Codes."""
    import numpy as np
    import pyarrow as pa

    family = type(values).__module__.split(".")[0]
    if family == "pandas":
        if hasattr(values, "cat"):
            # the categories themselves, not a copy: the slices of one frame share them, and _concat_codes
            # re-codes each vocabulary once
            return Codes(values.cat.codes.to_numpy(), values.cat.categories)
        values = values.to_numpy()
    if family == "polars":
        values = values.to_arrow()
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        if not pa.types.is_dictionary(values.type):
            values = values.cast(pa.large_string()).dictionary_encode()
        return Codes(values.indices.to_numpy(zero_copy_only=False), values.dictionary.cast(pa.large_string()).to_pylist())
    arr = np.asarray(values, dtype=object)
    vocab, codes = np.unique(arr, return_inverse=True) if len(arr) else (np.array([], object), np.array([], np.int64))
    return Codes(codes, list(vocab))


def as_numpy(values):
    """A column of numbers (numpy, pandas, polars or pyarrow) as a numpy array."""
    import numpy as np

    family = type(values).__module__.split(".")[0]
    if family in ("pandas", "polars"):
        return values.to_numpy()
    if family == "pyarrow":
        import pyarrow as pa

        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        return values.to_numpy(zero_copy_only=False)
    return np.asarray(values)


def _tables_to_arrow(result):
    from bench.tasks._tables import to_arrow

    return to_arrow(result)


def ragged(counts, columns: dict, calls: int | None = None) -> dict:
    import numpy as np

    counts = None if counts is None else np.asarray(counts, dtype=np.int64)
    return {"calls": len(counts) if calls is None and counts is not None else calls, "counts": counts, "columns": columns}


def concat_calls(parts: list[dict]) -> dict:
    """Per-call column dicts (as Codes or arrays) joined into one ragged canonical form."""
    import numpy as np

    counts = np.array([_len(next(iter(p.values()))) for p in parts], dtype=np.int64)
    columns = {}
    for name in parts[0] if parts else ():
        first = parts[0][name]
        if isinstance(first, Codes):
            columns[name] = _concat_codes([p[name] for p in parts])
        else:
            columns[name] = np.concatenate([np.asarray(p[name]) for p in parts]) if parts else np.array([])
    return ragged(counts, columns)


def _len(v) -> int:
    return len(v.codes) if isinstance(v, Codes) else len(v)


def _concat_codes(items: list[Codes]) -> Codes:
    """Codes with possibly different vocabularies, re-coded into one."""
    import numpy as np

    index: dict[str, int] = {}
    out = []
    cache: dict[int, Any] = {}
    for c in items:
        key = id(c.vocab)
        remap = cache.get(key)
        if remap is None:
            remap = np.array([index.setdefault(v, len(index)) for v in c.vocab] or [0], dtype=np.int64)
            cache[key] = remap
        codes = np.asarray(c.codes, dtype=np.int64)
        out.append(remap[codes] if len(codes) else codes)
    return Codes(np.concatenate(out) if out else np.zeros(0, np.int64), list(index))


def _h64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "little")


def _column_values(v):
    """A column as an exact integer numpy array (and a readable first value)."""
    import numpy as np

    if isinstance(v, Codes):
        codes = np.asarray(v.codes, dtype=np.int64)
        if len(codes) and (codes.min() < 0 or codes.max() >= len(v.vocab)):
            raise ValueError(f"label codes outside their vocabulary of {len(v.vocab)} (a null?)")
        hashes = np.array([_h64(x) for x in v.vocab] or [0], dtype=np.uint64)
        return hashes[codes], (lambda i: v.vocab[int(codes[i])])
    arr = np.asarray(v)
    if arr.dtype.kind == "f":
        arr = np.rint(arr.astype(np.float64) * 1e6).astype(np.int64)
    elif arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "u":
        arr = arr.astype(np.uint64)
    elif arr.dtype.kind == "i":
        arr = arr.astype(np.int64)
    else:
        raise TypeError(f"cannot fingerprint a column of dtype {arr.dtype}")
    if arr.ndim > 1:
        return arr.reshape(len(arr), -1), (lambda i: arr[i].tolist())
    return arr, (lambda i: arr[i].item() if arr.dtype.kind == "i" else f"{int(arr[i]):016x}")


def fingerprint(canon: dict) -> dict:
    """Exact, representation-free summary of a canonical answer (see the module docstring)."""
    import numpy as np

    out: dict = {"calls": canon.get("calls")}
    counts = canon.get("counts")
    if counts is not None:
        out["rows_per_call_sha256"] = hashlib.sha256(np.ascontiguousarray(counts, dtype="<i8").tobytes()).hexdigest()[:16]
        out["empty_calls"] = int((counts == 0).sum())
    rows = None
    for name in sorted(canon["columns"]):
        arr, show = _column_values(canon["columns"][name])
        if rows is None:
            rows = len(arr)
        elif len(arr) != rows:
            raise ValueError(f"column {name} has {len(arr)} rows, others {rows}")
        data = np.ascontiguousarray(arr)
        with np.errstate(over="ignore"):
            total = int(data.astype(np.uint64).sum(dtype=np.uint64)) if len(data) else 0
        out[name] = {
            "sha256": hashlib.sha256(data.astype(data.dtype.newbyteorder("<")).tobytes()).hexdigest()[:16],
            "sum_mod_2_64": total,
            "first": show(0) if len(data) else None,
            "last": show(len(data) - 1) if len(data) else None,
        }
    out["rows"] = rows if rows is not None else 0
    if counts is not None and out["rows"] != int(counts.sum()):
        raise ValueError(f"{out['rows']} rows but the calls' counts add up to {int(counts.sum())}")
    return out


def quick(canon: dict) -> dict:
    """Rows of the answer, checked after every timed run; nothing for a loop of single calls, whose timed
    runs keep no answers (and slow peers time a prefix): those are checked in full by the check run."""
    columns = canon.get("columns")
    if not columns:
        return {}
    return {"rows": _len(next(iter(columns.values())))}


def result_bytes(result) -> int | None:
    """Bytes held by a result's arrays where that is meaningful (0 for a count returned by a timed run)."""
    import numpy as np

    if isinstance(result, (int, float)) or result is None:
        return 0
    if isinstance(result, np.ndarray):
        return int(result.nbytes)
    if isinstance(result, (tuple, list)):
        sizes = [result_bytes(x) for x in result if not isinstance(x, (list, str))]
        sizes = [x for x in sizes if x is not None]
        return sum(sizes) if sizes else None
    arrays = [v for v in getattr(result, "__dict__", {}).values() if isinstance(v, np.ndarray)]
    if not arrays and hasattr(result, "__dataclass_fields__"):
        arrays = [getattr(result, f) for f in result.__dataclass_fields__ if isinstance(getattr(result, f), np.ndarray)]
    if arrays:
        return sum(int(a.nbytes) for a in arrays)
    try:
        from bench.tasks._tables import result_bytes as table_bytes

        return table_bytes(result)
    except (TypeError, AttributeError):
        return None


def describe(result) -> str:
    return f"{type(result).__module__}.{type(result).__qualname__}"


# ------------------------------------------------------------------------------------------------ latency sample

SAMPLE = 2000  # single calls timed one by one, per timing process


def _noop(key):
    return None


def latency_sample(call, keys: list, n: int = SAMPLE) -> list[int]:
    """Nanoseconds of ``call(key)`` for the first ``n`` keys, each timed alone, less the median cost of timing an
    empty call the same way (so the figures are the call itself, give or take ~30 ns of clock jitter). It runs
    after the process's warm-up and timed runs, which have already made these calls."""
    pc = time.perf_counter_ns
    sample = keys[:n]

    def timed(f):
        out = [0] * len(sample)
        for i, k in enumerate(sample):
            t0 = pc()
            f(k)
            out[i] = pc() - t0
        return out

    empty = sorted(timed(_noop))
    base = empty[len(empty) // 2]
    return [max(0, x - base) for x in timed(call)]
