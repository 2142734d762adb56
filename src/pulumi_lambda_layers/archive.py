"""Deterministic layer zips: sorted entries, fixed timestamps and modes, no bytecode, safe slimming."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import BuildError

FIXED_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: no clock leaks in

# Never packed: bytecode is rebuilt by the runtime and differs per machine; these dist-info files
# record the installer and local paths, so pip and uv would otherwise make different bytes.
_ALWAYS_DROPPED_DIRS = {"__pycache__"}
_ALWAYS_DROPPED_SUFFIXES = (".pyc", ".pyo")
_INSTALLER_FILES = {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}


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
    entries = _collect(root, tuple(exclude), tuple(slim))
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
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".pll-", suffix=".zip", dir=output.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    unzipped = 0
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as zf:
            for rel, full in entries:
                info = zipfile.ZipInfo(rel, FIXED_DATE)
                info.create_system = 3  # unix, so external_attr carries the mode
                if isinstance(full, str):  # a symlink, given as its target
                    target = full
                    info.external_attr = (stat.S_IFLNK | 0o777) << 16
                    info.compress_type = zipfile.ZIP_STORED
                    zf.writestr(info, target)
                    unzipped += len(target)
                    continue
                mode = 0o755 if os.access(full, os.X_OK) else 0o644
                info.external_attr = (stat.S_IFREG | mode) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(full, "rb") as src, zf.open(info, "w") as dst:
                    while chunk := src.read(1 << 20):
                        dst.write(chunk)
                        unzipped += len(chunk)
        digest = file_sha256(tmp)
        tmp.replace(output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return ZipResult(output, digest.hex(), base64.b64encode(digest).decode(),
                     output.stat().st_size, unzipped, len(entries))


def _collect(root: Path, exclude: tuple[str, ...],
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


def file_sha256(path: Path) -> bytes:
    """The sha256 digest of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.digest()
