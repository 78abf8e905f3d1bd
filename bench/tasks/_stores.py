"""Each system's stored form of the whole release, and the inputs shared by the lookup tasks.

The ``convert`` task times the writers here (``write_*``: the whole job, every output file fsynced). The other
tasks read what ``ensure`` built once per data set, untimed, under ``bench/data/work/<release>/_stores/``:

``oic``          ``oicore.convert`` of the release (rebuilt whenever oicore's sources or the data change)
``typed``        typed Parquet, one file per table: ``ImageID`` uint64, labels and Source as dictionaries,
                 Confidence and coordinates float32, box flags int8 (-1 where the file has none), a ``split``
                 column; rows in split order (train, validation, test), then ImageID, then file order
``typed_feather`` the same tables as Arrow IPC (Feather v2) + zstd, for the ``open`` task
``duckdb``       one DuckDB file of the whole release: a table per kind (splits stacked, a ``split`` column),
                 default CSV inference, ``CREATE INDEX`` on ImageID of every image table
``lance``        Lance datasets, one per table, of the typed tables (labels, Source and split as plain strings:
                 Lance's scalar indexes take no dictionaries, and Lance encodes strings itself), with a
                 ``BTREE`` index on ImageID and a ``BITMAP`` index on LabelName of every image table
``queries``      the seeded random IDs and the classes the lookup tasks ask for (``queries.json``, ``*.npy``)

The typed tables are also what every peer of the lookup tasks loads in its (untimed, reported) setup.
Data libraries are imported inside the functions: this module is loaded by workers only.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

SPLITS = ("train", "validation", "test")
# table -> file name in each split directory (V3 layout)
IMAGE_TABLES = {
    "images": "images.csv",
    "human_labels": "annotations-human.csv",
    "machine_labels": "annotations-machine.csv",
    "boxes": "annotations-human-bbox.csv",
}
FLAGS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
COORDS = ("XMin", "XMax", "YMin", "YMax")
SEED = 20240601
SINGLE_CALLS = 10_000  # IDs per run of a single-lookup task
BATCH_IDS = 1_000_000  # IDs per run of the batch task (from scale 0.1 on; see batch_size)


# ------------------------------------------------------------------------------------------------ files


def release_files(data_dir: Path) -> list[Path]:
    """Every file of the release (CSV and class lists), in a stable order; the marker and hidden files aside."""
    out = []
    for dirpath, dirnames, names in os.walk(data_dir):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath, n) for n in sorted(names) if not n.startswith(".") and n.endswith((".csv", ".txt"))]
    return out


def release_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in release_files(data_dir))


def split_files(data_dir: Path, table: str) -> list[tuple[str, Path]]:
    """(split, path) of a table's files that exist, in split order."""
    return [(s, data_dir / s / IMAGE_TABLES[table]) for s in SPLITS if (data_dir / s / IMAGE_TABLES[table]).is_file()]


def fsync_tree(path: Path) -> None:
    """fsync every file under ``path`` (or ``path`` itself), then the directories that hold them."""
    path = Path(path)
    files = [path] if path.is_file() else [Path(d, n) for d, _, names in os.walk(path) for n in names]
    dirs = {p.parent for p in files} | ({path} if path.is_dir() else set())
    for p in files:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    for d in dirs:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def stored_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(Path(d, n).stat().st_size for d, _, names in os.walk(path) for n in names)


def fresh(path: Path) -> None:
    """Remove ``path`` (file or directory) if it exists."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    for extra in (path.with_name(path.name + ".wal"),):
        if extra.exists():
            extra.unlink()


# ------------------------------------------------------------------------------------------------ writers


def write_oic(data_dir: Path, out: Path) -> Path:
    """oicore's stored form: ``oicore.convert`` (it hashes every source and fsyncs, then renames)."""
    import oicore

    # The public function, whichever module serves it (oicore.convert, later oicore.converter).
    oicore.convert(str(data_dir), str(out), force=True, progress=False)
    return Path(out)


def _csv_read(path: Path):
    import pyarrow.csv

    return pyarrow.csv.read_csv(path)


