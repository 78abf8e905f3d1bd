"""The Open Images file kinds: the single source of truth.

Everything that knows what an Open Images CSV looks like reads this module: the
reader (kind detection, column types), the reference reader used by the tests,
synth, the CLI, and the README table (``python -m oicore.schema`` prints it).

A *kind* is a family of files with one meaning (image metadata, image-level
labels, boxes, ...). It has one or more header *variants*, one per shape that
some release shipped. A file's header matches a variant when the names are
equal as a set, with no duplicates; the file's own order is kept.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

__all__ = [
    "ColumnType",
    "Column",
    "Variant",
    "Kind",
    "KINDS",
    "COLUMNS",
    "column",
    "kind",
    "match_header",
    "closest_kinds",
    "MID_PATTERN",
    "IMAGE_ID_PATTERN",
    "NUMBER_PATTERN",
    "INTEGER_PATTERN",
    "RELEASES",
    "markdown_table",
]

RELEASES = ("v1", "v2", "v3", "v4", "v5", "v6", "v7")

# Text grammar (the reader's C code implements these; the reference reader uses the regexes).
IMAGE_ID_PATTERN = re.compile(r"[0-9a-f]{16}")
NUMBER_PATTERN = re.compile(r"-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?")
INTEGER_PATTERN = re.compile(r"-?[0-9]+")
# A header-less file is recognised by a MID in its first field.
MID_PATTERN = re.compile(r"/[mg]/[0-9a-z_]+")


class ColumnType(enum.IntEnum):
    """How a column's text becomes a value. The integer values are the C codes (include/oic_csv.h)."""

    STRING = 0  # string, exactly as in the file
    IMAGE_ID = 1  # uint64 from [0-9a-f]{16}
    DICTIONARY = 2  # dictionary<int32, string>
    FLOAT64 = 3  # float64, equal to Python's float() of the text
    INT8 = 4
    INT32 = 5
    INT64 = 6

    @property
    def arrow_name(self) -> str:
        return _ARROW_NAMES[self]


_ARROW_NAMES = {
    ColumnType.STRING: "string",
    ColumnType.IMAGE_ID: "uint64",
    ColumnType.DICTIONARY: "dictionary<int32, string>",
    ColumnType.FLOAT64: "float64",
    ColumnType.INT8: "int8",
    ColumnType.INT32: "int32",
    ColumnType.INT64: "int64",
}


@dataclass(frozen=True)
class Column:
    """One column name and how its text is read.

    ``required`` columns reject an empty field. An empty optional numeric field
    is null; an empty string or dictionary field is ``""``.
    """

    name: str
    type: ColumnType
    required: bool = False
    free_text: bool = False  # human-written text: synth puts hostile characters here
    mid: bool = False  # a label MID: coded in the release-wide vocabulary of an .oic file


def _cols(type_, names, **kw):
    return [Column(n, type_, **kw) for n in names.split()]


_BOX = "XMin XMax YMin YMax"
_FLAGS = "IsOccluded IsTruncated IsGroupOf IsDepiction IsInside"
_XCLICK = "XClick1X XClick2X XClick3X XClick4X XClick1Y XClick2Y XClick3Y XClick4Y"

# Every column name any kind uses, with its type. A name means the same thing in every kind.
COLUMNS: dict[str, Column] = {
    c.name: c
    for c in [
        *_cols(ColumnType.IMAGE_ID, "ImageID ImageId", required=True),
        *_cols(ColumnType.DICTIONARY, "LabelName LabelName1 LabelName2 Label", required=True, mid=True),
        *_cols(ColumnType.DICTIONARY, "Source Subset License RelationshipLabel EstimatedYesNo"),
        *_cols(ColumnType.FLOAT64, "Confidence", required=True),
        *_cols(ColumnType.FLOAT64, _BOX, required=True),
        *_cols(ColumnType.FLOAT64, "XMin1 XMax1 YMin1 YMax1 XMin2 XMax2 YMin2 YMax2", required=True),
        *_cols(ColumnType.FLOAT64, "BoxXMin BoxXMax BoxYMin BoxYMax", required=True),
        *_cols(ColumnType.FLOAT64, "X Y", required=True),
        *_cols(ColumnType.FLOAT64, _XCLICK + " Rotation PredictedIoU"),
        *_cols(ColumnType.INT8, _FLAGS),
        *_cols(ColumnType.INT64, "OriginalSize"),
        *_cols(ColumnType.INT32, "YesVotes NoVotes UnsureVotes"),
        *_cols(ColumnType.STRING, "OriginalURL OriginalLandingURL AuthorProfileURL OriginalMD5"),
        *_cols(ColumnType.STRING, "Thumbnail300KURL MaskPath BoxID Clicks"),
        *_cols(ColumnType.STRING, "Author Title TextLabel DisplayName", free_text=True),
    ]
}


