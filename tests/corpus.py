"""An accept/reject corpus of RFC 4180 and column-type edge cases (data, no tests).

Each case is ``Case(id, data, kind, expected)``: the file's bytes, the ``kind=``
argument, and either ``Ok`` (the table, as Python values per record) or ``Err``
(the exception class and where it points). The rules are those of
``notes/csv_conventions.md``; every expectation here was worked out from the
spec by hand, not by running a reader.

Byte offsets are given as an int, as ``"end"`` (the file length), or as a bytes
marker: the offset of the marker's first occurrence in the case's data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from oicore import schema
from oicore.errors import CSVError, UnknownHeaderError

ANY = object()  # an attribute the case does not pin


@dataclass(frozen=True)
class Ok:
    rows: list  # one tuple of Python values per data record (None for a null)
    names: tuple | None = None  # column names in file order (default: checked only by count)
    kind: str | None = None  # the kind in the table's metadata (default: the kind asked for)


@dataclass(frozen=True)
class Err:
    cls: type
    line: int
    column: int | None
    byte_offset: Any = ANY  # int, "end", a bytes marker, or ANY
    column_name: Any = ANY


class Case(NamedTuple):
    id: str
    data: bytes
    kind: str | None
    expected: Ok | Err


def resolve_offset(data: bytes, byte_offset):
    if byte_offset == "end":
        return len(data)
    if isinstance(byte_offset, bytes):
        return data.index(byte_offset)
    return byte_offset


def table_rows(table) -> list[tuple]:
    """The table's values as one tuple per row (works with duplicate column names)."""
    columns = [c.to_pylist() for c in table.columns]
    return list(zip(*columns)) if columns else []


def canonical(rows) -> list[tuple]:
    """Rows with floats as their repr, so that -0.0 != 0.0 and types must agree (1 != 1.0)."""

    def one(v):
        if isinstance(v, float):
            return ("float", repr(v))
        if isinstance(v, bool) or not isinstance(v, (int, str, type(None))):
            return ("other", type(v).__name__, repr(v))
        return (type(v).__name__, v)

    return [tuple(one(v) for v in row) for row in rows]


def header(kind: str, columns: int | None = None) -> str:
    """The header line of ``kind``'s variant with ``columns`` names (default: its first)."""
    variants = schema.kind(kind).variants
    names = variants[0].names if columns is None else next(v.names for v in variants if len(v.names) == columns)
    return ",".join(names)


BOM = b"\xef\xbb\xbf"
ID = "000060e3121c7305"
IDV = 0x000060E3121C7305
ID2 = "ffffffffffffffff"
IL = header("image_labels")  # ImageID,Source,LabelName,Confidence
IL_ROW = f"{ID},verification,/m/01g317,1"
B13 = header("boxes", 13)
B21 = header("boxes", 21)
IMG12 = header("images", 12)
IMG11 = header("images", 11)
SEG = header("segmentation")
PTS = header("points")
INF = math.inf

CASES: list[Case] = []


def case(id: str, data, kind, expected):
    if isinstance(data, str):
        data = data.encode()
    assert not (isinstance(expected, Ok) and kind is None and expected.kind is None), f"{id}: say the sniffed kind"
    if isinstance(expected, Err) and expected.byte_offset is not ANY:
        expected = Err(
            expected.cls, expected.line, expected.column, resolve_offset(data, expected.byte_offset), expected.column_name
        )
    CASES.append(Case(id, data, kind, expected))


def il(confidence: str) -> str:
    """An image_labels file whose one record has ``confidence`` as its Confidence field."""
    return f"{IL}\n{ID},machine,/m/01,{confidence}\n"


CONF_AT = len(f"{IL}\n{ID},machine,/m/01,")  # offset of that Confidence field


def boxes13(flags: str) -> str:
    """A 13-column boxes file whose five flag fields are ``flags``."""
    return f"{B13}\n{ID},xclick,/m/01,1,0.1,0.2,0.3,0.4,{flags}\n"


FLAGS_AT = len(f"{B13}\n{ID},xclick,/m/01,1,0.1,0.2,0.3,0.4,")  # offset of IsOccluded

# ---------------------------------------------------------------- BOM, terminators, final newline

case("bom-strings", BOM + b"a,b\n1,2\n", "strings", Ok([("1", "2")], ("a", "b")))
case("bom-sniffed-header", BOM + f"{IL}\n{IL_ROW}\n".encode(), None,
     Ok([(IDV, "verification", "/m/01g317", 1.0)], tuple(IL.split(",")), "image_labels"))
case("bom-headerless", BOM + b"/m/01,x\n", None, Ok([("/m/01", "x")], ("LabelName", "DisplayName"), "class_descriptions"))
case("bom-twice-second-is-data", BOM + BOM + b"a\n1\n", "strings", Ok([("1",)], ("\ufeffa",)))
case("bom-not-at-start-is-data", b"a\n\xef\xbb\xbf1\n", "strings", Ok([("\ufeff1",)], ("a",)))
case("lf", "a,b\n1,2\n3,4\n", "strings", Ok([("1", "2"), ("3", "4")], ("a", "b")))
case("crlf", "a,b\r\n1,2\r\n3,4\r\n", "strings", Ok([("1", "2"), ("3", "4")], ("a", "b")))
case("cr", "a,b\r1,2\r3,4\r", "strings", Ok([("1", "2"), ("3", "4")], ("a", "b")))
case("mixed-terminators", "a,b\r\n1,2\r3,4\n5,6\r\n7,8", "strings",
     Ok([("1", "2"), ("3", "4"), ("5", "6"), ("7", "8")], ("a", "b")))
