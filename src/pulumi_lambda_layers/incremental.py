"""Python layers built package by package: only packages without a cached pack are installed and compressed."""

from __future__ import annotations

import csv
import hashlib
import json
import posixpath
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from . import packs
from .archive import ZipResult, collect
from .builders.local import LocalBuilder
from .fingerprint import Fingerprint
from .rawzip import DEFLATE
from .spec import LayerSpec
from .validate import Finding, check_binary

COMPRESS_LEVEL = 6  # the level make_zip uses, so both paths give the same bytes


class NotSplittable(Exception):
    """The installed files cannot be told apart per package (then the whole layer is packed at once)."""


@dataclass(frozen=True)
class PackStats:
    """How a layer was assembled: packages whose pack was reused, and those packed now."""

    reused: tuple[str, ...]
    packed: tuple[str, ...]
    files_compressed: int


@dataclass(frozen=True)
class Assembled:
    """The assembled zip, the binary-check findings of its entries, and what was reused."""

    zip: ZipResult
    checked: dict[str, list[Finding]]
    stats: PackStats


def build(spec: LayerSpec, fp: Fingerprint, work: Path, output: Path,
          log: Callable[[str], None]) -> Assembled:
    """Install the packages not packed yet (local builder), pack them, assemble the layer zip.

    Raises NoCompatibleWheel (from the local builder) and NotSplittable like a failed attempt:
    nothing is written to output then.
    """
    options, lines = requirement_lines(fp.install_files["requirements.txt"])
    keys = {name: package_key(spec, options, line) for name, line in lines.items()}
    found = {name: packs.load(key) for name, key in keys.items()}
    missing = sorted(name for name, p in found.items() if p is None)
    compressed = 0
    if missing:
        root = work / "layer"
        root.mkdir()
        text = "\n".join([*options, *(lines[n] for n in missing)]) + "\n"
        subset = Fingerprint(fp.content_hash, {n: fp.packages.get(n, "") for n in missing},
                             {"requirements.txt": text})
        LocalBuilder().build(spec, subset, root, log)
        groups = split_by_package(root, spec.runtime.layer_prefix, spec.exclude, spec.slim)
        if set(groups) != set(missing):
            raise NotSplittable(f"installed {sorted(groups)}, asked for {missing}")

        def check(rel: str, full: Path) -> list[Finding]:
            with open(full, "rb") as f:
                return check_binary(rel, f, spec.runtime, spec.architecture)

        for name in missing:
            found[name] = packs.create(keys[name], groups[name], COMPRESS_LEVEL, check)
            compressed += len(groups[name])
    ready = [p for _, p in sorted(found.items()) if p is not None]
    try:
        result = packs.assemble(ready, output)
    except packs.Conflict as exc:
        raise NotSplittable(str(exc)) from None
    stats = PackStats(tuple(sorted(set(lines) - set(missing))), tuple(missing), compressed)
    return Assembled(result, packs.checked(ready), stats)


def requirement_lines(text: str) -> tuple[list[str], dict[str, str]]:
    """(index options, {package name: its pinned line}) of the builder's requirements text."""
    options: list[str] = []
    lines: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        lines[canonicalize_name(Requirement(line.split(" --hash")[0]).name)] = line
    return options, lines


def package_key(spec: LayerSpec, options: list[str], line: str) -> str:
    """What decides one package's packed entries: its pin, the target, the index, the packing."""
    canonical = {
        "pack_format": packs.PACK_FORMAT, "pin": line, "index": options,
        "runtime": spec.runtime.id, "architecture": spec.architecture,
        "platform": spec.runtime.manylinux_platform(spec.architecture),
        "prefix": spec.runtime.layer_prefix, "builder": "local",
        "exclude": sorted(spec.exclude), "slim": list(spec.slim), "level": COMPRESS_LEVEL,
        "compressor": DEFLATE,
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def split_by_package(root: Path, prefix: str, exclude: tuple[str, ...],
                     slim: tuple[str, ...]) -> dict[str, list[tuple[str, Path | str]]]:
    """The files to pack under root, grouped by the package whose RECORD lists them."""
    site = root / prefix
    owners: dict[str, str] = {}
    for dist_info in sorted(site.glob("*.dist-info")):
        name = canonicalize_name(dist_info.name.removesuffix(".dist-info").rpartition("-")[0])
        record = dist_info / "RECORD"
        if not record.is_file():
            raise NotSplittable(f"{dist_info.name} has no RECORD")
        for row in csv.reader(record.read_text(encoding="utf-8").splitlines()):
            if not row:
                continue
            path = posixpath.normpath(row[0])
            if path.startswith(("../", "/")) or path == "..":
                raise NotSplittable(f"{dist_info.name} installs {row[0]} outside site-packages")
            if owners.setdefault(path, name) != name:
                raise NotSplittable(f"{path} is installed by {owners[path]} and {name}")
    groups: dict[str, list[tuple[str, Path | str]]] = {}
    for rel, full in collect(root, exclude, slim):
        owner = owners.get(rel.removeprefix(prefix + "/")) if rel.startswith(prefix + "/") else None
        if owner is None:
            raise NotSplittable(f"{rel} is in no package's RECORD")
        groups.setdefault(owner, []).append((rel, full))
    return groups
