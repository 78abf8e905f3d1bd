"""The readers read the real Open Images files in ../shared/data exactly.

Values are checked against Python's csv module (the reference reader's contract) and
against facts about the files (row counts, quirks) listed in ../shared/data/README.md.
"""

import csv
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

from corpus import table_rows

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"no real data files in {SHARED_DATA}")

# (file, kind sniffed, rows)
FILES = [
    ("v3/class-descriptions.csv", "class_descriptions", 19_995),
    ("v3/classes.txt", "class_lists", 19_995),
    ("v3/classes-trainable.txt", "class_lists", 5_000),
    ("v3/classes-bbox.txt", "class_lists", 601),
    ("v3/classes-bbox-trainable.txt", "class_lists", 545),
    ("v4/class-descriptions-boxable.csv", "class_descriptions", 601),
    ("v1/dict.csv", "class_descriptions", 7_881),
]
HEADERLESS_NAMES = {"class_descriptions": ["LabelName", "DisplayName"], "class_lists": ["LabelName"]}


def python_csv_rows(path):
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.reader(f, strict=True))


@pytest.fixture(scope="module")
def tables(reader):
    """Each file read once per implementation (sniffed kind)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"no real data files in {SHARED_DATA}")
    return {name: reader(SHARED_DATA / name) for name, _, _ in FILES}


@pytest.mark.parametrize("name, kind, rows", FILES, ids=[f[0] for f in FILES])
def test_real_file_matches_python_csv(tables, name, kind, rows):
    table = tables[name]
    assert table.num_rows == rows
    assert table.schema.metadata[b"oicore.kind"] == kind.encode()
    assert table.column_names == HEADERLESS_NAMES[kind]
    assert table.schema.field("LabelName").type == pa.dictionary(pa.int32(), pa.string())
    if kind == "class_descriptions":
        assert table.schema.field("DisplayName").type == "string"
    assert table_rows(table) == [tuple(r) for r in python_csv_rows(SHARED_DATA / name)]


@pytest.mark.parametrize("name, kind, rows", FILES, ids=[f[0] for f in FILES])
def test_real_file_with_explicit_kind(reader, tables, name, kind, rows):
    sniffed = tables[name]
    explicit = reader(SHARED_DATA / name, kind=kind)
    assert explicit.schema.metadata == sniffed.schema.metadata
    assert table_rows(explicit) == table_rows(sniffed)


def test_v3_class_descriptions_quirks(tables):
    path = SHARED_DATA / "v3/class-descriptions.csv"
    data = path.read_bytes()
    # The quirks this test relies on are really in the file: mixed CRLF and LF, no BOM, non-ASCII.
    assert data.count(b"\r\n") == 19_874 and data.count(b"\n") == 19_995 and not data.startswith(b"\xef\xbb\xbf")
    names = dict(table_rows(tables["v3/class-descriptions.csv"]))
    assert names["/m/02wvth"] == 'Fiat 500 "topolino"'
    assert names["/m/01c_0l"] == "Ducks, geese and swans"
    assert names["/m/01vqj0"] == " Anole"  # leading space kept
    assert "West Indian raspberry " in names.values()  # trailing space kept
    assert "Large-flowered evening primrose " in names.values()
    assert {"Citroën sm", "Crème brûlée", "Kakigōri"} <= set(names.values())
    assert "Toyota concept vehicles, 2000–09" in names.values()  # en dash, inside quotes
    assert len(names) == 19_995  # MIDs are unique
    # 121 records end in a bare LF among the CRLF ones (the first is line 827).
    assert data.split(b"\n")[826] == b"/m/01b503,Jeu de paume"
    assert names["/m/01b503"] == "Jeu de paume"
    last = data.rstrip(b"\r\n").rsplit(b"\n", 1)[1].decode()
    assert last == "/m/0zvk5,Helmet"
    assert names["/m/0zvk5"] == "Helmet"


def test_v1_dict_quirks(tables):
    data = (SHARED_DATA / "v1/dict.csv").read_bytes()
    # Every field is quoted, LF endings.
    assert all(line.startswith(b'"') and line.endswith(b'"') and line.count(b'","') == 1 for line in data.splitlines())
    rows = table_rows(tables["v1/dict.csv"])
    assert rows[0] == ("/g/1172hxxrk", "traditional sport")  # the first record, read as data
    assert rows[-1] == ("/m/0zvk5", "helmet")
    assert sum(mid.startswith("/g/") for mid, _ in rows) == 10
    assert ("/m/0zvk5", "helmet") in rows
    assert any(name == "large-flowered evening primrose " for _, name in rows)
    assert any(name == "kakigōri" for _, name in rows)
    assert "" not in {name for _, name in rows}


def test_class_lists_agree_with_descriptions(tables):
    descriptions = {mid for mid, _ in table_rows(tables["v3/class-descriptions.csv"])}
    classes = [mid for (mid,) in table_rows(tables["v3/classes.txt"])]
    assert set(classes) == descriptions
    bbox = {mid for (mid,) in table_rows(tables["v3/classes-bbox.txt"])}
    boxable = {mid for mid, _ in table_rows(tables["v4/class-descriptions-boxable.csv"])}
    assert bbox == boxable and len(bbox) == 601
    trainable = {mid for (mid,) in table_rows(tables["v3/classes-bbox-trainable.txt"])}
    assert trainable <= bbox


@needs_data
def test_reference_reads_bytes_like_the_file():
    from oicore.reference import read_csv_reference

    path = SHARED_DATA / "v3/class-descriptions.csv"
    assert read_csv_reference(path.read_bytes()).equals(read_csv_reference(path), check_metadata=True)
    assert read_csv_reference(str(path)).equals(read_csv_reference(path))


def test_reference_import_does_not_load_pyarrow():
    import oicore

    code = "import sys, oicore.reference; sys.exit('pyarrow' in sys.modules)"
    src = Path(oicore.__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=src).returncode == 0
