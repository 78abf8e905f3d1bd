"""Deterministic, realistic synthetic Open Images releases (``oicore synth``).

``synth(out_dir, scale=..., seed=..., release=...)`` writes every annotation file of one Open Images
release (V3 to V7) with the real file names, headers, value formats and quirks, and row counts equal to the
real ones times ``scale``. The same ``(scale, seed, release)`` always gives byte-identical files.

How it works
------------
* **One table** (:data:`_FILES`) lists each release's files: path, generator, split, real row counts.
  Headers come from :mod:`oicore.schema`, never typed here.
* **Classes** are generated (MIDs of the real shape, display names with commas, quotes, leading spaces and
  non-ASCII). The vocabulary has its real size at every scale; only row counts scale. Class popularity is
  Zipf-skewed; the trainable and boxable classes are the most popular ones.
* **Images** of a split are uniform random 64-bit IDs, sorted and unique. Everything about one image
  (Flickr URLs, author, title, size, MD5, rotation, pixel size) is a hash of its ID and the seed, so one
  image looks the same in every file and every release.
* **Annotation rows** are made image by image in chunks of about :data:`CHUNK_ROWS` rows (numpy,
  ``Generator(PCG64)`` seeded from ``(seed, release, path, chunk)``), and turned into text by
  :class:`oicore._synth.Template` in C, through one fixed buffer. Memory stays under 1 GB even at
  scale 1.0 (7.8 GB of CSV for V3: 0.65 GB peak RSS).

Example
-------
>>> import tempfile
>>> from oicore.synthetic import synth
>>> out = tempfile.mkdtemp()
>>> paths = synth(out, scale=0.0001, seed=0, release="v3")
>>> [p.relative_to(out).as_posix() for p in paths][-2:]
['validation/annotations-machine.csv', 'validation/images.csv']
>>> paths[-1].read_text().splitlines()[0][:40]
'ImageID,Subset,OriginalURL,OriginalLandi'
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import os
import pathlib
import statistics
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from oicore import schema
from oicore._synth import StringTable, Template, dedupe_in_groups, hash64

__all__ = ["synth", "RELEASES", "DEFAULT_SCALE", "release_files", "row_counts"]

RELEASES = ("v3", "v4", "v5", "v6", "v7")
DEFAULT_SCALE = 0.001

# Rows generated (and random numbers drawn) per chunk. Part of the output's definition: changing it changes
# the bytes of every annotation file (the pinned hash in tests/test_synth.py will say so).
CHUNK_ROWS = 1 << 20
_BUFFER_BYTES = 8 << 20

# --------------------------------------------------------------------------------------------------------
# Real row counts at scale 1.0. Tags as in OPEN_IMAGES_FILES.md: [R] official, [T] third party,
# [est] estimated here (from file sizes or neighbouring releases; see the comment on each).
# --------------------------------------------------------------------------------------------------------
_SPLITS = ("train", "validation", "test")
_IMAGES = {"train": 9_011_219, "validation": 41_620, "test": 125_436}  # [R] every release

# Image subsets that several files share: a file that covers the same named subset covers the same images.
_BOX_IMAGES_V3 = ("boxes-2017", 1_593_853)  # [R] V3 train boxes
_BOX_IMAGES_V4 = ("boxes-2018", 1_743_042)  # [R] V4-V7 train boxes
_MACHINE_IMAGES = ("machine", 8_949_445)  # [R] V5 machine labels span this many train images
_HUMAN_IMAGES = ("human", 6_287_678)  # [R] V5 human labels span this many train images
_HUMAN_IMAGES_V3 = ("human-2017", 5_655_108)  # [est] V3 human-verified train images
_SEG_IMAGES = {"train": ("segmentation", 944_037), "validation": ("segmentation", 13_524),
               "test": ("segmentation", 40_386)}  # [R]


# ----------------------------------------------------------------------------------------------------------
# The file table: for each release, every file it ships as (relative path, generator, options).
# ----------------------------------------------------------------------------------------------------------
def _v3_files():
    files = [
        ("class-descriptions.csv", "descriptions", dict(classes="all", header=False, eol="mixed")),
        ("classes.txt", "class_list", dict(classes="all")),
        ("classes-trainable.txt", "class_list", dict(classes="trainable")),
        ("classes-bbox.txt", "class_list", dict(classes="boxable")),
        ("classes-bbox-trainable.txt", "class_list", dict(classes="boxable_trainable")),
    ]
    machine = {"train": 78_977_695, "validation": 512_093, "test": 1_545_835}  # [R]
    human = {"train": 20_868_755, "validation": 551_390, "test": 1_667_399}  # [R]
    boxes = {"train": 3_709_509, "validation": 204_621, "test": 625_282}  # [R]
    for sp in _SPLITS:
        train = sp == "train"
        files += [
            (f"{sp}/images.csv", "images", dict(split=sp, columns=11, quote="always")),
            (f"{sp}/annotations-machine.csv", "labels",
             dict(split=sp, source="machine", rows=machine[sp], images=_MACHINE_IMAGES if train else None)),
            (f"{sp}/annotations-human.csv", "labels",
             dict(split=sp, source="human", rows=human[sp], images=_HUMAN_IMAGES_V3 if train else None,
                  positive=9_741_876 / 20_868_755)),  # [R] train positives; used for every split
            (f"{sp}/annotations-human-bbox.csv", "boxes",
             dict(split=sp, rows=boxes[sp], images=_BOX_IMAGES_V3 if train else None,
                  columns=8 if train else 13, coords="fixed6", flags="01",
                  sources=(("xclick", 0.55), ("activemil", 0.35), ("verification", 0.10)) if train
                  else (("freeform", 1.0),))),
        ]
    return files


# V4-V7 counts shared by several releases.
_BOXES_2018_TRAIN = 14_610_229  # [R] on 1,743,042 images
_BOXES_V5_VAL_TEST = {"validation": 303_980, "test": 937_327}  # [R] (V6 table; V6/V7 reuse the v5 files)
_MACHINE_V5 = {"train": 164_819_642, "validation": 681_179, "test": 2_061_177}  # [R] (V6 table = v5 files)
# [est] boxable human labels, from the v5 file sizes (376.8 / 10.6 / 32.1 MB at about 44 bytes a row).
_HUMAN_BOXABLE = {"train": 8_600_000, "validation": 242_000, "test": 728_500}
_SEGMENTATION = {"train": 2_686_666, "validation": 24_730, "test": 74_102}  # [R]
_VRD = {"train": 3_174_291, "validation": 27_243, "test": 82_746}  # [R]; images: about 3 rows each [est]
_TRAIN_BOX_SOURCES_V4 = (("xclick", 0.7), ("activemil", 0.3))


def _images_with_rotation(split: str, prefix: str = "") -> tuple:
    if split == "train":
        return (f"{prefix}train-images-boxable-with-rotation.csv", "images",
                dict(split="train", columns=12, quote="minimal", images=_BOX_IMAGES_V4))
    return (f"{prefix}{split}-images-with-rotation.csv", "images", dict(split=split, columns=12, quote="minimal"))


def _v4_files():
    files = [
        ("class-descriptions.csv", "descriptions", dict(classes="all", header=False, eol="lf")),
        ("class-descriptions-boxable.csv", "descriptions", dict(classes="boxable", header=False, eol="lf")),
        ("classes-trainable.txt", "class_list", dict(classes="trainable")),
        ("bbox_labels_600_hierarchy.json", "hierarchy", {}),
        ("image_ids_and_rotation.csv", "images", dict(split="all", columns=12, quote="minimal")),
    ]
    human = {"train": 27_894_289, "validation": 556_548, "test": 1_693_226}  # [est] V4 human labels
    for sp in _SPLITS:
        train = sp == "train"
        files += [
            _images_with_rotation(sp, f"{sp}/"),
            (f"{sp}/{sp}-annotations-bbox.csv", "boxes",
             dict(split=sp, rows=_BOXES_2018_TRAIN if train else {"validation": 204_621, "test": 625_282}[sp],
                  images=_BOX_IMAGES_V4 if train else None, columns=13, coords="fixed6", flags="-1",
                  sources=_TRAIN_BOX_SOURCES_V4 if train else (("freeform", 1.0),))),
            (f"{sp}/{sp}-annotations-human-imagelabels.csv", "labels",
             dict(split=sp, source="human", rows=human[sp], images=_HUMAN_IMAGES if train else None,
                  positive=0.47)),
            (f"{sp}/{sp}-annotations-human-imagelabels-boxable.csv", "labels",
             dict(split=sp, source="human", classes="boxable", rows=_HUMAN_BOXABLE[sp],
                  images=_BOX_IMAGES_V4 if train else None, positive=0.47)),
            # [est] the 2018_04 machine labels: V3's counts.
            (f"{sp}/{sp}-annotations-machine-imagelabels.csv", "labels",
             dict(split=sp, source="machine", rows={"train": 78_977_695, "validation": 512_093,
                                                    "test": 1_545_835}[sp],
                  images=_MACHINE_IMAGES if train else None)),
        ]
    return files


def _v5_common(human: dict, human_positive: dict, *, train_human: bool = True, train_boxes: bool = True):
    """Files of the v5 folder (and the 2018_04 files V5 links to), reused by V6 and V7."""
    files = [
        ("class-descriptions-boxable.csv", "descriptions", dict(classes="boxable", header=False, eol="lf")),
        ("classes-segmentation.txt", "class_list", dict(classes="segmentable")),
        ("bbox_labels_600_hierarchy.json", "hierarchy", {}),
    ]
    if train_boxes:
        files.append(("train-annotations-bbox.csv", "boxes",
                      dict(split="train", rows=_BOXES_2018_TRAIN, images=_BOX_IMAGES_V4, columns=13,
                           coords="fixed6", flags="-1", sources=_TRAIN_BOX_SOURCES_V4)))
    for sp in _SPLITS:
        train = sp == "train"
        if not train:
            files.append((f"{sp}-annotations-bbox.csv", "boxes",
                          dict(split=sp, rows=_BOXES_V5_VAL_TEST[sp], columns=13, coords="f32", flags="-1",
                               sources=(("xclick", 1.0),))))
            files.append(_images_with_rotation(sp))
        elif train_boxes:
            files.append(_images_with_rotation(sp))
        if human is not None:
            if train_human or not train:
                files.append((f"{sp}-annotations-human-imagelabels.csv", "labels",
                              dict(split=sp, source="human", rows=human[sp],
                                   images=_HUMAN_IMAGES if train else None, positive=human_positive[sp])))
            files.append((f"{sp}-annotations-human-imagelabels-boxable.csv", "labels",
                          dict(split=sp, source="human", classes="boxable", rows=_HUMAN_BOXABLE[sp],
                               images=_BOX_IMAGES_V4 if train else None, positive=human_positive[sp])))
        files.append((f"{sp}-annotations-object-segmentation.csv", "segmentation",
                      dict(split=sp, rows=_SEGMENTATION[sp], images=_SEG_IMAGES[sp], clicks=train)))
    return files


_V6_HUMAN = {"train": 57_524_352, "validation": 595_339, "test": 1_799_883}  # [R]
_V6_POSITIVE = {"train": 19_856_086 / 57_524_352, "validation": 367_263 / 595_339,
                "test": 1_110_124 / 1_799_883}  # [R]


def _v5_files():
    files = [("class-descriptions.csv", "descriptions", dict(classes="all", header=False, eol="lf"))]
    # [est] V5 train human labels; V5 validation/test are the files V6 reuses.
    human = dict(_V6_HUMAN, train=36_464_560)
    files += _v5_common(human, dict(_V6_POSITIVE, train=0.45))
    for sp in _SPLITS:
        files.append((f"{sp}-annotations-machine-imagelabels.csv", "labels",
                      dict(split=sp, source="machine", rows=_MACHINE_V5[sp],
                           images=_MACHINE_IMAGES if sp == "train" else None)))
        if sp != "train":
            files.append((f"{sp}-annotations-vrd.csv", "vrd",
                          dict(split=sp, rows=_VRD[sp], images=("vrd", _VRD[sp] // 3))))
    return files


def _vrd_files():
    files = [
        ("oidv6-relationships-description.csv", "relationship_descriptions", {}),
        ("oidv6-attributes-description.csv", "attribute_descriptions", {}),
        ("oidv6-relationship-triplets.csv", "relationship_triplets", {}),
    ]
    for sp in _SPLITS:
        files.append((f"oidv6-{sp}-annotations-vrd.csv", "vrd",
                      dict(split=sp, rows=_VRD[sp], images=("vrd", _VRD[sp] // 3))))
    return files


_V6_TRAIN_BOXES = ("oidv6-train-annotations-bbox.csv", "boxes",
                   dict(split="train", rows=_BOXES_2018_TRAIN, images=_BOX_IMAGES_V4, columns=21,
                        coords="fixed6", flags="-1", sources=_TRAIN_BOX_SOURCES_V4))
_V6_TRAIN_IMAGES = ("oidv6-train-images-with-labels-with-rotation.csv", "images",
                    dict(split="train", columns=12, quote="minimal", images="labels"))


def _v6_files():
    files = [
        ("oidv6-class-descriptions.csv", "descriptions", dict(classes="all", header=True, eol="lf")),
        ("oidv6-classes.txt", "class_list", dict(classes="all")),
        ("oidv6-classes-trainable.txt", "class_list", dict(classes="trainable")),
        _V6_TRAIN_BOXES,
        _V6_TRAIN_IMAGES,
        ("oidv6-train-annotations-human-imagelabels.csv", "labels",
         dict(split="train", source="human", rows=_V6_HUMAN["train"], images=_HUMAN_IMAGES,
              positive=_V6_POSITIVE["train"])),
    ]
    files += _v5_common(_V6_HUMAN, _V6_POSITIVE, train_human=False, train_boxes=False)
    for sp in _SPLITS:
        files.append((f"{sp}-annotations-machine-imagelabels.csv", "labels",
                      dict(split=sp, source="machine", rows=_MACHINE_V5[sp],
                           images=_MACHINE_IMAGES if sp == "train" else None)))
    return files + _vrd_files()


def _v7_files():
    # [est] V7 human labels: 61.4 M in all, validation 618,184 [T], the rest split by file size.
    human = {"train": 58_756_782, "val": 618_184, "test": 2_030_000}
    # [est] V7 point labels: 66.4 M on 1.4 M images; validation covers 36,702 images [T].
    points = {"train": 59_410_000, "val": 1_740_000, "test": 5_250_000}
    point_images = {"train": 1_360_000, "val": 36_702, "test": 110_000}
    files = [
        ("oidv7-class-descriptions.csv", "descriptions", dict(classes="all", header=True, eol="lf")),
        ("oidv7-class-descriptions-boxable.csv", "descriptions", dict(classes="boxable", header=True, eol="lf")),
        ("oidv7-classes-trainable.txt", "class_list", dict(classes="trainable")),
        ("oidv7-classes-segmentation.txt", "class_list", dict(classes="segmentable")),
        _V6_TRAIN_BOXES,
        _V6_TRAIN_IMAGES,
    ]
    for sp, name in zip(_SPLITS, ("train", "val", "test")):
        train = sp == "train"
        files += [
            (f"oidv7-{name}-annotations-human-imagelabels.csv", "labels",
             dict(split=sp, source="human", rows=human[name], images=_HUMAN_IMAGES if train else None,
                  positive=_V6_POSITIVE[sp], confidence="v7" if sp == "validation" else "01")),
            (f"oidv7-{name}-annotations-machine-imagelabels.csv", "labels",
             dict(split=sp, source="machine", rows=_MACHINE_V5[sp], images=_MACHINE_IMAGES if train else None)),
            (f"oidv7-{name}-annotations-point-labels.csv", "points",
             dict(split=sp, rows=points[name], images=("points", point_images[name]))),
        ]
    common = [f for f in _v5_common(None, {}, train_boxes=False)
              if f[0] not in ("class-descriptions-boxable.csv", "classes-segmentation.txt")]
    return files + common + _vrd_files()


# release -> ((path, generator, options), ...), and the release's class vocabulary:
# (descriptions, trainable). 601 boxable (545 of them trainable) and 350 segmentable in every release.
_FILES: dict[str, tuple[tuple[str, str, dict], ...]] = {
    "v3": tuple(_v3_files()),
    "v4": tuple(_v4_files()),
    "v5": tuple(_v5_files()),
    "v6": tuple(_v6_files()),
    "v7": tuple(_v7_files()),
}
_VOCAB_SIZES = {
    "v3": (19_995, 5_000),  # [R]
    "v4": (19_995, 7_186),  # [est] same descriptions as V3; trainable [U]
    "v5": (19_995, 7_186),  # [est]
    "v6": (19_958, 9_605),  # [R] oidv6-classes.txt, oidv6-classes-trainable.txt
    "v7": (21_000, 9_605),  # [est] from the 501,178-byte descriptions file
}
_N_BOXABLE, _N_BOXABLE_TRAINABLE, _N_SEGMENTABLE = 601, 545, 350
_N_VRD_CLASSES, _N_TRIPLETS, _N_POINT_CLASSES = 288, 1_466, 5_827  # [R]/[T]

# Which schema kind (and variant) each generator writes; the header is the variant's names.
_GENERATOR_KIND = {
    "images": "images", "labels": "image_labels", "boxes": "boxes", "segmentation": "segmentation",
    "vrd": "vrd", "points": "points", "descriptions": "class_descriptions", "class_list": "class_lists",
    "relationship_descriptions": "relationship_descriptions", "attribute_descriptions": "attribute_descriptions",
    "relationship_triplets": "relationship_triplets", "hierarchy": None,
}


def release_files(release: str) -> list[tuple[str, str | None]]:
    """The files ``synth`` writes for ``release``: ``(relative path, schema kind or None)``, sorted.

    >>> release_files("v3")[0]
    ('class-descriptions.csv', 'class_descriptions')
    """
    return sorted((path, _GENERATOR_KIND[gen]) for path, gen, _ in _FILES[_check_release(release)])


def _check_release(release: str) -> str:
    if release not in _FILES:
        raise ValueError(f"unknown release {release!r}; expected one of {', '.join(RELEASES)}")
    return release


def _header(kind: str, n_columns: int | None = None) -> tuple[str, ...]:
    """The header of ``kind`` from the schema: its only variant, or the one with ``n_columns`` names."""
    found = [v for v in schema.KINDS[kind].variants if n_columns is None or len(v.names) == n_columns]
    if len(found) != 1:
        raise LookupError(f"schema kind {kind!r} has {len(found)} variants with {n_columns} columns")
    return found[0].names


# ----------------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------------
def _key(*parts) -> int:
    """A stable 64-bit key for a tuple of str/int parts (the same in every process and on every platform)."""
    return int.from_bytes(hashlib.blake2b(repr(parts).encode(), digest_size=8).digest(), "little")


def _rng(seed: int, *parts) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(_key(*parts),))))


def _scaled(n: int, scale: float) -> int:
    if n <= 0:
        return 0
    return max(1, int(math.floor(n * scale + 0.5)))


def _csv_field(s: str, always: bool = False) -> str:
    """RFC 4180: quote when the field holds a comma, a quote or a line break (or always)."""
    if always or any(c in s for c in ',"\r\n'):
        return '"' + s.replace('"', '""') + '"'
    return s


class _Zipf:
    """Draws ranks 0..n-1 with P(r) ~ 1 / (r + 1)**s, by lookup in a table of about 2**20 slots."""

    def __init__(self, n: int, s: float = 1.0, slots: int = 1 << 20):
        # Scalar pow, not numpy's: vector pow may take CPU-specific SIMD paths, and the output must not.
        w = np.array([(r + 1) ** -s for r in range(n)], dtype=np.float64)
        cnt = np.maximum(1, np.round(w / w.sum() * slots)).astype(np.int64)
        self.n = n
        self.table = np.repeat(np.arange(n, dtype=np.int32), cnt)

    def draw(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.table[rng.integers(0, len(self.table), size)]

    def from_uniform(self, u: np.ndarray) -> np.ndarray:
        return self.table[np.minimum((u * len(self.table)).astype(np.int64), len(self.table) - 1)]


def _categorical(rng_or_u, probs, size=None) -> np.ndarray:
    """Codes 0..len(probs)-1 with the given probabilities (quantised to 1/65536), from a Generator or
    from uniforms in [0, 1)."""
    table = _categorical_table(tuple(float(p) for p in probs))
    if isinstance(rng_or_u, np.random.Generator):
        return table[rng_or_u.integers(0, 1 << 16, size, dtype=np.int32)]
    return table[np.minimum((rng_or_u * (1 << 16)).astype(np.int32), (1 << 16) - 1)]


@functools.lru_cache(maxsize=256)
def _categorical_table(probs: tuple[float, ...]) -> np.ndarray:
    cdf = np.cumsum(probs)
    cdf /= cdf[-1]
    u = (np.arange(1 << 16) + 0.5) / (1 << 16)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(probs) - 1).astype(np.int32)


def _u01(h: np.ndarray) -> np.ndarray:
    """Uniform floats in [0, 1) from uint64 hashes."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _lit(b: bytes | str) -> tuple:
    return ("lit", b.encode() if isinstance(b, str) else b)


