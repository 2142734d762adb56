"""Layers built package by package (Python, Node.js): only packages without a cached pack are built."""

from __future__ import annotations

import contextvars
import csv
import hashlib
import itertools
import json
import posixpath
import re
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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
from pulumi_lambda_layers.errors import (
    BuildError,
    NoCompatibleWheel,
    NotSplittable,
    NpmUnsupported,
    PackConflict,
)
from pulumi_lambda_layers.runtimes import NPM_CPU
from pulumi_lambda_layers.sources.fingerprint import Fingerprint
from pulumi_lambda_layers.spec import LayerSpec
from pulumi_lambda_layers.validate import Finding, check_binary

if TYPE_CHECKING:
    from pulumi_lambda_layers.build.docker import DockerBuilder

COMPRESS_LEVEL = 6  # the level make_zip uses, so both paths give the same bytes


@dataclass(frozen=True)
class PackStats:
    """How a layer was assembled: packages whose pack was reused, and those packed now."""

    reused: tuple[str, ...]
    packed: tuple[str, ...]
    files_compressed: int
    docker: tuple[str, ...] = ()  # packages of the Docker path, now or for the pack reused:
    # installed by the build container, or (a sole pure-Python wheel) unpacked here for it


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
    return _python(spec, fp, work, output, log, local=True, docker=None)


def build_docker(spec: LayerSpec, fp: Fingerprint, work: Path, output: Path,
                 log: Callable[[str], None], docker: DockerBuilder) -> Assembled:
    """builder='docker', Python: the packages without a pack of this build image are installed
    in one container run (`pip --no-deps` of the locked subset), the rest come from the pack
    cache. NotSplittable: nothing written, the caller builds the whole layer instead."""
    return _python(spec, fp, work, output, log, local=False, docker=docker)


def build_mixed(spec: LayerSpec, fp: Fingerprint, work: Path, output: Path,
                log: Callable[[str], None], docker: DockerBuilder) -> Assembled:
    """builder='auto', Python: packages with a prebuilt wheel (or a pure-Python sdist) are
    installed here, the ones without (native sdists) in one container run; one layer of both."""
    return _python(spec, fp, work, output, log, local=True, docker=docker)


def _python(spec: LayerSpec, fp: Fingerprint, work: Path, output: Path,
            log: Callable[[str], None], *, local: bool, docker: DockerBuilder | None
            ) -> Assembled:
    options, lines = requirement_lines(fp.install_files["requirements.txt"])
    found: dict[str, packs.Pack | None] = {}
    todo = sorted(lines)
    here: dict[str, list[tuple[str, Path | str]]] = {}
    keys: dict[str, str] = {}
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pll-container")
    scope: Future[str] | None = None
    there: list[Future[_Packed]] = []

    def get_ready() -> Future[str]:
        # The Docker client, the image and the cache volume (made and prepared if new). Each
        # task in a copy of this context: the build's log channel, in the thread too.
        nonlocal scope
        assert docker is not None
        if scope is None:
            scope = pool.submit(contextvars.copy_context().run, docker.pack_scope, spec, log)
        return scope

    def to_container(names: list[str], wheel_less: bool = True) -> None:
        # The container for names, while the packages with wheels are installed here.
        assert docker is not None
        there.append(pool.submit(contextvars.copy_context().run, _from_container, spec, fp,
                                 options, lines, names, work / f"docker-{len(there)}", log,
                                 docker, get_ready(), wheel_less))

    try:
        if local:
            keys = {name: package_key(spec, options, lines[name]) for name in todo}
            found = {name: packs.load(keys[name]) for name in todo}
            todo = [name for name in todo if found[name] is None]
            if todo:
                here = _install_here(spec, fp, options, lines, todo, work, log,
                                     to_container if docker is not None else None)
        elif todo:
            to_container(todo, wheel_less=False)
        compressed = 0
        for name in sorted(here):
            found[name] = packs.create(keys[name], here[name], COMPRESS_LEVEL, _checker(spec))
            compressed += len(here[name])
        done = [f.result() for f in there]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    for d in done:
        found.update(d.found)
    packed = sorted([*here, *(n for d in done for n in d.packed)])
    stats = PackStats(tuple(sorted(set(lines) - set(packed))), tuple(packed),
                      compressed + sum(d.compressed for d in done),
                      tuple(sorted(n for d in done for n in d.found)))
    return _assemble([p for _, p in sorted(found.items()) if p is not None], output, stats)


