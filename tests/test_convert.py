"""``oicore convert`` → ``oicore export``: byte-identical round trips, warnings, atomicity and exit codes.

Issue 3, Deliver 5, 6 and 8; FORMAT.md "Export". Every round trip checks three things: the exported files'
bytes equal the sources' (sha256), ``verify(against=...)`` agrees, and the values read back through
``oicore.open(...).table(...)`` equal ``oicore.read_csv`` of the sources.

The helpers at the top (``convert_quiet``, ``synthetic``, ``write_tiny_release``, ``assert_round_trip``, ...)
are shared with ``test_export.py``, ``test_verify.py`` and ``test_format_spec.py``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import oicore
from oicore.errors import CSVError, OicoreWarning
from oicore.exporter import export
from oicore.inspection import info, verify
from oicore.sources import UnsupportedFileError, find_sources
from oicore.store import Store

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RELEASES = ("v3", "v4", "v5", "v6", "v7")
SYNTH_SCALE = 0.0002


# ---------------------------------------------------------------------------------------------- helpers


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def convert_quiet(sources, out, **kw):
    """``oicore.convert`` with every warning recorded (pytest turns warnings into errors): (report, warnings)."""
    kw.setdefault("progress", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = oicore.convert(sources, out, **kw)
    return report, [w for w in caught]


def found_sources(sources) -> dict:
    """``find_sources`` of ``sources`` as {name: Source}, skipping unknown files silently."""
    if isinstance(sources, (str, os.PathLike)):
        sources = [sources]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OicoreWarning)
        return {s.name: s for s in find_sources(list(sources))}


def cli_env() -> dict:
    """The environment for subprocesses: they import the same oicore as this process (in place or installed)."""
    env = dict(os.environ)
    home = str(Path(oicore.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([home, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OICORE_NUM_THREADS", "2")
    return env


def first_difference(got: bytes, want: bytes) -> str:
    n = min(len(got), len(want))
    i = next((k for k in range(n) if got[k] != want[k]), n)
    line = want[:i].count(b"\n") + 1
    return f"first difference at byte {i} (line {line}): got {got[max(0, i - 30) : i + 30]!r}, want {want[max(0, i - 30) : i + 30]!r}; lengths {len(got)} vs {len(want)}"


def assert_same_bytes(got: bytes, want: bytes, what: str) -> None:
    if got != want:
        pytest.fail(f"{what}: export is not byte-identical: {first_difference(got, want)}")


def assert_exports_identical(oic, sources, workdir) -> None:
    """Export every source of ``oic`` under ``workdir`` and compare each with the file it came from."""
    found = found_sources(sources)
    out = Path(workdir) / "export"
    if out.exists():
        shutil.rmtree(out)
    written = export(oic, out)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(found)
    for name, source in found.items():
        assert_same_bytes((out / name).read_bytes(), source.path.read_bytes(), name)


def norm(value):
    """A value compared exactly: floats by their bits (so -0.0 differs from 0.0)."""
    if isinstance(value, float):
        return ("float", value.hex())
    return value


def canonical(arr):
    """An arrow column as (kind, null mask, values) compared exactly: dictionaries decoded, floats by bits."""
    import numpy as np
    import pyarrow as pa

    if arr is None:
        return None
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    nulls = np.asarray(arr.is_null().to_numpy(zero_copy_only=False), bool)
    if pa.types.is_floating(arr.type):
        values = arr.fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64).view(np.int64).copy()
        values[nulls] = 0
        return ("float", nulls, values)
    if pa.types.is_integer(arr.type):
        values = arr.fill_null(0).to_numpy(zero_copy_only=False)
        values = values.astype(np.uint64 if pa.types.is_unsigned_integer(arr.type) else np.int64)
        values[nulls] = 0
        return ("int", nulls, values)
    return ("text", nulls, arr.cast(pa.large_string()))


def _concat(pieces):
    import numpy as np
    import pyarrow as pa

    kinds = {p[0] for p in pieces if p is not None}
    assert len(kinds) <= 1, kinds
    kind = kinds.pop() if kinds else "text"
    out_nulls, out_values = [], []
    for p in pieces:
        if p is None:
            continue
        out_nulls.append(p[1])
        out_values.append(p[2])
    nulls = np.concatenate(out_nulls) if out_nulls else np.zeros(0, bool)
    if kind == "text":
        values = pa.concat_arrays(out_values) if out_values else pa.array([], pa.large_string())
    else:
        values = np.concatenate(out_values)
    return kind, nulls, values


def _same(a, b) -> bool:
    import numpy as np

    if a[0] != b[0] or not np.array_equal(a[1], b[1]):
        return False
    if a[0] == "text":
        return a[2].equals(b[2])
    return np.array_equal(a[2], b[2])


def assert_tables_match_sources(oic, sources, block_size=None) -> int:
    """Every table read back through ``oicore.open(oic).table(name)`` equals ``read_csv`` of its sources.

    The parts of a table follow the directory's order (lookup parts first); a part lacking a column reads
    as nulls there. Floats are compared by their bits. Returns the number of tables compared.
    """
    import pyarrow as pa

    found = found_sources(sources)
    store = Store(oic)
    try:
        plan = {}
        for name, t in store.tables.items():
            if name == "hierarchy":
                continue
            plan[name] = [store.sources[p["source"]]["name"] for p in t.parts if not store.sources[p["source"]]["export_only"]]
    finally:
        store.close()
    compared = 0
    with oicore.open(oic) as release:
        for name, part_names in plan.items():
            if not part_names:
                continue
            got = release.table(name)
            parts = [(n, oicore.read_csv(found[n].path, kind=found[n].kind, block_size=block_size)) for n in part_names]
            assert got.num_rows == sum(t.num_rows for _, t in parts), name
            columns = [c for c in got.column_names if c != "split"]
            for n, t in parts:
                assert set(t.column_names) <= set(columns), (name, n)
            for c in columns:
                pieces = []
                for n, t in parts:
                    if c in t.column_names:
                        pieces.append(canonical(t.column(c)))
                    else:
                        pieces.append(canonical(pa.nulls(t.num_rows, got.schema.field(c).type)))
                want = _concat(pieces)
                have = canonical(got.column(c))
                if not _same(have, want):
                    expected = [v for _, t in parts for v in (t.column(c).to_pylist() if c in t.column_names else [None] * t.num_rows)]
                    actual = got.column(c).to_pylist()
                    bad = next((i for i, (x, y) in enumerate(zip(actual, expected)) if norm(x) != norm(y)), None)
                    pytest.fail(f"table {name!r} column {c!r} row {bad}: got {actual[bad] if bad is not None else actual!r}, "
                                f"read_csv gives {expected[bad] if bad is not None else expected!r}")
            splits = [found[n].split for n, t in parts for _ in range(t.num_rows)]
            assert got.column("split").to_pylist() == splits, name
            compared += 1
    return compared


def assert_round_trip(oic, sources, workdir) -> None:
    """Byte-identical export, ``verify --against`` and table values, for one converted set of sources."""
    assert_exports_identical(oic, sources, workdir)
    result = verify(oic, against=list(sources) if isinstance(sources, (list, tuple)) else [sources])
    assert result["compared"] == len(found_sources(sources))
    assert_tables_match_sources(oic, sources)


_SYNTH: dict = {}


def synthetic(tmp_path_factory, release: str, seed: int = 3, scale: float = SYNTH_SCALE):
    """A synthetic release and its ``.oic`` file, made once per session: (src, oic, report, warnings)."""
    key = (release, seed, scale)
    if key not in _SYNTH:
        root = tmp_path_factory.mktemp(f"synth-{release}-{seed}")
        src = root / "release"
        oicore.synth(src, scale=scale, seed=seed, release=release)
        oic = root / f"{release}.oic"
        report, caught = convert_quiet(src, oic, release=release)
        _SYNTH[key] = (src, oic, report, caught)
    return _SYNTH[key]


IMAGES_V3 = "ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,OriginalSize,OriginalMD5,Thumbnail300KURL"
LABELS = "ImageID,Source,LabelName,Confidence"
BOXES_8 = "ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax"
BOXES_13 = BOXES_8 + ",IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside"

TINY_FILES = {
    # No header, mixed CRLF/LF, a quoted name with a comma and doubled quotes, a leading space, non-ASCII.
    "class-descriptions.csv": b'/m/01,Cat\r\n/m/02,"Dog, ""big"""\n/m/03, Sp\xc3\xa4tzle\r\n/m/04,Fish \r\n',
    "classes.txt": b"/m/01\n/m/03\n",
    "bbox_labels_600_hierarchy.json": b'{\r\n    "LabelName": "/m/0bl9f",\r\n    "Subcategory": [\r\n        {\r\n            "LabelName": "/m/01"\r\n        }\r\n    ]\r\n}',
    # Flickr URLs (templates), a URL and an MD5 that fit no template (exceptions), repeated authors.
    "train/images.csv": (IMAGES_V3 + "\n").encode()
    + b'0000000000000001,train,https://farm3.staticflickr.com/2345/1234567890_abcdef1234_o.jpg,'
    + b'https://www.flickr.com/photos/12345678@N00/1234567890,https://creativecommons.org/licenses/by/2.0/,'
    + b'https://www.flickr.com/people/12345678@N00/,"Ann","T, 1",1234,EEGQ0ZQ/OxJAIGzfJ6LMvw==,'
    + b'https://c1.staticflickr.com/3/2345/1234567890_abcdef1234_z.jpg\n'
    + b'00000000000000a2,train,http://example.com/x.jpg,https://www.flickr.com/photos/132646954@N02/21094803716,'
    + b'https://creativecommons.org/licenses/by/2.0/,https://www.flickr.com/people/132646954@N02/,"B\xc3\xa9a &amp; C",'
    + b'"Title",99,not-an-md5,\n',
    "validation/validation-images-with-rotation.csv": (IMAGES_V3 + ",Rotation\n").encode()
    + b"00000000000000b3,validation,https://farm7.staticflickr.com/5769/21094803716_da3cea21b8_o.jpg,"
    + b"https://www.flickr.com/photos/132646954@N02/21094803716,https://creativecommons.org/licenses/by/2.0/,"
    + b"https://www.flickr.com/people/132646954@N02/,B\xc3\xa9a &amp; C,,5,BBGQ0ZQ/OxJAIGzfJ6LMvw==,,\n"
    + b"00000000000000c4,validation,https://farm7.staticflickr.com/5769/21094803717_da3cea21b9_o.jpg,"
    + b"https://www.flickr.com/photos/12345678@N00/21094803717,https://creativecommons.org/licenses/by/2.0/,"
    + b"https://www.flickr.com/people/12345678@N00/,Ann,t,6,CCGQ0ZQ/OxJAIGzfJ6LMvw==,,90.0\n",
    # Unsorted (a permutation is stored), a CRLF row and a "007" confidence (exceptions).
    "train/annotations-human.csv": (LABELS + "\n").encode()
    + b"00000000000000a2,crowdsource-verification,/m/03,1\n"
    + b"0000000000000001,verification,/m/01,1\r\n"
    + b"0000000000000001,verification,/m/02,0\n"
    + b"00000000000000a2,verification,/m/04,007\n",
    "train/train-annotations-human-imagelabels-boxable.csv": (LABELS + "\n").encode()
    + b"0000000000000001,verification,/m/01,1\n",
    "train/annotations-machine.csv": (LABELS + "\n").encode()
    + b"0000000000000001,machine,/m/01,0.5\n0000000000000001,machine,/m/03,1.0\n00000000000000a2,machine,/m/02,0.7\n",
    "train/annotations-human-bbox.csv": (BOXES_8 + "\n").encode()
    + b"0000000000000001,xclick,/m/01,1,0.100000,0.500000,0.200000,0.700000\n"
    + b"00000000000000a2,activemil,/m/03,1,0.000000,1.000000,0.250000,0.750000\n",
    "validation/annotations-human-bbox.csv": (BOXES_13 + "\n").encode()
    + b"00000000000000b3,freeform,/m/02,1,0.1,0.9,0.2,0.8,0,1,-1,0,0\n"
    + b"00000000000000c4,freeform,/m/09,1,0.022673031,0.9642005,0.07103825,0.80054647,1,0,0,0,1",
}