case("lf-cr-is-two-terminators", "a\n1\n\r2\n", "strings", Err(CSVError, 3, None, 4))
case("no-final-newline", "a,b\n1,2", "strings", Ok([("1", "2")], ("a", "b")))
case("no-final-newline-empty-last-field", "a,b\n1,", "strings", Ok([("1", "")], ("a", "b")))
case("no-final-newline-quoted", 'a,b\n1,"2"', "strings", Ok([("1", "2")], ("a", "b")))
case("final-cr", "a,b\n1,2\r", "strings", Ok([("1", "2")], ("a", "b")))
case("header-only-lf", "a,b\n", "strings", Ok([], ("a", "b")))
case("header-only-no-newline", "a,b", "strings", Ok([], ("a", "b")))
case("header-only-crlf", "a,b\r\n", "strings", Ok([], ("a", "b")))
case("header-only-sniffed", IL + "\n", None, Ok([], tuple(IL.split(",")), "image_labels"))
case("header-only-boxes-21", B21, None, Ok([], tuple(B21.split(",")), "boxes"))

# ---------------------------------------------------------------- quoted fields

case("quoted-doubled-quotes-then-extra-field", 'a,b\n"x""y","""",\n', "strings", Err(CSVError, 2, 3, 16, None))
case("quoted-doubled-quotes-ok", 'a,b\n"x""y",""""\n', "strings", Ok([('x"y', '"')], ("a", "b")))
case("quoted-comma", 'a,b\n",",","\n', "strings", Ok([(",", ",")], ("a", "b")))
case("quoted-empty", 'a,b\n"",""\n', "strings", Ok([("", "")], ("a", "b")))
case("quoted-single-field-empty", 'a\n""\n', "strings", Ok([("",)], ("a",)))
case("quoted-lf", 'a,b\n"x\ny",z\n', "strings", Ok([("x\ny", "z")], ("a", "b")))
case("quoted-crlf", 'a,b\r\n"x\r\ny",z\r\n', "strings", Ok([("x\r\ny", "z")], ("a", "b")))
case("quoted-cr", 'a,b\r"x\ry",z\r', "strings", Ok([("x\ry", "z")], ("a", "b")))
case("quoted-only-terminators", 'a,b\n"\r\n","\n\r"\n', "strings", Ok([("\r\n", "\n\r")], ("a", "b")))
case("quoted-cr-before-closing-quote", 'a\n"x\r"\n"y"\n', "strings", Ok([("x\r",), ("y",)], ("a",)))
case("quoted-header-names", '"a,1","b""2"\n1,2\n', "strings", Ok([("1", "2")], ("a,1", 'b"2')))
case("quoted-spaces-kept", 'a,b\n" x "," "\n', "strings", Ok([(" x ", " ")], ("a", "b")))
case("unquoted-spaces-kept", "a,b\n x , \n", "strings", Ok([(" x ", " ")], ("a", "b")))
case("nul-bytes", 'a,b\n\x00x,"y\x00"\n', "strings", Ok([("\x00x", "y\x00")], ("a", "b")))
case("non-ascii", "a,b\nSpätzle,\U0001F600\n", "strings", Ok([("Spätzle", "\U0001F600")], ("a", "b")))
case("quoted-numbers", f'{IL}\n"{ID}","verification","/m/01g317","0.5"\n', None,
     Ok([(IDV, "verification", "/m/01g317", 0.5)], kind="image_labels"))
case("quoted-flags", boxes13('"1","0","-1","",""'), None, Ok([(IDV, "xclick", "/m/01", 1.0, 0.1, 0.2, 0.3, 0.4, 1, 0, -1, None, None)], kind="boxes"))

# Lines count the terminators inside quotes (CRLF once); errors point at the record's line.
case("line-after-embedded-lf", 'h\n"a\nb"\n"c"x\n', "strings", Err(CSVError, 4, 1, b"x\n"))
case("line-after-embedded-crlf", 'h\n"a\r\nb"\n,\n', "strings", Err(CSVError, 4, 2, 10))
case("line-after-embedded-cr-cr", 'h\n"a\r\rb"\n,\n', "strings", Err(CSVError, 5, 2, 10))
case("line-after-embedded-lf-cr", 'h\n"a\n\rb"\r\n,\r\n', "strings", Err(CSVError, 5, 2, len('h\n"a\n\rb"\r\n,')))
case("line-is-record-start-not-field", 'a,b\n"x\ny","q"z\n', "strings", Err(CSVError, 2, 2, b"z"))

# ---------------------------------------------------------------- dialect errors

