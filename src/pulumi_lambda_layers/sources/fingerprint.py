"""Content hash and package manifest of a LayerSpec: what decides the layer's bytes, and nothing else."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pulumi_lambda_layers.build.rawzip import DEFLATE
from pulumi_lambda_layers.sources.folder import _source_dir_content
from pulumi_lambda_layers.sources.node import _node_content
from pulumi_lambda_layers.sources.python import _python_content
from pulumi_lambda_layers.sources.resolution_memo import Freshness
from pulumi_lambda_layers.spec import LayerSpec

# Bump when the build or packaging changes what bytes a given spec produces.
FORMAT_VERSION = 2  # 2: console scripts (site-packages/bin) no longer packed

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

