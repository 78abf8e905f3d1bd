"""``oicore export``: CSV files written back byte for byte, and Parquet for DuckDB, Polars, Spark and Dask.

Issue 3, Deliver 5: ``--format parquet`` writes ``<table>/<split>.parquet``; ImageID is a 16-hex string by
default and ``uint64`` with ``--image-id uint64``. The values must equal ``oicore.read_csv`` of the sources.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import oicore
from oicore.errors import FormatError
from oicore.exporter import export
from test_convert import (
    RELEASES,
    assert_same_bytes,
    canonical,
    convert_quiet,
    found_sources,
    synthetic,
    tiny,
    _concat,
    _same,
)

IMAGE_TABLES = ("images", "human_labels", "machine_labels", "boxes", "points", "vrd", "segmentation")


def _expected_parquet_files(sources) -> dict[str, list]:
    """{"<table>/<key>.parquet": [Source, ...]}: the files a Parquet export writes, and their sources."""
    out: dict[str, list] = {}
    for s in found_sources(sources).values():
        if s.table == "hierarchy":
            continue
        stem = Path(s.name).stem
        key = s.split or s.list_name or stem
        if s.export_only:
            key = f"{key}-boxable" if "boxable" in stem.lower() else f"{key}-{stem}"
        out.setdefault(f"{s.table}/{key}.parquet", []).append(s)
    return out


def _part_order(oic) -> dict[str, int]:
    """Each source's position among its table's parts (the order a Parquet file concatenates them in)."""
    from oicore.store import Store

    store = Store(oic)
    try:
        return {store.sources[p["source"]]["name"]: (list(store.tables).index(name), k)
                for name, t in store.tables.items() for k, p in enumerate(t.parts)}
    finally:
        store.close()


def _assert_parquet_equals_sources(got, parts, image_id: str) -> None:
    """A Parquet table's columns equal ``read_csv`` of its sources, concatenated (floats by their bits)."""
    import pyarrow as pa

    tables = [oicore.read_csv(s.path, kind=s.kind) for s in parts]
    assert got.num_rows == sum(t.num_rows for t in tables)
    names = []
    for t in tables:
        names += [n for n in t.column_names if n not in names]
    assert set(got.column_names) == set(names), (got.column_names, names)
    for name in names:
        pieces = []
        for t in tables:
            if name not in t.column_names:
                pieces.append(canonical(pa.nulls(t.num_rows, got.schema.field(name).type)))
                continue
            col = t.column(name)
            if name in ("ImageID", "ImageId"):
                ids = np.asarray(col.to_numpy(), np.uint64)
                assert got.schema.field(name).type == (pa.string() if image_id == "hex" else pa.uint64()), got.schema
                col = pa.array([f"{i:016x}" for i in ids.tolist()], pa.string()) if image_id == "hex" else pa.array(ids, pa.uint64())
            pieces.append(canonical(col))
        want = _concat(pieces)
        have = canonical(got.column(name))
        assert _same(have, want), f"column {name!r} differs from read_csv of {[s.name for s in parts]}"


@pytest.mark.parametrize("release", RELEASES)
def test_parquet_export_of_synthetic_release(tmp_path_factory, tmp_path, release):
    import pyarrow.parquet as pq

    src, oic, _, _ = synthetic(tmp_path_factory, release)
    out = tmp_path / "pq"
    written = export(oic, out, format="parquet")
    expected = _expected_parquet_files(src)
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(expected)
    order = _part_order(oic)
    for rel, parts in expected.items():
        parts = sorted(parts, key=lambda s: order[s.name])
        _assert_parquet_equals_sources(pq.read_table(out / rel), parts, "hex")
    # Image tables: one file per split, named after it.
    for s in found_sources(src).values():
        if s.table in IMAGE_TABLES and s.split is not None and not s.export_only:
            assert (out / s.table / f"{s.split}.parquet").exists()


