"""Pure-Python sdists built into py3-none-any wheels here (uv build, isolated), kept by sdist sha256."""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    canonicalize_version,
    parse_sdist_filename,
    parse_wheel_filename,
)

from pulumi_lambda_layers.atomic import atomic_file, write_atomic
from pulumi_lambda_layers.build.index import (
    find_links,
    get,
    index_urls,
    links,
    option,
    pin,
    pure_wheel_name,
    with_credentials,
)
from pulumi_lambda_layers.errors import BuildError, NoCompatibleWheel
from pulumi_lambda_layers.log import Sink as Log
from pulumi_lambda_layers.sources.credentials import redact
from pulumi_lambda_layers.tools import uv_command

# 1980-01-01, the earliest time a zip can hold: the wheel's entries get it instead of "now", so
# building the same sdist with the same backend gives the same wheel bytes.
SOURCE_DATE_EPOCH = "315532800"
_NATIVE = "native.json"  # in a cache entry: the sdist is native (why), no wheel kept
# Sources only a compiler makes something of. An sdist that ships them is taken as native (Docker
# builds it) without a build here: a pure-Python sdist rarely carries them, and one whose C part
# is optional still builds right, with a compiler for the target, in the container.
_NATIVE_SOURCES = (".c", ".cc", ".cpp", ".cxx", ".pyx", ".rs", ".f", ".f90")
_NATIVE_FILES = ("Cargo.toml",)


@dataclass(frozen=True)
class Sdist:
    """One sdist file on an index: where it is and its sha256 (from the index, checked on download)."""

    filename: str
    url: str  # with the index's credentials, if it has any: never logged as it is
    sha256: str


def wheels_dir() -> Path:
    """Where built wheels are kept: <cache>/sdist-wheels/<sdist sha256>/<wheel>."""
    from pulumi_lambda_layers.build.cache import cache_dir

    return cache_dir() / "sdist-wheels"


def pure_wheel(line: str, options: list[str], env: Mapping[str, str], ca_bundle: str | None,
               log: Log) -> Path:
    """The py3-none-any wheel built from the sdist of a pinned requirement line (name==version,
    optional --hash=sha256:... of the sdist), from the cache when this sdist was built before.

    The sdist comes from the index the requirements' options (or uv's UV_* variables) name, with
    the credentials of its URL or ~/.netrc, like uv's own downloads. NoCompatibleWheel when the
    release is native: it publishes platform wheels, or the wheel built here is not
    py3-none-any; auto then builds in Docker."""
    name, version, hashes = _pin(line)
    for digest in hashes:  # a lock with hashes: the cache answers without asking the index
        if (found := _cached(name, version, digest, log)) is not None:
            return found
    sdist = _find_sdist(name, version, options, env, ca_bundle)
    if sdist.sha256:
        _check_lock_hashes(name, sdist, hashes)
        if (found := _cached(name, version, sdist.sha256, log)) is not None:
            return found
    with tempfile.TemporaryDirectory(prefix="pll-sdist-") as tmp:
        archive = Path(tmp) / sdist.filename
        digest = _download(sdist, archive, env, ca_bundle)
        if not sdist.sha256:  # an index without hashes: the downloaded bytes decide
            sdist = replace(sdist, sha256=digest)
            _check_lock_hashes(name, sdist, hashes)
            if (found := _cached(name, version, digest, log)) is not None:
                return found
        source = _native_source(archive)
        if source is not None:
            _native(name, version, sdist, f"ships {source}, native code a compiler makes")
        log(f"local: building {name} {version} from its sdist {sdist.filename} (isolated)")
        built = _build(archive, Path(tmp) / "out", options, env)
        return _keep(name, version, sdist, built)


def _check_lock_hashes(name: str, sdist: Sdist, hashes: frozenset[str]) -> None:
    if hashes and sdist.sha256 not in hashes:
        raise BuildError(f"sdist {name}", f"{sdist.filename} on the index has sha256 "
                         f"{sdist.sha256}, which is none of the lock's hashes for {name}",
                         fix="update the lock's --hash lines, or check which index serves it")


