"""Build cache keyed by content hash, on this machine and optionally in a shared S3 bucket."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulumi_lambda_layers.atomic import write_atomic
from pulumi_lambda_layers.build.archive import file_sha256
from pulumi_lambda_layers.errors import PublishError

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


class Untrusted(Exception):
    """A shared-cache object this machine will not use; the message says why."""


# The environment variable a signing key may come from when no cache_signing_key is given.
SIGNING_KEY_ENV = "PLL_CACHE_SIGNING_KEY"
_SIGNATURE = "hmac-sha256:"


def signing_key(given: str | None) -> bytes | None:
    """The shared cache's signing key: the one given, else $PLL_CACHE_SIGNING_KEY, else None."""
    key = given or os.environ.get(SIGNING_KEY_ENV) or None
    return key.encode() if key else None


def signature(key: bytes, content_hash: str, sha256: str) -> str:
    """The signature of a cache object pair: HMAC-SHA256 over the content hash and the zip's
    sha256 (the zip is checked against that sha256, so the signature covers its bytes)."""
    mac = hmac.new(key, f"pll-cache-v1\n{content_hash}\n{sha256}\n".encode(), hashlib.sha256)
    return _SIGNATURE + mac.hexdigest()


def _signature_problem(key: bytes, about: dict[str, Any], content_hash: str,
                       sha256: str) -> str:
    """Why a signed cache rejects an object pair ("" when its signature is right)."""
    given = about.get("signature")
    if not isinstance(given, str) or not given.startswith(_SIGNATURE):
        return "it is not signed and a cache signing key is set"
    if not hmac.compare_digest(given, signature(key, content_hash, sha256)):
        return "its signature is wrong for this signing key"
    return ""


# Distributions at the top of a Python layer's site-packages (vendored ones deeper down, such as
# setuptools/_vendor/*.dist-info, are part of the package that vendors them).
_DIST_INFO = re.compile(r"^python/(?:lib/python[^/]+/site-packages/)?([^/]+)\.dist-info/")
# A package folder of a Node.js layer: nodejs/node_modules/<name or @scope/name>/package.json,
# at any depth of nested node_modules (the package-lock paths the fingerprint lists).
_NODE_PACKAGE = re.compile(r"^nodejs/((?:node_modules/(?:@[^/]+/)?[^/]+/)+)package\.json$")


def held_packages(path: Path, kind: str) -> dict[str, str] | None:
    """name -> version of the packages a layer zip holds, read from its own metadata (Python:
    its *.dist-info folder names; Node.js: node_modules/*/package.json), named the way the
    fingerprint names them; None for a folder layer (its hash covers every file already)."""
    if kind == "source_dir":
        return None
    from packaging.utils import canonicalize_name

    held: dict[str, str] = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if kind != "package_json":
                match = _DIST_INFO.match(info.filename)
                if match:
                    name, _, version = match.group(1).partition("-")
                    held[canonicalize_name(name)] = version
                continue
            match = _NODE_PACKAGE.match(info.filename)
            if not match or info.file_size > 1 << 20:
                continue
            try:
                version = str(json.loads(zf.read(info))["version"])
            except (ValueError, KeyError, TypeError):
                version = "(unreadable package.json)"
            parts = match.group(1).split("node_modules/")
            held[">".join(p.strip("/") for p in parts if p.strip("/"))] = version
    return held