def column(name: str) -> Column:
    """The column called ``name``; any name unknown to the schema is a plain string."""
    return COLUMNS.get(name) or Column(name, ColumnType.STRING)


@dataclass(frozen=True)
class Variant:
    """One header shape of a kind, as some releases ship it (names in file order)."""

    names: tuple[str, ...]
    releases: tuple[str, ...]
    note: str = ""


class HeaderRule(enum.Enum):
    ALWAYS = "always"  # the first record is the header
    NEVER = "never"  # no header; the columns are the variant's names
    OPTIONAL = "optional"  # a header when the first record equals a variant's names


@dataclass(frozen=True)
class Kind:
    """A family of Open Images files with one meaning."""

    name: str
    title: str
    variants: tuple[Variant, ...]
    header: HeaderRule = HeaderRule.ALWAYS
    sniffable: bool = True  # recognised from its header (or its first field) without kind=
    columns: tuple[Column, ...] = field(init=False)

    def __post_init__(self):
        seen: dict[str, Column] = {}
        for v in self.variants:
            for n in v.names:
                seen.setdefault(n, column(n))
        object.__setattr__(self, "columns", tuple(seen.values()))

    @property
    def headerless_names(self) -> tuple[str, ...]:
        """Column names for a file of this kind without a header."""
        return self.variants[0].names

    def variant_for(self, names) -> Variant | None:
        """The variant whose names equal ``names`` as a set (with no duplicates), else None."""
        names = tuple(names)
        if len(set(names)) != len(names):
            return None
        for v in self.variants:
            if set(v.names) == set(names):
                return v
        return None


def _v(names: str, releases: str, note: str = "") -> Variant:
    return Variant(tuple(names.split(",")), tuple(releases.split()), note)


_IMAGES_12 = (
    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
    "OriginalSize,OriginalMD5,Thumbnail300KURL,Rotation"
)
_BOXES_8 = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax"
_BOXES_13 = _BOXES_8 + ",IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"
_BOXES_21 = _BOXES_13 + ",XClick1X,XClick2X,XClick3X,XClick4X,XClick1Y,XClick2Y,XClick3Y,XClick4Y"

