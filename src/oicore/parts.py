"""A table's part for ``convert``: one source file, parsed and narrowed.

``read_csv`` gives 8-byte IDs, 4-byte codes and 8-byte numbers per row. Convert narrows each column as soon
as its part is parsed (codes into the release vocabulary, decimals as integers, flags as int8) and lets go of
the reader's buffers, so a table of 80 M rows costs about its IDs plus its stored size in memory, not the
reader's output for every part at once.
"""

from __future__ import annotations

import tarfile
import warnings
from dataclasses import dataclass, field

import numpy as np

from oicore import _kernels
from oicore import columns as C
from oicore import exact, schema
from oicore.errors import CSVError, OicoreWarning
from oicore.schema import ColumnType
from oicore.sources import Source, source_bytes, source_head

__all__ = ["Part", "Narrow", "load_part", "row_location", "SPLIT_CODES", "UNKNOWN_SPLIT"]

SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}
UNKNOWN_SPLIT = 255
# Subset values of an images file holding several splits.
_SUBSETS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
_NUMERIC = (ColumnType.FLOAT64, ColumnType.INT8, ColumnType.INT32, ColumnType.INT64)
_SAMPLE_BYTES = 1 << 20  # the rules are learned from the records in the first MiB after the header


@dataclass
class Narrow:
    """One column of a part, narrowed: ``kind`` is ``code`` (release vocabulary), ``dict`` (the table's own
    values), ``int``, ``decimal`` (``values / 10**scale``), ``float64`` or ``strings`` (``text``, Arrow)."""

    kind: str
    values: np.ndarray | None = None
    nulls: np.ndarray | None = None  # bool, or None when no row is null
    scale: int | None = None
    text: object = None


@dataclass
class Part:
    """A source's rows: narrowed columns, image IDs (image tables), the rules its text follows."""

    source: Source
    rows: int
    names: list[str]
    data_offset: int  # where the first record starts (after the BOM and header)
    rules: dict
    columns: dict[str, Narrow] = field(default_factory=dict)
    ids: np.ndarray | None = None  # uint64 per row, in file order
    ids_sorted: bool = True  # the rows are in ImageID order
    splits: tuple[np.ndarray, np.ndarray] | None = None  # (unique IDs, their split codes)
    checkpoints: np.ndarray | None = None  # int64 (row, byte offset) pairs where records start, from the reader


def load_part(source: Source, read_csv, *, vocab, local_values: dict, named: set | None, block_size, threads, pool=None) -> Part:
    """Parse ``source`` and narrow its columns (long numeric ones a chunk per thread of ``pool``).

    ``vocab`` is the release vocabulary (``code_map``); ``local_values`` maps a non-MID dictionary column
    to its table's values so far (grown here); ``named`` is the set of MIDs with a name, for the
    warning about MIDs in no description file (None: no check).
    """
    table = _parse(source, read_csv, block_size, threads)
    names = list(table.column_names)
    data_offset = int(table.schema.metadata[b"oicore.data_offset"])
    part = Part(source, table.num_rows, names, data_offset, _rules(source, names, data_offset, table.num_rows))
    part.checkpoints = np.frombuffer(table.schema.metadata.get(b"oicore.checkpoints", b""), np.int64).reshape(-1, 2)
    id_name = next((n for n in names if n in ("ImageID", "ImageId")), None)
    for name in names:
        if schema.column(name).type in (ColumnType.STRING, ColumnType.DICTIONARY):
            _check_text_lengths(part, name, table.column(name))
    warned = named is None  # one warning per file about MIDs without a name, at its first such column
    for name in names:
        column = table.column(name)
        col = schema.column(name)
        if name == id_name:
            part.ids = _numbers(column)[0].astype(np.uint64, copy=False)  # a view: it keeps only its own buffers
            part.ids_sorted = _kernels.is_sorted(np.ascontiguousarray(part.ids))
        elif col.type is ColumnType.DICTIONARY and col.mid:
            values = _dictionary_values(column)
            if not warned:
                warned = _warn_unnamed(source, name, values, named)
            part.columns[name] = Narrow("code", values=_codes(column, vocab.code_map(values), len(vocab.codes)))
        elif col.type is ColumnType.DICTIONARY:
            index = local_values.setdefault(name, {})
            mapping = np.array([index.setdefault(v, len(index)) for v in _dictionary_values(column)], np.int64)
            part.columns[name] = Narrow("dict", values=_codes(column, mapping, len(index)))
        elif col.type is ColumnType.STRING:
            part.columns[name] = Narrow("strings", text=column)
        elif col.type is ColumnType.FLOAT64:
            part.columns[name] = _decimal(column, part.rules["decimals"].get(name), pool)
        else:
            values, nulls = _numbers(column)
            part.columns[name] = Narrow("int", values=values.copy(), nulls=nulls)
    if id_name is not None and not source.export_only:
        part.splits = _splits(part, local_values)
    return part