case("stray-quote-unquoted", 'a,b\n1,x"y\n', "strings", Err(CSVError, 2, 2, b'"', "b"))
case("stray-quote-end-of-field", 'a,b\n1,x"\n', "strings", Err(CSVError, 2, 2, b'"', "b"))
case("stray-quote-in-header", 'a"b,c\n', "strings", Err(CSVError, 1, 1, 1))
case("stray-quote-sniffed-header", 'ImageID,So"urce\n', None, Err(CSVError, 1, 2, b'"'))
case("text-after-closing-quote", 'a,b\n1,"x"y\n', "strings", Err(CSVError, 2, 2, b"y\n", "b"))
case("space-after-closing-quote", 'a,b\n"x" ,1\n', "strings", Err(CSVError, 2, 1, b" ,"))
case("space-after-empty-quoted", 'a,b\n"" "",1\n', "strings", Err(CSVError, 2, 1, 6))
case("eof-in-quotes", 'a,b\nx,"abc\ndef', "strings", Err(CSVError, 2, 2, b'"'))
case("eof-in-quotes-opened-on-later-line", 'h1,h2\n"a\nb","c\nd', "strings", Err(CSVError, 3, 2, b'"c'))
case("eof-in-quotes-after-crlf-in-earlier-field", 'h1,h2\r\n"a\r\nb","c\r\nd\r\n', "strings",
     Err(CSVError, 3, 2, b'"c'))
case("eof-in-quotes-doubled-quote-at-end", 'a\n"x""', "strings", Err(CSVError, 2, 1, 2))
case("eof-in-quotes-lone-quote", 'a\n"', "strings", Err(CSVError, 2, 1, 2))
case("eof-in-quotes-header", '"a,b\n1,2\n', "strings", Err(CSVError, 1, 1, 0))
case("eof-in-quotes-sniffed", '/m/01,"x\n', None, Err(CSVError, 1, 2, 6))

case("empty-line-middle", "a\n1\n\n2\n", "strings", Err(CSVError, 3, None, 4))
case("empty-line-middle-crlf", "a\r\n1\r\n\r\n2\r\n", "strings", Err(CSVError, 3, None, 6))
case("empty-line-after-header", "a\n\n1\n", "strings", Err(CSVError, 2, None, 2))
case("empty-line-lf-lf-at-end", "a\n1\n\n", "strings", Err(CSVError, 3, None, 4))
case("empty-line-crlf-crlf-at-end", "a\r\n1\r\n\r\n", "strings", Err(CSVError, 3, None, 6))
case("empty-line-cr-cr-at-end", "a\r1\r\r", "strings", Err(CSVError, 3, None, 4))
case("empty-line-only-lf", "\n", "strings", Err(CSVError, 1, None, 0))
case("empty-line-only-crlf", "\r\n", None, Err(CSVError, 1, None, 0))
case("empty-line-bom-then-lf", BOM + b"\n", "strings", Err(CSVError, 1, None, 3))
case("empty-line-first-then-data", "\na\n", "strings", Err(CSVError, 1, None, 0))
case("empty-line-class-lists", "/m/01\n\n/m/02\n", None, Err(CSVError, 2, None, 6))
case("empty-line-header-only-then-blank", f"{IL}\n\n", None, Err(CSVError, 2, None, len(IL) + 1))

case("too-many-fields", "a,b\n1,2,3\n", "strings", Err(CSVError, 2, 3, 8, None))
case("too-many-fields-empty-extra", "a,b\n1,2,\n", "strings", Err(CSVError, 2, 3, 8, None))
case("too-many-fields-at-eof", "a,b\n1,2,", "strings", Err(CSVError, 2, 3, 8, None))
case("too-many-fields-before-stray-quote", 'a,b\n1,2,x"y\n', "strings", Err(CSVError, 2, 3, 8, None))
case("too-many-fields-quoted-extra", 'a,b\n1,2,"x\n', "strings", Err(CSVError, 2, 3, 8, None))
case("too-few-fields", "a,b,c\n1,2\n", "strings", Err(CSVError, 2, 3, 9, "c"))
case("too-few-fields-crlf", "a,b,c\r\n1\r\n", "strings", Err(CSVError, 2, 2, 8, "b"))
case("too-few-fields-at-eof", "a,b,c\n1", "strings", Err(CSVError, 2, 2, "end", "b"))
case("too-few-fields-typed", f"{IL}\n{ID},machine,/m/01\n", None, Err(CSVError, 2, 4, len(IL) + 1 + len(ID) + 14, "Confidence"))
case("too-few-fields-after-embedded-newline", 'a,b,c\n"x\ny",z\n', "strings",
     Err(CSVError, 2, 3, len('a,b,c\n"x\ny",z'), "c"))

# ---------------------------------------------------------------- UTF-8

