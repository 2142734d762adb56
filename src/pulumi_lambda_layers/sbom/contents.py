"""What a layer zip holds, package by package, read from the zip itself (the zip is the truth)."""

from __future__ import annotations

import base64
import json
import re
import shlex
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.sbom.licenses import License, node_license, python_license

# The same places build/cache.held_packages looks (top-level dist-info; any node_modules depth).
_DIST_INFO = re.compile(r"^(python/(?:lib/python[^/]+/site-packages/)?)([^/]+)\.dist-info/METADATA$")
_NODE_PACKAGE = re.compile(r"^nodejs/((?:node_modules/(?:@[^/]+/)?[^/]+/)+)package\.json$")
_NPM_HIDDEN_LOCK = "nodejs/node_modules/.package-lock.json"
_MAX_METADATA = 1 << 20


@dataclass(frozen=True)
class Package:
    """One installed package: named as the fingerprint names it (Python: the canonical name;
    Node.js: the node_modules path, `a>b` for b nested under a)."""

    key: str
    name: str  # as published (Python: METADATA Name; Node.js: package.json name)
    version: str
    ecosystem: str  # "pypi" | "npm"
    license: License
    path: str  # its metadata folder in the zip
    hashes: tuple[tuple[str, str], ...] = ()  # (algorithm, hex) of the artifact it came from
    candidate_hashes: tuple[str, ...] = ()  # the lock lists several artifacts; one was used

    @property
    def purl(self) -> str:
        from packageurl import PackageURL

        if self.ecosystem == "npm":
            scope, _, bare = self.name.rpartition("/")
            return str(PackageURL("npm", scope or None, bare, self.version).to_string())
        from packaging.utils import canonicalize_name

        return str(PackageURL("pypi", None, canonicalize_name(self.name), self.version).to_string())


@dataclass(frozen=True)
class LayerContents:
    """The facts an SBOM and the license policy need about one built layer."""

    runtime: str
    architecture: str
    zip_sha256: str
    code_sha256: str
    unzipped_size: int
    content_hash: str | None
    packages: tuple[Package, ...]
    largest: tuple[tuple[str, int], ...] = field(default=())

    def unknown_licenses(self) -> list[Package]:
        """Packages whose license is not an SPDX expression (none given, or free text)."""
        return [p for p in self.packages if not p.license.known]

    def by_license(self) -> dict[str, list[str]]:
        """license text -> the packages under it (sorted): the compact summary kept in state."""
        grouped: dict[str, list[str]] = {}
        for p in self.packages:
            grouped.setdefault(p.license.text, []).append(p.key)
        return {k: sorted(v) for k, v in sorted(grouped.items())}


def read_contents(zip_path: Path, runtime: str, language: str, architecture: str, *,
                  zip_sha256: str, code_sha256: str, unzipped_size: int,
                  content_hash: str | None = None,
                  install_files: Mapping[str, str] | None = None,
                  largest: tuple[tuple[str, int], ...] = ()) -> LayerContents:
    """The packages in zip_path with their licenses, and the artifact hashes the lock gave
    (install_files: what the build installed from; a Node.js layer's own .package-lock.json
    wins, being what npm installed)."""
    files = dict(install_files or {})
    with zipfile.ZipFile(zip_path) as zf:
        if language == "python":
            packages = _python_packages(zf, _requirement_hashes(files.get("requirements.txt", "")))
        else:
            hidden = _read_json(zf, _NPM_HIDDEN_LOCK)
            lock = hidden or _loads(files.get("package-lock.json", ""))
            packages = _node_packages(zf, _integrities(lock))
    return LayerContents(runtime, architecture, zip_sha256, code_sha256, unzipped_size,
                         content_hash, tuple(sorted(packages, key=lambda p: p.key)), largest)