def test_parquet_has_each_row_once_beside_a_boxable_subset(tmp_path_factory, tmp_path):
    """V4 ships train-annotations-human-imagelabels-boxable.csv beside the full file: Parquet keeps them apart."""
    import pyarrow.parquet as pq

    src, oic, _, _ = synthetic(tmp_path_factory, "v4")
    out = tmp_path / "pq"
    export(oic, out, format="parquet")
    full = oicore.read_csv(src / "train" / "train-annotations-human-imagelabels.csv")
    subset = oicore.read_csv(src / "train" / "train-annotations-human-imagelabels-boxable.csv")
    assert pq.read_table(out / "human_labels" / "train.parquet").num_rows == full.num_rows
    assert pq.read_table(out / "human_labels" / "train-boxable.parquet").num_rows == subset.num_rows
    with oicore.open(oic) as r:
        assert r.table("human_labels", split="train").num_rows == full.num_rows


def test_parquet_image_id_uint64_and_duckdb(tmp_path_factory, tmp_path):
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    src, oic, _, _ = synthetic(tmp_path_factory, "v3")
    hex_dir, int_dir = tmp_path / "hex", tmp_path / "int"
    export(oic, hex_dir, format="parquet")
    export(oic, int_dir, format="parquet", image_id="uint64")
    for split in ("train", "validation", "test"):
        boxes = oicore.read_csv(src / split / "annotations-human-bbox.csv")
        t = pq.read_table(int_dir / "boxes" / f"{split}.parquet")
        assert t.schema.field("ImageID").type == pa.uint64()
        assert t.column("ImageID").to_pylist() == boxes.column("ImageID").to_pylist()
        _assert_parquet_equals_sources(t, [found_sources(src)[f"{split}/annotations-human-bbox.csv"]], "uint64")
        h = pq.read_table(hex_dir / "boxes" / f"{split}.parquet")
        assert h.column("ImageID").to_pylist() == [f"{i:016x}" for i in boxes.column("ImageID").to_pylist()]
    con = duckdb.connect()
    try:
        path = (hex_dir / "boxes" / "train.parquet").as_posix()
        n, n_ids, width = con.execute(f"SELECT count(*), count(DISTINCT ImageID), max(length(ImageID)) FROM read_parquet('{path}')").fetchone()
        boxes = oicore.read_csv(src / "train" / "annotations-human-bbox.csv")
        assert n == boxes.num_rows and width == 16
        assert n_ids == len(set(boxes.column("ImageID").to_pylist()))
        path = (int_dir / "human_labels" / "validation.parquet").as_posix()
        labels = oicore.read_csv(src / "validation" / "annotations-human.csv")
        got = con.execute(f"SELECT ImageID, LabelName, Confidence FROM read_parquet('{path}')").fetchall()
        want = list(zip(labels.column("ImageID").to_pylist(), labels.column("LabelName").to_pylist(), labels.column("Confidence").to_pylist()))
        assert got == want
        path = (hex_dir / "images" / "*.parquet").as_posix()
        (rows,) = con.execute(f"SELECT count(*) FROM read_parquet('{path}')").fetchone()
        assert rows == sum(oicore.read_csv(src / s / "images.csv").num_rows for s in ("train", "validation", "test"))
    finally:
        con.close()


def test_parquet_of_tiny_release_keeps_nulls_and_missing_columns(tmp_path_factory, tmp_path):
    import pyarrow.parquet as pq

    src, oic, _, _ = tiny(tmp_path_factory)
    out = tmp_path / "pq"
    export(oic, out, format="parquet", image_id="uint64")
    order = _part_order(oic)
    for rel, parts in _expected_parquet_files(src).items():
        _assert_parquet_equals_sources(pq.read_table(out / rel), sorted(parts, key=lambda s: order[s.name]), "uint64")
    images = pq.read_table(out / "images" / "validation.parquet")
    assert images.column("Rotation").to_pylist() == [None, 90.0]
    boxes = pq.read_table(out / "boxes" / "train.parquet")
    assert "IsOccluded" not in boxes.column_names  # V3 train boxes have no attribute columns


