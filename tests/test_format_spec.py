"""FORMAT.md against the code: its constants, and a pure-Python reader written from it alone.

``format_reader.py`` knows nothing of oicore. On synthetic releases and the tiny hand-made one, what it
decodes must equal what oicore's fast reader decodes (``oicore.store.Store``, ``oicore.open(...).table``),
and its export, rendered in Python from FORMAT.md "Export", must equal the source files byte for byte.
"""

from __future__ import annotations

import hashlib
import re
import struct
from pathlib import Path

import numpy as np
import pytest

import format_reader as fr
import oicore
from oicore import columns as C
from oicore import format as fmt
from oicore.store import Store
from test_convert import RELEASES, found_sources, norm, synthetic, tiny

ROOT = Path(__file__).resolve().parents[1]
SPEC = (ROOT / "FORMAT.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------------------------------------- constants


def _section(title: str) -> str:
    m = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", SPEC, re.S | re.M)
    assert m, title
    return m.group(1)


def _field_table(title: str) -> list[tuple[int, int, str]]:
    """(offset, size, field) rows of a structure's table."""
    rows = re.findall(r"^\| (\d+) \| (\d+) \| `?([\w ]+?)`? \|", _section(title), re.M)
    return [(int(o), int(s), f) for o, s, f in rows]


def _struct_offsets(layout: str) -> list[tuple[int, int]]:
    """(offset, size) of each field of a struct format, padding ('x') included as one field."""
    out, pos = [], 0
    for count, code in re.findall(r"(\d*)([a-zA-Z])", layout.lstrip("<")):
        n = int(count or 1)
        size = n if code in "sx" else struct.calcsize("<" + code) * n
        out.append((pos, size))
        pos += size
    return out


def test_constants_match_the_code():
    assert fr.MAGIC == fmt.MAGIC and fr.END_MAGIC == fmt.END_MAGIC
    assert re.search(rf"\| 8 \| 2 \| `major` \| {fmt.MAJOR} \|", SPEC)
    assert re.search(rf"\| 10 \| 2 \| `minor` \| {fmt.MINOR} \|", SPEC)
    assert f"Spec version **{fmt.MAJOR}.{fmt.MINOR}" in SPEC
    assert f"{fmt.MAJOR}.{fmt.MINOR}: tables" in SPEC  # the version-changes list names this version
    assert fmt.BLOCK_SIZE == fr.BLOCK == 1_048_576 and "1 MiB (1,048,576)" in SPEC
    assert fmt.ALIGNMENT == 64 and "multiple of 64 bytes" in SPEC
    assert fmt.HEADER_SIZE == fmt.FOOTER_SIZE == 64
    assert fr.crc32c(b"123456789") == 0xE3069283 and "0xE3069283" in SPEC
    assert "0x1EDC6F41" in SPEC
    assert f"the digits after the point this part writes (0 to {C.MAX_FIXED_DECIMALS})" in SPEC
    assert f"each physical row's part (so a table has at most {fmt.MAX_PARTS} parts)" in SPEC


def test_header_and_footer_tables_match_the_structs():
    header = _field_table("Header")
    assert [f for _, _, f in header] == ["magic", "major", "minor", "flags", "uuid", "file_length", "reserved", "header_crc"]
    assert sum(s for _, s, _ in header) == fmt.HEADER_SIZE
    assert [(o, s) for o, s, _ in header[:-1]] == _struct_offsets(fmt._HEADER.format)
    assert header[-1][:2] == (fmt._HEADER.size, 4)
    footer = _field_table("Footer")
    assert [f for _, _, f in footer] == ["directory_offset", "directory_length", "directory_crc", "flags", "uuid",
                                         "file_length", "reserved", "footer_crc", "end_magic"]
    assert sum(s for _, s, _ in footer) == fmt.FOOTER_SIZE
    assert [(o, s) for o, s, _ in footer[:-2]] == _struct_offsets(fmt._FOOTER.format)
    assert footer[-2][:2] == (fmt._FOOTER.size, 4)
    assert "`count` entries of 12 bytes" in SPEC  # the block table: uint32 stored, raw, crc


def test_documented_names_match_the_code():
    from oicore import _render, columns

    codes = re.search(r"`dtype` is one of `([^`]+)`", SPEC).group(1).split()
    assert sorted(codes) == sorted(columns._DTYPES)
    styles = re.findall(r"^`(\w+)`: ", _section("Number spellings (`style`)"), re.M) + re.findall(r"; `(\w+)`: ", SPEC)
    assert sorted(set(styles)) == sorted(_render.STYLES)
    encodings = re.findall(r"^\| `(\w+)` \| [^|]*\| [^|]+\|$", _section("Column encodings"), re.M)
    assert {"image", "code", "dict", "decimal", "int", "float64", "strings"} <= set(encodings)
    from oicore.textcodec import ENCODINGS

    assert set(ENCODINGS) <= set(encodings)  # every encoding convert may write is specified
    assert '`"raw"` or `"zstd"`' in SPEC and fmt.CODECS == ("raw", "zstd")
    assert '`"\\n"`, `"\\r\\n"` or `"\\r"`' in SPEC


# ---------------------------------------------------------------------------------------------- the slow reader


def _fast_columns(store: Store, name: str) -> dict[str, list]:
    """oicore's decoded columns of a table, per physical row, as plain Python values."""
    t = store.tables[name]
    mids = store.mids()
    out = {}
    for col_name, entry in t.columns.items():
        if entry["encoding"] == "image":
            out[col_name] = [int(x) for x in t.row_image_ids(np.arange(t.rows)).tolist()]
            continue
        col = t.column(col_name)
        if col.encoding == "code":
            values = [mids[v] for v in col.values.tolist()]
        elif col.encoding == "dict":
            values = [col.dictionary[v] for v in col.values.tolist()]
        elif col.encoding == "strings":
            data = bytes(col.data)
            values = [data[a:b].decode("utf-8") for a, b in zip(col.offsets[:-1].tolist(), col.offsets[1:].tolist())]
        elif col.encoding in ("decimal", "float64"):
            values = col.floats().tolist()
        else:
            values = col.values.tolist()
        if col.nulls is not None:
            values = [None if null else v for v, null in zip(values, col.nulls.tolist())]
        out[col_name] = values
    return out


def _check_against_fast_reader(oic: Path, src: Path) -> int:
    slow = fr.OicFile(oic.read_bytes())
    store = Store(oic)
    try:
        assert slow.uuid == store.container.uuid
        assert slow.vocabulary() == store.mids()
        im = slow.images()
        fast_im = store.images
        assert im["ids"] == fast_im["ids"].tolist()
        assert im["buckets"] == fast_im["buckets"].tolist() and im["bits"] == fast_im["bucket_bits"]
        assert im["split"] == fast_im["split"].tolist()
        for name in slow.table_names():
            want = _fast_columns(store, name)
            got = slow.table(name)
            assert list(got) == list(want), name
            for col in got:
                g, w = [norm(v) for v in got[col]], [norm(v) for v in want[col]]
                if g != w:
                    bad = next(i for i, (a, b) in enumerate(zip(g, w)) if a != b)
                    pytest.fail(f"{oic.name}: table {name!r} column {col!r} row {bad}: FORMAT.md reader {g[bad]!r}, oicore {w[bad]!r}")
    finally:
        store.close()
    # Export, rendered in Python from FORMAT.md alone.
    found = found_sources(src)
    n = 0
    for source, table, k in slow.sources():
        data = slow.export_part(table, k)
        assert hashlib.sha256(data).hexdigest() == source["sha256"], f"{source['name']}: {_diff(data, found[source['name']].path.read_bytes())}"
        n += 1
    assert n == len(found)
    # The lookup parts' rows, as the fast reader's Release.table gives them.
    with oicore.open(oic) as release:
        for name in slow.table_names():
            if name == "hierarchy":
                continue
            parts = slow.directory["tables"][name]["parts"]
            lookup = [k for k, p in enumerate(parts) if not slow.provenance["sources"][p["source"]]["export_only"]]
            if not lookup:
                continue
            fast = release.table(name).to_pylist()
            rows = [r for k in lookup for r in slow.part_rows(name, k)]
            assert len(fast) == len(rows), name
            for i, (a, b) in enumerate(zip(fast, rows)):
                a = {c: norm(v) for c, v in a.items() if c in b}
                assert a == {c: norm(v) for c, v in b.items()}, (name, i)
    return n


def _diff(got: bytes, want: bytes) -> str:
    i = next((k for k in range(min(len(got), len(want))) if got[k] != want[k]), min(len(got), len(want)))
    return f"differs at byte {i}: {got[max(0, i - 40) : i + 40]!r} vs {want[max(0, i - 40) : i + 40]!r}"


@pytest.mark.parametrize("release", RELEASES)
def test_slow_reader_agrees_on_synthetic_release(tmp_path_factory, release):
    src, oic, _, _ = synthetic(tmp_path_factory, release)
    assert _check_against_fast_reader(oic, src) > 5


def test_slow_reader_agrees_on_tiny_release(tmp_path_factory):
    src, oic, _, _ = tiny(tmp_path_factory)
    assert _check_against_fast_reader(oic, src) == len(found_sources(src))


def test_slow_reader_rejects_damaged_files(tmp_path_factory):
    """FORMAT.md's checks alone catch single-byte changes: a sample of offsets over every structure."""
    _, oic, _, _ = tiny(tmp_path_factory)
    data = oic.read_bytes()

    def read_everything(blob):
        f = fr.OicFile(blob)
        for i in range(len(f.segments)):
            f.frames(i)

    read_everything(data)
    missed = []
    for off in list(range(0, 64)) + list(range(64, len(data) - 64, 53)) + list(range(len(data) - 64, len(data))):
        for x in (0x01, 0x80):
            damaged = bytearray(data)
            damaged[off] ^= x
            try:
                read_everything(bytes(damaged))
            except (fr.SpecError, ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError):
                continue
            missed.append((off, x))
    assert not missed
    for length in (0, 63, 127, 128, len(data) // 2, len(data) - 1):
        with pytest.raises(fr.SpecError):
            fr.OicFile(data[:length])
