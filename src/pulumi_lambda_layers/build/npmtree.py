"""What `npm ci --omit=dev --ignore-scripts --os --cpu --libc` installs, from the lock, unpacked.

npm itself costs most of a second to start and plan even for one package, so a one-package bump
that ran it would cost as much as a cold build. Instead the tree is read from package-lock.json
with npm's own rules (arborist's optional-set pruning, bin-links, pacote's unpacking, the hidden
lockfile), and only the tarballs of packages without a pack are fetched and unpacked here. Anything
these rules do not cover raises Unsupported, and the layer is then installed by npm as a whole;
tests compare the result with npm's byte for byte (tests/integration/test_node_packs.py).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.errors import NpmUnsupported as Unsupported

# Bump when unpack() or tree() writes other files or modes for the same tarballs (part of every
# Node pack key).
UNPACK_FORMAT = 1
_ALGORITHMS = ("sha512", "sha384", "sha256", "sha1")  # strongest first, as ssri picks


@dataclass(frozen=True)
class Unit:
    """One installed lock entry: its path (node_modules/a[/node_modules/b]) and its lock metadata."""

    path: str
    meta: dict[str, Any]

    @property
    def bins(self) -> dict[str, str]:
        """Its bin links (name -> file in the package), normalized as npm-normalize-package-bin."""
        return normalize_bins(self.meta.get("bin"), self.meta.get("name") or _name_of(self.path))


def installed(lock: dict[str, Any], cpu: str) -> list[Unit]:
    """The entries npm ci installs for linux/cpu/glibc without dev dependencies, in lock order."""
    nodes = {p: m for p, m in lock.get("packages", {}).items() if p}
    root = lock.get("packages", {}).get("", {})
    for path, meta in nodes.items():
        if meta.get("link") or meta.get("inBundle") and not meta.get("dev"):
            raise Unsupported(f"{path} is a link or a bundled dependency")
    edges_in: dict[str, list[tuple[str, str | None, bool]]] = {p: [] for p in nodes}
    edges_out: dict[str, list[tuple[str, str | None, bool]]] = {"": [], **{p: [] for p in nodes}}
    for path, meta in [("", root), *nodes.items()]:
        peer_meta = meta.get("peerDependenciesMeta", {})
        wanted = [(n, False) for n in meta.get("dependencies", {})]
        wanted += [(n, True) for n in meta.get("optionalDependencies", {})]
        wanted += [(n, bool(peer_meta.get(n, {}).get("optional"))) for n in
                   meta.get("peerDependencies", {})]
        if not path:
            wanted += [(n, False) for n in meta.get("devDependencies", {})]
        for name, optional in wanted:
            to = _resolve(nodes, path, name)
            edge = (path, to, optional)
            edges_out[path].append(edge)
            if to is not None:
                edges_in[to].append(edge)
    inert: set[str] = set()
    for path, meta in nodes.items():
        if meta.get("optional") and path not in inert:
            if not (_platform_ok(meta, cpu) and _engines_ok(meta)):
                inert |= _optional_set(path, edges_in, edges_out, inert)
        elif not meta.get("optional") and any(k in meta for k in ("os", "cpu", "libc")):
            # npm checks these against the build machine, not the target: npm decides.
            raise Unsupported(f"{path} is limited to some platforms and is not optional")
    units = [Unit(p, m) for p, m in nodes.items() if p not in inert and not m.get("dev")
             and "version" in m]
    for u in units:
        resolved = str(u.meta.get("resolved", ""))
        from_registry = not resolved and re.fullmatch(r"\d+\.\d+\.\d+[-+0-9A-Za-z.]*",
                                                      str(u.meta["version"]))
        if not u.meta.get("integrity") or not (resolved.startswith(("https://", "http://"))
                                               or from_registry):
            raise Unsupported(f"{u.path} has no registry tarball with an integrity in the lock")
    return units


def _resolve(nodes: dict[str, Any], frm: str, name: str) -> str | None:
    """Node's module resolution over lock paths: the nearest node_modules/name up the tree."""
    base = frm
    while True:
        candidate = f"{base}/node_modules/{name}" if base else f"node_modules/{name}"
        if candidate in nodes:
            return candidate
        if not base:
            return None
        cut = base.rfind("node_modules/")
        base = base[:cut].rstrip("/") if cut > 0 else ""