def _cond(mask: np.ndarray, segs: list) -> list:
    return [("cond", mask.astype(np.uint8), len(segs)), *segs]


def _alloc(rng: np.random.Generator, m: int, total: int, shape: float) -> np.ndarray:
    """Rows per image: ``m`` counts >= 1 summing to ``total``, over-dispersed by gamma(shape) weights."""
    extra = total - m
    if m == 0:
        return np.zeros(0, dtype=np.int64)
    w = rng.gamma(shape, size=m)
    e = w * (extra / w.sum())
    c = np.floor(e).astype(np.int64)
    c += rng.random(m) < (e - c)
    d = extra - int(c.sum())
    if d > 0:
        np.add.at(c, rng.integers(0, m, d), 1)
    while d < 0:
        pos = np.flatnonzero(c)
        take = rng.choice(pos, size=min(-d, len(pos)), replace=False)
        c[take] -= 1
        d += len(take)
    return c + 1


# ----------------------------------------------------------------------------------------------------------
# Classes: generated MIDs and display names
# ----------------------------------------------------------------------------------------------------------
# Freebase MIDs after "/m/0" use digits, consonants and '_' (no vowels), as the real ones do.
_MID_ALPHABET = np.frombuffer(b"0123456789bcdfghjklmnpqrstvwxyz_", dtype=np.uint8)
_ROOT_MID = "/m/0bl9f"  # the hierarchy's virtual root "Entity"; never a class


