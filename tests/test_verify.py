"""``oicore info`` and ``oicore verify``, and damaged files: every single-byte change caught, no crash.

Issue 3, Deliver 7 and "How it will be judged": held-out corruptions (single-byte changes anywhere,
truncation at any length) are all caught by ``verify`` and none of them crash ``open``. FORMAT.md, "What a
reader must check in an untrusted file".

The damaged files are opened in subprocesses, so that a crash (a segfault in the C lookup layer) fails
the test with the offset that caused it instead of killing pytest.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import oicore
from oicore import format as fmt
from oicore._checksum import crc32c
from oicore.errors import ChecksumError, FormatError, UnsupportedVersionError
from oicore.inspection import INFO_KEYS, VerifyMismatchError, info, verify
from test_convert import cli_env, found_sources, synthetic, tiny

# HYPOTHESIS_PROFILE=long (conftest.py) also makes the corruption sweeps exhaustive.
EXHAUSTIVE = os.environ.get("HYPOTHESIS_PROFILE") == "long"


# ---------------------------------------------------------------------------------------------- info


def _expected_rows_per_split(sources) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for s in found_sources(sources).values():
        if s.table == "hierarchy":
            out.setdefault("hierarchy", {})
            continue
        rows = oicore.read_csv(s.path, kind=s.kind).num_rows
        per = out.setdefault(s.table, {})
        key = s.split or "none"
        per[key] = per.get(key, 0) + rows
    return out


def _check_info(data: dict, oic: Path, sources, report) -> None:
    assert set(INFO_KEYS) <= set(data), set(INFO_KEYS) - set(data)
    assert data["size"] == oic.stat().st_size
    assert data["format"] == [fmt.MAJOR, fmt.MINOR]
    header = oic.read_bytes()[:64]
    import uuid

    assert data["uuid"] == str(uuid.UUID(bytes=header[16:32])) == report.uuid
    assert data["release"] == report.release
    assert data["oicore_version"] == oicore.__version__
    assert data["exact"] is True
    assert data["exceptions"] == report.exceptions
    found = found_sources(sources)
    assert [s["name"] for s in data["sources"]] == sorted(found)
    for s in data["sources"]:
        path = found[s["name"]].path
        assert s["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest(), s["name"]
        assert s["size"] == path.stat().st_size
        assert s["table"] == found[s["name"]].table and s["split"] == found[s["name"]].split
    expected = _expected_rows_per_split(sources)
    assert set(data["tables"]) == set(expected)
    for name, t in data["tables"].items():
        if name == "hierarchy":
            continue
        assert t["rows_per_split"] == expected[name], name
        assert t["rows"] == sum(expected[name].values()), name
        assert t["stored_bytes"] == sum(c["stored_bytes"] for c in t["columns"])
        for c in t["columns"]:
            assert {"name", "encoding", "stored_bytes", "raw_bytes", "ratio"} <= set(c)
    with oicore.open(oic) as r:
        assert data["images"] == len(r)
        assert data["vocabulary"] == len(r.mids)
    assert 0 < data["index_bytes"] < data["size"]


@pytest.mark.parametrize("release", ["v4", "v7"])
def test_info_of_synthetic_release(tmp_path_factory, release):
    src, oic, report, _ = synthetic(tmp_path_factory, release)
    _check_info(info(oic), oic, src, report)


def test_info_json_cli(tmp_path_factory, capsys):
    from oicore.cli import main

    src, oic, report, _ = tiny(tmp_path_factory)
    assert main(["info", str(oic), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    _check_info(data, oic, src, report)
    assert main(["info", str(oic)]) == 0
    text = capsys.readouterr().out
    assert "exact: true" in text and report.uuid in text


# ---------------------------------------------------------------------------------------------- verify


def test_verify_summary_and_cli(tmp_path_factory, capsys):
    from oicore.cli import main

    src, oic, _, _ = tiny(tmp_path_factory)
    result = verify(oic, against=[src])
    assert result["compared"] == len(found_sources(src))
    with oicore.open(oic) as r:
        assert result["segments"] == len(r._store.container.segments)
    assert main(["verify", str(oic), "--against", str(src)]) == 0
    assert "byte-identical" in capsys.readouterr().out


def test_verify_against_names_the_first_differing_line(tmp_path_factory, tmp_path, capsys):
    import shutil

    from oicore.cli import main

    src, oic, _, _ = tiny(tmp_path_factory)
    other = tmp_path / "other"
    shutil.copytree(src, other)
    path = other / "train" / "annotations-machine.csv"
    lines = path.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"1.0", b"1.00")  # line 3
    path.write_bytes(b"\n".join(lines))
    with pytest.raises(VerifyMismatchError) as e:
        verify(oic, against=[other])
    assert e.value.line == 3 and Path(e.value.path) == path
    assert "annotations-machine.csv" in str(e.value) and "line 3" in str(e.value)
    assert main(["verify", str(oic), "--against", str(other)]) == 1
    assert "line 3" in capsys.readouterr().err


@pytest.mark.parametrize("change, line", [(lambda b: b + b"0000000000000fff,machine,/m/01,0.5\n", None), (lambda b: b[:-5], None), (lambda b: b.replace(b"\n", b"\r\n"), 1)])
def test_verify_against_sees_a_longer_shorter_or_respelled_source(tmp_path_factory, tmp_path, change, line):
    """The export is compared with the source as it is written: extra bytes after it, a source that ends
    early, and a change on the first record all count."""
    import shutil

    src, oic, _, _ = tiny(tmp_path_factory)
    other = tmp_path / "other"
    shutil.copytree(src, other)
    path = other / "train" / "annotations-machine.csv"
    path.write_bytes(change(path.read_bytes()))
    with pytest.raises(VerifyMismatchError) as e:
        verify(oic, against=[other])
    assert Path(e.value.path) == path
    if line is not None:
        assert e.value.line == line


# ---------------------------------------------------------------------------------------------- damaged files

SWEEP = textwrap.dedent(
    r'''
    import json, os, sys
    import numpy as np
    import oicore
    from oicore.errors import FormatError
    from oicore.inspection import verify
    from oicore.store import Store
    from oicore.exporter import export_part_bytes

    mode, golden, work, results = sys.argv[1:5]
    tasks = json.loads(open(sys.argv[5]).read())
    data = open(golden, "rb").read()
    path = os.path.join(work, "damaged.oic")
    with open(path, "wb") as f:
        f.write(data)
    fd = os.open(path, os.O_RDWR)
    out = open(results, "w", buffering=1)


    def outcome(fn):
        try:
            return ("ok", fn())
        except FormatError as e:
            return ("format", type(e).__name__)
        except (KeyError, LookupError) as e:
            return ("lookup", type(e).__name__)
        except Exception as e:  # anything else is reported
            return ("other", type(e).__name__ + ": " + str(e)[:200])


    def plain(x):
        if isinstance(x, np.ndarray):
            return x.tolist()
        if hasattr(x, "label") and hasattr(x, "confidence"):
            return [x.label.tolist(), x.confidence.tolist(), x.source.tolist(), x.mids]
        if hasattr(x, "boxes") and hasattr(x, "image_id") and not isinstance(x, tuple):
            return [getattr(x, k).tolist() for k in ("image_id", "label", "boxes", "is_occluded", "is_truncated", "is_group_of", "is_depiction", "is_inside", "source", "split")]
        if hasattr(x, "to_pydict"):
            return {k: [repr(v) for v in vs] for k, vs in x.to_pydict().items()}
        if hasattr(x, "__dataclass_fields__"):
            return repr(x)
        return x


    IDS = ["0000000000000001", "00000000000000a2", "00000000000000b3", "00000000000000c4", "00000000000000ff"]


    def answers(p):
        got = {}
        try:
            r = oicore.open(p)
        except FormatError as e:
            return {"open": ("format", type(e).__name__)}
        except Exception as e:
            return {"open": ("other", type(e).__name__ + ": " + str(e)[:200])}
        with r:
            got["len"] = outcome(lambda: len(r))
            got["ids"] = outcome(lambda: plain(r.image_ids()))
            got["mids"] = outcome(lambda: r.mids)
            for i in IDS:
                got["labels " + i] = outcome(lambda: plain(r.labels(i)))
                got["boxes_for_image " + i] = outcome(lambda: plain(r.boxes_for_image(i)))
                got["image " + i] = outcome(lambda: plain(r.image(i)))
                got["split_of " + i] = outcome(lambda: r.split_of(i))
            got["labels_many"] = outcome(lambda: [plain(a) for a in (lambda b: (b.offsets, b.label, b.confidence, b.source))(r.labels_many(IDS, missing="empty"))])
            got["boxes_for_images"] = outcome(lambda: plain(r.boxes_for_images(IDS, missing="empty").boxes))
            for code in range(8):
                got[f"boxes {code}"] = outcome(lambda: plain(r.boxes(code)))
                got[f"images_with {code}"] = outcome(lambda: plain(r.images_with(code)))
                got[f"images_with machine {code}"] = outcome(lambda: plain(r.images_with(code, source="machine")))
            got["classes"] = outcome(lambda: (r.classes.names_by_code, {k: list(v) for k, v in r.classes.lists.items()}))
            got["hierarchy"] = outcome(lambda: r.hierarchy.children("/m/0bl9f"))
            got["label_matrix"] = outcome(lambda: plain(r.label_matrix(IDS[:4], vocabulary="all", mode="ternary")))
            for name in ("class_descriptions", "class_lists", "images", "human_labels", "machine_labels", "boxes"):
                got["table " + name] = outcome(lambda: plain(r.table(name)))
        def exported():
            s = Store(p)
            try:
                return [export_part_bytes(s, t, k).hex() for t in s.tables.values() for k in range(len(t.parts))]
            finally:
                s.close()
        got["export"] = outcome(exported)
        return got


    def run(task):
        if mode == "verify":
            return {"verify": outcome(lambda: verify(path) and None)}
        if mode == "lookups":
            return answers(path)
        raise SystemExit("unknown mode")


    reference = answers(golden) if mode == "lookups" else None
    if reference is not None:
        bad = [k for k, v in reference.items() if v[0] == "other"]
        out.write(json.dumps({"reference_other": bad}) + "\n")
    for off, x in tasks:
        out.write(json.dumps({"start": [off, x]}) + "\n")
        os.pwrite(fd, bytes([data[off] ^ x]), off)
        got = run((off, x))
        os.pwrite(fd, data[off : off + 1], off)
        problems = []
        if mode == "verify":
            if got["verify"][0] != "format":
                problems.append(got["verify"])
        else:
            for k, v in got.items():
                if v[0] == "other":
                    problems.append([k, v])
                elif v[0] in ("ok", "lookup") and reference.get(k) != v and json.loads(json.dumps(reference.get(k))) != json.loads(json.dumps(v)):
                    problems.append([k, "answered differently from the undamaged file"])
        out.write(json.dumps({"done": [off, x], "problems": problems}) + "\n")
    out.write(json.dumps({"finished": True}) + "\n")
    '''
)


def _layout(oic: Path):
    """(segment spans, block spans): absolute [start, end) of every segment and every block."""
    from oicore.format import Container

    c = Container(oic)
    try:
        segments = [(s["offset"], s["offset"] + s["length"]) for s in c.segments]
        blocks = []
        for i, s in enumerate(c.segments):
            for k in range(s["block_count"]):
                start = int(c._starts[i][k])
                blocks.append((start, start + c.block(i, k)[0]))
        return segments, blocks
    finally:
        c.close()


def _start_sweep(tmp_path: Path, mode: str, golden: Path, tasks, name: str):
    work = tmp_path / name
    work.mkdir()
    # One script per sweep: rewriting a shared one while an earlier sweep's interpreter is still reading it
    # gave that sweep an empty program (exit 0, no results), now and then.
    script = work / "sweep.py"
    script.write_text(SWEEP)
    task_file = work / "tasks.json"
    task_file.write_text(json.dumps(tasks))
    results = work / "results.jsonl"
    proc = subprocess.Popen([sys.executable, str(script), mode, str(golden), str(work), str(results), str(task_file)],
                            env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, results


def _finish_sweep(proc, results: Path, what: str) -> list:
    stdout, stderr = proc.communicate(timeout=600)
    lines = [json.loads(line) for line in results.read_text().splitlines() if line.strip()] if results.exists() else []
    started = [r["start"] for r in lines if "start" in r]
    if proc.returncode != 0 or not lines or "finished" not in lines[-1]:
        last = started[-1] if started else None
        pytest.fail(
            f"{what}: the subprocess died (exit {proc.returncode}) at [offset, xor] {last}, {len(lines)} result lines "
            f"({'no file' if not results.exists() else results.stat().st_size} bytes): "
            f"stdout {stdout.decode()[-500:]!r}, stderr {stderr.decode()[-2000:]}"
        )
    problems = [(r["done"], r["problems"]) for r in lines if r.get("problems")]
    reference_other = [r["reference_other"] for r in lines if "reference_other" in r]
    return problems, reference_other


def _sweep_tasks(golden: Path, exhaustive: bool):
    """(verify tasks, lookup tasks): lists of (offset, xor) over every structure of the golden file.

    Exhaustive (HYPOTHESIS_PROFILE=long): xor 0x01 and 0x80 at every offset for both. Otherwise: every offset
    of the header, the footer and the block table with both; every segment byte with 0x01 and every other
    one with 0x80; the directory (whose bytes all meet its CRC first) every third offset with 0x01 and every
    seventh with 0x80, and its first and last 64 bytes with both; padding every eighth offset, and the first
    and last byte of every gap. Lookups: one change in every block, and every 97th byte elsewhere.
    """
    from oicore.format import Container

    c = Container(golden)
    try:
        size = c.size
        d_off, d_len, _ = c.directory_span
        bt_off = c.directory["block_table"]["offset"]
        bt_end = bt_off + 12 * c.directory["block_table"]["count"]
    finally:
        c.close()
    segments, blocks = _layout(golden)
    region = ["pad"] * size
    for a in range(64):
        region[a] = region[size - 1 - a] = "end"
    for a in range(bt_off, bt_end):
        region[a] = "end"
    for a, b in segments:
        region[a:b] = ["seg"] * (b - a)
    for a in range(d_off, d_off + d_len):
        region[a] = "dir"
    for a in list(range(d_off, d_off + 64)) + list(range(d_off + d_len - 64, d_off + d_len)):
        region[a] = "end"
    gap_edges = {a for a in range(1, size) if region[a] == "pad" and region[a - 1] != "pad"}
    gap_edges |= {a for a in range(size - 1) if region[a] == "pad" and region[a + 1] != "pad"}
    verify_tasks, lookup_tasks = [], []
    for off, r in enumerate(region):
        for x in (0x01, 0x80):
            if exhaustive or r == "end" or (r == "seg" and (x == 0x01 or off % 2 == 0)) \
                    or (r == "dir" and off % (3 if x == 0x01 else 7) == 0) or (r == "pad" and (off % 8 == 0 or off in gap_edges)):
                verify_tasks.append((off, x))
            if exhaustive or (r != "seg" and off % 97 == 0 and x == 0x01):
                lookup_tasks.append((off, x))
    if not exhaustive:
        for i, (a, b) in enumerate(blocks):
            if b > a:
                lookup_tasks.append(((a + b) // 2, 0x80 if i % 2 else 0x01))
    return verify_tasks, sorted(set(lookup_tasks))


def test_every_single_byte_change_is_caught_and_never_crashes(tmp_path_factory, tmp_path):
    """Single-byte changes of the tiny golden file (``_sweep_tasks``): ``verify`` must raise a FormatError
    for each; opening the damaged file and looking things up, reading whole tables and exporting must
    raise a FormatError or answer as the undamaged file does, and never crash."""
    _, golden, _, _ = tiny(tmp_path_factory)
    verify_tasks, lookup_tasks = _sweep_tasks(golden, EXHAUSTIVE)
    procs = [
        (*_start_sweep(tmp_path, "verify", golden, verify_tasks[0::2], "verify-a"), "verify (even tasks)"),
        (*_start_sweep(tmp_path, "verify", golden, verify_tasks[1::2], "verify-b"), "verify (odd tasks)"),
        (*_start_sweep(tmp_path, "lookups", golden, lookup_tasks, "lookups"), "open and lookups"),
    ]
    failures = []
    try:
        for proc, results, what in procs:
            problems, reference_other = _finish_sweep(proc, results, what)
            assert not any(reference_other), f"the undamaged file fails some lookups: {reference_other}"
            failures += [(what, done, p) for done, p in problems]
    finally:  # after a failure, the other sweeps are stopped and their pipes closed (not left to a later test)
        for proc, _, _ in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert not failures, f"{len(failures)} damaged files not handled; first ones: {failures[:5]}"


def test_every_truncation_and_extension_is_rejected_at_open(tmp_path_factory, tmp_path):
    _, golden, _, _ = tiny(tmp_path_factory)
    data = golden.read_bytes()
    path = tmp_path / "cut.oic"
    path.write_bytes(data)
    kinds = Counter()
    with open(path, "r+b") as f:
        for length in range(len(data) - 1, -1, -1):
            f.truncate(length)
            f.flush()
            with pytest.raises(FormatError) as e:
                oicore.open(path)
            kinds[type(e.value).__name__] += 1
    assert set(kinds) == {"FormatError"}  # a truncated file is not a checksum problem
    path.write_bytes(data + b"\x00" * 64)
    with pytest.raises(FormatError, match="truncated or extended"):
        oicore.open(path)
    with pytest.raises(FormatError):
        verify(path)


def _rewrite(data: bytes, header=None, directory=None) -> bytes:
    """The file with new header fields and/or a new directory, every CRC made valid again."""
    from oicore.format import ALIGNMENT, END_MAGIC, FOOTER_SIZE, _FOOTER, _HEADER

    fo = len(data) - FOOTER_SIZE
    d_off, d_len, _, fflags, uid, _ = _FOOTER.unpack_from(data, fo)
    body = data[:d_off]
    text = data[d_off : d_off + d_len] if directory is None else json.dumps(directory, separators=(",", ":")).encode()
    text += bytes(-len(text) % ALIGNMENT)
    length = d_off + len(text) + FOOTER_SIZE
    text_len = d_len if directory is None else len(json.dumps(directory, separators=(",", ":")).encode())
    footer = _FOOTER.pack(d_off, text_len, crc32c(text[:text_len]), fflags, uid, length)
    footer += struct.pack("<I", crc32c(footer)) + END_MAGIC
    fields = list(_HEADER.unpack_from(data, 0))
    fields[5] = length
    for k, v in (header or {}).items():
        fields[k] = v
    head = _HEADER.pack(*fields)
    head += struct.pack("<I", crc32c(head))
    return head + body[64:] + text + footer


def test_newer_major_version_and_reserved_flags(tmp_path_factory, tmp_path):
    _, golden, _, _ = tiny(tmp_path_factory)
    data = golden.read_bytes()
    assert _rewrite(data) == data  # the helper changes nothing by itself
    p = tmp_path / "x.oic"
    p.write_bytes(_rewrite(data, header={1: 1}))
    with pytest.raises(UnsupportedVersionError):
        oicore.open(p)
    with pytest.raises(UnsupportedVersionError):
        verify(p)
    p.write_bytes(_rewrite(data, header={3: 1 << 7}))
    with pytest.raises(FormatError, match="flags"):
        oicore.open(p)


def test_checksum_error_names_table_segment_block_and_offset(tmp_path_factory, tmp_path):
    _, golden, _, _ = tiny(tmp_path_factory)
    data = bytearray(golden.read_bytes())
    with oicore.open(golden) as r:
        seg = r._store.directory["tables"]["boxes"]["class_rows"]["rows"]["segment"]
        offset = r._store.container.segments[seg]["offset"]
    data[offset] ^= 0x10
    p = tmp_path / "x.oic"
    p.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as e:
        verify(p)
    assert (e.value.segment, e.value.block, e.value.byte_offset) == (seg, 0, offset)
    assert "table 'boxes' class_rows rows" in str(e.value) and f"byte {offset}" in str(e.value)  # table, block, offset
    with oicore.open(p) as r:  # open reads no segment
        assert r.labels("0000000000000001").mids  # labels do not touch the boxes' class index
        with pytest.raises(ChecksumError):
            r.boxes("/m/01")


def test_verify_names_the_column_of_a_damaged_block(tmp_path_factory, tmp_path):
    _, golden, _, _ = tiny(tmp_path_factory)
    data = bytearray(golden.read_bytes())
    with oicore.open(golden) as r:
        col = next(c for c in r._store.directory["tables"]["images"]["columns"] if c["name"] == "Author")
        seg = col.get("segment", col.get("codes", {}).get("segment"))
        offset = r._store.container.segments[seg]["offset"]
    data[offset] ^= 0x01
    p = tmp_path / "x.oic"
    p.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="table 'images' column 'Author'"):
        verify(p)


# ---------------------------------------------------------------------------------------------- crafted directories

CRAFT = textwrap.dedent(
    r'''
    import json, sys
    import oicore
    from oicore.errors import OicoreError
    from oicore.inspection import verify
    from oicore.store import Store
    from oicore.exporter import export_part_bytes

    out = open(sys.argv[2], "w", buffering=1)
    IDS = ["0000000000000001", "00000000000000a2", "00000000000000b3", "00000000000000c4"]
    for path in json.loads(open(sys.argv[1]).read()):
        out.write(json.dumps({"start": path}) + "\n")
        problems = []
        def attempt(what, fn):
            try:
                fn()
            except (OicoreError, KeyError, LookupError):
                pass
            except Exception as e:
                problems.append([what, type(e).__name__ + ": " + str(e)[:160]])
        attempt("verify", lambda: verify(path))
        def lookups():
            with oicore.open(path) as r:
                for i in IDS:
                    attempt("labels", lambda: r.labels(i))
                    attempt("boxes_for_image", lambda: r.boxes_for_image(i))
                    attempt("image", lambda: r.image(i))
                for code in range(6):
                    attempt("boxes", lambda: r.boxes(code))
                    attempt("images_with", lambda: r.images_with(code))
                attempt("classes", lambda: r.classes.lists)
                for name in ("class_descriptions", "images", "human_labels", "boxes"):
                    attempt("table", lambda: r.table(name))
        attempt("open", lookups)
        def exported():
            s = Store(path)
            try:
                for t in s.tables.values():
                    for k in range(len(t.parts)):
                        attempt("export", lambda: export_part_bytes(s, t, k))
            finally:
                s.close()
        attempt("export", exported)
        out.write(json.dumps({"done": path, "problems": problems}) + "\n")
    out.write(json.dumps({"finished": True}) + "\n")
    '''
)


def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, path + (i,))
    else:
        yield path, obj


def _set(obj, path, value):
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value


def test_crafted_directories_raise_format_errors_and_never_crash(tmp_path_factory, tmp_path):
    """Valid CRCs around a directory whose numbers lie (as a buggy or hostile writer would make): every
    reader path must raise an OicoreError (or KeyError for an unknown key), never another exception, never
    crash (FORMAT.md: "every array a column describes fits its segment", "offset arrays are non-decreasing
    and end within their data")."""
    _, golden, _, _ = tiny(tmp_path_factory)
    data = golden.read_bytes()
    with oicore.open(golden) as r:
        directory = r._store.directory
    targets = [(p, v) for p, v in _leaves(directory)
               if p[0] in ("tables", "images", "vocabulary") and isinstance(v, int) and not isinstance(v, bool)]
    variants = []
    for k, (p, v) in enumerate(targets):
        for new in {v + 1, 0 if v else 1, 1 << 33, -1}:
            crafted = json.loads(json.dumps(directory))
            _set(crafted, p, new)
            variants.append((p, new, crafted))
    for p, v in _leaves(directory):
        if p[-1] in ("dtype", "buckets_dtype") and p[0] != "segments":
            for new in ("u1", "u8", "i2", "f8", 7):
                crafted = json.loads(json.dumps(directory))
                _set(crafted, p, new)
                variants.append((p, new, crafted))
        if p[-1] == "encoding":
            for new in ("strings", "code", "decimal", "float64", "image", "dict"):
                crafted = json.loads(json.dumps(directory))
                _set(crafted, p, new)
                variants.append((p, new, crafted))
    if not EXHAUSTIVE:  # a fixed sample; HYPOTHESIS_PROFILE=long tries them all
        import random

        variants = random.Random(20261201).sample(variants, min(len(variants), 120))
    files = []
    for i, (p, new, crafted) in enumerate(variants):
        f = tmp_path / f"c{i}.oic"
        f.write_bytes(_rewrite(data, directory=crafted))
        files.append(str(f))
    described = {str(f): (list(p), new) for f, (p, new, _) in zip(files, variants)}
    script = tmp_path / "craft.py"
    script.write_text(CRAFT)
    task_file, results = tmp_path / "tasks.json", tmp_path / "results.jsonl"
    task_file.write_text(json.dumps(files))
    proc = subprocess.run([sys.executable, str(script), str(task_file), str(results)], env=cli_env(), capture_output=True, timeout=600)
    lines = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    if proc.returncode != 0 or not lines or "finished" not in lines[-1]:
        last = [r["start"] for r in lines if "start" in r][-1:]
        pytest.fail(f"crashed (exit {proc.returncode}) on {[described.get(x) for x in last]}: {proc.stderr.decode()[-1500:]}")
    problems = [(described[r["done"]], r["problems"]) for r in lines if r.get("problems")]
    assert not problems, f"{len(problems)} crafted directories raise other errors; first: {problems[:6]}"


def _with_segment_bytes(data: bytes, container, seg: int, at: int, new: bytes) -> bytes:
    """The file with bytes [at, at + len(new)) of a raw segment replaced, its block's CRC and the block table's
    made valid again: damage that only the lookups' own range checks can catch."""
    s = container.segments[seg]
    out = bytearray(data)
    out[s["offset"] + at : s["offset"] + at + len(new)] = new
    block = s["first_block"] + at // (1 << 20)
    start = s["offset"] + (at // (1 << 20)) * (1 << 20)
    stored = int(container.blocks[block, 0])
    directory = json.loads(json.dumps(container.directory))
    table = directory["block_table"]
    struct.pack_into("<I", out, table["offset"] + 12 * block + 8, crc32c(bytes(out[start : start + stored])))
    table["crc32c"] = crc32c(bytes(out[table["offset"] : table["offset"] + 12 * table["count"]]))
    return _rewrite(bytes(out), directory=directory)


@pytest.mark.parametrize("table", ["human_labels", "machine_labels"])
def test_label_offsets_out_of_range_raise_in_batches(tmp_path_factory, tmp_path, table):
    """Row offsets that decrease (sound CRCs) raise FormatError from labels() and labels_many(), never read
    outside the table."""
    _, golden, _, _ = tiny(tmp_path_factory)
    data = golden.read_bytes()
    with oicore.open(golden) as r:
        c = r._store.container
        spec = r._store.directory["tables"][table]["image_rows"]
        seg, bits = spec["local"]["segment"], spec["local"]["bits"]
        stride, shift = spec["local"].get("stride", bits), spec["local"].get("shift", 0)  # maybe a field of records
        ids = r.image_ids()
        stream = int.from_bytes(bytes(c.raw(seg)), "little")
    mask = (1 << bits) - 1
    for i, v in ((0, mask), (1, 0)):  # image 0: rows [max, 0); other fields of the records kept
        stream = stream & ~(mask << (i * stride + shift)) | v << (i * stride + shift)
    damaged = _with_segment_bytes(data, c, seg, 0, stream.to_bytes(c.segments[seg]["length"], "little"))
    p = tmp_path / "x.oic"
    p.write_bytes(damaged)
    with oicore.open(p) as r:
        with pytest.raises(FormatError):
            r.labels_many(ids[:1])
        with pytest.raises(FormatError):
            r.labels_many(ids[::-1], missing="empty")
        with pytest.raises(FormatError):
            r.labels(ids[0])


_STRIDE_CASES = {
    "stride below bits + shift": ("stride", lambda i: i["bits"] + i["shift"] - 1),
    "stride above 64": ("stride", lambda i: 65),
    "stride that does not fit the segment": ("stride", lambda i: i["stride"] + 1),
    "negative shift": ("shift", lambda i: -1),
    "shift past the record": ("shift", lambda i: i["stride"]),
    "stride on an index": (None, lambda i: 64),  # image_rows' base: only columns and `local` may have one
}


@pytest.mark.parametrize("case", list(_STRIDE_CASES))
def test_crafted_strides_raise_format_errors(tmp_path_factory, tmp_path, case):
    """A label column's ``stride``/``shift`` (FORMAT.md, "Packed integers") that would read past its record or
    its segment, or a stride where FORMAT.md allows none, is rejected at open."""
    _, golden, _, _ = tiny(tmp_path_factory)
    data = golden.read_bytes()
    with oicore.open(golden) as r:
        directory = r._store.directory
    table = directory["tables"]["machine_labels"]
    code = next(i for i, c in enumerate(table["columns"]) if c["name"] == "LabelName")
    ints = table["columns"][code]["ints"]
    assert ints.get("stride", 0) > ints["bits"], "the writer interleaves a label table's columns"
    key, value = _STRIDE_CASES[case]
    path = ("tables", "machine_labels", "columns", code, "ints", key) if key else ("tables", "machine_labels", "image_rows", "base", "stride")
    crafted = json.loads(json.dumps(directory))
    _set(crafted, path, value(ints))
    f = tmp_path / "x.oic"
    f.write_bytes(_rewrite(data, directory=crafted))
    with pytest.raises(FormatError):
        with oicore.open(f) as r:
            r.labels(r.image_ids()[0])
            r.table("machine_labels")


def test_label_tables_share_their_image_rows_as_records(tmp_path_factory):
    """The two label tables' image row offsets (``local``) are fields of one segment (FORMAT.md, blocked
    offsets), and each still reads back the table's own offsets (the slow reader agrees in test_format_spec)."""
    from oicore import columns as C

    _, golden, _, _ = tiny(tmp_path_factory)
    with oicore.open(golden) as r:
        tables = r._store.directory["tables"]
        human, machine = (tables[t]["image_rows"]["local"] for t in ("human_labels", "machine_labels"))
        assert human["segment"] == machine["segment"] and human["stride"] == machine["stride"] == human["bits"] + machine["bits"]
        n = r._store.directory["images"]["count"] + 1
        for t in ("human_labels", "machine_labels"):
            offsets = C.blocked_offsets(r._store.container, tables[t]["image_rows"], n, t)
            assert offsets[0] == 0 and (np.diff(offsets) >= 0).all() and offsets[-1] == tables[t]["lookup_rows"]
