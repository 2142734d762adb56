"""Content hash and package manifest of a LayerSpec: what decides the layer's bytes, and nothing else."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pulumi_lambda_layers.errors import ResolveError, SpecError
from pulumi_lambda_layers.build.archive import is_excluded
from pulumi_lambda_layers.build.rawzip import DEFLATE
from pulumi_lambda_layers.runtimes import NPM_CPU, UNAME_MACHINE, Runtime
from pulumi_lambda_layers.spec import LayerSpec
from pulumi_lambda_layers.tools import npm_command, uv_command
from pulumi_lambda_layers.sources import resolution_memo
from pulumi_lambda_layers.sources.resolution_memo import Freshness

# Bump when the build or packaging changes what bytes a given spec produces.
FORMAT_VERSION = 2  # 2: console scripts (site-packages/bin) no longer packed

# Lines of a requirements file that are options, not requirements; index options are kept for the
# install but never hashed (they can carry credentials and do not decide which files get installed).
_INDEX_OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--trusted-host",
                  "--no-index")


@dataclass(frozen=True)
class Pin:
    """One exactly pinned package: name==version (or name @ url), with optional artifact hashes."""

    name: str
    version: str
    hashes: tuple[str, ...] = ()
    url: str = ""

    def line(self) -> str:
        req = f"{self.name} @ {self.url}" if self.url else f"{self.name}=={self.version}"
        return " ".join([req, *(f"--hash={h}" for h in self.hashes)])


@dataclass(frozen=True)
class Fingerprint:
    """content_hash plus what a builder installs from (install_files) and what changed (packages)."""

    content_hash: str
    packages: dict[str, str]
    install_files: dict[str, str] = field(default_factory=dict)
    canonical: dict[str, Any] = field(default_factory=dict)


def fingerprint(spec: LayerSpec, freshness: Freshness | None = None) -> Fingerprint:
    """Resolve the spec's dependency set for its target and hash the canonical form of it.

    freshness: how old a memoized resolution of unpinned requirements may be (default: one
    hour, resolution_memo.DEFAULT_MAX_AGE); locks are always read exactly and never resolved."""
    kind = spec.source.kind
    if kind == "source_dir":
        content, packages, files = _source_dir_content(spec)
    elif kind == "package_json":
        content, packages, files = _node_content(spec)
    else:
        content, packages, files = _python_content(spec, freshness)
    canonical = {
        "format": FORMAT_VERSION,
        "runtime": spec.runtime.id,
        "architecture": spec.architecture,
        "source_kind": kind,
        "content": content,
        "builder": spec.builder,
        # The image decides compilers and wheel tags, so it is part of the hash whenever it may run.
        "image": None if spec.builder == "local" or kind == "source_dir" else spec.build_image,
        "exclude": sorted(spec.exclude),
        "slim": list(spec.slim),
        "compressor": DEFLATE,  # another compressor (or version) makes other zip bytes
    }
    blob = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    return Fingerprint(hashlib.sha256(blob).hexdigest(), packages, files, canonical)


def package_changes(old: dict[str, str], new: dict[str, str]
                    ) -> list[tuple[str, str | None, str | None]]:
    """(name, old version or None, new version or None) of every package added, removed or
    changed between two manifests, by name."""
    return [(name, old.get(name), new.get(name)) for name in sorted(set(old) | set(new))
            if old.get(name) != new.get(name)]


# ---------------------------------------------------------------- Python

def target_environment(runtime: Runtime, machine: str) -> dict[str, str]:
    """PEP 508 marker environment of a Lambda Python runtime on an architecture (uname -m)."""
    return {
        "implementation_name": "cpython", "implementation_version": f"{runtime.version}.0",
        "os_name": "posix", "platform_machine": machine, "platform_release": "",
        "platform_system": "Linux", "platform_version": "", "python_full_version":
        f"{runtime.version}.0", "platform_python_implementation": "CPython",
        "python_version": runtime.version, "sys_platform": "linux", "extra": "",
    }


def _python_content(spec: LayerSpec, freshness: Freshness | None = None
                    ) -> tuple[Any, dict[str, str], dict[str, str]]:
    src = spec.source
    options: list[str] = []
    if src.kind == "requirements":
        options = check_requirements_file(src.path, "requirements")
        pins = parse_pinned(resolve_requirements(spec, freshness), "requirements", src.path, spec)
    elif src.lock_format == "uv.lock":
        pins = parse_pinned(_export_uv_lock(src.path), "lock", src.path, spec)
    elif src.lock_format == "poetry.lock":
        pins = _read_poetry_lock(src.path, spec)
    else:
        options = check_requirements_file(src.path, "lock")
        pins = parse_pinned(src.path.read_text(), "lock", src.path, spec)
    if not pins:
        raise SpecError(src.kind, f"{src.path} lists no package for {spec.runtime.id} "
                        f"{spec.architecture}", "check its environment markers")
    pins = sorted(pins, key=lambda p: p.name)
    text = "\n".join([*options, *(p.line() for p in pins)]) + "\n"
    content = [p.line() for p in pins]
    return content, {p.name: p.version for p in pins}, {"requirements.txt": text}


def check_requirements_file(path: Path, argument: str) -> list[str]:
    """Reject malformed lines with their number; return the index options to pass to installers."""
    options: list[str] = []
    for number, line in _logical_lines(path.read_text()):
        if line.startswith("-"):
            flag = line.split()[0].split("=")[0]
            if flag in _INDEX_OPTIONS:
                options.append(_anchor_find_links(line, flag, path.parent))
            elif flag in ("-r", "--requirement", "-c", "--constraint"):
                if argument == "lock":
                    raise SpecError(argument, f"{path.name} line {number}: {flag} in a lock",
                                    "a lock lists every package itself; inline the file")
            elif flag not in ("--hash",):
                raise SpecError(argument, f"{path.name} line {number}: unsupported option {flag!r}",
                                "only index options, -r and -c are allowed here")
            continue
        req_text = line.split(" --hash")[0].strip()
        try:
            Requirement(req_text)
        except InvalidRequirement as exc:
            raise SpecError(argument, f"{path.name} line {number}: {req_text!r} is not a valid "
                            f"requirement ({exc})", "write it like 'numpy==1.26.4' or "
                            "'requests>=2.31'") from None
    return options


def _anchor_find_links(line: str, flag: str, base: Path) -> str:
    """A --find-links folder given relative to its requirements file, made absolute: builders
    install from a copy of the file elsewhere (pip, too, reads it relative to the file)."""
    if flag not in ("--find-links", "-f"):
        return line
    value = line[len(flag):].lstrip(" =")
    if not value or "://" in value or Path(value).is_absolute() or not (base / value).exists():
        return line
    return f"{flag} {(base / value).resolve()}"


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) of non-blank lines, comments stripped, backslash continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = re.sub(r"(^|\s)#.*$", "", raw).rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line:
            out.append((start, " ".join(line.split())))
    if pending.strip():
        out.append((start, " ".join(pending.split())))
    return out


def resolve_requirements(spec: LayerSpec, freshness: Freshness | None = None) -> str:
    """Pin every package, transitive ones included, for the target platform with `uv pip compile`;
    the same inputs resolved less than freshness.max_age ago give the memoized pins, no network."""
    uv, *_ = uv_command()
    options = ["pip", "compile", "--quiet", "--no-header", "--no-annotate", "--python-platform",
               spec.runtime.manylinux_platform(spec.architecture), "--python-version",
               spec.runtime.version]
    if not os.environ.get("UV_PYTHON_DOWNLOADS"):
        # --python-version names the target only; an interpreter is needed just to build an
        # sdist's metadata, and any will do. Left on, uv first tries to download a managed
        # CPython of that version holding a machine-wide lock: where that download cannot
        # succeed it costs seconds per resolution and runs the layers of a program one at a time.
        options.append("--no-python-downloads")

    def run() -> str:
        # uv's own cache (its default dir, or UV_CACHE_DIR) stays on: a memo miss then mostly
        # revalidates index pages instead of downloading metadata again.
        proc = subprocess.run([uv, *options[:2], str(spec.source.path), *options[2:]],
                              capture_output=True, text=True, cwd=spec.source.path.parent)
        if proc.returncode != 0:
            raise ResolveError(f"requirements: could not resolve {spec.source.path.name} for "
                               f"{spec.runtime.id} {spec.architecture}:\n{_indent(proc.stderr)}")
        return proc.stdout

    return resolution_memo.resolve(spec.source.path, options, _tool_identity(uv), run, freshness)


def _tool_identity(path: str) -> str:
    """A binary by where it is and its size and mtime: another uv version is another identity."""
    try:
        st = os.stat(path)
    except OSError:
        return path
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


def parse_pinned(text: str, argument: str, path: Path, spec: LayerSpec) -> list[Pin]:
    """Pins of a fully pinned requirements text whose markers hold on the target."""
    env = target_environment(spec.runtime, UNAME_MACHINE[spec.architecture])
    pins: list[Pin] = []
    for number, line in _logical_lines(text):
        if line.startswith("-") and not line.startswith("--hash"):
            continue
        req_text, *hash_parts = line.split(" --hash")
        req = Requirement(req_text.strip())
        if req.marker is not None and not req.marker.evaluate(env):
            continue
        hashes = tuple(sorted(h.strip().lstrip("=").strip() for h in hash_parts))
        name = canonicalize_name(req.name)
        if req.url:
            pins.append(Pin(name, "@" + req.url, hashes, req.url))
            continue
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
            raise SpecError(argument, f"{path.name} line {number}: {req_text.strip()!r} is not "
                            "pinned to one version", "a lock pins every package with ==; use "
                            "requirements= for version ranges")
        pins.append(Pin(name, specs[0].version, hashes))
    return pins


def _export_uv_lock(lock: Path) -> str:
    if not (lock.parent / "pyproject.toml").is_file():
        raise SpecError("lock", f"{lock} has no pyproject.toml beside it",
                        "uv.lock is read together with its project's pyproject.toml")
    cmd = [*uv_command(), "export", "--locked", "--no-dev", "--no-emit-project", "--no-header",
           "--format", "requirements-txt", "--project", str(lock.parent), "--quiet"]
    memo = _uv_export_memo(lock, cmd)
    if memo is not None and memo.is_file():
        return memo.read_text()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        if "needs to be updated" in proc.stderr:
            raise SpecError("lock", f"{lock} does not match {lock.parent / 'pyproject.toml'}",
                            "run `uv lock` and commit the updated uv.lock")
        raise ResolveError(f"lock: uv could not read {lock}:\n{_indent(proc.stderr)}")
    if memo is not None:
        from pulumi_lambda_layers.build.cache import write_atomic

        write_atomic(memo, proc.stdout.encode())
    return proc.stdout


def _uv_export_memo(lock: Path, cmd: list[str]) -> Path | None:
    """Where the export of this exact uv.lock + pyproject.toml by this uv binary is kept.

    `uv export --locked` costs half a second (it re-resolves to check the lock), which a
    no-change preview should not pay: the same files and the same uv give the same text. Not for
    workspaces, whose member projects also decide whether the lock is current.
    """
    from pulumi_lambda_layers.build.cache import cache_dir

    text = lock.read_bytes()
    if b"\n[manifest]" in text:
        return None
    uv = Path(cmd[0])
    try:
        st = uv.stat()
    except OSError:
        return None
    h = hashlib.sha256()
    for part in (text, (lock.parent / "pyproject.toml").read_bytes(),
                 f"{uv.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode(), " ".join(cmd[1:]).encode()):
        h.update(hashlib.sha256(part).digest())
    return cache_dir() / "uv-export" / f"{h.hexdigest()}.txt"


def _read_poetry_lock(lock: Path, spec: LayerSpec) -> list[Pin]:
    """Main-group packages of a poetry.lock (formats 1.x and 2.x) whose markers hold on the target."""
    # Written by hand: poetry itself is a heavy dependency and its lock is plain TOML.
    try:
        data = tomllib.loads(lock.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SpecError("lock", f"{lock} is not valid TOML ({exc})", "regenerate it with "
                        "`poetry lock`") from None
    env = target_environment(spec.runtime, UNAME_MACHINE[spec.architecture])
    pins: list[Pin] = []
    for pkg in data.get("package", []):
        groups = pkg.get("groups") or [pkg.get("category", "main")]
        if "main" not in groups:
            continue
        marker = pkg.get("markers")
        if isinstance(marker, dict):
            marker = marker.get("main")
        if marker and not Marker(marker).evaluate(env):
            continue
        hashes = tuple(sorted(f["hash"] for f in pkg.get("files", []) if "hash" in f))
        pins.append(Pin(canonicalize_name(pkg["name"]), str(pkg["version"]), hashes))
    _check_poetry_lock_covers(lock, {p.name for p in pins}, data)
    return pins


def _check_poetry_lock_covers(lock: Path, locked: set[str], data: dict[str, Any]) -> None:
    pyproject = lock.parent / "pyproject.toml"
    if not pyproject.is_file():
        return
    project = tomllib.loads(pyproject.read_text())
    wanted = set()
    for dep in project.get("project", {}).get("dependencies", []):
        wanted.add(canonicalize_name(Requirement(dep).name))
    for dep in project.get("tool", {}).get("poetry", {}).get("dependencies", {}):
        if dep.lower() != "python":
            wanted.add(canonicalize_name(dep))
    all_locked = {canonicalize_name(p["name"]) for p in data.get("package", [])}
    missing = sorted(wanted - all_locked)
    if missing:
        raise SpecError("lock", f"{lock} does not match {pyproject}: {', '.join(missing)} "
                        "not locked", "run `poetry lock` and commit the updated poetry.lock")


# ---------------------------------------------------------------- Node.js

def _node_content(spec: LayerSpec) -> tuple[Any, dict[str, str], dict[str, str]]:
    manifest_path = spec.source.path
    try:
        manifest = json.loads(manifest_path.read_text())
    except json.JSONDecodeError as exc:
        raise SpecError("package_json", f"{manifest_path} is not valid JSON ({exc})") from None
    lock_path = manifest_path.with_name("package-lock.json")
    lock_text = lock_path.read_text() if lock_path.is_file() else _npm_resolve(manifest_path)
    lock = json.loads(lock_text)
    _check_lock_matches(manifest, lock, lock_path)
    entries = node_lock_entries(lock, spec.architecture)
    packages = {_node_display_name(path): meta["version"] for path, meta in entries.items()}
    content = {path: [meta["version"], meta.get("integrity", "")] for path, meta in entries.items()}
    files = {"package.json": manifest_path.read_text(), "package-lock.json": lock_text}
    return content, packages, files


def node_lock_entries(lock: dict[str, Any], arch: str) -> dict[str, dict[str, Any]]:
    """Installed (non-dev) package-lock entries that apply to linux/glibc on the architecture."""
    if "packages" not in lock:
        raise SpecError("package_json", "package-lock.json is lockfileVersion 1",
                        "regenerate it with npm 7 or newer (`npm install --package-lock-only`)")
    out: dict[str, dict[str, Any]] = {}
    for path, meta in lock["packages"].items():
        if not path or meta.get("dev") or meta.get("link") or "version" not in meta:
            continue
        if not _npm_platform_ok(meta, NPM_CPU[arch]):
            continue
        out[path] = meta
    return dict(sorted(out.items()))


def _npm_platform_ok(meta: dict[str, Any], cpu: str) -> bool:
    def allowed(values: list[str] | None, value: str) -> bool:
        if not values:
            return True
        if any(v == f"!{value}" for v in values):
            return False
        positives = [v for v in values if not v.startswith("!")]
        return not positives or value in positives
    return (allowed(meta.get("os"), "linux") and allowed(meta.get("cpu"), cpu)
            and allowed(meta.get("libc"), "glibc"))


def _node_display_name(path: str) -> str:
    parts = path.split("node_modules/")
    return ">".join(p.strip("/") for p in parts if p.strip("/"))


def _check_lock_matches(manifest: dict[str, Any], lock: dict[str, Any], lock_path: Path) -> None:
    root = lock.get("packages", {}).get("", {})
    wanted = {**manifest.get("dependencies", {}), **manifest.get("optionalDependencies", {})}
    locked = {**root.get("dependencies", {}), **root.get("optionalDependencies", {})}
    diffs = [f"{name} {rng!r} (lock has {locked.get(name)!r})"
             for name, rng in sorted(wanted.items()) if locked.get(name) != rng]
    diffs += [f"{name} (only in the lock)" for name in sorted(set(locked) - set(wanted))]
    if diffs:
        raise SpecError("package_json", f"{lock_path.name} is out of sync with package.json: "
                        + "; ".join(diffs), "run `npm install` and commit package-lock.json")


def _npm_resolve(manifest_path: Path) -> str:
    """Resolve a package.json without a lock into a package-lock.json text (no install)."""
    with tempfile.TemporaryDirectory(prefix="pll-npm-") as tmp:
        (Path(tmp) / "package.json").write_bytes(manifest_path.read_bytes())
        cmd = [*npm_command(), "install", "--package-lock-only", "--ignore-scripts", "--no-audit",
               "--no-fund", "--omit=dev"]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ResolveError(f"package_json: npm could not resolve {manifest_path}:\n"
                               f"{_indent(proc.stderr)}")
        return (Path(tmp) / "package-lock.json").read_text()


# ---------------------------------------------------------------- source_dir

def _source_dir_content(spec: LayerSpec) -> tuple[Any, dict[str, str], dict[str, str]]:
    root = spec.source.path
    digests: dict[str, str] = {}
    for rel, full in walk_files(root):
        if is_excluded(rel, spec.exclude, spec.slim):
            continue
        if full.is_symlink():
            digests[rel] = "link:" + os.readlink(full)
        else:
            mode = "x" if os.access(full, os.X_OK) else "-"
            digests[rel] = mode + hashlib.sha256(full.read_bytes()).hexdigest()
    return digests, dist_info_versions(root), {}


def walk_files(root: Path) -> list[tuple[str, Path]]:
    """(posix relative path, path) of every file and symlink below root, sorted, links not followed."""
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        for name in list(dirnames):
            if (base / name).is_symlink():
                filenames.append(name)
                dirnames.remove(name)
        for name in filenames:
            full = base / name
            out.append((full.relative_to(root).as_posix(), full))
    return sorted(out)


def dist_info_versions(root: Path) -> dict[str, str]:
    """name -> version of the Python distributions installed below root (from *.dist-info names)."""
    found: dict[str, str] = {}
    for info in root.rglob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        if version:
            found[canonicalize_name(name)] = version
    return dict(sorted(found.items()))


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-30:])
