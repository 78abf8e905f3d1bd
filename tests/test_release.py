"""The lookup API (issue 4) against a pandas reference built from the CSV files.

Each synthetic release (V3 to V7, ``oicore.synth`` at a small scale) is converted once per session; the
reference re-reads its CSVs with ``oicore.read_csv`` and answers every lookup with pandas and numpy, from the
rules of FORMAT.md ("Tables") and the issue, never from the ``.oic`` file. Nothing here measures time.
"""

from __future__ import annotations

import gc
import hashlib
import json
import multiprocessing
import os
import pickle
import shutil
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import oicore
from oicore.errors import ChecksumError, FormatError, InvalidImageIDError, OicoreError

RELEASES = ("v3", "v4", "v5", "v6", "v7")
SCALE = 0.0002
SEED = 4
SPLITS = ("train", "validation", "test")
SPLIT_CODE = {"train": 0, "validation": 1, "test": 2}
UNKNOWN_SPLIT = 255
# Image tables, in the order the converter reads them (an image's split comes from the first part holding it).
IMAGE_TABLES = ("images", "human_labels", "machine_labels", "boxes", "points", "vrd", "segmentation")
FLAGS = ("IsOccluded", "IsTruncated", "IsGroupOf", "IsDepiction", "IsInside")
FLAG_FIELDS = ("is_occluded", "is_truncated", "is_group_of", "is_depiction", "is_inside")
IMAGE_FIELDS = {
    "Subset": "subset",
    "OriginalURL": "original_url",
    "OriginalLandingURL": "original_landing_url",
    "License": "license",
    "AuthorProfileURL": "author_profile_url",
    "Author": "author",
    "Title": "title",
    "OriginalSize": "original_size",
    "OriginalMD5": "md5",
    "Thumbnail300KURL": "thumbnail_300k_url",
    "Rotation": "rotation",
}
HIERARCHY_ROOT = "/m/0bl9f"


# ---- building releases ----------------------------------------------------------------------------------


def synthetic_release(tmp_path_factory, release: str) -> tuple[Path, Path]:
    """``(source folder, .oic file)`` of a synthetic release, made once per session (other modules share it)."""
    from oicore.converter import convert

    root = tmp_path_factory.getbasetemp() / "synthetic-releases"
    src, out = root / release, root / f"{release}.oic"
    if not out.exists():  # convert renames a complete file into place
        if src.exists():
            shutil.rmtree(src)
        oicore.synth(src, scale=SCALE, seed=SEED, release=release)
        convert(src, out)
    return src, out


def _part_key(source):
    # FORMAT.md: lookup parts train, validation, test, then parts without a split; export-only parts last.
    return (source.export_only, SPLIT_CODE.get(source.split, 3), source.name)


def _decoded(table):
    """A pyarrow table with its dictionary columns as plain strings."""
    import pyarrow as pa

    columns = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(columns, names=table.column_names)


class Reference:
    """Every lookup answered from the release's CSV files with pandas."""

    def __init__(self, name: str, src: Path, oic: Path):
        import pandas as pd

        from oicore.sources import find_sources

        self.name, self.src, self.oic = name, src, oic
        self.sources = sorted(find_sources([src]), key=_part_key)
        self.lookup: dict[str, list] = {}  # table -> [(Source, pyarrow.Table)], lookup parts in part order
        self.export: dict[str, list] = {}  # the export-only parts
        for s in self.sources:
            if s.kind is None:  # the hierarchy JSON
                continue
            (self.export if s.export_only else self.lookup).setdefault(s.table, []).append((s, oicore.read_csv(s.path, kind=s.kind)))

        # The image index: every ImageID of a lookup part of an image table; its split from the first part.
        id_lists, first_split = [], {}
        for table in IMAGE_TABLES:
            for s, t in self.lookup.get(table, []):
                id_col = "ImageID" if "ImageID" in t.column_names else "ImageId"
                ids = np.asarray(t.column(id_col).to_numpy(), np.uint64)
                id_lists.append(ids)
                if s.split is not None:
                    codes = [SPLIT_CODE[s.split]] * len(ids)
                elif "Subset" in t.column_names:
                    subset = {"val": "validation"}
                    codes = [SPLIT_CODE.get(subset.get(v.lower(), v.lower()), UNKNOWN_SPLIT) for v in _decoded(t).column("Subset").to_pylist()]
                else:
                    continue
                for i, c in zip(ids.tolist(), codes):
                    first_split.setdefault(i, c)
        self.ids = np.unique(np.concatenate(id_lists)) if id_lists else np.zeros(0, np.uint64)
        self.split = np.array([first_split.get(i, UNKNOWN_SPLIT) for i in self.ids.tolist()], np.uint8)
        self.split_of = dict(zip(self.ids.tolist(), self.split.tolist()))

        # Class names: the first description file that names a MID wins.
        self.names: dict[str, str] = {}
        for _, t in self.lookup.get("class_descriptions", []):
            d = _decoded(t)
            for mid, name in zip(d.column("LabelName").to_pylist(), d.column("DisplayName").to_pylist()):
                self.names.setdefault(mid, name)

        # Image tables in lookup order: rows sorted by ImageID, stably (part order, then file order).
        def frame(table):
            frames = []
            for k, (s, t) in enumerate(self.lookup.get(table, [])):
                df = _decoded(t).to_pandas()
                df["_part"] = k
                df["_row"] = np.arange(len(df))
                frames.append(df)
            if not frames:
                return None
            df = pd.concat(frames, ignore_index=True)
            df = df.sort_values("ImageID", kind="stable").reset_index(drop=True)
            df["_split"] = np.array([self.split_of[i] for i in df["ImageID"].tolist()], np.uint8)
            return df

        self.human = frame("human_labels")
        self.machine = frame("machine_labels")
        self.boxes = frame("boxes")
        if self.boxes is not None:
            for f in FLAGS:  # a file without the column, or an empty field: unknown, -1
                self.boxes[f] = self.boxes[f].fillna(-1).astype(np.int8) if f in self.boxes else np.int8(-1)
        self.by_id = {}
        for key, df in (("human", self.human), ("machine", self.machine), ("boxes", self.boxes)):
            self.by_id[key] = df.groupby("ImageID", sort=False).indices if df is not None else {}
        self.label_rows = {}
        for key, df in (("human", self.human), ("machine", self.machine)):
            if df is None:
                self.label_rows[key] = ([], [], [])
            else:
                self.label_rows[key] = (df["LabelName"].tolist(), df["Confidence"].to_numpy(np.float64), df["Source"].tolist())
        self.release = oicore.open(oic)

    # ---- expected answers --------------------------------------------------------------------------------

    def labels(self, image_id: int, source=None, min_confidence=None) -> list[tuple[str, float, str]]:
        rows = []
        for key in ("human", "machine"):
            if source in ("human", "machine") and source != key:
                continue
            mids, conf, src = self.label_rows[key]
            for p in self.by_id[key].get(image_id, ()):
                if source not in (None, "human", "machine") and src[p] != source:
                    continue
                if min_confidence is not None and not conf[p] >= min_confidence:
                    continue
                rows.append((mids[p], float(conf[p]), src[p]))
        return rows

    def label_sources(self) -> list[str]:
        return sorted({s for df in (self.human, self.machine) if df is not None for s in df["Source"].unique()})

    def boxes_of_image(self, image_id: int):
        return self.boxes.iloc[self.by_id["boxes"].get(image_id, np.zeros(0, np.int64))]

    def boxes_of_class(self, mid: str, split=None):
        b = self.boxes
        rows = np.flatnonzero(b["LabelName"].to_numpy() == mid)
        if split is not None:
            rows = rows[b["_split"].to_numpy()[rows] == SPLIT_CODE[split]]
        # By split (train, validation, test, unknown), then lookup order (ImageID, then file order).
        rows = rows[np.lexsort((rows, b["_split"].to_numpy()[rows]))]
        return b.iloc[rows]

    def images_with(self, mid, source="human", positive=True, min_confidence=None, split=None) -> np.ndarray:
        frames = {"human": [self.human], "machine": [self.machine], "boxes": [self.boxes]}.get(source, [self.human, self.machine, self.boxes])
        found = []
        for df in frames:
            if df is None:
                continue
            keep = df["LabelName"].to_numpy() == mid
            if source not in (None, "human", "machine", "boxes"):
                keep &= df["Source"].to_numpy() == source
            conf = df["Confidence"].to_numpy(np.float64)
            if positive is True:
                keep &= conf > 0
            elif positive is False:
                keep &= conf == 0
            if min_confidence is not None:
                keep &= conf >= min_confidence
            if split is not None:
                keep &= df["_split"].to_numpy() == SPLIT_CODE[split]
            found.append(df["ImageID"].to_numpy(np.uint64)[keep])
        return np.unique(np.concatenate(found)) if found else np.zeros(0, np.uint64)

    def image_row(self, image_id: int, parts=None) -> dict | None:
        """The images-CSV row of an image: the first lookup part (in part order) that has it."""
        for s, t in parts if parts is not None else self.lookup.get("images", []):
            ids = np.asarray(t.column("ImageID").to_numpy(), np.uint64)
            hit = np.flatnonzero(ids == np.uint64(image_id))
            if len(hit):
                return _decoded(t).slice(int(hit[0]), 1).to_pylist()[0]
        return None

    # ---- samples -----------------------------------------------------------------------------------------

    def sample_ids(self, n: int = 40, seed: int = 0) -> list[int]:
        """Random known IDs, and some with human rows, machine rows, boxes, and none of them."""
        rng = np.random.default_rng(seed)
        picked = list(rng.choice(self.ids, size=min(n, len(self.ids)), replace=False).tolist())
        for key in ("human", "machine", "boxes"):
            with_rows = sorted(self.by_id[key])
            picked += [with_rows[i] for i in rng.choice(len(with_rows), size=min(8, len(with_rows)), replace=False)]
        bare = [i for i in self.ids.tolist() if all(i not in self.by_id[k] for k in ("human", "machine", "boxes"))]
        picked += bare[:5]
        return list(dict.fromkeys(int(i) for i in picked))

    def unknown_id(self) -> int:
        known = set(self.ids.tolist())
        candidate = 0x0123456789ABCDEF
        while candidate in known:
            candidate += 1
        return candidate

    def frequent_mids(self, table: str, n: int) -> list[str]:
        df = {"human": self.human, "machine": self.machine, "boxes": self.boxes}[table]
        return df["LabelName"].value_counts(sort=True).index[:n].tolist()