def _check_text_lengths(part: Part, name: str, column) -> None:
    """Raise CSVError, naming the file, line and column, for a text value longer than the .oic format stores
    (``columns.MAX_TEXT_FIELD``, just under 1 MiB: every text encoding keeps a value within one block)."""
    import pyarrow as pa

    if column.num_chunks == 0 or len(column) == 0:
        return
    if pa.types.is_dictionary(column.type):
        longest, code = _longest(column.chunk(0).dictionary)  # every chunk shares the table's dictionary
        if longest <= C.MAX_TEXT_FIELD:
            return
        indices = np.concatenate([_view(c.indices) for c in column.chunks])
        row = int(np.flatnonzero(indices == code)[0])
    else:
        row = 0
        for chunk in column.chunks:
            longest, at = _longest(chunk)
            if longest > C.MAX_TEXT_FIELD:
                row += at
                break
            row += len(chunk)
        else:
            return
    line, offset = row_location(part, row, part.names.index(name))
    raise CSVError(
        f"a text value of {longest:,} bytes; the .oic format stores text values of at most {C.MAX_TEXT_FIELD:,} bytes",
        path=part.source.where, line=line, column=part.names.index(name) + 1, column_name=name, byte_offset=offset,
    )


def _longest(strings) -> tuple[int, int]:
    """The byte length of the longest value of an arrow string array, and its index (-1 when empty)."""
    import pyarrow as pa

    if len(strings) == 0:
        return 0, -1
    if not pa.types.is_string(strings.type):  # the reader makes string columns; any other kind, the slow way
        import pyarrow.compute as pc

        lengths = pc.binary_length(strings).fill_null(0).to_numpy(zero_copy_only=False)
        return int(lengths.max()), int(np.argmax(lengths))
    offsets = np.frombuffer(strings.buffers()[1], np.int32, len(strings) + 1, strings.offset * 4)
    return _kernels.longest_value(offsets)


def row_location(part: Part, row: int, field: int) -> tuple[int, int | None]:
    """The line of data row ``row`` of the part (1 + line terminators before its record) and the byte offset of
    its field ``field``: from the reader's last checkpoint before it, a record at a time (an error path only)."""
    from oicore import _csv

    starts = [(int(r), int(o)) for r, o in part.checkpoints if r <= row] or [(0, part.data_offset)]
    first, pos = starts[-1]
    with source_bytes(part.source) as data, memoryview(data) as buf:
        for _ in range(row - first):
            status, _, pos, *_ = _csv.read_record(buf, pos, True, len(part.names) + 1)
            if status != 0:
                return row + 2, None  # not reached: the reader read these records
        status, fields, *_ = _csv.read_record(buf, pos, True, len(part.names) + 1)
        head = bytes(buf[:pos])
    line = 1 + head.count(b"\n") + head.count(b"\r") - head.count(b"\r\n")
    return line, (fields[field][1] if status == 0 and field < len(fields) else pos)


def _parse(source: Source, read_csv, block_size, threads):
    if source.member is None:
        return read_csv(source.path, kind=source.kind, block_size=block_size, threads=threads)
    with tarfile.open(source.path, "r:*") as tar:  # an archive member: parsed as it is decompressed
        stream = _NamedStream(tar.extractfile(source.member), source.where)
        return read_csv(stream, kind=source.kind, block_size=block_size, threads=threads)


class _NamedStream:
    """An archive member's stream, named as errors should name it (``archive.tar.gz:member``)."""

    def __init__(self, stream, name: str):
        self.readinto, self.read, self.name = stream.readinto, stream.read, name


def _rules(source: Source, names: list[str], data_offset: int, rows: int) -> dict:
    """How the part's text is written (``exact.learn_rules``), from a sample of its records."""
    numeric = {n for n in names if schema.column(n).type in _NUMERIC}
    head = source_head(source, data_offset + _SAMPLE_BYTES)
    sample = exact.sample_fields(head, data_offset, rows, whole=len(head) == source.size)
    return exact.learn_rules(sample, names, numeric)


def _warn_unnamed(source: Source, name: str, values: list[str], named: set) -> bool:
    """Warn about column ``name``'s MIDs that no description file names; True when it warned."""
    unknown = [m for m in values if m not in named]
    if unknown:
        warnings.warn(
            f"{source.name}: {len(unknown)} {name} value(s) in no class description file "
            f"(e.g. {', '.join(unknown[:3])}); added to the vocabulary without a name",
            OicoreWarning,
            stacklevel=5,
        )
    return bool(unknown)