case("utf8-invalid-string-column", b"a,b\nx,y\xffz\n", "strings", Err(CSVError, 2, 2, 7, "b"))
case("utf8-invalid-header", b"a,\xff\n", "strings", Err(CSVError, 1, 2, 2))
case("utf8-invalid-sniffed-header", b"\xff\n", None, Err(CSVError, 1, 1, 0))
case("utf8-invalid-after-doubled-quote", b'a,b\nx,"""\xff"\n', "strings", Err(CSVError, 2, 2, b"\xff", "b"))
case("utf8-truncated-before-extra-field", b"a,b\nx,\xc3,\n", "strings", Err(CSVError, 2, 2, b"\xc3", "b"))
case("utf8-truncated-sequence", b"a,b\nx,ab\xc3\n", "strings", Err(CSVError, 2, 2, b"\xc3", "b"))
case("utf8-truncated-before-ascii", b"a,b\nx,\xe2\x82z\n", "strings", Err(CSVError, 2, 2, b"\xe2", "b"))
case("utf8-surrogate", b"a,b\nx,\xed\xa0\x80\n", "strings", Err(CSVError, 2, 2, b"\xed", "b"))
case("utf8-overlong", b"a,b\nx,\xc0\xaf\n", "strings", Err(CSVError, 2, 2, b"\xc0", "b"))
case("utf8-above-max", b"a,b\nx,\xf4\x90\x80\x80\n", "strings", Err(CSVError, 2, 2, b"\xf4", "b"))
case("utf8-dictionary-column", f"{IL}\n{ID},machine,/m/0".encode() + b"\xff,1\n", None,
     Err(CSVError, 2, 3, b"\xff", "LabelName"))
case("utf8-invalid-in-number-is-type-error", il("0.").encode()[:-1] + b"\xff\n", None,
     Err(CSVError, 2, 4, CONF_AT, "Confidence"))
case("utf8-valid-in-number-is-type-error", il("１"), None, Err(CSVError, 2, 4, CONF_AT, "Confidence"))
case("utf8-headerless-display-name", b"/m/01,a\xffb\n", None, Err(CSVError, 1, 2, 7))
case("utf8-valid-4-byte", "a\n\U0010FFFF\U0001F600\n", "strings", Ok([("\U0010FFFF\U0001F600",)], ("a",)))

# ---------------------------------------------------------------- ImageID

for name, text in [
    ("uppercase", "000060E3121C7305"),
    ("15-chars", ID[:15]),
    ("17-chars", ID + "0"),
    ("non-hex", "000060e3121c730g"),
    ("0x-prefix", "0x0060e3121c7305"),
    ("leading-space", " " + ID[1:]),
    ("trailing-space", ID[1:] + " "),
    ("decimal", "12345"),
]:
    case(f"image-id-{name}", f"{IL}\n{text},machine,/m/01,1\n", None, Err(CSVError, 2, 1, len(IL) + 1, "ImageID"))
case("image-id-uppercase-quoted", f'{IL}\n{IL_ROW}\n"000060E3121C7305",machine,/m/01,1\n', None,
     Err(CSVError, 3, 1, b'"0', "ImageID"))
case("image-id-empty", f"{IL}\n,machine,/m/01,1\n", None, Err(CSVError, 2, 1, len(IL) + 1, "ImageID"))
case("image-id-empty-quoted", f'{IL}\n"",machine,/m/01,1\n', None, Err(CSVError, 2, 1, len(IL) + 1, "ImageID"))
case("image-id-extremes", f"{IL}\n0000000000000000,,/m/01,1\n{ID2},,/m/01,0\n", None,
     Ok([(0, "", "/m/01", 1.0), (2**64 - 1, "", "/m/01", 0.0)], kind="image_labels"))
case("image-id-points-spelling", f"{PTS}\n{ID},0.5,0.5,/m/01,yes,ih,1,0,0,hello\n", None,
     Ok([(IDV, 0.5, 0.5, "/m/01", "yes", "ih", 1, 0, 0, "hello")], tuple(PTS.split(",")), "points"))
case("image-id-points-bad", f"{PTS}\n{ID.upper()},0.5,0.5,/m/01,yes,ih,1,0,0,x\n", None,
     Err(CSVError, 2, 1, len(PTS) + 1, "ImageId"))

# ---------------------------------------------------------------- numbers (Confidence: float64, required)

for name, text in [
    ("leading-dot", ".5"),
    ("exponent-without-digits", "1e"),
    ("exponent-sign-only", "1e+"),
    ("plus-sign", "+1"),
    ("leading-space", " 1"),
    ("trailing-space", "1 "),
    ("comma-decimal-quoted", '"1,0"'),
    ("nan", "nan"),
    ("NaN", "NaN"),
    ("inf", "inf"),
    ("minus-inf", "-inf"),
    ("infinity", "Infinity"),
    ("hex", "0x1"),
    ("underscore", "1_0"),  # float() accepts it; the grammar does not
    ("two-dots", "1.5."),
    ("double-minus", "--1"),
    ("minus-only", "-"),
    ("dot-only", "."),
    ("minus-dot", "-.5"),
    ("exponent-only", "e5"),
    ("arabic-digit", "\u0661"),  # float() accepts it; the grammar does not
    ("quoted-space", '" 1"'),
    ("empty", ""),
    ("empty-quoted", '""'),
]:
    case(f"confidence-{name}", il(text), None, Err(CSVError, 2, 4, CONF_AT, "Confidence"))

