"""What each file of a release is: its table, split and reading kind, from its path.

``oicore convert`` is given release directories (laid out as Google ships
them), single files, or the release's ``.tar.gz`` archives as downloaded;
``find_sources`` walks them and names every file it will store. File names
decide the table (human or machine labels look alike inside) and the split;
the reader still checks each header against the kind. ``source_reader`` reads
a source front to back (a file, or an archive member as it is decompressed,
never to disk); ``source_bytes`` gives all of it at once: a map of a file, or a
member decompressed into memory (small members only, such as the hierarchy).
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import mmap
import os
import re
import tarfile
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from oicore.errors import OicoreError, OicoreWarning
from oicore.format import MAX_PARTS

__all__ = ["Source", "SourceNameError", "SourceReader", "classify", "find_sources", "source_bytes", "source_head", "source_reader", "source_sha256", "SPLITS", "TABLES", "UnsupportedFileError"]

SPLITS = ("train", "validation", "test")

# Tables of an .oic file, and the reading kind (oicore.schema) of their CSVs.
TABLES = {
    "images": "images",
    "human_labels": "image_labels",
    "machine_labels": "image_labels",
    "boxes": "boxes",
    "points": "points",
    "vrd": "vrd",
    "segmentation": "segmentation",
    "class_descriptions": "class_descriptions",
    "class_lists": "class_lists",
    "hierarchy": None,  # JSON
    "relationship_descriptions": "relationship_descriptions",
    "attribute_descriptions": "attribute_descriptions",
    "relationship_triplets": "relationship_triplets",
}

# (pattern on the file name, table), first match wins. Names are lower-cased first.
_RULES = [
    (r"relationships?-descriptions?\.csv$", "relationship_descriptions"),
    (r"attributes?-descriptions?\.csv$", "attribute_descriptions"),
    (r"relationship-triplets\.csv$", "relationship_triplets"),
    (r"(class-descriptions|classes-description)[\w-]*\.csv$|^dict\.csv$", "class_descriptions"),
    (r"^(oidv\d-)?class(es|-ids)[\w-]*\.txt$", "class_lists"),
    (r"hierarchy[\w-]*\.json$", "hierarchy"),
    (r"point-labels\.csv$", "points"),
    (r"vrd[\w-]*\.csv$", "vrd"),
    (r"object-segmentation\.csv$|segmentation-(bbox|labels)\.csv$", "segmentation"),
    (r"(annotations-human-bbox|annotations-bbox|detection-bbox)[\w-]*\.csv$", "boxes"),
    (r"human-imagelabels[\w-]*\.csv$|^annotations-human\.csv$", "human_labels"),
    (r"machine-imagelabels[\w-]*\.csv$|^annotations-machine\.csv$", "machine_labels"),
    (r"images[\w-]*\.csv$|^image_ids_and_rotation\.csv$", "images"),
]
_UNSUPPORTED = (".jsonl", ".zip", ".gz", ".bz2", ".xz")
_ARCHIVES = (".tar.gz", ".tgz", ".tar")


class UnsupportedFileError(OicoreError, ValueError):
    """A file oicore does not store (under ``strict``; otherwise it is skipped with an OicoreWarning)."""


class SourceNameError(OicoreError, ValueError):
    """Two sources given would have the same name in the .oic file (a usage error: the CLI exits with 2)."""


class TooManyFilesError(OicoreError, ValueError):
    """More files of one table than a .oic file holds (a usage error: the CLI exits with 2)."""


@dataclass(frozen=True)
class Source:
    """One file of a release, as oicore will store it."""

    path: Path  # the file, or the archive that holds it
    name: str  # its path relative to the release directory given (or in its archive), with '/' separators
    table: str  # a key of TABLES
    split: str | None  # "train", "validation", "test", or None for release-wide files
    kind: str | None  # the reading kind (oicore.schema), None for the hierarchy JSON
    export_only: bool  # stored for export, not indexed for lookups (a "-boxable" subset)
    list_name: str | None = None  # class lists: "all", "trainable", "bbox", ...
    member: str | None = None  # the member of the archive ``path`` that holds it, if any
    member_size: int = 0

    @property
    def size(self) -> int:
        return self.member_size if self.member is not None else self.path.stat().st_size

    @property
    def where(self) -> str:
        """The file, as error messages name it."""
        return f"{self.path}:{self.member}" if self.member is not None else str(self.path)


def _split_of(parts: list[str], name: str) -> str | None:
    for part in reversed(parts[:-1]):  # the nearest folder named after a split
        if part.lower() in SPLITS:
            return part.lower()
    tokens = re.split(r"[-_.]", name.lower())
    for token in tokens:
        if token in SPLITS:
            return token
        if token == "val":
            return "validation"
    return None


def _list_name(name: str) -> str:
    stem = re.sub(r"^oidv\d-", "", name.lower()).removesuffix(".txt")
    if stem in ("classes", "class-ids"):
        return "all"
    for prefix in ("classes-", "class-ids-"):
        if stem.startswith(prefix):
            return stem[len(prefix) :]
    return stem


def classify(path, root=None, *, member: tarfile.TarInfo | None = None) -> Source | None:
    """The Source for ``path`` (relative names from ``root``; or for ``member`` of the archive ``path``), or
    None when oicore does not know the file."""
    path = Path(path)
    if member is not None:
        parts = [p for p in member.name.split("/") if p not in ("", ".")]
        if not parts:
            return None
    else:
        rel = path.relative_to(root) if root is not None else Path(path.name)
        parts = list(rel.parts)
    name = parts[-1]
    lower = name.lower()
    table = None
    for pattern, candidate in _RULES:
        if re.search(pattern, lower):
            table = candidate
            break
    if table is None and lower == "labels.csv":  # V1: {human,machine}_ann*/{split}/labels.csv
        joined = "/".join(p.lower() for p in parts)
        table = "human_labels" if "human" in joined else "machine_labels" if "machine" in joined else None
    if table is None:
        return None
    if member is not None and (member.name.startswith("/") or ".." in parts):
        # Export writes sources under its folder by name: such a name would leave it.
        raise UnsupportedFileError(f"{path}:{member.name}: an archive member named outside the release folder")
    split = _split_of(parts, name) if TABLES[table] in ("images", "image_labels", "boxes", "points", "vrd", "segmentation") else None
    return Source(
        path=path,
        name="/".join(parts),
        table=table,
        split=split,
        kind=TABLES[table],
        export_only="boxable" in lower and table in ("human_labels", "images"),
        list_name=_list_name(name) if table == "class_lists" else None,
        member=member.name if member is not None else None,
        member_size=member.size if member is not None else 0,
    )


def _single_file_root(path: Path) -> Path:
    """What a file given alone is named from: its folder, or, when that folder is a split (``train/``...), the
    one above, so the name keeps the split (``train/images.csv``, as when its release folder is given); for
    V1's ``labels.csv`` also the annotation folder above that (``machine_ann_2016_08/train/labels.csv``)."""
    root = path.parent
    if root.name.lower() in (*SPLITS, "val") and root.parent != root:
        root = root.parent
        if path.name.lower() == "labels.csv" and root.parent != root:
            root = root.parent
    return root


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(_ARCHIVES)