_REFERENCES: dict[str, Reference] = {}


def reference(tmp_path_factory, name: str) -> Reference:
    if name not in _REFERENCES:
        _REFERENCES[name] = Reference(name, *synthetic_release(tmp_path_factory, name))
    return _REFERENCES[name]


@pytest.fixture(scope="module", autouse=True)
def _close_references():
    yield
    for r in _REFERENCES.values():
        r.release.close()
    _REFERENCES.clear()


@pytest.fixture(scope="module", params=RELEASES)
def ref(request, tmp_path_factory) -> Reference:
    return reference(tmp_path_factory, request.param)


@pytest.fixture(scope="module")
def v4(tmp_path_factory) -> Reference:
    """One release for the tests that need only one (threads, processes, life cycle, corruption)."""
    return reference(tmp_path_factory, "v4")


# ---- assertions -----------------------------------------------------------------------------------------


def assert_labels(ref: Reference, lab, rows, where=""):
    release = ref.release
    assert isinstance(lab, oicore.release.Labels)
    assert len(lab) == len(rows), where
    assert lab.confidence.dtype == np.float32 and lab.source.dtype == np.uint8 and lab.label.dtype.kind in "iu"
    assert [release.mids[c] for c in lab.label.tolist()] == [r[0] for r in rows], where
    assert np.array_equal(lab.confidence, np.array([r[1] for r in rows], np.float64).astype(np.float32)), where
    assert [release.sources[c] for c in lab.source.tolist()] == [r[2] for r in rows], where
    assert lab.mids == [r[0] for r in rows], where
    assert lab.names == [ref.names.get(r[0]) for r in rows], where


def assert_boxes(ref: Reference, boxes, expected, where=""):
    """``boxes`` (a Boxes) equals the reference rows ``expected`` (a DataFrame), field by field."""
    release = ref.release
    assert isinstance(boxes, oicore.release.Boxes)
    n = len(expected)
    assert len(boxes) == n, where
    assert boxes.image_id.dtype == np.uint64
    assert np.array_equal(boxes.image_id, expected["ImageID"].to_numpy(np.uint64)), where
    assert [release.mids[c] for c in boxes.label.tolist()] == expected["LabelName"].tolist(), where
    assert boxes.boxes.dtype == np.float32 and boxes.boxes.shape == (n, 4) and boxes.boxes.flags.c_contiguous
    want = expected[["XMin", "XMax", "YMin", "YMax"]].to_numpy(np.float64).astype(np.float32)
    assert np.array_equal(boxes.boxes, want), where
    for k, col in enumerate(("xmin", "xmax", "ymin", "ymax")):
        view = getattr(boxes, col)
        assert np.array_equal(view, want[:, k]), where
        assert n == 0 or np.shares_memory(view, boxes.boxes), f"{col} is not a view of .boxes"
    for flag, field in zip(FLAGS, FLAG_FIELDS):
        arr = getattr(boxes, field)
        assert arr.dtype == np.int8, field
        assert np.array_equal(arr, expected[flag].to_numpy(np.int8)), f"{where} {field}"
    assert boxes.source.dtype == np.uint8 and boxes.split.dtype == np.uint8
    assert [release.sources[c] for c in boxes.source.tolist()] == expected["Source"].tolist(), where
    assert np.array_equal(boxes.split, expected["_split"].to_numpy(np.uint8)), where


# ---- per image: labels ----------------------------------------------------------------------------------


def test_labels_equal_the_reference(ref):
    for image_id in ref.sample_ids():
        assert_labels(ref, ref.release.labels(f"{image_id:016x}"), ref.labels(image_id), f"{ref.name} {image_id:016x}")


def test_labels_equal_the_reference_once_every_block_is_checked(ref):
    # labels() checks the blocks it reads until all have been checked (looked at every 64 calls), then reads
    # without that bookkeeping: the answers before and after must be the same.
    release = oicore.open(ref.release.path)
    ids = ref.sample_ids(n=200, seed=1)
    for _ in range(3):
        for image_id in ids:
            assert_labels(ref, release.labels(image_id), ref.labels(image_id), f"{ref.name} {image_id:016x}")
    assert release.labels.__self__.hot
    release.close()


def test_labels_include_negatives_and_put_human_rows_first(ref):
    # An image with both a verified negative (confidence 0) and machine rows, if the release has one.
    both = [i for i in ref.by_id["human"] if i in ref.by_id["machine"]]
    assert both, "the synthetic release should have images with human and machine labels"
    image_id = both[0]
    rows = ref.labels(image_id)
    n_human = len(ref.by_id["human"][image_id])
    lab = ref.release.labels(image_id)
    assert_labels(ref, lab, rows)
    human_sources = set(ref.human["Source"])
    assert all(ref.release.sources[s] in human_sources for s in lab.source[:n_human].tolist())
    assert n_human < len(lab)
    negatives = [i for i in ref.by_id["human"] if any(ref.label_rows["human"][1][p] == 0 for p in ref.by_id["human"][i])]
    lab = ref.release.labels(negatives[0])
    assert (lab.confidence == 0).any()


@pytest.mark.parametrize("form", ["lower", "upper", "int", "numpy.uint64", "numpy.int64"])
def test_labels_accept_every_id_form(ref, form):
    for image_id in ref.sample_ids(n=10, seed=1):
        given = {
            "lower": f"{image_id:016x}",
            "upper": f"{image_id:016X}",
            "int": image_id,
            "numpy.uint64": np.uint64(image_id),
            "numpy.int64": np.int64(image_id) if image_id < 2**63 else None,
        }[form]
        if given is None:
            continue
        assert_labels(ref, ref.release.labels(given), ref.labels(image_id), f"{form} {image_id:016x}")


def test_labels_filters(ref):
    ids = ref.sample_ids(n=30, seed=2)
    sources = ref.label_sources()
    assert sources
    cases = [dict(source="human"), dict(source="machine"), dict(min_confidence=0.5), dict(min_confidence=0.7),
             dict(min_confidence=0.9), dict(min_confidence=1.0), dict(min_confidence=0), dict(source="machine", min_confidence=0.7)]
    cases += [dict(source=s) for s in sources] + [dict(source=s, min_confidence=0.5) for s in sources]
    for kw in cases:
        for image_id in ids:
            assert_labels(ref, ref.release.labels(image_id, **kw), ref.labels(image_id, **kw), f"{kw} {image_id:016x}")


def test_labels_unknown_source_lists_the_known_ones(ref):
    image_id = ref.sample_ids(n=1)[0]
    with pytest.raises(ValueError) as info:
        ref.release.labels(image_id, source="no-such-source")
    message = str(info.value)
    assert "no-such-source" in message
    for s in ref.label_sources():
        assert s in message
    for s in ("human", "machine"):
        assert s in message


def test_known_images_without_rows_give_empty_results(ref):
    release = ref.release
    no_labels = [i for i in ref.ids.tolist() if i not in ref.by_id["human"] and i not in ref.by_id["machine"]]
    no_boxes = [i for i in ref.ids.tolist() if i not in ref.by_id["boxes"]]
    assert no_boxes, f"every {ref.name} image has boxes?"
    for image_id in no_labels[:5]:
        lab = release.labels(image_id)
        assert len(lab) == 0 and lab.confidence.dtype == np.float32 and lab.mids == [] and len(lab.to_pandas()) == 0
    for image_id in no_boxes[:5]:
        boxes = release.boxes_for_image(image_id)
        assert len(boxes) == 0 and boxes.boxes.shape == (0, 4) and boxes.boxes.dtype == np.float32
        assert len(boxes.to_pandas()) == 0


