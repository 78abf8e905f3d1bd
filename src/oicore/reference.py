"""A slow, plain-Python reader of Open Images CSV files: the test oracle.

It implements the reading rules of the shared CSV spec (``notes/csv_conventions.md``)
one byte at a time, with no cleverness, so that a reader can check it against the spec
line by line. The fast reader (``oicore.read_csv``) must return the same tables and
raise the same errors (class, ``line``, ``column``, ``byte_offset``).

For valid input the values are what Python's own ``csv`` module reads, followed by the
column types of :mod:`oicore.schema`::

    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f, strict=True))

The reader differs from ``csv`` only by rejecting more: a ``"`` inside an unquoted
field, an empty line, a record with the wrong number of fields, invalid UTF-8, and
values that break their column's grammar.

``import oicore.reference`` does not import pyarrow; :func:`read_csv_reference` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from oicore import schema
from oicore.errors import CSVError, UnknownHeaderError
from oicore.schema import ColumnType, HeaderRule

__all__ = ["read_csv_reference", "iter_records"]

BOM = b"\xef\xbb\xbf"
QUOTE, COMMA, CR, LF = ord('"'), ord(","), ord("\r"), ord("\n")

INT_RANGES = {
    ColumnType.INT8: (-(2**7), 2**7 - 1),
    ColumnType.INT32: (-(2**31), 2**31 - 1),
    ColumnType.INT64: (-(2**63), 2**63 - 1),
}


@dataclass
class Field:
    """One field as the tokenizer found it."""

    index: int  # 1-based position in its record
    start: int  # file offset of its first byte (the opening quote when quoted)
    line: int  # line of its first byte
    content: bytes  # the value's bytes: quotes removed, "" turned into "
    offsets: list[int]  # file offset of each byte of content


class Tokenizer:
    """Walks the bytes of a file record by record, field by field.

    ``line`` is 1 + the number of terminators (LF, CRLF, bare CR; inside quotes too)
    before ``pos``. Errors are raised when the walk reaches them, so a caller that
    converts each field before asking for the next one sees the first problem first.
    """

    def __init__(self, data: bytes, path=None):
        self.data = data
        self.path = path
        self.pos = len(BOM) if data.startswith(BOM) else 0
        self.line = 1
        self.column_names: tuple[str, ...] | None = None  # for column_name in errors
        # State of the current record.
        self.record_line = 1
        self.record_done = True
        self.record_end = 0  # offset of its terminator, or the file length at EOF
        self.fields_read = 0

    def error(self, reason, *, line=None, column=None, byte_offset=None):
        name = None
        if column is not None and self.column_names is not None and column <= len(self.column_names):
            name = self.column_names[column - 1]
        return CSVError(
            reason,
            path=self.path,
            line=self.record_line if line is None else line,
            column=column,
            column_name=name,
            byte_offset=byte_offset,
        )

    def at_eof(self) -> bool:
        return self.pos >= len(self.data)

    def start_record(self) -> None:
        """Begins the record at ``pos``; a terminator here is an empty line."""
        self.record_line = self.line
        self.record_done = False
        self.fields_read = 0
        if not self.at_eof() and self.data[self.pos] in (CR, LF):
            raise self.error("expected a record, got an empty line", byte_offset=self.pos)

    def next_field(self) -> Field:
        """Reads one field and the separator after it; sets ``record_done`` at the record's end."""
        data, n = self.data, len(self.data)
        start, line = self.pos, self.line
        index = self.fields_read + 1
        content, offsets = bytearray(), []
        pos = start
        if pos < n and data[pos] == QUOTE:
            pos += 1
            while True:
                if pos >= n:
                    raise self.error(
                        "expected a closing quote, got the end of the file",
                        line=line,
                        column=index,
                        byte_offset=start,
                    )
                b = data[pos]
                if b == QUOTE:
                    if pos + 1 < n and data[pos + 1] == QUOTE:
                        content.append(QUOTE)
                        offsets.append(pos)
                        pos += 2
                        continue
                    pos += 1  # the closing quote
                    break
                if b == LF or (b == CR and not (pos + 1 < n and data[pos + 1] == LF)):
                    self.line += 1  # a terminator inside quotes (the CR of a CRLF waits for its LF)
                content.append(b)
                offsets.append(pos)
                pos += 1
            if pos < n and data[pos] not in (COMMA, CR, LF):
                raise self.error(
                    f"expected ',' or the end of the line after a closing quote, got {bytes([data[pos]])!r}",
                    column=index,
                    byte_offset=pos,
                )
        else:
            while pos < n and data[pos] not in (COMMA, CR, LF):
                if data[pos] == QUOTE:
                    raise self.error(
                        "expected no '\"' inside an unquoted field (quote the whole field)",
                        column=index,
                        byte_offset=pos,
                    )
                content.append(data[pos])
                offsets.append(pos)
                pos += 1
        # pos is at a comma, a terminator, or the end of the file.
        if pos >= n:
            self.record_done, self.record_end = True, n
        elif data[pos] == COMMA:
            pos += 1
        else:
            self.record_done, self.record_end = True, pos
            pos += 2 if data[pos] == CR and pos + 1 < n and data[pos + 1] == LF else 1
            self.line += 1
        self.pos = pos
        self.fields_read = index
        return Field(index, start, line, bytes(content), offsets)

    def read_record(self) -> list[Field]:
        """Reads the whole record at ``pos`` (no field checks beyond the dialect)."""
        self.start_record()
        fields = [self.next_field()]
        while not self.record_done:
            fields.append(self.next_field())
        return fields


