"""oicore._render: encoded columns back to CSV records, and the byte-exact comparison with the source.

Text fields are checked against Python's csv module, decimals against exact string arithmetic, floats
against repr(), hex IDs against format(); compare() against tables written by csv.writer, as written and
with some records rewritten (other quoting, other terminators), where splicing render() output with the
exceptions must give back the source byte for byte.
"""

import csv
import io
import mmap
import threading

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from oicore import _render as R
from oicore._render import compare, record_end, render

TERMINATORS = [b"\n", b"\r\n", b"\r"]
QUOTING = {0: csv.QUOTE_MINIMAL, 1: csv.QUOTE_ALL}

# Text that needs quoting, escaping, or more than one byte per character.
hostile_text = st.text(
    alphabet=st.sampled_from(list(',"\r\n a\té☃𝄞\x00')) | st.characters(exclude_categories=["Cs"]), max_size=12
)


# ---- references -----------------------------------------------------------------------------------------

def csv_record(fields, quote, terminator):
    """A record as csv.writer writes it. The writer's line terminator is CRLF whatever `terminator` is:
    Python 3.11's csv quotes CR and LF only when they are in its lineterminator, and we always quote both."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n", quoting=QUOTING[quote]).writerow(fields)
    return buf.getvalue()[:-2].encode() + terminator


def csv_field(text, quote):
    """One field as csv.writer writes it inside a record (a lone empty field would be written '""')."""
    if quote == 2:
        return text.encode()
    return csv_record([text, "x"], quote, b"")[: -len(',"x"' if quote == 1 else ",x")]


def decimal_ref(k, e, style):
    digits = str(abs(k)).rjust(e + 1, "0")
    whole, frac = digits[: len(digits) - e], digits[len(digits) - e :]
    if style != "fixed":
        frac = frac.rstrip("0")
    if style == "trim1" and not frac:
        frac = "0"
    return ("-" if k < 0 else "") + whole + ("." + frac if frac else "")


def strings_column(texts, quote=0, nulls=None):
    data = [t.encode() for t in texts]
    offsets = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in data], out=offsets[1:])
    return ("strings", quote, None, nulls, offsets, np.frombuffer(b"".join(data), dtype=np.uint8).copy())


def dict_column(texts, quote=0, nulls=None, extra=()):
    """Codes into a table of the distinct values (plus `extra` unused entries), in first-seen order."""
    table = list(dict.fromkeys(list(texts) + list(extra)))
    index = {t: i for i, t in enumerate(table)}
    codes = np.array([index[t] for t in texts], dtype=np.int32)
    _, _, _, _, offsets, data = strings_column(table)
    return ("dict", quote, codes, nulls, offsets, data)


def column(kind, values, quote=2, nulls=None, aux1=None, aux2=None):
    return (kind, quote, values, nulls, aux1, aux2)


def render_fields(col, n):
    """render() of a one-column table, split back into fields (the values hold no LF)."""
    return render([col], 0, n).split(b"\n")[:-1]


# ---- fields, kind by kind ---------------------------------------------------------------------------------

@pytest.mark.parametrize("quote", [0, 1, 2])
def test_hex64(quote):
    rng = np.random.default_rng(0)
    v = np.concatenate([np.array([0, 1, 0xABC, 2**63, 2**64 - 1], dtype=np.uint64),
                        rng.integers(0, 2**64, 1000, dtype=np.uint64)])
    q = b'"' if quote == 1 else b""
    assert render_fields(column("hex64", v, quote), len(v)) == [q + f"{x:016x}".encode() + q for x in v.tolist()]


@pytest.mark.parametrize("quote", [0, 1, 2])
def test_int(quote):
    v = np.array([0, -12, 7, 2**63 - 1, -(2**63), 10, 99, 100, -100, 12345678901234], dtype=np.int64)
    q = b'"' if quote == 1 else b""
    assert render_fields(column("int", v, quote), len(v)) == [q + str(x).encode() + q for x in v.tolist()]


@pytest.mark.parametrize(
    "k, e, style, text",
    [
        (56025, 6, "fixed", "0.056025"), (-5, 2, "fixed", "-0.05"), (1, 0, "fixed", "1"), (10, 1, "fixed", "1.0"),
        (500, 3, "trim", "0.5"), (1000, 3, "trim", "1"), (0, 2, "trim", "0"), (-1000, 3, "trim", "-1"),
        (1000, 3, "trim1", "1.0"), (500, 3, "trim1", "0.5"), (0, 2, "trim1", "0.0"), (7, 0, "trim1", "7.0"),
        (0, 0, "fixed", "0"), (0, 3, "fixed", "0.000"), (-(2**63), 18, "fixed", "-9.223372036854775808"),
        (2**63 - 1, 0, "trim1", "9223372036854775807.0"), (-1, 18, "trim", "-0.000000000000000001"),
    ],
)
def test_decimal_examples(k, e, style, text):
    assert render_fields(column("decimal", np.array([k], dtype=np.int64), 0, None, e, style), 1) == [text.encode()]


@given(st.lists(st.integers(-(2**63), 2**63 - 1), max_size=20), st.integers(0, 18),
       st.sampled_from(["fixed", "trim", "trim1"]), st.sampled_from([0, 1]))
def test_decimal(ks, e, style, quote):
    q = b'"' if quote == 1 else b""
    col = column("decimal", np.array(ks, dtype=np.int64), quote, None, e, style)
    assert render_fields(col, len(ks)) == [q + decimal_ref(k, e, style).encode() + q for k in ks]


SPECIAL_FLOATS = [
    0.0, -0.0, 1.0, -1.0, 0.7, 0.1, 1 / 3, 9.765625e-05, 1e16, 1e15, 1.5e-07, 0.0001, 0.00001, 1e22, 1e23,
    9.999999999999999e22, 123456789012345678.0, 5e-324, -5e-324, 2.2250738585072014e-308, 2.225073858507201e-308,
    1.7976931348623157e308, 562949953421312.25, 562949953421312.75, 0.3, 2.675, 1e-7, 1234.5, 1e100,
    float("inf"), float("-inf"), float("nan"), 2.0**52, 2.0**53 + 2, 4.35, 0.1 + 0.2,
]


def test_float_specials_and_powers_of_two():
    # At a power of two the gap below is half the gap above: the shortest digits may not be the closest.
    v = SPECIAL_FLOATS + [s * 2.0**k for k in range(-1074, 1024) for s in (1.0, -1.0)]
    v += [s * 10.0**k for k in range(-323, 309) for s in (1.0, -1.0)]
    a = np.array(v, dtype=np.float64)
    assert [f.decode() for f in render_fields(column("float", a, 0), len(a))] == [repr(float(x)) for x in a]


def test_float_random_bits():
    bits = np.random.default_rng(1).integers(0, 2**64, 20000, dtype=np.uint64)
    a = bits.view(np.float64)  # every exponent, subnormals, some NaNs and infinities
    assert [f.decode() for f in render_fields(column("float", a, 0), len(a))] == [repr(float(x)) for x in a]


@given(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.floats(-1e6, 1e6).map(lambda x: round(x, 4)),
                max_size=30), st.sampled_from([0, 1, 2]))
def test_float(values, quote):
    q = b'"' if quote == 1 else b""
    a = np.array(values, dtype=np.float64)
    assert render_fields(column("float", a, quote), len(a)) == [q + repr(float(x)).encode() + q for x in a]


@given(st.lists(hostile_text, max_size=20), st.sampled_from([0, 1]), st.sampled_from(["strings", "dict"]))
def test_text_fields_as_csv_writes_them(texts, quote, kind):
    col = strings_column(texts, quote) if kind == "strings" else dict_column(texts, quote, extra=["unused"])
    other = column("int", np.zeros(len(texts), dtype=np.int64), quote)
    got = render([col, other], 0, len(texts), terminator=b"\r\n")
    assert got == b"".join(csv_record([t, "0"], quote, b"\r\n") for t in texts)
    # Alone in its record, an empty string is written '""', as csv.writer does.
    assert render([col], 0, len(texts), terminator=b"\r") == b"".join(csv_record([t], quote, b"\r") for t in texts)


def test_quote_never_writes_text_raw():
    texts = ["a,b", 'q"', "", "x\ny"]
    for col in (strings_column(texts, 2), dict_column(texts, 2)):
        assert render([col], 0, 4) == b'a,b\nq"\n\nx\ny\n'


@pytest.mark.parametrize("kind", ["strings", "dict"])
@pytest.mark.parametrize("terminator", TERMINATORS)
def test_one_empty_field_is_quoted_like_csv_writer(kind, terminator):
    texts = ["", "a", ""]
    make = strings_column if kind == "strings" else dict_column
    nulls = np.array([0, 0, 1], dtype=np.uint8)
    assert render([make(texts, 0, nulls)], 0, 3, terminator) == terminator.join([b'""', b"a", b""]) + terminator
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([[""], ["a"]])
    assert render([make(texts, 0)], 0, 2) == buf.getvalue().encode()
    # Not with another column, nor when quoting is off.
    assert render([make(texts, 0), make(texts, 0)], 0, 1) == b",\n"
    assert render([make(texts, 2)], 0, 1) == b"\n"


@pytest.mark.parametrize("quote", [0, 1, 2])
@pytest.mark.parametrize("unused", [0, 50])
def test_dictionary_tables_rendered_once_or_row_by_row(quote, unused):
    # A table larger than the rows asked for is not rendered whole: its entries are quoted row by row.
    texts = ["", "a,b", 'q"', "x\r\ny", "plain", "plain", "é"]
    col = dict_column(texts, quote, extra=["unused %d" % k for k in range(unused)])
    for start, stop in ((0, 7), (1, 3), (0, 1), (4, 6)):
        expected = render([strings_column(texts, quote)], start, stop)
        assert render([col], start, stop) == expected
        assert render([col, col], start, stop) == render([strings_column(texts, quote)] * 2, start, stop)
        if start == 0 and quote != 2:  # unquoted, "x\r\ny" is two records
            end, exc = compare([col], stop, b"h\n" + expected, 2)
            assert end == len(expected) + 2 and exc.shape == (0, 3)


def test_bad_raw_table_offsets_are_caught_while_rendering():
    col = ("dict", 0, np.array([0, 1], np.int32), None, np.array([0, 1, 9, 3], np.int64), b"abc")
    assert render([col], 0, 1) == b"a\n"  # 3 entries for 1 row: checked row by row
    with pytest.raises(ValueError, match="column 0: table offsets of the entry at row 1 outside the data"):
        render([col], 0, 2)


def test_nulls_render_empty_and_unquoted_in_every_kind():
    n = 3
    nulls = np.array([1, 0, 1], dtype=np.uint8)
    cols = [
        column("hex64", np.array([1, 2, 3], dtype=np.uint64), 1, nulls),
        strings_column(["a", "b,", "c"], 1, nulls),
        dict_column(["a", "b", "c"], 1, nulls),
        column("decimal", np.array([1, 2, 3], dtype=np.int64), 1, nulls, 1, "trim1"),
        column("int", np.array([1, 2, 3], dtype=np.int64), 1, nulls.astype(bool)),
        column("float", np.array([1.5, 2.5, 3.5], dtype=np.float64), 1, nulls),
    ]
    assert render(cols, 0, n) == b',,,,,\n"0000000000000002","b,","b","0.2","2","2.5"\n,,,,,\n'


def test_null_rows_may_hold_any_code():
    col = ("dict", 0, np.array([0, 99, -1], dtype=np.int32), np.array([0, 1, 1], dtype=np.uint8),
           np.array([0, 1], dtype=np.int64), b"a")
    assert render([col], 0, 3) == b"a\n\n\n"
    end, exc = compare([col], 3, b"a\n\n\n", 0)
    assert end == 4 and exc.shape == (0, 3)


@pytest.mark.parametrize("terminator", TERMINATORS)
def test_render_a_slice_and_long_records(terminator):
    long_text = "x" * 300_000 + ',"'
    texts = ["a", long_text, "b", "c"]
    cols = [strings_column(texts), column("int", np.arange(4, dtype=np.int64))]
    whole = b"".join(csv_record([t, str(i)], 0, terminator) for i, t in enumerate(texts))
    assert render(cols, 0, 4, terminator) == whole
    assert render(cols, 1, 3, terminator) == b"".join(csv_record([t, str(i + 1)], 0, terminator)
                                                      for i, t in enumerate(texts[1:3]))
    assert render(cols, 2, 2, terminator) == b""
    end, exc = compare(cols, 4, whole, 0, terminator)
    assert end == len(whole) and exc.shape == (0, 3)


def test_render_many_rows_grows_its_buffer():
    # The output's first size is guessed from the first rows; these grow longer.
    n = 100_000
    ids = np.arange(n, dtype=np.uint64) * 0x9E3779B97F4A7C15
    texts = ["/m/%d" % (i % 7) + "é" * (i // 2000) for i in range(n)]
    cols = [column("hex64", ids), dict_column(texts), strings_column(texts)]
    expected = b"".join(b"%016x,%s,%s\n" % (int(i), t.encode(), t.encode()) for i, t in zip(ids, texts))
    assert render(cols, 0, n) == expected
    end, exc = compare(cols, n, expected, 0)
    assert end == len(expected) and exc.shape == (0, 3)


# ---- record_end -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "source, pos, end",
    [
        (b"a,b\nc", 0, 4), (b"a,b\r\nc", 0, 5), (b"a,b\rc", 0, 4), (b"a,b\r\n", 0, 5), (b"a,b\r", 0, 4),
        (b"a,b", 0, 3), (b"a\nb\n", 2, 4), (b"x", 0, 1), (b"\n", 0, 1),
        (b'"a\nb",c\nd', 0, 8), (b'"a\r\nb"\r\n', 0, 8), (b'"a\rb"\rz', 0, 6), (b'"""",""\n', 0, 8),
        (b'"a""\n""b"\n', 0, 10), (b'x,"""\n"""\r\n', 0, 11), (b'"",""', 0, 5), (b'"unclosed\n', 0, 10),
        (b'a,"b\r\n""c"\r\nnext', 0, 12), (b'1,"2\n3"', 0, 7),
    ],
)
def test_record_end(source, pos, end):
    assert record_end(source, pos) == end
    assert record_end(memoryview(bytearray(source)), pos) == end