def test_unknown_sources_everywhere(ref):
    image_id = ref.sample_ids(n=1)[0]
    mid = ref.frequent_mids("human", 1)[0]
    for call in (lambda: ref.release.labels_many([image_id], source="no-such-source"),
                 lambda: ref.release.images_with(mid, source="no-such-source")):
        with pytest.raises(ValueError) as info:
            call()
        assert "no-such-source" in str(info.value)


def test_labels_result_api(ref):
    image_id = max(ref.by_id["human"], key=lambda i: len(ref.by_id["human"][i]))
    rows = ref.labels(image_id)
    lab = ref.release.labels(image_id)
    assert isinstance(lab.mids, list) and all(isinstance(m, str) for m in lab.mids)
    assert isinstance(lab.names, list)
    df = lab.to_pandas()
    assert len(df) == len(rows)
    assert df["LabelName"].tolist() == [r[0] for r in rows]
    assert df["Source"].tolist() == [r[2] for r in rows]
    assert np.array_equal(df["Confidence"].to_numpy(), np.array([r[1] for r in rows]).astype(np.float32))
    assert df["DisplayName"].tolist() == [ref.names.get(r[0]) for r in rows]


MALFORMED_IDS = [
    "",
    "0123456789abcde",  # 15 digits
    "0123456789abcdef0",  # 17 digits
    "0123456789abcdeg",
    "0x23456789abcdef",
    " 123456789abcdef",
    "0123456789abcde\n",
    "é" * 16,
    "٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥",  # 16 non-ASCII digits
    -1,
    2**64,
    np.int64(-5),
]


@pytest.mark.parametrize("bad", MALFORMED_IDS, ids=repr)
def test_malformed_ids_raise_invalid_image_id_error(ref, bad):
    release = ref.release
    for lookup in (release.labels, release.boxes_for_image, release.image, release.split_of):
        with pytest.raises(InvalidImageIDError) as info:
            lookup(bad)
        assert isinstance(info.value, ValueError) and isinstance(info.value, OicoreError)
    assert bad not in release
    with pytest.raises(InvalidImageIDError):
        release.labels_many([bad])
    with pytest.raises(InvalidImageIDError):
        release.boxes_for_images([bad])


def test_unknown_ids_raise_key_error(ref):
    release = ref.release
    unknown = ref.unknown_id()
    for form in (unknown, f"{unknown:016x}", f"{unknown:016X}", np.uint64(unknown)):
        for lookup in (release.labels, release.boxes_for_image, release.image, release.split_of):
            with pytest.raises(KeyError) as info:
                lookup(form)
            assert f"{unknown:016x}" in str(info.value)
            assert not isinstance(info.value, InvalidImageIDError)
        assert form not in release


# ---- per image: boxes -----------------------------------------------------------------------------------


def test_boxes_for_image_equal_the_reference(ref):
    for image_id in ref.sample_ids(seed=3):
        assert_boxes(ref, ref.release.boxes_for_image(f"{image_id:016x}"), ref.boxes_of_image(image_id), f"{ref.name} {image_id:016x}")


