"""oicore.synthetic: deterministic synthetic Open Images releases.

Every release is generated once per session at a tiny scale and checked against the schema (headers,
column grammar), the row-order rules, the row counts, and each release's documented quirks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import pathlib

import importlib

import numpy as np
import pytest

from oicore import schema
from oicore._synth import StringTable, Template, dedupe_in_groups, hash64

# The module (oicore.synth is the function it exports).
synth = importlib.import_module("oicore.synthetic")

SCALE = 0.0001

# sha256 over sorted (relative path, file sha256) pairs of synth(out, scale=0.0001, seed=0, release="v3").
# Any change to the generator's output changes it: update it on purpose only, and say why in the commit.
# It also rests on numpy's Generator streams (PCG64, integers, gamma, beta, choice, permutation), which numpy
# may change in a new feature release; synth avoids numpy's CPU-dispatched vector math (exp, log, pow).
PINNED_V3_SHA256 = "df647c616efc738915289eb9e5be0cb1b5737cacf5f821e10c563c20dbca7e53"


def tree_digest(root: pathlib.Path, paths) -> str:
    h = hashlib.sha256()
    for rel, digest in sorted((p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest())
                              for p in paths):
        h.update(f"{rel}\0{digest}\n".encode())
    return h.hexdigest()


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    out = {}
    for release in synth.RELEASES:
        root = tmp_path_factory.mktemp(f"synth-{release}")
        out[release] = (root, synth.synth(root, scale=SCALE, seed=0, release=release))
    return out


def read_rows(path: pathlib.Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f, strict=True))


def csv_line(fields) -> str:
    s = io.StringIO()
    csv.writer(s, lineterminator="\n").writerow(fields)
    return s.getvalue()


# ----------------------------------------------------------------------------------------------------------
# The Cython helpers
# ----------------------------------------------------------------------------------------------------------
def test_template_formats_every_segment_kind():
    table = StringTable([b"a", b"bb", b""])
    n = 4
    tpl = Template(
        [
            ("hex", np.array([0, 255, 2**64 - 1, 0xABC], dtype=np.uint64), 16), ("lit", b","),
            ("int", np.array([-5, 0, 12, 2**63 - 1])), ("lit", b","),
            ("fixed", np.array([0, 560250, 1_000_000, -5]), 6), ("lit", b","),
            ("fixed_trim", np.array([887500, 1_000_000, 0, 120]), 6), ("lit", b","),
            ("dict", np.array([0, 1, 2, 1]), table),
            ("cond", np.array([1, 0, 1, 0], dtype=np.uint8), 2), ("lit", b"?"), ("hex", np.arange(n, dtype=np.uint64), 3),
            ("lit", b","), ("b64", np.arange(16 * n, dtype=np.uint8)), ("lit", b"\n"),
        ],
        n,
    )
    data, offsets = tpl.render_all()
    lines = bytes(data).decode().splitlines()
    assert lines[0] == "0000000000000000,-5,0.000000,0.8875,a?000,AAECAwQFBgcICQoLDA0ODw=="
    assert lines[1] == "00000000000000ff,0,0.560250,1,bb,EBESExQVFhcYGRobHB0eHw=="
    assert lines[2] == "ffffffffffffffff,12,1.000000,0,?002,ICEiIyQlJicoKSorLC0uLw=="
    assert lines[3] == "0000000000000abc,9223372036854775807,-0.000005,0.00012,bb,MDEyMzQ1Njc4OTo7PD0+Pw=="
    assert offsets.tolist() == [0] + list(np.cumsum([len(x) + 1 for x in lines]))


@pytest.mark.parametrize("bufsize", [200, 211, 257, 1000])
def test_template_streams_through_a_small_buffer(bufsize):
    n = 1000
    tpl = Template([("int", np.arange(n) * 7919), ("lit", b","), ("hex", np.arange(n, dtype=np.uint64), 16),
                    ("lit", b"\n")], n)
    whole = bytes(tpl.render_all()[0])
    buf = np.empty(bufsize, dtype=np.uint8)
    parts, start = [], 0
    while start < n:
        start, nbytes = tpl.render(start, buf)
        parts.append(bytes(buf[:nbytes]))
    assert b"".join(parts) == whole


def test_template_rejects_bad_input():
    with pytest.raises(ValueError, match="expected 3 values"):
        Template([("int", np.arange(2))], 3)
    with pytest.raises(ValueError, match="codes must be in"):
        Template([("dict", np.array([0, 3]), StringTable([b"x", b"y"]))], 2)
    with pytest.raises(ValueError, match="past the end"):
        Template([("cond", np.ones(2, dtype=np.uint8), 1)], 2)
    with pytest.raises(ValueError, match="unknown kind"):
        Template([("float", np.arange(2))], 2)
    tpl = Template([("lit", b"0123456789")], 2)
    with pytest.raises(ValueError, match="smaller than one row"):
        tpl.render(0, np.empty(5, dtype=np.uint8))


def test_dedupe_in_groups_and_hash64():
    codes = np.array([1, 1, 1, 2, 2, 0, 4], dtype=np.int32)
    moved = dedupe_in_groups(codes, np.array([0, 3, 6, 7]), 3)
    assert moved == 4 and codes.tolist() == [1, 2, 0, 2, 0, 1, 4]
    x = np.arange(1000, dtype=np.uint64)
    h = hash64(x, np.uint64(7), 3)
    assert h.shape == (3, 1000) and len(np.unique(h)) == 3000
    assert np.array_equal(hash64(x[500:], np.uint64(7), 3), h[:, 500:])


# ----------------------------------------------------------------------------------------------------------
# Whole releases
# ----------------------------------------------------------------------------------------------------------
def test_same_arguments_give_identical_bytes(tmp_path, releases):
    root, paths = releases["v7"]
    again = synth.synth(tmp_path, scale=SCALE, seed=0, release="v7")
    assert tree_digest(tmp_path, again) == tree_digest(root, paths)
    other = synth.synth(tmp_path / "seed1", scale=SCALE, seed=1, release="v3")
    assert tree_digest(tmp_path / "seed1", other) != tree_digest(*releases["v3"])


def test_pinned_v3_output(releases):
    root, paths = releases["v3"]
    assert tree_digest(root, paths) == PINNED_V3_SHA256


@pytest.mark.parametrize("release", synth.RELEASES)
def test_file_list_matches_the_table(release, releases):
    root, paths = releases[release]
    assert paths == sorted(paths)
    assert [p.relative_to(root).as_posix() for p in paths] == [rel for rel, _ in synth.release_files(release)]
    assert not list(root.rglob("*.tmp"))


def _kind_and_variant(kind_name, header):
    kind = schema.KINDS[kind_name]
    variant = kind.variant_for(header)
    assert variant is not None, (kind_name, header)
    assert tuple(header) == variant.names  # same order as the schema
    return kind, variant


def _check_csv(path: pathlib.Path, kind_name: str, release: str):
    """Header, grammar, ID order and quoting of one CSV file; returns its data rows."""
    raw = path.read_bytes()
    text = raw.decode("utf-8")
    rows = read_rows(path)
    kind = schema.KINDS[kind_name]
    if kind.header is schema.HeaderRule.NEVER or (kind_name == "class_descriptions" and rows[0][0].startswith("/m/")):
        names, data = kind.headerless_names, rows
    else:
        names, data = rows[0], rows[1:]
        _kind_and_variant(kind_name, names)
    cols = [schema.column(n) for n in names]
    id_col = next((i for i, c in enumerate(cols) if c.type is schema.ColumnType.IMAGE_ID), None)
    assert all(len(row) == len(names) for row in data), path
    step = max(1, len(data) // 1500)  # the value grammar on about 1,500 rows a file keeps the test fast
    for row in data[::step]:
        for value, col in zip(row, cols):
            if value == "":
                assert not col.required, (path, col.name, row)
                continue
            t = col.type
            if t is schema.ColumnType.IMAGE_ID:
                assert schema.IMAGE_ID_PATTERN.fullmatch(value), value
            elif t is schema.ColumnType.FLOAT64:
                assert schema.NUMBER_PATTERN.fullmatch(value), (col.name, value)
                assert math.isfinite(float(value))
            elif t in (schema.ColumnType.INT8, schema.ColumnType.INT32, schema.ColumnType.INT64):
                assert schema.INTEGER_PATTERN.fullmatch(value), (col.name, value)
            elif col.name in ("LabelName", "LabelName1", "LabelName2", "Label"):
                assert schema.MID_PATTERN.fullmatch(value), (col.name, value)
    if id_col is not None and data:
        ids = [int(r[id_col], 16) for r in data]
        assert all(a <= b for a, b in zip(ids, ids[1:])), f"{path}: not sorted by ImageID"
        if kind_name == "images":
            assert len(set(ids)) == len(ids), f"{path}: repeated ImageID"
    if kind_name != "class_descriptions" and not (kind_name == "images" and release == "v3"):
        # RFC 4180 quoting only where needed: the bytes are what csv.writer would write.
        assert text == "".join(csv_line(r) for r in rows), path
    return names, data


@pytest.mark.parametrize("release", synth.RELEASES)
def test_every_file_matches_the_schema(release, releases):
    root, paths = releases[release]
    kinds = dict(synth.release_files(release))
    counts = synth.row_counts(release, SCALE)
    for p in paths:
        rel = p.relative_to(root).as_posix()
        kind = kinds[rel]
        if kind is None:
            continue
        if kind == "class_lists":
            text = p.read_text()
            assert text.endswith("\n") and "\r" not in text
            mids = text.split("\n")[:-1]
            assert all(schema.MID_PATTERN.fullmatch(m) for m in mids) and len(set(mids)) == len(mids)
            assert len(mids) == counts[rel]
            continue
        names, data = _check_csv(p, kind, release)
        if counts[rel] is not None:
            assert len(data) == counts[rel], rel
        assert data, rel


@pytest.mark.parametrize("release", synth.RELEASES)
def test_box_coordinates_are_ordered_and_in_range(release, releases):
    root, paths = releases[release]
    kinds = dict(synth.release_files(release))
    for p in paths:
        if kinds[p.relative_to(root).as_posix()] not in ("boxes", "segmentation", "vrd"):
            continue
        rows = read_rows(p)
        h = {n: i for i, n in enumerate(rows[0])}
        for suffix in ("", "1", "2"):
            for lo_name, hi_name in (("XMin", "XMax"), ("YMin", "YMax")):
                for prefix in ("", "Box"):
                    lo, hi = h.get(prefix + lo_name + suffix), h.get(prefix + hi_name + suffix)
                    if lo is None:
                        continue
                    for r in rows[1:]:
                        assert 0.0 <= float(r[lo]) < float(r[hi]) <= 1.0, (p, r)
        if "XClick1X" in h:
            for r in rows[1:]:
                clicks = [r[h[f"XClick{k}{a}"]] for k in range(1, 5) for a in "XY"]
                if r[h["Source"]] == "xclick":
                    xs = [float(r[h[f"XClick{k}X"]]) for k in range(1, 5)]
                    assert min(xs) == float(r[h["XMin"]]) and max(xs) == float(r[h["XMax"]])
                else:
                    assert clicks == [""] * 8


def test_row_counts_scale(tmp_path):
    small = synth.row_counts("v3", 0.001)
    assert small["train/annotations-machine.csv"] == 78_978
    assert small["train/annotations-human.csv"] == 20_869
    assert small["validation/annotations-human-bbox.csv"] == 205
    assert small["train/images.csv"] == 9_011
    full = synth.row_counts("v3", 1.0)
    assert full["train/annotations-machine.csv"] == 78_977_695
    assert full["train/annotations-human-bbox.csv"] == 3_709_509
    assert full["test/images.csv"] == 125_436
    assert full["class-descriptions.csv"] == 19_995 and full["classes-bbox.txt"] == 601
    assert synth.row_counts("v3", 1e-9)["validation/annotations-machine.csv"] == 1
    paths = synth.synth(tmp_path, scale=0.0003, seed=5, release="v3")
    got = {p.relative_to(tmp_path).as_posix(): p for p in paths}
    for rel, n in synth.row_counts("v3", 0.0003).items():
        lines = got[rel].read_bytes().count(b"\n")
        assert lines == n + (rel.endswith(".csv") and rel != "class-descriptions.csv"), rel


def test_v3_class_files(releases):
    root, _ = releases["v3"]
    raw = (root / "class-descriptions.csv").read_bytes()
    lines = raw.split(b"\n")[:-1]
    crlf = sum(line.endswith(b"\r") for line in lines)
    assert len(lines) == 19_995 and 0 < len(lines) - crlf < 500  # mostly CRLF, some bare LF
    rows = read_rows(root / "class-descriptions.csv")
    names = [n for _, n in rows]
    assert any("," in n for n in names) and any('"' in n for n in names)
    assert any(n.startswith(" ") for n in names) and any(not n.isascii() for n in names)
    assert b'""' in raw
    mids = [m for m, _ in rows]
    assert mids != sorted(mids)  # locale-like order, as the real file
    assert all(7 <= len(m) <= 11 and m.startswith("/m/0") for m in mids)
    assert sum(m.startswith("/m/01") for m in mids) > 1000
    lists = {name: (root / name).read_text().split() for name in
             ("classes.txt", "classes-trainable.txt", "classes-bbox.txt", "classes-bbox-trainable.txt")}
    assert [len(v) for v in lists.values()] == [19_995, 5_000, 601, 545]
    assert set(lists["classes.txt"]) == set(mids)
    assert set(lists["classes-bbox-trainable.txt"]) <= set(lists["classes-bbox.txt"]) & set(lists["classes-trainable.txt"])


def test_v3_images_quote_author_and_title(releases):
    root, _ = releases["v3"]
    text = (root / "train" / "images.csv").read_text(encoding="utf-8")
    rows = read_rows(root / "train" / "images.csv")
    assert rows[0] == list(schema.KINDS["images"].variants[3].names)
    for line, row in zip(text.splitlines()[1:], rows[1:]):
        quoted = ['"' + v.replace('"', '""') + '"' for v in row[6:8]]
        assert f',{quoted[0]},{quoted[1]},' in line
        assert row[4] == "https://creativecommons.org/licenses/by/2.0/"
        assert len(row[9]) == 24 and row[9].endswith("==")
        assert row[2].startswith("https://farm") and row[2].endswith("_o.jpg")
    authors_titles = " ".join(r[6] + " " + r[7] for r in rows[1:])
    assert "&amp;" in authors_titles or "&#x27;" in authors_titles
    assert not authors_titles.isascii()


def test_v3_values(releases):
    root, _ = releases["v3"]
    machine = read_rows(root / "train" / "annotations-machine.csv")[1:]
    assert {r[1] for r in machine} == {"machine"}
    assert {r[3] for r in machine} <= {"0.5", "0.6", "0.7", "0.8", "0.9", "1.0"}
    human = read_rows(root / "train" / "annotations-human.csv")[1:]
    assert {r[1] for r in human} == {"verification", "crowdsource-verification"}
    conf = [r[3] for r in human]
    assert set(conf) == {"0", "1"} and conf.count("0") > conf.count("1")
    pairs = [(r[0], r[2]) for r in human]
    assert len(set(pairs)) == len(pairs)  # a label once per image
    boxes = read_rows(root / "train" / "annotations-human-bbox.csv")
    assert len(boxes[0]) == 8 and {r[3] for r in boxes[1:]} == {"1"}
    assert {r[1] for r in boxes[1:]} <= {"xclick", "activemil", "verification"}
    assert all(len(v.split(".")[1]) == 6 for r in boxes[1:] for v in r[4:8])
    val = read_rows(root / "validation" / "annotations-human-bbox.csv")
    assert len(val[0]) == 13 and {r[1] for r in val[1:]} == {"freeform"}
    assert {v for r in val[1:] for v in r[8:]} <= {"0", "1"}


def test_later_release_quirks(releases):
    v4, _ = releases["v4"]
    assert "-1" in {v for r in read_rows(v4 / "train" / "train-annotations-bbox.csv")[1:] for v in r[8:]}
    images = read_rows(v4 / "image_ids_and_rotation.csv")
    assert images[0][-1] == "Rotation" and {r[1] for r in images[1:]} == {"train", "validation", "test"}
    assert {r[-1] for r in images[1:]} <= {"0.0", "90.0", "180.0", "270.0", ""}
    v6, _ = releases["v6"]
    header = read_rows(v6 / "oidv6-class-descriptions.csv")[0]
    assert header == ["LabelName", "DisplayName"]
    val_boxes = read_rows(v6 / "validation-annotations-bbox.csv")[1:]
    coords = [v for r in val_boxes for v in r[4:8]]
    assert any(len(v.split(".")[-1]) != 6 for v in coords)  # shortest float32, not fixed 6 decimals
    for v in coords:  # the shortest text that reads back as the same float32
        shortest = str(np.float32(v))
        assert (shortest[:-2] if shortest.endswith(".0") else shortest) == v
    v7, _ = releases["v7"]
    val = read_rows(v7 / "oidv7-val-annotations-human-imagelabels.csv")[1:]
    assert {r[3] for r in val if r[1] == "verification"} <= {"0.0", "1.0"}
    assert {r[3] for r in val if r[1] == "crowdsource-verification"} <= {"0", "1"}
    points = read_rows(v7 / "oidv7-val-annotations-point-labels.csv")
    assert points[0][0] == "ImageId" and points[0][3] == "Label"


def test_an_image_has_the_same_metadata_in_every_file(releases):
    root, _ = releases["v4"]
    everything = {r[0]: r for r in read_rows(root / "image_ids_and_rotation.csv")[1:]}
    for name in ("train/train-images-boxable-with-rotation.csv", "test/test-images-with-rotation.csv"):
        rows = read_rows(root / name)[1:]
        assert rows and all(everything[r[0]] == r for r in rows)
    boxed = {r[0] for r in read_rows(root / "train" / "train-annotations-bbox.csv")[1:]}
    assert boxed == {r[0] for r in read_rows(root / "train" / "train-images-boxable-with-rotation.csv")[1:]}


@pytest.mark.parametrize("release", ["v4", "v5", "v6", "v7"])
def test_hierarchy(release, releases):
    root, _ = releases[release]
    raw = (root / "bbox_labels_600_hierarchy.json").read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"") and not raw.endswith(b"\n")
    tree = json.loads(raw)
    assert raw.decode() == json.dumps(tree, indent=4).replace("\n", "\r\n")
    assert tree["LabelName"] == "/m/0bl9f"
    seen, occurrences, parts = set(), [0], [0]

    def walk(node, depth):
        assert set(node) <= {"LabelName", "Subcategory", "Part"} and depth <= 6
        seen.add(node["LabelName"])
        occurrences[0] += 1
        parts[0] += "Part" in node
        for child in node.get("Subcategory", []) + node.get("Part", []):
            walk(child, depth + 1)

    walk(tree, 0)
    boxable = {r[0] for r in read_rows(next(root.glob("*class-descriptions-boxable.csv")))}
    boxable.discard("LabelName")
    assert seen == boxable | {"/m/0bl9f"} and len(boxable) == 601
    assert occurrences[0] > 700 and parts[0] >= 5


def test_progress_reports_every_byte(tmp_path):
    seen = []
    paths = synth.synth(tmp_path, scale=SCALE, release="v3", progress=seen.append)
    assert sum(seen) == sum(p.stat().st_size for p in paths)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="unknown release"):
        synth.synth(tmp_path, release="v9")
    with pytest.raises(ValueError, match="scale"):
        synth.synth(tmp_path, scale=0)
    assert synth.DEFAULT_SCALE > 0 and synth.RELEASES == ("v3", "v4", "v5", "v6", "v7")
