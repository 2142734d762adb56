"""Deterministic layer zips: sorted entries, fixed timestamps and modes, no bytecode, safe slimming."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import stat
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from pulumi_lambda_layers.atomic import atomic_file
from pulumi_lambda_layers.build.rawzip import Entry, compress, stored, write_zip
from pulumi_lambda_layers.errors import BuildError

# Never packed: bytecode is rebuilt by the runtime and differs per machine; these dist-info files
# record the installer and local paths, so pip and uv would otherwise make different bytes.
_ALWAYS_DROPPED_DIRS = {"__pycache__"}
_ALWAYS_DROPPED_SUFFIXES = (".pyc", ".pyo")
# uv_cache.json: uv's note in a wheel installed from a local file (a built sdist), with the time.
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json", "uv_cache.json"}


@dataclass(frozen=True)
class ZipResult:
    """What a packed zip is: where, its digests (Lambda's CodeSha256 is base64 of the sha256)."""

    path: Path
    sha256: str
    code_sha256: str
    zipped_size: int
    unzipped_size: int
    file_count: int


def is_excluded(rel: str, exclude: Iterable[str] = (), slim: Iterable[str] = ()) -> bool:
    """Whether a layer-relative posix path stays out of the zip."""
    parts = rel.split("/")
    if _ALWAYS_DROPPED_DIRS.intersection(parts[:-1]) or rel.endswith(_ALWAYS_DROPPED_SUFFIXES):
        return True
    if len(parts) >= 2 and parts[-2].endswith(".dist-info") and parts[-1] in _INSTALLER_FILES:
        return True
    if len(parts) >= 2 and parts[-2] == "site-packages" and parts[-1] == ".lock":
        return True  # uv's lock file for --target installs
    if len(parts) >= 3 and parts[-3] == "site-packages" and parts[-2] == "bin":
        # Console scripts of a --target install: their #! line names the build machine's Python
        # (so bytes would differ per machine) and site-packages/bin is on no PATH in Lambda.
        return True
    slim = set(slim)
    # Test folders inside a package (pandas/tests, numpy/_core/tests) are never imported at run
    # time; a top-level package called tests is left alone.
    if "strip_tests" in slim and any(p in ("tests", "test") for p in _inside_package(parts)):
        return True
    if "strip_type_stubs" in slim and rel.endswith(".pyi"):
        return True
    return any(fnmatch.fnmatchcase(rel, pattern) for pattern in exclude)


def _inside_package(parts: list[str]) -> list[str]:
    """The folder names of a path that lie below a top-level package (site-packages/pkg/...)."""
    if "site-packages" in parts:
        below = parts[parts.index("site-packages") + 1 : -1]
    elif "node_modules" in parts:
        below = parts[len(parts) - 1 - parts[::-1].index("node_modules") + 1 : -1]
    else:
        below = parts[1:-1]
    return below[1:]


def make_zip(root: Path, output: Path, exclude: Iterable[str] = (), slim: Iterable[str] = (),
             compresslevel: int = 6, links: Mapping[str, str] | None = None) -> ZipResult:
    """Pack root into output; same files in -> same bytes out. Written atomically (tmp + rename).

    links adds symlink entries (zip path -> target) that need not exist on disk.
    """
    if not root.is_dir():
        raise BuildError("package", f"{root} is not a directory")
    entries = collect(root, tuple(exclude), tuple(slim))
    if links:
        taken = {rel for rel, _ in entries}
        clash = sorted(taken.intersection(links))
        if clash:
            raise BuildError("package", f"{clash[0]} exists in {root} and is also asked for as a link",
                             fix="remove it from the source folder")
        entries = sorted([*entries, *links.items()], key=lambda e: e[0].encode())
    if not entries:
        raise BuildError("package", f"no files to pack in {root}",
                         fix="the build installed nothing, or exclude=/slim= removed every file")
    unzipped = 0

    def counted() -> Iterator[tuple[Entry, list[bytes]]]:
        nonlocal unzipped
        for entry, chunks in compressed(entries, compresslevel):
            unzipped += entry.size
            yield entry, chunks

    with atomic_file(output) as out:
        hashing = HashingWriter(out)
        write_zip(hashing, counted())
    digest = hashing.digest.digest()
    return ZipResult(output, digest.hex(), base64.b64encode(digest).decode(),
                     output.stat().st_size, unzipped, len(entries))


# Uncompressed bytes being compressed or waiting to be written at any time: bounds memory. A file
# bigger than this is compressed alone, so peak memory stays near twice the largest file.
_IN_FLIGHT = 64 << 20
_MAX_PENDING = 1024


def compressed(files: Sequence[tuple[str, Path | str]], level: int = 6,
               workers: int | None = None) -> Iterator[tuple[Entry, list[bytes]]]:
    """(entry, compressed chunks) of each (zip path, file or symlink target), in the order given.

    Files are deflated on every core at once (libdeflate releases the GIL); results come back in
    order.
    """
    workers = workers or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pll-zip") as pool:
        pending: deque[tuple[Future[tuple[Entry, list[bytes]]], int]] = deque()
        in_flight = 0
        for rel, full in files:
            cost = len(full) if isinstance(full, str) else _size(full)
            while pending and (in_flight + cost > _IN_FLIGHT or len(pending) >= _MAX_PENDING):
                future, done_cost = pending.popleft()
                in_flight -= done_cost
                yield future.result()
            pending.append((pool.submit(_compress_one, rel, full, level), cost))
            in_flight += cost
        while pending:
            yield pending.popleft()[0].result()


def _size(path: Path) -> int:
    return os.stat(path).st_size


def _compress_one(rel: str, full: Path | str, level: int) -> tuple[Entry, list[bytes]]:
    if isinstance(full, str):  # a symlink, given as its target
        entry, data = stored(rel, stat.S_IFLNK | 0o777, full.encode())
        return entry, [data]
    mode = stat.S_IFREG | (0o755 if os.access(full, os.X_OK) else 0o644)
    with open(full, "rb") as src:
        data = src.read()
    entry, packed = compress(rel, mode, data, level)
    return entry, [packed]


def collect(root: Path, exclude: tuple[str, ...],
             slim: tuple[str, ...]) -> list[tuple[str, Path | str]]:
    """(zip path, file) of what to pack, sorted; a symlink comes as (zip path, its target)."""
    out: list[tuple[str, Path | str]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        # Symlinked folders are packed as links, never followed (a loop or an escape otherwise).
        for name in [d for d in dirnames if (base / d).is_symlink()]:
            dirnames.remove(name)
            filenames.append(name)
        for name in filenames:
            full = base / name
            rel = full.relative_to(root).as_posix()
            if not is_excluded(rel, exclude, slim):
                out.append((rel, os.readlink(full) if full.is_symlink() else full))
    # Sort by the encoded name: the order zip readers and our hash see, independent of locale.
    return sorted(out, key=lambda e: e[0].encode())


class HashingWriter:
    """A write-only file that hashes what passes through it (the zip's sha256 in the same pass)."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.digest, self.size = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.raw.write(data)


def file_sha256(path: Path) -> bytes:
    """The sha256 digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()