def write_tiny_release(root) -> Path:
    """A hand-made release touching every structure of FORMAT.md: several parts with other columns, an
    export-only part, nulls, exceptions, a file order, a hierarchy and a class list."""
    root = Path(root)
    for name, data in TINY_FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


_TINY: dict = {}


def tiny(tmp_path_factory):
    """The tiny release and its ``.oic`` file, made once per session: (src, oic, report, warnings)."""
    if "tiny" not in _TINY:
        root = tmp_path_factory.mktemp("tiny")
        src = write_tiny_release(root / "release")
        oic = root / "tiny.oic"
        report, caught = convert_quiet(src, oic)
        _TINY["tiny"] = (src, oic, report, caught)
    return _TINY["tiny"]


# ---------------------------------------------------------------------------------------------- synthetic releases


@pytest.mark.parametrize("release", RELEASES)
def test_synthetic_release_round_trips_byte_identical(tmp_path_factory, tmp_path, release):
    src, oic, report, caught = synthetic(tmp_path_factory, release)
    assert not [w for w in caught if issubclass(w.category, OicoreWarning)], [str(w.message) for w in caught]
    assert report.release == release
    with oicore.open(oic) as r:
        assert r.release == release
    assert_exports_identical(oic, src, tmp_path)
    assert verify(oic, against=[src])["compared"] == len(found_sources(src))
    assert assert_tables_match_sources(oic, src) >= 4


def test_tiny_release_round_trips(tmp_path_factory, tmp_path):
    src, oic, report, caught = tiny(tmp_path_factory)
    messages = [str(w.message) for w in caught]
    assert any("not sorted" in m and "annotations-human.csv" in m for m in messages), messages
    assert report.exceptions >= 2  # the CRLF row and "007"
    assert_round_trip(oic, src, tmp_path)


def test_round_trip_checks_see_a_changed_value(tmp_path_factory, tmp_path):
    """The checks themselves: a source that differs by one value (-0.0 for 0) fails both of them."""
    src, oic, _, _ = tiny(tmp_path_factory)
    other = tmp_path / "other"
    shutil.copytree(src, other)
    path = other / "train" / "annotations-human.csv"
    path.write_bytes(path.read_bytes().replace(b"/m/02,0\n", b"/m/02,-0.0\n"))
    with pytest.raises(pytest.fail.Exception, match="Confidence"):
        assert_tables_match_sources(oic, other)
    with pytest.raises(pytest.fail.Exception, match="annotations-human.csv"):
        assert_exports_identical(oic, other, tmp_path)


# ---------------------------------------------------------------------------------------------- real files


def _shared_files():
    return sorted(p for p in SHARED_DATA.rglob("*") if p.is_file() and p.name != "README.md")


@pytest.mark.parametrize("folder", ["v1", "v3", "v4"])
def test_shared_release_folder_round_trips(tmp_path, folder):
    src = SHARED_DATA / folder
    oic = tmp_path / f"{folder}.oic"
    convert_quiet(src, oic)
    assert_round_trip(oic, src, tmp_path)


