"""The fast reader's own machinery: chunking, threads, dictionary merging, error positions in late chunks."""

import io

import numpy as np
import pytest

import oicore
from oicore import _csv
from oicore.errors import CSVError
from oicore.reader import read_csv

HEADER = b"ImageID,Source,LabelName,Confidence\n"


def label_rows(n, seed=0, terminator=b"\n"):
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.integers(0, 2**63, n, dtype=np.uint64))
    mids = [b"/m/0%d" % k for k in range(50)] + [b'"/m/q""uoted"']
    rows = [
        b"%016x,%s,%s,%s" % (int(i), b"machine" if k % 3 else b"verification", mids[k % len(mids)], c)
        for k, (i, c) in enumerate(zip(ids, rng.choice([b"0", b"1", b"0.5", b"1.0", b"0.123456"], n)))
    ]
    return ids, HEADER.rstrip(b"\n") + terminator + terminator.join(rows) + terminator


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("block_size", [64, 1000, 4096, None])
def test_chunked_and_threaded_reads_agree(tmp_path, threads, block_size):
    ids, data = label_rows(3000)
    p = tmp_path / "labels.csv"
    p.write_bytes(data)
    whole = read_csv(p, threads=1, block_size=1 << 30)
    t = read_csv(p, threads=threads, block_size=block_size)
    assert t.equals(whole)
    assert np.array_equal(t.column("ImageID").to_numpy(), ids)
    # One dictionary for the whole column, in order of first appearance.
    labels = t.column("LabelName").combine_chunks()
    assert labels.dictionary.to_pylist()[:2] == ["/m/00", "/m/01"]
    assert labels.dictionary.to_pylist().count('/m/q"uoted') == 1
    assert t.schema.metadata[b"oicore.kind"] == b"image_labels"


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("terminator", [b"\n", b"\r\n", b"\r"])
def test_error_in_a_late_chunk_names_the_absolute_line(tmp_path, threads, terminator):
    _, data = label_rows(2000, terminator=terminator)
    lines = data.split(terminator)
    lines[1500] += b",extra"  # one field too many
    p = tmp_path / "labels.csv"
    p.write_bytes(terminator.join(lines))
    with pytest.raises(CSVError) as e:
        read_csv(p, threads=threads, block_size=97)
    assert (e.value.line, e.value.column) == (1501, 5)
    offset = sum(len(x) + len(terminator) for x in lines[:1500])
    assert e.value.byte_offset > offset


def test_reads_a_binary_file_object():
    _, data = label_rows(100)
    t = read_csv(io.BytesIO(data), block_size=50)
    assert t.num_rows == 100


def test_record_longer_than_the_block(tmp_path):
    long_text = "x" * 100_000
    p = tmp_path / "strings.csv"
    p.write_text(f'a,b\n1,"{long_text}\n"\n2,3\n', encoding="utf-8", newline="")
    t = read_csv(p, kind="strings", block_size=13)
    assert t.column("b").to_pylist() == [long_text + "\n", "3"]


def test_find_split_respects_quotes():
    assert _csv.find_split(b'a,"b\nc"\nd') == 8
    assert _csv.find_split(b'a,"b\nc') == 0
    assert _csv.find_split(b"a\r") == 0  # the next byte could be LF
    assert _csv.find_split(b"a\rb") == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown kind 'nope'"):
        read_csv(io.BytesIO(HEADER), kind="nope")
    with pytest.raises(ValueError, match="block_size"):
        read_csv(io.BytesIO(HEADER), block_size=0)
    with pytest.raises(ValueError, match="threads"):
        read_csv(io.BytesIO(HEADER), threads=0)


def test_lazy_public_name():
    assert oicore.read_csv is read_csv


# ---- the fast path (quote- and CR-free chunks) agrees with the general tokenizer ------------

from hypothesis import given, settings
from hypothesis import strategies as st

from oicore import schema

BOX_TYPES = tuple(int(schema.column(n).type) for n in schema.KINDS["boxes"].variants[1].names)
BOX_REQUIRED = tuple(schema.column(n).required for n in schema.KINDS["boxes"].variants[1].names)
BOX_ROW = b"000002b66c9c498e,xclick,/m/0cmf2,1,0.022673031,0.9642005,0.07103825,0.80054647,0,1,-1,0,0"


def parse_both(body: bytes, types, required):
    """(fast, general) results of one chunk: padding enables the fast path."""
    padded = body + b"\0" * _csv.PAD
    fast = _csv.parse_chunk(padded, 0, len(body), True, types, required)
    general = _csv.parse_chunk(body, 0, len(body), True, types, required)
    return fast, general


