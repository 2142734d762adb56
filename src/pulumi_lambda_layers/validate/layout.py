"""Layout: content must sit where the runtime looks (python/..., nodejs/node_modules/...)."""

from __future__ import annotations

import re

from pulumi_lambda_layers.runtimes import Runtime
from pulumi_lambda_layers.validate.python_abi import EXT_MODULE
from pulumi_lambda_layers.validate.report import Finding, error

# Top-level folders Lambda puts on PATH / LD_LIBRARY_PATH or runs as extensions, for any runtime.
_SHARED_DIRS = {"bin", "lib", "extensions"}
_WRONG_PY_DIR = re.compile(r"python/lib/python(\d+\.\d+)/")
_NODE_VERSIONED = re.compile(r"nodejs/node(\d+)/node_modules/")


def check_layout(names: list[str], runtime: Runtime) -> list[Finding]:
    """Content must sit where the runtime looks: python/... or nodejs/node_modules/..."""
    if not names:
        return [error("layout", "", "the layer is empty: it has no files")]
    nested = _nested_layout(names)
    if nested:
        return nested
    if runtime.language == "python":
        return _python_layout(names, runtime)
    return _node_layout(names, runtime)


def _nested_layout(names: list[str]) -> list[Finding]:
    # Zipping the folder instead of its contents puts everything one level too deep.
    wrappers = sorted({n.split("/")[0] for n in names
                       if n.count("/") >= 2 and n.split("/")[1] in ("python", "nodejs")
                       and n.split("/")[0] not in ("python", "nodejs")})
    return [error("layout", f"{top}/",
                  f"the layer content is nested under '{top}/'; Lambda only looks at python/ or "
                  f"nodejs/ at the zip root: zip the contents of '{top}/', not the folder itself")
            for top in wrappers]


def _python_layout(names: list[str], runtime: Runtime) -> list[Finding]:
    prefix = runtime.layer_prefix
    findings: list[Finding] = []
    wrong_versions: dict[str, str] = {}
    root_packages: dict[str, str] = {}
    under_python = False
    for name in names:
        parts = name.split("/")
        if parts[0] == "python" and len(parts) > 1:
            under_python = True
            match = _WRONG_PY_DIR.match(name)
            if match and match.group(1) != runtime.version:
                wrong_versions.setdefault(match.group(1), name)
        elif "site-packages" in parts:
            top = "/".join(parts[:parts.index("site-packages") + 1]) + "/"
            root_packages.setdefault(top, name)
        elif _looks_like_python_package(parts) and parts[0] not in _SHARED_DIRS:
            top = parts[0] + ("/" if len(parts) > 1 else "")
            root_packages.setdefault(top, name)
    for version in sorted(wrong_versions):
        findings.append(error(
            "layout", f"python/lib/python{version}/site-packages/",
            f"packages are in the Python {version} folder, but {runtime.id} runs Python "
            f"{runtime.version} and only adds /opt/{prefix} (and /opt/python) to sys.path: "
            f"rebuild them for Python {runtime.version} into {prefix}/ (binary packages differ "
            "by version, so renaming the folder is not enough)"))
    for top in sorted(root_packages):
        findings.append(error(
            "layout", top,
            f"Python package '{top}' is at the zip root, where Lambda does not look; put it "
            f"under {prefix}/ (the layer prefix for {runtime.id}) or python/"))
    if not under_python and not root_packages and not _has_shared_dirs(names):
        findings.append(error(
            "layout", "",
            f"no files under python/; {runtime.id} only adds /opt/python and /opt/{prefix} to "
            f"sys.path: put the packages under {prefix}/"))
    return findings


def _looks_like_python_package(parts: list[str]) -> bool:
    top = parts[0]
    if len(parts) == 1:
        return top.endswith((".py", ".abi3.so")) or bool(EXT_MODULE.fullmatch(top))
    return (top.endswith((".dist-info", ".egg-info", ".libs"))
            or (len(parts) == 2 and parts[1] in ("__init__.py", "__init__.pyc")))


def _has_shared_dirs(names: list[str]) -> bool:
    return any(n.split("/")[0] in _SHARED_DIRS and "/" in n for n in names)


def _node_layout(names: list[str], runtime: Runtime) -> list[Finding]:
    findings: list[Finding] = []
    root_modules = False
    loose: set[str] = set()
    other_major: dict[str, str] = {}
    importable = False
    for name in names:
        parts = name.split("/")
        if parts[0] == "node_modules":
            root_modules = True
        elif parts[0] == "nodejs" and len(parts) > 2:
            versioned = _NODE_VERSIONED.match(name)
            if parts[1] == "node_modules":
                importable = True
            elif versioned:
                if versioned.group(1) == runtime.version:
                    importable = True
                else:
                    other_major.setdefault(versioned.group(1), name)
            else:
                loose.add(parts[1])
    if root_modules:
        findings.append(error(
            "layout", "node_modules/",
            "node_modules/ is at the zip root, where Lambda does not look; move it to "
            "nodejs/node_modules/ (Lambda adds /opt/nodejs/node_modules to NODE_PATH)"))
    for major in sorted(other_major):
        findings.append(error(
            "layout", f"nodejs/node{major}/node_modules/",
            f"modules are in the Node.js {major} folder, but {runtime.id} runs Node.js "
            f"{runtime.version} and only looks in /opt/nodejs/node{runtime.version}/node_modules "
            "and /opt/nodejs/node_modules: move them to nodejs/node_modules/"))
    for top in sorted(loose):
        findings.append(error(
            "layout", f"nodejs/{top}/",
            f"'nodejs/{top}/' is not on NODE_PATH; packages go in nodejs/node_modules/"))
    if not importable and not findings and not _has_shared_dirs(names):
        findings.append(error(
            "layout", "",
            f"no files under nodejs/node_modules/; {runtime.id} only adds /opt/nodejs/"
            f"node_modules and /opt/nodejs/node{runtime.version}/node_modules to NODE_PATH"))
    return findings