def write_parquet_baseline(data_dir: Path, out_dir: Path) -> Path:
    """The format issue's baseline, per source file: ``pq.write_table(pyarrow.csv.read_csv(f), out,
    compression="zstd")`` with default inference and no re-sorting (headerless files included as they come)."""
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    for f in release_files(data_dir):
        target = out_dir / f.relative_to(data_dir).with_suffix(".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_csv_read(f), target, compression="zstd")
    fsync_tree(out_dir)
    return out_dir


def write_feather(data_dir: Path, out_dir: Path) -> Path:
    """Arrow IPC (Feather v2) + zstd, per source file, of the same tables as the Parquet baseline."""
    import pyarrow.feather as feather

    out_dir = Path(out_dir)
    for f in release_files(data_dir):
        target = out_dir / f.relative_to(data_dir).with_suffix(".arrow")
        target.parent.mkdir(parents=True, exist_ok=True)
        feather.write_feather(_csv_read(f), target, compression="zstd")
    fsync_tree(out_dir)
    return out_dir


def _hex_to_uint64(column):
    import pyarrow as pa

    from bench.tasks._tables import image_ids

    return pa.array(image_ids(column), pa.uint64())


def typed_table(data_dir: Path, table: str):
    """One image table of the release, typed (see the module docstring), splits stacked in order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    label_columns = ("Source", "LabelName", "Subset", "License")
    pieces = []
    for split, path in split_files(data_dir, table):
        t = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(column_types={"ImageID": pa.string()}))
        arrays, names = [], []
        for name in t.column_names:
            col = t[name]
            if name == "ImageID":
                col = _hex_to_uint64(col)
            elif name in label_columns:
                col = col.cast(pa.string()).dictionary_encode()
            elif name == "Confidence" or name in COORDS:
                col = col.cast(pa.float32())
            elif name in FLAGS:
                col = pc.fill_null(col, -1).cast(pa.int8())
            arrays.append(col)
            names.append(name)
        if table == "boxes":  # V3 train boxes have no flags: -1, as oicore reads them
            for flag in FLAGS:
                if flag not in names:
                    arrays.append(pa.array(np.full(t.num_rows, -1, np.int8)))
                    names.append(flag)
        arrays.append(pa.DictionaryArray.from_arrays(pa.array(np.zeros(t.num_rows, np.int8)), pa.array([split])))
        names.append("split")
        pieces.append(pa.Table.from_arrays([a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a for a in arrays], names))
    whole = pa.concat_tables(pieces, promote_options="permissive").unify_dictionaries().combine_chunks()
    # Sorted by split, then ImageID, then file order: the files come sorted, so this is usually a check.
    ids = whole["ImageID"].to_numpy()
    split_code = np.repeat(np.arange(len(pieces), dtype=np.int64), [p.num_rows for p in pieces])
    if len(ids) > 1 and not np.all((np.diff(split_code) > 0) | ((np.diff(split_code) == 0) & (ids[1:] >= ids[:-1]))):
        whole = whole.take(np.lexsort((ids, split_code)))  # lexsort is stable
    return whole


def _headerless(path: Path, names):
    import pyarrow.csv as pcsv

    return pcsv.read_csv(path, read_options=pcsv.ReadOptions(column_names=list(names)))


def write_parquet_typed(data_dir: Path, out_dir: Path) -> Path:
    """Typed Parquet + zstd, one file per table (``typed_table``), class descriptions and lists as read."""
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for table in IMAGE_TABLES:
        if split_files(data_dir, table):
            pq.write_table(typed_table(data_dir, table), out_dir / f"{table}.parquet", compression="zstd")
    for f in release_files(data_dir):
        if f.parent == data_dir:
            names = ("LabelName", "DisplayName") if f.suffix == ".csv" else ("LabelName",)
            pq.write_table(_headerless(f, names), out_dir / f"{f.stem}.parquet", compression="zstd")
    fsync_tree(out_dir)
    return out_dir


def write_duckdb(data_dir: Path, out: Path) -> Path:
    """One DuckDB file: a table per kind (default CSV inference, splits stacked with a ``split`` column),
    ``CREATE INDEX`` on ImageID of every image table, class descriptions and lists as tables."""
    import duckdb

    out = Path(out)
    con = duckdb.connect(str(out))
    try:
        for table in IMAGE_TABLES:
            parts = split_files(data_dir, table)
            if not parts:
                continue
            union = " UNION ALL BY NAME ".join(
                f"SELECT *, '{split}' AS split FROM read_csv({_sql_str(path)})" for split, path in parts
            )
            con.execute(f"CREATE TABLE {table} AS {union}")
            con.execute(f"CREATE INDEX {table}_image ON {table} (ImageID)")
        for f in release_files(data_dir):
            if f.parent == data_dir:
                # headerless, with CR LF and LF line endings mixed: the sniffer gives up, so say what they are
                columns = "{'LabelName': 'VARCHAR'" + (", 'DisplayName': 'VARCHAR'}" if f.suffix == ".csv" else "}")
                name = f.stem.replace("-", "_")
                con.execute(
                    f"CREATE TABLE {name} AS SELECT * FROM read_csv({_sql_str(f)}, header=false, columns={columns}, "
                    "delim=',', quote='\"', escape='\"', strict_mode=false)"
                )
        con.execute("CHECKPOINT")
    finally:
        con.close()
    fsync_tree(out)
    return out


def write_lance(data_dir: Path, out_dir: Path) -> Path:
    """Lance datasets of the typed tables, one per table, with scalar indexes (see the module docstring)."""
    import lance
    import pyarrow as pa

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for table in IMAGE_TABLES:
        if not split_files(data_dir, table):
            continue
        t = typed_table(data_dir, table)
        t = pa.table({c: t[c].cast(pa.string()) if pa.types.is_dictionary(t[c].type) else t[c] for c in t.column_names})
        ds = lance.write_dataset(t, out_dir / f"{table}.lance")
        del t
        ds.create_scalar_index("ImageID", "BTREE")
        if "LabelName" in ds.schema.names:
            ds.create_scalar_index("LabelName", "BITMAP")
    for f in release_files(data_dir):
        if f.parent == data_dir:
            names = ("LabelName", "DisplayName") if f.suffix == ".csv" else ("LabelName",)
            lance.write_dataset(_headerless(f, names), out_dir / f"{f.stem}.lance")
    fsync_tree(out_dir)
    return out_dir


def lance_path(data_dir: Path, table: str) -> Path:
    return _stores_for(data_dir) / "lance" / f"{table}.lance"


def _sql_str(path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


# ------------------------------------------------------------------------------------------------ shared stores


def _data_key(data_dir: Path) -> str:
    marker = Path(data_dir) / ".complete.json"
    if marker.is_file():
        return hashlib.sha256(marker.read_bytes()).hexdigest()[:16]
    h = hashlib.sha256()
    for p in release_files(data_dir):
        st = p.stat()
        h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _oicore_key() -> str:
    """Changes whenever oicore's sources or built extensions change (its code decides the file's layout)."""
    import importlib.util

    spec = importlib.util.find_spec("oicore")
    package = Path(list(spec.submodule_search_locations)[0])
    h = hashlib.sha256()
    for p in sorted(package.iterdir()):
        if p.suffix in (".py", ".pyx", ".pxd", ".so", ".pyd") or p.name.endswith(".so"):
            st = p.stat()
            h.update(f"{p.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _library_key(*modules) -> str:
    import importlib.metadata

    out = []
    for m in modules:
        try:
            out.append(f"{m}={importlib.metadata.version(m)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(f"{m}=?")
    return ",".join(out)


_BUILDERS = {
    "oic": ("oicore.oic", lambda d, out: write_oic(d, out), lambda: _oicore_key()),
    "typed": ("typed", lambda d, out: write_parquet_typed(d, out), lambda: _library_key("pyarrow")),
    "typed_feather": ("typed_feather", lambda d, out: _write_typed_feather(d, out), lambda: _library_key("pyarrow")),
    "duckdb": ("release.duckdb", lambda d, out: write_duckdb(d, out), lambda: _library_key("duckdb")),
    "lance": ("lance", lambda d, out: write_lance(d, out), lambda: _library_key("pylance", "pyarrow")),
}


def _write_typed_feather(data_dir: Path, out_dir: Path) -> Path:
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    out_dir.mkdir(parents=True, exist_ok=True)
    for table in ("human_labels", "machine_labels"):
        feather.write_feather(pq.read_table(typed_path(data_dir, table)), out_dir / f"{table}.arrow", compression="zstd")
    return out_dir


def _stores_for(data_dir: Path) -> Path:
    # bench/data/work/<release>/_stores, beside the runner's work dirs (<release>/<task>/<system>).
    from bench import data

    d = data.DATA_ROOT / "work" / Path(data_dir).name / "_stores"
    d.mkdir(parents=True, exist_ok=True)
    return d


def ensure(data_dir: Path, what: str) -> Path:
    """The shared stored form ``what`` of ``data_dir``, built first if missing or stale."""
    name, build, version = _BUILDERS[what]
    if what == "typed_feather":
        ensure(data_dir, "typed")
    root = _stores_for(data_dir)
    target = root / name
    key_file = root / f".{name}.key"
    key = f"{_data_key(data_dir)} {version()}"
    if target.exists() and key_file.is_file() and key_file.read_text() == key:
        return target
    partial = root / f"{name}.partial"
    fresh(partial)
    fresh(target)
    key_file.unlink(missing_ok=True)
    build(Path(data_dir), partial)
    os.replace(partial, target)
    key_file.write_text(key)
    return target


def adopt(data_dir: Path, what: str, built: Path) -> None:
    """Make ``built``, the output of ``what``'s own builder (a convert run), the shared store ``what``, unless
    that is current: hard links (a copy across file systems), so that the convert's next round can delete it."""
    name, _, version = _BUILDERS[what]
    root = _stores_for(data_dir)
    key_file = root / f".{name}.key"
    key = f"{_data_key(data_dir)} {version()}"
    if (root / name).exists() and key_file.is_file() and key_file.read_text() == key:
        return
    partial = root / f"{name}.partial"
    fresh(partial)
    built = Path(built)
    if built.is_dir():
        shutil.copytree(built, partial, copy_function=_link_or_copy)
    else:
        _link_or_copy(built, partial)
    fresh(root / name)
    key_file.unlink(missing_ok=True)
    os.replace(partial, root / name)
    key_file.write_text(key)


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def typed_path(data_dir: Path, table: str) -> Path:
    return _stores_for(data_dir) / "typed" / f"{table}.parquet"