@pytest.mark.parametrize("path", _shared_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shared_single_file_round_trips(tmp_path, path):
    oic = tmp_path / "one.oic"
    report, _ = convert_quiet(path, oic)
    assert [s["name"] for s in report.sources] == [path.name]
    assert report.sources[0]["sha256"] == sha256_file(path)
    assert_round_trip(oic, path, tmp_path)


def test_shared_folders_together_round_trip(tmp_path):
    sources = [SHARED_DATA / f for f in ("v1", "v3", "v4")]
    oic = tmp_path / "all.oic"
    convert_quiet(sources, oic)
    assert_round_trip(oic, sources, tmp_path)


# ---------------------------------------------------------------------------------------------- tiny block sizes


def _real_slice() -> bytes:
    """Lines 800-1100 of the real V3 class descriptions: CRLF and LF rows, quoted names, spaces."""
    lines = (SHARED_DATA / "v3" / "class-descriptions.csv").read_bytes().split(b"\n")
    return b"\n".join(lines[800:1100]) + b"\n"


@pytest.mark.parametrize("block_size", [11, 37, 111])
def test_tiny_block_sizes_round_trip(tmp_path, block_size):
    src = write_tiny_release(tmp_path / "release")
    (src / "class-descriptions.csv").write_bytes(TINY_FILES["class-descriptions.csv"] + _real_slice())
    oic = tmp_path / "bs.oic"
    convert_quiet(src, oic, block_size=block_size)
    reference = tmp_path / "default.oic"
    convert_quiet(src, reference)
    assert_round_trip(oic, src, tmp_path)
    # The same segments, whatever the reader's block size: only the UUID and the creation time differ.
    with oicore.open(oic) as a, oicore.open(reference) as b:
        for name in ("class_descriptions", "human_labels", "boxes", "images"):
            assert a.table(name).equals(b.table(name)), name


# ---------------------------------------------------------------------------------------------- hypothesis tables

TERMS = ("\n", "\r\n", "\r")
HOSTILE = st.sampled_from(['"', '""', ",", "\r", "\n", "\r\n", " ", "  ", "\U0001f600", "é", "Spätzle", "&amp;", "\u2028", "a,b", '"q"', "\x00"])
TEXT = st.lists(st.one_of(HOSTILE, st.characters(codec="utf-8")), max_size=8).map("".join)
WORD = st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
MIDS = [f"/m/0{c}" for c in "abcdefgh"] + ["/g/11b6xx9", "/m/0_x"]
IDS = st.integers(0, 2**64 - 1)
SPECIAL_NUMBERS = ["-0", "-0.0", "007", "00.5", "1.", "1E5", "1e+05", "5e-1", "0.50", "1e-05", "9.765625e-05",
                   "0.30000000000000004", "1e400", "-1e-320", "0.560250", "0.7", "1.0", "1", "0", "0.0", "100"]


@st.composite
def spelled_float(draw):
    """A number as people and programs spell them: fixed decimals, shortest repr, integers, oddities."""
    kind = draw(st.sampled_from(["fixed", "repr", "int", "special"]))
    if kind == "special":
        return draw(st.sampled_from(SPECIAL_NUMBERS))
    if kind == "int":
        return str(draw(st.integers(-3, 1000)))
    x = draw(st.floats(-2, 2, allow_nan=False, allow_infinity=False))
    if kind == "repr":
        digits = draw(st.one_of(st.none(), st.integers(0, 9)))
        return repr(x if digits is None else round(x, digits))
    return f"{x:.{draw(st.integers(0, 9))}f}"


SPELLED_INT = st.one_of(st.integers(0, 2**40).map(str), st.sampled_from(["007", "-0", "0", "00", "9223372036854775807", "-5"]))
SPELLED_FLAG = st.sampled_from(["0", "1", "-1", "01", "-0", "00", "0", "1"])
OPTIONAL_FLOAT = st.one_of(st.just(""), spelled_float(), st.sampled_from(["0.0", "90.0", "270", "-0.0"]))
URL = st.builds(lambda n, s: f"https://farm{n % 9}.staticflickr.com/{n}/{n}_{s}_o.jpg", st.integers(0, 10**6), WORD)
MD5 = st.binary(min_size=16, max_size=16).map(lambda b: __import__("base64").b64encode(b).decode())
SOURCE = st.one_of(st.sampled_from(["verification", "crowdsource-verification", "xclick", "activemil", "machine"]), TEXT)


def _hex(i: int) -> str:
    return f"{i:016x}"


def row_strategy(kind: str, with_rotation: bool = False, with_flags: bool = False):
    ident = IDS.map(_hex)
    mid = st.sampled_from(MIDS)
    if kind == "class_descriptions":
        return st.tuples(mid, TEXT).map(list)
    if kind == "image_labels":
        return st.tuples(ident, SOURCE, mid, spelled_float()).map(list)
    if kind == "boxes":
        parts = [ident, SOURCE, mid, spelled_float(), spelled_float(), spelled_float(), spelled_float(), spelled_float()]
        if with_flags:
            parts += [SPELLED_FLAG] * 5
        return st.tuples(*parts).map(list)
    assert kind == "images"
    parts = [ident, st.sampled_from(["train", "validation", "test"]), URL, URL, st.just("https://creativecommons.org/licenses/by/2.0/"),
             URL, TEXT, TEXT, SPELLED_INT, MD5, st.one_of(st.just(""), URL)]
    if with_rotation:
        parts.append(OPTIONAL_FLOAT)
    return st.tuples(*parts).map(list)


def _field(value: str, quote_all: bool) -> str:
    if quote_all or any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


@st.composite
def csv_file(draw, header: list[str] | None, rows_st, min_rows: int = 0):
    """(bytes, header, rows): the rows written by Python's csv module or field by field, with per-column
    quoting, per-row line endings, a BOM or not and a final newline or not; possibly unsorted, possibly with
    the columns in another order."""
    rows = draw(st.lists(rows_st, min_size=min_rows, max_size=6))
    if header is not None and draw(st.booleans()):
        rows.sort(key=lambda r: r[0])  # mostly sorted by ImageID, as the real files are
    if header is not None and draw(st.integers(0, 4)) == 0:
        order = draw(st.permutations(range(len(header))))
        header = [header[i] for i in order]
        rows = [[r[i] for i in order] for r in rows]
    records = ([header] if header is not None else []) + rows
    mode = draw(st.sampled_from(["minimal", "all", "per-column"]))
    ncols = len(records[0]) if records else 0
    quote_all = draw(st.lists(st.booleans(), min_size=ncols, max_size=ncols))
    default_term = draw(st.sampled_from(TERMS))
    mixed = draw(st.booleans())
    pieces = []
    for rec in records:
        if mode == "per-column":
            line = ",".join(_field(v, q) for v, q in zip(rec, quote_all))
        else:
            buf = io.StringIO()
            # "\r\n" as the writer's terminator makes it quote fields holding CR or LF (Python 3.11).
            quoting = csv.QUOTE_ALL if mode == "all" else csv.QUOTE_MINIMAL
            csv.writer(buf, lineterminator="\r\n", quoting=quoting).writerow(rec)
            line = buf.getvalue()[:-2]
        term = draw(st.sampled_from(TERMS)) if mixed else default_term
        pieces.append(line + term)
    text = "".join(pieces)
    if pieces and not draw(st.booleans()):
        text = text[: -len(term)]  # no final newline
    data = text.encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    # The generator's own check: Python's csv module reads back exactly the records written.
    if data:
        assert list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), strict=True)) == records
    return data


