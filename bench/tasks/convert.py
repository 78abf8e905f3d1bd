"""convert: the whole release (every CSV and class list) into each system's stored form, once.

The timed region is the whole job, as a user's command would run it: read every source file, write the
stored form, and fsync it (oicore also hashes every source with sha256 for its provenance, and writes to a
temporary file that it renames). Each timing process converts once, without a warm-up (a convert is a
fresh command), for at most 3 rounds. The previous round's output is removed before each run, untimed.

Stored forms (see ``_stores``):

``oicore``         ``oicore.convert(src, out)``: one ``.oic`` file
``parquet``        the format issue's baseline: per source file,
                   ``pq.write_table(pyarrow.csv.read_csv(f), out, compression="zstd")`` (default inference,
                   no re-sorting; headerless files are read as they come)
``parquet-typed``  for information: per table, uint64 IDs, dictionary labels, float32 numbers, sorted by
                   split then ImageID, zstd
``feather``        Arrow IPC (Feather v2) + zstd, per source file, of the baseline's tables
``duckdb``         one DuckDB file: a table per kind (default CSV inference), ``CREATE INDEX`` on ImageID
``lance``          a Lance dataset per table of the typed tables (plain strings for labels), a BTREE index on
                   ImageID and a BITMAP index on LabelName

Answers: the rows and the sum of the ImageIDs of every image table, read back from the stored form.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from bench.task import Context, System, Task
from bench.tasks import _stores

# The V3 release's files (every one is read by every system).
INPUTS = (
    *(f"{split}/{name}" for split in _stores.SPLITS for name in _stores.IMAGE_TABLES.values()),
    "class-descriptions.csv",
    "classes.txt",
    "classes-trainable.txt",
    "classes-bbox.txt",
    "classes-bbox-trainable.txt",
)
TABLE_OF_FILE = {Path(name).stem: table for table, name in _stores.IMAGE_TABLES.items()}


def _setup(name: str, writer, *modules):
    def setup(ctx: Context):
        import importlib

        for m in modules:
            if m == "oicore":
                import oicore

                oicore.convert  # noqa: B018  (resolves the lazily imported module that serves it)
            else:
                importlib.import_module(m)
        Path(ctx.work_dir).mkdir(parents=True, exist_ok=True)
        return SimpleNamespace(data=ctx.data_dir, out=Path(ctx.work_dir) / name, write=writer)

    return setup


def _before(st) -> None:
    _stores.fresh(st.out)
    _stores.fresh(st.out.with_name(st.out.name + ".tmp"))


def _run(st):
    return st.write(st.data, st.out)


def _adopt(what: str):
    """The check run's output as the shared store ``what`` (the same writer builds both)."""

    def adopt(ctx: Context, result) -> None:
        _stores.adopt(ctx.data_dir, what, Path(result))

    return adopt


def _sum_ids(ids) -> int:
    import numpy as np

    with np.errstate(over="ignore"):
        return int(np.asarray(ids, dtype=np.uint64).sum(dtype=np.uint64))


def _entry(tables: dict, table: str, n: int, ids) -> None:
    rows, total = tables.get(table, (0, 0))
    tables[table] = (rows + n, (total + _sum_ids(ids)) % (1 << 64))


def _readback_oicore(path: Path) -> dict:
    import oicore

    tables: dict = {}
    with oicore.open(path) as release:
        for table in _stores.IMAGE_TABLES:
            t = release.table(table)
            _entry(tables, table, t.num_rows, t["ImageID"].to_numpy())
    return tables


def _readback_files(path: Path, read) -> dict:
    from bench.tasks._tables import image_ids

    tables: dict = {}
    for split in _stores.SPLITS:
        for f in sorted((path / split).glob("*")) if (path / split).is_dir() else ():
            table = TABLE_OF_FILE.get(f.stem)
            if table is None:
                continue
            t = read(f)
            _entry(tables, table, t.num_rows, image_ids(t["ImageID"]))
    return tables


def _readback_typed(path: Path) -> dict:
    import pyarrow.parquet as pq

    tables: dict = {}
    for table in _stores.IMAGE_TABLES:
        f = path / f"{table}.parquet"
        if f.is_file():
            t = pq.read_table(f, columns=["ImageID"])
            _entry(tables, table, t.num_rows, t["ImageID"].to_numpy())
    return tables