def _text(options: list[str], lines: dict[str, str], names: list[str]) -> str:
    """The requirements text of names."""
    return "\n".join([*options, *(lines[n] for n in names)]) + "\n"


@dataclass(frozen=True)
class _Packed:
    """Packs of what the build container installs: every name asked, those packed now."""

    found: dict[str, packs.Pack]
    packed: list[str]
    compressed: int


def _from_container(spec: LayerSpec, fp: Fingerprint, options: list[str], lines: dict[str, str],
                    names: list[str], root: Path, log: Callable[[str], None],
                    docker: DockerBuilder, scope: Future[str], wheel_less: bool) -> _Packed:
    """The packs of names as the build container installs them: from the pack cache of this
    image and cache volume (scope: DockerBuilder.pack_scope), the missing ones installed in
    one container run into root (made here). Unless wheel_less (auto's native sdists), their
    wheels are fetched here first: a package whose one fitting file is a pure-Python wheel is
    unpacked here by uv from that file (the same files pip would write), the rest go to the
    container, which installs the fetched wheels without an index."""
    keys = {name: docker_package_key(spec, options, lines[name], scope.result())
            for name in names}
    loaded = {name: packs.load(keys[name]) for name in names}
    found = {name: p for name, p in loaded.items() if p is not None}
    todo = [name for name in names if name not in found]
    if found:
        log(f"docker: {len(found)} packages from the pack cache of this image and cache "
            f"volume: {', '.join(sorted(found))}")
    if not todo:
        return _Packed(found, [], 0)
    wheels = root.parent / f"{root.name}-wheels"
    fetched = None if wheel_less else docker.fetch_wheels(spec, _text(options, lines, todo),
                                                          wheels, log)
    groups = _pure_here(spec, fp, lines, fetched.pure() if fetched else [], wheels,
                        root.parent / f"{root.name}-pure", log)
    rest = [name for name in todo if name not in groups]
    if rest:
        root.mkdir()
        subset = Fingerprint(fp.content_hash, {n: fp.packages.get(n, "") for n in rest},
                             {"requirements.txt": _text(options, lines, rest)})
        log(f"docker: installing {len(rest)} of {len(lines)} packages in one container: "
            f"{', '.join(rest)}")
        docker.build(spec, subset, root, log, wheels=wheels if fetched else None, fetch=False)
        there = split_by_package(root, spec.runtime.layer_prefix, spec.exclude, spec.slim,
                                 pip_target=True)
        if set(there) != set(rest):
            raise NotSplittable(f"the container installed {sorted(there)}, asked for {rest}")
        groups.update(there)
    compressed = 0
    for name in todo:
        found[name] = packs.create(keys[name], groups[name], COMPRESS_LEVEL, _checker(spec))
        compressed += len(groups[name])
    return _Packed(found, todo, compressed)


def _pure_here(spec: LayerSpec, fp: Fingerprint, lines: dict[str, str], names: list[str],
               wheels: Path, root: Path, log: Callable[[str], None]
               ) -> dict[str, list[tuple[str, Path | str]]]:
    """names (each with one pure-Python wheel in the wheels folder) installed here by uv from
    those files alone, their files by package; {} (the container then installs them) if uv
    cannot (a Requires-Python of the wheel's own, say: pip would refuse it the same way)."""
    if not names:
        return {}
    log(f"docker: {', '.join(names)}: the one wheel for the target is pure Python "
        "(*-none-any): unpacked here, the files the image's pip would write")
    root.mkdir()
    text = "".join([f"--no-index\n--find-links {wheels}\n", *(lines[n] + "\n" for n in names)])
    subset = Fingerprint(fp.content_hash, {n: fp.packages.get(n, "") for n in names},
                         {"requirements.txt": text})
    try:
        LocalBuilder().build(spec, subset, root, log)
    except (NoCompatibleWheel, BuildError) as exc:
        log(f"docker: uv could not install them here ({str(exc).splitlines()[0]}): the "
            "container installs them")
        return {}
    groups = split_by_package(root, spec.runtime.layer_prefix, spec.exclude, spec.slim)
    if set(groups) != set(names):
        raise NotSplittable(f"installed {sorted(groups)}, asked for {names}")
    return groups