# ------------------------------------------------------------------------------------------------ queries


SMALL_SCALE = 0.1  # below it, the smoke test: fewer calls where the count does not depend on the data's size


def synthetic_scale(data_dir: Path) -> float | None:
    """The scale of a synthetic release (its marker), None for any other release (``--data``)."""
    try:
        return json.loads((Path(data_dir) / ".complete.json").read_text()).get("scale")
    except (OSError, ValueError):
        return None


def small_scale(data_dir: Path) -> bool:
    scale = synthetic_scale(data_dir)
    return scale is not None and scale < SMALL_SCALE


def batch_size(data_dir: Path) -> int:
    """IDs in the batch task's batch: 1,000,000, or 10,000,000 × scale below scale 0.1 (100,000 at 0.01), where
    a million IDs would be ten times the images there are and the batch alone would take a minute to run."""
    if not small_scale(data_dir):
        return BATCH_IDS
    return max(1_000, round(BATCH_IDS * 10 * synthetic_scale(data_dir)))


def queries(data_dir: Path) -> dict:
    """The seeded query inputs every system of the lookup tasks receives (built once, then read)."""
    ensure(data_dir, "typed")
    root = _stores_for(data_dir)
    path = root / "queries.json"
    key = f"{_data_key(data_dir)} {SEED} {SINGLE_CALLS} {batch_size(data_dir)} 2"
    if path.is_file():
        q = json.loads(path.read_text())
        if q.get("key") == key:
            return q
    import numpy as np
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(SEED)
    human = pq.read_table(typed_path(data_dir, "human_labels"), columns=["ImageID", "LabelName", "Confidence"])
    machine = pq.read_table(typed_path(data_dir, "machine_labels"), columns=["ImageID"])
    boxes = pq.read_table(typed_path(data_dir, "boxes"), columns=["ImageID", "LabelName"])
    labelled = np.unique(np.concatenate([human["ImageID"].to_numpy(), machine["ImageID"].to_numpy()]))
    boxed = np.unique(boxes["ImageID"].to_numpy())

    def pick(pool, n, replace):
        return rng.choice(pool, size=n, replace=replace or len(pool) < n)

    files = {
        "labels_single": pick(labelled, SINGLE_CALLS, False),
        "labels_batch": pick(labelled, batch_size(data_dir), True),
        "boxes_single": pick(boxed, SINGLE_CALLS, False),
    }
    for name, ids in files.items():
        np.save(root / f"{name}.npy", ids.astype(np.uint64))

    def counted(column):
        vc = pc.value_counts(column.cast("string"))
        return sorted(zip(vc.field("counts").to_pylist(), vc.field("values").to_pylist()))

    box_counts = counted(boxes["LabelName"])  # (count, MID) ascending
    frequent = max(box_counts, key=lambda cv: (cv[0], [-ord(c) for c in cv[1]]))
    rare = min(box_counts)  # the least frequent class with boxes (ties: the smallest MID)
    positive = human.filter(pc.greater(human["Confidence"], 0))
    per_label = pc.value_counts(
        positive.group_by(["LabelName", "ImageID"]).aggregate([])["LabelName"].cast("string")
    )
    label_counts = sorted(zip(per_label.field("counts").to_pylist(), per_label.field("values").to_pylist()))
    images_label = max(label_counts, key=lambda cv: (cv[0], [-ord(c) for c in cv[1]]))
    q = {
        "key": key,
        "seed": SEED,
        "files": {name: f"{name}.npy" for name in files},
        "labelled_images": int(len(labelled)),
        "boxed_images": int(len(boxed)),
        "frequent_class": {"mid": frequent[1], "boxes": int(frequent[0])},
        "rare_class": {"mid": rare[1], "boxes": int(rare[0])},
        "images_with_label": {"mid": images_label[1], "images": int(images_label[0])},
    }
    path.write_text(json.dumps(q, indent=1) + "\n")
    return q


def query_ids(data_dir: Path, name: str):
    """One of the seeded uint64 ID arrays (``labels_single``, ``labels_batch``, ``boxes_single``)."""
    import numpy as np

    q = queries(data_dir)
    return np.load(_stores_for(data_dir) / q["files"][name])