def test_record_end_checks_pos():
    for pos in (-1, 3, 4):
        with pytest.raises(ValueError, match="outside"):
            record_end(b"a\nb", pos)
    with pytest.raises(ValueError):
        record_end(b"", 0)


@given(st.lists(st.lists(hostile_text, min_size=1, max_size=4), min_size=1, max_size=8),
       st.sampled_from(TERMINATORS), st.booleans())
def test_record_end_walks_records_written_by_csv(rows, terminator, last_terminated):
    records = [csv_record(r, 0, terminator) for r in rows]
    if not last_terminated:
        records[-1] = records[-1][: -len(terminator)]
    source = b"".join(records)
    pos = 0
    for r in records:
        assert record_end(source, pos) == pos + len(r)
        pos += len(r)


# ---- compare --------------------------------------------------------------------------------------------------

def test_compare_example():
    col = column("int", np.array([1, 2, 3], dtype=np.int64), 0)
    end, exc = compare([col], 3, b"1\n02\n3\nrest", 0)
    assert end == 7 and exc.dtype == np.int64 and exc.tolist() == [[1, 2, 5]]
    # From an offset (a header before row 0), and nothing to compare.
    assert compare([col], 3, b"h\n1\n2\n3\n", 2)[0] == 8
    end, exc = compare([col], 0, b"abc", 1)
    assert end == 1 and exc.shape == (0, 3)