def test_boxes_for_image_equal_the_reference_once_every_block_is_checked(ref):
    # As labels(): boxes_for_image checks the blocks it reads until all have been checked, then skips that;
    # answers (one buffer, every array a view of it) must be the same before and after, and stay valid.
    release = oicore.open(ref.release.path)
    ids = ref.sample_ids(n=200, seed=4)
    kept = []
    for _ in range(3):
        for image_id in ids:
            got = release.boxes_for_image(image_id)
            assert_boxes(ref, got, ref.boxes_of_image(image_id), f"{ref.name} {image_id:016x}")
            assert got.boxes.flags.c_contiguous and got.boxes.shape == (len(got), 4)
            kept.append((image_id, got))
    assert release.boxes_for_image.__self__.hot
    release.close()
    gc.collect()
    for image_id, got in kept[:: len(kept) // 20 or 1]:
        assert_boxes(ref, got, ref.boxes_of_image(image_id), f"{ref.name} {image_id:016x} after close")


def test_boxes_flags_are_minus_one_where_the_file_lacks_them(ref):
    b = ref.boxes
    lacking = [k for k, (s, t) in enumerate(ref.lookup["boxes"]) if "IsOccluded" not in t.column_names]
    if not lacking:
        pytest.skip(f"every {ref.name} boxes file has the flag columns")
    image_id = int(b["ImageID"][b["_part"] == lacking[0]].iloc[0])
    boxes = ref.release.boxes_for_image(image_id)
    assert_boxes(ref, boxes, ref.boxes_of_image(image_id))
    assert (boxes.is_occluded == -1).all() and (boxes.is_inside == -1).all()


def test_boxes_to_pandas(ref):
    image_id = max(ref.by_id["boxes"], key=lambda i: len(ref.by_id["boxes"][i]))
    expected = ref.boxes_of_image(image_id)
    df = ref.release.boxes_for_image(image_id).to_pandas()
    assert df["ImageID"].tolist() == [f"{i:016x}" for i in expected["ImageID"].tolist()]
    assert df["LabelName"].tolist() == expected["LabelName"].tolist()
    assert df["Source"].tolist() == expected["Source"].tolist()
    assert df["split"].tolist() == [SPLITS[s] for s in expected["_split"].tolist()]
    for c in ("XMin", "XMax", "YMin", "YMax"):
        assert np.array_equal(df[c].to_numpy(), expected[c].to_numpy(np.float64).astype(np.float32))
    for f in FLAGS:
        assert np.array_equal(df[f].to_numpy(), expected[f].to_numpy(np.int8))


# ---- per class ------------------------------------------------------------------------------------------


def _class_sample(ref, n_frequent=4, n_random=6, seed=5):
    mids = ref.frequent_mids("boxes", n_frequent)
    rng = np.random.default_rng(seed)
    present = sorted(set(ref.boxes["LabelName"]))
    mids += [present[i] for i in rng.choice(len(present), size=min(n_random, len(present)), replace=False)]
    boxable = ref.release.classes.lists["boxable"]
    mids += [m for m in boxable if m not in set(present)][:2]  # classes without boxes: empty results
    return list(dict.fromkeys(mids))


def test_boxes_per_class_equal_the_reference(ref):
    for mid in _class_sample(ref):
        for split in (None, *SPLITS):
            assert_boxes(ref, ref.release.boxes(mid, split=split), ref.boxes_of_class(mid, split), f"{ref.name} {mid} {split}")
    # and again from the per-Release cache
    mid = ref.frequent_mids("boxes", 1)[0]
    assert_boxes(ref, ref.release.boxes(mid), ref.boxes_of_class(mid))


def test_boxes_per_class_accept_a_mid_a_code_or_a_name(ref):
    release = ref.release
    counts, folded = {}, {}
    for name in ref.names.values():
        counts[name] = counts.get(name, 0) + 1
        folded[name.strip().casefold()] = folded.get(name.strip().casefold(), 0) + 1
    box_mids = ref.frequent_mids("boxes", 50)
    mid = next(
        m for m in box_mids
        if m in ref.names and counts[ref.names[m]] == 1 and folded[ref.names[m].strip().casefold()] == 1
        and ref.names[m].upper().casefold() == ref.names[m].casefold() and ref.names[m].upper() not in counts
    )
    name = ref.names[mid]
    expected = ref.boxes_of_class(mid)
    code = release.mids.index(mid)
    for label in (mid, code, np.int32(code), np.int64(code), np.uint64(code), name, f"  {name.upper()} "):
        assert_boxes(ref, release.boxes(label), expected, repr(label))
    with pytest.raises(KeyError):
        release.boxes("/m/no-such-mid-and-no-such-name")
    with pytest.raises(KeyError):
        release.boxes(len(release.mids))


def test_changing_a_result_changes_no_later_answer(v4):
    """Results are read-only views or private copies: writing into one must not alter the next answer."""
    mid = v4.frequent_mids("boxes", 1)[0]
    image_id = max(v4.by_id["boxes"], key=lambda i: len(v4.by_id["boxes"][i]))
    human_id = max(v4.by_id["human"], key=lambda i: len(v4.by_id["human"][i]))
    with oicore.open(v4.oic) as release:
        results = [release.boxes(mid), release.boxes(mid, split="train"), release.boxes_for_image(image_id), release.labels(human_id),
                   release.image_ids(), release.image_ids("train"), release.images_with(mid)]
        for result in results:
            arrays = [result] if isinstance(result, np.ndarray) else [getattr(result, f) for f in dir(result) if isinstance(getattr(result, f, None), np.ndarray)]
            for arr in arrays:
                try:
                    arr[...] = 0
                except ValueError:
                    pass  # a read-only view: fine
        after = "after writing into an earlier result"
        assert_boxes(v4, release.boxes(mid), v4.boxes_of_class(mid), f"boxes({mid!r}) {after}")
        assert_boxes(v4, release.boxes(mid, split="train"), v4.boxes_of_class(mid, "train"), f"boxes({mid!r}, split='train') {after}")
        assert_boxes(v4, release.boxes_for_image(image_id), v4.boxes_of_image(image_id), f"boxes_for_image {after}")
        assert_labels(v4, release.labels(human_id), v4.labels(human_id), f"labels {after}")
        assert np.array_equal(release.image_ids(), v4.ids)
        assert np.array_equal(release.images_with(mid), v4.images_with(mid))


# ---- images_with ----------------------------------------------------------------------------------------

IMAGES_WITH_CASES = [
    dict(),  # human positives: the converter's index
    dict(positive=False),
    dict(positive=None),
    dict(min_confidence=1.0),
    dict(split="train"),
    dict(split="validation"),
    dict(positive=False, split="test"),
    dict(source="machine"),
    dict(source="machine", min_confidence=0.7),
    dict(source="machine", positive=None, split="train"),
    dict(source="boxes"),
    dict(source="boxes", split="test"),
    dict(source=None),
    dict(source=None, positive=None),
    dict(source="verification"),
    dict(source="verification", positive=False),
    dict(source="xclick"),
]


@pytest.mark.parametrize("kw", IMAGES_WITH_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_images_with_equals_the_reference(ref, kw):
    mids = ref.frequent_mids("human", 3) + ref.frequent_mids("machine", 2) + ref.frequent_mids("boxes", 2)
    if kw.get("source") not in (None, "human", "machine", "boxes") and kw["source"] not in ref.release.sources:
        pytest.skip(f"{ref.name} has no source {kw['source']}")
    for mid in dict.fromkeys(mids):
        got = ref.release.images_with(mid, **kw)
        want = ref.images_with(mid, **{"source": "human", **kw})
        assert got.dtype == np.uint64
        assert np.array_equal(got, want), f"{ref.name} {mid} {kw}"


# ---- image() --------------------------------------------------------------------------------------------


def _assert_image_info(ref, info, image_id, row):
    assert isinstance(info, oicore.release.ImageInfo)
    assert info.image_id == f"{image_id:016x}"
    columns = {name for _, t in ref.lookup["images"] for name in t.column_names}
    for column, field in IMAGE_FIELDS.items():
        got = getattr(info, field)
        if column not in columns:
            assert got is None, field
            continue
        want = row.get(column)
        assert got == want and type(got) is type(want), f"{ref.name} {image_id:016x} {field}: {got!r} != {want!r}"
    if "Rotation" in columns:
        assert info.rotation is None or isinstance(info.rotation, float)


def test_image_info_equals_the_images_csv_row(ref):
    rng = np.random.default_rng(6)
    in_images = np.unique(np.concatenate([np.asarray(t.column("ImageID").to_numpy(), np.uint64) for _, t in ref.lookup["images"]]))
    ids = rng.choice(in_images, size=min(40, len(in_images)), replace=False).tolist() + ref.sample_ids(n=20, seed=6)
    found = 0
    for image_id in dict.fromkeys(int(i) for i in ids):
        row = ref.image_row(image_id)
        if row is None:
            with pytest.raises(KeyError):
                ref.release.image(image_id)
            continue
        found += 1
        _assert_image_info(ref, ref.release.image(f"{image_id:016X}"), image_id, row)
    assert found


def test_image_info_of_images_listed_only_in_a_boxable_images_file(ref):
    """V5 ships no full train images file: its train rows are only in train-images-boxable-with-rotation.csv."""
    only_export = [
        i for i in ref.sample_ids(n=200, seed=7) if ref.image_row(i) is None and ref.image_row(i, ref.export.get("images", [])) is not None
    ]
    if not only_export:
        pytest.skip(f"every {ref.name} image with an images-file row has it in a lookup part")
    for image_id in only_export[:5]:
        _assert_image_info(ref, ref.release.image(image_id), image_id, ref.image_row(image_id, ref.export["images"]))


# ---- index-based access ---------------------------------------------------------------------------------


def test_index_access(ref):
    release = ref.release
    ids = release.image_ids()
    assert ids.dtype == np.uint64
    assert np.array_equal(ids, ref.ids)
    assert len(release) == len(ref.ids)
    assert release.splits == list(SPLITS)
    for split in SPLITS:
        assert np.array_equal(release.image_ids(split), ref.ids[ref.split == SPLIT_CODE[split]]), split
    assert np.array_equal(release.image_ids("val"), release.image_ids("validation"))
    with pytest.raises(ValueError):
        release.image_ids("dev")
    for image_id in ref.sample_ids():
        for form in (image_id, f"{image_id:016x}", f"{image_id:016X}", np.uint64(image_id)):
            assert form in release
        code = ref.split_of[image_id]
        assert release.split_of(image_id) == (SPLITS[code] if code < 3 else None)


def test_sources(ref):
    release = ref.release
    assert len(set(release.sources)) == len(release.sources)
    want = set()
    for table in ("human_labels", "machine_labels", "boxes"):
        for _, t in ref.lookup.get(table, []) + ref.export.get(table, []):
            if "Source" in t.column_names:
                want |= set(_decoded(t).column("Source").to_pylist())
    assert set(release.sources) == want


# ---- batches --------------------------------------------------------------------------------------------


def _batch_ids(ref):
    ids = ref.sample_ids(n=50, seed=8)
    return ids + ids[:5]  # repeats too


@pytest.mark.parametrize("kw", [dict(), dict(source="human"), dict(source="machine", min_confidence=0.7), dict(min_confidence=0.9)], ids=str)
def test_labels_many_equals_per_id_calls(ref, kw):
    release = ref.release
    ids = _batch_ids(ref)
    for given in (ids, [f"{i:016x}" for i in ids], np.array(ids, np.uint64)):
        batch = release.labels_many(given, **kw)
        assert len(batch) == len(ids)
        assert batch.offsets[0] == 0 and len(batch.offsets) == len(ids) + 1
        for j, image_id in enumerate(ids):
            label, conf, source = batch[j]
            single = release.labels(image_id, **kw)
            assert np.array_equal(label, single.label) and np.array_equal(conf, single.confidence) and np.array_equal(source, single.source)
            assert conf.dtype == np.float32


def test_boxes_for_images_equals_per_id_calls(ref):
    release = ref.release
    ids = _batch_ids(ref)
    singles = [release.boxes_for_image(image_id) for image_id in ids]
    for image_id, single in zip(ids[:20], singles):
        assert_boxes(ref, single, ref.boxes_of_image(image_id))
    for given in (ids, [f"{i:016X}" for i in ids], np.array(ids, np.uint64)):
        batch = release.boxes_for_images(given)
        assert len(batch) == len(ids)
        assert isinstance(batch.boxes, oicore.release.Boxes)
        b = batch.boxes
        for j, single in enumerate(singles):
            lo, hi = int(batch.offsets[j]), int(batch.offsets[j + 1])
            for field in ("image_id", "label", "boxes", *FLAG_FIELDS, "source", "split"):
                assert np.array_equal(getattr(b, field)[lo:hi], getattr(single, field)), field


def test_batches_name_an_unknown_id_and_its_index(ref):
    release = ref.release
    ids = ref.sample_ids(n=6, seed=9)
    unknown = ref.unknown_id()
    given = ids[:3] + [unknown] + ids[3:]
    for lookup in (release.labels_many, release.boxes_for_images):
        with pytest.raises(KeyError) as info:
            lookup(given)
        assert f"{unknown:016x}" in str(info.value) and "3" in str(info.value)
    labels = release.labels_many(given, missing="empty")
    boxes = release.boxes_for_images(given, missing="empty")
    assert labels.offsets[4] == labels.offsets[3] and boxes.offsets[4] == boxes.offsets[3]
    for j, image_id in enumerate(given):
        if image_id == unknown:
            continue
        assert np.array_equal(labels[j][0], release.labels(image_id).label)
        assert boxes.offsets[j + 1] - boxes.offsets[j] == len(release.boxes_for_image(image_id))
    with pytest.raises(ValueError):
        release.labels_many(given, missing="skip")


@pytest.fixture
def small_batch_pieces(monkeypatch):
    """Batches cut into many small ranges on three threads, and every result buffer pooled."""
    from oicore import _lookup

    monkeypatch.setattr(_lookup, "BATCH_MIN_QUERIES", 7)
    monkeypatch.setattr(_lookup, "BATCH_MIN_ROWS", 13)
    old = _lookup._pool_settings(64)
    oicore.set_num_threads(3)
    yield
    oicore.set_num_threads(None)
    _lookup._pool_settings(old, clear=True)


@pytest.mark.parametrize("kw", [dict(), dict(source="human"), dict(source="machine", min_confidence=0.7), dict(min_confidence=0.9)], ids=str)
def test_labels_many_of_every_image_in_small_pieces(ref, kw, small_batch_pieces):
    """Every image (the first and last ones read rows at the ends of their segments, where the batch leaves its
    fast path; bare images have none), with unknown IDs between them, in ranges of a few queries."""
    release = ref.release
    unknown = ref.unknown_id()
    ids = [int(i) for i in release.image_ids()]
    given = np.array(([unknown] + ids[:40] + [unknown] + ids[40:])[::-1], np.uint64)
    batch = release.labels_many(given, missing="empty", **kw)
    assert len(batch) == len(given) and batch.offsets[0] == 0 and batch.offsets[-1] == len(batch.label)
    for j, image_id in enumerate(given.tolist()):
        label, conf, source = batch[j]
        if image_id == unknown:
            assert len(label) == 0
            continue
        single = release.labels(image_id, **kw)
        assert np.array_equal(label, single.label) and np.array_equal(conf, single.confidence) and np.array_equal(source, single.source), j
    with pytest.raises(KeyError, match=f"{unknown:016x}.*at index {len(ids) - 40}"):
        release.labels_many(given, **kw)


def test_labels_many_results_outlive_later_batches(v4, small_batch_pieces):
    """Result buffers return to a pool only when the last view of them dies."""
    release = v4.release
    ids = v4.sample_ids(n=60, seed=21)
    first = release.labels_many(ids)
    label, conf = first.label[5:], first.confidence  # views that outlive the batch object
    want = [np.array(a, copy=True) for a in (first.offsets, first.label, first.confidence, first.source)]
    del first
    gc.collect()
    for seed in range(10):
        other = release.labels_many(v4.sample_ids(n=60, seed=100 + seed)[::-1])
        assert len(other) > 0
        del other
    assert np.array_equal(label, want[1][5:]) and np.array_equal(conf, want[2])
    again = release.labels_many(ids)
    for a, b in zip((again.offsets, again.label, again.confidence, again.source), want):
        assert np.array_equal(a, b)
    assert release.labels_many(np.zeros(0, np.uint64)).offsets.tolist() == [0]


# ---- label_matrix ---------------------------------------------------------------------------------------


def _expected_matrix(ref, ids, vocabulary, mode, source, min_confidence, expand):
    """The documented rules: 1 positive (confidence >= min_confidence), 0 verified negative (confidence 0),
    -1 unknown (multi_hot: 0); human rows override machine rows, positives override negatives; ``expand``
    adds the ancestors of positives and the descendants of negatives (TensorFlow's expansion)."""
    column = {m: j for j, m in enumerate(vocabulary)}
    out = np.full((len(ids), len(vocabulary)), -1 if mode == "ternary" else 0, np.int8)
    up = down = None
    if expand:
        tree = json.loads((ref.src / _hierarchy_file(ref)).read_text(encoding="utf-8-sig"))
        up, down = _subcategory_closure(tree)
    tiers = ("human",) if source == "human" else ("machine",) if source == "machine" else ("human", "machine")
    for i, image_id in enumerate(ids):
        state = {}  # (tier, mid) -> set of values
        for tier in tiers:
            for mid, conf, _ in ref.labels(image_id, source=tier):
                positive = conf > 0 if min_confidence is None else conf >= min_confidence  # None: any confidence above 0
                value = 1 if positive else 0 if conf == 0 else None
                if value is None:
                    continue
                related = [mid]
                if expand:
                    related += (up.get(mid, []) if value == 1 else down.get(mid, []))
                for m in related:
                    state.setdefault((tier, m), set()).add(value)
        for m, j in column.items():
            for tier in tiers:  # human first: it overrides machine
                values = state.get((tier, m))
                if values:
                    decided = 1 if 1 in values else 0
                    out[i, j] = decided if mode == "ternary" else int(decided == 1)
                    break
    return out


def assert_same_matrix(got, want, ids, vocabulary):
    assert got.shape == want.shape
    bad = np.argwhere(got != want)
    if len(bad):
        i, j = bad[0]
        pytest.fail(f"{len(bad)} cells differ, e.g. image {ids[i]:016x} class {vocabulary[j]}: got {got[i, j]}, want {want[i, j]}")


def _subcategory_closure(tree):
    """``(ancestors, descendants)`` of every label along the Subcategory edges below the root, root excluded."""
    parents: dict[str, set] = {}
    children: dict[str, set] = {}

    def walk(node):
        for kid in node.get("Subcategory", []):
            parents.setdefault(kid["LabelName"], set()).add(node["LabelName"])
            children.setdefault(node["LabelName"], set()).add(kid["LabelName"])
            walk(kid)

    walk(tree)

    def closure(start, step):
        seen, stack = set(), [start]
        while stack:
            for nxt in step.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        seen.discard(tree["LabelName"])
        return sorted(seen)

    labels = set(parents) | set(children)
    return {m: closure(m, parents) for m in labels}, {m: closure(m, children) for m in labels}


def _hierarchy_file(ref):
    return next(s.name for s in ref.sources if s.table == "hierarchy")


def _matrix_vocabulary(ref, ids):
    mids = [m for i in ids for m, _, _ in ref.labels(i)]
    seen = list(dict.fromkeys(mids))
    return seen[:150] + ref.frequent_mids("machine", 20)


@pytest.mark.parametrize("mode", ["ternary", "multi_hot"])
@pytest.mark.parametrize("source", ["human", None, "machine"])
@pytest.mark.parametrize("min_confidence", [0.5, 0.7, None])
def test_label_matrix_equals_the_documented_rules(ref, mode, source, min_confidence):
    ids = ref.sample_ids(n=40, seed=10)
    vocabulary = list(dict.fromkeys(_matrix_vocabulary(ref, ids)))
    got = ref.release.label_matrix(ids, vocabulary, mode=mode, source=source, min_confidence=min_confidence)
    want = _expected_matrix(ref, ids, vocabulary, mode, source, min_confidence, expand=False)
    assert got.shape == want.shape and got.dtype == np.int8
    assert_same_matrix(got, want, ids, vocabulary)


@pytest.mark.parametrize("min_confidence", [np.float64(0.7), 0.70000001], ids=repr)
def test_label_matrix_compares_confidences_exactly(ref, min_confidence):
    """A confidence is positive when the CSV value >= min_confidence, as in labels(min_confidence=...)."""
    ids = ref.sample_ids(n=40, seed=20)
    vocabulary = list(dict.fromkeys(_matrix_vocabulary(ref, ids)))
    got = ref.release.label_matrix(ids, vocabulary, mode="ternary", source="machine", min_confidence=min_confidence)
    want = _expected_matrix(ref, ids, vocabulary, "ternary", "machine", float(min_confidence), expand=False)
    assert_same_matrix(got, want, ids, vocabulary)


def test_label_matrix_with_a_class_list_vocabulary(ref):
    ids = ref.sample_ids(n=30, seed=11)
    lists = ref.release.classes.lists
    name = "trainable" if "trainable" in lists else "boxable"
    vocabulary = lists[name]
    got = ref.release.label_matrix(ids, name, mode="ternary", source=None)
    assert got.shape == (len(ids), len(vocabulary))
    assert_same_matrix(got, _expected_matrix(ref, ids, vocabulary, "ternary", None, 0.5, expand=False), ids, vocabulary)
    if name == "trainable":
        assert np.array_equal(ref.release.label_matrix(ids), ref.release.label_matrix(ids, vocabulary))
    as_float = ref.release.label_matrix(ids, name, mode="ternary", source=None, dtype=np.float32)
    assert as_float.dtype == np.float32 and np.array_equal(as_float, got.astype(np.float32))
    with pytest.raises(KeyError):
        ref.release.label_matrix(ids, "no-such-list")
    with pytest.raises(ValueError):
        ref.release.label_matrix(ids, vocabulary, mode="binary")


@pytest.mark.parametrize("mode", ["ternary", "multi_hot"])
def test_label_matrix_expanded_by_the_hierarchy(ref, mode):
    if not any(s.table == "hierarchy" for s in ref.sources):
        pytest.skip(f"{ref.name} ships no hierarchy")
    hierarchy_mids = set(ref.release.hierarchy.labels)
    ids = [i for i in sorted(ref.by_id["human"]) if any(m in hierarchy_mids for m, _, _ in ref.labels(i))][:40]
    assert ids
    vocabulary = sorted(hierarchy_mids - {HIERARCHY_ROOT})
    got = ref.release.label_matrix(ids, vocabulary, mode=mode, source=None, expand=True)
    want = _expected_matrix(ref, ids, vocabulary, mode, None, 0.5, expand=True)
    assert_same_matrix(got, want, ids, vocabulary)


# ---- class_counts and table -----------------------------------------------------------------------------


@pytest.mark.parametrize("table", ["boxes", "human_labels", "machine_labels"])
def test_class_counts(ref, table):
    df = {"boxes": ref.boxes, "human_labels": ref.human, "machine_labels": ref.machine}[table]
    got = ref.release.class_counts(table) if table != "boxes" else ref.release.class_counts()
    assert list(got.columns) == ["LabelName", "split", "Source", "count"]
    got_counts = {(r.LabelName, r.split, r.Source): int(r.count) for r in got.itertuples()}
    split_names = [SPLITS[s] if s < 3 else None for s in df["_split"].tolist()]
    want = {}
    for key in zip(df["LabelName"].tolist(), split_names, df["Source"].tolist()):
        want[key] = want.get(key, 0) + 1
    assert got_counts == want


TABLE_NAMES = ("images", "human_labels", "machine_labels", "boxes", "points", "vrd", "segmentation", "class_descriptions", "class_lists")


@pytest.mark.parametrize("name", TABLE_NAMES)
def test_table_equals_read_csv(ref, name):
    import pyarrow as pa

    parts = ref.lookup.get(name)
    if not parts:
        with pytest.raises(KeyError):
            ref.release.table(name)
        return
    for split in (None, *SPLITS):
        chosen = [(s, t) for s, t in parts if split is None or s.split == split]
        if not chosen:
            with pytest.raises(KeyError):
                ref.release.table(name, split=split)
            continue
        got = ref.release.table(name, split=split)
        assert isinstance(got, pa.Table)
        pieces = [t.append_column("split", pa.array([s.split] * t.num_rows, pa.string())) if split is None else t for s, t in chosen]
        want = pa.concat_tables([p.replace_schema_metadata(None) for p in pieces], promote_options="default")
        assert got.column_names == want.column_names, f"{name} {split}"
        assert got.num_rows == want.num_rows, f"{name} {split}"
        for c in want.column_names:
            assert got.schema.field(c).type == want.schema.field(c).type, f"{name} {split} {c}"
            a, b = got.column(c), want.column(c)
            if pa.types.is_dictionary(b.type):  # equal values, whatever the dictionaries
                a, b = a.cast(pa.string()), b.cast(pa.string())
            assert a.equals(b), f"{name} {split} {c}"


def test_table_hierarchy(ref):
    import pyarrow as pa

    if not any(s.table == "hierarchy" for s in ref.sources):
        pytest.skip(f"{ref.name} ships no hierarchy")
    t = ref.release.table("hierarchy")
    assert isinstance(t, pa.Table) and t.num_rows > 0


def test_unknown_table_and_split(ref):
    with pytest.raises(KeyError):
        ref.release.table("no_such_table")
    with pytest.raises(ValueError):
        ref.release.table("boxes", split="dev")


# ---- threads and processes ------------------------------------------------------------------------------


def _answers(release, ids, mids, big=None):
    """Every kind of lookup, as plain comparable values (``big``: a batch large enough to use threads)."""
    out = []
    if big is not None:
        batch = release.labels_many(big)
        digest = hashlib.sha256()
        for arr in (batch.offsets, batch.label, batch.confidence, batch.source):
            digest.update(np.ascontiguousarray(arr).tobytes())
        out.append(digest.hexdigest())
    for image_id in ids:
        lab = release.labels(image_id)
        box = release.boxes_for_image(image_id)
        out.append((lab.label.tolist(), lab.confidence.tobytes(), lab.source.tolist(), box.boxes.tobytes(), box.label.tolist(),
                    image_id in release, release.split_of(image_id)))
    for mid in mids:
        b = release.boxes(mid)
        out.append((b.image_id.tolist(), b.boxes.tobytes(), release.images_with(mid).tolist()))
    batch = release.labels_many(ids)
    out.append((batch.offsets.tolist(), batch.label.tolist(), batch.confidence.tobytes()))
    return out


def _worker(args):
    release, ids, mids = args
    return os.getpid(), _answers(release, ids, mids)


_INHERITED = None


def _init_inherited(release):
    global _INHERITED
    _INHERITED = release


def _inherited_worker(args):
    ids, mids, big = args
    return os.getpid(), _answers(_INHERITED, ids, mids, big)


def _big_batch(ref, n=300_000, seed=17):
    return np.random.default_rng(seed).choice(ref.ids, size=n)


def test_eight_threads_give_the_same_answers_as_one(v4):
    ids = v4.sample_ids(n=80, seed=12)
    mids = v4.frequent_mids("boxes", 6) + v4.frequent_mids("human", 4)
    want = _answers(v4.release, ids, mids)
    fresh = oicore.open(v4.oic)  # nothing built yet: the threads race to build the lazy views
    barrier = threading.Barrier(8)
    rng = np.random.default_rng(13)
    orders = [rng.permutation(len(ids)) for _ in range(8)]

    def run(order):
        barrier.wait()
        chosen = [ids[k] for k in order]
        got = _answers(fresh, chosen, mids)
        return dict(zip(chosen, got[: len(chosen)])), got[len(chosen):]

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(run, orders))
    finally:
        fresh.close()
    single = dict(zip(ids, want[: len(ids)]))
    for per_id, rest in results:
        assert per_id == single
        assert rest[: len(mids)] == want[len(ids) : len(ids) + len(mids)]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_pickled_release_in_worker_processes(v4, method):
    ids = v4.sample_ids(n=30, seed=14)
    mids = v4.frequent_mids("boxes", 3)
    want = _answers(v4.release, ids, mids)  # the parent has built its views and caches before the fork
    ctx = multiprocessing.get_context(method)
    with ctx.Pool(2) as pool:
        results = pool.map(_worker, [(v4.release, ids, mids)] * 4, chunksize=1)
    assert {pid for pid, _ in results} - {os.getpid()}
    for _, got in results:
        assert got == want


def test_forked_workers_inherit_a_used_release(v4):
    ids = v4.sample_ids(n=30, seed=15)
    mids = v4.frequent_mids("boxes", 3)
    big = _big_batch(v4)
    oicore.set_num_threads(2)
    try:
        want = _answers(v4.release, ids, mids, big)  # the parent's thread pool exists when the workers fork
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(2, initializer=_init_inherited, initargs=(v4.release,)) as pool:
            results = pool.map_async(_inherited_worker, [(ids, mids, big)] * 4, chunksize=1).get(timeout=120)
    finally:
        oicore.set_num_threads(None)
    for _, got in results:
        assert got == want


_BOUND = None


def _init_bound(labels, boxes_for_image):
    global _BOUND
    _BOUND = (labels, boxes_for_image)


def _bound_worker(ids):
    labels, boxes_for_image = _BOUND
    return [(labels(i).label.tolist(), boxes_for_image(i).label.tolist()) for i in ids]


def test_methods_bound_before_a_fork_work_in_the_workers(v4):
    """``f = release.labels`` taken in the parent (a Dataset's __init__) keeps answering in forked workers."""
    ids = v4.sample_ids(n=30, seed=16)
    release = v4.release
    labels, boxes_for_image = release.labels, release.boxes_for_image
    want = [(labels(i).label.tolist(), boxes_for_image(i).label.tolist()) for i in ids]
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2, initializer=_init_bound, initargs=(labels, boxes_for_image)) as pool:
        results = pool.map_async(_bound_worker, [ids] * 4, chunksize=1).get(timeout=120)
    for got in results:
        assert got == want


