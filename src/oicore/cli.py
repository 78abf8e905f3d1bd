"""The ``oicore`` command line: ``oicore --help`` lists the commands.

Exit codes: 0 ok, 1 bad data (the message names file and line), 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from oicore import __version__
from oicore.errors import OicoreError

EXIT_OK, EXIT_BAD_DATA, EXIT_USAGE = 0, 1, 2


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _level(text: str) -> int:
    value = _positive_int(text)
    if value > 22:
        raise argparse.ArgumentTypeError(f"expected a zstd level 1-22, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from oicore import schema

    parser = argparse.ArgumentParser(
        prog="oicore",
        description="Open Images annotations as one compact columnar file with microsecond lookups.",
        epilog="Run 'oicore COMMAND --help' for a command's options. Exit codes: 0 ok, 1 bad data, 2 usage.",
    )
    parser.add_argument("--version", action="version", version=f"oicore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "demo",
        help="synthesize a tiny release, convert it, look things up",
        description="Synthesize a tiny release in a temporary folder, read every file with oicore.read_csv, "
        "convert the release into one .oic file, look labels and boxes up, and show a real error message.",
    )
    p.add_argument("--scale", type=_positive_float, default=0.0005, help="release scale (default: %(default)s)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "synth",
        help="write a deterministic synthetic release",
        description="Write a deterministic, realistic synthetic Open Images release (real layout, file names and "
        "headers) into OUT_DIR. Scale 1.0 has the row counts of the real V3.",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write (created if missing)")
    p.add_argument("--scale", type=_positive_float, default=0.001, help="row-count multiplier (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    p.add_argument(
        "--release", choices=["v3", "v4", "v5", "v6", "v7"], default="v3", help="release layout (default: %(default)s)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser(
        "read",
        help="read CSV files and summarize them",
        description="Read Open Images CSV files with oicore.read_csv and print each one's kind, rows, columns and "
        "speed. Bad data exits with status 1 and a message naming file, line and column.",
    )
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--kind", choices=list(schema.KINDS), help="file kind (default: recognised from the header)")
    p.add_argument("--threads", type=_positive_int, help="parsing threads (default: all cores)")
    p.set_defaults(func=_cmd_read)

    p = sub.add_parser(
        "convert",
        help="convert a release's CSV files into one .oic file",
        description="Read every Open Images file found in SRC (release folders laid out as Google ships them, "
        "single files, or the release's .tar.gz archives as downloaded) and write one .oic file: typed columns, a release-wide label vocabulary, lookup indexes, "
        "and what export needs to write every source back byte for byte. The file appears only when complete.",
    )
    p.add_argument("sources", nargs="+", metavar="SRC", help="release folder, file, or .tar.gz archive")
    p.add_argument("-o", "--output", required=True, metavar="OUT.oic", help="the file to write")
    p.add_argument("--level", type=_level, default=3, help="zstd level for text, 1-22 (default: %(default)s)")
    p.add_argument("--threads", type=_positive_int, help="threads (default: all cores, or OICORE_NUM_THREADS)")
    p.add_argument("--block-size", type=_positive_int, help="CSV reader block size in bytes (default: 4 MiB)")
    p.add_argument("--release", choices=["auto", *schema.RELEASES], default="auto", help="release recorded in the provenance (default: from file names)")
    p.add_argument("--force", action="store_true", help="replace OUT.oic if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.add_argument("--strict", action="store_true", help="fail on files oicore does not know instead of skipping them")
    p.set_defaults(func=_cmd_convert)

    p = sub.add_parser(
        "export",
        help="write the source files back from an .oic file",
        description="Write every source file of FILE.oic under DIR at its original path, byte-identical to the "
        "file converted (checked against the sha256 in the provenance), or as Parquet: DIR/<table>/<split>.parquet.",
    )
    p.add_argument("file", metavar="FILE.oic")
    p.add_argument("--to", required=True, metavar="DIR", help="folder to write into (created if missing)")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="(default: %(default)s)")
    p.add_argument("--image-id", choices=["hex", "uint64"], default="hex", help="Parquet ImageID as 16-hex text or uint64 (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace files that exist")
    p.set_defaults(func=_cmd_export)

    p = sub.add_parser(
        "info",
        help="show the tables, sizes, exactness and provenance of an .oic file",
        description="Show an .oic file's tables, rows per split, stored and raw bytes per column, exactness, "
        "format version and provenance. Reads only the directory.",
    )
    p.add_argument("file", metavar="FILE.oic")
    p.add_argument("--json", action="store_true", help="print JSON (keys documented in the README)")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser(
        "verify",
        help="check every checksum and invariant of an .oic file",
        description="Check every CRC-32C and structural invariant of FILE.oic and stop at the first problem, "
        "naming the table, block and byte offset. With --against, also export every source in memory and "
        "compare it with the given files (sha256), naming the first differing line. Exit 1 on any problem.",
    )
    p.add_argument("file", metavar="FILE.oic")
    p.add_argument("--against", nargs="+", metavar="SRC", help="release folders or files to compare the export with")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("labels", help="the image-level labels of an image", description="Print every image-level "
                       "label row of an image in FILE.oic: human tables first, then machine, each in file order.")
    p.add_argument("file", metavar="FILE.oic")
    p.add_argument("image_id", metavar="ID", help="16 hex digits")
    p.add_argument("--source", help="'human', 'machine' or an exact Source value")
    p.add_argument("--min-confidence", type=float, help="keep rows with confidence >= this")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_labels)

    p = sub.add_parser("boxes", help="the boxes of a class", description="Print the boxes of a class (MID or display "
                       "name), ordered by split, then ImageID, then file order.")
    p.add_argument("file", metavar="FILE.oic")
    p.add_argument("label", metavar="LABEL", help="a MID like /m/01g317 or a display name like Person")
    p.add_argument("--split", choices=["train", "validation", "val", "test"], help="only this split (val: validation)")
    p.add_argument("--limit", type=_positive_int, default=20, help="rows to print (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_boxes)

    p = sub.add_parser("image", help="the metadata row of an image")
    p.add_argument("file", metavar="FILE.oic")
    p.add_argument("image_id", metavar="ID", help="16 hex digits")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_image)

    p = sub.add_parser("classes", help="class names and lists, or look one up", description="With no QUERY, "
                       "print the class lists and how many classes are named. With a QUERY (a MID or a display "
                       "name), print the matching class.")
    p.add_argument("file", metavar="FILE.oic")
    p.add_argument("query", nargs="?", metavar="QUERY")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_cmd_classes)

    p = sub.add_parser("schema", help="print the file kinds and column types as Markdown")
    p.set_defaults(func=_cmd_schema)
    return parser


def main(argv=None) -> int:
    # oicore makes no BLAS calls; OpenBLAS's threads, started when numpy is first imported, would spin
    # about 0.1 s of CPU per core each time the command runs. A value set by the user is kept.
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    from oicore.sources import SourceNameError, TooManyFilesError

    try:
        return args.func(args)
    except (SourceNameError, TooManyFilesError) as e:  # how the sources were given, not what they hold
        print(f"oicore: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OicoreError as e:
        print(f"oicore: error: {e}", file=sys.stderr)
        return EXIT_BAD_DATA if isinstance(e, (ValueError, KeyError)) else EXIT_USAGE
    except FileNotFoundError as e:
        print(f"oicore: error: {e.strerror}: {e.filename}", file=sys.stderr)
        return EXIT_USAGE
    except FileExistsError as e:
        print(f"oicore: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyError as e:  # an unknown image or label: the message says which
        print(f"oicore: error: {e.args[0] if e.args else e}", file=sys.stderr)
        return EXIT_BAD_DATA
    except LookupError as e:  # what the file does not hold (a release without boxes, say)
        print(f"oicore: error: {e}", file=sys.stderr)
        return EXIT_BAD_DATA
    except ValueError as e:  # an argument the API rejects (an unknown --source, say); the message lists the choices
        print(f"oicore: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # a folder given for a file, no permission, ...
        print(f"oicore: error: {e.strerror or e}: {e.filename}" if e.filename else f"oicore: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def _cmd_convert(args) -> int:
    from oicore.converter import convert

    report = convert(
        args.sources,
        args.output,
        level=args.level,
        threads=args.threads,
        force=args.force,
        progress=False if args.quiet else None,
        release=args.release,
        strict=args.strict,
        block_size=args.block_size,
    )
    if not args.quiet:
        print(report.summary())
    return EXIT_OK


def _cmd_export(args) -> int:
    from oicore.exporter import export

    t0 = time.perf_counter()
    written = export(args.file, args.to, format=args.format, image_id=args.image_id, force=args.force)
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files, {total:,} bytes, under {args.to} in {time.perf_counter() - t0:.1f} s")
    return EXIT_OK


def _cmd_info(args) -> int:
    import json

    from oicore.inspection import info

    data = info(args.file)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"{data['path']}: {data['size']:,} bytes, format {data['format'][0]}.{data['format'][1]}, release {data['release']}, "
          f"written by oicore {data['oicore_version']} at {data['created']}")
    print(f"uuid {data['uuid']}; {data['vocabulary']:,} labels, {data['images']:,} images; "
          f"exact: {str(data['exact']).lower()} ({data['exceptions']:,} rows kept as raw bytes); indexes {data['index_bytes']:,} bytes")
    for name, t in data["tables"].items():
        splits = ", ".join(f"{k} {v:,}" for k, v in t["rows_per_split"].items())
        print(f"\n{name}: {t['rows']:,} rows ({splits}); {t['stored_bytes']:,} bytes stored of {t['raw_bytes']:,}")
        for c in t["columns"]:
            ratio = f"{c['ratio']:.2f}" if c["ratio"] is not None else "-"
            print(f"    {c['name']:<20} {c['encoding']:<9} {c['stored_bytes']:>14,} {c['raw_bytes']:>14,}  {ratio}")
    print("\nsources:")
    for s in data["sources"]:
        print(f"    {s['name']}  {s['size']:,} bytes  sha256 {s['sha256'][:16]}…  -> {s['table']}" + (f" ({s['split']})" if s["split"] else ""))
    return EXIT_OK


def _cmd_verify(args) -> int:
    from oicore.inspection import verify

    t0 = time.perf_counter()
    result = verify(args.file, against=args.against)
    extra = f"; {result['compared']} source files byte-identical" if args.against else ""
    print(f"{args.file}: ok, {result['segments']} segments, {result['blocks']} blocks checked{extra} "
          f"in {time.perf_counter() - t0:.2f} s")
    return EXIT_OK


def _print_rows(rows: list[dict], as_json: bool, limit: int | None = None) -> None:
    import json

    if as_json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        print("(no rows)")
        return
    shown = rows if limit is None else rows[:limit]
    names = list(shown[0])
    widths = [max(len(n), *(len(_fmt(r[n])) for r in shown)) for n in names]
    print("  ".join(n.ljust(w) for n, w in zip(names, widths)))
    for r in shown:
        print("  ".join(_fmt(r[n]).ljust(w) for n, w in zip(names, widths)))
    if limit is not None and len(rows) > limit:
        print(f"... {len(rows) - limit:,} more rows (--limit)")


def _fmt(value) -> str:
    if value is None:
        return "-"
    return str(value)  # floats: the shortest text that reads back as the value (0.7, 9.765625e-05)


def _short(x) -> float:
    """A float32 as the float of its shortest decimal text: 0.7, not 0.699999988079071 (the CSV's value, for
    every value that float32 holds with its digits)."""
    import numpy as np

    return float(str(np.float32(x)))


def _cmd_labels(args) -> int:
    import oicore

    with oicore.open(args.file) as release:
        r = release.labels(args.image_id, source=args.source, min_confidence=args.min_confidence)
        names = r.names
        rows = [
            {"LabelName": m, "DisplayName": n, "Confidence": _short(c), "Source": release.sources[s] if s < len(release.sources) else None}
            for m, n, c, s in zip(r.mids, names, r.confidence, r.source.tolist())
        ]
    _print_rows(rows, args.json)
    return EXIT_OK


def _cmd_boxes(args) -> int:
    import oicore

    with oicore.open(args.file) as release:
        b = release.boxes(args.label, split=args.split)
        n = len(b) if args.json else min(len(b), args.limit)
        rows = [
            {
                "ImageID": f"{int(b.image_id[i]):016x}",
                "XMin": _short(b.boxes[i, 0]),
                "XMax": _short(b.boxes[i, 1]),
                "YMin": _short(b.boxes[i, 2]),
                "YMax": _short(b.boxes[i, 3]),
                "IsOccluded": int(b.is_occluded[i]),
                "IsTruncated": int(b.is_truncated[i]),
                "IsGroupOf": int(b.is_group_of[i]),
                "IsDepiction": int(b.is_depiction[i]),
                "IsInside": int(b.is_inside[i]),
                "split": release.splits[b.split[i]] if b.split[i] < len(release.splits) else None,
            }
            for i in range(n)
        ]
        total = len(b)
    if args.json:
        _print_rows(rows, True)
    else:
        print(f"{total:,} boxes of {args.label}")
        _print_rows(rows, False)
        if total > n:
            print(f"... {total - n:,} more (--limit)")
    return EXIT_OK


def _cmd_image(args) -> int:
    import dataclasses
    import json

    import oicore

    with oicore.open(args.file) as release:
        info = dataclasses.asdict(release.image(args.image_id))
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
    else:
        width = max(len(k) for k in info)
        for k, v in info.items():
            print(f"{k.ljust(width)}  {_fmt(v)}")
    return EXIT_OK


def _cmd_classes(args) -> int:
    import json

    import oicore

    with oicore.open(args.file) as release:
        classes = release.classes
        if args.query is None:
            data = {"named": len(classes), "mids": len(release.mids), "lists": {k: len(v) for k, v in classes.lists.items()}}
            if args.json:
                print(json.dumps(data, indent=2))
            else:
                print(f"{data['named']:,} named classes of {data['mids']:,} MIDs")
                for k, v in data["lists"].items():
                    print(f"    list {k}: {v:,} classes")
            return EXIT_OK
        mid = classes.mid(args.query)
        try:
            name = classes.name(mid)
        except KeyError:
            name = None
        lists = [k for k, v in classes.lists.items() if mid in set(v)]
        data = {"LabelName": mid, "DisplayName": name, "code": classes.code_of_mid(mid), "lists": lists}
        if args.json:
            print(json.dumps(data, indent=2, ensure_ascii=False))
        else:
            print(f"{mid}  {name}  (code {data['code']}; lists: {', '.join(lists) or '-'})")
    return EXIT_OK


def _cmd_schema(args) -> int:
    from oicore import schema

    print(schema.markdown_table())
    return EXIT_OK


def _progress_bar(total_label: str, quiet: bool):
    if quiet or not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    bar = tqdm(unit="B", unit_scale=True, desc=total_label, file=sys.stderr, leave=False)
    return bar, bar.update


def _cmd_synth(args) -> int:
    from oicore.synthetic import synth

    bar, update = _progress_bar("synth", args.quiet)
    t0 = time.perf_counter()
    try:
        paths = synth(args.out_dir, scale=args.scale, seed=args.seed, release=args.release, progress=update)
    finally:
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    total = sum(p.stat().st_size for p in paths)
    print(
        f"wrote {len(paths)} files, {total / 1e6:.1f} MB, to {args.out_dir} "
        f"in {seconds:.2f} s ({total / 1e6 / max(seconds, 1e-9):.0f} MB/s)"
    )
    return EXIT_OK


def _summarize(path, table, seconds) -> str:
    size = table.nbytes
    kind = (table.schema.metadata or {}).get(b"oicore.kind", b"?").decode()
    cols = ", ".join(f"{f.name}:{_short_type(f.type)}" for f in table.schema)
    return f"{path}: {kind}, {table.num_rows:,} rows in {seconds * 1000:.1f} ms ({size / 1e6:.1f} MB in memory)\n    {cols}"


def _short_type(t) -> str:
    s = str(t)
    return "dict" if s.startswith("dictionary") else s


def _cmd_read(args) -> int:
    from oicore.reader import read_csv

    for path in args.files:
        t0 = time.perf_counter()
        table = read_csv(path, kind=args.kind, threads=args.threads)
        print(_summarize(path, table, time.perf_counter() - t0))
    return EXIT_OK


def _cmd_demo(args) -> int:
    import tempfile
    from pathlib import Path

    from oicore.errors import CSVError
    from oicore.reader import read_csv
    from oicore.synthetic import synth

    with tempfile.TemporaryDirectory(prefix="oicore-demo-") as tmp:
        out = Path(tmp) / "release"
        t0 = time.perf_counter()
        paths = synth(out, scale=args.scale, seed=0, release="v3")
        total = sum(p.stat().st_size for p in paths)
        print(f"1. synthesized a V3 release at scale {args.scale}: {len(paths)} files, {total / 1e6:.1f} MB "
              f"in {time.perf_counter() - t0:.2f} s  ({out})")
        print("2. read every CSV with oicore.read_csv:")
        for p in paths:
            if p.suffix not in (".csv", ".txt"):
                continue
            t0 = time.perf_counter()
            table = read_csv(p)
            print("   " + _summarize(p.relative_to(out), table, time.perf_counter() - t0).replace("\n", "\n   "))
        import oicore
        from oicore.converter import convert

        t0 = time.perf_counter()
        report = convert(out, Path(tmp) / "release.oic", progress=False)
        print(f"3. converted it into one .oic file in {time.perf_counter() - t0:.2f} s: "
              f"{report.bytes_written / 1e6:.1f} MB for {report.bytes_read / 1e6:.1f} MB of CSV")
        with oicore.open(report.path) as release:
            ids = release.image_ids("train")
            busiest = max(ids[:200], key=lambda i: len(release.labels(i)))
            t0 = time.perf_counter()
            r = release.labels(busiest)
            micros = (time.perf_counter() - t0) * 1e6
            print(f"4. opened it; release.labels('{int(busiest):016x}') in {micros:.0f} µs (first call):")
            for mid, name, conf in list(zip(r.mids, r.names, r.confidence.tolist()))[:5]:
                print(f"     {mid:<12} {conf:.2f}  {name}")
            some = release.boxes_for_images(ids[:500], missing="empty").boxes
            mid = release.mids[int(some.label[0])] if len(some) else r.mids[0]
            b = release.boxes(mid)
            print(f"   release.boxes({mid!r}): {len(b)} boxes; images_with: {len(release.images_with(mid))} images")
        labels = out / "train" / "annotations-human-bbox.csv"
        print("5. a damaged file gives an error that says what and where:")
        lines = labels.read_bytes().split(b"\n")
        lines[3] = lines[3].rsplit(b",", 1)[0] + b",O.250000"  # a letter O typed for a zero
        bad = Path(tmp) / "damaged-bbox.csv"
        bad.write_bytes(b"\n".join(lines))
        try:
            read_csv(bad)
        except CSVError as e:
            print(f"   {type(e).__name__}: {e}")
            print(f"   (e.line={e.line}, e.column={e.column}, e.column_name={e.column_name!r}, "
                  f"e.byte_offset={e.byte_offset})")
        else:  # pragma: no cover - the demo's own check
            raise AssertionError("the damaged file was read without an error")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
