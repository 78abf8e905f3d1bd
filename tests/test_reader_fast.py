"""The fast path of the reader (include/oic_csv_fast.h) and its plumbing in reader.py.

Records without quotes or CRs take a path specialized to label and box
layouts, with word-at-a-time number parsers and batched dictionary lookups;
chunks of a mapped file are cut at their last LF without looking at quotes;
columns are written to per-thread regions. Each must give exactly what the
general tokenizer gives (values, errors and their positions).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oicore import _csv, schema
from oicore.errors import CSVError
from oicore.reader import read_csv

from test_reader import parse_both, same_result

LABEL_TYPES, LABEL_REQUIRED = (1, 2, 2, 3), (True, False, True, True)


def layout(kind, variant):
    names = schema.KINDS[kind].variants[variant].names
    return tuple(int(schema.column(n).type) for n in names), tuple(schema.column(n).required for n in names)


# ---- numbers ------------------------------------------------------------------------

decimals = st.one_of(
    st.from_regex(r"[0-9]\.[0-9]{0,9}", fullmatch=True),  # the shapes box and label files use
    st.from_regex(r"[0-9]", fullmatch=True),
    st.from_regex(r"-?[0-9]{1,18}(\.[0-9]{0,18})?", fullmatch=True),
    st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{0,4})?[eE][-+]?[0-9]{1,3}", fullmatch=True),
    st.floats(allow_nan=False, allow_infinity=False).map(repr).filter(lambda t: "inf" not in t),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(decimals, min_size=1, max_size=30), ncols=st.integers(1, 3))
def test_decimals_equal_python_float_bit_for_bit(values, ncols):
    cells = [v.encode() for v in values]
    cells += [b"0"] * (-len(cells) % ncols)
    rows = [b",".join(cells[i : i + ncols]) for i in range(0, len(cells), ncols)]
    body = b"\n".join(rows) + b"\n"
    fast, general = parse_both(body, (3,) * ncols, (True,) * ncols)
    same_result(fast, general)
    got = np.column_stack([c[0] for c in fast.columns]).ravel()
    want = np.array([float(c) for c in cells])
    assert np.array_equal(got.view(np.int64), want.view(np.int64))


def test_every_one_digit_and_short_fraction_is_exact():
    texts = [b"%d" % d for d in range(10)] + [b"%d.%0*d" % (d, m, f) for d in (0, 1, 9) for m in range(8)
                                               for f in (0, 1, 5, 10**m - 1 if m else 0, 57617 % 10**m if m else 0)]
    texts += [b"0.", b"7."]
    body = b"".join(b"0123456789abcdef,machine,/m/0%d,%s\n" % (k % 5, t) for k, t in enumerate(texts))
    fast, general = parse_both(body, LABEL_TYPES, LABEL_REQUIRED)
    same_result(fast, general)
    assert fast.status == 0
    assert np.array_equal(fast.columns[3][0].view(np.int64), np.array([float(t) for t in texts]).view(np.int64))


# ---- each specialized layout agrees with the general path, on mutated rows --------------

ROWS = {
    "labels": (LABEL_TYPES, LABEL_REQUIRED, b"000002b66c9c498e,machine,/m/0cmf2,0.7"),
    "boxes_v3": (*layout("boxes", 0), b"000002b66c9c498e,xclick,/m/0cmf2,1,0.022673,0.964200,0.071038,0.800546"),
    "boxes_v6": (*layout("boxes", 2), b"000002b66c9c498e,xclick,/m/0cmf2,1,0.0226,0.9642,0.0710,0.8005,"
                                      b"0,1,-1,0,,0.1,0.2,0.3,-1,,0.5,0.6,0.7"),
}


@pytest.mark.parametrize("name", sorted(ROWS))
@settings(max_examples=200, deadline=None)
@given(
    rows=st.integers(1, 8),
    edits=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(list(b',\n-.e0a/\x80\xff 1x"\r'))), max_size=4),
    final_newline=st.booleans(),
)
def test_layouts_match_the_general_path_on_mutated_rows(name, rows, edits, final_newline):
    types, required, row = ROWS[name]
    body = bytearray(b"\n".join(row.replace(b"/m/0cmf2", b"/m/0%d" % k) for k in range(rows)))
    body += b"\n" if final_newline else b""
    for at, byte in edits:
        body[at % len(body)] = byte
    fast, general = parse_both(bytes(body), types, required)
    same_result(fast, general)


@pytest.mark.parametrize("bad_row", [0, 1, 47, 48, 49, 137, 299])
def test_a_bad_new_label_deep_in_a_batch_is_reported_where_the_general_path_reports_it(bad_row):
    rows = [b"%016x,machine,/m/0%d,0.5" % (k, k % 97) for k in range(300)]
    rows[bad_row] = b"%016x,machine,/m/\xff%d,0.5" % (bad_row, bad_row)
    fast, general = parse_both(b"\n".join(rows) + b"\n", LABEL_TYPES, LABEL_REQUIRED)
    same_result(fast, general)
    assert fast.status == _csv.STATUS["UTF8"] and fast.err_line == bad_row and fast.err_column == 3


def test_labels_keep_their_order_of_first_appearance_across_batches():
    rng = np.random.default_rng(3)
    labels = [b"/m/0%x" % k for k in rng.integers(0, 5000, 4000)]
    sources = [b"machine", b"verification", b"crowdsource-verification"]
    body = b"".join(b"%016x,%s,%s,1\n" % (k, sources[k // 7 % 3], l) for k, l in enumerate(labels))
    fast, general = parse_both(body, LABEL_TYPES, LABEL_REQUIRED)
    same_result(fast, general)
    assert fast.columns[2][1] == list(dict.fromkeys(labels))
    assert fast.columns[1][1] == sources


def test_more_dictionary_columns_than_a_batch_holds():
    body = b"".join(b",".join(b"v%d" % ((r + c) % 7) for c in range(60)) + b"\n" for r in range(50))
    fast, general = parse_both(body, (2,) * 60, (False,) * 60)
    same_result(fast, general)
    assert fast.status == 0 and fast.rows == 50


# ---- output regions --------------------------------------------------------------------

def test_columns_written_to_regions_equal_malloced_ones_and_survive_them():
    _, body = b"", b"".join(b"%016x,machine,/m/0%d,0.%d\n" % (k, k % 11, k % 10) for k in range(5000))
    padded = body + bytes(_csv.PAD)
    regions = _csv.output_regions(LABEL_TYPES, LABEL_REQUIRED, 1 << 30)
    assert regions is not None and _csv.output_regions(LABEL_TYPES, LABEL_REQUIRED, 1000) is None
    a = _csv.parse_chunk(padded, 0, len(body), True, LABEL_TYPES, LABEL_REQUIRED, -1, None, regions)
    b = _csv.parse_chunk(padded, 0, len(body), True, LABEL_TYPES, LABEL_REQUIRED, -1, None, regions)
    c = _csv.parse_chunk(padded, 0, len(body), True, LABEL_TYPES, LABEL_REQUIRED)
    same_result(a, c)
    same_result(b, c)
    for r in regions:
        r.trim()  # a second trim, and the read after it, are harmless
    del regions
    same_result(a, c)  # the buffers keep their region alive


def test_short_records_outgrow_the_guessed_capacity_from_a_region():
    # Two optional dictionary columns: ",\n" is shorter than any record the first guess counts on.
    types, required = (2, 2, 5), (False, False, False)
    body = b"a,b,1\n" + b",,\n" * 5000 + b"c,d,2\n"
    padded = body + bytes(_csv.PAD)
    regions = _csv.output_regions(types, required, 1 << 30)
    fast = _csv.parse_chunk(padded, 0, len(body), True, types, required, -1, None, regions)
    general = _csv.parse_chunk(body, 0, len(body), True, types, required)
    same_result(fast, general)
    assert fast.rows == 5002 and fast.columns[2][2] == 5000


# ---- cuts at the last LF, without looking at quotes --------------------------------------

@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("block_size", [64, 500, 4096])
def test_a_cut_inside_a_quoted_field_is_redone(tmp_path, threads, block_size):
    from oicore.reference import read_csv_reference

    rows = [b"a,b"]
    for k in range(400):
        text = b'"line %d\n\nof ""%d""\n"' % (k, k) if k % 3 else b"plain %d" % k
        rows.append(b"%d,%s" % (k, text))
    p = tmp_path / "quoted.csv"
    p.write_bytes(b"\n".join(rows) + b"\n")
    t = read_csv(p, kind="strings", block_size=block_size, threads=threads)
    assert t.equals(read_csv_reference(p, kind="strings"))
    assert t.equals(read_csv(p, kind="strings", block_size=1 << 30, threads=1))


@pytest.mark.parametrize("threads", [1, 2])
def test_an_error_after_a_redone_cut_names_its_line(tmp_path, threads):
    rows = [b"a,b"] + [b'%d,"x\n%d"' % (k, k) for k in range(300)]
    rows[250] = b'249,"x\n2"49"'  # a stray quote after the closing one
    p = tmp_path / "quoted.csv"
    p.write_bytes(b"\n".join(rows) + b"\n")
    with pytest.raises(CSVError) as e:
        read_csv(p, kind="strings", block_size=100, threads=threads)
    with pytest.raises(CSVError) as want:
        read_csv(p, kind="strings", block_size=1 << 30, threads=1)
    assert (e.value.line, e.value.column, e.value.byte_offset) == (want.value.line, want.value.column,
                                                                   want.value.byte_offset)
    assert e.value.line == 2 + 2 * 249  # the record's first line


@pytest.mark.parametrize("threads", [1, 2])
def test_large_label_file_reads_as_in_one_chunk(tmp_path, threads):
    rng = np.random.default_rng(5)
    n = 60000
    ids = np.sort(rng.integers(0, 2**63, n, dtype=np.uint64))
    labels = rng.zipf(1.3, n) % 3000
    conf = rng.choice([b"0", b"1", b"0.5", b"0.25", b"1.0", b"0.123456", b"1e-05", b""], n)
    body = b"".join(b"%016x,%s,/m/0%x,%s\n" % (int(i), b"machine" if l % 5 else b"human", int(l), c)
                    for i, l, c in zip(ids, labels, conf)).replace(b",\n", b",0.75\n")
    p = tmp_path / "labels.csv"
    p.write_bytes(b"ImageID,Source,LabelName,Confidence\n" + body)
    t = read_csv(p, threads=threads, block_size=64 << 10)
    whole = read_csv(p, threads=1, block_size=1 << 30)
    assert t.equals(whole)
    assert t.column("LabelName").combine_chunks().dictionary.equals(whole.column("LabelName").chunk(0).dictionary)
    assert np.array_equal(t.column("ImageID").to_numpy(), ids)


# ---- codes written through a thread's map to the table's -------------------------------------

@pytest.mark.parametrize("quote_at", [None, 5, 150])
def test_codes_through_a_map_and_the_rows_left_to_map(quote_at):
    known = [b"/m/0%d" % k for k in range(40)]
    vocab = _csv.Vocabulary()
    vocab.intern_all(known)  # a thread's vocabulary, from its earlier chunks
    table_of_known = np.arange(1000, 1040, dtype=np.int32)[::-1].copy()  # what the table calls them
    sources = _csv.Vocabulary()
    sources.intern_all([b"machine"])
    rng = np.random.default_rng(7)
    rows = []
    for k in range(300):
        label = known[rng.integers(0, 40)] if k % 4 else b"/m/new%d" % (k % 13)
        source = b"" if k % 37 == 5 else b"machine"  # empty: the general path takes the record
        rows.append(b"%016x,%s,%s,0.5" % (k, source, b'"%s"' % label if k == quote_at else label))
    body = b"\n".join(rows) + b"\n"
    padded = body + bytes(_csv.PAD)
    maps = (None, np.array([7], dtype=np.int32), table_of_known, None)
    res = _csv.parse_chunk(padded, 0, len(body), True, LABEL_TYPES, LABEL_REQUIRED, -1,
                           (None, sources, vocab, None), None, maps)
    assert res.status == 0 and res.rows == 300
    for i, table in ((1, {b"machine": 7}), (2, dict(zip(known, table_of_known.tolist())))):
        codes, new_values, first_code, local_rows = res.columns[i]
        assert local_rows is not None
        # The consumer's part: the new values get table codes, then the rows left are mapped.
        values_now = (sources if i == 1 else vocab).values()
        full = np.array([table.setdefault(v, 2000 + len(table)) for v in values_now], dtype=np.int32)
        _csv.remap_rows(codes, local_rows, full)
        want = [table[r.split(b",")[i].strip(b'"')] for r in rows]
        assert codes.tolist() == want
    with pytest.raises(IndexError):
        _csv.remap_rows(np.zeros(3, np.int32), np.array([1, 1], np.int32), np.arange(5, dtype=np.int32))


@settings(max_examples=200, deadline=None)
@given(
    kinds=st.lists(st.sampled_from(["known", "new", "empty", "quoted", "crlf", "long"]), min_size=1, max_size=120),
)
def test_rows_left_to_map_are_exactly_those_with_the_vocabulary_codes(kinds):
    # Known values get the table's codes at once; new ones, and every value of a record the
    # general path took (an empty or long source, a quote, a CR), are left to map.
    known = [b"/m/0%d" % k for k in range(8)]
    vocab, sources = _csv.Vocabulary(), _csv.Vocabulary()
    vocab.intern_all(known)
    sources.intern_all([b"machine"])
    maps = (None, np.array([100], np.int32), np.arange(500, 508, dtype=np.int32), None)
    rows = []
    for k, kind in enumerate(kinds):
        label = known[k % 8] if kind == "known" else b"/m/new%d" % (k % 5)
        source = {"empty": b"", "long": b"crowdsource-verification"}.get(kind, b"machine")
        label = b'"%s"' % label if kind == "quoted" else label
        rows.append(b"%016x,%s,%s,1%s" % (k, source, label, b"\r" if kind == "crlf" else b""))
    body = b"\n".join(rows) + b"\n"
    fast = _csv.parse_chunk(body + bytes(_csv.PAD), 0, len(body), True, LABEL_TYPES, LABEL_REQUIRED, -1,
                            (None, sources, vocab, None), None, maps)
    general = _csv.parse_chunk(body, 0, len(body), True, LABEL_TYPES, LABEL_REQUIRED)
    assert fast.status == general.status == 0 and fast.rows == general.rows == len(kinds)
    for i, known_values in ((1, [b"machine"]), (2, known)):
        codes, new_values, first_code, local_rows = fast.columns[i]
        mapping = np.concatenate([maps[i], 1000 + np.arange(len(new_values), dtype=np.int32)])
        assert first_code == len(known_values)
        _csv.remap_rows(codes, local_rows, mapping)
        # The general path's codes, in a vocabulary of its own, through the same values.
        g_codes, g_values = general.columns[i][0], general.columns[i][1]
        table = dict(zip(known_values + new_values, mapping.tolist()))
        assert codes.tolist() == [table[g_values[c]] for c in g_codes]
