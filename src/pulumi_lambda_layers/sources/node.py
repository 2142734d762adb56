"""Node.js sources: package.json with its package-lock.json, or resolved with npm."""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.errors import ResolveError, SpecError
from pulumi_lambda_layers.runtimes import NPM_CPU
from pulumi_lambda_layers.sources.python import _indent
from pulumi_lambda_layers.spec import LayerSpec
from pulumi_lambda_layers.tools import npm_command


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


