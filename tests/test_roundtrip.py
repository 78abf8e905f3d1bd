"""Hypothesis round trips: tables written with Python's csv module read back exactly.

Random text (quotes, commas, CR, LF, NUL, leading spaces, non-BMP characters) goes
into every column of ``kind="strings"`` tables and into the free-text columns of the
real kinds, whose other columns get random valid values in the formats the real
files use. The fast reader also gets a random small block size.

HYPOTHESIS_PROFILE=long runs 2,000 examples per test (see conftest.py).
"""

import csv
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from corpus import canonical, table_rows
from oicore import schema
from oicore.schema import ColumnType, HeaderRule

BOM = b"\xef\xbb\xbf"
BLOCK_SIZES = st.sampled_from([11, 13, 37, 111, None])

# Characters that stress a CSV reader, mixed with any Unicode scalar value.
HOSTILE = st.sampled_from(['"', '""', ",", "\r", "\n", "\r\n", " ", "\x00", "\U0001f600", "é", "\u2028", "\ufeff", "a"])
TEXT = st.lists(st.one_of(HOSTILE, st.characters(codec="utf-8")), max_size=12).map("".join)
MIDS = st.builds(
    "".join, st.tuples(st.sampled_from(["/m/", "/g/"]), st.text("0123456789abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=9))
)
PLAIN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789./:-_; ", max_size=12)

FORMATS = st.fixed_dictionaries(
    {
        "lineterminator": st.sampled_from(["\n", "\r\n"]),
        "quoting": st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
        "final_newline": st.booleans(),
        "bom": st.booleans(),
    }
)


def write_csv(records, lineterminator, quoting, final_newline, bom) -> bytes:
    """The bytes of ``records`` as Python's csv module writes them."""
    if quoting == csv.QUOTE_MINIMAL and lineterminator == "\n" and any("\r" in v for r in records for v in r):
        # Python 3.11's writer quotes a bare CR only when the line terminator holds one;
        # unquoted, the CR would end the record for every reader, csv's own included.
        quoting = csv.QUOTE_ALL
    buf = io.StringIO()
    csv.writer(buf, lineterminator=lineterminator, quoting=quoting).writerows(records)
    text = buf.getvalue()
    if not final_newline:
        text = text[: -len(lineterminator)]
    data = text.encode()
    if bom or data.startswith(BOM):  # a first field starting with U+FEFF needs a real BOM before it
        data = BOM + data
    return data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """One directory for the module; each example overwrites its file there."""
    return tmp_path_factory.mktemp("roundtrip")


def python_csv(data: bytes):
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), strict=True))


# ---------------------------------------------------------------- kind="strings"


@st.composite
def string_tables(draw):
    ncols = draw(st.integers(1, 5))
    names = draw(st.lists(TEXT, min_size=ncols, max_size=ncols))
    rows = draw(st.lists(st.lists(TEXT, min_size=ncols, max_size=ncols), max_size=8))
    return names, rows


@given(table=string_tables(), fmt=FORMATS, block_size=BLOCK_SIZES)
def test_strings_round_trip(reader, workdir, table, fmt, block_size):
    names, rows = table
    data = write_csv([names, *rows], **fmt)
    assert python_csv(data) == [names, *rows]  # the writer wrote what we meant
    path = workdir / "strings.csv"
    path.write_bytes(data)
    out = reader(path, kind="strings", block_size=block_size)
    assert out.schema.metadata[b"oicore.kind"] == b"strings"
    assert out.column_names == names
    assert all(f.type == "string" for f in out.schema)
    assert table_rows(out) == [tuple(r) for r in rows]


# ---------------------------------------------------------------- the real kinds

INT_RANGES = {ColumnType.INT8: 2**7, ColumnType.INT32: 2**31, ColumnType.INT64: 2**63}
NUMBER_TEXT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.floats(-1e6, 1e6).map(lambda x: "%.6f" % x),
    st.floats(width=32, allow_nan=False, allow_infinity=False).map(lambda x: str(np.float32(x))),
    st.floats(allow_nan=False, allow_infinity=False).map(lambda x: f"{x:E}"),
    st.integers(-(10**20), 10**20).map(str),
    st.sampled_from(["0", "1", "1.0", "-0", "-0.0", "0.5", "1.", "00.5", "1e999", "-1e999", "1e-999", "0.000000"]),
).filter(schema.NUMBER_PATTERN.fullmatch)


