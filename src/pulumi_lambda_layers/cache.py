"""Local build cache keyed by content hash: a spec built once on this machine is never rebuilt."""

from __future__ import annotations

import os
from pathlib import Path

from .archive import file_sha256


def cache_dir() -> Path:
    """$PLL_CACHE_DIR, else ~/.cache/pulumi-lambda-layers (XDG_CACHE_HOME honoured)."""
    if os.environ.get("PLL_CACHE_DIR"):
        return Path(os.environ["PLL_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pulumi-lambda-layers"


def zip_path(content_hash: str) -> Path:
    """Where the zip of a content hash lives in the cache (it may not exist yet)."""
    return cache_dir() / "zips" / f"{content_hash}.zip"


def lookup(content_hash: str) -> Path | None:
    """The cached zip for content_hash, if present and its bytes still match the recorded sha256."""
    path = zip_path(content_hash)
    digest_file = path.with_suffix(".sha256")
    if not path.is_file() or not digest_file.is_file():
        return None
    if file_sha256(path).hex() != digest_file.read_text().strip():
        # A truncated or altered entry must never be published: drop it and build again.
        path.unlink(missing_ok=True)
        digest_file.unlink(missing_ok=True)
        return None
    return path


def record(content_hash: str, sha256: str) -> None:
    """Mark the zip at zip_path(content_hash) as complete; written after the zip itself."""
    digest_file = zip_path(content_hash).with_suffix(".sha256")
    tmp = digest_file.with_suffix(".tmp")
    tmp.write_text(sha256 + "\n")
    os.replace(tmp, digest_file)