@st.composite
def text_tables(draw):
    ncols = draw(st.integers(1, 4))
    nrows = draw(st.integers(0, 25))
    rows = draw(st.lists(st.lists(hostile_text, min_size=ncols, max_size=ncols), min_size=nrows, max_size=nrows))
    kinds = draw(st.lists(st.sampled_from(["strings", "dict"]), min_size=ncols, max_size=ncols))
    terminator = draw(st.sampled_from(TERMINATORS))
    return rows, kinds, terminator


def text_columns(rows, kinds, quote=0):
    cols = []
    for c, kind in enumerate(kinds):
        texts = [r[c] for r in rows]
        cols.append(strings_column(texts, quote) if kind == "strings" else dict_column(texts, quote))
    return cols


@given(text_tables(), st.binary(max_size=3), st.binary(max_size=5))
@example(([[""]], ["strings"], b"\n"), b"", b"")
@example(([["a\r"], ["\nb"]], ["dict"], b"\r"), b"h\r", b"")
def test_compare_finds_no_exception_in_what_csv_writes(table, header, suffix):
    rows, kinds, terminator = table
    if terminator == b"\r":
        suffix = suffix.lstrip(b"\n")  # or the last record would end in CRLF
    body = b"".join(csv_record(r, 0, terminator) for r in rows)
    source = header + body + suffix
    end, exc = compare(text_columns(rows, kinds), len(rows), source, len(header), terminator)
    assert exc.shape == (0, 3)
    assert end == len(header) + len(body)
    assert render(text_columns(rows, kinds), 0, len(rows), terminator) == body


