"""Build cache keyed by content hash, on this machine and optionally in a shared S3 bucket."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulumi_lambda_layers.atomic import write_atomic
from pulumi_lambda_layers.build.archive import file_sha256

if TYPE_CHECKING:
    from pulumi_lambda_layers.aws.client import AwsTarget


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
        path.with_suffix(".json").unlink(missing_ok=True)
        return None
    return path


def record(content_hash: str, sha256: str) -> None:
    """Mark the zip at zip_path(content_hash) as complete; written after the zip itself."""
    digest_file = zip_path(content_hash).with_suffix(".sha256")
    write_atomic(digest_file, (sha256 + "\n").encode())


def facts(content_hash: str) -> dict[str, Any] | None:
    """What was recorded about a cached zip when it was built (sizes, validation report), if any."""
    try:
        return dict(json.loads(zip_path(content_hash).with_suffix(".json").read_text()))
    except (OSError, ValueError):
        return None


def store(content_hash: str, built: Path, sha256: str, about: dict[str, Any]) -> Path:
    """Put a validated zip in the cache (linked or copied) with its facts; returns its path."""
    path = zip_path(content_hash)
    if built.resolve() != path.resolve():
        place(built, path)
    write_atomic(path.with_suffix(".json"), json.dumps({**about, "sha256": sha256}).encode())
    record(content_hash, sha256)
    return path


# --- the shared cache in S3 ---------------------------------------------------------------------
# <prefix><hash>.zip holds the zip; <prefix><hash>.json its facts and sha256, written last, so an
# object pair is complete once the .json exists. The zip is checked against that sha256 before use.

def remote_key(prefix: str, content_hash: str, suffix: str) -> str:
    """The S3 key of a cache object; prefix is used as given (add the trailing '/' yourself)."""
    return f"{prefix}{content_hash}{suffix}"


def fetch(target: AwsTarget, bucket: str, prefix: str, content_hash: str,
          log: Callable[[str], None]) -> Path | None:
    """Copy the shared cache's zip for content_hash into this machine's cache, if it is there and
    its bytes match its recorded sha256; None otherwise (a mismatching object is never used)."""
    from pulumi_lambda_layers.aws import s3

    folder = zip_path(content_hash).parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pll-fetch-", dir=folder) as tmp:
        about_file, zip_file = Path(tmp) / "about.json", Path(tmp) / "layer.zip"
        where = f"s3://{bucket}/{remote_key(prefix, content_hash, '.zip')}"
        if not s3.download_object(target, bucket, remote_key(prefix, content_hash, ".json"),
                                   about_file):
            return None
        try:
            about = dict(json.loads(about_file.read_text()))
            expected = str(about.pop("sha256"))
        except (ValueError, KeyError, TypeError):
            log(f"cache: {where} has unreadable facts; ignoring it and building")
            return None
        if not s3.download_object(target, bucket, remote_key(prefix, content_hash, ".zip"),
                                   zip_file):
            return None
        actual = file_sha256(zip_file).hex()
        if actual != expected:
            log(f"cache: {where} has sha256 {actual[:16]}, expected {expected[:16]}: rejected, "
                "building instead")
            return None
        return store(content_hash, zip_file, actual, about)


def push(target: AwsTarget, bucket: str, prefix: str, content_hash: str) -> None:
    """Upload this machine's cached zip for content_hash (and then its facts) to the shared cache."""
    from pulumi_lambda_layers.aws import s3

    path = zip_path(content_hash)
    s3.upload_object(target, bucket, remote_key(prefix, content_hash, ".zip"), path)
    s3.upload_object(target, bucket, remote_key(prefix, content_hash, ".json"),
                     path.with_suffix(".json"))


def place(src: Path, dst: Path) -> None:
    """Make dst hold src's bytes, atomically: a hard link when both are on one file system (no
    bytes copied), a copy otherwise. Callers never write into either file afterwards."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".pll-{os.getpid()}-{uuid.uuid4().hex[:8]}-{dst.name}")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = ["cache_dir", "facts", "fetch", "lookup", "place", "push", "record", "remote_key",
           "store", "write_atomic", "zip_path"]
