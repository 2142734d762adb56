"""A folder shipped as it is: the digest of every file, and the packages it holds."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from pulumi_lambda_layers.build.archive import collect, file_sha256
from pulumi_lambda_layers.spec import LayerSpec


def _source_dir_content(spec: LayerSpec) -> tuple[Any, dict[str, str], dict[str, str]]:
    """Every file's mode and sha256 (a link's target), walked exactly as the zip is packed."""
    root = spec.source.path
    digests: dict[str, str] = {}
    for rel, entry in collect(root, spec.exclude, spec.slim):
        if isinstance(entry, str):  # a symlink, packed as a link to this target
            digests[rel] = "link:" + entry
        else:
            mode = "x" if os.access(entry, os.X_OK) else "-"
            digests[rel] = mode + file_sha256(entry).hex()
    return digests, dist_info_versions(root), {}


def dist_info_versions(root: Path) -> dict[str, str]:
    """name -> version of the Python distributions installed below root (from *.dist-info names)."""
    found: dict[str, str] = {}
    for info in root.rglob("*.dist-info"):
        name, _, version = info.name[: -len(".dist-info")].partition("-")
        if version:
            found[canonicalize_name(name)] = version
    return dict(sorted(found.items()))


