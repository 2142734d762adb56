"""Python sources: requirements resolved with uv, pinned requirements, uv.lock and poetry.lock."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from pulumi_lambda_layers.errors import ResolveError, SpecError
from pulumi_lambda_layers.runtimes import UNAME_MACHINE, Runtime
from pulumi_lambda_layers.sources import resolution_memo
from pulumi_lambda_layers.sources.credentials import redact
from pulumi_lambda_layers.sources.resolution_memo import Freshness
from pulumi_lambda_layers.spec import LayerSpec
from pulumi_lambda_layers.tools import uv_command

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
    # A direct-URL pin's credentials decide nothing about the files: hashed and listed masked,
    # so rotating a token is no new version. install_files keep them for this process's builds.
    content = [redact(p.line()) for p in pins]
    return content, {p.name: redact(p.version) for p in pins}, {"requirements.txt": text}


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




def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-30:])