def cells(col: schema.Column):
    """A strategy of (text in the file, intended value) for one field of ``col``."""
    t = col.type
    if t is ColumnType.IMAGE_ID:
        s = st.integers(0, 2**64 - 1).map(lambda v: (f"{v:016x}", v))
    elif t in (ColumnType.STRING, ColumnType.DICTIONARY):
        if col.free_text:
            text = TEXT
        elif col.name.startswith("Label"):
            text = MIDS
        else:
            text = PLAIN
        s = (text.filter(bool) if col.required else text).map(lambda v: (v, v))
    elif t is ColumnType.FLOAT64:
        s = NUMBER_TEXT.map(lambda v: (v, float(v)))
    else:
        bound = INT_RANGES[t]
        s = st.integers(-bound, bound - 1).map(lambda v: (str(v), v))
        if t is ColumnType.INT8:
            s = st.one_of(st.sampled_from([("-1", -1), ("0", 0), ("1", 1), ("-0", 0)]), s)
    if not col.required and t not in (ColumnType.STRING, ColumnType.DICTIONARY):
        s = st.one_of(st.just(("", None)), s)
    return s


@st.composite
def kind_tables(draw, kind: schema.Kind):
    """(kind= to pass, header names in file order, write a header?, text rows, value rows)."""
    variant = draw(st.sampled_from(kind.variants))
    if kind.header is HeaderRule.NEVER:
        with_header = False
    elif kind.header is HeaderRule.OPTIONAL:
        with_header = draw(st.booleans())
    else:
        with_header = True
    names = list(draw(st.permutations(variant.names))) if with_header else list(kind.headerless_names)
    columns = [schema.column(n) for n in names]
    rows = draw(st.lists(st.tuples(*[cells(c) for c in columns]), min_size=0 if with_header else 1, max_size=4))
    sniff = kind.sniffable and draw(st.booleans())
    return (None if sniff else kind.name), names, with_header, [[t for t, _ in r] for r in rows], [
        tuple(v for _, v in r) for r in rows
    ]


REAL_KINDS = [k for k in schema.KINDS.values() if k.variants]


@pytest.mark.parametrize("kind", REAL_KINDS, ids=[k.name for k in REAL_KINDS])
@given(data=st.data(), fmt=FORMATS, block_size=BLOCK_SIZES)
def test_kind_round_trip(reader, workdir, kind, data, fmt, block_size):
    read_kind, names, with_header, texts, values = data.draw(kind_tables(kind))
    records = [names, *texts] if with_header else texts
    raw = write_csv(records, **fmt)
    assert python_csv(raw) == records
    path = workdir / f"{kind.name}.csv"
    path.write_bytes(raw)
    out = reader(path, kind=read_kind, block_size=block_size)
    assert out.schema.metadata[b"oicore.kind"] == kind.name.encode()
    assert out.column_names == names
    assert canonical(table_rows(out)) == canonical(values)


# ---------------------------------------------------------------- fast == reference on hostile bytes

PIECES = st.sampled_from(
    [b'"', b'""', b",", b"\r", b"\n", b"\r\n", b" ", b"a", b"1", b"-1", b"0.5", b"1e999", b"\xff", b"\xc3", b"\xc3\xa9",
     b"\xef\xbb\xbf", b"\x00", b"/m/01", b"000060e3121c7305", b"000060E3121C7305"]
)
FIRST_LINES = st.sampled_from(
    [
        (None, b"ImageID,Source,LabelName,Confidence\n"),
        (None, (",".join(schema.kind("boxes").variants[1].names) + "\r\n").encode()),
        (None, b"/m/01,x\n"),
        (None, b"/m/01\n"),
        ("strings", b"a,b\n"),
        ("class_descriptions", b"LabelName,DisplayName\r\n"),
        ("class_lists", b"/m/01\n"),
        ("relationship_descriptions", b"at,at\n"),
        # A random first record: the header (or the first data record) is hostile too.
        (None, b""),
        ("strings", b""),
        ("class_descriptions", b""),
        ("class_lists", b""),
        ("relationship_descriptions", b""),
    ]
)


def outcome(read, *args, **kwargs):
    """A comparable summary of a read: the table, or the error and where it points."""
    from oicore.errors import CSVError

    try:
        table = read(*args, **kwargs)
    except CSVError as e:
        return ("error", type(e), e.line, e.column, e.column_name, e.byte_offset)
    # Checkpoints are the fast reader's own (where its blocks start; tests/test_corpus.py checks them).
    meta = {k: v for k, v in table.schema.metadata.items() if k != b"oicore.checkpoints"}
    table = table.replace_schema_metadata(meta)
    return ("table", table.schema, table.schema.metadata, canonical(table_rows(table)))


@given(first=FIRST_LINES, rest=st.lists(PIECES, max_size=30).map(b"".join), block_size=BLOCK_SIZES)
def test_fast_agrees_with_reference(fast_reader, workdir, first, rest, block_size):
    """The fast reader reads or rejects anything as the reference does."""
    from oicore.reference import read_csv_reference

    kind, head = first
    data = head + rest
    path = workdir / "hostile.csv"
    path.write_bytes(data)
    assert outcome(fast_reader, path, kind=kind, block_size=block_size) == outcome(read_csv_reference, data, kind)
