"""Reduce a table from any system to an answer that can be compared exactly.

Systems return pyarrow tables, pandas or polars data frames, with ImageID as
uint64 (oicore) or as hex text (every peer), labels as dictionaries or plain
strings, in one chunk or many. The fingerprints here depend only on the
values, and every number in them is an exact integer (no float sums whose
last bits depend on the summation order), so equal answers give equal dicts.

Imports of numpy and pyarrow happen inside the functions: these run in
workers, never in the runner.
"""

from __future__ import annotations

import hashlib

_BLOCK = 1 << 20  # rows per block when decoding hex IDs, to bound scratch memory


def to_arrow(result):
    """``result`` as a pyarrow Table (zero-copy where the source allows)."""
    import pyarrow as pa

    if isinstance(result, pa.Table):
        return result
    if isinstance(result, pa.RecordBatch):
        return pa.Table.from_batches([result])
    family = type(result).__module__.split(".")[0]
    if family == "pandas":
        return pa.Table.from_pandas(result, preserve_index=False)
    if family == "polars":
        return result.to_arrow()
    if hasattr(result, "__arrow_c_stream__"):
        return pa.RecordBatchReader.from_stream(result).read_all()
    raise TypeError(f"cannot turn a {type(result).__module__}.{type(result).__qualname__} into a pyarrow Table")


def result_bytes(result) -> int:
    """Bytes held by the result's buffers, as its own library counts them."""
    family = type(result).__module__.split(".")[0]
    if family == "pandas":
        return int(result.memory_usage(deep=True, index=True).sum())
    if family == "polars":
        return int(result.estimated_size())
    if hasattr(result, "nbytes"):
        return int(result.nbytes)
    raise TypeError(f"cannot size a {type(result).__module__}.{type(result).__qualname__}")


def describe(result) -> str:
    """Column names and types, in the result's own vocabulary."""
    family = type(result).__module__.split(".")[0]
    if family == "pandas":
        return "pandas: " + ", ".join(f"{name}: {dtype}" for name, dtype in result.dtypes.items())
    if family == "polars":
        return "polars: " + ", ".join(f"{name}: {dtype}" for name, dtype in result.schema.items())
    table = to_arrow(result)
    return "arrow: " + ", ".join(f"{f.name}: {f.type}" for f in table.schema)


def num_rows(result) -> int:
    if hasattr(result, "num_rows"):
        return int(result.num_rows)
    return len(result)


def _decoded(column):
    """A ChunkedArray of plain values: dictionaries decoded, string views widened."""
    import pyarrow as pa

    if isinstance(column, pa.Array):
        column = pa.chunked_array([column])
    t = column.type
    if pa.types.is_dictionary(t):
        column = column.cast(t.value_type)
        t = column.type
    if pa.types.is_string_view(t) or pa.types.is_string(t):
        column = column.cast(pa.large_string())
    elif pa.types.is_binary_view(t) or pa.types.is_binary(t):
        column = column.cast(pa.large_binary())
    return column


def image_ids(column):
    """ImageIDs as a uint64 numpy array: integers as they are, text parsed as 16 hex digits.

    Raises ValueError on a null, a value that is not 16 characters, or a non-hex digit.
    """
    import numpy as np
    import pyarrow as pa

    column = _decoded(column)
    if column.null_count:
        raise ValueError(f"{column.null_count} null ImageIDs")
    if pa.types.is_integer(column.type):
        return column.to_numpy().astype(np.uint64)
    if not (pa.types.is_large_string(column.type) or pa.types.is_large_binary(column.type)):
        raise ValueError(f"ImageID column of type {column.type} is neither integers nor text")

    hexval = np.full(256, 255, dtype=np.uint8)
    for i, c in enumerate(b"0123456789abcdef"):
        hexval[c] = i
    for i, c in enumerate(b"ABCDEF"):
        hexval[c] = 10 + i  # int(x, 16) accepts upper case; so does this comparison

    out = np.empty(len(column), dtype=np.uint64)
    pos = 0
    for chunk in column.chunks:
        n = len(chunk)
        if n == 0:
            continue
        offsets = np.frombuffer(chunk.buffers()[1], dtype=np.int64)[chunk.offset : chunk.offset + n + 1]
        bad = np.flatnonzero(np.diff(offsets) != 16)
        if bad.size:
            raise ValueError(f"ImageID {chunk[int(bad[0])]} at row {pos + int(bad[0])} is not 16 hex digits")
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)
        for start in range(0, n, _BLOCK):
            stop = min(n, start + _BLOCK)
            digits = hexval[data[offsets[start] : offsets[stop]]].reshape(-1, 16)
            if (digits == 255).any():
                row = start + int(np.flatnonzero((digits == 255).any(axis=1))[0])
                raise ValueError(f"ImageID {chunk[row]} at row {pos + row} is not 16 hex digits")
            # two hex digits make a byte; eight bytes, most significant first, make the big-endian uint64
            packed = (digits[:, 0::2] << 4) | digits[:, 1::2]
            out[pos + start : pos + stop] = np.ascontiguousarray(packed).view(">u8")[:, 0]
        pos += n
    return out


def _micros(column):
    """A numeric column as int64 millionths (exact for up to 6 decimals), nulls as 0."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    column = _decoded(column)
    if not pa.types.is_floating(column.type):
        column = column.cast(pa.float64())
    values = pc.fill_null(column, 0.0).to_numpy()
    return np.rint(values * 1e6).astype(np.int64)


def _counts(column) -> list[tuple[str, int]]:
    """(value, count) for each distinct value of a text column, sorted by value."""
    import pyarrow.compute as pc

    column = _decoded(column)
    counts = pc.value_counts(column)
    return sorted(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))


def _digest(pairs) -> str:
    h = hashlib.sha256()
    for value, count in pairs:
        h.update(f"{value}\t{count}\n".encode())
    return h.hexdigest()[:16]


def image_labels_fingerprint(result) -> dict:
    """The answer of a table of image-level labels (ImageID, Source, LabelName, Confidence).

    Order-insensitive sums catch wrong values, a row-weighted sum of the IDs
    catches reordered rows, and the first and last rows make a mismatch easy
    to read.
    """
    import numpy as np

    table = to_arrow(result)
    want = ["ImageID", "Source", "LabelName", "Confidence"]
    missing = [name for name in want if name not in table.column_names]
    if missing:
        raise ValueError(f"result lacks columns {missing}; it has {table.column_names}")
    n = table.num_rows
    ids = image_ids(table["ImageID"])
    conf = _micros(table["Confidence"])
    weights = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):  # sums are modulo 2**64 on purpose
        id_sum = int(ids.sum(dtype=np.uint64))
        id_weighted = int((ids * weights).sum(dtype=np.uint64))
    labels = _counts(table["LabelName"])
    sources = _counts(table["Source"])

    def row(i):
        return [
            f"{int(ids[i]):016x}",
            _decoded(table["Source"].slice(i, 1)).to_pylist()[0],
            _decoded(table["LabelName"].slice(i, 1)).to_pylist()[0],
            int(conf[i]),
        ]

    return {
        "rows": n,
        "nulls": {name: table[name].null_count for name in want if table[name].null_count},
        "image_id_sum": id_sum,
        "image_id_row_weighted_sum": id_weighted,
        "confidence_micro_sum": int(conf.sum()),
        "sources": dict(sources),
        "distinct_labels": len(labels),
        "label_counts_sha256": _digest(labels),
        "first_row": row(0) if n else None,
        "last_row": row(n - 1) if n else None,
    }
