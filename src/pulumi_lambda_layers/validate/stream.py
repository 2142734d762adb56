"""Reading zip members: a seekable lazy view for pyelftools, and what makes an entry unreadable."""

from __future__ import annotations

import io
import zipfile
import zlib
from collections import OrderedDict
from typing import IO, Any

# Encrypted members, unsupported compression or a damaged entry: Lambda cannot read them either.
UNREADABLE = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)

_BLOCK = 64 * 1024
_CACHED_BLOCKS = 128  # 8 MiB per ELF member, however big the file is


class MemberStream(io.RawIOBase):
    """Seekable read-only view of a zip member: decompresses lazily and caches recent blocks.

    pyelftools seeks all over an ELF (header at the start, section table at the end, version
    tables near the start again); reading the whole member into memory would cost as much as the
    file, which for CUDA libraries is gigabytes.
    """

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        super().__init__()
        self._zf = zf
        self._info = info
        self._size = info.file_size
        self._pos = 0
        self._raw: IO[bytes] | None = None
        self._raw_pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        wanted = min(len(out), self._size - self._pos)
        done = 0
        while done < wanted:
            index, start = divmod(self._pos, _BLOCK)
            chunk = self._block(index)[start:start + wanted - done]
            if not chunk:
                break
            out[done:done + len(chunk)] = chunk
            done += len(chunk)
            self._pos += len(chunk)
        return done

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self._blocks.clear()
        super().close()

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        target = index * _BLOCK
        if self._raw is None or self._raw_pos > target:
            # Deflate streams cannot seek backwards: start over, which is cheap near the start.
            if self._raw is not None:
                self._raw.close()
            self._raw = self._zf.open(self._info)
            self._raw_pos = 0
        raw = self._raw
        while True:
            current = self._raw_pos // _BLOCK
            data = raw.read(_BLOCK)
            if not data:
                return b""
            self._raw_pos += len(data)
            # Blocks passed on the way are kept too: the string table sits just before the
            # section headers, so the tail of the file is read again right after.
            self._blocks[current] = data
            while len(self._blocks) > _CACHED_BLOCKS:
                self._blocks.popitem(last=False)
            if current == index:
                return data