def _optional_set(node: str, edges_in: dict[str, list[tuple[str, str | None, bool]]],
                  edges_out: dict[str, list[tuple[str, str | None, bool]]],
                  inert: set[str]) -> set[str]:
    """arborist's optional-set.js + gather-dep-set.js: what goes when an optional node fails."""
    start = [node]
    for n in start:  # grows while iterated: up to the optional edges that lead here
        for frm, _, optional in edges_in.get(n, []):
            if not optional and frm and frm not in start:
                start.append(frm)
    first = set(start)

    def keep(frm: str, to: str | None) -> bool:
        return to not in first and frm not in inert

    deps = list(start)
    for n in deps:
        for frm, to, _ in edges_out.get(n, []):
            if to is not None and keep(frm, to) and to not in deps:
                deps.append(to)
    found = set(deps)
    changed = True
    while changed and found:
        changed = False
        for dep in list(found):
            if any(frm not in found and keep(frm, to) for frm, to, _ in edges_in.get(dep, [])):
                found.discard(dep)
                changed = True
    return found


def _platform_ok(meta: dict[str, Any], cpu: str) -> bool:
    """npm-install-checks' checkPlatform for os=linux, the target cpu, libc=glibc."""
    def ok(value: str, values: Any) -> bool:
        values = [values] if isinstance(values, str) else list(values or [])
        if not values or values == ["any"]:
            return True
        if f"!{value}" in values:
            return False
        positives = [v for v in values if not v.startswith("!")]
        return not positives or value in positives
    return ok("linux", meta.get("os")) and ok(cpu, meta.get("cpu")) and ok("glibc", meta.get("libc"))


def _engines_ok(meta: dict[str, Any]) -> bool:
    """checkEngine: an optional package whose engines the build machine's node/npm miss is dropped."""
    engines = meta.get("engines") or {}
    if not isinstance(engines, dict):
        return True
    checks = [(r, tool) for tool, r in engines.items() if tool in ("node", "npm")]
    return all(satisfies(_tool_version(tool), r) for r, tool in checks)


@functools.cache
def _tool_version(tool: str) -> str:
    from pulumi_lambda_layers.tools import npm_command

    npm = Path(npm_command()[0]).resolve()
    if tool == "npm":
        about = npm.parent.parent / "package.json"  # .../npm/bin/npm-cli.js -> .../npm/package.json
        try:
            return str(json.loads(about.read_text())["version"])
        except (OSError, ValueError, KeyError):
            raise Unsupported("cannot tell npm's version") from None
    node = shutil.which("node")  # the interpreter npm's #! line finds
    if not node:
        raise Unsupported("node is not on PATH")
    return subprocess.run([node, "--version"], capture_output=True, text=True,
                          check=True).stdout.strip().lstrip("v")


# ------------------------------------------------------------- npm's semver ranges (the subset)

_PART = r"(?:0|[1-9]\d*|[xX*])"
_PARTIAL = re.compile(rf"^v?({_PART})(?:\.({_PART})(?:\.({_PART})(?:-[0-9A-Za-z.-]+)?)?)?$")


def satisfies(version: str, spec: str) -> bool:
    """Whether a release version (no prerelease) is in an npm range; Unsupported if unparsable."""
    parsed = _PARTIAL.match(version)
    if not parsed or not all(p and p.isdigit() for p in parsed.groups()):
        raise Unsupported(f"version {version!r}")
    v = tuple(int(p) for p in parsed.groups())
    return any(all(_compare(v, op, bound) for op, bound in _comparators(alt))
               for alt in spec.split("||"))


def _comparators(text: str) -> list[tuple[str, tuple[int, int, int]]]:
    text = re.sub(r"(<=|>=|<|>|=|\^|~>?)\s+", r"\1", text.strip())
    hyphen = re.fullmatch(r"(\S+)\s+-\s+(\S+)", text)
    if hyphen:
        low, high = hyphen.groups()
        return [*_expand(">=", low), *_expand("<=", high)]
    out: list[tuple[str, tuple[int, int, int]]] = []
    for token in text.split():
        m = re.fullmatch(r"(<=|>=|<|>|=|\^|~>?)?(.*)", token)
        assert m is not None
        out += _expand(m.group(1) or "", m.group(2))
    return out