def test_batches_on_several_threads_equal_one_thread(v4):
    release = v4.release
    big = _big_batch(v4, seed=18)
    unknown = v4.unknown_id()
    big[::997] = unknown
    results = {}
    try:
        for n in (1, 2, 4):
            oicore.set_num_threads(n)
            results[n] = (release.labels_many(big, missing="empty"), release.labels_many(big, source="machine", min_confidence=0.7, missing="empty"),
                          release.boxes_for_images(big, missing="empty"))
    finally:
        oicore.set_num_threads(None)
    for n in (2, 4):
        for a, b in zip(results[1][:2], results[n][:2]):
            for field in ("offsets", "label", "confidence", "source"):
                assert np.array_equal(getattr(a, field), getattr(b, field)), (n, field)
        a, b = results[1][2], results[n][2]
        assert np.array_equal(a.offsets, b.offsets)
        for field in ("image_id", "label", "boxes", *FLAG_FIELDS, "source", "split"):
            assert np.array_equal(getattr(a.boxes, field), getattr(b.boxes, field)), (n, field)
    labels, machine, boxes = results[4]
    for j in np.random.default_rng(19).choice(len(big), size=200, replace=False).tolist():
        image_id = int(big[j])
        if image_id == unknown:
            assert labels.offsets[j + 1] == labels.offsets[j] and boxes.offsets[j + 1] == boxes.offsets[j]
            continue
        assert np.array_equal(labels[j][0], release.labels(image_id).label)
        assert np.array_equal(machine[j][1], release.labels(image_id, source="machine", min_confidence=0.7).confidence)
        assert np.array_equal(boxes.boxes.boxes[boxes.offsets[j] : boxes.offsets[j + 1]], release.boxes_for_image(image_id).boxes)


