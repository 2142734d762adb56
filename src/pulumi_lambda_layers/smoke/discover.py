"""What a smoke test imports from a layer zip: its top-level Python modules or Node.js packages."""

from __future__ import annotations

import json
import posixpath
import re
import zipfile
from pathlib import Path

from pulumi_lambda_layers.runtimes import Runtime

# Importing these would run code that is not meant to be imported (or is not a package at all).
_NOT_IMPORTED = {"bin", "lib", "lib64", "include", "share", "test", "tests", "setup", "conftest"}
_SITE_PACKAGES = re.compile(r"python/lib/python\d+\.\d+/site-packages/")
_NODE_MODULES = re.compile(r"nodejs/(?:node\d+/)?node_modules/")
_EXTENSION = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\.(?:cpython-[^.]+\.|abi3\.)?so")


def layer_imports(zip_path: str | Path, runtime: Runtime) -> list[str]:
    """The top-level import names (Python) or package names (Node.js) a layer zip provides."""
    with zipfile.ZipFile(zip_path) as zf:
        return discover(zf, runtime)


def discover(zf: zipfile.ZipFile, runtime: Runtime) -> list[str]:
    """layer_imports of an open zip."""
    names = [i.filename for i in zf.infolist() if not i.is_dir()]
    if runtime.language == "python":
        return _python_names(zf, names)
    return _node_names(zf, names)


def _python_names(zf: zipfile.ZipFile, names: list[str]) -> list[str]:
    # Every folder Lambda may import from, and the other versions' site-packages too: packages
    # built for another Python must fail here rather than be skipped.
    by_root: dict[str, list[str]] = {}
    for name in names:
        match = _SITE_PACKAGES.match(name)
        if match:
            by_root.setdefault(match.group(0), []).append(name[match.end():])
        elif name.startswith("python/") and not name.startswith("python/lib/"):
            by_root.setdefault("python/", []).append(name[len("python/"):])
    found: set[str] = set()
    for root, rests in by_root.items():
        folders = set()
        for rest in rests:
            parts = rest.split("/")
            if len(parts) == 1:
                module = _EXTENSION.fullmatch(parts[0])
                found.add(parts[0][:-3] if parts[0].endswith(".py") else
                          module.group(1) if module else "")
            elif len(parts) == 2 and (parts[1] == "__init__.py" or
                                      parts[1].startswith("__init__.") and parts[1].endswith(".so")):
                found.add(parts[0])
            if len(parts) > 1:
                folders.add(parts[0])
        for rest in rests:
            if rest.endswith(".dist-info/top_level.txt") and rest.count("/") == 1:
                # Namespace packages (no __init__.py) are only known from top_level.txt.
                text = zf.read(root + rest).decode("utf-8", errors="replace")
                found.update(line.strip() for line in text.splitlines()
                             if line.strip() in folders)
    return sorted(n for n in found
                  if n.isidentifier() and not n.startswith("_") and n not in _NOT_IMPORTED)


def _node_names(zf: zipfile.ZipFile, names: list[str]) -> list[str]:
    found: set[str] = set()
    for name in names:
        match = _NODE_MODULES.match(name)
        if not match:
            continue
        parts = name[match.end():].split("/")
        if parts[0].startswith("@") and len(parts) == 3 and parts[2] == "package.json":
            package = f"{parts[0]}/{parts[1]}"
        elif not parts[0].startswith("@") and len(parts) == 2 and parts[1] == "package.json":
            package = parts[0]
        else:
            continue
        if not package.startswith((".", "@types/")) and _node_has_entry(zf, name, names):
            found.add(package)
    return sorted(found)


def _node_has_entry(zf: zipfile.ZipFile, manifest: str, names: list[str]) -> bool:
    """Whether require('<package>') can work: a main, a root export or an index file."""
    folder = posixpath.dirname(manifest) + "/"
    try:
        pkg = json.loads(zf.read(manifest))
    except ValueError:
        return True  # let require() say what is wrong with it
    if not isinstance(pkg, dict):
        return True
    exports = pkg.get("exports")
    if isinstance(exports, dict) and exports and all(k.startswith(".") for k in exports):
        return "." in exports  # only subpaths exported (e.g. 'pkg/feature'): nothing at the root
    if exports is not None or pkg.get("main"):
        return True
    return any(folder + index in names for index in ("index.js", "index.json", "index.node"))