def same_result(a, b):
    assert (a.status, a.rows, a.pos, a.lines) == (b.status, b.rows, b.pos, b.lines)
    if a.status:
        assert (a.err_line, a.err_column, a.err_offset) == (b.err_line, b.err_column, b.err_offset)
        return
    for ca, cb in zip(a.columns, b.columns):
        if isinstance(ca[1], list):  # dictionaries: (codes, new values, first code)
            assert ca[1] == cb[1] and ca[2] == cb[2]
            assert np.array_equal(ca[0], cb[0])
        elif len(ca) == 3:  # numbers: (values, validity or None, null count)
            assert np.array_equal(ca[0], cb[0], equal_nan=True) and ca[2] == cb[2]
            assert (ca[1] is None) == (cb[1] is None)
            if ca[1] is not None:
                assert np.array_equal(ca[1], cb[1])
        else:  # strings: (offsets, data)
            assert np.array_equal(ca[0], cb[0]) and bytes(ca[1]) == bytes(cb[1])


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(1, 6),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(list(b",\n-.e0a/\x80\xff 1x"))), max_size=4),
    final_newline=st.booleans(),
)
def test_fast_path_matches_general_path_on_mutated_boxes(rows, edits, final_newline):
    body = bytearray(b"\n".join([BOX_ROW] * rows) + (b"\n" if final_newline else b""))
    for at, byte in edits:
        body[at % len(body)] = byte
    fast, general = parse_both(bytes(body), BOX_TYPES, BOX_REQUIRED)
    same_result(fast, general)


def test_fast_path_matches_general_path_on_valid_labels():
    _, data = label_rows(500)
    body = data.split(b"\n", 1)[1].replace(b'"/m/q""uoted"', b"/m/plain")
    types = (1, 2, 2, 3)
    fast, general = parse_both(body, types, (True, False, True, True))
    assert fast.status == 0 and fast.rows == 500
    same_result(fast, general)


def test_fast_image_id_parse_agrees_on_every_byte_at_every_position():
    types, required = (1, 2, 2, 3), (True, False, True, True)
    for pos in range(16):
        for byte in range(256):
            row = bytearray(b"0123456789abcdef,machine,/m/05s2s,0.9\n")
            row[pos] = byte
            fast, general = parse_both(bytes(row), types, required)
            same_result(fast, general)
            if fast.status == 0:
                assert fast.columns[0][0][0] == int(row[:16], 16)


@settings(max_examples=300, deadline=None)
@given(
    ncols=st.integers(1, 4),
    cells=st.lists(st.sampled_from([b"", b"a", b"12", b"0.5", b"/m/01", b"\xc3\xa9", b"\xff", b"x" * 20]), max_size=40),
    seps=st.lists(st.sampled_from([b",", b"\n"]), max_size=40),
    types=st.lists(st.sampled_from([0, 2, 3, 5]), min_size=4, max_size=4),
    final_newline=st.booleans(),
)
def test_fast_path_matches_general_path_on_random_plain_tables(ncols, cells, seps, types, final_newline):
    body = b"".join(c + s for c, s in zip(cells, seps))
    body = body if final_newline or not body.endswith(b"\n") else body[:-1]
    if not body:
        return
    fast, general = parse_both(body, tuple(types[:ncols]), (False,) * ncols)
    same_result(fast, general)


QUOTED_CELLS = [b'"q"', b'""', b'"a,b"', b'"a""b"', b'"x\ny"', b'"\r"', b'"cr\r\n"', b'"tail"x', b'"\xc3\xa9"',
                b'"\xff"', b'"open', b'a"b', b'"' + b"y" * 40 + b'"']


_CELLS = [b"", b"a", b"12", b"0.5", b"/m/01", b"007", b"-3", b"+4", b"2147483648", b"9" * 18, b"9" * 19, b"\xc3\xa9" * 9,
          b"x" * 17 + b"\xff", *QUOTED_CELLS]


@st.composite
def quoted_tables(draw):
    """Records of ncols cells (some quoted, some not plain), a few with a cell too many or too few, ended by
    LF, CRLF or nothing at all (cells run together)."""
    ncols = draw(st.integers(1, 4))
    types = tuple(draw(st.lists(st.sampled_from([0, 0, 2, 3, 4, 5, 6]), min_size=ncols, max_size=ncols)))
    records = []
    for _ in range(draw(st.integers(1, 8))):
        n = ncols + draw(st.sampled_from([0, 0, 0, 0, 1, -1]))
        cells = draw(st.lists(st.sampled_from(_CELLS), min_size=max(n, 1), max_size=max(n, 1)))
        records.append(b",".join(cells) + draw(st.sampled_from([b"\n", b"\n", b"\r\n", b""])))
    return ncols, types, b"".join(records)


@settings(max_examples=500, deadline=None)
@given(table=quoted_tables())
def test_fast_path_matches_general_path_with_quoted_strings(table):
    """Quoted strings (V3 images quote every Author and Title) are taken a field at a time by the fast
    path when plain; doubled quotes, line breaks, CRs, junk after the closing quote, unterminated quotes
    and quotes around other types give the same rows, lines and errors as the general path. So do
    integers (digits only on the fast path) and strings with and without non-ASCII or invalid bytes."""
    ncols, types, body = table
    fast, general = parse_both(body, types, (False,) * ncols)
    same_result(fast, general)