@functools.lru_cache(maxsize=4)
def _mids(seed: int, n: int) -> tuple[str, ...]:
    """``n`` distinct MIDs: '/m/0' + 3..7 characters (7..11 in total, mostly 9), many '/m/01...'/'/m/02...'."""
    rng = _rng(seed, "mids")
    out: list[str] = []
    seen = {_ROOT_MID}
    while len(out) < n:
        m = n - len(out) + 64
        lens = 3 + _categorical(rng, [0.004, 0.137, 0.603, 0.253, 0.003], m)
        first_digit = _categorical(rng, [2729, 3921, 2222, 1873, 1483, 1115, 876, 600, 695], m) + 1
        first = np.where(rng.random(m) < 0.8, ord("0") + first_digit,
                         _MID_ALPHABET[rng.integers(10, len(_MID_ALPHABET) - 1, m)])
        chars = _MID_ALPHABET[rng.integers(0, len(_MID_ALPHABET), (m, 7))]
        chars[:, 0] = first
        for row, ln in zip(chars, lens.tolist()):
            mid = "/m/0" + row[:ln].tobytes().decode()
            if mid not in seen:
                seen.add(mid)
                out.append(mid)
                if len(out) == n:
                    break
    return tuple(out)


_ONSETS = "b c d f g h j k l m n p r s t v w z b d k m s t ch sh th br tr st gr pl kr".split()
_VOWELS = "a e i o u a e i o u a e o ai ea ou y".split()
_VOWELS_NON_ASCII = "é è ö ü ā ō ī ã ø å ç ł".split()
_CODAS = ["", "", "", "", "n", "r", "s", "l", "t", "m", "ck", "x", "nd", "ng"]


@functools.lru_cache(maxsize=8)
def _words(seed: int, n: int, salt: str) -> tuple[str, ...]:
    """``n`` made-up lower-case words; about 3% hold a non-ASCII letter and 1% are Cyrillic or CJK."""
    rng = _rng(seed, "words", salt, n)
    nsyl = rng.integers(1, 4, n)
    onset = rng.integers(0, len(_ONSETS), (n, 3))
    vowel = rng.integers(0, len(_VOWELS), (n, 3))
    accent = rng.random((n, 3)) < 0.012
    accented = rng.integers(0, len(_VOWELS_NON_ASCII), (n, 3))
    coda = rng.integers(0, len(_CODAS), n)
    script = rng.random(n)
    script_chars = rng.integers(0, 32, (n, 6))
    script_len = rng.integers(2, 7, n)
    out = []
    for i in range(n):
        if script[i] < 0.005:  # Cyrillic
            w = "".join(chr(0x430 + c) for c in script_chars[i, : script_len[i]])
        elif script[i] < 0.01:  # CJK
            w = "".join(chr(0x5C71 + 97 * c) for c in script_chars[i, : min(3, script_len[i])])
        else:
            w = "".join(
                _ONSETS[onset[i, j]] + (_VOWELS_NON_ASCII[accented[i, j]] if accent[i, j] else _VOWELS[vowel[i, j]])
                for j in range(nsyl[i])
            ) + _CODAS[coda[i]]
        out.append(w)
    return tuple(out)


