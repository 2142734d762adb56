"""Layer versions on AWS: publish idempotently by content hash, read, share and delete them."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.aws import s3 as _s3
from pulumi_lambda_layers.aws.client import AwsTarget as AwsTarget
from pulumi_lambda_layers.aws.client import (
    ClientFactory,
    aws_errors,
    call,
    fail,
    make_client,
)
from pulumi_lambda_layers.build.archive import file_sha256
from pulumi_lambda_layers.errors import NotFound, SpecError
from pulumi_lambda_layers.errors import PublishError as PublishError
from pulumi_lambda_layers.limits import DESCRIPTION_LIMIT, DIRECT_UPLOAD_LIMIT

# AwsTarget and PublishError are re-exported above: every caller of a layer function needs both.

log = logging.getLogger(__name__)

GET_LAYER_VERSION = "lambda:GetLayerVersion"
# Seconds a publish waits out ResourceConflictException (the layer busy with another publish) and
# throttling, with backoff, beyond botocore's own retries (client.RETRIES).
PUBLISH_WAIT = 60.0
_WAIT_CODES = frozenset({"ResourceConflictException", "TooManyRequestsException",
                         "ThrottlingException"})
SID_PREFIX = "pll-"  # marks policy statements this library manages; others are left alone

# Layer versions carry no tags, so the content hash and the owner (the resource of the stack that
# published the version) ride at the end of the description: "[pll:<sha256> owner=<owner>]".
_MARKER = re.compile(r"(?:^|\s)\[pll:([0-9a-f]{64})(?: owner=([A-Za-z0-9._/~-]{1,80}))?\]$")
OWNER = re.compile(r"[A-Za-z0-9._/~-]{1,80}")
_HASH = re.compile(r"[0-9a-f]{64}")
_ACCOUNT = re.compile(r"\d{12}")
_ORG = re.compile(r"o-[a-z0-9]{10,32}")  # AWS Organizations id format, as Lambda checks it
_ROOT_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):root")


@dataclass(frozen=True)
class LayerVersion:
    """One published layer version. code_sha256/code_size are None in list_versions results
    (list_layer_versions does not return them)."""

    layer_arn: str
    layer_version_arn: str
    version: int
    code_sha256: str | None
    code_size: int | None
    description: str
    license_info: str | None
    compatible_runtimes: tuple[str, ...]
    compatible_architectures: tuple[str, ...]
    content_hash: str | None  # from the description marker; None: not published by this library
    owner: str | None = None  # from the marker; None: published by hand or before owners existed

    @property
    def user_description(self) -> str:
        """The description without the content-hash marker."""
        return user_description(self.description)


# --- description marker -------------------------------------------------------------------------

def describe_with_hash(user_desc: str, content_hash: str, owner: str | None = None) -> str:
    """user_desc plus the marker (content hash, owner), the user part cut (with "…") to fit 256
    characters."""
    if not _HASH.fullmatch(content_hash):
        raise SpecError("content_hash", f"must be 64 lowercase hex digits (sha256), got "
                        f"{content_hash!r}", "pass the content_hash of a fingerprint")
    if owner is not None and not OWNER.fullmatch(owner):
        raise SpecError("owner", f"must be 1-80 of [A-Za-z0-9._/~-], got {owner!r}",
                        "use letters, digits and . _ / ~ - only")
    marker = f"[pll:{content_hash} owner={owner}]" if owner else f"[pll:{content_hash}]"
    user = user_desc.strip()
    if not user:
        return marker
    room = DESCRIPTION_LIMIT - len(marker) - 1
    if len(user) > room:
        user = user[:room - 1].rstrip() + "…"
    return f"{user} {marker}"


def hash_from_description(desc: str | None) -> str | None:
    """The content hash a description carries, or None when it has no marker."""
    match = _MARKER.search(desc or "")
    return match.group(1) if match else None


def owner_from_description(desc: str | None) -> str | None:
    """The owner a description's marker names, or None (no marker, or one from before owners)."""
    match = _MARKER.search(desc or "")
    return match.group(2) if match else None


def user_description(desc: str | None) -> str:
    """The description with the marker removed (as published, so possibly truncated)."""
    return _MARKER.sub("", desc or "").rstrip()


# --- reading ------------------------------------------------------------------------------------

def get_version(target: AwsTarget, layer_name: str, version: int, *,
                clients: ClientFactory = make_client) -> LayerVersion | None:
    """The layer version, or None when it does not exist (e.g. deleted out of band)."""
    return _get_version(clients(target, "lambda"), layer_name, version)


def list_versions(target: AwsTarget, layer_name: str, *,
                  clients: ClientFactory = make_client) -> list[LayerVersion]:
    """Every version of the layer, newest first ([] when the layer does not exist)."""
    return _list_versions(clients(target, "lambda"), layer_name)


