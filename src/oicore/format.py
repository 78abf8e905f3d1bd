"""The ``.oic`` container: header, segments, directory, footer (FORMAT.md).

``ContainerWriter`` writes a file atomically (a temporary file beside the
target, fsync, rename). ``Container`` memory-maps one, checks the header, the
footer and the directory at open, and checks each segment block's CRC-32C the
first time it is read. Tables and their encodings live above this layer.
"""

from __future__ import annotations

import json
import mmap
import os
import struct
import threading
import uuid as uuidlib
from pathlib import Path

import numpy as np

from oicore._checksum import crc32c
from oicore.errors import ChecksumError, FormatError, UnsupportedVersionError

__all__ = [
    "MAGIC",
    "END_MAGIC",
    "MAJOR",
    "MINOR",
    "HEADER_SIZE",
    "FOOTER_SIZE",
    "ALIGNMENT",
    "BLOCK_SIZE",
    "ContainerWriter",
    "Container",
]

MAGIC = b"\x89OIC\r\n\x1a\n"
END_MAGIC = MAGIC[::-1]
MAJOR, MINOR = 0, 4
HEADER_SIZE = 64
FOOTER_SIZE = 64
ALIGNMENT = 64
BLOCK_SIZE = 1 << 20  # the largest block of stored bytes one CRC covers
MAX_PARTS = 256  # source files of one table: row_part gives each row's part in one byte
CODECS = ("raw", "zstd")
# The most raw bytes a writer puts in one zstd frame: zstd's worst-case growth on incompressible data is far
# below 4 KiB per MiB, so every frame stays within BLOCK_SIZE stored bytes.
ZSTD_RAW_MAX = BLOCK_SIZE - 4096

# Header: magic, major, minor, flags, uuid, file_length, 20 reserved bytes; then its CRC.
_HEADER = struct.Struct("<8sHHI16sQ20x")
# Footer: directory offset, length, CRC, flags, uuid, file_length, 4 reserved bytes; CRC; end magic.
_FOOTER = struct.Struct("<QQII16sQ4x")
assert _HEADER.size == HEADER_SIZE - 4 and _FOOTER.size == FOOTER_SIZE - 12


def _pad(n: int) -> int:
    return -n % ALIGNMENT


