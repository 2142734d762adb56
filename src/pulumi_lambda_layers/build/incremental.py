"""Layers built package by package (Python, Node.js): only packages without a cached pack are built."""

from __future__ import annotations

import csv
import hashlib
import json
import posixpath
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pulumi_lambda_layers.build import npmtree, packs
from pulumi_lambda_layers.build.archive import ZipResult, collect
from pulumi_lambda_layers.build.local import (
    LocalBuilder,
    _proxy_env,
    check_install_scripts,
)
from pulumi_lambda_layers.build.rawzip import DEFLATE
from pulumi_lambda_layers.errors import NotSplittable, NpmUnsupported, PackConflict
from pulumi_lambda_layers.runtimes import NPM_CPU
from pulumi_lambda_layers.sources.fingerprint import Fingerprint
from pulumi_lambda_layers.spec import LayerSpec
from pulumi_lambda_layers.validate import Finding, check_binary

COMPRESS_LEVEL = 6  # the level make_zip uses, so both paths give the same bytes


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
    if spec.runtime.language == "nodejs":
        return _node(spec, fp, work, output, log)
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

        for name in missing:
            found[name] = packs.create(keys[name], groups[name], COMPRESS_LEVEL, _checker(spec))
            compressed += len(groups[name])
    stats = PackStats(tuple(sorted(set(lines) - set(missing))), tuple(missing), compressed)
    return _assemble([p for _, p in sorted(found.items()) if p is not None], output, stats)


def _node(spec: LayerSpec, fp: Fingerprint, work: Path, output: Path,
          log: Callable[[str], None]) -> Assembled:
    """A Node.js layer from one pack per installed lock entry plus the tree-wide files.

    Each lock entry path (node_modules/a, node_modules/a/node_modules/b) is its own pack: a nested
    copy is a separate install with its own version, and its path is part of its zip names. The
    tarballs of packages without a pack are fetched and unpacked here (npmtree), not by npm, whose
    start-up alone costs more than a one-package bump should.
    """
    lock_text = fp.install_files["package-lock.json"]
    # Install scripts never run in a local build (npm ci --ignore-scripts, and npmtree runs none),
    # so a scripted package's files are its tarball's, decided by its integrity like any other:
    # safe to pack. A build that runs them (Docker) is never packed; auto goes there on its own.
    check_install_scripts(spec, lock_text, log)
    try:
        units = npmtree.installed(json.loads(lock_text), NPM_CPU[spec.architecture])
    except NpmUnsupported as exc:
        raise NotSplittable(str(exc)) from None
    keys = {u.path: node_package_key(spec, u) for u in units}
    found = {path: packs.load(key) for path, key in keys.items()}
    missing = [u for u in units if found[u.path] is None]
    compressed = 0
    if missing:
        log(f"local: unpacking {len(missing)} npm packages for linux/"
            f"{NPM_CPU[spec.architecture]}/glibc")
        env = _proxy_env(spec)
        ca = str(spec.ca_bundle) if spec.ca_bundle else None
        roots = {u.path: work / "npm" / str(i) for i, u in enumerate(missing)}

        def fetch_and_unpack(u: npmtree.Unit) -> None:
            npmtree.unpack(u, npmtree.fetch(u, env, ca), roots[u.path] / "nodejs" / u.path)

        # Downloads wait on the network, not the CPU: fetched side by side.
        with ThreadPoolExecutor(max_workers=8, thread_name_prefix="pll-npm") as pool:
            try:
                list(pool.map(fetch_and_unpack, missing))
            except NpmUnsupported as exc:
                raise NotSplittable(str(exc)) from None
        for u in missing:
            files = collect(roots[u.path], spec.exclude, spec.slim)
            found[u.path] = packs.create(keys[u.path], files, COMPRESS_LEVEL, _checker(spec))
            compressed += len(files)
    ready = [found[u.path] for u in units]
    names = {e.name for p in ready if p is not None for e, _ in p.entries}
    tree = work / "npm-tree"
    try:
        npmtree.write_tree(lock_text, units, tree / "nodejs",
                           lambda rel: f"nodejs/{rel}" in names)
    except NpmUnsupported as exc:
        raise NotSplittable(str(exc)) from None
    tree_files = collect(tree, spec.exclude, spec.slim)
    # The hidden lockfile and .bin links depend on the whole tree: packed for this layer only.
    whole = packs.create("tree", tree_files, COMPRESS_LEVEL, _checker(spec), work / "tree.pack")
    done = {u.path for u in missing}
    stats = PackStats(tuple(u.path for u in units if u.path not in done),
                      tuple(u.path for u in missing), compressed + len(tree_files))
    return _assemble([p for p in ready if p is not None] + [whole], output, stats)


def _checker(spec: LayerSpec) -> packs.Check:
    """The binary checks recorded with a pack's files (what validate would find reading the zip)."""
    def check(rel: str, full: Path) -> list[Finding]:
        with open(full, "rb") as f:
            return check_binary(rel, f, spec.runtime, spec.architecture)
    return check


def _assemble(ready: list[packs.Pack], output: Path, stats: PackStats) -> Assembled:
    try:
        result = packs.assemble(ready, output)
    except PackConflict as exc:
        raise NotSplittable(str(exc)) from None
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
    from pulumi_lambda_layers.sources.credentials import redact

    # Credentials masked: a rotated token packs nothing again.
    return _key(spec, {"pin": redact(line), "index": [redact(o) for o in options],
                       "platform": spec.runtime.manylinux_platform(spec.architecture)})


def node_package_key(spec: LayerSpec, unit: npmtree.Unit) -> str:
    """What decides one npm package's packed entries: where it sits, its tarball (integrity), the
    bins npm makes executable in it, the target npm installs for, the packing."""
    meta = unit.meta
    return _key(spec, {"path": unit.path, "version": meta.get("version"),
                       "resolved": meta.get("resolved"), "integrity": meta.get("integrity"),
                       "bins": unit.bins, "npm": ["linux", NPM_CPU[spec.architecture], "glibc"],
                       "scripts": "ignored", "unpack": npmtree.UNPACK_FORMAT})


def _key(spec: LayerSpec, package: dict[str, object]) -> str:
    canonical = {
        "pack_format": packs.PACK_FORMAT, **package,
        "runtime": spec.runtime.id, "architecture": spec.architecture,
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