MUTATIONS = ["quote_all", "other_terminator", "no_terminator", "quote_empty_as_all"]


@given(text_tables(), st.data())
def test_compare_names_exactly_the_rewritten_records(table, data):
    rows, kinds, terminator = table
    if not rows:
        return
    records, rendered = [], []
    for i, r in enumerate(rows):
        exact = csv_record(r, 0, terminator)
        rec = exact
        how = data.draw(st.sampled_from([None, None] + MUTATIONS), label=f"row {i}")
        if how == "quote_all":
            rec = csv_record(r, 1, terminator)
        elif how == "other_terminator":
            rec = exact[: -len(terminator)] + data.draw(st.sampled_from([t for t in TERMINATORS if t != terminator]))
        elif how == "no_terminator" and i == len(rows) - 1:
            rec = exact[: -len(terminator)]  # then nothing may follow
        elif how == "quote_empty_as_all":
            rec = b",".join(b'""' if f == "" else csv_field(f, 0) for f in r) + terminator
        if not rec or rec in (b"\n", b"\r", b"\r\n"):
            rec = exact  # a record is never empty
        records.append(rec)
        rendered.append(exact)
    suffix = data.draw(st.sampled_from([b"", b"trailing junk", b'"\n']), label="suffix")
    if not records[-1].endswith((b"\n", b"\r")):
        suffix = b""
    source = b"".join(records) + suffix
    cols = text_columns(rows, kinds)
    end, exc = compare(cols, len(rows), source, 0, terminator)

    starts = np.cumsum([0] + [len(r) for r in records])
    expected = [[i, starts[i], starts[i + 1]] for i in range(len(rows)) if records[i] != rendered[i]]
    assert exc.tolist() == expected
    assert end == starts[-1]
    # export: rendered records with the exceptions spliced in, then the suffix.
    spans = {r: (b, e) for r, b, e in exc.tolist()}
    out = b"".join(source[spans[i][0] : spans[i][1]] if i in spans else render(cols, i, i + 1, terminator)
                   for i in range(len(rows)))
    assert out + source[end:] == source