def _archive_members(path: Path) -> list[tarfile.TarInfo]:
    """The regular files of a tar archive (gzip or not), in archive order; reading it decompresses it once.

    The compressed stream is read to its end, so a damaged download (a gzip CRC or length that does not match,
    a missing trailer) is refused here: tarfile stops at the archive's end marker, before the gzip trailer.
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            members = [m for m in tar.getmembers() if m.isfile() and not m.name.rsplit("/", 1)[-1].startswith(".")]
            while tar.fileobj.read(1 << 20):
                pass
            return members
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError) as e:
        raise UnsupportedFileError(f"{path}: expected an intact tar archive (.tar.gz, .tgz or .tar), got {e}") from None


@contextlib.contextmanager
def source_bytes(source: Source):
    """A source's bytes as a buffer: a read-only map of the file, or the archive member decompressed into
    memory (read as a stream, never written to disk)."""
    if source.member is None:
        with open(source.path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                yield b""
                return
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                yield m
        return
    with source_reader(source) as reader:
        yield reader.read_exactly(source.member_size)


class SourceReader:
    """A source's bytes front to back: the file, or the archive member as it is decompressed (never to disk).

    ``read_exactly(n)`` returns the next ``n`` bytes; an archive that ends before its member does raises
    ``UnsupportedFileError``.
    """

    def __init__(self, source: Source, stream):
        self.source, self.stream, self.pos = source, stream, 0

    def read_exactly(self, n: int) -> bytearray:
        out, got = self._fill(n)
        if got < n:
            raise UnsupportedFileError(f"{self.source.where}: the data ends {n - got} bytes early (at byte {self.pos + got})")
        self.pos += n
        return out

    def _fill(self, n: int) -> tuple[bytearray, int]:
        """Up to ``n`` bytes, read until the stream ends: the buffer of ``n`` and how many were read."""
        out = bytearray(n)
        view, got = memoryview(out), 0
        while got < n:
            k = self.stream.readinto(view[got:])
            if not k:
                break
            got += k
        view.release()
        return out, got

    def readinto(self, buf) -> int:
        n = self.stream.readinto(buf)
        self.pos += n
        return n

    def read(self, n: int) -> bytes:
        """The next ``n`` bytes, or fewer at the end."""
        out, got = self._fill(n)
        self.pos += got
        del out[got:]
        return bytes(out)


@contextlib.contextmanager
def source_reader(source: Source):
    """A :class:`SourceReader` of ``source``."""
    if source.member is None:
        with open(source.path, "rb", buffering=0) as f:
            yield SourceReader(source, f)
        return
    with tarfile.open(source.path, "r:*") as tar:
        yield SourceReader(source, tar.extractfile(source.member))


_HASH_BUFFER = 4 << 20


def source_sha256(source: Source) -> tuple[str, int]:
    """The sha256 (hex) and size of a source's bytes, read through one small buffer (a map of a 3 GB file, or
    a member decompressed into memory, would count all of it in our RSS)."""
    h = hashlib.sha256()
    buf = bytearray(_HASH_BUFFER)
    view, size = memoryview(buf), 0
    with source_reader(source) as r:
        while n := r.readinto(buf):
            h.update(view[:n])  # hashlib releases the GIL for large buffers
            size += n
    if source.member is not None and size != source.member_size:
        raise UnsupportedFileError(f"{source.where}: the archive ends {source.member_size - size} bytes into this member")
    return h.hexdigest(), size


def source_head(source: Source, n: int) -> bytearray:
    """Up to the first ``n`` bytes of a source."""
    with source_reader(source) as r:
        return r.read_exactly(min(n, source.size))


def _boxable_subsets(found: list[Source]) -> list[Source]:
    """A "-boxable" file is export-only when a fuller file of its table and split is among the sources;
    otherwise (V5 ships train images only as a boxable file) it is the table's part for lookups."""
    from dataclasses import replace

    full = {(s.table, s.split) for s in found if not s.export_only}
    return [replace(s, export_only=False) if s.export_only and (s.table, s.split) not in full else s for s in found]