@st.composite
def releases(draw):
    """{relative path: bytes} of a small release folder with hostile text and spellings."""
    files = {}
    header = draw(st.booleans())
    files["class-descriptions.csv"] = draw(
        csv_file(["LabelName", "DisplayName"] if header else None, row_strategy("class_descriptions"), min_rows=1)
    )
    optional = {
        "train/images.csv": (IMAGES_V3.split(","), row_strategy("images")),
        "validation/validation-images-with-rotation.csv": ((IMAGES_V3 + ",Rotation").split(","), row_strategy("images", with_rotation=True)),
        "train/annotations-human.csv": (LABELS.split(","), row_strategy("image_labels")),
        "train/annotations-human-bbox.csv": (BOXES_8.split(","), row_strategy("boxes")),
        "validation/annotations-human-bbox.csv": (BOXES_13.split(","), row_strategy("boxes", with_flags=True)),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(optional)), min_size=1, max_size=len(optional), unique=True))
    for name in chosen:
        header_names, rows_st = optional[name]
        files[name] = draw(csv_file(header_names, rows_st))
    return files


@pytest.fixture(scope="module")
def hypo_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("hypothesis-releases")


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(files=releases(), block_size=st.sampled_from([11, 37, 111, None]))
def test_hypothesis_release_round_trips(hypo_dir, files, block_size):
    work = Path(tempfile.mkdtemp(dir=hypo_dir))
    try:
        src = work / "release"
        for name, data in files.items():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(data)
        oic = work / "h.oic"
        convert_quiet(src, oic, block_size=block_size)
        assert_round_trip(oic, src, work)
    finally:
        shutil.rmtree(work)


# ---------------------------------------------------------------------------------------------- shapes of input


def test_unsorted_input_warns_and_exports_byte_identical(tmp_path):
    src = tmp_path / "release"
    (src / "train").mkdir(parents=True)
    rows = [b"00000000000000ff,verification,/m/01,1\n", b"0000000000000001,verification,/m/02,0\n",
            b"00000000000000ff,verification,/m/03,1\n", b"0000000000000002,verification,/m/01,1\n",
            b"0000000000000001,verification,/m/04,1\n"]
    (src / "train" / "annotations-human.csv").write_bytes(b"ImageID,Source,LabelName,Confidence\n" + b"".join(rows))
    oic = tmp_path / "u.oic"
    with pytest.warns(OicoreWarning, match="not sorted"):
        oicore.convert(src, oic, progress=False)
    assert_round_trip(oic, src, tmp_path)
    with oicore.open(oic) as r:
        # Lookups still see each image's rows, in file order.
        assert r.labels("00000000000000ff").mids == ["/m/01", "/m/03"]
        assert r.labels("0000000000000001").mids == ["/m/02", "/m/04"]


def test_boxes_with_and_without_flag_columns_in_one_release(tmp_path):
    src = tmp_path / "release"
    for split, header, row in (
        ("train", BOXES_8, "0000000000000001,xclick,/m/01,1,0.100000,0.200000,0.300000,0.400000"),
        ("validation", BOXES_13, "0000000000000002,freeform,/m/01,1,0.1,0.2,0.3,0.4,1,0,-1,0,1"),
        ("test", BOXES_13, "0000000000000003,freeform,/m/02,1,0.5,0.6,0.7,0.8,0,0,0,1,0"),
    ):
        (src / split).mkdir(parents=True)
        (src / split / "annotations-human-bbox.csv").write_text(f"{header}\n{row}\n")
    oic = tmp_path / "b.oic"
    convert_quiet(src, oic)
    assert_round_trip(oic, src, tmp_path)
    with oicore.open(oic) as r:
        b = r.boxes_for_image("0000000000000001")
        assert b.is_occluded.tolist() == [-1] and b.is_inside.tolist() == [-1]  # missing attributes read as -1
        assert r.boxes_for_image("0000000000000002").is_group_of.tolist() == [-1]
        assert r.boxes_for_image("0000000000000002").is_occluded.tolist() == [1]


@pytest.mark.parametrize(
    "name, data",
    [
        ("train/annotations-human.csv", b"ImageID,Source,LabelName,Confidence\n"),
        ("train/annotations-human.csv", b"ImageID,Source,LabelName,Confidence"),
        ("train/annotations-human.csv", b"\xef\xbb\xbfImageID,Source,LabelName,Confidence\r\n"),
        ("train/annotations-human-bbox.csv", (BOXES_13 + "\n").encode()),
        ("train/images.csv", (IMAGES_V3 + "\r\n").encode()),
        ("oidv7-class-descriptions.csv", b"LabelName,DisplayName\n"),
        ("class-descriptions.csv", b""),
        ("classes.txt", b""),
    ],
    ids=["labels", "labels-no-newline", "labels-bom-crlf", "boxes", "images", "descriptions-header", "descriptions-empty", "class-list-empty"],
)
def test_empty_files_round_trip(tmp_path, name, data):
    src = tmp_path / "release"
    (src / name).parent.mkdir(parents=True, exist_ok=True)
    (src / name).write_bytes(data)
    (src / "class-descriptions-boxable.csv").write_bytes(b"/m/01,Cat\n")  # one non-empty file beside it
    oic = tmp_path / "e.oic"
    convert_quiet(src, oic)
    assert_exports_identical(oic, src, tmp_path)
    verify(oic, against=[src])
    assert sum(s["size"] for s in info(oic)["sources"]) == len(data) + len(b"/m/01,Cat\n")


@pytest.mark.parametrize(
    "name, data",
    [
        ("train/annotations-human.csv", b"ImageID,Source,LabelName,Confidence\n0000000000000001,verification,/m/01,1\n"),
        ("train/annotations-human.csv", b"ImageID,Source,LabelName,Confidence\n0000000000000001,verification,/m/01,1"),
        ("train/annotations-human-bbox.csv", (BOXES_8 + "\r\n0000000000000001,xclick,/m/01,1,0.1,0.2,0.3,0.4\r\n").encode()),
        ("train/images.csv", (IMAGES_V3 + '\n0000000000000001,train,u,l,c,a,"x","y",1,EEGQ0ZQ/OxJAIGzfJ6LMvw==,\n').encode()),
        # Integers beyond what packed integers hold (a base of 2^62 or more) are stored raw.
        ("train/images.csv", (IMAGES_V3 + '\n0000000000000001,train,u,l,c,a,"x","y",9223372036854775807,EEGQ0ZQ/OxJAIGzfJ6LMvw==,\n').encode()),
        ("class-descriptions.csv", b"/m/01,Cat"),
        ("classes.txt", b"/m/01\n"),
    ],
    ids=["labels", "labels-no-newline", "boxes-crlf", "images", "images-int64-max", "descriptions", "class-list"],
)
def test_one_row_files_round_trip(tmp_path, name, data):
    src = tmp_path / "release"
    (src / name).parent.mkdir(parents=True, exist_ok=True)
    (src / name).write_bytes(data)
    oic = tmp_path / "one.oic"
    convert_quiet(src, oic)
    assert_round_trip(oic, src, tmp_path)


def _boxes_release(root: Path, train_rows: list[str], other_rows: list[str]) -> Path:
    for split, rows in (("train", train_rows), ("validation", other_rows)):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / split / "annotations-human-bbox.csv").write_text(BOXES_13 + "\n" + "".join(r + "\n" for r in rows))
    return root


