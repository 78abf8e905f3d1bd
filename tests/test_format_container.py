"""The .oic container (FORMAT.md): round trip, atomic writes, and every corruption caught."""

import os
import re
import struct
from pathlib import Path

import pytest

from oicore import format as fmt
from oicore._checksum import crc32c, crc32c_portable
from oicore.errors import ChecksumError, FormatError, UnsupportedVersionError

ROOT = Path(__file__).resolve().parents[1]


def write_small(path, payload=b"hello, open images" * 3):
    import zstandard

    with fmt.ContainerWriter(path) as w:
        raw = w.add_raw(payload)
        frames = [(zstandard.ZstdCompressor(level=3).compress(b"block %d " % k * 20), len(b"block %d " % k * 20))
                  for k in range(2)]
        z = w.add_frames(frames)
        w.finish({"tables": {"demo": {"raw": raw, "zstd": z}}})
    return payload


def test_crc32c_check_value_and_paths_agree():
    assert crc32c(b"123456789") == 0xE3069283
    data = os.urandom(10_000)
    for n in (0, 1, 7, 8, 9, 63, 64, 65, 9999):
        assert crc32c(data[:n]) == crc32c_portable(data[:n])
    assert crc32c(data[100:], crc32c(data[:100])) == crc32c(data)


def test_round_trip(tmp_path):
    p = tmp_path / "a.oic"
    payload = write_small(p)
    c = fmt.Container(p, verify=True)
    assert c.version == (fmt.MAJOR, fmt.MINOR)
    demo = c.directory["tables"]["demo"]
    assert bytes(c.raw(demo["raw"])) == payload
    assert bytes(c.raw(demo["raw"], 7, 18)) == payload[7:18]
    import zstandard

    frames = [zstandard.ZstdDecompressor().decompress(bytes(f)) for f, _ in c.frames(demo["zstd"])]
    assert frames == [b"block 0 " * 20, b"block 1 " * 20]
    assert os.path.getsize(p) % 64 == 0


def test_large_raw_segment_is_cut_into_1_mib_blocks(tmp_path):
    p = tmp_path / "big.oic"
    data = os.urandom(fmt.BLOCK_SIZE * 2 + 5)
    with fmt.ContainerWriter(p) as w:
        w.add_raw(data)
        w.finish({})
    c = fmt.Container(p)
    assert [c.block(0, k)[0] for k in range(c.block_count(0))] == [fmt.BLOCK_SIZE, fmt.BLOCK_SIZE, 5]
    assert bytes(c.raw(0, fmt.BLOCK_SIZE - 1, fmt.BLOCK_SIZE + 1)) == data[fmt.BLOCK_SIZE - 1 : fmt.BLOCK_SIZE + 1]
    assert c._checked[0] == bytearray([1, 1, 0])  # only the blocks touched were checked


def test_every_single_byte_change_is_caught(tmp_path):
    p = tmp_path / "golden.oic"
    write_small(p)
    good = p.read_bytes()
    bad = tmp_path / "bad.oic"
    for i in range(len(good)):
        for flip in (0x01, 0x80):
            damaged = bytearray(good)
            damaged[i] ^= flip
            bad.write_bytes(damaged)
            with pytest.raises(FormatError):
                fmt.Container(bad, verify=True)


def test_every_truncation_is_caught_at_open(tmp_path):
    p = tmp_path / "golden.oic"
    write_small(p)
    good = p.read_bytes()
    bad = tmp_path / "cut.oic"
    for n in range(len(good)):
        bad.write_bytes(good[:n])
        with pytest.raises(FormatError):
            fmt.Container(bad)


def test_newer_major_version_is_its_own_error(tmp_path):
    p = tmp_path / "v9.oic"
    write_small(p)
    data = bytearray(p.read_bytes())
    data[8:10] = struct.pack("<H", 9)
    data[60:64] = struct.pack("<I", crc32c(bytes(data[:60])))
    p.write_bytes(data)
    with pytest.raises(UnsupportedVersionError, match="major version 0, got 9"):
        fmt.Container(p)


def test_checksum_error_names_segment_block_and_offset(tmp_path):
    p = tmp_path / "a.oic"
    write_small(p)
    c = fmt.Container(p)
    off = c.segments[0]["offset"]
    c.close()
    data = bytearray(p.read_bytes())
    data[off + 3] ^= 0xFF
    p.write_bytes(data)
    c = fmt.Container(p)  # open checks only the header, footer and directory
    with pytest.raises(ChecksumError) as e:
        c.raw(0)
    assert (e.value.segment, e.value.block, e.value.byte_offset) == (0, 0, off)


def test_not_an_oic_file(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b"ImageID,Source,LabelName,Confidence\n" * 10)
    with pytest.raises(FormatError, match="not an .oic file"):
        fmt.Container(p)


def test_writer_is_atomic(tmp_path):
    p = tmp_path / "out.oic"
    with pytest.raises(RuntimeError):
        with fmt.ContainerWriter(p) as w:
            w.add_raw(b"x" * 1000)
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    write_small(p)
    before = p.read_bytes()
    with pytest.raises(FileExistsError, match="force"):
        fmt.ContainerWriter(p)
    assert p.read_bytes() == before
    with fmt.ContainerWriter(p, force=True) as w:
        w.finish({})
    assert p.read_bytes() != before
    assert [x.name for x in tmp_path.iterdir()] == ["out.oic"]


def test_format_md_matches_the_code():
    spec = (ROOT / "FORMAT.md").read_text()

    def hex_bytes(name):
        m = re.search(rf"`{name}` \| `([0-9A-F ]+)`", spec)
        assert m, name
        return bytes.fromhex(m.group(1))

    assert hex_bytes("magic") == fmt.MAGIC
    assert hex_bytes("end_magic") == fmt.END_MAGIC
    assert re.search(rf"\| 8 \| 2 \| `major` \| {fmt.MAJOR} \|", spec)
    assert re.search(rf"\| 10 \| 2 \| `minor` \| {fmt.MINOR} \|", spec)
    assert f"Spec version **{fmt.MAJOR}.{fmt.MINOR}" in spec
    assert "1 MiB (1,048,576)" in spec and fmt.BLOCK_SIZE == 1_048_576
    assert "multiple of 64 bytes" in spec and fmt.ALIGNMENT == 64
    assert "| Header              64 bytes |" in spec and fmt.HEADER_SIZE == 64
    assert "| Footer              64 bytes |" in spec and fmt.FOOTER_SIZE == 64
    assert "0xE3069283" in spec and crc32c(b"123456789") == 0xE3069283