for name, text, value in [
    ("int", "1", 1.0),
    ("zero", "0", 0.0),
    ("one-point-zero", "1.0", 1.0),
    ("trailing-dot", "1.", 1.0),
    ("minus-zero", "-0", -0.0),
    ("minus-zero-point", "-0.0", -0.0),
    ("six-decimals", "0.000000", 0.0),
    ("float32-shortest", "0.022673031", 0.022673031),
    ("leading-zeros", "00.5", 0.5),
    ("upper-exponent", "1E5", 100000.0),
    ("exponent-plus", "1e+5", 100000.0),
    ("exponent-minus", "2.5e-3", 0.0025),
    ("overflow-to-inf", "1e999", INF),
    ("overflow-to-minus-inf", "-1e999", -INF),
    ("underflow-to-zero", "1e-999", 0.0),
    ("big-integer", "123456789012345678901234567890", 1.2345678901234568e29),
    ("round-half-even", "0.1000000000000000055511151231257827", 0.1),
    ("many-digits", "3.14159265358979323846264338327950288", 3.141592653589793),
    ("quoted", '"0.5"', 0.5),
    ("negative", "-0.25", -0.25),
]:
    case(f"confidence-ok-{name}", il(text), None, Ok([(IDV, "machine", "/m/01", value)], kind="image_labels"))

# ---------------------------------------------------------------- empty fields: required, optional

case("empty-optional-dictionary", f"{IL}\n{ID},,/m/01,1\n", None, Ok([(IDV, "", "/m/01", 1.0)], kind="image_labels"))
case("empty-required-dictionary", f"{IL}\n{ID},machine,,1\n", None,
     Err(CSVError, 2, 3, len(IL) + 1 + len(ID) + 9, "LabelName"))
case("empty-required-dictionary-quoted", f'{IL}\n{ID},machine,"",1\n', None,
     Err(CSVError, 2, 3, b'""', "LabelName"))
case("empty-required-at-eof", f"{IL}\n{ID},machine,/m/01,", None, Err(CSVError, 2, 4, "end", "Confidence"))
case("empty-required-before-too-few", f"{IL}\n,machine\n", None, Err(CSVError, 2, 1, len(IL) + 1, "ImageID"))
case("empty-flags-are-null", boxes13(",,,,"), None,
     Ok([(IDV, "xclick", "/m/01", 1.0, 0.1, 0.2, 0.3, 0.4, None, None, None, None, None)], kind="boxes"))
case("empty-box-coordinate", f"{B13}\n{ID},xclick,/m/01,1,0.1,,0.3,0.4,0,0,0,0,0\n", None,
     Err(CSVError, 2, 6, len(B13) + 1 + len(ID) + len(",xclick,/m/01,1,0.1,"), "XMax"))
case("empty-xclicks-are-null", f"{B21}\n{ID},activemil,/m/01,1,0,1,0,1,0,0,0,0,0,,,,,,,,\n"
     f"{ID},xclick,/m/01,1,0,1,0,1,-1,-1,-1,-1,-1,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8\n", None,
     Ok([(IDV, "activemil", "/m/01", 1.0, 0.0, 1.0, 0.0, 1.0, 0, 0, 0, 0, 0) + (None,) * 8,
         (IDV, "xclick", "/m/01", 1.0, 0.0, 1.0, 0.0, 1.0, -1, -1, -1, -1, -1, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)],
        kind="boxes"))
_IMG_ROW = f'{ID},train,https://a/b.jpg,https://c,https://l,https://p,"Jo, ""J""",T,{{size}},md5==,,{{rotation}}'
case("images-empty-rotation-and-size", f"{IMG12}\n" + _IMG_ROW.format(size="", rotation="") + "\n"
     + _IMG_ROW.format(size="123", rotation="90.0") + "\n", None,
     Ok([(IDV, "train", "https://a/b.jpg", "https://c", "https://l", "https://p", 'Jo, "J"', "T", None, "md5==", "", None),
         (IDV, "train", "https://a/b.jpg", "https://c", "https://l", "https://p", 'Jo, "J"', "T", 123, "md5==", "", 90.0)],
        tuple(IMG12.split(",")), "images"))
case("images-11-columns", f"{IMG11}\n{ID},test,u,l,c,p,,,0,m,t\n", None,
     Ok([(IDV, "test", "u", "l", "c", "p", "", "", 0, "m", "t")], tuple(IMG11.split(",")), "images"))
case("images-size-int64-max", f"{IMG11}\n{ID},test,u,l,c,p,,,9223372036854775807,m,t\n", None,
     Ok([(IDV, "test", "u", "l", "c", "p", "", "", 2**63 - 1, "m", "t")], kind="images"))
case("images-size-int64-overflow", f"{IMG11}\n{ID},test,u,l,c,p,,,9223372036854775808,m,t\n", None,
     Err(CSVError, 2, 9, b"922", "OriginalSize"))
case("images-size-float", f"{IMG11}\n{ID},test,u,l,c,p,,,1.0,m,t\n", None, Err(CSVError, 2, 9, b"1.0", "OriginalSize"))
_SEG_ROW = f"{ID}_m01_0a1b2c3d.png,{ID},/m/01,0a1b2c3d,0.1,0.2,0.3,0.4,{{iou}},0.1 0.2 1;0.3 0.4 0"
case("segmentation-empty-iou", f"{SEG}\n" + _SEG_ROW.format(iou="") + "\n" + _SEG_ROW.format(iou="0.86864") + "\n", None,
     Ok([(f"{ID}_m01_0a1b2c3d.png", IDV, "/m/01", "0a1b2c3d", 0.1, 0.2, 0.3, 0.4, None, "0.1 0.2 1;0.3 0.4 0"),
         (f"{ID}_m01_0a1b2c3d.png", IDV, "/m/01", "0a1b2c3d", 0.1, 0.2, 0.3, 0.4, 0.86864, "0.1 0.2 1;0.3 0.4 0")],
        kind="segmentation"))