def test_integer_and_one_decimal_spellings_in_other_parts_need_no_exceptions(tmp_path):
    """V7 human labels: "1"/"0" in train, "1.0"/"0.0" in validation. Each part's spelling renders at the
    table's scale, so neither part's rows become exceptions."""
    src = tmp_path / "release"
    for split, conf in (("train", ["1", "0", "1", "1"]), ("validation", ["1.0", "0.0", "1.0", "0.5"])):
        (src / split).mkdir(parents=True)
        rows = [f"{i:016x},verification,/m/0{i},{c}" for i, c in enumerate(conf)]
        (src / split / "annotations-human.csv").write_text(LABELS + "\n" + "".join(r + "\n" for r in rows))
    oic = tmp_path / "c.oic"
    report, _ = convert_quiet(src, oic)
    assert_round_trip(oic, src, tmp_path)
    assert report.exceptions == 0


def test_fixed_decimals_beside_longer_shortest_spellings_need_no_exceptions(tmp_path):
    """V5-V7 boxes: train coordinates are fixed 6 decimals (from 2018_04), validation and test are float32
    printed shortest (up to 10 digits). Exact either way, but every train row is kept as raw bytes today
    (14.6 M rows in the real release): the table's one decimal scale is the longest spelling's, and "fixed"
    renders exactly that many digits (FORMAT.md, "Number spellings")."""
    src = _boxes_release(
        tmp_path / "release",
        [f"{i:016x},xclick,/m/01,1,0.{i + 1:06d},0.500000,0.250000,0.750000,0,0,0,0,0" for i in range(40)],
        [f"{i + 100:016x},xclick,/m/01,1,0.022673031,0.9642005,0.07103825,0.80054647,0,0,0,0,0" for i in range(3)],
    )
    oic = tmp_path / "f.oic"
    report, _ = convert_quiet(src, oic)
    assert_round_trip(oic, src, tmp_path)
    assert report.exceptions <= 3, f"{report.exceptions} of 43 rows kept as raw bytes"


@pytest.mark.parametrize("spelling", ["1.0000000000000000000", "0.5000000000000000000000000", "0.123456789012345678"])
def test_numbers_spelled_with_more_decimals_than_a_part_may_declare_round_trip(tmp_path, spelling):
    """A part declares at most 18 fixed decimals (FORMAT.md, "decimals"): a column written with 19 or more
    (``%.20f``) has its rows kept as raw bytes, and the file opens and exports byte-identical."""
    src = tmp_path / "release"
    (src / "train").mkdir(parents=True)
    rows = [f"{i:016x},machine,/m/0{i},{spelling}" for i in range(3)]
    (src / "train" / "annotations-machine.csv").write_text(LABELS + "\n" + "".join(r + "\n" for r in rows))
    oic = tmp_path / "d.oic"
    convert_quiet(src, oic)
    assert_round_trip(oic, src, tmp_path)
    with oicore.open(oic, verify=True) as release:
        assert release.labels(f"{0:016x}").confidence[0] == np.float32(float(spelling))


def test_an_image_in_two_splits_keeps_the_first_and_warns_naming_both_files(tmp_path):
    src = tmp_path / "release"
    for split, rows in (("train", ["000002b66c9c498e,verification,/m/01,1"]),
                        ("validation", ["000002b66c9c498e,verification,/m/02,1", "00000000000000ff,verification,/m/02,1"])):
        (src / split).mkdir(parents=True)
        (src / split / "annotations-human.csv").write_text(LABELS + "\n" + "".join(r + "\n" for r in rows))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        oicore.convert(src, tmp_path / "s.oic", progress=False)
    messages = [str(w.message) for w in caught if "second split" in str(w.message)]
    assert messages == [
        "1 images are listed under a second split: 000002b66c9c498e is train in train/annotations-human.csv but "
        "validation in validation/annotations-human.csv; each image keeps the split of the first file that lists it"
    ]
    with oicore.open(tmp_path / "s.oic") as release:
        assert [f"{i:016x}" for i in release.image_ids("validation")] == ["00000000000000ff"]
        assert [f"{i:016x}" for i in release.image_ids("train")] == ["000002b66c9c498e"]
    assert_round_trip(tmp_path / "s.oic", src, tmp_path)


def test_mids_in_no_description_file_warn_once_per_file(tmp_path):
    """A relationship file with unnamed MIDs in both label columns gets one warning, naming the file."""
    src = tmp_path / "release"
    src.mkdir()
    (src / "class-descriptions.csv").write_text("/m/01,Cat\n")
    header = "ImageID,LabelName1,LabelName2,XMin1,XMax1,YMin1,YMax1,XMin2,XMax2,YMin2,YMax2,RelationshipLabel\n"
    row = "00000000000000aa,/m/0x,/m/0y,0.1,0.2,0.1,0.2,0.3,0.4,0.3,0.4,at\n"
    (src / "validation-annotations-vrd.csv").write_text(header + row)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        oicore.convert(src, tmp_path / "w.oic", progress=False)
    unnamed = [str(w.message) for w in caught if "no class description file" in str(w.message)]
    assert len(unnamed) == 1 and "validation-annotations-vrd.csv" in unnamed[0], unnamed
    assert_round_trip(tmp_path / "w.oic", src, tmp_path)


def test_parts_whose_scales_do_not_fit_together_store_floats(tmp_path):
    """Each part's decimals are narrowed on their own; when the table's one scale would push a part's
    integers past 2**53, the column is stored as float64 and still exports byte-identical."""
    src = tmp_path / "release"
    for split, conf in (("train", ["123456789012345", "0", "7"]), ("validation", ["0.123456789", "1", "0.5"])):
        (src / split).mkdir(parents=True)
        rows = [f"{i:016x},verification,/m/0{i},{c}" for i, c in enumerate(conf)]
        (src / split / "annotations-human.csv").write_text(LABELS + "\n" + "".join(r + "\n" for r in rows))
    oic = tmp_path / "f.oic"
    convert_quiet(src, oic)
    assert_round_trip(oic, src, tmp_path)
    from oicore.inspection import info

    columns = {c["name"]: c["encoding"] for c in info(oic)["tables"]["human_labels"]["columns"]}
    assert columns["Confidence"] == "float64"


def test_rows_checked_a_few_at_a_time_round_trip(tmp_path_factory, tmp_path, monkeypatch):
    """Convert compares a part with its source a chunk of rows at a time (and lets go of the source's pages
    behind it); exceptions, unsorted parts and text columns come out the same with chunks of 1, 2 and 3 rows."""
    from oicore import converter

    src, _, _, _ = tiny(tmp_path_factory)
    ranges = []
    real_ranges = converter._ranges
    monkeypatch.setattr(converter, "_ranges", lambda part, threads: ranges.append(real_ranges(part, threads)) or ranges[-1])
    for chunk in (1, 2, 3):
        monkeypatch.setattr(converter, "_EXACT_CHUNK", chunk)
        monkeypatch.setattr(converter, "_RELEASE_STEP", 4096)
        oic = tmp_path / f"c{chunk}.oic"
        # Small reader blocks give checkpoints: long parts are checked as several ranges side by side.
        report, _ = convert_quiet(src, oic, block_size=64, threads=2)
        assert report.exceptions >= 2
        assert_round_trip(oic, src, tmp_path / f"out{chunk}")
    assert max(len(r) for r in ranges) >= 2


def test_text_of_many_chunks_and_parts_missing_the_column_combines_in_order():
    import pyarrow as pa

    from oicore.converter import _combine_text
    from oicore.parts import Narrow

    class P:  # the two fields _combine_text reads
        def __init__(self, rows, text=None):
            self.rows = rows
            self.columns = {} if text is None else {"Title": Narrow("strings", text=text)}

    sliced = pa.array(["x", "héllo", "", "a,b"], pa.string()).slice(1)  # a chunk with an offset
    parts = [P(3, pa.chunked_array([pa.array(["1", "22"]), sliced])), P(2), P(1, pa.chunked_array([pa.array(["z"])]))]
    offsets, data = _combine_text("Title", parts)
    got = [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(len(offsets) - 1)]
    want = ["1", "22", "héllo", "", "a,b", "", "", "z"]
    assert got == want
    assert all("Title" not in p.columns for p in parts)  # the parts let go of their chunks

    # In the table's row order: each row copied straight to its place.
    parts = [P(3, pa.chunked_array([pa.array(["1", "22"]), sliced])), P(2), P(1, pa.chunked_array([pa.array(["z"])]))]
    order = np.array([7, 2, 0, 5, 4, 1, 3, 6])
    offsets, data = _combine_text("Title", parts, order)
    got = [bytes(data[offsets[i] : offsets[i + 1]]).decode() for i in range(len(offsets) - 1)]
    assert got == [want[i] for i in order]