def test_pickle_round_trip(v4):
    ids = v4.sample_ids(n=10, seed=16)
    copy = pickle.loads(pickle.dumps(v4.release))
    try:
        assert copy.path == v4.release.path and copy.uuid == v4.release.uuid
        assert _answers(copy, ids, []) == _answers(v4.release, ids, [])
    finally:
        copy.close()


def test_unpickling_a_replaced_file_raises(v4, tmp_path):
    from oicore.converter import convert

    path = tmp_path / "release.oic"
    shutil.copyfile(v4.oic, path)
    release = oicore.open(path)
    blob = pickle.dumps(release)
    release.close()
    convert(v4.src, tmp_path / "again.oic")  # the same sources: a new UUID, maybe the same size
    os.replace(tmp_path / "again.oic", path)
    with pytest.raises(FormatError) as info:
        pickle.loads(blob)
    assert isinstance(info.value, ValueError)


# ---- life cycle -----------------------------------------------------------------------------------------


def test_context_manager_and_views_after_close(v4):
    image_id = max(v4.by_id["boxes"], key=lambda i: len(v4.by_id["boxes"][i]))
    mid = v4.frequent_mids("boxes", 1)[0]
    with oicore.open(v4.oic) as release:
        assert not release.closed
        ids = release.image_ids()
        train = release.image_ids("train")
        lab = release.labels(image_id)
        box = release.boxes_for_image(image_id)
        per_class = release.boxes(mid)
        with_mid = release.images_with(mid)
        batch = release.labels_many([image_id])
        xmin = per_class.xmin
    assert release.closed
    del release
    gc.collect()
    # Everything obtained before close() is still readable.
    assert np.array_equal(ids, v4.ids) and int(ids.sum(dtype=np.uint64)) == int(v4.ids.sum(dtype=np.uint64))
    assert np.array_equal(train, v4.ids[v4.split == 0])
    assert_labels(v4, lab, v4.labels(image_id))
    assert_boxes(v4, box, v4.boxes_of_image(image_id))
    assert_boxes(v4, per_class, v4.boxes_of_class(mid))
    assert np.array_equal(xmin, v4.boxes_of_class(mid)["XMin"].to_numpy(np.float64).astype(np.float32))
    assert np.array_equal(with_mid, v4.images_with(mid))
    assert np.array_equal(batch.label, lab.label)