case("points-empty-votes", f"{PTS}\n{ID},0.5,0.5,/m/01,,,,,,\n", None,
     Ok([(IDV, 0.5, 0.5, "/m/01", "", "", None, None, None, "")], kind="points"))
case("points-empty-x", f"{PTS}\n{ID},,0.5,/m/01,,,,,,\n", None, Err(CSVError, 2, 2, len(PTS) + 18, "X"))
case("points-votes-int32-range", f"{PTS}\n{ID},0,1,/m/01,,,2147483647,-2147483648,0,\n", None,
     Ok([(IDV, 0.0, 1.0, "/m/01", "", "", 2**31 - 1, -(2**31), 0, "")], kind="points"))
case("points-votes-int32-overflow", f"{PTS}\n{ID},0,1,/m/01,,,2147483648,0,0,\n", None,
     Err(CSVError, 2, 7, b"2147483648", "YesVotes"))

# ---------------------------------------------------------------- integers (boxes flags: int8, optional)

case("int8-minus-one", boxes13("-1,-1,-1,-1,-1"), None, Ok([(IDV, "xclick", "/m/01", 1.0, 0.1, 0.2, 0.3, 0.4, -1, -1, -1, -1, -1)], kind="boxes"))
case("int8-minus-zero", boxes13("-0,0,00,1,01"), None, Ok([(IDV, "xclick", "/m/01", 1.0, 0.1, 0.2, 0.3, 0.4, 0, 0, 0, 1, 1)], kind="boxes"))
case("int8-extremes", boxes13("127,-128,0,0,0"), None, Ok([(IDV, "xclick", "/m/01", 1.0, 0.1, 0.2, 0.3, 0.4, 127, -128, 0, 0, 0)], kind="boxes"))
case("int8-128", boxes13("128,0,0,0,0"), None, Err(CSVError, 2, 9, FLAGS_AT, "IsOccluded"))
case("int8-minus-129", boxes13("0,-129,0,0,0"), None, Err(CSVError, 2, 10, FLAGS_AT + 2, "IsTruncated"))
case("int8-huge", boxes13("0,0,99999999999999999999999,0,0"), None, Err(CSVError, 2, 11, FLAGS_AT + 4, "IsGroupOf"))
case("int8-one-point-zero", boxes13("1.0,0,0,0,0"), None, Err(CSVError, 2, 9, FLAGS_AT, "IsOccluded"))
case("int8-plus", boxes13("+1,0,0,0,0"), None, Err(CSVError, 2, 9, FLAGS_AT, "IsOccluded"))
case("int8-space", boxes13("0,0,0,0, 1"), None, Err(CSVError, 2, 13, FLAGS_AT + 8, "IsInside"))
case("int8-exponent", boxes13("1e0,0,0,0,0"), None, Err(CSVError, 2, 9, FLAGS_AT, "IsOccluded"))
case("int8-quoted-bad", boxes13('0,"x",0,0,0'), None, Err(CSVError, 2, 10, FLAGS_AT + 2, "IsTruncated"))
case("float-column-takes-integers", f"{B13}\n{ID},xclick,/m/01,1,0,1,0,1,0,0,0,0,0\n", None,
     Ok([(IDV, "xclick", "/m/01", 1.0, 0.0, 1.0, 0.0, 1.0, 0, 0, 0, 0, 0)], kind="boxes"))

# ---------------------------------------------------------------- first problem wins, left to right

case("type-error-before-stray-quote", f'{IL}\nXYZ,machine,a"b,1\n', None, Err(CSVError, 2, 1, len(IL) + 1, "ImageID"))
case("stray-quote-before-type-error", f'{IL}\n{ID},ma"chine,/m/01,x\n', None, Err(CSVError, 2, 2, b'"', "Source"))
case("type-error-before-too-many", f"{IL}\n{ID},machine,/m/01,x,extra\n", None, Err(CSVError, 2, 4, CONF_AT, "Confidence"))
case("type-error-before-eof-in-quotes", f'{IL}\nXYZ,machine,"/m/01', None, Err(CSVError, 2, 1, len(IL) + 1, "ImageID"))
case("utf8-error-before-type-error", f"{IL}\n{ID},".encode() + b"\xff,/m/01,x\n", None,
     Err(CSVError, 2, 2, b"\xff", "Source"))
case("first-bad-record-wins", f"{IL}\n{IL_ROW}\n{IL_ROW},x\n{ID.upper()},machine,/m/01,1\n", None,
     Err(CSVError, 3, 5, len(f"{IL}\n{IL_ROW}\n{IL_ROW},"), None))

