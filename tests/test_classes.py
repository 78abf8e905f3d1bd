"""``release.classes``: MID ↔ display name and the class lists, against the files read with Python's csv module.

Real files: ../shared/data/v3 (V3 class descriptions, 268 display names shared by several MIDs, and the four
class lists), v1/dict.csv and v4/class-descriptions-boxable.csv. Synthetic releases V3 to V7 too.
"""

from __future__ import annotations

import csv
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import oicore
from oicore.errors import AmbiguousLabelError, OicoreError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RELEASES = ("v3", "v4", "v5", "v6", "v7")
SCALE = 0.0002
SEED = 4


def synthetic_release(tmp_path_factory, release: str) -> tuple[Path, Path]:
    """``(source folder, .oic file)`` of a synthetic release, made once per session (shared with test_release)."""
    from oicore.converter import convert

    root = tmp_path_factory.getbasetemp() / "synthetic-releases"
    src, out = root / release, root / f"{release}.oic"
    if not out.exists():
        if src.exists():
            shutil.rmtree(src)
        oicore.synth(src, scale=SCALE, seed=SEED, release=release)
        convert(src, out)
    return src, out


def read_descriptions(path: Path) -> list[tuple[str, str]]:
    """``(mid, name)`` rows with the csv module (a V6/V7 header row is skipped)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [tuple(r) for r in csv.reader(f)]
    if rows and rows[0][0] == "LabelName":
        rows = rows[1:]
    assert all(len(r) == 2 for r in rows)
    return rows


def read_list(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        return [r[0] for r in csv.reader(f) if r]


def fold(name: str) -> str:
    return name.strip().casefold()


class Expected:
    """Names and lists of a release folder, from its files alone."""

    def __init__(self, folder: Path):
        from oicore.sources import find_sources

        sources = sorted(find_sources([folder]), key=lambda s: s.name)
        self.names: dict[str, str] = {}
        self.lists: dict[str, list[str]] = {}
        for s in sources:
            if s.table == "class_descriptions":
                rows = read_descriptions(s.path)
                for mid, name in rows:
                    self.names.setdefault(mid, name)  # the first file (by name) wins
                if "boxable" in s.name.lower():
                    self.lists["boxable"] = [m for m, _ in rows]
            elif s.table == "class_lists":
                self.lists[s.list_name] = read_list(s.path)
        self.by_name: dict[str, list[str]] = defaultdict(list)
        self.by_fold: dict[str, list[str]] = defaultdict(list)
        for mid, name in self.names.items():
            self.by_name[name].append(mid)
            self.by_fold[fold(name)].append(mid)


def assert_classes(classes, expected: Expected, sample: int | None = None):
    names = list(expected.names.items())
    if sample is not None:
        names = names[:: max(1, len(names) // sample)]
    for mid, name in names:
        assert classes.name(mid) == name
    with pytest.raises(KeyError):
        classes.name("/m/not-a-mid")
    for name, mids in list(expected.by_name.items())[:: 1 if sample is None else max(1, len(expected.by_name) // sample)]:
        if len(mids) == 1:
            assert classes.mid(name) == mids[0], name
        else:
            with pytest.raises(AmbiguousLabelError) as info:
                classes.mid(name)
            err = info.value
            assert isinstance(err, KeyError) and isinstance(err, OicoreError)
            assert sorted(m for m, _ in err.candidates) == sorted(mids)
            assert all(n == name for _, n in err.candidates)
        # Case-insensitive, without surrounding spaces, when no name matches exactly.
        query = f"  {name.strip().upper()} "
        folded = expected.by_fold.get(fold(query))
        if query in expected.by_name or not folded:  # upper() is not undone by casefold() for 'ı'
            continue
        if len(folded) == 1:
            assert classes.mid(query) == folded[0], query
        else:
            with pytest.raises(AmbiguousLabelError) as info:
                classes.mid(query)
            assert sorted(m for m, _ in info.value.candidates) == sorted(folded)
    for list_name, mids in expected.lists.items():
        assert classes.lists[list_name] == mids, list_name


def assert_no_match_lists_close_names(classes, expected: Expected):
    with pytest.raises(KeyError) as info:
        classes.mid("zzzz qqqq xxxx no such class")
    assert not isinstance(info.value, AmbiguousLabelError)
    # A typo in a long, unique name: that name is among the (at most five) close names offered.
    name = next(n for n, m in sorted(expected.by_name.items()) if len(m) == 1 and len(n) > 18 and n == n.strip() and '"' not in n)
    typo = name[:5] + name[6:]
    with pytest.raises(KeyError) as info:
        classes.mid(typo)
    message = str(info.value)
    assert repr(name) in message or name in message, message
    offered = [n for n in expected.by_name if repr(n) in message]
    assert 1 <= len(offered) <= 5


# ---- real files -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_v3(tmp_path_factory):
    from oicore.converter import convert

    out = tmp_path_factory.mktemp("real") / "v3.oic"
    convert(SHARED_DATA / "v3", out)
    with oicore.open(out) as release:
        yield release, Expected(SHARED_DATA / "v3")


def test_real_v3_names(real_v3):
    release, expected = real_v3
    classes = release.classes
    assert len(expected.names) == 19_995 and len(classes) == 19_995
    assert sum(1 for mids in expected.by_name.values() if len(mids) > 1) == 268
    assert_classes(classes, expected)


def test_real_v3_quirks(real_v3):
    release, expected = real_v3
    classes = release.classes
    spaced = [(m, n) for m, n in expected.names.items() if n != n.strip()]
    assert spaced, "V3 has names with surrounding spaces"
    for mid, name in spaced:
        assert classes.name(mid) == name  # kept as in the file
        assert classes.mid(name) == mid
    quoted = [(m, n) for m, n in expected.names.items() if '"' in n]
    assert quoted
    for mid, name in quoted:
        assert classes.name(mid) == name
    non_ascii = [(m, n) for m, n in expected.names.items() if not n.isascii()]
    assert non_ascii
    for mid, name in non_ascii[:50]:
        assert classes.name(mid) == name and classes.mid(name) == mid


def test_real_v3_lists(real_v3):
    release, expected = real_v3
    lists = release.classes.lists
    sizes = {"all": 19_995, "trainable": 5_000, "bbox": 601, "bbox-trainable": 545}
    for name, size in sizes.items():
        assert len(expected.lists[name]) == size
        assert lists[name] == expected.lists[name]
    assert lists["boxable"] == expected.lists["bbox"]
    with pytest.raises(KeyError) as info:
        lists["no-such-list"]
    assert "trainable" in str(info.value)


def test_real_v3_no_match(real_v3):
    release, expected = real_v3
    assert_no_match_lists_close_names(release.classes, expected)


def test_real_v3_ambiguous_names_through_lookups(real_v3):
    release, expected = real_v3
    name = next(n for n, mids in expected.by_name.items() if len(mids) > 1)
    with pytest.raises(AmbiguousLabelError) as info:
        release.label_code(name)
    assert sorted(m for m, _ in info.value.candidates) == sorted(expected.by_name[name])
    assert name in str(info.value)


@pytest.mark.parametrize("folder", ["v1", "v4"])
def test_real_description_files(tmp_path_factory, folder):
    from oicore.converter import convert

    out = tmp_path_factory.mktemp(f"real-{folder}") / f"{folder}.oic"
    convert(SHARED_DATA / folder, out)
    expected = Expected(SHARED_DATA / folder)
    assert expected.names
    with oicore.open(out) as release:
        assert_classes(release.classes, expected)
        assert len(release.classes) == len(expected.names)


# ---- synthetic releases ---------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=RELEASES)
def synthetic(request, tmp_path_factory):
    src, oic = synthetic_release(tmp_path_factory, request.param)
    with oicore.open(oic) as release:
        yield release, Expected(src)


def test_synthetic_names_and_lists(synthetic):
    release, expected = synthetic
    assert_classes(release.classes, expected, sample=2000)
    assert set(expected.lists) <= set(release.classes.lists)
    if "boxable" in expected.lists or "bbox" in expected.lists:
        assert release.classes.lists["boxable"] == expected.lists.get("boxable", expected.lists.get("bbox"))


def test_synthetic_no_match(synthetic):
    release, expected = synthetic
    assert_no_match_lists_close_names(release.classes, expected)


def test_synthetic_names_through_labels(synthetic):
    release, expected = synthetic
    for mid in release.classes.lists["boxable"][:50]:
        assert release.label_code(mid) == release.mids.index(mid)
        name = expected.names.get(mid)
        if name is not None and len(expected.by_name[name]) == 1:
            assert release.label_code(name) == release.mids.index(mid)


def test_mid_codes_by_scan_then_by_dict_agree(synthetic):
    # A fresh Release finds its first MIDs by a scan of the vocabulary's bytes, later ones through a dict.
    release, _ = synthetic
    fresh = oicore.open(release.path)
    try:
        mids = fresh._store.mids()
        for mid in mids[:40] + mids[-5:]:
            assert fresh.label_code(mid) == mids.index(mid)
        with pytest.raises(KeyError):
            fresh.label_code("/m/not-a-mid")
    finally:
        fresh.close()


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=5).map(lambda b: bytes(c % 3 + 97 for c in b)), max_size=30), st.binary(max_size=4), st.integers(1, 8))
def test_entry_index_finds_the_first_equal_entry(entries, probe, tries):
    # A three-letter alphabet makes keys inside entries and across their boundaries common.
    from oicore.store import GAVE_UP, entry_index

    key = bytes(c % 3 + 97 for c in probe)
    offsets = np.cumsum([0] + [len(e) for e in entries]).astype(np.int64)
    raw = b"".join(entries)
    want = entries.index(key) if key in entries else None
    assert entry_index(raw, offsets, key, tries=1 << 30) == want
    assert entry_index(raw, offsets, key, tries=tries) in (want, GAVE_UP)  # a bounded scan may give up, never err
    for e in entries:  # every entry is found, as its first occurrence
        assert entry_index(raw, offsets, e, tries=1 << 30) == entries.index(e)


def test_label_code_scan_gives_up_on_keys_inside_every_mid(synthetic):
    release, _ = synthetic
    fresh = oicore.open(release.path)
    try:
        assert fresh._store.mid_code("/m/") == -1  # in every MID: the scan gives up at once
        with pytest.raises(KeyError):
            fresh.label_code("/m/")
        assert fresh._mid_codes is not None  # answered through the dict
        with pytest.raises(KeyError):
            fresh.label_code("\ud800")  # a lone surrogate is no MID, on either path
        mid = fresh.mids[3]
        assert fresh.label_code(mid) == fresh.mids.index(mid)
    finally:
        fresh.close()
    closed = oicore.open(release.path)
    closed.close()
    with pytest.raises(ValueError, match="closed Release"):
        closed.label_code("/m/0abc")