def test_reader_spares_are_limited_while_converting(tmp_path_factory, tmp_path):
    from oicore import _csv

    before = _csv.spare_limit()
    assert _csv.spare_limit(1 << 20) == before
    assert _csv.spare_limit(before) == 1 << 20
    src, _, _, _ = tiny(tmp_path_factory)
    convert_quiet(src, tmp_path / "s.oic")
    assert _csv.spare_limit() == before


# ---------------------------------------------------------------------------------------------- atomicity


def _damaged_copy(src: Path, dst: Path, name: str, line: int) -> bytes:
    """A copy of release ``src`` whose file ``name`` has a letter O typed for a zero on ``line`` (1-based)."""
    shutil.copytree(src, dst)
    path = dst / name
    lines = path.read_bytes().split(b"\n")
    fields = lines[line - 1].split(b",")
    fields[4] = b"O.250000"  # XMin
    lines[line - 1] = b",".join(fields)
    path.write_bytes(b"\n".join(lines))
    return path.read_bytes()


@pytest.mark.parametrize("block_size", [None, 4096])
def test_failed_convert_leaves_nothing_and_names_file_and_line(tmp_path_factory, tmp_path, block_size):
    src, _, _, _ = synthetic(tmp_path_factory, "v3")
    name = "train/annotations-human-bbox.csv"
    n_lines = (src / name).read_bytes().count(b"\n")
    line = n_lines - 3  # deep in the file: with 4 KiB blocks, dozens of blocks after the first
    bad = tmp_path / "bad"
    _damaged_copy(src, bad, name, line)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "release.oic"
    with pytest.raises(CSVError) as e:
        convert_quiet(bad, out, block_size=block_size)
    assert e.value.line == line
    assert e.value.path is not None and Path(e.value.path).as_posix().endswith(name)
    assert e.value.column_name == "XMin"
    assert f"line {line}" in str(e.value) and name.split("/")[-1] in str(e.value)
    assert list(out_dir.iterdir()) == []  # no target, no temporary file


# ---------------------------------------------------------------------------------------------- tar archives


