"""Every reader accepts or rejects each case of tests/corpus.py exactly as the spec says.

The fast reader runs each case at several block sizes, so that records, quoted
fields, CRLF pairs and multi-byte characters fall across block boundaries.
"""

import csv
import io
import math
import pickle

import numpy as np
import pytest

from corpus import ANY, CASES, Err, Ok, canonical, table_rows
from oicore import schema
from oicore.errors import CSVError
from oicore.reference import read_csv_reference

OK_CASES = [c for c in CASES if isinstance(c.expected, Ok)]


def arrow_type(column_type):
    import pyarrow as pa

    if column_type is schema.ColumnType.DICTIONARY:
        return pa.dictionary(pa.int32(), pa.string())
    return pa.type_for_alias(column_type.arrow_name)


def check_table(table, case):
    ok = case.expected
    kind = ok.kind or case.kind
    meta = table.schema.metadata
    assert set(meta) - {b"oicore.checkpoints"} == {b"oicore.kind", b"oicore.data_offset"}
    checkpoints = meta.get(b"oicore.checkpoints")
    if checkpoints is not None:  # the fast reader's: (row, byte offset) of record starts, both rising
        points = np.frombuffer(checkpoints, np.int64).reshape(-1, 2)
        if table.num_rows:
            assert points[0].tolist() == [0, int(meta[b"oicore.data_offset"])]
            assert (np.diff(points, axis=0) > 0).all() and points[-1, 0] < table.num_rows
        else:
            assert len(points) == 0
    assert meta[b"oicore.kind"] == kind.encode()
    # The first record after the header starts at data_offset (convert's exact export checks it byte for byte).
    reference = read_csv_reference(case.data, kind=case.kind).schema.metadata
    assert meta[b"oicore.data_offset"] == reference[b"oicore.data_offset"]
    if ok.names is not None:
        assert tuple(table.column_names) == ok.names
    if ok.rows:
        assert table.num_columns == len(ok.rows[0])
    for field in table.schema:
        want = schema.ColumnType.STRING if kind == "strings" else schema.column(field.name).type
        assert field.type == arrow_type(want), field
    assert table.num_rows == len(ok.rows)
    assert canonical(table_rows(table)) == canonical(ok.rows)


def check_error(err, expected: Err, path):
    assert type(err) is expected.cls, repr(err)
    assert isinstance(err, ValueError)
    assert (err.line, err.column) == (expected.line, expected.column), repr(err)
    if expected.byte_offset is not ANY:
        assert err.byte_offset == expected.byte_offset, repr(err)
    if expected.column_name is not ANY:
        assert err.column_name == expected.column_name, repr(err)
    assert err.path == (None if path is None else str(path))
    assert err.reason and str(err)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus(blocked_reader, case, tmp_path):
    path = tmp_path / "case.csv"
    path.write_bytes(case.data)
    if isinstance(case.expected, Err):
        with pytest.raises(CSVError) as info:
            blocked_reader(path, kind=case.kind)
        check_error(info.value, case.expected, path)
    else:
        check_table(blocked_reader(path, kind=case.kind), case)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_reference_from_bytes(case):
    """The reference reader takes bytes too; errors then have no path."""
    from oicore.reference import read_csv_reference

    if isinstance(case.expected, Err):
        with pytest.raises(CSVError) as info:
            read_csv_reference(case.data, kind=case.kind)
        check_error(info.value, case.expected, None)
        again = pickle.loads(pickle.dumps(info.value))
        assert type(again) is type(info.value) and str(again) == str(info.value)
    else:
        check_table(read_csv_reference(case.data, kind=case.kind), case)


@pytest.mark.parametrize("case", OK_CASES, ids=[c.id for c in OK_CASES])
def test_valid_cases_agree_with_python_csv(case):
    """Checks the corpus itself: Python's csv module reads the same records from each valid case.

    The last ``len(rows)`` records are the data; each value must be what the column's
    type makes of csv's text.
    """
    records = list(csv.reader(io.StringIO(case.data.decode("utf-8-sig"), newline=""), strict=True))
    rows = case.expected.rows
    assert len(records) - len(rows) in (0, 1)
    if not records and not rows:  # an empty header-less file: no records, no rows
        return
    names = records[0] if len(records) > len(rows) else [""] * len(rows[0])
    if len(records) > len(rows) and case.expected.names is not None:
        assert tuple(names) == case.expected.names
    for record, row in zip(records[len(records) - len(rows) :], rows):
        assert len(record) == len(row)
        for name, text, value in zip(names, record, row):
            if value is None:
                assert text == ""
            elif isinstance(value, str):
                assert text == value
            elif isinstance(value, float):
                assert math.copysign(1, float(text)) == math.copysign(1, value)
                assert float(text) == value
            elif schema.column(name).type is schema.ColumnType.IMAGE_ID:
                assert int(text, 16) == value
            else:
                assert int(text) == value
