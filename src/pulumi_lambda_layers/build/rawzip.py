"""Zips written from already-compressed entries, so a file is deflated once and copied into many layers.

Written by hand because the standard zipfile module cannot add an entry whose data is already
compressed: it always runs the bytes through its own compressor. The format written here is the
one zipfile writes for the same entries (local header with CRC and sizes filled in, no data
descriptor, fixed 1980 date, unix modes, ZIP64 records only where the counts need them), so a zip
assembled from cached entries is byte-identical to one packed from scratch.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, cast

import deflate

from pulumi_lambda_layers.errors import BuildError

STORED, DEFLATED = 0, 8
# The compressor is libdeflate: at zlib's level 6 it is about 3x faster than zlib and its output
# is smaller. Its bytes are part of every layer's CodeSha256, so DEFLATE (name and version) is an
# input of every content hash (fingerprint.fingerprint) and pack key (incremental.package_key).
# Kept equal to pyproject's pin (a unit test checks the installed version against it); read from
# package metadata, it would cost every start-up an importlib.metadata import.
DEFLATE = "libdeflate (deflate 0.9.0)"
_VERSION = 20  # "2.0": deflate, what zipfile writes for these entries
_UNIX = 3
_UTF8_FLAG = 0x800
_DOS_DATE = (0 << 9) | (1 << 5) | 1  # 1980-01-01, the earliest date a zip can hold
_DOS_TIME = 0
_ZIP64_LIMIT = (1 << 31) - 1  # zipfile's threshold for ZIP64 records, kept so the bytes match
_LIMIT_32 = 0xFFFFFFFF
_LIMIT_16 = 0xFFFF
_LOCAL = struct.Struct("<4s2B4HL2L2H")
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_END64 = struct.Struct("<4sQ2H2L4Q")
_END64_LOCATOR = struct.Struct("<4sLQL")


class Writer(Protocol):
    """Where a zip is written: an open binary file or anything with its write()."""

    def write(self, data: bytes, /) -> int: ...


@dataclass(frozen=True)
class Entry:
    """One zip member: its name, unix st_mode, how its data is stored, and the data's CRC and sizes."""

    name: str
    mode: int
    method: int
    crc: int
    size: int
    csize: int


def compress(name: str, mode: int, data: bytes, level: int) -> tuple[Entry, bytes]:
    """Raw-deflate data (zip method 8) with libdeflate; returns the entry and its bytes.

    libdeflate compresses whole buffers only (no streaming), so a file is held in memory while it
    is compressed: about twice its size, one big file at a time (archive.compressed's budget).
    """
    packed = deflate.deflate_compress(data, level)
    # libdeflate hands back a bytearray; it is only ever written out, so it passes as bytes
    # without a copy of what may be tens of megabytes.
    return Entry(name, mode, DEFLATED, zlib.crc32(data), len(data), len(packed)), cast(bytes, packed)


def stored(name: str, mode: int, data: bytes) -> tuple[Entry, bytes]:
    """An entry kept as it is (symlink targets)."""
    return Entry(name, mode, STORED, zlib.crc32(data), len(data), len(data)), data


def _name_and_flags(name: str) -> tuple[bytes, int]:
    try:
        return name.encode("ascii"), 0
    except UnicodeEncodeError:
        return name.encode("utf-8"), _UTF8_FLAG


def write_zip(out: Writer, entries: Iterable[tuple[Entry, Iterable[bytes]]]) -> int:
    """Write (entry, its stored bytes in chunks) in the order given to out.

    Returns the number of entries. Zips over 2 GiB are refused: Lambda's limit is 250 MB.
    """
    central: list[bytes] = []
    offset = 0
    for e, chunks in entries:
        if e.size > _ZIP64_LIMIT or e.csize > _ZIP64_LIMIT:
            raise BuildError("package", f"{e.name}: {e.size:,} bytes is too big for a layer "
                             "zip (2 GiB)", fix="leave it out (exclude=) or ship it another way; "
                             "Lambda's limit is 250 MB unzipped")
        name, flags = _name_and_flags(e.name)
        header = _LOCAL.pack(b"PK\x03\x04", _VERSION, 0, flags, e.method, _DOS_TIME, _DOS_DATE,
                             e.crc, e.csize, e.size, len(name), 0)
        out.write(header)
        out.write(name)
        written = 0
        for chunk in chunks:
            out.write(chunk)
            written += len(chunk)
        if written != e.csize:
            raise ValueError(f"{e.name}: {written} bytes of data for an entry of {e.csize}")
        central.append(_CENTRAL.pack(b"PK\x01\x02", _VERSION, _UNIX, _VERSION, 0, flags,
                                     e.method, _DOS_TIME, _DOS_DATE, e.crc, e.csize, e.size,
                                     len(name), 0, 0, 0, 0, (e.mode & 0xFFFF) << 16, offset)
                     + name)
        offset += len(header) + len(name) + e.csize
        if offset > _ZIP64_LIMIT:
            raise BuildError("package", f"the zip passes 2 GiB at {e.name}",
                             fix="Lambda's limit is 250 MB unzipped: split the layer or leave "
                                 "packages out (exclude=, slim=)")
    start = offset
    for record in central:
        out.write(record)
    size = sum(map(len, central))
    count = len(central)
    if count > _LIMIT_16 or start > _ZIP64_LIMIT or size > _ZIP64_LIMIT:
        out.write(_END64.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, count, count, size, start))
        out.write(_END64_LOCATOR.pack(b"PK\x06\x07", 0, start + size, 1))
        count, size, start = min(count, _LIMIT_16), min(size, _LIMIT_32), min(start, _LIMIT_32)
    out.write(_END.pack(b"PK\x05\x06", 0, 0, count, count, size, start, 0))
    return len(central)


def read_at(fd: int, offset: int, length: int, block: int = 1 << 20) -> Iterable[bytes]:
    """The bytes of fd at offset, in blocks (os.pread: no shared file position, safe in threads)."""
    end = offset + length
    while offset < end:
        chunk = os.pread(fd, min(block, end - offset), offset)
        if not chunk:
            raise ValueError(f"file ends {end - offset} bytes early")
        offset += len(chunk)
        yield chunk