def _pin(line: str) -> tuple[str, str, frozenset[str]]:
    found = pin(line)
    if found is None:
        name = line.split(" --hash")[0].strip()
        raise NoCompatibleWheel(f"{name} has no prebuilt wheel and is not pinned to a version of "
                                "an index (only those are built from an sdist here)")
    return found.name, found.version, found.hashes


def _cached(name: str, version: str, digest: str, log: Log) -> Path | None:
    entry = wheels_dir() / digest
    native = entry / _NATIVE
    if native.is_file():
        verdict = json.loads(native.read_text())
        why = verdict.get("why") or f"builds into {verdict.get('wheel')}"
        raise NoCompatibleWheel(_native_reason(name, version, why))
    wheels = sorted(entry.glob("*.whl"))
    if not wheels:
        return None
    wheel = wheels[0]
    recorded = (entry / "sha256").read_text().strip() if (entry / "sha256").is_file() else ""
    if file_sha256(wheel) != recorded:
        shutil.rmtree(entry, ignore_errors=True)  # a damaged entry is built again, never used
        return None
    log(f"local: {name} {version}: reusing the wheel built from its sdist ({wheel.name})")
    return wheel


def _keep(name: str, version: str, sdist: Sdist, built: Path) -> Path:
    """Check the built wheel is pure; keep it (or the native verdict) under the sdist's sha256."""
    entry = wheels_dir() / sdist.sha256
    try:
        wheel_name, wheel_version, _build_tag, tags = parse_wheel_filename(built.name)
    except InvalidWheelFilename as exc:
        raise BuildError(f"sdist {name}", f"uv built {built.name}, not a wheel name ({exc})") \
            from None
    if wheel_name != name or canonicalize_version(wheel_version) != canonicalize_version(version):
        raise BuildError(f"sdist {name}", f"{sdist.filename} built {built.name}, which is "
                         f"not {name} {version}", fix="check the package's build configuration")
    pure = all(t.abi == "none" and t.platform == "any" and t.interpreter.startswith("py")
               for t in tags) and any(t.interpreter == "py3" for t in tags)
    if not pure or not _purelib(built):
        _native(name, version, sdist, f"builds into {built.name}")
    kept = entry / built.name
    with atomic_file(kept) as f, open(built, "rb") as src:
        shutil.copyfileobj(src, f)
    # Written last: an entry without it (a build cut short) is built again.
    write_atomic(entry / "sha256", (file_sha256(kept) + "\n").encode())
    return kept


def _purelib(wheel: Path) -> bool:
    """The WHEEL metadata agrees: Root-Is-Purelib true and only pure tags."""

    with zipfile.ZipFile(wheel) as zf:
        wheel_files = [n for n in zf.namelist()
                       if n.count("/") == 1 and n.endswith(".dist-info/WHEEL")]
        if len(wheel_files) != 1:
            return False
        text = zf.read(wheel_files[0]).decode("utf-8", "replace")
    fields = [line.partition(":") for line in text.splitlines()]
    purelib = [v.strip().lower() for k, _, v in fields if k.strip() == "Root-Is-Purelib"]
    tags = [v.strip() for k, _, v in fields if k.strip() == "Tag"]
    return purelib == ["true"] and bool(tags) and all(t.endswith("-none-any") for t in tags)


def _native(name: str, version: str, sdist: Sdist, why: str) -> NoReturn:
    """Record that this sdist is native (the next build asks no more), and say so."""
    write_atomic(wheels_dir() / sdist.sha256 / _NATIVE, json.dumps({"why": why}).encode())
    raise NoCompatibleWheel(_native_reason(name, version, why))


def _native_reason(name: str, version: str, why: str) -> str:
    return (f"{name} {version} is published as an sdist only and {why} (native code, not "
            "py3-none-any), which only a Lambda-compatible container builds for the target")