# The first record is processed left to right too: as data when the kind has no header,
# field by field (tokenized, then decoded) when it is a header or may be one.
case("first-record-never-kind-empty-before-stray-quote", ',x"\n', "class_lists", Err(CSVError, 1, 1, 0, "LabelName"))
case("first-record-never-kind-too-many-before-stray-quote", 'at,at,a"t\n', "relationship_descriptions",
     Err(CSVError, 1, 3, 6, None))
case("first-record-never-kind-too-many-before-utf8", b"/m/01,\xff\n", "class_lists", Err(CSVError, 1, 2, 6, None))
case("first-record-never-kind-utf8-before-eof-in-quotes", b'\xff,"x', "relationship_descriptions",
     Err(CSVError, 1, 1, 0, "RelationshipLabel"))
case("first-record-header-utf8-before-stray-quote", b'\xff,a"b\n', "strings", Err(CSVError, 1, 1, 0))
case("first-record-sniffed-utf8-before-stray-quote", b'\xff,a"b\n', None, Err(CSVError, 1, 1, 0))
case("first-record-sniffed-utf8-before-eof-in-quotes", b'/m/01\xff,"x', None, Err(CSVError, 1, 1, 5))

# ---------------------------------------------------------------- header and kind

case("unknown-header-misspelt", "ImageID,Source,LabelName,Confidense\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-duplicate", f"{IL},Confidence\n{IL_ROW},1\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-subset", "ImageID,Source,LabelName\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-case", IL.lower() + "\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-space", IL.replace(",", ", ") + "\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-with-bom", BOM + b"foo,bar\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-sniff-failure", "foo,bar\n1,2\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-label-name-alone", "LabelName\n/m/01\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-mid-with-3-fields", "/m/01,a,b\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-uppercase-mid", "/M/01,x\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-empty-mid-tail", "/m/,x\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-mid-prefix-only", "/m/01 x,y\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-strings-not-sniffed", "a,b\n", None, Err(UnknownHeaderError, 1, None, 0))
case("unknown-header-relationship-not-sniffed", "at,at\n", None, Err(UnknownHeaderError, 1, None, 0))
case("explicit-kind-wrong-header", f"{B13}\n", "image_labels", Err(UnknownHeaderError, 1, None, 0))
case("explicit-kind-duplicate-header", "ImageID,Source,LabelName,LabelName\n", "image_labels",
     Err(UnknownHeaderError, 1, None, 0))
case("explicit-kind-headerless-data", f"{IL_ROW}\n", "image_labels", Err(UnknownHeaderError, 1, None, 0))
case("explicit-kind-boxes-variant-8", f"{header('boxes', 8)}\n{ID},xclick,/m/01,1,0,1,0,1\n", "boxes",
     Ok([(IDV, "xclick", "/m/01", 1.0, 0.0, 1.0, 0.0, 1.0)], tuple(header("boxes", 8).split(",")), "boxes"))
case("header-order-kept", f"Confidence,LabelName,ImageID,Source\n0.5,/m/01,{ID},machine\n", None,
     Ok([(0.5, "/m/01", IDV, "machine")], ("Confidence", "LabelName", "ImageID", "Source"), "image_labels"))
case("header-quoted-names", '"ImageID","Source","LabelName","Confidence"\n' + IL_ROW + "\n", None,
     Ok([(IDV, "verification", "/m/01g317", 1.0)], tuple(IL.split(",")), "image_labels"))
case("header-vrd", f"{header('vrd')}\n{ID},/m/01,/m/02,0,1,0,1,0.5,1,0.5,1,at\n", None,
     Ok([(IDV, "/m/01", "/m/02", 0.0, 1.0, 0.0, 1.0, 0.5, 1.0, 0.5, 1.0, "at")], kind="vrd"))
case("header-relationship-triplets", "LabelName1,LabelName2,RelationshipLabel\n/m/01,/m/02,is\n", None,
     Ok([("/m/01", "/m/02", "is")], kind="relationship_triplets"))

# Header-less class lists and descriptions.
case("headerless-class-list", "/m/01\n/m/0zvk5\n/g/11jwzh3_l\n", None,
     Ok([("/m/01",), ("/m/0zvk5",), ("/g/11jwzh3_l",)], ("LabelName",), "class_lists"))
case("headerless-class-list-quoted", '"/m/01"\r\n/m/02', None, Ok([("/m/01",), ("/m/02",)], ("LabelName",), "class_lists"))
case("headerless-class-list-extra-field", "/m/01\n/m/02,x\n", None, Err(CSVError, 2, 2, 12, None))
case("headerless-class-list-empty-quoted", '/m/01\n""\n', None, Err(CSVError, 2, 1, 6, "LabelName"))
case("headerless-descriptions", '/g/11jwzh3_l,volcanic landform\n/m/02wvth,"Fiat 500 ""topolino"""\r\n/m/01vqj0, Anole\n',
     None, Ok([("/g/11jwzh3_l", "volcanic landform"), ("/m/02wvth", 'Fiat 500 "topolino"'), ("/m/01vqj0", " Anole")],
              ("LabelName", "DisplayName"), "class_descriptions"))