def _readback_duckdb(path: Path) -> dict:
    import duckdb

    from bench.tasks._tables import image_ids

    tables: dict = {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        for table in _stores.IMAGE_TABLES:
            t = con.sql(f"SELECT ImageID FROM {table}").to_arrow_table()
            _entry(tables, table, t.num_rows, image_ids(t["ImageID"]))
    finally:
        con.close()
    return tables


def _readback_lance(path: Path) -> dict:
    import lance

    tables: dict = {}
    for table in _stores.IMAGE_TABLES:
        d = path / f"{table}.lance"
        if d.is_dir():
            t = lance.dataset(str(d)).to_table(columns=["ImageID"])
            _entry(tables, table, t.num_rows, t["ImageID"].to_numpy())
    return tables


def _normalize(result) -> dict:
    path = Path(result)
    if path.is_dir() and (path / "boxes.lance").is_dir():
        tables = _readback_lance(path)
    elif path.is_file() and path.suffix == ".oic":
        tables = _readback_oicore(path)
    elif path.is_file():
        tables = _readback_duckdb(path)
    elif (path / "boxes.parquet").is_file():
        tables = _readback_typed(path)
    elif any(path.rglob("*.arrow")):
        import pyarrow.feather as feather

        tables = _readback_files(path, feather.read_table)
    else:
        import pyarrow.parquet as pq

        tables = _readback_files(path, pq.read_table)
    return {"path": str(path), "tables": tables}


def _fingerprint(canon: dict) -> dict:
    return {
        "rows": sum(rows for rows, _ in canon["tables"].values()),
        "tables": {t: {"rows": rows, "image_id_sum": total} for t, (rows, total) in sorted(canon["tables"].items())},
    }


def _quick(canon: dict) -> dict:
    return {"rows": sum(rows for rows, _ in canon["tables"].values())}


def _stored_bytes(result) -> int:
    return _stores.stored_bytes(Path(result))


TASK = Task(
    name="convert",
    title="convert the whole release into each system's stored form (stored size, peak memory)",
    inputs=INPUTS,
    systems=(
        System(
            "oicore", ("oicore", "numpy", "pyarrow"), _setup("release.oic", _stores.write_oic, "oicore"),
            _run, "oicore.convert(release_dir, out)  (sha256 of every source, fsync, rename)", before=_before,
            normalize=_normalize, adopt=_adopt("oic"),
        ),
        System(
            "parquet", ("pyarrow",), _setup("parquet", _stores.write_parquet_baseline, "pyarrow.csv", "pyarrow.parquet"),
            _run, 'per file: pq.write_table(pyarrow.csv.read_csv(f), out, compression="zstd"); fsync',
            before=_before, normalize=_normalize,
        ),
        System(
            "parquet-typed", ("pyarrow", "numpy"),
            _setup("typed", _stores.write_parquet_typed, "pyarrow.csv", "pyarrow.parquet", "pyarrow.compute"),
            _run, "per table: uint64 IDs, dictionary labels, float32, sorted; Parquet + zstd; fsync",
            before=_before, normalize=_normalize, adopt=_adopt("typed"),
        ),
        System(
            "feather", ("pyarrow",), _setup("feather", _stores.write_feather, "pyarrow.csv", "pyarrow.feather"),
            _run, 'per file: feather.write_feather(pyarrow.csv.read_csv(f), out, compression="zstd"); fsync',
            before=_before, normalize=_normalize,
        ),
        System(
            "duckdb", ("duckdb",), _setup("release.duckdb", _stores.write_duckdb, "duckdb"),
            _run, "CREATE TABLE t AS SELECT * FROM read_csv(...) per kind; CREATE INDEX ON t (ImageID); CHECKPOINT",
            before=_before, normalize=_normalize, adopt=_adopt("duckdb"),
        ),
        System(
            "lance", ("lance", "pyarrow", "numpy"),
            _setup("lance", _stores.write_lance, "lance", "pyarrow.csv", "pyarrow.compute"),
            _run, "per table: typed table (as parquet-typed); lance.write_dataset; create_scalar_index(ImageID: "
            "BTREE, LabelName: BITMAP); fsync",
            before=_before, normalize=_normalize, adopt=_adopt("lance"),
        ),
    ),  # fmt: skip
    fingerprint=_fingerprint,
    quick=_quick,
    result_bytes=_stored_bytes,
    describe=lambda result: str(result),
    throughput=True,
    warmup=False,
    max_rounds=3,
    stored=True,
    timeout=1800.0,
    note=(
        "median of at most 3 rounds, each a fresh process converting once (no warm-up); stored = bytes on "
        "disk; oicore ÷ this size < 1 means oicore's file is smaller (the format issue's goal: ≤ 0.75 against "
        "parquet). peak extra = resident high-water mark of the whole job."
    ),
)