def test_parquet_of_header_only_file(tmp_path):
    import pyarrow.parquet as pq

    src = tmp_path / "release"
    (src / "train").mkdir(parents=True)
    (src / "train" / "annotations-human.csv").write_bytes(b"ImageID,Source,LabelName,Confidence\n")
    oic = tmp_path / "e.oic"
    convert_quiet(src, oic)
    export(oic, tmp_path / "pq", format="parquet")
    t = pq.read_table(tmp_path / "pq" / "human_labels" / "train.parquet")
    assert t.num_rows == 0 and t.column_names == ["ImageID", "Source", "LabelName", "Confidence"]


def test_csv_export_refuses_to_overwrite_without_force(tmp_path_factory, tmp_path):
    src, oic, _, _ = tiny(tmp_path_factory)
    out = tmp_path / "csv"
    written = export(oic, out)
    victim = out / "train" / "annotations-human.csv"
    victim.write_bytes(b"changed")
    with pytest.raises(FileExistsError):
        export(oic, out)
    assert victim.read_bytes() == b"changed"
    assert sorted(export(oic, out, force=True)) == sorted(written)
    assert_same_bytes(victim.read_bytes(), (src / "train" / "annotations-human.csv").read_bytes(), "forced export")
    leftovers = [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []


def test_export_rejects_bad_arguments(tmp_path_factory, tmp_path):
    _, oic, _, _ = tiny(tmp_path_factory)
    with pytest.raises(ValueError):
        export(oic, tmp_path / "a", format="feather")
    with pytest.raises(ValueError):
        export(oic, tmp_path / "b", format="parquet", image_id="int")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(FormatError):
        export(_not_an_oic(tmp_path), tmp_path / "c")


def _not_an_oic(tmp_path) -> Path:
    p = tmp_path / "not.oic"
    p.write_bytes(b"ImageID,Source,LabelName,Confidence\n" * 10)
    return p


def test_cli_export_csv_and_parquet(tmp_path_factory, tmp_path, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from oicore.cli import main

    src, oic, _, _ = tiny(tmp_path_factory)
    assert main(["export", str(oic), "--to", str(tmp_path / "csv")]) == 0
    for name, s in found_sources(src).items():
        assert_same_bytes((tmp_path / "csv" / name).read_bytes(), s.path.read_bytes(), name)
    assert main(["export", str(oic), "--to", str(tmp_path / "pq"), "--format", "parquet", "--image-id", "uint64"]) == 0
    assert pq.read_table(tmp_path / "pq" / "boxes" / "validation.parquet").schema.field("ImageID").type == pa.uint64()
    assert main(["export", str(oic), "--to", str(tmp_path / "csv")]) == 2  # files exist, no --force
    with pytest.raises(SystemExit) as e:
        main(["export", str(oic), "--to", str(tmp_path / "x"), "--image-id", "int"])
    assert e.value.code == 2
    capsys.readouterr()


@pytest.mark.parametrize("chunk", [1, 7, 64])
@pytest.mark.parametrize("release", ["v3", "v7"])
def test_csv_export_a_chunk_of_rows_at_a_time_is_byte_identical(tmp_path_factory, tmp_path, monkeypatch, release, chunk):
    """Long parts stored in file order are exported a chunk of rows at a time (text decoded per chunk, so
    memory stays bounded); every chunk boundary, including ones inside runs of exceptions, gives the same bytes
    (export checks each file's sha256 against the provenance)."""
    import oicore.exporter as E

    src, oic, report, _ = synthetic(tmp_path_factory, release)
    assert report.exceptions, "the synthetic release has rows kept as raw bytes"
    monkeypatch.setattr(E, "_EXPORT_CHUNK", chunk)
    written = export(oic, tmp_path / "out")
    sources = found_sources(src)
    assert len(written) == len(sources)
    for path in written:
        rel = path.relative_to(tmp_path / "out")
        assert_same_bytes(path.read_bytes(), (src / rel).read_bytes(), str(rel))