def test_fast_path_matches_general_path_on_every_pair_of_cells():
    """Every pair of the cells above as a two-field record of every pair of types, then a plain record: the
    same rows, values, lines and errors on both paths (exhaustive, where the hypothesis tests sample)."""
    types_all = [0, 2, 3, 4, 5, 6]
    for first in _CELLS:
        for second in _CELLS:
            for end in (b"\n", b"\r\n"):
                body = first + b"," + second + end + b"1,2\n"
                for t1 in types_all:
                    for t2 in types_all:
                        fast, general = parse_both(body, (t1, t2), (False, False))
                        same_result(fast, general)


def test_quoted_strings_between_other_fields_read_as_their_content():
    body = b'000002b66c9c498e,"Jane Doe","A ""quoted"" title",7\n000002b66c9c498f,"","caf\xc3\xa9, \xe2\x80\x94",8\n'
    types, required = (1, 0, 0, 4), (True, False, False, True)
    fast, general = parse_both(body, types, required)
    same_result(fast, general)
    assert fast.status == 0 and fast.rows == 2
    offsets, data = fast.columns[2]
    data = bytes(data)
    assert [data[offsets[i] : offsets[i + 1]] for i in range(2)] == [b'A "quoted" title', "café, —".encode()]


@pytest.mark.parametrize("release", ["v3", "v4", "v5", "v6", "v7"])
def test_every_synthetic_file_reads_as_the_reference_reads_it(tmp_path, release):
    from oicore.reference import read_csv_reference
    from oicore.synthetic import synth

    paths = synth(tmp_path, scale=0.00005, seed=1, release=release)
    kinds_by_name = {"relationships-description": "relationship_descriptions",
                     "attributes-description": "attribute_descriptions"}  # header-less, not sniffable
    read = 0
    for p in paths:
        if p.suffix not in (".csv", ".txt"):
            continue
        kind = next((k for token, k in kinds_by_name.items() if token in p.name), None)
        fast = read_csv(p, kind=kind, block_size=4096)
        assert fast.equals(read_csv_reference(p, kind=kind)), p
        read += 1
    assert read >= 10


def test_private_api_rejects_bad_arguments_instead_of_crashing():
    with pytest.raises(IndexError):
        _csv.Vocabulary().values(-1)
    with pytest.raises(IndexError):
        _csv.Vocabulary().merge(_csv.Vocabulary(), -1)
    with pytest.raises(TypeError):
        _csv.parse_chunk(b"a\n" + bytes(_csv.PAD), 0, 2, True, (2,), (True,), -1, (b"not a vocabulary",))


def test_long_dictionary_values_and_empty_optional_numbers_stay_on_the_fast_path():
    # Exactness is covered by the hypothesis tests above; this pins the values themselves.
    body = b"".join(b"%016x,crowdsource-verification,/m/0%d,,1\n" % (k, k % 3) for k in range(600))
    types = (1, 2, 2, 5, 3)
    fast, general = parse_both(body, types, (True, False, True, False, True))
    same_result(fast, general)
    assert fast.status == 0 and fast.rows == 600
    codes, values, first_code, _ = fast.columns[1]
    assert values == [b"crowdsource-verification"] and first_code == 0 and set(codes.tolist()) == {0}
    assert fast.columns[3][2] == 600  # every IsX-like integer is null


@pytest.mark.parametrize("block_size", [64, 100, 4096])
def test_checkpoints_are_the_starts_of_their_records(tmp_path, block_size):
    """read_csv records (row, byte offset) where each block's first record starts: convert checks long
    parts from there side by side."""
    lines = [b"ImageID,Source,LabelName,Confidence\r\n"] + [f"{i:016x},machine,/m/0{i % 7},0.{i % 10}\n".encode() for i in range(200)]
    path = tmp_path / "labels.csv"
    path.write_bytes(b"\xef\xbb\xbf" + b"".join(lines))
    t = oicore.read_csv(path, block_size=block_size)
    points = np.frombuffer(t.schema.metadata[b"oicore.checkpoints"], np.int64).reshape(-1, 2)
    starts = np.cumsum([3] + [len(x) for x in lines])  # after the BOM: where line k + 1 starts
    assert len(points) >= (2 if block_size < 4096 else 1)
    for row, offset in points.tolist():
        assert offset == starts[row + 1], (row, offset)


def test_a_stray_quote_is_shown_inside_its_whole_field(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_bytes(b'ImageID,Source,LabelName,Confidence\n000026e7ee790996,ver"if,/m/01,1\n')
    with pytest.raises(CSVError) as e:
        read_csv(path)
    assert "inside 'ver\"if'" in str(e.value) and (e.value.line, e.value.column_name) == (2, "Source")