def test_every_lookup_raises_value_error_after_close(v4):
    image_id = max(v4.by_id["boxes"], key=lambda i: len(v4.by_id["boxes"][i]))
    mid = v4.frequent_mids("boxes", 1)[0]
    release = oicore.open(v4.oic)
    # Use everything once, so that lazily built views and cached results exist.
    release.labels(image_id), release.boxes_for_image(image_id), release.boxes(mid), release.image(image_id)
    release.images_with(mid), release.labels_many([image_id]), release.boxes_for_images([image_id])
    release.label_matrix([image_id], [mid]), release.class_counts(), release.table("class_lists")
    release.close()
    release.close()  # twice is fine
    lookups = {
        "labels": lambda: release.labels(image_id),
        "boxes_for_image": lambda: release.boxes_for_image(image_id),
        "boxes": lambda: release.boxes(mid),
        "boxes of a new class": lambda: release.boxes(v4.frequent_mids("boxes", 2)[1]),
        "images_with": lambda: release.images_with(mid),
        "image": lambda: release.image(image_id),
        "image_ids": lambda: release.image_ids(),
        "len": lambda: len(release),
        "in": lambda: image_id in release,
        "split_of": lambda: release.split_of(image_id),
        "labels_many": lambda: release.labels_many([image_id]),
        "boxes_for_images": lambda: release.boxes_for_images([image_id]),
        "label_matrix": lambda: release.label_matrix([image_id], [mid]),
        "class_counts": lambda: release.class_counts(),
        "table": lambda: release.table("class_lists"),
    }
    silent = []
    for what, call in lookups.items():
        try:
            call()
        except ValueError:
            continue
        silent.append(what)
    assert not silent, f"no ValueError after close() from: {', '.join(silent)}"


# ---- corruption -----------------------------------------------------------------------------------------


def _segment_of(release, table: str, column: str | None = None, key: str | None = None) -> int:
    from oicore.inspection import _column_segments

    entry = release._store.directory["tables"][table]
    # Packed integers and text encodings nest their segments; damage the largest one the column or index owns.
    owned = next(c for c in entry["columns"] if c["name"] == column) if column is not None else entry[key]
    segments = _column_segments(owned)
    return max(segments, key=lambda i: release._store.container.segments[i]["length"])


def _damaged_copy(src: Path, dst: Path, segment: int, where: float = 0.5) -> Path:
    shutil.copyfile(src, dst)
    with oicore.open(src) as release:
        seg = release._store.container.segments[segment]
    assert seg["length"] > 0
    offset = seg["offset"] + int(seg["length"] * where)
    with open(dst, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x5A]))
    return dst