@functools.lru_cache(maxsize=4)
def _display_names(seed: int, n: int) -> tuple[str, ...]:
    """Class display names: capitalised phrases; some with commas, quotes, apostrophes, digits, spaces."""
    words = _words(seed, 20_000, "classes")
    rng = _rng(seed, "display-names", n)
    nw = 1 + _categorical(rng, [0.55, 0.3, 0.1, 0.05], n)
    w = rng.integers(0, len(words), (n, 4))
    form = rng.random(n)
    num = rng.integers(100, 3000, n)
    out = []
    for i in range(n):
        parts = [words[w[i, j]] for j in range(nw[i])]
        parts[0] = parts[0][:1].upper() + parts[0][1:]
        f = form[i]
        if f < 0.004 and len(parts) > 1:  # "Ducks, geese and swans"
            name = parts[0] + ", " + " and ".join(parts[1:])
        elif f < 0.006:  # 'Fiat 500 "topolino"'
            name = parts[0] + f' {num[i]} "{words[w[i, 3]]}"'
        elif f < 0.009:  # ' Anole'
            name = " " + " ".join(parts)
        elif f < 0.012:  # 'West Indian raspberry '
            name = " ".join(parts) + " "
        elif f < 0.04:  # "Sprenger's tulip"
            name = parts[0] + "'s " + " ".join(parts[1:] or [words[w[i, 3]]])
        elif f < 0.05:  # "Datsun 1500"
            name = " ".join(parts) + f" {num[i]}"
        elif f < 0.06:  # "Ready-to-eat"
            name = "-".join(parts)
        else:
            name = " ".join(parts)
        out.append(name)
    return tuple(out)


def _locale_key(mid: str) -> tuple[str, str]:
    """A locale-like collation ('_' ignored first): the real description files are not in ASCII order."""
    return mid.replace("_", ""), mid


@dataclass
class _Vocab:
    mids: tuple[str, ...]  # class id -> MID
    names: tuple[str, ...]  # class id -> display name
    popular: np.ndarray  # class ids, most popular first: trainable, then the rest
    trainable: np.ndarray
    boxable: np.ndarray  # most boxed first; the first 545 are also trainable
    segmentable: np.ndarray
    attributes: np.ndarray  # VRD attribute classes ("is" relationships)
    mid_table: StringTable = field(init=False)
    mid_noslash_table: StringTable = field(init=False)

    def __post_init__(self):
        self.mid_table = StringTable(m.encode() for m in self.mids)
        self.mid_noslash_table = StringTable(m.replace("/", "").encode() for m in self.mids)


@functools.lru_cache(maxsize=8)
def _vocab(seed: int, release: str) -> _Vocab:
    k, n_trainable = _VOCAB_SIZES[release]
    mids = _mids(seed, 21_000)[:k]  # every release draws from one list, so releases share most MIDs
    names = _display_names(seed, 21_000)[:k]
    perm = _rng(seed, "class-popularity", k).permutation(k).astype(np.int32)
    boxable = np.concatenate([perm[:_N_BOXABLE_TRAINABLE],
                              perm[n_trainable:n_trainable + _N_BOXABLE - _N_BOXABLE_TRAINABLE]])
    return _Vocab(
        mids=mids,
        names=names,
        popular=perm,
        trainable=perm[:n_trainable],
        boxable=boxable,
        segmentable=boxable[:_N_SEGMENTABLE],
        attributes=perm[n_trainable + _N_BOXABLE:n_trainable + _N_BOXABLE + 15],
    )


# ----------------------------------------------------------------------------------------------------------
# Coordinates: pixel positions on the image's own grid, printed per release
# ----------------------------------------------------------------------------------------------------------
# Image sides in pixels (the real coordinates are pixel / side: 0.9642005 = 808/838, 0.07103825 = 26/366).
_SIDES = np.array([1024, 768, 683, 576, 1023, 800, 1280, 1600, 2048, 3264, 4000, 838, 366, 451, 640, 480,
                   1365, 2592, 1944, 10240], dtype=np.int64)
_SIDE_P = [0.3, 0.18, 0.12, 0.05, 0.03, 0.05, 0.05, 0.03, 0.03, 0.02, 0.02, 0.02, 0.01, 0.01, 0.02, 0.02,
           0.01, 0.01, 0.01, 0.01]
_SIDE_BASE = np.concatenate([[0], np.cumsum(_SIDES + 1)[:-1]]).astype(np.int64)


@functools.lru_cache(maxsize=1)
def _f32_table() -> StringTable:
    """Every p / side (p = 0..side, each side) as the shortest float32 text: '0.9642005', '9.765625e-05', '1'."""
    out = []
    for side in _SIDES.tolist():
        vals = (np.arange(side + 1, dtype=np.float64) / side).astype(np.float32)
        for v in vals:
            s = str(v)
            out.append((s[:-2] if s.endswith(".0") else s).encode())
    return StringTable(out)


def _coord_segs(p: np.ndarray, side_code: np.ndarray, fmt: str) -> list:
    """Segments printing pixel position p on a grid of _SIDES[side_code] as a coordinate in [0, 1]."""
    side = _SIDES[side_code]
    if fmt == "f32":
        return [("dict", (_SIDE_BASE[side_code] + p).astype(np.int32), _f32_table())]
    micro = (p * 2_000_000 + side) // (2 * side)  # round half up to millionths
    return [("fixed_trim" if fmt == "trim6" else "fixed", micro, 6)]