KINDS: dict[str, Kind] = {
    k.name: k
    for k in [
        Kind(
            "images",
            "image metadata",
            (
                _v("ImageID,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title", "v1", "2016-09-28"),
                _v(
                    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title",
                    "v1",
                    "2016-10-02",
                ),
                _v(
                    "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,"
                    "OriginalSize,OriginalMD5",
                    "v1",
                    "2016-10-08",
                ),
                _v(_IMAGES_12.rsplit(",", 1)[0], "v1 v2 v3"),
                _v(_IMAGES_12, "v4 v5 v6 v7", "with rotation"),
            ),
        ),
        Kind("image_labels", "image-level labels (human and machine)", (_v("ImageID,Source,LabelName,Confidence", "v1 v2 v3 v4 v5 v6 v7"),)),
        Kind(
            "boxes",
            "bounding boxes",
            (
                _v(_BOXES_8, "v2 v3", "train"),
                _v(_BOXES_13, "v2 v3 v4 v5 v6 v7", "V2/V3 validation and test; V4+ all splits but V6/V7 train"),
                _v(_BOXES_21, "v6 v7", "train, with extreme clicks"),
            ),
        ),
        Kind(
            "class_descriptions",
            "class descriptions (MID to display name)",
            (_v("LabelName,DisplayName", "v1 v2 v3 v4 v5 v6 v7", "no header before V6"),),
            header=HeaderRule.OPTIONAL,
        ),
        Kind("class_lists", "class lists (one MID per line)", (_v("LabelName", "v2 v3 v4 v5 v6 v7"),), header=HeaderRule.NEVER),
        Kind(
            "points",
            "point labels",
            (_v("ImageId,X,Y,Label,EstimatedYesNo,Source,YesVotes,NoVotes,UnsureVotes,TextLabel", "v7"),),
        ),
        Kind(
            "vrd",
            "visual relationships",
            (_v("ImageID,LabelName1,LabelName2,XMin1,XMax1,YMin1,YMax1,XMin2,XMax2,YMin2,YMax2,RelationshipLabel", "v5 v6 v7"),),
        ),
        Kind(
            "segmentation",
            "segmentation masks (CSV)",
            (_v("MaskPath,ImageID,LabelName,BoxID,BoxXMin,BoxXMax,BoxYMin,BoxYMax,PredictedIoU,Clicks", "v5 v6 v7"),),
        ),
        Kind(
            "relationship_descriptions",
            "relationship descriptions",
            (_v("RelationshipLabel,DisplayName", "v5 v6 v7"),),
            header=HeaderRule.NEVER,
            sniffable=False,
        ),
        Kind(
            "attribute_descriptions",
            "attribute descriptions",
            (_v("LabelName,DisplayName", "v5 v6 v7"),),
            header=HeaderRule.NEVER,
            sniffable=False,
        ),
        Kind(
            "relationship_triplets",
            "relationship triplets",
            (_v("LabelName1,LabelName2,RelationshipLabel", "v5 v6 v7"),),
        ),
        # Any table with a header, every column a string. Never sniffed.
        Kind("strings", "any CSV with a header, every column a string", (), sniffable=False),
    ]
}


def kind(name: str) -> Kind:
    """The kind called ``name``; a ValueError lists the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}; expected one of {', '.join(KINDS)}") from None


def match_header(names) -> tuple[Kind, Variant] | None:
    """The sniffable kind and variant whose header equals ``names`` as a set, else None."""
    for k in KINDS.values():
        if k.sniffable and k.header is not HeaderRule.NEVER:
            v = k.variant_for(names)
            if v is not None:
                return k, v
    return None


def closest_kinds(names, n: int = 3) -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """The ``n`` kind variants nearest to ``names``: (kind, missing names, extra names), best first."""
    got = set(names)
    scored = []
    for k in KINDS.values():
        if k.header is HeaderRule.NEVER or not k.variants:
            continue
        for v in k.variants:
            want = set(v.names)
            missing = tuple(x for x in v.names if x not in got)
            extra = tuple(x for x in names if x not in want)
            overlap = len(want & got) / len(want | got) if want | got else 0
            scored.append((-overlap, len(missing) + len(extra), k.name, missing, extra))
    scored.sort(key=lambda t: (t[0], t[1]))
    out, seen = [], set()
    for _, _, name, missing, extra in scored:
        if name in seen:
            continue
        seen.add(name)
        out.append((name, missing, extra))
        if len(out) == n:
            break
    return out


def markdown_table() -> str:
    """The schema as Markdown: one row per kind and header variant, then the column types."""
    lines = ["| kind | releases | header | columns |", "|---|---|---|---|"]
    for k in KINDS.values():
        if not k.variants:
            lines.append(f"| `{k.name}` | any | always | any names; every column `string` |")
            continue
        for v in k.variants:
            note = f" ({v.note})" if v.note else ""
            lines.append(
                f"| `{k.name}` | {' '.join(v.releases)}{note} | {k.header.value} | {len(v.names)}: "
                + ", ".join(v.names)
                + " |"
            )
    lines += ["", "| column | type | empty field |", "|---|---|---|"]
    for c in COLUMNS.values():
        if c.type in (ColumnType.STRING, ColumnType.DICTIONARY):
            empty = "error" if c.required else '`""`'
        else:
            empty = "error" if c.required else "null"
        lines.append(f"| `{c.name}` | `{c.type.arrow_name}` | {empty} |")
    lines.append("| any other name (kind `strings`) | `string` | `\"\"` |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table())