def _expand(op: str, partial: str) -> list[tuple[str, tuple[int, int, int]]]:
    m = _PARTIAL.match(partial) if partial not in ("", "*", "x", "X") else None
    if m is None:
        if partial in ("", "*", "x", "X"):
            return []
        raise Unsupported(f"range part {partial!r}")
    raw = [p if p is not None and p.isdigit() else None for p in m.groups()]
    given = len([p for p in raw if p is not None])
    if None in raw[:given]:
        raise Unsupported(f"range part {partial!r}")
    ma, mi, pa = (int(p) if p is not None else 0 for p in raw)
    low = (ma, mi, pa)
    if given == 0:
        return []
    up = (ma + 1, 0, 0) if given == 1 else (ma, mi + 1, 0)  # the bound of an x-range
    if op in ("", "="):
        return [("=", low)] if given == 3 else [(">=", low), ("<", up)]
    if op == "^":
        if given == 3:
            up = (ma + 1, 0, 0) if ma else (0, mi + 1, 0) if mi else (0, 0, pa + 1)
        elif given == 2 and ma == 0:
            up = (0, mi + 1, 0)
        return [(">=", low), ("<", up)]
    if op in ("~", "~>"):
        return [(">=", low), ("<", (ma + 1, 0, 0) if given == 1 else (ma, mi + 1, 0))]
    if given == 3:
        return [(op, low)]
    if op == ">":
        return [(">=", up)]
    if op == "<=":
        return [("<", up)]
    return [(op, low)]  # >= and < of a partial: its lowest version


def _compare(v: tuple[int, ...], op: str, bound: tuple[int, int, int]) -> bool:
    return {"=": v == bound, ">=": v >= bound, ">": v > bound, "<=": v <= bound,
            "<": v < bound}[op]


# ------------------------------------------------------------- bins and the tree-wide files

def normalize_bins(bin_field: Any, name: str) -> dict[str, str]:
    """npm-normalize-package-bin: {link name: file in the package}."""
    if isinstance(bin_field, str):
        bin_field = {name.rsplit("/", 1)[-1]: bin_field} if name else {}
    elif isinstance(bin_field, list):
        bin_field = {posixpath.basename(b): b for b in bin_field if isinstance(b, str)}
    elif not isinstance(bin_field, dict):
        return {}
    out: dict[str, str] = {}
    for key, target in bin_field.items():
        base = posixpath.basename(re.sub(r"[\\:]", "/", key))
        if not isinstance(target, str) or base in ("", ".", ".."):
            continue
        clean = posixpath.normpath("/" + target.replace("\\", "/").lstrip("/"))[1:]
        if clean:
            out[base] = clean
    return out


def bin_links(units: list[Unit]) -> dict[str, tuple[str, str]]:
    """{link path below nodejs/: (its target, the file it makes executable)} as bin-links makes them."""
    links: dict[str, tuple[str, str]] = {}
    for u in sorted(units, key=lambda u: u.path):
        parent = posixpath.dirname(u.path)
        modules = parent if posixpath.basename(parent) == "node_modules" else posixpath.dirname(parent)
        for name, target in u.bins.items():
            link = f"{modules}/.bin/{name}"
            if link in links:
                # npm keeps the first by a locale-aware sort of paths; not modelled here.
                raise Unsupported(f"two packages link {link}")
            full = f"{u.path}/{target}"
            links[link] = (posixpath.relpath(full, posixpath.dirname(link)), full)
    return links


def hidden_lockfile(lock_text: str, units: list[Unit]) -> str:
    """node_modules/.package-lock.json as npm writes it after installing units from this lock."""
    lock = json.loads(lock_text)
    if json.dumps(lock, indent=2, ensure_ascii=False) + "\n" != lock_text:
        # npm keeps a lock's own indentation and line endings; only npm's default is modelled.
        raise Unsupported("package-lock.json is not in npm's default formatting")
    head = {k: lock[k] for k in ("name", "version") if k in lock}
    data = {**head, "lockfileVersion": 3, "requires": True,
            "packages": {u.path: u.meta for u in units}}
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def write_tree(lock_text: str, units: list[Unit], nodejs: Path,
               present: Callable[[str], bool]) -> None:
    """Write the files that depend on the whole tree (hidden lockfile, .bin links) below nodejs/;
    present(path below nodejs/) says whether a bin's file is in the layer."""
    hidden = nodejs / "node_modules" / ".package-lock.json"
    hidden.parent.mkdir(parents=True, exist_ok=True)
    hidden.write_text(hidden_lockfile(lock_text, units), encoding="utf-8")
    for link, (target, full) in bin_links(units).items():
        if not present(full):
            # npm skips a bin whose file is missing, but an excluded file was there for npm.
            raise Unsupported(f"{link}: {full} is not in the layer")
        where = nodejs / link
        where.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, where)


# ------------------------------------------------------------- tarballs