def _boxes_px(rng: np.random.Generator, side: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n spans [lo, hi) on grids of the given sides: 0 <= lo < hi <= side; some touch an edge."""
    frac = rng.beta(1.1, 2.2, n)
    size = np.clip(np.round(frac * side).astype(np.int64), 1, side)
    lo = np.floor(rng.random(n) * (side - size + 1)).astype(np.int64)
    hi = lo + size
    lo = np.where(rng.random(n) < 0.08, 0, lo)
    hi = np.where(rng.random(n) < 0.08, side, hi)
    return lo, hi


# ----------------------------------------------------------------------------------------------------------
# Image metadata: a pure function of (seed, ImageID)
# ----------------------------------------------------------------------------------------------------------
_CAMERA = StringTable([b"IMG_", b"DSC_", b"DSC", b"P", b"_MG_", b"DSCN", b"DSCF"])
_ROTATION = StringTable([b"0.0", b"90.0", b"180.0", b"270.0"])
_LICENSE = "https://creativecommons.org/licenses/by/2.0/"
_TITLE_WORDS = 6


@dataclass
class _TextPool:
    """Words or names stored once; ``quote`` marks entries that force RFC 4180 quoting."""

    table: StringTable  # CSV-escaped ('"' doubled), not quoted
    quote: np.ndarray  # uint8


def _pool(items: list[str]) -> _TextPool:
    return _TextPool(
        StringTable(s.replace('"', '""').encode() for s in items),
        np.array([any(c in s for c in ',"') for s in items], dtype=np.uint8),
    )


@functools.lru_cache(maxsize=4)
def _title_words(seed: int) -> tuple[_TextPool, int]:
    """Words for titles: plain words first (drawn by Zipf), then special ones (HTML entities, commas,
    quotes, tags); returns the pool and the number of plain words."""
    words = list(_words(seed, 3000, "titles"))
    rng = _rng(seed, "title-words")
    cap = rng.random(len(words)) < 0.35
    words = [w[:1].upper() + w[1:] if c else w for w, c in zip(words, cap)]
    words += [str(y) for y in range(1960, 2018)]
    special = ["&amp;", "&amp;", "-", "|", "@", "#" + words[7], "#" + words[42], "#" + words[99]]
    special += [w + "&#x27;s" for w in words[:12]] + ["O&#x27;" + words[i].capitalize() for i in range(3, 9)]
    special += [w + "," for w in words[:40]] + [f'"{w}"' for w in words[50:62]] + ['"', "#1", "(" + words[5] + ")"]
    return _pool(words + special), len(words)


@functools.lru_cache(maxsize=4)
def _users(seed: int, n: int) -> tuple[StringTable, StringTable, StringTable]:
    """``n`` Flickr users: (user path segment, Author always quoted, Author quoted only when needed)."""
    rng = _rng(seed, "users", n)
    words = _words(seed, 4000, "names")
    lower = StringTable(x.encode() for x in words)
    cap = StringTable((x[:1].upper() + x[1:]).encode() for x in words)
    initial = StringTable(x[:1].upper().encode() for x in words)
    a, b, c = (rng.integers(0, len(words), n).astype(np.int32) for _ in range(3))
    kind = rng.random(n)
    form = rng.random(n)
    digits = rng.integers(0, 1000, n)
    # Path segment: an NSID ('87064263@N08', 60%) or an alias ('vedeal', 'vedeal42', 'vedeal_tound').
    uid = Template([
        *_cond(kind < 0.6, [("int", rng.integers(10_000, 160_000_000, n)), _lit("@N0"), ("int", rng.integers(0, 9, n))]),
        *_cond(kind >= 0.6, [("dict", a, lower)]),
        *_cond((kind >= 0.6) & (kind < 0.8), [("int", digits)]),
        *_cond(kind > 0.95, [_lit("_"), ("dict", b, lower)]),
    ], n).to_table()
    # Author display name; two forms hold a comma or quotes and so are always quoted.
    forms = [
        (0.50, [("dict", a, cap), _lit(" "), ("dict", b, cap)]),
        (0.60, [("dict", a, cap), _lit(" "), ("dict", c, initial), _lit(". "), ("dict", b, cap)]),
        (0.75, [("dict", a, lower), ("int", digits)]),
        (0.85, [("dict", a, lower)]),
        (0.865, [("dict", a, cap), _lit(" &amp; "), ("dict", b, cap)]),
        (0.88, [("dict", a, cap), _lit(" O&#x27;"), ("dict", b, cap)]),
        (0.90, [("dict", b, cap), _lit(", "), ("dict", a, cap)]),
        (0.91, [("dict", a, cap), _lit(' ""'), ("dict", c, lower), _lit('"" '), ("dict", b, cap)]),
        (0.915, []),
        (1.0, [("dict", a, cap), _lit(" "), ("dict", b, cap), _lit(" "), ("dict", c, cap)]),
    ]
    body, lo = [], 0.0
    for hi, segs in forms:
        if segs:
            body += _cond((form >= lo) & (form < hi), segs)
        lo = hi
    q = (form >= 0.88) & (form < 0.91)
    always = Template([_lit('"'), *body, _lit('"')], n).to_table()
    minimal = Template([*_cond(q, [_lit('"')]), *body, *_cond(q, [_lit('"')])], n).to_table()
    return uid, always, minimal


def _image_segs(ctx: "_Context", ids: np.ndarray, subset_codes, quote: str, columns: int) -> dict[str, list]:
    """Per-column segment lists for the images file, each value a hash of (seed, ImageID)."""
    n = len(ids)
    h = hash64(ids, np.uint64(_key("image-attrs", ctx.seed)), 37)

    def u(j):
        return _u01(h[j])

    def below(j, m):
        return (h[j] % np.uint64(m)).astype(np.int64)

    photo = 1_000_000 + below(0, 35_000_000_000)
    farm = np.clip(1 + photo * 9 // 36_000_000_000, 1, 9)
    server = np.clip(1 + photo // 3_700_000 + below(1, 40), 1, 9999)
    users_path, author_always, author_min = ctx.users
    user = ctx.user_zipf.from_uniform(u(3))
    words, n_plain = _title_words(ctx.seed)
    cols: dict[str, list] = {}
    cols["ImageID"] = [("hex", ids, 16)]
    cols["Subset"] = [("dict", subset_codes, _SUBSETS)]
    cols["OriginalURL"] = [_lit("https://farm"), ("int", farm), _lit(".staticflickr.com/"), ("int", server),
                           _lit("/"), ("int", photo), _lit("_"), ("hex", h[2], 10), _lit("_o.jpg")]
    cols["OriginalLandingURL"] = [_lit("https://www.flickr.com/photos/"), ("dict", user, users_path), _lit("/"),
                                  ("int", photo)]
    cols["License"] = [_lit(_LICENSE)]
    cols["AuthorProfileURL"] = [_lit("https://www.flickr.com/people/"), ("dict", user, users_path), _lit("/")]
    cols["Author"] = [("dict", user, author_always if quote == "always" else author_min)]
    # Title: empty (3%), a camera file name (25%), or 1-6 words, about 1.5% of them special.
    form = u(4)
    nwords = 1 + _categorical(u(5), [0.25, 0.3, 0.2, 0.12, 0.08, 0.05])
    wcodes = np.empty((_TITLE_WORDS, n), dtype=np.int32)
    for j in range(_TITLE_WORDS):
        plain = ctx.word_zipf.from_uniform(u(6 + j))
        special = n_plain + below(12 + j, len(words.table) - n_plain)
        wcodes[j] = np.where(u(18 + j) < 0.015, special, plain)
    is_cam = (form >= 0.03) & (form < 0.28)
    is_words = form >= 0.28
    present = np.arange(_TITLE_WORDS)[:, None] < nwords[None, :]
    needs_quote = is_words & (words.quote[wcodes] & present).any(axis=0)
    title = _cond(is_cam, [("dict", below(24, len(_CAMERA)).astype(np.int32), _CAMERA),
                           ("int", 1000 + below(25, 9000))])
    body = [("dict", wcodes[0], words.table)]
    for j in range(1, _TITLE_WORDS):
        body += _cond(present[j], [_lit(" "), ("dict", wcodes[j], words.table)])
    title += _cond(is_words, body)
    if quote == "always":
        cols["Title"] = [_lit('"'), *title, _lit('"')]
    else:
        cols["Title"] = [*_cond(needs_quote, [_lit('"')]), *title, *_cond(needs_quote, [_lit('"')])]
    # OriginalSize: log-normal around 2.4 MB, 20 kB .. 25 MB, interpolated in integers between quantiles.
    q = _size_quantiles()
    k = below(26, len(q) - 1)
    cols["OriginalSize"] = [("int", q[k] + ((q[k + 1] - q[k]) * below(27, 1 << 16) >> 16))]
    md5 = np.empty((n, 2), dtype=np.uint64)
    md5[:, 0] = h[28]
    md5[:, 1] = h[29]
    cols["OriginalMD5"] = [("b64", md5.view(np.uint8).reshape(-1))]
    # Thumbnail: empty in 3% of rows; host c1..c8; the farm in its path differs from the original's in 43%;
    # its secret is not the original's; 14% end in '?zz=1'.
    tfarm = np.where(u(32) < 0.57, farm, 1 + below(33, 9))
    cols["Thumbnail300KURL"] = _cond(u(30) >= 0.03, [
        _lit("https://c"), ("int", 1 + below(31, 8)), _lit(".staticflickr.com/"), ("int", tfarm), _lit("/"),
        ("int", server), _lit("/"), ("int", photo), _lit("_"), ("hex", h[34], 10), _lit("_z.jpg"),
        *_cond(u(35) < 0.14, [_lit("?zz=1")]),
    ])
    if columns == 12:
        rot = _categorical(u(36), [0.95, 0.012, 0.003, 0.01, 0.025])  # 0.0, 90.0, 180.0, 270.0, empty
        cols["Rotation"] = _cond(rot < 4, [("dict", np.minimum(rot, 3), _ROTATION)])
    return cols


_SUBSETS = StringTable([b"train", b"validation", b"test"])


@functools.lru_cache(maxsize=1)
def _size_quantiles() -> np.ndarray:
    """4,097 quantiles of a log-normal file size (median 2.4 MB), clipped to 20 kB .. 25 MB.

    Computed with scalar ``math`` rather than numpy's vector exp/log, whose results can depend on the CPU's
    SIMD support: the pinned output hash must not.
    """
    nd = statistics.NormalDist(math.log(2.4e6), 0.9)
    qs = [nd.inv_cdf((i + 0.5) / 4097) for i in range(4097)]
    return np.array([min(25_000_000, max(20_000, round(math.exp(x)))) for x in qs], dtype=np.int64)


# ----------------------------------------------------------------------------------------------------------
# The run context: seed, scale, release, and the shared image universe
# ----------------------------------------------------------------------------------------------------------
class _Context:
    def __init__(self, out: pathlib.Path, scale: float, seed: int, release: str, progress):
        self.out = out
        self.scale = scale
        self.seed = seed
        self.release = release
        self.progress = progress
        self.vocab = _vocab(seed, release)
        self.buf = np.empty(_BUFFER_BYTES, dtype=np.uint8)
        self._universe: dict[str, np.ndarray] | None = None
        self._subsets: dict = {}
        n_all = sum(self.scaled(n) for n in _IMAGES.values())
        n_users = int(min(300_000, max(64, n_all // 6)))
        self.users = _users(seed, n_users)
        self.user_zipf = _Zipf(n_users, 0.8)
        self.word_zipf = _Zipf(_title_words(seed)[1], 0.9)

    def scaled(self, n: int) -> int:
        return _scaled(n, self.scale)

    def rng(self, *parts) -> np.random.Generator:
        return _rng(self.seed, self.release, *parts)

    @property
    def universe(self) -> dict[str, np.ndarray]:
        """Sorted unique uint64 image IDs per split; IDs are distinct across splits too."""
        if self._universe is None:
            counts = [self.scaled(_IMAGES[s]) for s in _SPLITS]
            total = sum(counts)
            rng = _rng(self.seed, "universe", *counts)
            ids = np.zeros(0, dtype=np.uint64)
            while len(ids) < total:
                more = rng.integers(0, 2**64 - 1, total - len(ids), dtype=np.uint64, endpoint=True)
                ids = np.sort(np.concatenate([ids, more]))
                ids = ids[np.concatenate([[True], ids[1:] != ids[:-1]])]
            ids = ids[rng.permutation(len(ids))[:total]]
            bounds = np.cumsum([0] + counts)
            self._universe = {s: np.sort(ids[bounds[i]:bounds[i + 1]]) for i, s in enumerate(_SPLITS)}
        return self._universe

    def subset(self, split: str, images) -> np.ndarray:
        """Sorted indices into the split's universe of the images a file covers (``None``: all of them)."""
        n = len(self.universe[split])
        if images is None:
            return np.arange(n, dtype=np.int64)
        if images == "labels":  # images with human or machine labels
            return np.union1d(self.subset(split, _MACHINE_IMAGES), self.subset(split, _HUMAN_IMAGES))
        name, count = images
        k = min(n, self.scaled(count))
        key = (split, name, k)
        if key not in self._subsets:
            idx = _rng(self.seed, "subset", *key).choice(n, size=k, replace=False) if k < n else np.arange(n)
            self._subsets[key] = np.sort(idx).astype(np.int64)
        return self._subsets[key]


# ----------------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------------
def _columns_to_row(names, cols: dict[str, list]) -> list:
    segs: list = []
    for i, name in enumerate(names):
        if i:
            segs.append(_lit(","))
        segs += cols[name]
    segs.append(_lit("\n"))
    return segs


class _Writer:
    def __init__(self, ctx: _Context, rel: str):
        self.ctx = ctx
        self.path = ctx.out / rel
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.f = open(self.tmp, "wb")

    def write(self, data: bytes | memoryview):
        self.f.write(data)
        if self.ctx.progress is not None:
            self.ctx.progress(len(data))

    def render(self, tpl: Template):
        start, buf = 0, self.ctx.buf
        if tpl.row_max > len(buf):
            buf = np.empty(tpl.row_max * 4, dtype=np.uint8)
        while start < tpl.nrows:
            start, nbytes = tpl.render(start, buf)
            self.write(memoryview(buf)[:nbytes])

    def close(self):
        self.f.close()
        os.replace(self.tmp, self.path)

    def abort(self):
        self.f.close()
        self.tmp.unlink(missing_ok=True)


def _chunks(counts: np.ndarray) -> Iterator[tuple[int, int]]:
    """Image ranges [lo, hi) of about CHUNK_ROWS rows each (at least one image)."""
    cum = np.cumsum(counts)
    lo, done = 0, 0
    while lo < len(counts):
        hi = int(np.searchsorted(cum, done + CHUNK_ROWS, side="right"))
        hi = max(hi, lo + 1)
        yield lo, hi
        done = int(cum[hi - 1])
        lo = hi


def _annotation_file(ctx: _Context, w: _Writer, rel: str, opts: dict, header, shape: float, make_cols):
    """Rows spread over the images of a subset, image by image, in chunks; ``make_cols`` fills the columns."""
    split = opts["split"]
    ids_all = ctx.universe[split]
    sub = ctx.subset(split, opts.get("images"))
    rows = ctx.scaled(opts["rows"])
    rng0 = ctx.rng(rel, "alloc")
    if len(sub) > rows:  # tiny scales: fewer rows than images
        sub = np.sort(rng0.choice(sub, size=rows, replace=False))
    if len(sub) and rows > len(sub):
        counts = _alloc(rng0, len(sub), rows, shape)
    else:
        counts = np.ones(len(sub), dtype=np.int64)
    w.write((",".join(header) + "\n").encode())
    for ci, (lo, hi) in enumerate(_chunks(counts)):
        rng = ctx.rng(rel, "chunk", ci)
        c = counts[lo:hi]
        img_ids = ids_all[sub[lo:hi]]
        offsets = np.zeros(len(c) + 1, dtype=np.int64)
        np.cumsum(c, out=offsets[1:])
        n = int(offsets[-1])
        row_img = np.repeat(np.arange(len(c)), c)
        cols = make_cols(rng, n, img_ids, row_img, offsets)
        cols.setdefault("ImageID", [("hex", img_ids[row_img], 16)])
        w.render(Template(_columns_to_row(header, cols), n))


def _label_codes(rng, ranks: np.ndarray, zipf: _Zipf, n: int, offsets: np.ndarray) -> np.ndarray:
    """Class ids, Zipf-distributed over ``ranks`` (most popular first), distinct within each image."""
    r = zipf.draw(rng, n)
    dedupe_in_groups(r, offsets, zipf.n)
    return ranks[r]


def _gen_labels(ctx: _Context, w: _Writer, rel: str, opts: dict):
    v = ctx.vocab
    ranks = v.boxable if opts.get("classes") == "boxable" else v.popular
    zipf = _Zipf(len(ranks), 1.0)
    machine = opts["source"] == "machine"
    conf_style = opts.get("confidence", "01")
    positive = opts.get("positive", 0.45)

    def cols(rng, n, img_ids, row_img, offsets):
        c = {"LabelName": [("dict", _label_codes(rng, ranks, zipf, n, offsets), v.mid_table)]}
        if machine:
            c["Source"] = [_lit("machine")]
            c["Confidence"] = [("dict", _categorical(rng, [0.2, 0.17, 0.16, 0.15, 0.15, 0.17], n), _MACHINE_CONF)]
        else:
            verification = rng.random(n) < 0.87
            c["Source"] = [("dict", (~verification).astype(np.int32), _HUMAN_SOURCES)]
            conf = (rng.random(n) < positive).astype(np.int32)
            if conf_style == "v7":  # 'verification' rows print 0.0/1.0, crowdsource rows 0/1
                conf += 2 * verification
            c["Confidence"] = [("dict", conf, _HUMAN_CONF)]
        return c

    _annotation_file(ctx, w, rel, opts, _header("image_labels"), 1.5, cols)


_MACHINE_CONF = StringTable([b"0.5", b"0.6", b"0.7", b"0.8", b"0.9", b"1.0"])
_HUMAN_SOURCES = StringTable([b"verification", b"crowdsource-verification"])
_HUMAN_CONF = StringTable([b"0", b"1", b"0.0", b"1.0"])
_FLAG = StringTable([b"-1", b"0", b"1"])
_FLAG_P = {"IsOccluded": 0.55, "IsTruncated": 0.25, "IsGroupOf": 0.06, "IsDepiction": 0.05, "IsInside": 0.02}


def _image_sides(seed: int, img_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes into _SIDES for each image's width and height (a hash of the ID: same in every file)."""
    h = hash64(img_ids, np.uint64(_key("image-size", seed)), 2)
    return _categorical(_u01(h[0]), _SIDE_P), _categorical(_u01(h[1]), _SIDE_P)


def _gen_boxes(ctx: _Context, w: _Writer, rel: str, opts: dict):
    v = ctx.vocab
    header = _header("boxes", opts["columns"])
    zipf = _Zipf(len(v.boxable), 1.1)
    names = [s for s, _ in opts["sources"]]
    sources = StringTable(s.encode() for s in names)
    probs = [p for _, p in opts["sources"]]
    fmt = opts["coords"]

    def cols(rng, n, img_ids, row_img, offsets):
        wc, hc = _image_sides(ctx.seed, img_ids)
        wc, hc = wc[row_img], hc[row_img]
        x0, x1 = _boxes_px(rng, _SIDES[wc], n)
        y0, y1 = _boxes_px(rng, _SIDES[hc], n)
        src = _categorical(rng, probs, n)
        c = {
            "Source": [("dict", src, sources)],
            "LabelName": [("dict", v.boxable[zipf.draw(rng, n)], v.mid_table)],
            "Confidence": [_lit("1")],
            "XMin": _coord_segs(x0, wc, fmt), "XMax": _coord_segs(x1, wc, fmt),
            "YMin": _coord_segs(y0, hc, fmt), "YMax": _coord_segs(y1, hc, fmt),
        }
        unknown_row = rng.random(n) < (0.03 if opts["flags"] == "-1" else 0.0)
        for name, p in _FLAG_P.items():
            f = (rng.random(n) < p).astype(np.int32) + 1
            if opts["flags"] == "-1":
                f[unknown_row | (rng.random(n) < 0.01)] = 0
            c[name] = [("dict", f, _FLAG)]
        if "XClick1X" in header:  # extreme clicks: top, left, bottom, right; empty for non-xclick boxes
            xclick = src == names.index("xclick")
            px = [rng.integers(x0, x1 + 1), x0, rng.integers(x0, x1 + 1), x1]
            py = [y0, rng.integers(y0, y1 + 1), y1, rng.integers(y0, y1 + 1)]
            for k in range(4):
                c[f"XClick{k + 1}X"] = _cond(xclick, _coord_segs(px[k], wc, fmt))
                c[f"XClick{k + 1}Y"] = _cond(xclick, _coord_segs(py[k], hc, fmt))
        return c

    _annotation_file(ctx, w, rel, opts, header, 0.8, cols)


def _gen_segmentation(ctx: _Context, w: _Writer, rel: str, opts: dict):
    v = ctx.vocab
    zipf = _Zipf(len(v.segmentable), 1.0)

    def cols(rng, n, img_ids, row_img, offsets):
        wc, hc = _image_sides(ctx.seed, img_ids)
        wc, hc = wc[row_img], hc[row_img]
        ids = img_ids[row_img]
        label = v.segmentable[zipf.draw(rng, n)]
        box_id = rng.integers(0, 1 << 32, n, dtype=np.uint64)
        x0, x1 = _boxes_px(rng, _SIDES[wc], n)
        y0, y1 = _boxes_px(rng, _SIDES[hc], n)
        c = {
            "MaskPath": [("hex", ids, 16), _lit("_"), ("dict", label, v.mid_noslash_table), _lit("_"),
                         ("hex", box_id, 8), _lit(".png")],
            "LabelName": [("dict", label, v.mid_table)],
            "BoxID": [("hex", box_id, 8)],
            "BoxXMin": _coord_segs(x0, wc, "trim6"), "BoxXMax": _coord_segs(x1, wc, "trim6"),
            "BoxYMin": _coord_segs(y0, hc, "trim6"), "BoxYMax": _coord_segs(y1, hc, "trim6"),
            "PredictedIoU": [], "Clicks": [],
        }
        if opts["clicks"]:
            c["PredictedIoU"] = [("fixed_trim", rng.integers(50_000, 100_001, n), 5)]
            nclicks = 1 + rng.poisson(3.0, n)
            k = int(nclicks.sum())
            owner = np.repeat(np.arange(n), nclicks)
            first = np.zeros(k, dtype=np.uint8)
            starts = np.concatenate([[0], np.cumsum(nclicks)[:-1]])
            first[starts] = 1
            side_x, side_y = _SIDES[wc][owner], _SIDES[hc][owner]
            cx = (rng.integers(x0[owner], x1[owner] + 1) * 200_000 + side_x) // (2 * side_x)
            cy = (rng.integers(y0[owner], y1[owner] + 1) * 200_000 + side_y) // (2 * side_y)
            flag = (rng.random(k) < 0.8).astype(np.int64)
            clicks = Template([*_cond(1 - first, [_lit(";")]), ("fixed", cx, 5), _lit(" "), ("fixed", cy, 5),
                               _lit(" "), ("int", flag)], k).render_all()
            data, click_off = clicks
            table = StringTable.from_buffers(data, np.append(click_off[starts], click_off[-1]))
            c["Clicks"] = [("dict", np.arange(n, dtype=np.int32), table)]
        return c

    _annotation_file(ctx, w, rel, opts, _header("segmentation"), 1.0, cols)


# Relationship words (VRD); 'is' links an object to an attribute.
_RELATIONSHIPS = ("at on holds plays interacts_with wears is inside_of under hits kicks throws catch cut drink eat "
                  "hang highfive hug kiss lift read ride skateboard ski snowboard surf talk_on_phone contain "
                  "dance").split()


@functools.lru_cache(maxsize=4)
def _triplets(seed: int, release: str) -> np.ndarray:
    """(LabelName1, LabelName2, relationship) class ids and relationship codes, most frequent first."""
    v = _vocab(seed, release)
    rng = _rng(seed, "triplets", release)
    classes = v.boxable[:_N_VRD_CLASSES]
    out, seen = [], set()
    is_code = _RELATIONSHIPS.index("is")
    while len(out) < _N_TRIPLETS:
        rel = int(_categorical(rng, [8, 10, 6, 2, 6, 5, 9, 3, 2, 1] + [0.5] * (len(_RELATIONSHIPS) - 10), 1)[0])
        a = int(classes[min(int(rng.pareto(0.8)), len(classes) - 1)])
        b = int(v.attributes[rng.integers(0, len(v.attributes))]) if rel == is_code else int(
            classes[rng.integers(0, len(classes))])
        if (a, b, rel) not in seen:
            seen.add((a, b, rel))
            out.append((a, b, rel))
    return np.array(out, dtype=np.int32)


_REL_TABLE = StringTable(r.encode() for r in _RELATIONSHIPS)


def _gen_vrd(ctx: _Context, w: _Writer, rel: str, opts: dict):
    v = ctx.vocab
    trip = _triplets(ctx.seed, ctx.release)
    zipf = _Zipf(len(trip), 1.0)
    is_code = _RELATIONSHIPS.index("is")

    def cols(rng, n, img_ids, row_img, offsets):
        wc, hc = _image_sides(ctx.seed, img_ids)
        wc, hc = wc[row_img], hc[row_img]
        t = trip[zipf.draw(rng, n)]
        same = t[:, 2] == is_code
        boxes = []
        for _ in range(2):
            x0, x1 = _boxes_px(rng, _SIDES[wc], n)
            y0, y1 = _boxes_px(rng, _SIDES[hc], n)
            boxes.append((x0, x1, y0, y1))
        boxes[1] = tuple(np.where(same, b0, b1) for b0, b1 in zip(boxes[0], boxes[1]))
        c = {"LabelName1": [("dict", t[:, 0], v.mid_table)], "LabelName2": [("dict", t[:, 1], v.mid_table)],
             "RelationshipLabel": [("dict", t[:, 2], _REL_TABLE)]}
        for k, (x0, x1, y0, y1) in enumerate(boxes, 1):
            c[f"XMin{k}"] = _coord_segs(x0, wc, "f32")
            c[f"XMax{k}"] = _coord_segs(x1, wc, "f32")
            c[f"YMin{k}"] = _coord_segs(y0, hc, "f32")
            c[f"YMax{k}"] = _coord_segs(y1, hc, "f32")
        return c

    _annotation_file(ctx, w, rel, opts, _header("vrd"), 1.0, cols)


_YES_NO = StringTable([b"yes", b"no", b"unsure"])


def _gen_points(ctx: _Context, w: _Writer, rel: str, opts: dict):
    v = ctx.vocab
    ranks = v.popular[:_N_POINT_CLASSES]
    zipf = _Zipf(len(ranks), 1.0)
    names = StringTable(_csv_field(s).encode() for s in v.names)

    def cols(rng, n, img_ids, row_img, offsets):
        wc, hc = _image_sides(ctx.seed, img_ids)
        wc, hc = wc[row_img], hc[row_img]
        px = np.floor(rng.random(n) * (_SIDES[wc] + 1)).astype(np.int64)
        py = np.floor(rng.random(n) * (_SIDES[hc] + 1)).astype(np.int64)
        label = ranks[zipf.draw(rng, n)]
        yes_no = _categorical(rng, [0.55, 0.35, 0.10], n)
        votes = 1 + rng.integers(0, 3, n)
        majority = np.ceil(votes / 2).astype(np.int64)
        yes = np.where(yes_no == 0, np.maximum(majority, 1), rng.integers(0, majority + 1))
        rest = votes - yes
        no = np.where(yes_no == 1, rest, rng.integers(0, rest + 1))
        unsure = votes - yes - no
        text = rng.random(n) < 0.05
        return {
            "ImageId": [("hex", img_ids[row_img], 16)],
            "X": _coord_segs(px, wc, "f32"), "Y": _coord_segs(py, hc, "f32"),
            "Label": [("dict", label, v.mid_table)],
            "EstimatedYesNo": [("dict", yes_no, _YES_NO)],
            # [U] the real Source values of point labels are not documented; human-label sources are used.
            "Source": [("dict", (rng.random(n) < 0.3).astype(np.int32), _HUMAN_SOURCES)],
            "YesVotes": [("int", yes)], "NoVotes": [("int", no)], "UnsureVotes": [("int", unsure)],
            "TextLabel": _cond(text, [("dict", label, names)]),
        }

    _annotation_file(ctx, w, rel, opts, _header("points"), 1.2, cols)


def _gen_images(ctx: _Context, w: _Writer, rel: str, opts: dict):
    header = _header("images", opts["columns"])
    split = opts["split"]
    if split == "all":
        parts = [ctx.universe[s] for s in _SPLITS]
        ids = np.concatenate(parts)
        codes = np.repeat(np.arange(3, dtype=np.int32), [len(p) for p in parts])
        order = np.argsort(ids, kind="stable")
        ids, codes = ids[order], codes[order]
    else:
        ids = ctx.universe[split][ctx.subset(split, opts.get("images"))]
        codes = np.full(len(ids), _SPLITS.index(split), dtype=np.int32)
    w.write((",".join(header) + "\n").encode())
    for lo in range(0, len(ids), CHUNK_ROWS // 4):
        hi = min(len(ids), lo + CHUNK_ROWS // 4)
        cols = _image_segs(ctx, ids[lo:hi], codes[lo:hi], opts["quote"], opts["columns"])
        w.render(Template(_columns_to_row(header, cols), hi - lo))


def _gen_descriptions(ctx: _Context, w: _Writer, rel: str, opts: dict):
    v = ctx.vocab
    if opts["classes"] == "boxable":
        ids = sorted(v.boxable.tolist(), key=lambda i: v.mids[i])
    else:
        ids = sorted(range(len(v.mids)), key=lambda i: _locale_key(v.mids[i]))
    lf = np.zeros(len(ids), dtype=bool)
    if opts["eol"] == "mixed":  # V3: 121 of 19,995 rows end in a bare LF, the rest in CRLF
        lf = ctx.rng(rel, "eol").random(len(ids)) < 121 / 19_995
    out = io.StringIO()
    if opts["header"]:
        out.write(",".join(_header("class_descriptions")) + "\n")
    for i, bare in zip(ids, lf.tolist()):
        eol = "\n" if (bare or opts["eol"] == "lf") else "\r\n"
        out.write(f"{v.mids[i]},{_csv_field(v.names[i])}{eol}")
    w.write(out.getvalue().encode("utf-8"))


def _gen_class_list(ctx: _Context, w: _Writer, rel: str, opts: dict):
    v = ctx.vocab
    which = opts["classes"]
    if which == "all":
        mids = sorted(v.mids, key=_locale_key)
    elif which == "trainable":
        mids = sorted((v.mids[i] for i in v.trainable), key=_locale_key)
    elif which == "boxable":
        mids = sorted(v.mids[i] for i in v.boxable)
    elif which == "boxable_trainable":  # most boxed first, as in the real file
        mids = [v.mids[i] for i in v.boxable[:_N_BOXABLE_TRAINABLE]]
    else:
        mids = sorted(v.mids[i] for i in v.segmentable)
    w.write("".join(m + "\n" for m in mids).encode())


def _hierarchy(seed: int, release: str) -> dict:
    """A label hierarchy over the boxable classes, shaped like the real 600-class one.

    About 93 classes have ``Subcategory`` children and 9 have ``Part`` children, depth at most 5 below the
    root, and about 190 labels occur under more than one parent.
    """
    v = _vocab(seed, release)
    rng = _rng(seed, "hierarchy", release)
    mids = [v.mids[i] for i in rng.permutation(v.boxable)]
    n_groups = 93
    depth = {_ROOT_MID: 0}
    sub: dict[str, list[str]] = {_ROOT_MID: []}
    groups = [_ROOT_MID]
    for m in mids[:n_groups]:
        cands = [g for g in groups if depth[g] < 4]
        parent = _ROOT_MID if rng.random() < 0.4 else cands[int(rng.integers(0, len(cands)))]
        sub[parent].append(m)
        sub[m] = []
        depth[m] = depth[parent] + 1
        groups.append(m)
    for m in mids[n_groups:]:
        parent = _ROOT_MID if rng.random() < 0.3 else groups[int(rng.integers(1, len(groups)))]
        sub[parent].append(m)
        depth[m] = depth[parent] + 1
    leaves = mids[n_groups:]
    parents_of = {m: {p for p, cs in sub.items() if m in cs} for m in leaves}
    for m in [leaves[i] for i in rng.choice(len(leaves), 155, replace=False)]:  # second parents
        p = groups[int(rng.integers(1, len(groups)))]
        if p not in parents_of[m]:
            sub[p].insert(int(rng.integers(0, len(sub[p]) + 1)), m)
            parents_of[m].add(p)
    part: dict[str, list[str]] = {}
    owners = [groups[i] for i in rng.choice(np.arange(1, len(groups)), 6, replace=False)]
    owners += [leaves[i] for i in rng.choice(len(leaves), 3, replace=False)]
    for o in owners:
        k = int(rng.integers(2, 8))
        part[o] = [leaves[i] for i in rng.choice(len(leaves), k, replace=False) if leaves[i] != o]

    def node(m: str) -> dict:
        d: dict = {"LabelName": m}
        if m in part:
            d["Part"] = [{"LabelName": p} for p in part[m]]
        if sub.get(m):
            d["Subcategory"] = [node(c) for c in sub[m]]
        return d

    return node(_ROOT_MID)


def _gen_hierarchy(ctx: _Context, w: _Writer, rel: str, opts: dict):
    text = json.dumps(_hierarchy(ctx.seed, ctx.release), indent=4)
    w.write(text.replace("\n", "\r\n").encode())  # CRLF, no final newline, as the real file


def _gen_relationship_descriptions(ctx: _Context, w: _Writer, rel: str, opts: dict):
    w.write("".join(f"{r},{r}\n" for r in _RELATIONSHIPS).encode())


def _gen_attribute_descriptions(ctx: _Context, w: _Writer, rel: str, opts: dict):
    v = ctx.vocab
    rows = []
    for k, i in enumerate(v.attributes.tolist()):
        name = v.names[i].strip()
        rows.append(f"{v.mids[i]},{_csv_field('(made of)' + name if k % 4 == 2 else name)}\n")
    w.write("".join(rows).encode())


def _gen_relationship_triplets(ctx: _Context, w: _Writer, rel: str, opts: dict):
    v = ctx.vocab
    trip = _triplets(ctx.seed, ctx.release)
    out = [",".join(_header("relationship_triplets")) + "\n"]
    out += [f"{v.mids[a]},{v.mids[b]},{_RELATIONSHIPS[r]}\n" for a, b, r in trip.tolist()]
    w.write("".join(out).encode())


_GENERATORS: dict[str, Callable] = {
    "images": _gen_images,
    "labels": _gen_labels,
    "boxes": _gen_boxes,
    "segmentation": _gen_segmentation,
    "vrd": _gen_vrd,
    "points": _gen_points,
    "descriptions": _gen_descriptions,
    "class_list": _gen_class_list,
    "hierarchy": _gen_hierarchy,
    "relationship_descriptions": _gen_relationship_descriptions,
    "attribute_descriptions": _gen_attribute_descriptions,
    "relationship_triplets": _gen_relationship_triplets,
}


def synth(
    out_dir: str | os.PathLike,
    *,
    scale: float = DEFAULT_SCALE,
    seed: int = 0,
    release: str = "v3",
    progress: Callable[[int], object] | None = None,
) -> list[pathlib.Path]:
    """Write a synthetic Open Images release into ``out_dir``.

    Parameters
    ----------
    out_dir : path
        Created if missing. Files of the release are overwritten (each one is written to a ``.tmp``
        neighbour first and renamed when complete); other files are left alone.
    scale : float
        Multiplies every row count of every split (1.0: the real sizes, about 7.7 GB for V3). Counts are
        rounded, with at least one row where the real file has any. Class vocabularies keep their full size.
    seed : int
        Seed of every random choice. The same ``(scale, seed, release)`` gives byte-identical files.
    release : {"v3", "v4", "v5", "v6", "v7"}
        Which release's file names, headers and value formats to imitate.
    progress : callable, optional
        Called with the number of bytes just written, after each write (``tqdm(...).update`` fits).

    Returns
    -------
    list of pathlib.Path
        The files written, sorted.

    Examples
    --------
    >>> import tempfile
    >>> paths = synth(tempfile.mkdtemp(), scale=0.0001, release="v6")
    >>> sorted(p.name for p in paths)[:2]
    ['bbox_labels_600_hierarchy.json', 'class-descriptions-boxable.csv']
    """
    release = _check_release(release)
    scale = float(scale)
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive number, got {scale!r}")
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ctx = _Context(out, scale, seed, release, progress)
    written = []
    for rel, gen, opts in _FILES[release]:
        w = _Writer(ctx, rel)
        try:
            _GENERATORS[gen](ctx, w, rel, opts)
        except BaseException:
            w.abort()
            raise
        w.close()
        written.append(w.path)
    return sorted(written)


def row_counts(release: str, scale: float = DEFAULT_SCALE) -> dict[str, int | None]:
    """Data rows (header excluded) ``synth`` writes per file at ``scale``; ``None`` where it depends on the
    draw (the V6/V7 train images with labels: the union of two random image subsets).

    >>> row_counts("v3", 0.001)["train/annotations-machine.csv"]
    78978
    """
    release = _check_release(release)
    k, n_trainable = _VOCAB_SIZES[release]
    lists = {"all": k, "trainable": n_trainable, "boxable": _N_BOXABLE,
             "boxable_trainable": _N_BOXABLE_TRAINABLE, "segmentable": _N_SEGMENTABLE}
    out: dict[str, int | None] = {}
    for path, gen, opts in _FILES[release]:
        if "rows" in opts:
            out[path] = _scaled(opts["rows"], scale)
        elif gen == "images":
            images = opts.get("images")
            if opts["split"] == "all":
                out[path] = sum(_scaled(n, scale) for n in _IMAGES.values())
            elif images is None:
                out[path] = _scaled(_IMAGES[opts["split"]], scale)
            elif images == "labels":
                out[path] = None
            else:
                out[path] = min(_scaled(images[1], scale), _scaled(_IMAGES[opts["split"]], scale))
        elif gen in ("descriptions", "class_list"):
            out[path] = lists[opts["classes"]]
        elif gen == "relationship_descriptions":
            out[path] = len(_RELATIONSHIPS)
        elif gen == "attribute_descriptions":
            out[path] = 15
        elif gen == "relationship_triplets":
            out[path] = _N_TRIPLETS
        else:
            out[path] = None
    return out