def decode_utf8(tok: Tokenizer, field: Field) -> str:
    """The field as text; invalid UTF-8 is an error at its first invalid byte."""
    try:
        return field.content.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = field.content[e.start : e.start + 1]
        raise tok.error(
            f"expected UTF-8 text, got the byte {bad!r}", column=field.index, byte_offset=field.offsets[e.start]
        ) from None


def convert(tok: Tokenizer, field: Field, col: schema.Column):
    """The Python value of one field of column ``col`` (None for a null)."""

    def type_error(expected):
        shown = field.content.decode("utf-8", "backslashreplace")
        return tok.error(f"expected {expected} in {col.name}, got {shown!r}", column=field.index, byte_offset=field.start)

    if field.content == b"" and col.required:
        raise type_error("a value (the column is required)")
    if col.type in (ColumnType.STRING, ColumnType.DICTIONARY):
        return decode_utf8(tok, field)
    if field.content == b"":
        return None
    # latin-1 maps each byte to one character, so non-ASCII bytes simply fail the grammar.
    text = field.content.decode("latin-1")
    if col.type is ColumnType.IMAGE_ID:
        if not schema.IMAGE_ID_PATTERN.fullmatch(text):
            raise type_error("16 lowercase hex digits")
        return int(text, 16)
    if col.type is ColumnType.FLOAT64:
        if not schema.NUMBER_PATTERN.fullmatch(text):
            raise type_error("a decimal number")
        return float(text)
    if not schema.INTEGER_PATTERN.fullmatch(text):
        raise type_error("an integer")
    value = int(text)
    lo, hi = INT_RANGES[col.type]
    if not lo <= value <= hi:
        raise type_error(f"an integer in [{lo}, {hi}]")
    return value


def read_data_record(tok: Tokenizer, columns: list[schema.Column], fields: list[Field] | None = None) -> list:
    """Converts one data record, left to right; ``fields``: a record already tokenized."""
    names = tok.column_names
    values = []
    if fields is None:
        tok.start_record()
        while not tok.record_done:
            if tok.fields_read == len(columns):
                raise tok.error(
                    f"expected {len(columns)} fields, got more", column=len(columns) + 1, byte_offset=tok.pos
                )
            field = tok.next_field()
            values.append(convert(tok, field, columns[field.index - 1]))
    else:
        for field in fields:
            if field.index > len(columns):
                raise tok.error(
                    f"expected {len(columns)} fields, got more", column=len(columns) + 1, byte_offset=field.start
                )
            values.append(convert(tok, field, columns[field.index - 1]))
    if len(values) < len(columns):
        missing = len(values) + 1
        raise tok.error(
            f"expected {len(columns)} fields, got {len(values)} (no {names[missing - 1]})",
            column=missing,
            byte_offset=tok.record_end,
        )
    return values


def read_first_record(tok: Tokenizer) -> tuple[list[Field], list[str]]:
    """Tokenizes the first record, decoding each field as UTF-8 as it comes (header or text data)."""
    tok.start_record()
    fields, names = [], []
    while not tok.record_done:
        field = tok.next_field()
        fields.append(field)
        names.append(decode_utf8(tok, field))
    return fields, names