def _archives(src: Path, out: Path, groups: dict[str, list[str]], mode: str = "w:gz") -> list[Path]:
    """The files of release ``src`` packed into archives as Google ships them: {archive name: member globs}."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for archive, patterns in groups.items():
        path = out / archive
        with tarfile.open(path, mode) as tar:
            for pattern in patterns:
                for f in sorted(src.glob(pattern)):
                    tar.add(f, arcname=f.relative_to(src).as_posix())
        paths.append(path)
    return paths


_V3_ARCHIVES = {
    "images_2017_07.tar.gz": ["*/images.csv"],
    "annotations_human_2017_07.tar.gz": ["*/annotations-human.csv"],
    "machine_ann_2017_07.tar.gz": ["*/annotations-machine.csv"],
    "annotations_human_bbox_2017_07.tar.gz": ["*/annotations-human-bbox.csv"],
    "classes_2017_07.tar": ["class-descriptions.csv", "classes*.txt"],
}


@pytest.mark.parametrize("block_size", [None, 4096])
def test_tar_archives_convert_like_the_folder_and_export_byte_identical(tmp_path_factory, tmp_path, monkeypatch, block_size):
    """Members are parsed, sampled, hashed and compared as streams; with small reader blocks a member is
    compared with its rows one block at a time."""
    from oicore import converter

    src, folder_oic, _, _ = synthetic(tmp_path_factory, "v3")
    archives = _archives(src, tmp_path / "downloads", _V3_ARCHIVES)
    oic = tmp_path / "from-archives.oic"
    windows = []
    real = converter._compare_stream
    monkeypatch.setattr(converter, "_compare_stream", lambda part, compare: real(part, lambda *a: windows.append(len(a[2])) or compare(*a)))
    report, _ = convert_quiet(archives, oic, block_size=block_size)
    assert len(windows) > (20 if block_size else 0)
    assert sorted(s["name"] for s in report.sources) == sorted(found_sources(src))
    a, b = Store(folder_oic), Store(oic)
    try:
        for x, y in zip(a.provenance["sources"], b.provenance["sources"], strict=True):
            assert (x["name"], x["sha256"], x["size"], x["table"], x["split"]) == (y["name"], y["sha256"], y["size"], y["table"], y["split"])
    finally:
        a.close()
        b.close()
    assert oic.stat().st_size == folder_oic.stat().st_size
    assert_exports_identical(oic, src, tmp_path)
    assert verify(oic, against=[src])["compared"] == len(found_sources(src))
    assert verify(oic, against=archives)["compared"] == len(found_sources(src))  # members read as streams


def test_verify_against_an_archive_names_the_member_and_line_that_differ(tmp_path_factory, tmp_path):
    from oicore.inspection import VerifyMismatchError

    src, oic, _, _ = synthetic(tmp_path_factory, "v3")
    changed = tmp_path / "changed"
    shutil.copytree(src, changed)
    name = "test/annotations-human.csv"
    lines = (changed / name).read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b",1", b",0", 1) if b",1" in lines[3] else lines[3].replace(b",0", b",1", 1)
    (changed / name).write_bytes(b"\n".join(lines))
    archives = _archives(changed, tmp_path / "downloads", _V3_ARCHIVES)
    with pytest.raises(VerifyMismatchError) as e:
        verify(oic, against=archives)
    assert e.value.line == 4 and f"annotations_human_2017_07.tar.gz:{name}" in str(e.value)


def test_bad_data_in_an_archive_names_the_member_and_line(tmp_path_factory, tmp_path):
    src, _, _, _ = synthetic(tmp_path_factory, "v3")
    bad = tmp_path / "bad"
    name = "validation/annotations-human-bbox.csv"
    _damaged_copy(src, bad, name, 5)
    archives = _archives(bad, tmp_path / "downloads", _V3_ARCHIVES)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(CSVError) as e:
        convert_quiet(archives, out_dir / "release.oic")
    assert e.value.line == 5 and e.value.column_name == "XMin"
    assert f"annotations_human_bbox_2017_07.tar.gz:{name}" in str(e.value)
    assert list(out_dir.iterdir()) == []


def test_a_truncated_archive_raises_and_leaves_nothing(tmp_path_factory, tmp_path):
    src, _, _, _ = synthetic(tmp_path_factory, "v3")
    (archive,) = _archives(src, tmp_path / "downloads", {"images_2017_07.tar.gz": ["*/images.csv"]})
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(UnsupportedFileError, match="images_2017_07.tar.gz"):
        convert_quiet([archive, src / "class-descriptions.csv"], out_dir / "release.oic")
    assert list(out_dir.iterdir()) == []


@pytest.mark.parametrize("damage", ["data", "crc", "trailer"])
def test_a_damaged_gzip_archive_raises_and_leaves_nothing(tmp_path, damage):
    """A corrupted download whose gzip CRC or length no longer matches (tarfile stops before the trailer) is
    refused before anything is written, not converted with the damaged values."""
    import gzip

    body = LABELS.encode() + b"\n000002b66c9c498e,verification,/m/01,1\n"
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("2017_11/train/annotations-human.csv")
        info.size = len(body)
        tar.addfile(info, io.BytesIO(body))
    gz = bytearray(gzip.compress(raw.getvalue(), compresslevel=0, mtime=0))  # stored blocks: bytes as they are
    if damage == "data":
        gz[bytes(gz).index(b"/m/01,1\n") + len(b"/m/01,")] = ord("0")  # Confidence 1 -> 0
    elif damage == "crc":
        gz[-8] ^= 1
    else:
        del gz[-8:]
    archive = tmp_path / "annotations_human_2017_11.tar.gz"
    archive.write_bytes(gz)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(UnsupportedFileError, match="annotations_human_2017_11.tar.gz: expected an intact tar archive"):
        convert_quiet(archive, out_dir / "release.oic")
    assert list(out_dir.iterdir()) == []


def test_failed_convert_keeps_an_existing_target_even_with_force(tmp_path_factory, tmp_path):
    src, _, _, _ = synthetic(tmp_path_factory, "v3")
    bad = tmp_path / "bad"
    _damaged_copy(src, bad, "validation/annotations-human-bbox.csv", 5)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "release.oic"
    out.write_bytes(b"previous file")
    with pytest.raises(CSVError):
        convert_quiet(bad, out, force=True)
    assert out.read_bytes() == b"previous file"
    assert [p.name for p in out_dir.iterdir()] == ["release.oic"]


def test_existing_target_is_kept_without_force_and_replaced_with_it(tmp_path):
    src = write_tiny_release(tmp_path / "release")
    out = tmp_path / "t.oic"
    out.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        convert_quiet(src, out)
    assert out.read_bytes() == b"keep me"
    report, _ = convert_quiet(src, out, force=True)
    assert out.read_bytes()[:4] == b"\x89OIC"
    assert report.path == out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release", "t.oic"]
    assert_exports_identical(out, src, tmp_path)


def _run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "oicore", *map(str, args)], env=cli_env(), capture_output=True, text=True, timeout=120, **kw)


def test_killed_convert_leaves_nothing_at_the_target(tmp_path_factory, tmp_path):
    src, _, _, _ = synthetic(tmp_path_factory, "v7")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "killed.oic"
    proc = subprocess.Popen([sys.executable, "-m", "oicore", "convert", str(src), "-o", str(out), "--quiet"], env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        # Kill once the temporary file exists (the writer is part-way), or at the latest when the process ends.
        while time.monotonic() < deadline and proc.poll() is None and not any(p.name.endswith(".tmp") for p in out_dir.iterdir()):
            time.sleep(0.005)
        killed = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert killed, "the convert finished before it could be killed; use a bigger release"
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()
    # A stale temporary file may stay beside the target; it is never at the target path, and the next convert works.
    report, _ = convert_quiet(src, out)
    assert out.exists() and report.path == out


# ---------------------------------------------------------------------------------------------- CLI exit codes


def test_cli_exit_codes(tmp_path_factory, tmp_path):
    from oicore.cli import main

    src = write_tiny_release(tmp_path / "release")
    out = tmp_path / "cli.oic"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OicoreWarning)
        assert main(["convert", str(src), "-o", str(out), "--quiet"]) == 0
        assert out.exists()
        # An existing target without --force is a usage error, and the file stays.
        before = out.read_bytes()
        assert main(["convert", str(src), "-o", str(out), "--quiet"]) == 2
        assert out.read_bytes() == before
        assert main(["convert", str(src), "-o", str(out), "--quiet", "--force"]) == 0
        # A missing source is a usage error.
        assert main(["convert", str(tmp_path / "nowhere"), "-o", str(tmp_path / "x.oic"), "--quiet"]) == 2
    for bad_args in (["convert", str(src)], ["convert", str(src), "-o", str(tmp_path / "y.oic"), "--level", "99"],
                     ["convert", str(src), "-o", str(tmp_path / "y.oic"), "--release", "v9"], ["export", str(out)]):
        with pytest.raises(SystemExit) as e:
            main(bad_args)
        assert e.value.code == 2, bad_args
    assert not (tmp_path / "y.oic").exists()


def test_more_files_of_a_table_than_a_file_holds_is_a_usage_error(tmp_path):
    """row_part gives each row's part in a byte: 256 shards of a table convert (and open), 257 are refused before
    anything is written, naming the table (CLI exit 2)."""
    from oicore.cli import main
    from oicore.format import MAX_PARTS
    from oicore.sources import TooManyFilesError

    src = tmp_path / "release"
    (src / "train").mkdir(parents=True)
    for i in range(MAX_PARTS + 1):
        row = f"{i + 1:016x},machine,/m/01,0.5\n"
        (src / "train" / f"train-annotations-machine-imagelabels-{i:05d}.csv").write_text(LABELS + "\n" + row)
    out = tmp_path / "many.oic"
    with pytest.raises(TooManyFilesError, match=rf"{MAX_PARTS + 1} files of the machine_labels table"):
        oicore.convert(src, out, progress=False)
    assert main(["convert", str(src), "-o", str(out), "--quiet"]) == 2
    assert not out.exists() and not list(tmp_path.glob("*.tmp*"))
    (src / "train" / f"train-annotations-machine-imagelabels-{MAX_PARTS:05d}.csv").unlink()
    convert_quiet(src, out)
    with oicore.open(out, verify=True) as release:
        assert len(release.labels(f"{MAX_PARTS:016x}")) == 1


def test_cli_bad_data_exits_1_naming_file_and_line(tmp_path_factory, tmp_path):
    src = write_tiny_release(tmp_path / "release")
    path = src / "train" / "annotations-human-bbox.csv"
    path.write_bytes(path.read_bytes().replace(b"0.250000", b"O.250000"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = _run_cli("convert", src, "-o", out_dir / "bad.oic", "--quiet")
    assert r.returncode == 1, r.stderr
    assert "annotations-human-bbox.csv" in r.stderr and "line 3" in r.stderr, r.stderr
    assert list(out_dir.iterdir()) == []
    # The same through a subprocess for a usage error: exit 2 and nothing written.
    r = _run_cli("convert", src, "--quiet")
    assert r.returncode == 2


# ---------------------------------------------------------------------------------------------- long text values

_IMAGES_HEADER = b"ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,OriginalSize,OriginalMD5,Thumbnail300KURL\n"


def _images_row(image_id: int, title: bytes) -> bytes:
    return b"%016x,train,u,l,lic,p,a,%s,1,m,t\n" % (image_id, title)


def test_the_longest_text_value_the_format_stores_round_trips(tmp_path):
    from oicore.columns import MAX_TEXT_FIELD

    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    body = _images_row(1, b"t") + _images_row(2, b'"' + b"x" * (MAX_TEXT_FIELD - 2) + b'"') + _images_row(3, b"y" * MAX_TEXT_FIELD)
    (src / "train" / "images.csv").write_bytes(_IMAGES_HEADER + body)
    convert_quiet([src], tmp_path / "r.oic")
    assert_exports_identical(tmp_path / "r.oic", [src], tmp_path)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_text_value_longer_than_the_format_stores_is_bad_data_named_by_line_and_column(tmp_path, threads):
    """read_csv takes any length; convert rejects a value no block can hold, at its file, line and column
    (a line break inside an earlier quoted value counts), and leaves nothing at the target."""
    from oicore.columns import MAX_TEXT_FIELD

    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    rows = [_images_row(k, b'"two\nlines"' if k == 3 else b"t%d" % k) for k in range(1, 4000)]
    rows[3000] = _images_row(3001, b"z" * (MAX_TEXT_FIELD + 1))
    path = src / "train" / "images.csv"
    path.write_bytes(_IMAGES_HEADER + b"".join(rows))
    assert oicore.read_csv(path).num_rows == len(rows)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(CSVError) as e:
        convert_quiet([src], out_dir / "r.oic", threads=threads, block_size=64 << 10)
    assert (e.value.line, e.value.column, e.value.column_name) == (3003, 8, "Title")
    assert e.value.byte_offset == len(_IMAGES_HEADER) + sum(map(len, rows[:3000])) + len(rows[3000].split(b",z")[0]) + 1
    assert "images.csv" in str(e.value) and f"{MAX_TEXT_FIELD:,}" in str(e.value)
    assert list(out_dir.iterdir()) == []


def test_a_dictionary_value_longer_than_the_format_stores_is_named_too(tmp_path):
    from oicore.columns import MAX_TEXT_FIELD

    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    rows = [b"%016x,verification,/m/01g317,1\n" % k for k in range(10)]
    rows[6] = b"%016x,%s,/m/01g317,1\n" % (6, b"s" * (MAX_TEXT_FIELD + 5))
    (src / "train" / "annotations-human.csv").write_bytes(b"ImageID,Source,LabelName,Confidence\n" + b"".join(rows))
    with pytest.raises(CSVError) as e:
        convert_quiet([src], tmp_path / "r.oic")
    assert (e.value.line, e.value.column_name) == (8, "Source")


@pytest.mark.parametrize("text", [b"[]", b"{}", b"null", b'{"LabelName": "/m/0bl9f", "Subcategory": {}}', b"[" * 600 + b"]" * 600,
                                  b'{"LabelName": "/m/0bl9f", "Subcategory": ' + b'[{"LabelName": "/m/x", "Subcategory": ' * 600 + b"[]" + b"}]" * 600 + b"}"])
def test_a_hierarchy_file_that_is_not_a_label_tree_is_rejected_at_convert(tmp_path, text):
    from oicore.errors import HierarchyError

    src = tmp_path / "src"
    src.mkdir()
    (src / "class-descriptions.csv").write_bytes(b"/m/01g317,Person\n")
    (src / "bbox_labels_600_hierarchy.json").write_bytes(text)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(HierarchyError, match="bbox_labels_600_hierarchy.json"):
        convert_quiet([src], out_dir / "r.oic")
    assert list(out_dir.iterdir()) == []


def test_a_release_holds_at_most_255_source_values_counted_across_tables(tmp_path):
    """Lookups code Source in a byte (255: none): 255 distinct values across the label and box tables convert
    and look up; the 256th, here in the boxes file after 200 in the labels file, is bad data at its line."""
    from oicore.converter import MAX_SOURCES

    def release(n_values: int) -> Path:
        src = tmp_path / f"src{n_values}"
        (src / "train").mkdir(parents=True)
        labels = [b"%016x,src%d,/m/01g317,1\n" % (k, k) for k in range(200)]
        (src / "train" / "annotations-human.csv").write_bytes(b"ImageID,Source,LabelName,Confidence\n" + b"".join(labels))
        boxes = [b"%016x,src%d,/m/01g317,1,0.1,0.2,0.3,0.4\n" % (k, k) for k in range(150, n_values)]
        (src / "train" / "annotations-human-bbox.csv").write_bytes(b"ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax\n" + b"".join(boxes))
        return src

    src = release(MAX_SOURCES)
    convert_quiet([src], tmp_path / "ok.oic")
    with oicore.open(tmp_path / "ok.oic") as r:
        assert len(r.sources) == MAX_SOURCES
        lab = r.labels(199)
        assert [r.sources[c] for c in lab.source] == ["src199"]
        b = r.boxes_for_image(254)
        assert [r.sources[c] for c in b.source] == ["src254"]
    with pytest.raises(CSVError) as e:
        convert_quiet([release(MAX_SOURCES + 1)], tmp_path / "bad.oic")
    # the 256th value, src255, is the boxes file's 106th row (src150 is its first): line 107
    assert (e.value.line, e.value.column_name) == (107, "Source") and "annotations-human-bbox.csv" in str(e.value)
    assert not (tmp_path / "bad.oic").exists()


# ---------------------------------------------------------------------------------------------- tables side by side


def _damage_field(path: Path, line: int, column: int, value: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    fields = lines[line - 1].split(b",")
    fields[column] = value
    lines[line - 1] = b",".join(fields)
    path.write_bytes(b"\n".join(lines))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("damaged", [("images",), ("bbox",), ("images", "bbox")])
def test_the_error_raised_is_the_first_tables_whether_or_not_tables_run_side_by_side(tmp_path_factory, tmp_path, threads, damaged):
    """The images table is encoded beside the others (threads > 1). A bad file on either side fails the
    convert, leaves nothing, and of two bad tables the one named is the one first in table order, as
    one table at a time would name it."""
    src, _, _, _ = synthetic(tmp_path_factory, "v3")
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    images, bbox = "train/images.csv", "train/annotations-human-bbox.csv"
    if "images" in damaged:
        # OriginalSize; the line's Author and Title are quoted without commas in the synthetic release.
        _damage_field(bad / images, 5, 8, b"12x4")
    if "bbox" in damaged:
        _damage_field(bad / bbox, 7, 4, b"O.250000")  # XMin
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(CSVError) as e:
        convert_quiet(bad, out_dir / "release.oic", threads=threads)
    name, line, column = (images, 5, "OriginalSize") if "images" in damaged else (bbox, 7, "XMin")
    assert Path(e.value.path).as_posix().endswith(name)
    assert (e.value.line, e.value.column_name) == (line, column)
    assert list(out_dir.iterdir()) == []


@settings(max_examples=60, deadline=None)
@given(
    lists=st.lists(st.lists(st.integers(0, 2**64 - 1), max_size=30), min_size=1, max_size=5),
    superset=st.booleans(),
)
def test_union_of_sorted_id_lists_and_each_lists_positions(lists, superset):
    from oicore.converter import _union

    arrays = [np.unique(np.array(x, np.uint64)) for x in lists]
    if superset:  # one list holds every ID, as the images table usually does
        arrays.append(np.unique(np.concatenate(arrays)))
    merged, positions = _union(arrays)
    want = np.unique(np.concatenate(arrays)) if arrays else np.zeros(0, np.uint64)
    assert merged.dtype == np.uint64 and np.array_equal(merged, want)
    assert len(positions) == len(arrays)
    for a, at in zip(arrays, positions):
        assert np.array_equal(merged[at], a)


@pytest.mark.parametrize("limit", [0, None])
def test_the_images_table_runs_beside_the_others_only_under_the_size_limit(tmp_path_factory, tmp_path, monkeypatch, limit):
    """Above SIDE_BY_SIDE_MAX_BYTES of CSV (images and the largest other table) tables go one at a time, which
    bounds peak memory; either way the file exports byte-identical."""
    import threading

    from oicore import converter

    if limit is not None:
        monkeypatch.setattr(converter, "SIDE_BY_SIDE_MAX_BYTES", limit)
    threads_of = {}
    table = converter._Job.table

    def spy(self, name, sources):
        threads_of[name] = threading.current_thread().name
        return table(self, name, sources)

    monkeypatch.setattr(converter._Job, "table", spy)
    src, _, _, _ = synthetic(tmp_path_factory, "v3")
    out = tmp_path / "r.oic"
    convert_quiet(src, out, threads=2)
    assert threads_of["images"].startswith("oicore-images") == (limit is None)
    assert all(name == threading.main_thread().name for t, name in threads_of.items() if t != "images")
    assert verify(out, against=[src])["compared"] == len(found_sources(src))