def _corruption_cases(v4):
    image_id = max(v4.by_id["human"], key=lambda i: len(v4.by_id["human"][i]))
    box_image = max(v4.by_id["boxes"], key=lambda i: len(v4.by_id["boxes"][i]))
    mid = v4.frequent_mids("boxes", 1)[0]
    images_entry = v4.release._store.directory["images"]
    return {
        "human LabelName": (("human_labels", "LabelName", None), lambda r: r.labels(image_id)),
        "human Confidence": (("human_labels", "Confidence", None), lambda r: r.labels(image_id)),
        "human image rows": (("human_labels", None, "image_rows"), lambda r: r.labels(image_id)),
        "boxes XMin": (("boxes", "XMin", None), lambda r: r.boxes_for_image(box_image)),
        "boxes XMin per class": (("boxes", "XMin", None), lambda r: r.boxes(mid)),
        "boxes LabelName batch": (("boxes", "LabelName", None), lambda r: r.boxes_for_images([box_image])),
        "human Source batch": (("human_labels", "Source", None), lambda r: r.labels_many([image_id])),
        "image IDs": (images_entry["ids"], lambda r: r.labels(image_id)),
        "image Title (zstd)": (("images", "Title", None), lambda r: r.image(r.image_ids()[len(r) // 2])),
    }


@pytest.mark.parametrize("case", ["human LabelName", "human Confidence", "human image rows", "boxes XMin", "boxes XMin per class",
                                  "boxes LabelName batch", "human Source batch", "image IDs", "image Title (zstd)"])
def test_a_corrupted_segment_raises_checksum_error_on_first_touch(v4, tmp_path, case):
    where, lookup = _corruption_cases(v4)[case]
    segment = where if isinstance(where, int) else _segment_of(v4.release, *where)
    path = _damaged_copy(v4.oic, tmp_path / "damaged.oic", segment)
    with oicore.open(path) as release:  # only the header, footer and directory are checked at open
        for _ in range(2):  # and again: a bad block is never marked as checked
            with pytest.raises(ChecksumError) as info:
                lookup(release)
            assert info.value.segment == segment
            assert isinstance(info.value, ValueError)
    with pytest.raises(ChecksumError):
        oicore.open(path, verify=True)


def test_label_matrix_vocabularies_share_the_bounded_cache(v4, tmp_path):
    """Each distinct vocabulary's column map is cached, but in the Release's one bounded cache: a loop over
    many ad-hoc vocabularies keeps the cache within cache_bytes, and answers stay the same as it evicts."""
    ids = v4.sample_ids(n=20, seed=12)
    mids = list(dict.fromkeys(_matrix_vocabulary(v4, ids)))
    limit = 3 * 8 * len(v4.release.mids) + 30_000  # room for about three vocabularies' column maps
    with oicore.open(v4.oic, cache_bytes=limit) as release:
        assert release.cache_info() == {"bytes": 0, "limit": limit, "entries": 0}
        first = release.label_matrix(ids, mids[:5], mode="ternary", source=None)
        info = release.cache_info()
        assert info["entries"] == 1 and 0 < info["bytes"] <= limit
        for k in range(6, 60):
            got = release.label_matrix(ids, mids[:k], mode="ternary", source=None)
            assert np.array_equal(got[:, :5], first)
            assert release.cache_info()["bytes"] <= limit
        assert release.cache_info()["entries"] < 55  # the oldest went
        assert np.array_equal(release.label_matrix(ids, mids[:5], mode="ternary", source=None), first)
    with pytest.raises(ValueError, match="closed"):
        release.cache_info()


def test_empty_box_flags_read_as_minus_one_everywhere(tmp_path):
    """An empty IsOccluded... field (null to read_csv; stored as 0 with a null bit) is -1 in every box lookup,
    as an absent column is; written flags keep their value."""
    src = tmp_path / "src" / "validation"
    src.mkdir(parents=True)
    rows = [
        b"00000000000000aa,freeform,/m/01,1,0.1,0.2,0.3,0.4,,1,,0,\n",
        b"00000000000000aa,freeform,/m/01,1,0.1,0.2,0.3,0.4,0,-1,1,,1\n",
        b"00000000000000bb,freeform,/m/01,1,0.1,0.2,0.3,0.4,1,,,,\n",
    ]
    (src / "annotations-human-bbox.csv").write_bytes(
        b"ImageID,Source,LabelName,Confidence,XMin,XMax,YMin,YMax,IsOccluded,IsTruncated,IsGroupOf,IsDepiction,IsInside\n" + b"".join(rows))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oicore.convert(tmp_path / "src", tmp_path / "r.oic", progress=False)
    want = np.array([[-1, 1, -1, 0, -1], [0, -1, 1, -1, 1], [1, -1, -1, -1, -1]], np.int8)

    def flags(b):
        return np.stack([b.is_occluded, b.is_truncated, b.is_group_of, b.is_depiction, b.is_inside], axis=1)

    with oicore.open(tmp_path / "r.oic") as r:
        assert np.array_equal(flags(r.boxes_for_image(0xAA)), want[:2])
        assert np.array_equal(flags(r.boxes_for_image(0xBB)), want[2:])
        assert np.array_equal(flags(r.boxes("/m/01")), want)
        assert np.array_equal(flags(r.boxes_for_images(np.array([0xBB, 0xAA], np.uint64)).boxes), want[[2, 0, 1]])


def test_image_fields_a_row_s_file_lacks_are_none(tmp_path):
    """Images files of one release may differ in columns (V1's layouts; Rotation from V4 on): image() gives None
    for the columns the row's own file lacks, and the values of the rest."""
    src = tmp_path / "src"
    (src / "train").mkdir(parents=True)
    (src / "validation").mkdir()
    h11 = b"ImageID,Subset,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title,OriginalSize,OriginalMD5,Thumbnail300KURL"
    (src / "train" / "images.csv").write_bytes(b"ImageID,OriginalURL,OriginalLandingURL,License,AuthorProfileURL,Author,Title\n"
                                               b"000000000000000a,u,l,li,ap,au,ti\n")
    (src / "validation" / "images.csv").write_bytes(h11 + b",Rotation\n00000000000000bb,validation,u2,l2,li,ap,au,ti,99,abc==,t,90.0\n"
                                                    + b"00000000000000cc,validation,u3,l3,li,ap,au,ti,7,abd==,t,\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oicore.convert(src, tmp_path / "r.oic", progress=False)
    with oicore.open(tmp_path / "r.oic") as r:
        a = r.image(0xA)
        assert (a.original_url, a.title) == ("u", "ti")
        assert (a.subset, a.original_size, a.md5, a.thumbnail_300k_url, a.rotation) == (None, None, None, None, None)
        b = r.image(0xBB)
        assert (b.subset, b.original_size, b.md5, b.thumbnail_300k_url, b.rotation) == ("validation", 99, "abc==", "t", 90.0)
        assert r.image(0xCC).rotation is None and r.image(0xCC).original_size == 7


def test_label_matrix_tells_human_rows_by_their_table_not_their_source_text(tmp_path):
    """A Source value written in both a human and a machine file: the machine row stays a machine row, so
    a human negative still overrides a machine positive (and a human positive a machine negative)."""
    src = tmp_path / "src" / "train"
    src.mkdir(parents=True)
    header = b"ImageID,Source,LabelName,Confidence\n"
    (src / "annotations-human.csv").write_bytes(header + b"000000000000000a,shared,/m/01,0\n000000000000000b,shared,/m/02,1\n")
    (src / "annotations-machine.csv").write_bytes(header + b"000000000000000a,shared,/m/01,0.9\n000000000000000b,shared,/m/02,0\n"
                                                  + b"000000000000000b,shared,/m/01,0.8\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oicore.convert(tmp_path / "src", tmp_path / "r.oic", progress=False)
    with oicore.open(tmp_path / "r.oic") as r:
        for source in (None, "shared"):
            got = r.label_matrix([0xA, 0xB], ["/m/01", "/m/02"], mode="ternary", source=source)
            assert got.tolist() == [[0, -1], [1, 1]], source
        assert r.label_matrix([0xA, 0xB], ["/m/01", "/m/02"], mode="ternary", source="machine").tolist() == [[1, -1], [1, 0]]
        assert r.label_matrix([0xA, 0xB], ["/m/01", "/m/02"], mode="ternary", source="human").tolist() == [[0, -1], [-1, 1]]


def test_cli_lookups_print_the_csv_decimals_and_never_a_traceback(tmp_path, capsys):
    from oicore.cli import main

    src = tmp_path / "src" / "train"
    src.mkdir(parents=True)
    (src / "annotations-machine.csv").write_bytes(b"ImageID,Source,LabelName,Confidence\n000000000000000a,machine,/m/01,0.7\n"
                                                  b"000000000000000a,machine,/m/02,9.765625e-05\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oicore.convert(tmp_path / "src", tmp_path / "r.oic", progress=False)
    oic = str(tmp_path / "r.oic")
    assert main(["labels", oic, "000000000000000a", "--json"]) == 0
    assert [row["Confidence"] for row in json.loads(capsys.readouterr().out)] == [0.7, 9.765625e-05]
    assert main(["labels", oic, "000000000000000a"]) == 0
    out = capsys.readouterr().out
    assert " 0.7 " in out and " 9.765625e-05 " in out
    assert main(["boxes", oic, "/m/01"]) == 0 and "0 boxes" in capsys.readouterr().out  # a release without boxes
    # An argument the API rejects is a usage error; what the file lacks is exit 1; a folder for a file, usage.
    for argv, code, message in [
        (["labels", oic, "000000000000000a", "--source", "bogus"], 2, "unknown source 'bogus'"),
        (["image", oic, "000000000000000a"], 1, "has no images table"),
        (["labels", str(tmp_path), "000000000000000a"], 2, "directory"),
    ]:
        assert main(argv) == code, argv
        err = capsys.readouterr().err
        assert err.startswith("oicore: error: ") and message in err and "Traceback" not in err


def test_a_release_without_boxes_answers_box_lookups_empty(tmp_path):
    """As labels() without label files: known images have no boxes, unknown IDs raise KeyError."""
    src = tmp_path / "src" / "train"
    src.mkdir(parents=True)
    (src / "annotations-human.csv").write_bytes(b"ImageID,Source,LabelName,Confidence\n000000000000000a,verification,/m/01,1\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oicore.convert(tmp_path / "src", tmp_path / "r.oic", progress=False)
    with oicore.open(tmp_path / "r.oic") as r:
        b = r.boxes_for_image(0xA)
        assert len(b) == 0 and b.boxes.shape == (0, 4) and b.boxes.dtype == np.float32 and b.image_id.dtype == np.uint64
        assert len(r.boxes("/m/01")) == 0 and len(r.boxes("/m/01", split="train")) == 0
        batch = r.boxes_for_images(np.array([0xA, 0xB], np.uint64), missing="empty")
        assert batch.offsets.tolist() == [0, 0, 0] and len(batch.boxes) == 0
        with pytest.raises(KeyError):
            r.boxes_for_image(0xB)
        with pytest.raises(KeyError, match="index 1"):
            r.boxes_for_images(np.array([0xA, 0xB], np.uint64))


def test_arguments_the_lookups_refuse(v4):
    r = v4.release
    i = v4.sample_ids(n=1, seed=2)[0]
    for call in (lambda m: r.labels(i, min_confidence=m), lambda m: r.labels_many([i], min_confidence=m),
                 lambda m: r.images_with(v4.frequent_mids("human", 1)[0], min_confidence=m)):
        with pytest.raises(ValueError, match="NaN"):
            call(float("nan"))
        with pytest.raises(TypeError, match="min_confidence"):
            call("0.5")
    mid = r.mids[0]
    with pytest.raises(ValueError, match="twice"):
        r.label_matrix([i], [mid, mid])


def test_sources_and_splits_after_close(v4, tmp_path):
    fresh = oicore.open(v4.oic)
    fresh.close()
    for name in ("sources", "splits"):
        with pytest.raises(ValueError, match="closed"):
            getattr(fresh, name)
    used = oicore.open(v4.oic)
    ids = v4.sample_ids(n=30, seed=3)
    b = next(x for x in (used.boxes_for_image(j) for j in ids) if len(x))
    used.close()
    assert len(b.to_pandas()) == len(b)  # a result handed out still names its sources and splits


def test_header_only_label_files_add_no_source_value(tmp_path):
    src = tmp_path / "src" / "train"
    src.mkdir(parents=True)
    (src / "annotations-human.csv").write_bytes(b"ImageID,Source,LabelName,Confidence\n")
    (src / "annotations-machine.csv").write_bytes(b"ImageID,Source,LabelName,Confidence\n000000000000000a,machine,/m/01,0.5\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oicore.convert(tmp_path / "src", tmp_path / "r.oic", progress=False)
    with oicore.open(tmp_path / "r.oic") as r:
        assert r.sources == ["machine"]
        assert [r.sources[s] for s in r.labels(0xA).source] == ["machine"]