def read_csv_reference(path_or_bytes, kind: str | None = None):
    """Reads an Open Images CSV file into a ``pyarrow.Table``, slowly and exactly.

    Parameters
    ----------
    path_or_bytes : str, os.PathLike or bytes
        The file, or its bytes (then errors have ``path=None``).
    kind : str, optional
        A kind of :data:`oicore.schema.KINDS`; None sniffs it from the first record.

    Returns
    -------
    pyarrow.Table
        One column per header name, in file order, typed by :func:`oicore.schema.column`
        (every column a string for ``kind="strings"``); schema metadata
        ``{b"oicore.kind": kind, b"oicore.data_offset": first data record's byte offset}``.

    Raises
    ------
    oicore.errors.CSVError
        The bytes break the dialect or a column's grammar; ``line``, ``column``,
        ``column_name`` and ``byte_offset`` say where.
    oicore.errors.UnknownHeaderError
        The first record is no header of the kind (or of any kind, when sniffing).

    Notes
    -----
    Valid input gives the values of ``csv.reader(open(path, newline="",
    encoding="utf-8-sig"), strict=True)`` converted by the column types.

    When the first record may be a header or data (``kind=None`` or
    ``"class_descriptions"``), it is tokenized and UTF-8-decoded completely before
    it is classified, so a dialect or UTF-8 error anywhere in it comes before a
    field-count error; such errors have no ``column_name``.

    Examples
    --------
    >>> t = read_csv_reference(b'/m/01c_0l,"Ducks, geese and ""swans"" "\\r\\n/m/0zvk5,Helmet\\n')
    >>> t.schema.metadata[b"oicore.kind"], t.column("DisplayName").to_pylist()
    (b'class_descriptions', ['Ducks, geese and "swans" ', 'Helmet'])
    """
    import pyarrow as pa

    if isinstance(path_or_bytes, (bytes, bytearray, memoryview)):
        data, path = bytes(path_or_bytes), None
    else:
        path = os.fspath(path_or_bytes)
        with open(path, "rb") as f:
            data = f.read()
    spec = None if kind is None else schema.kind(kind)

    tok = Tokenizer(data, path)
    if tok.at_eof() and not (spec is not None and spec.header in (HeaderRule.NEVER, HeaderRule.OPTIONAL)):
        raise CSVError("expected a header or a record, got an empty file", path=path, line=1, byte_offset=0)

    rows = []
    data_offset = tok.pos  # after the BOM; moves past the header when there is one
    if spec is not None and spec.header is HeaderRule.NEVER:
        names = list(spec.headerless_names)
    elif tok.at_eof():  # a header-less kind asked for by name, and no records
        names = list(spec.headerless_names)
    else:
        fields, first = read_first_record(tok)
        if spec is None:
            match = schema.match_header(first)
            if match is not None:
                spec, names = match[0], first
            elif schema.MID_PATTERN.fullmatch(first[0]) and len(first) in (1, 2):
                spec = schema.kind("class_lists" if len(first) == 1 else "class_descriptions")
                names = list(spec.headerless_names)
            else:
                raise UnknownHeaderError(first, schema.closest_kinds(first), path=path)
        elif spec.name == "strings" or spec.variant_for(first) is not None:
            names = first
        elif spec.header is HeaderRule.OPTIONAL:
            names = list(spec.headerless_names)
        else:
            raise UnknownHeaderError(first, schema.closest_kinds(first), path=path)
        if names is not first:  # the first record is data
            tok.column_names = tuple(names)
            rows.append(read_data_record(tok, _columns(spec, names), fields))
        else:
            data_offset = tok.pos

    tok.column_names = tuple(names)
    columns = _columns(spec, names)
    while not tok.at_eof():
        rows.append(read_data_record(tok, columns))

    arrays = [_array(pa, col, [row[i] for row in rows]) for i, col in enumerate(columns)]
    pa_fields = [pa.field(name, arr.type) for name, arr in zip(names, arrays)]
    meta = {b"oicore.kind": spec.name.encode(), b"oicore.data_offset": str(data_offset).encode()}
    return pa.Table.from_arrays(arrays, schema=pa.schema(pa_fields, metadata=meta))


def _columns(spec: schema.Kind, names) -> list[schema.Column]:
    if spec.name == "strings":
        return [schema.Column(n, ColumnType.STRING) for n in names]
    return [schema.column(n) for n in names]


def _array(pa, col: schema.Column, values: list):
    types = {
        ColumnType.STRING: pa.string(),
        ColumnType.DICTIONARY: pa.string(),
        ColumnType.IMAGE_ID: pa.uint64(),
        ColumnType.FLOAT64: pa.float64(),
        ColumnType.INT8: pa.int8(),
        ColumnType.INT32: pa.int32(),
        ColumnType.INT64: pa.int64(),
    }
    arr = pa.array(values, type=types[col.type])
    if col.type is ColumnType.DICTIONARY:
        arr = arr.dictionary_encode().cast(pa.dictionary(pa.int32(), pa.string()))
    return arr


def iter_records(data: bytes):
    """Yields ``(line, [field, ...])`` for each record of ``data``, fields decoded as UTF-8.

    Only the dialect is checked (no header, no field counts, no types); a leading BOM is
    skipped.

    >>> list(iter_records(b'a,"b\\nc"\\r\\nd\\n'))
    [(1, ['a', 'b\\nc']), (3, ['d'])]
    """
    tok = Tokenizer(bytes(data))
    while not tok.at_eof():
        fields = tok.read_record()
        yield tok.record_line, [decode_utf8(tok, f) for f in fields]