class ContainerWriter:
    """Writes segments, then the directory and the footer; the file appears at ``path`` only when complete.

    Use as a context manager: an exception inside the block removes the temporary file and leaves
    ``path`` as it was. Segments may be added from several threads (``convert`` encodes tables side by
    side): each is written whole, and its index is the order it was written in.
    """

    def __init__(self, path, *, force: bool = False):
        self.path = Path(path)
        if self.path.exists() and not force:
            raise FileExistsError(f"{self.path} exists (use force=True, or --force, to replace it)")
        self.uuid = uuidlib.uuid4().bytes
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{self.uuid.hex()[:8]}.tmp")
        self.f = open(self.tmp, "wb")
        self.segments: list[dict] = []
        self.blocks: list[tuple[int, int, int]] = []  # every segment's blocks, in file order
        self.offset = 0
        self._lock = threading.Lock()  # one segment is written at a time
        self._write(bytes(HEADER_SIZE))  # the real header is written last

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False

    def _write(self, data) -> None:
        self.f.write(data)
        self.offset += len(memoryview(data).cast("B"))

    def _align(self) -> None:
        pad = _pad(self.offset)
        if pad:
            self._write(bytes(pad))

    def add_raw(self, data) -> int:
        """Store ``data`` (any buffer) as a raw segment; return its index."""
        view = memoryview(data).cast("B")
        blocks = []
        for lo in range(0, len(view), BLOCK_SIZE):
            block = view[lo : lo + BLOCK_SIZE]
            blocks.append((len(block), len(block), crc32c(block)))
        with self._lock:
            self._align()
            start = self.offset
            self._write(view)
            return self._add_segment(start, len(view), "raw", blocks)

    def _add_segment(self, offset: int, length: int, codec: str, blocks) -> int:
        entry = {"offset": offset, "length": length, "codec": codec, "first_block": len(self.blocks), "block_count": len(blocks)}
        self.segments.append(entry)
        self.blocks.extend(blocks)
        return len(self.segments) - 1

    def add_frames(self, frames) -> int:
        """Store already-compressed zstd frames ``(frame_bytes, raw_length)`` as one segment; return its index."""
        frames = [(memoryview(frame).cast("B"), raw_length) for frame, raw_length in frames]
        blocks = []
        for frame, raw_length in frames:
            if len(frame) > BLOCK_SIZE or raw_length > BLOCK_SIZE:
                raise ValueError(f"a zstd block holds at most {BLOCK_SIZE} bytes, stored and raw")
            blocks.append((len(frame), int(raw_length), crc32c(frame)))
        with self._lock:
            self._align()
            start = self.offset
            for frame, _ in frames:
                self._write(frame)
            return self._add_segment(start, self.offset - start, "zstd", blocks)

    def add_zstd(self, data, *, level: int = 3, block_size: int = ZSTD_RAW_MAX, pool=None) -> int:
        """Compress ``data`` (any buffer) into independent zstd frames of ``block_size`` raw bytes; return the segment.

        ``pool`` (a ``concurrent.futures`` executor) compresses the frames in parallel; zstd releases the GIL.
        """
        view = memoryview(data).cast("B")
        block_size = min(block_size, ZSTD_RAW_MAX)
        pieces = [view[lo : lo + block_size] for lo in range(0, len(view), block_size)]
        frames = (pool.map if pool is not None else map)(lambda p: (_compress(p, level), len(p)), pieces)
        return self.add_frames(frames)

    def add_zstd_frames(self, pieces, *, level: int = 3, pool=None) -> int:
        """Compress each buffer of ``pieces`` (at most 1 MiB each) into its own frame; return the segment."""
        frames = (pool.map if pool is not None else map)(lambda p: (_compress(p, level), len(memoryview(p).cast("B"))), pieces)
        return self.add_frames(frames)

    def finish(self, directory: dict) -> Path:
        """Write the directory and footer, fsync, and move the file into place."""
        body = dict(directory)
        body["format"] = [MAJOR, MINOR]
        body["segments"] = self.segments
        table = np.array(self.blocks, dtype="<u4").reshape(len(self.blocks), 3).tobytes()
        self._align()
        body["block_table"] = {"offset": self.offset, "count": len(self.blocks), "crc32c": crc32c(table)}
        self._write(table)
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._align()
        dir_offset = self.offset
        self._write(text)
        self._align()
        file_length = self.offset + FOOTER_SIZE
        footer = _FOOTER.pack(dir_offset, len(text), crc32c(text), 0, self.uuid, file_length)
        footer += struct.pack("<I", crc32c(footer)) + END_MAGIC
        self._write(footer)
        header = _HEADER.pack(MAGIC, MAJOR, MINOR, 0, self.uuid, file_length)
        header += struct.pack("<I", crc32c(header))
        self.f.seek(0)
        self.f.write(header)
        self.f.flush()
        os.fsync(self.f.fileno())
        _drop_cached_pages(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)
        _fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Drop the temporary file; the target path is untouched."""
        try:
            self.f.close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


_compressors = threading.local()


def _compress(data, level: int) -> bytes:
    # One compressor per thread and level: a ZstdCompressor is not thread-safe, and making one costs.
    cache = getattr(_compressors, "by_level", None)
    if cache is None:
        cache = _compressors.by_level = {}
    c = cache.get(level)
    if c is None:
        import zstandard

        c = cache[level] = zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=False)
    return c.compress(data)


# Lookups read a few bytes from each of many pages. With 4 KiB pages nearly every such read also misses the
# TLB, which costs more than the read itself (most of all in a VM). A mapping advised MADV_HUGEPAGE makes the
# kernel fill the page cache with 2 MiB folios on first touch and map them whole; the page cache then holds them
# for every process that maps the file. Pages already cached stay as they are, hence the second half: a new
# file's pages (written in small pieces) leave the cache once they are on disk, and are read back in 2 MiB.


def _advise_huge_pages(mapping) -> None:
    advice = getattr(mmap, "MADV_HUGEPAGE", None)
    if advice is not None:
        try:
            mapping.madvise(advice)
        except OSError:  # not supported here: 4 KiB pages, the same answers
            pass


def _drop_cached_pages(fd: int) -> None:
    advice = getattr(os, "POSIX_FADV_DONTNEED", None)
    if advice is not None:
        try:
            os.posix_fadvise(fd, 0, 0, advice)
        except OSError:
            pass


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class Container:
    """A memory-mapped ``.oic`` file whose header, footer and directory have been checked.

    ``segment(i)`` returns a segment's data; raw segments are views into the map, checked block by
    block on first use. Safe to share between threads.
    """

    def __init__(self, path, *, verify: bool = False):
        self.path = os.fspath(path)
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < HEADER_SIZE + FOOTER_SIZE:
                raise FormatError(
                    f"expected an .oic file of at least {HEADER_SIZE + FOOTER_SIZE} bytes, got {size}",
                    path=self.path,
                    byte_offset=0,
                )
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        _advise_huge_pages(self.map)
        self.size = size
        self.view = memoryview(self.map)
        self._lock = threading.Lock()
        self._checked: list[bytearray] = []
        self._read_ends()
        self._read_directory()
        if verify:
            self.verify()

    # ---- open: header, footer, directory ---------------------------------------------------

    def _fail(self, reason, offset):
        raise FormatError(reason, path=self.path, byte_offset=offset)

    def _read_ends(self):
        v = self.view
        header = bytes(v[:HEADER_SIZE])
        if header[:8] != MAGIC:
            self._fail(f"expected the .oic magic {MAGIC!r}, got {header[:8]!r}: not an .oic file", 0)
        magic, major, minor, flags, uid, length = _HEADER.unpack_from(header)
        (crc,) = struct.unpack_from("<I", header, 60)
        if crc32c(header[:60]) != crc:
            raise ChecksumError("header CRC-32C mismatch", path=self.path, byte_offset=60)
        if major != MAJOR:
            raise UnsupportedVersionError(
                f"expected format major version {MAJOR}, got {major}.{minor} (written by a newer oicore?)",
                path=self.path,
                byte_offset=8,
            )
        if major == 0 and minor != MINOR:  # FORMAT.md, "Compatibility": no promise across 0.x minor versions
            raise UnsupportedVersionError(
                f"expected format version {MAJOR}.{MINOR}, got {major}.{minor}: convert the release again with this oicore",
                path=self.path,
                byte_offset=10,
            )
        if flags:
            self._fail(f"expected reserved header flags 0, got {flags:#x}", 12)
        if any(header[40:60]):
            self._fail("expected reserved header bytes 40-59 to be zero", 40)
        if length != self.size:
            self._fail(f"expected {length} bytes as the header says, got {self.size}: the file is truncated or extended", 32)
        fo = self.size - FOOTER_SIZE
        footer = bytes(v[fo:])
        if footer[56:] != END_MAGIC:
            self._fail(f"expected the end magic {END_MAGIC!r}, got {footer[56:]!r}", fo + 56)
        (fcrc,) = struct.unpack_from("<I", footer, 52)
        if crc32c(footer[:52]) != fcrc:
            raise ChecksumError("footer CRC-32C mismatch", path=self.path, byte_offset=fo + 52)
        d_off, d_len, d_crc, fflags, fuid, flength = _FOOTER.unpack_from(footer)
        if fflags:
            self._fail(f"expected reserved footer flags 0, got {fflags:#x}", fo + 20)
        if any(footer[48:52]):
            self._fail("expected reserved footer bytes 48-51 to be zero", fo + 48)
        if fuid != uid or flength != length:
            self._fail("the footer's uuid or length differs from the header's", fo + 24)
        if d_off % ALIGNMENT or d_off < HEADER_SIZE or d_off + d_len > fo:
            self._fail(f"directory at [{d_off}, {d_off + d_len}) lies outside the file's body", fo)
        if any(v[d_off + d_len : fo]):
            self._fail("expected zero padding after the directory", d_off + d_len)
        self.uuid = uid
        self.version = (major, minor)
        self.directory_span = (d_off, d_len, d_crc)

    def _read_directory(self):
        d_off, d_len, d_crc = self.directory_span
        text = bytes(self.view[d_off : d_off + d_len])
        if crc32c(text) != d_crc:
            raise ChecksumError("directory CRC-32C mismatch", path=self.path, byte_offset=d_off)
        try:
            directory = json.loads(text.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            self._fail(f"expected a JSON directory, got {e}", d_off)
        if not isinstance(directory, dict) or directory.get("format") != [self.version[0], self.version[1]]:
            self._fail("expected a directory object whose format equals the header's version", d_off)
        segments = directory.get("segments")
        if not isinstance(segments, list):
            self._fail("expected a list of segments in the directory", d_off)
        self.blocks = self._read_block_table(directory.get("block_table"), d_off)
        table_start = self._table_offset
        table_end = table_start + 12 * len(self.blocks)
        # Block sums, once for the whole table: a segment's blocks are [first, first + count).
        stored = self.blocks[:, 0].astype(np.int64)
        cum = np.zeros(len(stored) + 1, np.int64)
        np.cumsum(stored, out=cum[1:])
        raw_mismatch = np.flatnonzero(self.blocks[:, 0] != self.blocks[:, 1])
        end, next_block = HEADER_SIZE, 0
        for i, seg in enumerate(segments):
            next_block = self._check_segment(i, seg, end, table_start, next_block, cum, raw_mismatch)
            gap_start, end = end, seg["offset"] + seg["length"]
            if any(self.view[gap_start : seg["offset"]]):
                self._fail(f"expected zero padding before segment {i}", gap_start)
        if next_block != len(self.blocks):
            self._fail("the block table holds blocks of no segment", table_start)
        if any(self.view[end:table_start]):
            self._fail("expected zero padding before the block table", end)
        if any(self.view[table_end:d_off]):
            self._fail("expected zero padding before the directory", table_end)
        self.directory = directory
        self.segments = segments
        self._checked = [bytearray(s["block_count"]) for s in segments]
        # Each block's absolute offset: its segment's offset plus the stored bytes of the blocks before it.
        starts_all = cum[:-1].copy()
        self._starts = []
        for s in segments:
            k0, k = s["first_block"], s["block_count"]
            self._starts.append(starts_all[k0 : k0 + k] + (s["offset"] - cum[k0]))

    def _read_block_table(self, spec, d_off):
        """The blocks of every segment: an (n, 3) uint32 array of stored length, raw length, CRC-32C."""
        if not (isinstance(spec, dict) and all(isinstance(spec.get(k), int) and spec[k] >= 0 for k in ("offset", "count", "crc32c"))):
            self._fail("expected a block_table with offset, count and crc32c in the directory", d_off)
        off, count = spec["offset"], spec["count"]
        if off % ALIGNMENT or off < HEADER_SIZE or off + 12 * count > d_off:
            self._fail(f"block table at [{off}, {off + 12 * count}) lies outside the body", d_off)
        raw = self.view[off : off + 12 * count]
        if crc32c(raw) != spec["crc32c"]:
            raise ChecksumError("block table CRC-32C mismatch", path=self.path, byte_offset=off)
        self._table_offset = off
        table = np.frombuffer(raw, dtype="<u4").reshape(count, 3)
        if count and (int(table[:, 0].max()) > BLOCK_SIZE or int(table[:, 1].max()) > BLOCK_SIZE):
            self._fail(f"a block over {BLOCK_SIZE} bytes in the block table", off)
        return table

    def _check_segment(self, i, seg, min_offset, max_end, first_block, cum, raw_mismatch) -> int:
        keys = ("offset", "length", "first_block", "block_count")
        if not (isinstance(seg, dict) and all(isinstance(seg.get(k), int) and seg[k] >= 0 for k in keys) and seg.get("codec") in CODECS):
            self._fail(f"segment {i}: expected offset, length, codec, first_block and block_count", self.directory_span[0])
        off, length = seg["offset"], seg["length"]
        if off % ALIGNMENT or off < min_offset or off + length > max_end:
            self._fail(f"segment {i} at [{off}, {off + length}) overlaps or lies outside the body", off)
        k0, k = seg["first_block"], seg["block_count"]
        if k0 != first_block or k0 + k > len(self.blocks):
            self._fail(f"segment {i}: its blocks [{k0}, {k0 + k}) do not follow the previous segment's", off)
        total = int(cum[k0 + k] - cum[k0])
        if total != length:
            self._fail(f"segment {i}: its blocks hold {total} bytes, its length is {length}", off)
        if seg["codec"] == "raw" and len(raw_mismatch):
            j = np.searchsorted(raw_mismatch, k0)
            if j < len(raw_mismatch) and raw_mismatch[j] < k0 + k:
                self._fail(f"segment {i}: a raw block's stored and raw lengths differ", off)
        return k0 + k

    # ---- reading segments -----------------------------------------------------------------

    def block(self, i: int, k: int) -> tuple[int, int, int]:
        """Block ``k`` of segment ``i``: (stored length, raw length, CRC-32C)."""
        self._segment_index(i)
        stored, raw, crc = self.blocks[self.segments[i]["first_block"] + k]
        return int(stored), int(raw), int(crc)

    def _segment_index(self, i) -> None:
        # Negative indexes would silently wrap to other segments.
        if not isinstance(i, int) or not 0 <= i < len(self.segments):
            raise FormatError(f"expected a segment index in [0, {len(self.segments)}), got {i!r}", path=self.path)

    def block_count(self, i: int) -> int:
        return self.segments[i]["block_count"]

    def _check_block(self, i, k):
        if self._checked[i][k]:
            return
        stored, _, crc = self.block(i, k)
        start = int(self._starts[i][k])
        if crc32c(self.view[start : start + stored]) != crc:
            raise ChecksumError(
                f"segment {i} block {k}: CRC-32C mismatch", path=self.path, byte_offset=start, segment=i, block=k
            )
        with self._lock:
            self._checked[i][k] = 1

    def raw(self, i: int, start: int = 0, stop: int | None = None) -> memoryview:
        """Bytes ``[start, stop)`` of raw segment ``i``, a view into the map, every block it covers checked."""
        self._segment_index(i)
        seg = self.segments[i]
        if seg["codec"] != "raw":
            raise FormatError(f"segment {i} is {seg['codec']}, not raw", path=self.path, byte_offset=seg["offset"])
        length = seg["length"]
        stop = length if stop is None else stop
        if not 0 <= start <= stop <= length:
            raise IndexError(f"[{start}, {stop}) outside segment {i} of {length} bytes")
        if stop > start:
            for k in range(start // BLOCK_SIZE, (stop - 1) // BLOCK_SIZE + 1):
                self._check_block(i, k)
        return self.view[seg["offset"] + start : seg["offset"] + stop]

    def data(self, i: int) -> bytes | memoryview:
        """Segment ``i``'s data: a checked view for raw segments, the decompressed frames joined for zstd."""
        self._segment_index(i)
        seg = self.segments[i]
        if seg["codec"] == "raw":
            return self.raw(i)
        return b"".join(self.frame_data(i, k) for k in range(seg["block_count"]))

    def frame_data(self, i: int, k: int) -> bytes:
        """The decompressed frame ``k`` of zstd segment ``i``, its CRC and raw length checked."""
        self._segment_index(i)
        stored, raw_length, _ = self.block(i, k)
        self._check_block(i, k)
        start = int(self._starts[i][k])
        import zstandard

        try:
            out = zstandard.ZstdDecompressor().decompress(self.view[start : start + stored], max_output_size=raw_length)
        except zstandard.ZstdError as e:
            raise FormatError(f"segment {i} block {k}: bad zstd frame ({e})", path=self.path, byte_offset=start) from None
        if len(out) != raw_length:
            raise FormatError(
                f"segment {i} block {k}: expected {raw_length} bytes decompressed, got {len(out)}", path=self.path, byte_offset=start
            )
        return out

    def frames(self, i: int):
        """The checked zstd frames of segment ``i``, as ``(frame, raw_length)`` views."""
        self._segment_index(i)
        for k in range(self.block_count(i)):
            stored, raw_length, _ = self.block(i, k)
            self._check_block(i, k)
            start = int(self._starts[i][k])
            yield self.view[start : start + stored], raw_length

    def verify(self) -> None:
        """Check every block of every segment; raise at the first problem."""
        for i in range(len(self.segments)):
            for k in range(self.block_count(i)):
                self._check_block(i, k)

    def close(self) -> None:
        """Release the map; arrays still viewing it keep it alive until they go."""
        try:
            self.view.release()
            self.map.close()
        except BufferError:
            pass