def fetch(unit: Unit, env: dict[str, str], ca_bundle: str | None) -> bytes:
    """The unit's tarball from npm's cache (content-addressed by integrity) or its resolved URL,
    checked against the lock's integrity."""
    # Imported here: a layer whose packages are all packed never downloads or unpacks.
    import ssl
    import urllib.request

    algorithm, digest = _strongest(unit.meta["integrity"])
    cache = Path(env.get("npm_config_cache") or env.get("NPM_CONFIG_CACHE")
                 or Path.home() / ".npm")
    hexed = digest.hex()
    cached = cache / "_cacache" / "content-v2" / algorithm / hexed[:2] / hexed[2:4] / hexed[4:]
    try:
        data = cached.read_bytes()
        if hashlib.new(algorithm, data).digest() == digest:
            return data
    except OSError:
        pass
    url = unit.meta.get("resolved") or _registry_url(unit, env)
    proxies = {k.lower().removesuffix("_proxy"): v for k, v in env.items()
               if k.lower() in ("http_proxy", "https_proxy")}
    context = ssl.create_default_context()
    if ca_bundle:
        context.load_verify_locations(ca_bundle)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler(proxies),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(url, timeout=60) as response:
            data = bytes(response.read())
    except OSError as exc:
        raise Unsupported(f"could not download {url} ({exc})") from None
    if hashlib.new(algorithm, data).digest() != digest:
        raise Unsupported(f"{url} does not match its integrity in the lock")
    return data


def _registry_url(unit: Unit, env: dict[str, str]) -> str:
    """Where npm fetches a registry package whose lock has no resolved URL (the user's npmrc
    omit-lockfile-registry-resolved): the registry of its scope, else the default registry."""
    name = unit.meta.get("name") or _name_of(unit.path)
    settings: dict[str, str] = {}
    try:
        for line in (Path.home() / ".npmrc").read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.lstrip().startswith((";", "#")):
                settings[key.strip()] = value.strip()
    except OSError:
        pass
    scope = name.split("/")[0] if name.startswith("@") else ""
    registry = (settings.get(f"{scope}:registry") if scope else None) or env.get(
        "npm_config_registry") or env.get("NPM_CONFIG_REGISTRY") or settings.get(
        "registry") or "https://registry.npmjs.org/"
    return f"{registry.rstrip('/')}/{name}/-/{name.rsplit('/', 1)[-1]}-{unit.meta['version']}.tgz"


def _strongest(integrity: str) -> tuple[str, bytes]:
    found = dict(part.split("-", 1) for part in integrity.split() if "-" in part)
    for algorithm in _ALGORITHMS:
        if algorithm in found:
            return algorithm, base64.b64decode(found[algorithm].split("?")[0])
    raise Unsupported(f"integrity {integrity[:20]}... uses no known algorithm")


def unpack(unit: Unit, data: bytes, dest: Path) -> None:
    """Unpack a tarball into dest as pacote does for npm ci, then fix its bins as bin-links does."""
    import io
    import tarfile

    bins = set(unit.bins.values())
    seen_ignores: set[str] = set()
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            if not member.isreg():
                continue  # directories come with their files; links are never unpacked
            name = member.name
            base = posixpath.basename(name)
            if base == ".npmignore":
                seen_ignores.add(name)
            elif base == ".gitignore":  # npm pack treats .gitignore as .npmignore
                name = name[: -len(".gitignore")] + ".npmignore"
                if name in seen_ignores:
                    continue
            parts = [p for p in name.lstrip("/").split("/") if p not in ("", ".")]
            if ".." in parts or len(parts) < 2:
                continue  # node-tar refuses paths that climb out; strip: 1 drops the top folder
            rel = "/".join(parts[1:])
            target = dest / rel
            source = tar.extractfile(member)
            if source is None:
                continue
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.unlink(missing_ok=True)
                target.write_bytes(source.read())
            except (NotADirectoryError, IsADirectoryError, FileExistsError):
                raise Unsupported(f"{unit.path}: {rel} is both a file and a folder") from None
            # pacote: (mode | fmode 0o666) & ~umask | 0o600, +x for package bins; a 022 umask
            # is assumed (npm's default), so what is executable is what the tarball says.
            exe = 0o111 if rel in bins else 0
            os.chmod(target, ((member.mode | 0o666) & ~0o022) | 0o600 | exe)
    for rel in sorted(bins):
        _fix_bin(dest / rel)


def _fix_bin(path: Path) -> None:
    """bin-links' fix-bin: executable (0o777 & ~umask), a CRLF #! line made LF."""
    if not path.is_file():
        return  # bin-links skips a bin whose file the package lacks
    os.chmod(path, 0o755)
    raw = path.read_bytes()
    head = raw[:2048].decode("utf-8", errors="replace")
    if raw[:2] == b"#!" and re.match(r"#![^\n]+\r\n", head):
        text = raw.decode("utf-8", errors="replace")
        path.write_bytes(re.sub(r"^(#![^\n]+)\r\n", r"\1\n", text, count=1).encode("utf-8"))


def _name_of(path: str) -> str:
    return path.rsplit("node_modules/", 1)[-1]