def find_version(target: AwsTarget, layer_name: str, content_hash: str,
                 code_sha256: str, owner: str | None = None, *,
                 clients: ClientFactory = make_client) -> LayerVersion | None:
    """The newest version `owner` published of the layer if it carries content_hash and
    code_sha256, else None.

    Only versions of this owner count: another stack's version of the same content is that
    stack's to delete, so reusing it would leave this stack pointing at a version it cannot keep.
    Only the newest counts: reusing an older version (content that went back to an earlier state)
    would make versions go backwards, and the replaced resource's delete could then remove the
    version that is live again.
    """
    return _find_version(clients(target, "lambda"), layer_name, content_hash, code_sha256, owner)


# --- publishing ---------------------------------------------------------------------------------

def zip_sha256(path: str | Path) -> str:
    """The CodeSha256 Lambda reports for this zip: base64 of its sha256 digest."""
    return base64.b64encode(file_sha256(Path(path))).decode()


def publish_version(target: AwsTarget, layer_name: str, zip_path: str | Path, *,
                    content_hash: str, code_sha256: str | None = None, description: str = "",
                    license_info: str | None = None, compatible_runtimes: Sequence[str] = (),
                    compatible_architectures: Sequence[str] = (), s3_bucket: str | None = None,
                    s3_key_prefix: str = "lambda-layers/", owner: str | None = None,
                    clients: ClientFactory = make_client,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[LayerVersion, bool]:
    """Publish zip_path as a new version marked as owner's, or reuse owner's newest version when
    it already has this content.

    Returns (version, published): published is False when an existing version was reused, so a
    retried or interrupted deploy never publishes a duplicate. Zips over 50 MiB go through S3.
    A layer busy with another publish, or throttling, is waited out (`sleep`, up to PUBLISH_WAIT
    seconds). When the request may have been sent more than once (a retry after a lost answer:
    each landed), the extra versions with this marker are deleted; the one Lambda answered with,
    the newest, is kept and returned.
    """
    zip_path = Path(zip_path)
    code_sha256 = code_sha256 or zip_sha256(zip_path)
    lam = clients(target, "lambda")
    listed = _list_versions(lam, layer_name)
    existing = _find_in(lam, layer_name, listed, content_hash, code_sha256, owner)
    if existing is not None and (existing.license_info or None) == (license_info or None) \
            and set(existing.compatible_runtimes) == set(compatible_runtimes) \
            and set(existing.compatible_architectures) == set(compatible_architectures):
        return existing, False

    size = zip_path.stat().st_size
    request: dict[str, Any] = {
        "LayerName": layer_name,
        "Description": describe_with_hash(description, content_hash, owner),
    }
    if license_info:
        request["LicenseInfo"] = license_info
    if compatible_runtimes:
        request["CompatibleRuntimes"] = list(compatible_runtimes)
    if compatible_architectures:
        request["CompatibleArchitectures"] = list(compatible_architectures)

    region = lam.meta.region_name
    if size <= DIRECT_UPLOAD_LIMIT:
        request["Content"] = {"ZipFile": zip_path.read_bytes()}
        created, retried = _publish(lam, layer_name, request, sleep)
    elif s3_bucket is None:
        fail("publish_layer_version", layer_name,
             f"{zip_path.name} is {_mb(size)} ({size:,} bytes), over the 50 MB "
             f"({DIRECT_UPLOAD_LIMIT:,} bytes) direct-upload limit",
             f"set s3_bucket (a bucket in {region}) or slim the layer", size=size)
    else:
        key = f"{s3_key_prefix}{layer_name}/{content_hash}.zip"
        s3 = clients(target, "s3")
        _s3.put(s3, s3_bucket, key, zip_path, f"check that bucket {s3_bucket!r} exists in "
                f"{region} and that these credentials may write to it")
        request["Content"] = {"S3Bucket": s3_bucket, "S3Key": key}
        try:
            created, retried = _publish(lam, layer_name, request, sleep)
        finally:
            _s3.delete_quietly(s3, s3_bucket, key)  # Lambda keeps its own copy of the code

    published = _layer_version(created)
    if retried:
        _drop_duplicates(lam, layer_name, published, max((v.version for v in listed), default=0))
    if published.code_sha256 != code_sha256:
        # Lambda stored other bytes than we hold: never leave a version we cannot vouch for.
        _delete_version(lam, layer_name, published.version)
        fail("publish_layer_version", f"{layer_name}:{published.version}",
             f"Lambda reports CodeSha256 {published.code_sha256!r} but {zip_path.name} has "
             f"{code_sha256!r}; the version was deleted again",
             "check that the zip was not modified while publishing and retry")
    return published, True


def delete_version(target: AwsTarget, layer_name: str, version: int, *,
                   clients: ClientFactory = make_client) -> None:
    """Delete a layer version; one that is already gone counts as deleted."""
    _delete_version(clients(target, "lambda"), layer_name, version)


# --- sharing ------------------------------------------------------------------------------------

def check_principals(principals: Iterable[str], argument: str = "share_with") -> tuple[str, ...]:
    """Validated principals, sorted and deduplicated; raises SpecError naming a bad value."""
    if isinstance(principals, str):
        raise SpecError(argument, f"expected a list of principals, got the string {principals!r}",
                        f"write [{principals!r}]")
    checked = set()
    for p in principals:
        if not isinstance(p, str) or not (p == "*" or _ACCOUNT.fullmatch(p) or _ORG.fullmatch(p)):
            raise SpecError(argument, f"{p!r} is not a principal a layer can be shared with",
                            "use a 12-digit AWS account id, an organization id "
                            "(o- and 10-32 lowercase letters or digits) or '*' for everyone")
        checked.add(p)
    return tuple(sorted(checked))


def statement_id(principal: str) -> str:
    """The policy statement id this library uses for principal."""
    if principal == "*":
        return SID_PREFIX + "everyone"
    return SID_PREFIX + re.sub(r"[^A-Za-z0-9_-]", "_", principal)


def get_permissions(target: AwsTarget, layer_name: str, version: int, *,
                    clients: ClientFactory = make_client) -> list[str]:
    """Principals that statements managed by this library currently grant read access to."""
    statements = _policy_statements(clients(target, "lambda"), layer_name, version)
    return sorted({p for sid, p in _managed(statements).items() if p is not None})


def set_permissions(target: AwsTarget, layer_name: str, version: int,
                    principals: Sequence[str], *, clients: ClientFactory = make_client) -> None:
    """Make the version readable (lambda:GetLayerVersion) by exactly these principals: adds
    missing grants, revokes stale ones this library added, leaves other statements alone."""
    wanted = {statement_id(p): p for p in check_principals(principals)}
    lam = clients(target, "lambda")
    current = _managed(_policy_statements(lam, layer_name, version))
    resource = f"{layer_name}:{version}"
    for sid, granted in current.items():
        if sid not in wanted or wanted[sid] != granted:
            try:
                call(lam.remove_layer_version_permission, resource, LayerName=layer_name,
                     VersionNumber=version, StatementId=sid)
            except NotFound:
                pass  # removed concurrently: the goal is reached
    for sid, principal in wanted.items():
        if sid in current and current[sid] == principal:
            continue
        grant: dict[str, Any] = {"Principal": principal}
        if principal.startswith("o-"):
            grant = {"Principal": "*", "OrganizationId": principal}
        call(lam.add_layer_version_permission, resource, LayerName=layer_name,
             VersionNumber=version, StatementId=sid, Action=GET_LAYER_VERSION, **grant)


# --- internals: one Lambda client in, LayerVersion out ------------------------------------------

def _get_version(lam: Any, layer_name: str, version: int) -> LayerVersion | None:
    try:
        return _layer_version(call(lam.get_layer_version, f"{layer_name}:{version}",
                                   LayerName=layer_name, VersionNumber=version))
    except NotFound:
        return None


def _list_versions(lam: Any, layer_name: str) -> list[LayerVersion]:
    found: list[LayerVersion] = []
    try:
        with aws_errors("list_layer_versions", layer_name):
            for page in lam.get_paginator("list_layer_versions").paginate(LayerName=layer_name):
                found.extend(_layer_version(item) for item in page.get("LayerVersions", []))
    except NotFound:
        return []
    return sorted(found, key=lambda v: v.version, reverse=True)


def _find_version(lam: Any, layer_name: str, content_hash: str, code_sha256: str,
                  owner: str | None) -> LayerVersion | None:
    return _find_in(lam, layer_name, _list_versions(lam, layer_name), content_hash, code_sha256,
                    owner)


def _find_in(lam: Any, layer_name: str, listed: list[LayerVersion], content_hash: str,
             code_sha256: str, owner: str | None) -> LayerVersion | None:
    mine = [v for v in listed if v.owner == owner]  # newest first
    if not mine or mine[0].content_hash != content_hash:
        return None
    full = _get_version(lam, layer_name, mine[0].version)
    return full if full is not None and full.code_sha256 == code_sha256 else None


def _publish(lam: Any, layer_name: str, request: dict[str, Any],
             sleep: Callable[[float], None]) -> tuple[dict[str, Any], bool]:
    """publish_layer_version, a busy layer and throttling waited out; returns the answer and
    whether the request may have been sent more than once (so more than one version landed)."""
    waited, delay, tries = 0.0, 1.0, 0
    while True:
        tries += 1
        try:
            created: dict[str, Any] = call(lam.publish_layer_version, layer_name, **request)
        except PublishError as exc:
            if exc.code not in _WAIT_CODES:
                raise
            if waited >= PUBLISH_WAIT:
                raise PublishError(
                    "publish_layer_version", layer_name,
                    f"refused {tries} times over {waited:.0f} s ({exc.code}: {exc.problem})",
                    "another publish of this layer, or other deploys sharing the account's "
                    "Lambda request rate, kept it busy: deploy again once they are done",
                    code=exc.code) from exc
            sleep(delay)
            waited += delay
            delay = min(delay * 2, 10.0)
            continue
        # botocore counts the resends of this call; an earlier call of ours may have been resent.
        resent = int((created.get("ResponseMetadata") or {}).get("RetryAttempts") or 0)
        return created, tries > 1 or resent > 0


def _drop_duplicates(lam: Any, layer_name: str, kept: LayerVersion, before: int) -> None:
    """Delete the versions besides `kept` that a resent publish left: newer than `before` (the
    newest version before this publish), with kept's marker (content hash and owner). kept, the
    one Lambda answered with, is the newest of them, the one find_version would reuse too.
    Best effort: the publish itself succeeded, so a failure here is logged, not raised."""
    try:
        extra = [v.version for v in _list_versions(lam, layer_name)
                 if v.version > before and v.version != kept.version
                 and v.content_hash == kept.content_hash and v.owner == kept.owner]
        for version in extra:
            _delete_version(lam, layer_name, version)
    except PublishError as exc:
        log.warning("publish_layer_version %s: could not remove the duplicate versions a resent "
                    "publish may have left (%s); fix: delete the versions of %s newer than %d "
                    "except %d (`aws lambda delete-layer-version`)", layer_name, exc, layer_name,
                    before, kept.version)
        return
    if extra:
        log.warning("publish_layer_version %s: a resent publish left duplicate versions %s; "
                    "deleted them, keeping %d", layer_name, ", ".join(map(str, extra)),
                    kept.version)


def _delete_version(lam: Any, layer_name: str, version: int) -> None:
    try:
        call(lam.delete_layer_version, f"{layer_name}:{version}",
             LayerName=layer_name, VersionNumber=version)
    except NotFound:
        pass


def _policy_statements(lam: Any, layer_name: str, version: int) -> list[dict[str, Any]]:
    resource = f"{layer_name}:{version}"
    try:
        answer = call(lam.get_layer_version_policy, resource,
                      LayerName=layer_name, VersionNumber=version)
    except NotFound:
        # Same error for "no policy yet" and "no such version": tell them apart.
        if _get_version(lam, layer_name, version) is None:
            fail("get_layer_version_policy", resource, "the layer version does not exist",
                 "it may have been deleted outside Pulumi; run `pulumi refresh`")
        return []
    statements = json.loads(answer["Policy"]).get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _managed(statements: list[dict[str, Any]]) -> dict[str, str | None]:
    """Statement id -> granted principal, for the statements this library manages."""
    return {s["Sid"]: _granted_principal(s) for s in statements
            if str(s.get("Sid", "")).startswith(SID_PREFIX)}


def _granted_principal(statement: dict[str, Any]) -> str | None:
    # Lambda writes {"AWS": "arn:aws:iam::<id>:root"} and a PrincipalOrgID condition;
    # accept the request's raw form ("<id>", OrganizationId) too.
    principal = statement.get("Principal")
    if isinstance(principal, dict):
        principal = principal.get("AWS")
    if not isinstance(principal, str):
        return None
    if principal == "*":
        condition = statement.get("Condition", {}).get("StringEquals", {})
        org = condition.get("aws:PrincipalOrgID") or statement.get("OrganizationId")
        return str(org) if org else "*"
    root = _ROOT_ARN.fullmatch(principal)
    return root.group(1) if root else principal


def _layer_version(data: dict[str, Any]) -> LayerVersion:
    content = data.get("Content") or {}
    description = data.get("Description") or ""
    return LayerVersion(
        layer_arn=data.get("LayerArn") or data["LayerVersionArn"].rsplit(":", 1)[0],
        layer_version_arn=data["LayerVersionArn"],
        version=int(data["Version"]),
        code_sha256=content.get("CodeSha256"),
        code_size=content.get("CodeSize"),
        description=description,
        license_info=data.get("LicenseInfo") or None,
        compatible_runtimes=tuple(data.get("CompatibleRuntimes") or ()),
        compatible_architectures=tuple(data.get("CompatibleArchitectures") or ()),
        content_hash=hash_from_description(description),
        owner=owner_from_description(description),
    )


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"