case("headerless-descriptions-empty-name", "/m/01,\n/m/02,x\n", None, Ok([("/m/01", ""), ("/m/02", "x")], kind="class_descriptions"))
case("headerless-descriptions-later-row-any-text", "/m/01,a\nnot a mid,b\n", None, Ok([("/m/01", "a"), ("not a mid", "b")], kind="class_descriptions"))
case("headerless-descriptions-too-many", "/m/01,a\n/m/02,b,c\n", None, Err(CSVError, 2, 3, 16, None))
case("headerless-descriptions-too-few", "/m/01,a\n/m/02\n", None, Err(CSVError, 2, 2, 13, "DisplayName"))
case("headerless-descriptions-empty-mid", "/m/01,a\n,b\n", None, Err(CSVError, 2, 1, 8, "LabelName"))
case("descriptions-with-header", "LabelName,DisplayName\n/m/01,Tortoise\n", None,
     Ok([("/m/01", "Tortoise")], ("LabelName", "DisplayName"), "class_descriptions"))
case("descriptions-header-reversed", "DisplayName,LabelName\nTortoise,/m/01\n", None,
     Ok([("Tortoise", "/m/01")], ("DisplayName", "LabelName"), "class_descriptions"))
case("descriptions-explicit-with-header", "LabelName,DisplayName\n/m/01,Tortoise\n", "class_descriptions",
     Ok([("/m/01", "Tortoise")], ("LabelName", "DisplayName")))
case("descriptions-explicit-headerless", "/m/01,Tortoise\n", "class_descriptions",
     Ok([("/m/01", "Tortoise")], ("LabelName", "DisplayName")))
case("descriptions-explicit-any-first-field", "Tortoise,Magpie\n", "class_descriptions",
     Ok([("Tortoise", "Magpie")], ("LabelName", "DisplayName")))
case("descriptions-explicit-first-record-too-many", "/m/01,a,b\n", "class_descriptions", Err(CSVError, 1, 3, 8, None))
case("descriptions-explicit-first-record-too-few", "/m/01\n", "class_descriptions", Err(CSVError, 1, 2, 5, "DisplayName"))
case("descriptions-explicit-header-only", "LabelName,DisplayName", "class_descriptions", Ok([], ("LabelName", "DisplayName")))
case("class-lists-explicit", "/m/01\nanything\n", "class_lists", Ok([("/m/01",), ("anything",)], ("LabelName",)))
case("class-lists-explicit-header-is-data", "LabelName\n/m/01\n", "class_lists", Ok([("LabelName",), ("/m/01",)], ("LabelName",)))
case("class-lists-explicit-too-many", "/m/01,x\n", "class_lists", Err(CSVError, 1, 2, 6, None))

# kind="strings": any header, every column a string.
case("strings-arbitrary-header", "my col, x ,ÄÖ\n1,2,3\n", "strings", Ok([("1", "2", "3")], ("my col", " x ", "ÄÖ")))
case("strings-duplicate-names", "a,a,b\n1,2,3\n", "strings", Ok([("1", "2", "3")], ("a", "a", "b")))
case("strings-empty-names", ",\n1,\n", "strings", Ok([("1", "")], ("", "")))
case("strings-known-header-stays-strings", f"{IL}\n{IL_ROW}\n", "strings",
     Ok([(ID, "verification", "/m/01g317", "1")], tuple(IL.split(","))))
case("strings-invalid-values-are-fine", f"{IL}\nXYZ,,,nan\n", "strings", Ok([("XYZ", "", "", "nan")], tuple(IL.split(","))))
case("strings-single-column", "x\n1\n\"\"\n3", "strings", Ok([("1",), ("",), ("3",)], ("x",)))

# Explicit header-less kinds.
case("relationship-descriptions", "at,at\nwears,wears\nis,is\n", "relationship_descriptions",
     Ok([("at", "at"), ("wears", "wears"), ("is", "is")], ("RelationshipLabel", "DisplayName")))
case("relationship-descriptions-header-is-data", "RelationshipLabel,DisplayName\n", "relationship_descriptions",
     Ok([("RelationshipLabel", "DisplayName")], ("RelationshipLabel", "DisplayName")))
case("relationship-descriptions-too-many", "at,at,at\n", "relationship_descriptions", Err(CSVError, 1, 3, 6, None))
case("attribute-descriptions", "/m/02gy9n,Transparent\n/m/05z87,Plastic\n", "attribute_descriptions",
     Ok([("/m/02gy9n", "Transparent"), ("/m/05z87", "Plastic")], ("LabelName", "DisplayName")))
case("attribute-descriptions-utf8", b"/m/02gy9n,\xff\n", "attribute_descriptions", Err(CSVError, 1, 2, 10, "DisplayName"))

# Empty input: an error where a header is needed (or the kind must be recognised), zero rows for a header-less
# kind asked for by name (an empty class list is a list of no classes).
for k in (None, "strings", "image_labels"):
    case(f"empty-file-{k}", b"", k, Err(CSVError, 1, None, 0))
    case(f"only-bom-{k}", BOM, k, Err(CSVError, 1, None, 0))
for k, names in (("class_lists", ("LabelName",)), ("class_descriptions", ("LabelName", "DisplayName"))):
    case(f"empty-file-{k}", b"", k, Ok([], names))
    case(f"only-bom-{k}", BOM, k, Ok([], names))