def find_sources(paths, *, strict: bool = False) -> list[Source]:
    """Every file oicore stores from ``paths`` (release directories, single files, or tar archives, whose
    members count as files of a release directory), sorted by name.

    Unknown or unsupported files (JSONL, zips, ...) are skipped with an :class:`OicoreWarning`, or
    raise :class:`UnsupportedFileError` when ``strict``.
    """
    found: list[Source] = []
    for given in paths:
        given = Path(given)
        if not given.exists():
            raise FileNotFoundError(os.strerror(2), str(given))
        if given.is_dir():
            files = sorted(p for p in given.rglob("*") if p.is_file() and not p.name.startswith("."))
            root = given
        else:
            files, root = [given], _single_file_root(given)
        entries = []
        for f in files:
            if _is_archive(f):
                entries += [(f, member) for member in _archive_members(f)]
            else:
                entries.append((f, None))
        for f, member in entries:
            source = classify(f, root, member=member)
            if member is not None and source is None:
                f = Path(f"{f}:{member.name}")
            if source is None:
                what = "an unsupported format" if f.suffix.lower() in _UNSUPPORTED else "not an Open Images file oicore knows"
                message = f"skipping {f}: {what}"
                if strict:
                    raise UnsupportedFileError(message)
                warnings.warn(message, OicoreWarning, stacklevel=2)
                continue
            found.append(source)
    found = _boxable_subsets(found)
    names = [s.name for s in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        paths = [s.where for s in found if s.name == duplicates[0]]
        raise SourceNameError(
            f"two sources would be stored as {duplicates[0]!r} ({' and '.join(paths)}): give the release folder, "
            "or files whose folder names differ"
        )
    per_table: dict[str, list[Source]] = {}
    for s in found:
        per_table.setdefault(s.table, []).append(s)
    for table, files in per_table.items():
        if len(files) > MAX_PARTS:
            names = sorted(s.name for s in files)
            raise TooManyFilesError(
                f"{len(files)} files of the {table} table ({names[0]} ... {names[-1]}); a .oic file holds at most "
                f"{MAX_PARTS} per table: join the shards into fewer files"
            )
    return sorted(found, key=lambda s: s.name)
