"""Packs: one package's compressed zip entries, cached by content key, and layers assembled from them."""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from pulumi_lambda_layers.atomic import atomic_file
from pulumi_lambda_layers.build.archive import HashingWriter as _Hashing
from pulumi_lambda_layers.build.archive import ZipResult, compressed
from pulumi_lambda_layers.build.cache import cache_dir
from pulumi_lambda_layers.build.rawzip import Entry, read_at, write_zip
from pulumi_lambda_layers.errors import BuildError
from pulumi_lambda_layers.errors import PackConflict as Conflict
from pulumi_lambda_layers.validate import Finding

# Bump when what a pack holds for a key changes: its entries, their compression, or the checks
# recorded with them (validate's binary checks).
PACK_FORMAT = 2  # 2: console scripts no longer packed (the compressor is in every key too)
_TRAILER = struct.Struct("<Q8s")  # index length, magic; the index (JSON) sits after the data
_MAGIC = b"PLLPACK1"

# What a file is checked with when it is packed: (zip path, file on disk) -> findings.
Check = Callable[[str, Path], list[Finding]]


@dataclass(frozen=True)
class Pack:
    """A package's entries (each with the offset of its data in the pack file) and their findings."""

    key: str
    path: Path
    entries: tuple[tuple[Entry, int], ...]
    findings: dict[str, list[Finding]]


def pack_path(key: str) -> Path:
    """Where the pack of a key lives in the cache (it may not exist yet)."""
    return cache_dir() / "packs" / key[:2] / f"{key}.pack"


def load(key: str) -> Pack | None:
    """The cached pack of key, if present and its data still matches the sha256 in its index."""
    path = pack_path(key)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(size - _TRAILER.size)
            index_len, magic = _TRAILER.unpack(f.read(_TRAILER.size))
            data_len = size - _TRAILER.size - index_len
            if magic != _MAGIC or data_len < 0:
                raise ValueError("not a pack")
            f.seek(data_len)
            index = json.loads(f.read(index_len))
            if index["key"] != key or _sha256_prefix(f, data_len) != index["data_sha256"]:
                raise ValueError("data does not match its index")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, struct.error):
        path.unlink(missing_ok=True)  # truncated or altered: never used, packed again
        return None
    entries = tuple((Entry(*row[:6]), row[6]) for row in index["entries"])
    findings = {name: [Finding(**f) for f in found] for name, found in index["findings"].items()}
    return Pack(key, path, entries, findings)


def create(key: str, files: Sequence[tuple[str, Path | str]], level: int, check: Check,
           path: Path | None = None) -> Pack:
    """Compress files (sorted zip paths, each a file or a symlink target) into the pack of key,
    in the cache or, for entries no other layer can reuse, at path."""
    path = path or pack_path(key)
    rows: list[tuple[Entry, int]] = []
    digest = hashlib.sha256()
    # The binary checks (pure Python, holding the GIL) run beside the compression (which does not).
    checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pll-check")
    checking = checker.submit(lambda: {rel: found for rel, full in files if isinstance(full, Path)
                                       for found in [check(rel, full)] if found})
    try:
        with atomic_file(path) as out:
            offset = 0
            for entry, chunks in compressed(files, level):
                rows.append((entry, offset))
                for chunk in chunks:
                    out.write(chunk)
                    digest.update(chunk)
                offset += entry.csize
            findings = checking.result()
            index = json.dumps({"key": key, "data_sha256": digest.hexdigest(),
                                "entries": [[*_fields(e), off] for e, off in rows],
                                "findings": {k: [asdict(f) for f in v] for k, v in findings.items()}},
                               separators=(",", ":")).encode()
            out.write(index)
            out.write(_TRAILER.pack(len(index), _MAGIC))
    finally:
        checker.shutdown(wait=True, cancel_futures=True)
    return Pack(key, path, tuple(rows), findings)


def assemble(packs: Sequence[Pack], output: Path) -> ZipResult:
    """Write the entries of all packs, in canonical (sorted) order, into output; no recompression.

    Raises Conflict when two packs hold the same path. Written atomically (tmp + rename).
    """
    located = sorted(((e.name.encode(), e, i, off) for i, p in enumerate(packs)
                      for e, off in p.entries), key=lambda row: row[0])
    for a, b in itertools.pairwise(located):
        if a[0] == b[0]:
            raise Conflict(f"{a[1].name} is in two packages")
    if not located:
        raise BuildError("package", "no files to pack",
                         fix="the build installed nothing, or exclude=/slim= removed every file")
    fds = [os.open(p.path, os.O_RDONLY) for p in packs]
    try:
        with atomic_file(output) as raw:
            out = _Hashing(raw)
            write_zip(out, ((e, read_at(fds[i], off, e.csize)) for _, e, i, off in located))
    finally:
        for f in fds:
            os.close(f)
    digest = out.digest.digest()
    return ZipResult(output, digest.hex(), base64.b64encode(digest).decode(), out.size,
                     sum(e.size for _, e, _, _ in located), len(located))


def checked(packs: Sequence[Pack]) -> dict[str, list[Finding]]:
    """Binary-check findings of every entry of the packs, for validate.inspect_zip(checked=...)."""
    out: dict[str, list[Finding]] = {}
    for p in packs:
        for e, _ in p.entries:
            out[e.name] = p.findings.get(e.name, [])
    return out


def _fields(e: Entry) -> list[object]:
    return [e.name, e.mode, e.method, e.crc, e.size, e.csize]


def _sha256_prefix(f: BinaryIO, length: int) -> str:
    f.seek(0)
    h = hashlib.sha256()
    while length > 0:
        chunk = f.read(min(1 << 20, length))
        if not chunk:
            raise ValueError("pack ends early")
        h.update(chunk)
        length -= len(chunk)
    return h.hexdigest()