def package_mismatch(held: dict[str, str], expected: dict[str, str]) -> str:
    """Why a zip holding `held` is not the layer of `expected` ("" when it is): the first few
    differences, e.g. "holds numpy 1.26.3, the lock says 1.26.4"."""
    problems: list[str] = []
    for name in sorted(set(held) | set(expected)):
        has, wants = held.get(name), expected.get(name)
        if wants is None:
            problems.append(f"holds {name} {has}, which the lock does not list")
        elif has is None:
            problems.append(f"lacks {name} {wants}, which the lock lists")
        elif not wants.startswith("@") and not _same_version(has, wants):
            problems.append(f"holds {name} {has}, the lock says {wants}")
        # "@<url>": a direct-URL pin names no version; that the package is there is checked.
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def _same_version(a: str, b: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def fetch(target: AwsTarget, bucket: str, prefix: str, content_hash: str,
          log: Callable[[str], None], vet: Callable[[Path], dict[str, Any]],
          key: bytes | None = None) -> Path | None:
    """Copy the shared cache's zip for content_hash into this machine's cache if it is there,
    its bytes match its recorded sha256, it is signed with `key` (when one is set) and `vet`
    accepts it; None otherwise.

    The bucket is a convenience, not a trust anchor: whoever can write it could put any zip
    there, so `vet` checks the zip again here (validation with the current rules, the package
    set of the fingerprint) and raises Untrusted to refuse it; the facts `vet` returns are what
    is recorded (nothing of the stored .json but its sha256 is used). An S3 problem (denied,
    failing, slow or unreachable) is a warning and a miss: the caller builds here instead."""
    from pulumi_lambda_layers.aws import s3

    where = f"s3://{bucket}/{remote_key(prefix, content_hash, '.zip')}"
    folder = zip_path(content_hash).parent
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pll-fetch-", dir=folder) as tmp:
        about_file, zip_file = Path(tmp) / "about.json", Path(tmp) / "layer.zip"
        try:
            if not s3.download_object(target, bucket, remote_key(prefix, content_hash, ".json"),
                                       about_file):
                return None
            try:
                stored = dict(json.loads(about_file.read_text()))
                expected = str(stored["sha256"])
            except (ValueError, KeyError, TypeError):
                log(f"shared cache: {where} ignored: its .json is unreadable; building here")
                return None
            unsigned = _signature_problem(key, stored, content_hash, expected) if key else ""
            if unsigned:  # the zip is not even fetched: only holders of the key fill the cache
                log(f"shared cache: {where} ignored: {unsigned}; building here")
                return None
            if not s3.download_object(target, bucket, remote_key(prefix, content_hash, ".zip"),
                                       zip_file):
                return None
        except PublishError as exc:
            log(f"warning: shared cache: could not read {where} ({exc.problem}); building here")
            return None
        actual = file_sha256(zip_file).hex()
        if actual != expected:
            log(f"shared cache: {where} ignored: its sha256 is {actual[:16]}, its .json says "
                f"{expected[:16]} (rejected); building here")
            return None
        try:
            about = vet(zip_file)
        except Untrusted as exc:
            log(f"shared cache: {where} ignored: {exc}; building here")
            return None
        return store(content_hash, zip_file, actual, about)


def push(target: AwsTarget, bucket: str, prefix: str, content_hash: str,
         log: Callable[[str], None], key: bytes | None = None) -> bool:
    """Upload this machine's cached zip for content_hash (and then its facts, signed with key
    when one is set) to the shared cache; a failure is a warning (the build stands) and returns
    False."""
    from pulumi_lambda_layers.aws import s3

    path = zip_path(content_hash)
    try:
        about = dict(json.loads(path.with_suffix(".json").read_text()))
        if key:
            about["signature"] = signature(key, content_hash, str(about["sha256"]))
        with tempfile.TemporaryDirectory(prefix=".pll-push-", dir=path.parent) as tmp:
            facts_file = Path(tmp) / "about.json"
            facts_file.write_text(json.dumps(about))
            s3.upload_object(target, bucket, remote_key(prefix, content_hash, ".zip"), path)
            s3.upload_object(target, bucket, remote_key(prefix, content_hash, ".json"),
                             facts_file)
    except (PublishError, OSError, ValueError, KeyError) as exc:
        problem = exc.problem if isinstance(exc, PublishError) else str(exc)
        log(f"warning: shared cache: could not put {content_hash[:16]} in s3://{bucket}/{prefix} "
            f"({problem}); the layer built here is used")
        return False
    return True


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


__all__ = ["SIGNING_KEY_ENV", "Untrusted", "cache_dir", "facts", "fetch", "held_packages", "lookup",
           "package_mismatch", "place", "push", "record", "remote_key", "signature",
           "signing_key", "store", "write_atomic", "zip_path"]
