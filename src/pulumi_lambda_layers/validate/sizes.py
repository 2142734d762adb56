"""Sizes per package against Lambda's quotas, and bytecode that bloats the layer."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable

from pulumi_lambda_layers.limits import DIRECT_UPLOAD_LIMIT, UNZIPPED_LIMIT
from pulumi_lambda_layers.runtimes import Runtime
from pulumi_lambda_layers.validate.report import Finding, error, human, plural, warning

LARGEST_KEPT = 10  # packages kept in Report.largest
LARGEST_NAMED = 5  # packages named in the unzipped-size error


def package_sizes(entries: Iterable[tuple[str, int]], runtime: Runtime) -> list[tuple[str, int]]:
    """Unzipped bytes per package, largest first; metadata and .libs count with their package."""
    totals: dict[str, int] = {}
    names: dict[str, str] = {}
    meta_names: dict[str, str] = {}
    for name, size in entries:
        key, shown, is_meta = _package_of(name, runtime)
        totals[key] = totals.get(key, 0) + size
        # Prefer the folder's spelling: dist-info names differ in case and '-' vs '_'.
        (meta_names if is_meta else names).setdefault(key, shown)
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [(names.get(key) or meta_names[key], size) for key, size in ranked]


def _package_of(name: str, runtime: Runtime) -> tuple[str, str, bool]:
    """(normalised key, display name, is metadata) of the package a zip entry belongs to."""
    if runtime.language == "python":
        rest = re.sub(r"^python/(lib/python\d+\.\d+/site-packages/)?", "", name, count=1)
        if rest == name or rest.startswith("bin/"):
            return _outside(name)
        component = rest.split("/")[0]
        is_meta = component.endswith((".dist-info", ".egg-info"))
        if is_meta:
            shown = component.split("-")[0].removesuffix(".dist-info").removesuffix(".egg-info")
        else:
            shown = component.split(".")[0] if "/" not in rest else component.removesuffix(".libs")
            shown = shown or component  # dotfiles such as an installer's .lock
        return re.sub(r"[-_.]+", "_", shown).lower(), shown, is_meta
    rest = re.sub(r"^nodejs/(node\d+/)?node_modules/", "", name, count=1)
    if rest == name:
        return _outside(name)
    parts = rest.split("/")
    shown = "/".join(parts[:2]) if parts[0].startswith("@") and len(parts) > 2 else parts[0]
    return shown, shown, False


def _outside(name: str) -> tuple[str, str, bool]:
    parts = name.split("/")
    shown = "/".join(parts[:2]) + "/" if parts[0] in ("python", "nodejs") and len(parts) > 2 \
        else parts[0] + ("/" if len(parts) > 1 else "")
    return "/" + shown, shown, False


def check_sizes(zipped: int, unzipped: int, largest: list[tuple[str, int]]) -> list[Finding]:
    """Lambda's upload and unzipped-size quotas."""
    findings: list[Finding] = []
    if zipped > DIRECT_UPLOAD_LIMIT:
        findings.append(warning(
            "size-zipped", "",
            f"the zip is {human(zipped)}, over the {human(DIRECT_UPLOAD_LIMIT)} limit for a "
            "direct upload: publishing it needs an S3 bucket (upload the zip to S3 and publish "
            "the layer version from there)"))
    if unzipped > UNZIPPED_LIMIT:
        named = ", ".join(f"{name} ({human(size)})" for name, size in largest[:LARGEST_NAMED])
        findings.append(error(
            "size-unzipped", "",
            f"unzipped size is {human(unzipped)}, over Lambda's {human(UNZIPPED_LIMIT)} "
            f"({UNZIPPED_LIMIT:,} bytes) limit for a function and all its layers together; "
            f"largest packages: {named}. Slim it (drop boto3/botocore, which the runtime "
            "provides, tests and debug symbols) or deploy the function as a container image"))
    return findings


def check_bytecode(infos: Iterable[zipfile.ZipInfo]) -> list[Finding]:
    """Compiled bytecode: extra bytes that differ between builds, so every build is a new version."""
    found = [i for i in infos if not i.is_dir()
             and (i.filename.endswith(".pyc") or "__pycache__/" in i.filename)]
    if not found:
        return []
    total = sum(i.file_size for i in found)
    return [warning(
        "bytecode", found[0].filename,
        f"{plural(len(found), 'bytecode file')} (.pyc / __pycache__, {human(total)}): they "
        "bloat the layer and change from build to build, so the layer hash is not reproducible; "
        "build with PYTHONDONTWRITEBYTECODE=1 or leave them out")]


def size_table(largest: Iterable[tuple[str, int]], unzipped: int, top: int = LARGEST_KEPT
               ) -> list[str]:
    """The top packages by unzipped size, each with its share of Lambda's 250 MB budget (a
    function and all its layers, unzipped), and what the layer leaves of it."""
    rows = list(largest)[:top]
    lines = [f"unzipped size by package (budget: {human(UNZIPPED_LIMIT)} for a function and all "
             f"its layers; this layer uses {_share(unzipped)}, leaving "
             f"{human(max(UNZIPPED_LIMIT - unzipped, 0))}):"]
    width = max([len(name) for name, _ in rows] + [7])
    lines.append(f"  {'package':<{width}}  {'unzipped':>10}  {'budget':>6}")
    lines.extend(f"  {name:<{width}}  {human(size):>10}  {_share(size):>6}" for name, size in rows)
    return lines


def size_line(largest: Iterable[tuple[str, int]], unzipped: int, top: int = 5) -> str:
    """The same in one line, for a build log: "sizes: 57.7 MB (23% of 250 MB): numpy ..."."""
    rows = ", ".join(f"{name} {human(size)} ({_share(size)})" for name, size in list(largest)[:top])
    return f"sizes: {human(unzipped)} unzipped ({_share(unzipped)} of {human(UNZIPPED_LIMIT)})" \
        + (f"; largest: {rows}" if rows else "")


def _share(size: int) -> str:
    share = 100 * size / UNZIPPED_LIMIT
    return f"{share:.1f}%" if share < 10 else f"{share:.0f}%"