def _python_packages(zf: zipfile.ZipFile, hashes: dict[str, list[str]]) -> list[Package]:
    from packaging.utils import canonicalize_name

    found = []
    for info in zf.infolist():
        match = _DIST_INFO.match(info.filename)
        if not match or info.file_size > _MAX_METADATA:
            continue
        headers = HeaderParser().parsestr(zf.read(info).decode("utf-8", "replace"))
        folder = match.group(2)
        name = headers.get("Name") or folder.rpartition("-")[0]
        version = headers.get("Version") or folder.rpartition("-")[2]
        key = canonicalize_name(name)
        license = python_license(headers.get("License-Expression"), headers.get("License"),
                                 headers.get_all("Classifier") or [])
        listed = sorted(hashes.get(key, []))
        found.append(Package(
            key, str(name), str(version), "pypi", license, match.group(1) + folder + ".dist-info",
            hashes=(("SHA-256", listed[0]),) if len(listed) == 1 else (),
            candidate_hashes=tuple(listed) if len(listed) > 1 else ()))
    return found


def _node_packages(zf: zipfile.ZipFile, integrity: dict[str, tuple[str, str]]) -> list[Package]:
    found = []
    for info in zf.infolist():
        match = _NODE_PACKAGE.match(info.filename)
        if not match or info.file_size > _MAX_METADATA:
            continue
        manifest = _read_json(zf, info.filename) or {}
        folder = match.group(1).rstrip("/")
        parts = [p.strip("/") for p in folder.split("node_modules/") if p.strip("/")]
        name = str(manifest.get("name") or parts[-1])
        version = str(manifest.get("version") or "(unknown)")
        known = integrity.get(folder)
        found.append(Package(">".join(parts), name, version, "npm", node_license(manifest),
                             "nodejs/" + folder, hashes=(known,) if known else ()))
    return found


def _requirement_hashes(text: str) -> dict[str, list[str]]:
    """canonical name -> the sha256 values the lock's --hash options give for it."""
    from packaging.utils import canonicalize_name

    hashes: dict[str, list[str]] = {}
    for line in re.sub(r"\\\r?\n", " ", text).splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        try:
            words = shlex.split(line)
        except ValueError:
            continue
        name = re.split(r"[\s=<>!~;\[@]", words[0], maxsplit=1)[0]
        values = [w.split("=", 1)[1] for w in words if w.startswith("--hash=")]
        values += [words[i + 1] for i, w in enumerate(words[:-1]) if w == "--hash"]
        for value in values:
            algorithm, _, digest = value.partition(":")
            if algorithm == "sha256" and re.fullmatch(r"[0-9a-f]{64}", digest):
                hashes.setdefault(canonicalize_name(name), []).append(digest)
    return hashes


def _integrities(lock: dict[str, Any] | None) -> dict[str, tuple[str, str]]:
    """node_modules path -> (algorithm, hex) from a package-lock's "integrity" (SRI) values."""
    found: dict[str, tuple[str, str]] = {}
    for path, entry in ((lock or {}).get("packages") or {}).items():
        sri = entry.get("integrity") if isinstance(entry, dict) else None
        if not isinstance(sri, str) or not path:
            continue
        # Several SRI values may be given; the strongest one is kept.
        best = sorted(sri.split(), key=lambda s: s.split("-", 1)[0])[-1]
        algorithm, _, value = best.partition("-")
        names = {"sha512": "SHA-512", "sha384": "SHA-384", "sha256": "SHA-256", "sha1": "SHA-1"}
        lengths = {"sha512": 64, "sha384": 48, "sha256": 32, "sha1": 20}
        try:
            digest = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        if algorithm in names and len(digest) == lengths[algorithm]:
            found[path] = (names[algorithm], digest.hex())
    return found


def _read_json(zf: zipfile.ZipFile, name: str) -> dict[str, Any] | None:
    try:
        info = zf.getinfo(name)
    except KeyError:
        return None
    if info.file_size > 64 * _MAX_METADATA:
        return None
    return _loads(zf.read(info).decode("utf-8", "replace"))


def _loads(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