def test_a_bare_cr_terminator_does_not_match_half_a_crlf():
    col = strings_column(["a", "b", "c"])
    source = b"a\rb\r\nc\r"
    end, exc = compare([col], 3, source, 0, b"\r")
    assert end == len(source)
    assert exc.tolist() == [[1, 2, 5]]
    # Nor at the end of the rows, where the rest of the source is not compared.
    end, exc = compare([col], 3, b"a\rb\rc\r\nrest", 0, b"\r")
    assert end == 7 and exc.tolist() == [[2, 4, 7]]


def test_unquoted_text_is_matched_only_on_whole_records():
    # Rendered raw, "x\ny" would match two source records; the record's end is checked.
    col = strings_column(["x\ny", "z"], 2)
    end, exc = compare([col], 2, b"x\ny\nz\n", 0)
    assert exc.tolist()[0] == [0, 0, 2]
    # And where the raw text is a whole record, it matches.
    assert compare([strings_column(["a,b", "z"], 2)], 2, b"a,b\nz\n", 0)[1].shape == (0, 3)


def test_label_like_table_matches_its_csv():
    rng = np.random.default_rng(3)
    n = 5000
    ids = np.sort(rng.integers(0, 2**64, n, dtype=np.uint64))
    sources = ["verification", "crowdsource-verification", "machine"]
    labels = ["/m/0%d" % k for k in range(40)] + ['/m/q"uoted', "a,b"]
    src_codes, label_codes = rng.integers(0, 3, n), rng.integers(0, len(labels), n)
    conf = rng.integers(0, 101, n)
    header = b"ImageID,Source,LabelName,Confidence\r\n"
    body = b"".join(csv_record([f"{i:016x}", sources[s], labels[l], decimal_ref(int(c), 2, "fixed")], 0, b"\r\n")
                    for i, s, l, c in zip(ids.tolist(), src_codes, label_codes, conf))
    cols = [
        column("hex64", ids),
        dict_column([sources[s] for s in src_codes]),
        dict_column([labels[l] for l in label_codes]),
        column("decimal", conf.astype(np.int64), 0, None, 2, "fixed"),
    ]
    source = header + body
    end, exc = compare(cols, n, source, len(header), b"\r\n")
    assert end == len(source) and exc.shape == (0, 3)
    # The same rows behind an mmap (a read-only buffer), from two threads at once.
    with mmap.mmap(-1, len(source)) as m:
        m.write(source)
        ro = memoryview(m).toreadonly()
        results = []
        threads = [threading.Thread(target=lambda: results.append(compare(cols, n, ro, len(header), b"\r\n")))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ro.release()
    assert [r[0] for r in results] == [len(source)] * 2


def test_many_exceptions():
    n = 5000
    texts = ["v%d" % i for i in range(n)]
    cols = [strings_column(texts), column("int", np.arange(n, dtype=np.int64), 0)]
    source = b"".join(csv_record([t, str(i)], 1 if i % 2 else 0, b"\n") for i, t in enumerate(texts))
    end, exc = compare(cols, n, source, 0)
    assert end == len(source)
    assert exc[:, 0].tolist() == list(range(1, n, 2))
    assert all(source[b:e] == csv_record([texts[r], str(r)], 1, b"\n") for r, b, e in exc.tolist())


def test_compare_raises_when_the_source_runs_out():
    col = column("int", np.arange(3, dtype=np.int64), 0)
    with pytest.raises(ValueError, match="row 2"):
        compare([col], 3, b"0\n1\n", 0)
    with pytest.raises(ValueError, match="row 0"):
        compare([col], 1, b"0\n", 2)
    with pytest.raises(ValueError, match="start_offset"):
        compare([col], 1, b"0\n", 3)
    with pytest.raises(ValueError, match="n_rows"):
        compare([col], -1, b"0\n", 0)


# ---- bad arguments ---------------------------------------------------------------------------------------------

def ok_int():
    return column("int", np.arange(3, dtype=np.int64))


@pytest.mark.parametrize(
    "spec, error, match",
    [
        (column("int", np.arange(3, dtype=np.int32)), TypeError, "column 1: values must have dtype int64"),
        (column("int", list(range(3))), TypeError, "column 1: values must be a numpy"),
        (column("hex64", np.arange(3, dtype=np.int64)), TypeError, "dtype uint64"),
        (column("float", np.arange(3, dtype=np.float32)), TypeError, "dtype float64"),
        (column("int", np.arange(2, dtype=np.int64)), ValueError, "column 1: values has 2 entries, needs at least 3"),
        (column("int", np.arange(6, dtype=np.int64)[::2]), ValueError, "C-contiguous"),
        (column("int", np.arange(3, dtype=np.int64), 0, np.zeros(2, np.uint8)), ValueError, "nulls has 2"),
        (column("int", np.arange(3, dtype=np.int64), 0, np.zeros(3, np.int8)), TypeError, "nulls must have dtype"),
        (column("int", np.arange(3, dtype=np.int64), 3), ValueError, "quote must be"),
        (column("int", np.arange(3, dtype=np.int64), 0, None, 1), TypeError, "aux1=None"),
        (column("text", None), ValueError, "kind must be one of"),
        (("int", 0, np.arange(3, dtype=np.int64)), TypeError, "expected a tuple"),
        (column("decimal", np.arange(3, dtype=np.int64), 0, None, 19, "fixed"), ValueError, "scale"),
        (column("decimal", np.arange(3, dtype=np.int64), 0, None, 2, "round"), ValueError, "style"),
        (column("decimal", np.arange(3, dtype=np.int64), 0, None, "2", "fixed"), ValueError, "scale"),
        (strings_column(["a", "b"]), ValueError, "offsets"),
        (("strings", 0, np.zeros(3, np.int64), None, np.zeros(4, np.int64), b""), TypeError, "values=None"),
        (("strings", 0, None, None, np.zeros(4, np.int32), b""), TypeError, "dtype int64"),
        (("strings", 0, None, None, np.zeros(4, np.int64), "abc"), TypeError, "data"),
        (("strings", 0, None, None, np.zeros(4, np.int64), np.zeros(3, np.int8)), TypeError, "uint8"),
        (("dict", 0, np.array([0, 1, 2], np.int32), None, np.array([0, 1, 2], np.int64), b"ab"), ValueError,
         "column 1: code 2 at row 2 outside a table of 2"),
        (("dict", 0, np.array([0, -1, 0], np.int32), None, np.array([0, 1], np.int64), b"a"), ValueError, "code -1"),
        (("dict", 0, np.array([0, 0, 0], np.int32), None, np.array([0, 2], np.int64), b"a"), ValueError,
         "run past"),
        (("dict", 0, np.array([0, 0, 0], np.int32), None, np.array([1, 0], np.int64), b"a"), ValueError,
         "non-decreasing"),
        (("dict", 0, np.array([0, 0, 0], np.int64), None, np.array([0, 1], np.int64), b"a"), TypeError, "int32"),
    ],
)
def test_bad_columns(spec, error, match):
    with pytest.raises(error, match=match):
        render([ok_int(), spec], 0, 3)
    with pytest.raises(error, match=match):
        compare([ok_int(), spec], 3, b"0,0\n" * 3, 0)


def test_bad_string_offsets_are_caught_while_rendering():
    for offsets in ([0, 5, 1, 1], [0, 1, 9, 9], [-1, 0, 0, 0]):
        col = ("strings", 0, None, None, np.array(offsets, np.int64), b"abc")
        with pytest.raises(ValueError, match="column 0: string offsets at row .* outside the data"):
            render([col], 0, 3)
        with pytest.raises(ValueError, match="column 0: string offsets at row .* outside the data"):
            compare([col], 3, b"a\nb\nc\n", 0)
    # Found after some rows were already done.
    offsets = np.arange(1001, dtype=np.int64)
    offsets[700] = 5000
    cols = [column("int", np.arange(1000, dtype=np.int64)), ("strings", 0, None, None, offsets, b"x" * 1000)]
    for call in (lambda: render(cols, 0, 1000), lambda: compare(cols, 1000, render(cols, 0, 699) + b"0,x\n" * 400, 0)):
        with pytest.raises(ValueError, match="column 1: string offsets at row 699 outside the data"):
            call()


def test_bad_calls():
    with pytest.raises(ValueError, match="no columns"):
        render([], 0, 0)
    with pytest.raises(TypeError, match="columns"):
        render(iter([ok_int()]), 0, 3)
    with pytest.raises(TypeError, match="column 0: expected a tuple"):
        render(ok_int(), 0, 3)
    with pytest.raises(ValueError, match="start"):
        render([ok_int()], 2, 1)
    with pytest.raises(ValueError, match="start"):
        render([ok_int()], -1, 1)
    with pytest.raises(ValueError, match="needs at least 4"):
        render([ok_int()], 0, 4)
    for bad in (b"\n\r", b";", b""):
        with pytest.raises(ValueError, match="terminator"):
            render([ok_int()], 0, 3, bad)
        with pytest.raises(ValueError, match="terminator"):
            compare([ok_int()], 3, b"0\n1\n2\n", 0, bad)
    with pytest.raises(TypeError, match="terminator"):
        render([ok_int()], 0, 3, "\n")
    with pytest.raises(TypeError):
        compare([ok_int()], 3, "0\n1\n2\n", 0)


def test_constants():
    assert R.KINDS == ("hex64", "strings", "dict", "decimal", "int", "float")
    assert R.STYLES == ("fixed", "trim", "trim1")
    assert (R.QUOTE_MINIMAL, R.QUOTE_ALL, R.QUOTE_NEVER) == (0, 1, 2)
