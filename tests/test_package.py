"""The package as a user meets it: install metadata, imports, CLI entry points, README."""

import pickle
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import oicore
from oicore import schema
from oicore.errors import CSVError, UnknownHeaderError

ROOT = Path(__file__).resolve().parents[1]


def run(*args, **kw):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120, **kw)


def test_version_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert oicore.__version__ == meta["project"]["version"]


def test_import_loads_neither_pandas_nor_pyarrow():
    code = "import sys, oicore; print(sorted(m for m in ('pandas', 'pyarrow', 'polars') if m in sys.modules))"
    out = run("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("entry", [["-m", "oicore"], ["-m", "oicore.cli"]])
def test_cli_version_and_help(entry):
    out = run(*entry, "--version")
    assert out.returncode == 0 and out.stdout.strip() == f"oicore {oicore.__version__}"
    out = run(*entry, "--help")
    assert out.returncode == 0
    for command in ("demo", "synth", "read", "schema"):
        assert command in out.stdout


def test_cli_without_command_is_usage_error():
    out = run("-m", "oicore")
    assert out.returncode == 2
    assert "usage" in out.stdout


def test_cli_bad_argument_is_usage_error():
    out = run("-m", "oicore", "synth", "x", "--scale", "-1")
    assert out.returncode == 2
    assert "expected a number > 0" in out.stderr


def test_cli_read_bad_data_exits_1_naming_file_and_line(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_bytes(b"ImageID,Source,LabelName,Confidence\n000002b66c9c498e,machine,/m/05s2s,0.9\nzz,machine,/m/0,1\n")
    out = run("-m", "oicore", "read", str(p))
    assert out.returncode == 1
    assert f"(file {p}, line 3, column 1 'ImageID')" in out.stderr


def test_cli_missing_file_is_usage_error(tmp_path):
    out = run("-m", "oicore", "read", str(tmp_path / "nope.csv"))
    assert out.returncode == 2
    assert "nope.csv" in out.stderr


def test_readme_schema_table_is_generated_from_schema():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- schema:begin -->\n(.*)\n<!-- schema:end -->", readme, re.S)
    assert block, "README lost its schema markers"
    assert block.group(1) == schema.markdown_table()


def test_readme_gives_the_two_setup_commands():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:15])
    assert "pip install . && oicore demo" in first_screen
    assert "pip install '.[test]' && pytest" in first_screen


def test_ci_runs_the_readme_test_command_verbatim():
    assert "pip install '.[test]' && pytest" in (ROOT / ".ci" / "run").read_text()


def test_status_codes_are_pinned():
    from oicore import _csv

    # include/oic_status.h: append only, never renumber.
    assert _csv.STATUS == {
        "OK": 0, "STRAY_QUOTE": 1, "AFTER_QUOTE": 2, "UNTERMINATED_QUOTE": 3, "EMPTY_LINE": 4,
        "TOO_MANY_FIELDS": 5, "TOO_FEW_FIELDS": 6, "UTF8": 7, "IMAGE_ID": 8, "NUMBER": 9, "INTEGER": 10,
        "INT_RANGE": 11, "EMPTY_REQUIRED": 12, "NO_MEMORY": 13, "CAPACITY": 14, "NEED_MORE": 15,
    }  # fmt: skip


def test_column_type_codes_match_c():
    header = (ROOT / "include" / "oic_csv.h").read_text()
    for t in schema.ColumnType:
        assert re.search(rf"OIC_COL_{t.name} = {int(t)}\b", header), t


def test_errors_are_value_errors_and_pickle():
    err = CSVError("expected x, got y", path="f.csv", line=3, column=2, column_name="Source", byte_offset=40)
    assert isinstance(err, ValueError) and isinstance(err, oicore.OicoreError)
    assert str(err) == "expected x, got y (file f.csv, line 3, column 2 'Source')"
    back = pickle.loads(pickle.dumps(err))
    assert (back.line, back.column, back.column_name, back.byte_offset, str(back)) == (
        3, 2, "Source", 40, str(err))  # fmt: skip
    u = UnknownHeaderError(["a", "b"], schema.closest_kinds(["a", "b"]), path="x.csv")
    assert pickle.loads(pickle.dumps(u)).closest == u.closest


def test_schema_kinds_are_consistent():
    for k in schema.KINDS.values():
        for v in k.variants:
            assert len(set(v.names)) == len(v.names), (k.name, v.names)
            assert set(v.releases) <= set(schema.RELEASES)
    # Sniffable headers never collide: each set of names identifies one kind.
    seen = {}
    for k in schema.KINDS.values():
        if k.sniffable and k.header is not schema.HeaderRule.NEVER:
            for v in k.variants:
                key = frozenset(v.names)
                assert key not in seen, (k.name, seen.get(key))
                seen[key] = k.name


def test_read_csv_loads_no_pandas(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_bytes(b"ImageID,Source,LabelName,Confidence\n000002b66c9c498e,machine,/m/05s2s,0.9\n")
    code = (
        "import sys, oicore; t = oicore.read_csv(sys.argv[1]); assert t.num_rows == 1; "
        "print('pandas' in sys.modules)"
    )
    out = run("-c", code, str(p))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_public_result_types_have_stubs():
    """The C result types are typed by a .pyi next to the extension, shipped with py.typed."""
    import ast

    from oicore import _lookup

    stub = ast.parse((Path(_lookup.__file__).with_name("_lookup.pyi")).read_text())
    classes = {n.name: n for n in stub.body if isinstance(n, ast.ClassDef)}
    for cls, attrs in (("Labels", ["label", "confidence", "source", "mids", "names"]), ("Boxes", ["image_id", "boxes", "xmin", "split"])):
        declared = {n.name for n in classes[cls].body if isinstance(n, ast.FunctionDef)}
        assert set(attrs) <= declared
        for a in attrs:
            assert hasattr(getattr(_lookup, cls), a)


def test_convert_and_export_stay_functions_after_their_modules_load():
    import oicore.converter
    import oicore.exporter

    assert oicore.convert is oicore.converter.convert and callable(oicore.convert)
    assert oicore.export is oicore.exporter.export and callable(oicore.export)