def _native_source(archive: Path) -> str | None:
    """The first compiled-language source the sdist ships (its path inside), if any."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
    else:
        with tarfile.open(archive) as tf:
            names = tf.getnames()
    return next((n for n in sorted(names) if n.lower().endswith(_NATIVE_SOURCES)
                 or posixpath.basename(n) in _NATIVE_FILES), None)


# --- finding and fetching the sdist ---------------------------------------------------------


def _find_sdist(name: str, version: str, options: list[str], env: Mapping[str, str],
                ca_bundle: str | None) -> Sdist:
    """The release's sdist on the first index that has the project (uv's order), or from a
    --find-links folder."""
    asked: list[str] = []
    for folder in find_links(options, env):
        if "://" not in folder and Path(folder).is_dir():
            for path in sorted(Path(folder).iterdir()):
                if _is_sdist_of(path.name, name, version):
                    return Sdist(path.name, path.resolve().as_uri(), file_sha256(path))
    for index in index_urls(options, env):
        asked.append(redact(index))
        page = get(f"{index}/{name}/", env, ca_bundle, missing_ok=True)
        if page is None:
            continue  # not on this index: uv (first-index) goes on to the next one
        listed = links(page.decode("utf-8", "replace"), f"{index}/{name}/",
                       keep=lambda fn: _release_of(fn, name, version))
        release = [(fn, url, frag) for fn, url, frag, _ in listed]
        native = [fn for fn, _, _ in release if fn.endswith(".whl") and not pure_wheel_name(fn)]
        if native:
            # Its author publishes platform wheels: it compiles, so it is not built here.
            raise NoCompatibleWheel(f"{name} {version} has platform wheels ({native[0]}, ...) "
                                    "but none for the target; it compiles native code")
        for filename, url, fragment in release:
            if _is_sdist_of(filename, name, version):
                digest = fragment.get("sha256", "")
                return Sdist(filename, with_credentials(url, index), digest)
        break  # the first index that has the project decides, as in uv
    raise NoCompatibleWheel(f"{name} {version} has neither a wheel for the target nor an sdist "
                            f"on {', '.join(asked) or 'the --find-links folders'}")


def _release_of(filename: str, name: str, version: str) -> bool:
    if filename.endswith(".whl"):
        try:
            n, v, _, _ = parse_wheel_filename(filename)
        except InvalidWheelFilename:
            return False
        return n == name and canonicalize_version(v) == canonicalize_version(version)
    return _is_sdist_of(filename, name, version)


def _is_sdist_of(filename: str, name: str, version: str) -> bool:
    try:
        n, v = parse_sdist_filename(filename)
    except InvalidSdistFilename:
        return False
    return n == name and canonicalize_version(v) == canonicalize_version(version)


def _download(sdist: Sdist, path: Path, env: Mapping[str, str], ca_bundle: str | None) -> str:
    data = get(sdist.url, env, ca_bundle) or b""
    digest = hashlib.sha256(data).hexdigest()
    if sdist.sha256 and digest != sdist.sha256:
        raise BuildError("sdist download", f"{sdist.filename} has sha256 {digest}, the index "
                         f"says {sdist.sha256}", fix="download again; if it stays, the index "
                         "serves another file than it lists")
    path.write_bytes(data)
    return digest


def _build(archive: Path, out: Path, options: list[str], env: Mapping[str, str]) -> Path:
    """`uv build --wheel` of the sdist, build isolation on, build requirements from the same
    indexes as the packages; the wheel's timestamps from SOURCE_DATE_EPOCH."""
    cmd = [*uv_command(), "build", "--wheel", "--out-dir", str(out), "--quiet"]
    for line in options:
        flag, value = option(line)
        flag = {"-i": "--index-url", "-f": "--find-links",
                "--trusted-host": "--allow-insecure-host"}.get(flag, flag)
        cmd += [flag, value] if value else [flag]
    if not env.get("UV_PYTHON_DOWNLOADS"):
        cmd.append("--no-python-downloads")
    cmd.append(str(archive))
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=archive.parent,
                          env={**env, "SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH})
    wheels = sorted(out.glob("*.whl"))
    if proc.returncode != 0 or len(wheels) != 1:
        raise BuildError(f"sdist {archive.name}", f"uv build --wheel exited with {proc.returncode}",
                         redact(proc.stderr)[-4000:],
                         fix="the package may need build tools or an index with its build "
                             "requirements; builder='docker' builds it in a container")
    return wheels[0]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