def _install_here(spec: LayerSpec, fp: Fingerprint, options: list[str], lines: dict[str, str],
                  names: list[str], work: Path, log: Callable[[str], None],
                  defer: Callable[[list[str]], None] | None
                  ) -> dict[str, list[tuple[str, Path | str]]]:
    """Install names with the local builder; their files by package. A package it cannot
    install (no wheel for the target, a native sdist) raises NoCompatibleWheel, or with defer,
    goes to the container: all such packages are found first (dry runs), and defer starts the
    container for them before the others are installed here."""
    for attempt in itertools.count():
        if not names:
            return {}
        root = work / f"layer-{attempt}"
        root.mkdir()
        subset = Fingerprint(fp.content_hash, {n: fp.packages.get(n, "") for n in names},
                             {"requirements.txt": _text(options, lines, names)})
        try:
            LocalBuilder().build(spec, subset, root, log)
        except NoCompatibleWheel as exc:
            if defer is None:
                raise
            # The local builder names the package it could not install (one per attempt);
            # unnamed, all that are left go to the container (right, only slower).
            named = _named(str(exc), names) or list(names)
            rest = [n for n in names if n not in named]
            if rest:
                named += LocalBuilder().wheel_less(spec, _text(options, lines, rest), log)
            log(f"auto: {exc}; building {', '.join(named)} in Docker, the rest here")
            # One container for all of them (a second only should an install here still name
            # another), running while the rest installs here.
            defer(named)
            names = [n for n in names if n not in named]
            continue
        groups = split_by_package(root, spec.runtime.layer_prefix, spec.exclude, spec.slim)
        if set(groups) != set(names):
            raise NotSplittable(f"installed {sorted(groups)}, asked for {names}")
        return groups
    raise AssertionError("unreachable")


def _named(message: str, names: list[str]) -> list[str]:
    """The names among names that message mentions (as words)."""
    said = {canonicalize_name(w) for w in re.findall(r"[A-Za-z0-9][A-Za-z0-9._-]*", message)}
    return [n for n in names if n in said]


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


def docker_package_key(spec: LayerSpec, options: list[str], line: str, scope: str) -> str:
    """What decides one package's entries installed by the build container: its pin, the target,
    the index, the packing, and the image and owner's cache volume (DockerBuilder.pack_scope)."""
    from pulumi_lambda_layers.sources.credentials import redact

    return _key(spec, {"pin": redact(line), "index": [redact(o) for o in options],
                       "docker": scope, "installer": "pip --target"}, builder="docker")


def _key(spec: LayerSpec, package: dict[str, object], builder: str = "local") -> str:
    canonical = {
        "pack_format": packs.PACK_FORMAT, **package,
        "runtime": spec.runtime.id, "architecture": spec.architecture,
        "prefix": spec.runtime.layer_prefix, "builder": builder,
        "exclude": sorted(spec.exclude), "slim": list(spec.slim), "level": COMPRESS_LEVEL,
        "compressor": DEFLATE,
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def split_by_package(root: Path, prefix: str, exclude: tuple[str, ...], slim: tuple[str, ...],
                     pip_target: bool = False) -> dict[str, list[tuple[str, Path | str]]]:
    """The files to pack under root, grouped by the package whose RECORD lists them.

    pip_target: root/prefix was filled by `pip install --target`, which installs into
    <home>/lib/python and then moves all of <home> into the target, so a RECORD row ../../X
    (console scripts: ../../bin/x) is the file X in the target (bin/ is never packed).
    """
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
            if pip_target and path.startswith("../../") and not path.startswith("../../../"):
                path = path.removeprefix("../../")
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