def _decimal(column, fixed_digits: int | None, pool=None) -> Narrow:
    """A float column as decimal integers at the smallest exact scale (the text's fixed digits when they
    fit), or as float64 when no scale is exact."""
    # The reader's chunks, read in place (the kernels skip null rows, whatever their slots hold): the
    # float64 column is made only when no scale is exact.
    nulls = _to_numpy(column.is_null()) if column.null_count else None
    decimal = C.to_decimal([_view(c) for c in column.chunks], nulls, fixed_digits, pool=pool)
    if decimal is None:
        values, nulls = _numbers(column)
        return Narrow("float64", values=values.copy(), nulls=nulls)
    e, ints = decimal
    return Narrow("decimal", values=ints, nulls=nulls, scale=e)


def _splits(part: Part, local_values: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """The part's images and their split codes: the file's split, or the Subset column's value of the
    image's first row; None when the part names no split."""
    ids = part.ids
    if not part.ids_sorted:
        unique, first = np.unique(ids, return_index=True)
    else:
        unique, first, _ = _kernels.runs(np.ascontiguousarray(ids))
    if part.source.split is not None:
        return unique, np.full(len(unique), SPLIT_CODES[part.source.split], np.uint8)
    if "Subset" not in part.columns:
        return None
    values = list(local_values.get("Subset", {}))
    mapping = np.array([SPLIT_CODES.get(_SUBSETS.get(v.lower(), ""), UNKNOWN_SPLIT) for v in values], np.uint8)
    return unique, mapping[part.columns["Subset"].values[first]] if len(mapping) else np.zeros(len(unique), np.uint8)


def _dictionary_values(chunked) -> list[str]:
    """A dictionary column's values (every chunk shares the table's final dictionary)."""
    if chunked.num_chunks == 0:
        return []
    return chunked.chunk(0).dictionary.to_pylist()


def _codes(chunked, mapping: np.ndarray, n_codes: int) -> np.ndarray:
    """A dictionary column's indices mapped through ``mapping`` (dictionary value → code), in the narrowest
    unsigned type that holds ``n_codes`` codes."""
    dtype = C.dtype_of(C.narrowest(0, max(n_codes - 1, 0)))
    if chunked.num_chunks == 0 or len(mapping) == 0:
        return np.zeros(len(chunked), dtype)
    mapping = mapping.astype(dtype)
    out = np.empty(len(chunked), dtype)
    at = 0
    for c in chunked.chunks:  # each chunk's codes straight to their place: no per-chunk arrays to join
        np.take(mapping, _view(c.indices), out=out[at : at + len(c)])
        at += len(c)
    return out


def _numbers(chunked):
    """A numeric column as a numpy array (nulls filled with 0) and a null mask (or None)."""
    import pyarrow.compute as pc

    if chunked.null_count:
        nulls = _to_numpy(chunked.is_null())
        values = _to_numpy(pc.fill_null(chunked, 0))
        return values, nulls
    return _to_numpy(chunked), None


def _to_numpy(arrow) -> np.ndarray:
    """An arrow array or chunked array of a fixed-width type as one numpy array (views where possible).

    pyarrow's own ``to_numpy`` imports pandas (about half a second) on first use; the buffers are enough.
    """
    import pyarrow as pa

    if isinstance(arrow, pa.ChunkedArray):
        parts = [_view(c) for c in arrow.chunks]
        if not parts:
            return np.zeros(0, dtype=_NUMPY_TYPES.get(str(arrow.type), np.float64))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    return _view(arrow)


_NUMPY_TYPES = {
    "int8": np.int8, "int16": np.int16, "int32": np.int32, "int64": np.int64,
    "uint8": np.uint8, "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64,
    "float32": np.float32, "float64": np.float64, "float": np.float32, "double": np.float64,
}


def _view(arr) -> np.ndarray:
    """One arrow array's values (validity ignored): a view of its data buffer; booleans unpacked."""
    name = str(arr.type)
    data = arr.buffers()[1]
    if name == "bool":
        if data is None:
            return np.zeros(len(arr), bool)
        bits = np.unpackbits(np.frombuffer(data, np.uint8), count=arr.offset + len(arr), bitorder="little")
        return bits[arr.offset :].astype(bool)
    dtype = np.dtype(_NUMPY_TYPES[name])
    if data is None or len(arr) == 0:
        return np.zeros(len(arr), dtype)
    return np.frombuffer(data, dtype, len(arr), arr.offset * dtype.itemsize)
