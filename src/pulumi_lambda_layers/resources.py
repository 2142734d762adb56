"""Pulumi glue: the LambdaLayerBuild dynamic resource and its provider, thin over the library."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from . import cache, publish
from .errors import LayerError, SpecError
from .fingerprint import Fingerprint
from .runtimes import RUNTIMES, get_runtime
from .spec import LayerSpec, Source, spec_from_dict

# Inputs whose change means new bytes or a different layer: a new immutable version (replace).
REPLACE_KEYS = ("content_hash", "layer_name", "runtime", "architecture", "compatible_runtimes",
                "license_info", "region", "profile", "assume_role_arn")
# Inputs applied in place: sharing and retention; description applies from the next version.
UPDATE_KEYS = ("share_with", "retain_versions", "retain_on_delete", "description")
OUTPUT_KEYS = ("layer_arn", "layer_version_arn", "version", "code_sha256", "code_size",
               "unzipped_size", "builder_used", "runtimes", "architectures")
_LAYER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,140}$")


@dataclass(frozen=True)
class LayerProps:
    """The provider's view of the resource inputs, read once at the top of every method."""

    content_hash: str
    packages: dict[str, str]
    runtime: str
    architecture: str
    layer_name: str
    description: str
    license_info: str | None
    compatible_runtimes: tuple[str, ...]
    share_with: tuple[str, ...]
    retain_versions: int
    retain_on_delete: bool
    s3_bucket: str | None
    target: publish.AwsTarget
    build: dict[str, Any]
    cache_bucket: str | None = None
    cache_prefix: str = ""
    smoke_test: bool | tuple[str, ...] = False  # True: every top-level package; or these names
    smoke_image: str | None = None

    @staticmethod
    def of(props: Mapping[str, Any]) -> LayerProps:
        return LayerProps(
            content_hash=props["content_hash"], packages=dict(props.get("packages") or {}),
            runtime=props["runtime"], architecture=props["architecture"],
            layer_name=props["layer_name"], description=props.get("description") or "",
            license_info=props.get("license_info") or None,
            compatible_runtimes=tuple(props.get("compatible_runtimes") or ()),
            share_with=tuple(props.get("share_with") or ()),
            retain_versions=int(props.get("retain_versions") or 0),
            retain_on_delete=bool(props.get("retain_on_delete")),
            s3_bucket=props.get("s3_bucket") or None,
            target=publish.AwsTarget(props.get("region") or None, props.get("profile") or None,
                                     props.get("assume_role_arn") or None),
            build=dict(props.get("build") or {}),
            cache_bucket=props.get("cache_bucket") or None,
            cache_prefix=props.get("cache_prefix") or "",
            smoke_test=_smoke_option(props.get("smoke_test")),
            smoke_image=props.get("smoke_image") or None,
        )

    def spec(self) -> LayerSpec:
        """The LayerSpec to build from; the dependency set itself travels in build.install_files."""
        b = self.build
        return LayerSpec(
            runtime=get_runtime(self.runtime), architecture=self.architecture,  # type: ignore[arg-type]
            source=Source(b["source_kind"], Path(b["source_path"])), builder=b["builder"],
            image=b.get("image") or None, network_mode=b.get("network_mode") or None,
            proxy=dict(b.get("proxy") or {}),
            ca_bundle=Path(b["ca_bundle"]) if b.get("ca_bundle") else None,
            exclude=tuple(b.get("exclude") or ()), slim=tuple(b.get("slim") or ()))

    def fingerprint(self) -> Fingerprint:
        return Fingerprint(self.content_hash, self.packages,
                           dict(self.build.get("install_files") or {}))


def check_props(news: Mapping[str, Any]) -> list[CheckFailure]:
    """Every problem with the inputs, as (property, reason) pairs that preview shows."""
    failures = [CheckFailure(e["property"], e["reason"]) for e in news.get("input_errors") or []]
    name = news.get("layer_name")
    if isinstance(name, str) and not _LAYER_NAME.match(name):
        failures.append(CheckFailure("layer_name", f"{name!r} is not a valid layer name: use 1-140 "
                                     "letters, digits, '-' or '_'"))
    try:
        publish.check_principals(news.get("share_with") or [])
    except SpecError as exc:
        failures.append(CheckFailure("share_with", f"{exc.problem} ({exc.fix})"))
    retain = news.get("retain_versions")
    if retain is not None and (not isinstance(retain, (int, float)) or retain < 0):
        failures.append(CheckFailure("retain_versions", f"expected a whole number >= 0, got "
                                     f"{retain!r}"))
    failures += _check_compatible_runtimes(news)
    failures += _check_smoke_options(news)
    return failures


def _check_compatible_runtimes(news: Mapping[str, Any]) -> list[CheckFailure]:
    # Checked here so a typo shows at preview against the argument, not as Lambda's
    # InvalidParameterValueException from publish_layer_version at apply.
    wanted = news.get("compatible_runtimes")
    if wanted is None or _unknown(wanted) or (isinstance(wanted, (list, tuple)) and not wanted):
        return []  # not given: the layer's own runtime is used
    if not isinstance(wanted, (list, tuple)):
        fix = f"write [{wanted!r}]" if isinstance(wanted, str) else 'e.g. ["python3.12"]'
        return [CheckFailure("compatible_runtimes", f"expected a list of runtime ids, got "
                             f"{wanted!r} ({fix})")]
    built_for = news.get("runtime")
    language = RUNTIMES[built_for].language if isinstance(built_for, str) and \
        built_for in RUNTIMES else None
    for rt in wanted:
        if _unknown(rt):
            continue
        if not isinstance(rt, str):
            return [CheckFailure("compatible_runtimes", f"expected runtime ids (strings), got "
                                 f"{rt!r}")]
        try:
            runtime = get_runtime(rt, "compatible_runtimes")
        except SpecError as exc:
            return [CheckFailure("compatible_runtimes", f"{exc.problem} ({exc.fix})")]
        if language and runtime.language != language:
            # A python layer listed for nodejs would attach fine and then import nothing.
            return [CheckFailure("compatible_runtimes", f"{rt!r} is a {runtime.language} runtime "
                                 f"but the layer is built for {built_for} ({language}): list "
                                 f"{language} runtimes only")]
    return []


def _check_smoke_options(news: Mapping[str, Any]) -> list[CheckFailure]:
    smoke, image = news.get("smoke_test"), news.get("smoke_image")
    names_ok = isinstance(smoke, (list, tuple)) and bool(smoke) and \
        all(isinstance(n, str) and n.strip() for n in smoke)
    if smoke is not None and not isinstance(smoke, bool) and not names_ok:
        return [CheckFailure("smoke_test", f"expected True, False or a non-empty list of import "
                             f"names (e.g. [\"numpy\"]), got {smoke!r}")]
    if image is not None and (not isinstance(image, str) or not image.strip()):
        return [CheckFailure("smoke_image", f"expected an image name, got {image!r}")]
    if image and not smoke:
        return [CheckFailure("smoke_image", "is only used with smoke_test: set smoke_test=True "
                             "or drop smoke_image")]
    return []


def _smoke_option(value: Any) -> bool | tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return bool(value)


def diff_props(olds: Mapping[str, Any], news: Mapping[str, Any]) -> DiffResult:
    """Replace on new content or identity, update on sharing/retention/description, else nothing."""
    def differs(key: str) -> bool:
        return _norm(olds.get(key)) != _norm(news.get(key))

    replaces = [k for k in REPLACE_KEYS if differs(k)]
    updates = [k for k in UPDATE_KEYS if differs(k)]
    return DiffResult(changes=bool(replaces or updates), replaces=replaces,
                      stables=["layer_name"] if not replaces else [],
                      delete_before_replace=False)


def _norm(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return sorted(_norm(v) for v in value)
    if value in ("", None, [], {}):
        return None
    return value


class LayerBuildProvider(ResourceProvider):
    """Builds, publishes, shares and retires layer versions. Holds no state (it is pickled)."""

    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, check_props(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_props(olds, news)

    def create(self, props: dict[str, Any]) -> CreateResult:
        p = LayerProps.of(props)
        zip_path, built = _build_or_reuse(p)
        _smoke_test(p, zip_path)
        version, fresh = publish.publish_version(
            p.target, p.layer_name, zip_path, content_hash=p.content_hash,
            code_sha256=built.get("code_sha256"), description=p.description,
            license_info=p.license_info,
            compatible_runtimes=p.compatible_runtimes or (p.runtime,),
            compatible_architectures=(p.architecture,), s3_bucket=p.s3_bucket)
        _log(f"{'published' if fresh else 'reused existing'} {version.layer_version_arn}")
        _fault_point("after-publish")
        publish.set_permissions(p.target, p.layer_name, version.version, p.share_with)
        return CreateResult(version.layer_version_arn, _outs(props, version, built))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        p = LayerProps.of(news)
        version = int(olds["version"])
        publish.set_permissions(p.target, p.layer_name, version, p.share_with)
        if _norm(olds.get("description")) != _norm(news.get("description")):
            _log("description: layer versions are immutable; the new text is used from the next "
                 "published version on")
        computed = {k: olds.get(k) for k in OUTPUT_KEYS}
        return UpdateResult({**news, **computed})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        p = LayerProps.of(props)
        current = publish.get_version(p.target, p.layer_name, int(props["version"]))
        if current is None:
            return ReadResult(None, {})  # deleted out of band: the engine drops it from state
        outs = {**props, "code_sha256": current.code_sha256, "code_size": current.code_size,
                "share_with": _shared(p, current.version)}
        return ReadResult(id_, outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        p = LayerProps.of(props)
        version = int(props["version"])
        if p.retain_on_delete:
            _log(f"retain_on_delete: keeping {props.get('layer_version_arn')}")
            return
        for v in versions_to_delete(p, version):
            publish.delete_version(p.target, p.layer_name, v)
            _log(f"deleted {p.layer_name}:{v}")


def versions_to_delete(p: LayerProps, version: int) -> list[int]:
    """What deleting this resource's version removes, given retain_versions.

    A newer version of the layer means this is the old side of a replace: keep the newest
    retain_versions older ones and remove the ones that fell out of that window. No newer version
    means the resource itself goes (destroy): its version and the ones it retained go with it.
    """
    owned = sorted(v.version for v in publish.list_versions(p.target, p.layer_name)
                   if v.content_hash is not None)
    newer = [v for v in owned if v > version]
    older = [v for v in owned if v < version]
    if not newer:
        retained = older[-p.retain_versions:] if p.retain_versions else []
        return [version, *retained]
    if not p.retain_versions:
        return [version]
    window = [v for v in owned if v < newer[0]][-p.retain_versions:]
    return [v for v in (*older, version) if v not in window]


def _shared(p: LayerProps, version: int) -> list[str]:
    try:
        return publish.get_permissions(p.target, p.layer_name, version)
    except LayerError:
        return list(p.share_with)


def _build_or_reuse(p: LayerProps) -> tuple[Path, dict[str, Any]]:
    """The zip for the content hash: from this machine's cache, else built now (and cached)."""
    from .build import build_layer

    cached = cache.lookup(p.content_hash)
    if cached is not None:
        _log(f"build: cache hit for {p.content_hash[:16]}, not rebuilding")
        return cached, _zip_facts(cached)
    spec = p.spec()
    if spec.source.kind == "source_dir":
        _check_source_dir_unchanged(spec, p.content_hash)
    out = cache.zip_path(p.content_hash)
    # use_cache: stores the zip with its facts here and, with cache_bucket, shares it (or gets it).
    result = build_layer(spec, out, log=_log, fp=p.fingerprint(), use_cache=True,
                         cache_bucket=p.cache_bucket, cache_prefix=p.cache_prefix,
                         cache_target=p.target)
    _log(f"build: {result.builder} ({result.builder_reason}); {result.zip.zipped_size:,} bytes "
         f"zipped, {result.zip.unzipped_size:,} unzipped")
    return out, {"code_sha256": result.zip.code_sha256, "unzipped_size": result.zip.unzipped_size,
                 "builder_used": result.builder}


def _smoke_test(p: LayerProps, zip_path: Path) -> None:
    """When asked, prove the zip imports in a Lambda-like container; SmokeError publishes nothing."""
    if not p.smoke_test:
        return
    from .smoke import smoke_test

    imports = None if p.smoke_test is True else list(p.smoke_test)
    smoke_test(zip_path, p.runtime, p.architecture, imports=imports, image=p.smoke_image, log=_log)


def _zip_facts(path: Path) -> dict[str, Any]:
    import zipfile

    with zipfile.ZipFile(path) as zf:
        unzipped = sum(i.file_size for i in zf.infolist())
    return {"code_sha256": publish.zip_sha256(path), "unzipped_size": unzipped,
            "builder_used": "cache"}


def _check_source_dir_unchanged(spec: LayerSpec, content_hash: str) -> None:
    from .fingerprint import fingerprint

    now = fingerprint(spec).content_hash
    if now != content_hash:
        raise LayerError(f"source_dir: {spec.source.path} changed after the program read it "
                         f"(hash {content_hash[:12]} then, {now[:12]} now); run `pulumi up` again")


def _outs(props: Mapping[str, Any], v: publish.LayerVersion, built: Mapping[str, Any]) -> dict[str, Any]:
    return {**props, "layer_arn": v.layer_arn, "layer_version_arn": v.layer_version_arn,
            "version": v.version, "code_sha256": v.code_sha256, "code_size": v.code_size,
            "unzipped_size": built.get("unzipped_size"), "builder_used": built.get("builder_used"),
            "runtimes": list(v.compatible_runtimes), "architectures": list(v.compatible_architectures)}


def _fault_point(name: str) -> None:
    """Hang here when PLL_FAULT_INJECT names this point: lets tests kill a deploy at a known step."""
    import os
    import time

    if os.environ.get("PLL_FAULT_INJECT") == name:
        _log(f"fault injection: hanging at {name}")
        engine = os.getppid()
        while os.getppid() == engine:  # until the engine is killed; then leave no orphan behind
            time.sleep(0.1)
        os._exit(1)


def _log(message: str) -> None:
    # The dynamic provider has no engine log channel; the engine shows its stderr per resource.
    print(f"[lambda-layers] {message}", file=sys.stderr, flush=True)


class LambdaLayerBuild(pulumi.dynamic.Resource, module="lambda-layers", name="LambdaLayerBuild"):
    """A Lambda layer built from a dependency spec and published as an immutable layer version.

    Program time (preview and up) only validates and fingerprints; the build runs at apply time,
    and only when the content hash changed. A changed hash replaces the resource: the new version
    is published first, dependents follow `layer_version_arn`, then the old version is deleted
    (or kept, per retain_versions / retain_on_delete).
    """

    layer_arn: pulumi.Output[str]
    layer_version_arn: pulumi.Output[str]
    version: pulumi.Output[int]
    content_hash: pulumi.Output[str]
    code_sha256: pulumi.Output[str]
    code_size: pulumi.Output[int]
    unzipped_size: pulumi.Output[int]
    packages: pulumi.Output[dict[str, str]]
    runtimes: pulumi.Output[list[str]]
    architectures: pulumi.Output[list[str]]
    builder_used: pulumi.Output[str]

    def __init__(self, resource_name: str, *, runtime: str, architecture: str = "x86_64",
                 requirements: str | None = None, lock: str | None = None,
                 package_json: str | None = None, source_dir: str | None = None,
                 layer_name: str | None = None, description: str | None = None,
                 license_info: str | None = None, compatible_runtimes: Sequence[str] | None = None,
                 share_with: Sequence[str] | None = None, retain_versions: int = 0,
                 retain_on_delete: bool = False, s3_bucket: str | None = None,
                 cache_bucket: str | None = None, cache_prefix: str = "",
                 builder: str = "auto", image: str | None = None, network_mode: str | None = None,
                 proxy: Mapping[str, str] | None = None, ca_bundle: str | None = None,
                 exclude: Sequence[str] | None = None, slim: Sequence[str] | bool | None = None,
                 frozen: bool = False, region: str | None = None, profile: str | None = None,
                 assume_role_arn: str | None = None,
                 smoke_test: bool | Sequence[str] = False, smoke_image: str | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """Declare a layer. Exactly one of requirements, lock, package_json, source_dir.

        runtime/architecture: the Lambda target (e.g. "python3.12", "arm64").
        layer_name: the Lambda layer name (default: the resource name).
        share_with: account ids, organization ids (o-...) or "*" allowed to use each version.
        retain_versions: older versions to keep when a new one replaces this one.
        retain_on_delete: keep the version in AWS when the resource is deleted.
        s3_bucket: staging bucket for zips over the 50 MB direct-upload limit.
        cache_bucket/cache_prefix: S3 build cache shared by machines and CI: a zip built anywhere
            for this content hash is used (after its sha256 is checked) instead of building, and
            new builds are put there. Not content: it never changes the content hash.
        builder/image/network_mode/proxy/ca_bundle/exclude/slim: how the layer is built.
        frozen: refuse to resolve anything; a lock must give every version.
        region/profile/assume_role_arn: where the layer is published.
        smoke_test: before publishing, import every top-level package (True) or these names in a
            Lambda-like container; a failure publishes nothing. Needs Docker. Not content: it
            never changes the content hash. smoke_image: the image (default: the AWS Lambda
            base image of the runtime).
        """
        args = {"runtime": runtime, "architecture": architecture, "requirements": requirements,
                "lock": lock, "package_json": package_json, "source_dir": source_dir,
                "builder": builder, "image": image, "network_mode": network_mode,
                "proxy": dict(proxy) if proxy else None, "ca_bundle": ca_bundle,
                "exclude": list(exclude) if exclude else None, "slim": slim, "frozen": frozen}
        content_hash, packages, build, errors = program_time_fingerprint(args)
        props: dict[str, Any] = {
            "content_hash": content_hash, "packages": packages, "runtime": runtime,
            "architecture": architecture, "layer_name": layer_name or resource_name,
            "description": description, "license_info": license_info,
            # A string stays a string: check_props then says "write [...]" instead of list()
            # splitting it into one bogus runtime (or principal) per character.
            "compatible_runtimes": compatible_runtimes if isinstance(compatible_runtimes, str)
            else list(compatible_runtimes) if compatible_runtimes else None,
            "share_with": share_with if isinstance(share_with, str)
            else list(share_with) if share_with else [],
            "retain_versions": retain_versions, "retain_on_delete": retain_on_delete,
            "s3_bucket": s3_bucket, "region": region, "profile": profile,
            "assume_role_arn": assume_role_arn,
            "cache_bucket": cache_bucket, "cache_prefix": cache_prefix,
            "build": pulumi.Output.secret(build) if proxy else build,
            "smoke_test": list(smoke_test) if isinstance(smoke_test, (list, tuple)) else smoke_test,
            "smoke_image": smoke_image,
            **{k: None for k in OUTPUT_KEYS},
        }
        if errors:
            props["input_errors"] = errors
        super().__init__(LayerBuildProvider(), resource_name, props, opts)


def program_time_fingerprint(args: Mapping[str, Any]) -> tuple[str, dict[str, str], dict[str, Any],
                                                             list[dict[str, str]]]:
    """(content_hash, packages, build inputs, input errors): validate and hash, never build."""
    from .errors import ResolveError
    from .fingerprint import fingerprint

    try:
        spec = spec_from_dict(args)
        fp = fingerprint(spec)
    except SpecError as exc:
        return "", {}, {}, [{"property": exc.argument, "reason": str(exc)}]
    except ResolveError as exc:
        kind = next((k for k in ("requirements", "lock", "package_json") if args.get(k)), "runtime")
        return "", {}, {}, [{"property": kind, "reason": str(exc)}]
    build = {
        "builder": spec.builder, "image": spec.image, "network_mode": spec.network_mode,
        "proxy": dict(spec.proxy), "ca_bundle": str(spec.ca_bundle) if spec.ca_bundle else None,
        "exclude": list(spec.exclude), "slim": list(spec.slim), "source_kind": spec.source.kind,
        "source_path": str(spec.source.path), "install_files": fp.install_files,
    }
    return fp.content_hash, fp.packages, build, []


# ------------------------------------------------------------------ LayerAttachment

# Applied in place: moving to other functions or another account attaches there first, then
# detaches from the functions left behind (compared by ARN), so none is left without the layer;
# a new position moves the layer there. (layer_unzipped_size follows layer_version_arn.)
ATTACH_UPDATE_KEYS = ("layer_version_arn", "functions", "position", "keep_on_delete", "region",
                      "profile", "assume_role_arn")


@dataclass(frozen=True)
class AttachProps:
    """The attachment provider's view of its inputs."""

    layer_version_arn: str
    functions: tuple[str, ...]
    position: int | None
    keep_on_delete: bool
    target: publish.AwsTarget
    unzipped_size: int | None = None  # of the layer version, when known (a LambdaLayerBuild's)

    @staticmethod
    def of(props: Mapping[str, Any]) -> AttachProps:
        position = props.get("position")
        size = props.get("layer_unzipped_size")
        return AttachProps(
            layer_version_arn=props["layer_version_arn"],
            functions=tuple(props.get("functions") or ()),
            position=int(position) if position is not None else None,
            keep_on_delete=bool(props.get("keep_on_delete")),
            target=publish.AwsTarget(props.get("region") or None, props.get("profile") or None,
                                     props.get("assume_role_arn") or None),
            unzipped_size=int(size) if isinstance(size, (int, float)) else None)


def check_attachment(news: Mapping[str, Any]) -> list[CheckFailure]:
    """Input problems of a LayerAttachment, against the property. Values not known yet at preview
    (a new layer's ARN, a new function's name) pass; they are checked again at apply."""
    failures = []
    functions = news.get("functions")
    if _unknown(functions):
        pass
    elif not isinstance(functions, list) or not functions or \
            not all(_unknown(f) or (isinstance(f, str) and f) for f in functions):
        failures.append(CheckFailure("functions", "expected a non-empty list of function names "
                                     "or ARNs"))
    elif len({f for f in functions if not _unknown(f)}) != sum(not _unknown(f) for f in functions):
        failures.append(CheckFailure("functions", "lists a function twice"))
    arn = news.get("layer_version_arn")
    if not _unknown(arn) and not (isinstance(arn, str) and re.fullmatch(
            r"arn:[^:]+:lambda:[^:]+:\d{12}:layer:[^:]+:\d+", arn)):
        failures.append(CheckFailure("layer", f"{arn!r} is not a layer version ARN "
                                     "(arn:aws:lambda:<region>:<account>:layer:<name>:<version>); "
                                     "pass a LambdaLayerBuild or its layer_version_arn"))
    position = news.get("position")
    if position is not None and (not isinstance(position, (int, float)) or not 0 <= position <= 4):
        failures.append(CheckFailure("position", f"expected 0-4 (a function has at most 5 layers), "
                                     f"got {position!r}"))
    return failures


def _unknown(value: Any) -> bool:
    """A value the engine will only know at apply time (preview of a not yet created input)."""
    from pulumi.output import Unknown
    from pulumi.runtime.rpc import UNKNOWN

    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


def diff_attachment(olds: Mapping[str, Any], news: Mapping[str, Any]) -> DiffResult:
    """Update (never replace) when an input or a function's actual layer (drift) differs."""
    wanted = news.get("layer_version_arn")
    attached = olds.get("attached") or {}
    functions = news.get("functions")
    drifted = _unknown(functions) or any(attached.get(fn) != wanted for fn in functions or [])
    changed = any(_norm(olds.get(k)) != _norm(news.get(k)) for k in ATTACH_UPDATE_KEYS)
    return DiffResult(changes=bool(changed or drifted), replaces=[], delete_before_replace=False)


class LayerAttachmentProvider(ResourceProvider):
    """Points named functions at a layer version; reads back drift. Holds no state."""

    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(news, check_attachment(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_attachment(olds, news)

    def create(self, props: dict[str, Any]) -> CreateResult:
        from . import attach

        p = AttachProps.of(props)
        changes = attach.attach(p.target, p.layer_version_arn, p.functions, p.position,
                                unzipped_size=p.unzipped_size)
        for change in changes:
            _log(f"attach: {change.function}: {len(change.old_layers)} -> "
                 f"{len(change.new_layers)} layers, now {p.layer_version_arn}")
        base = attach.layer_base_arn(p.layer_version_arn)
        return CreateResult(f"{base}|{','.join(p.functions)}", {**props, "attached": {
            fn: p.layer_version_arn for fn in p.functions}, "layer_arn": base})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        from . import attach

        p, old = AttachProps.of(news), AttachProps.of(olds)
        # A new layer (renamed, another region) takes the old one's place in each function; a
        # new position moves it there.
        changes = attach.attach(p.target, p.layer_version_arn, p.functions, p.position,
                                replacing=old.layer_version_arn, move=p.position != old.position,
                                unzipped_size=p.unzipped_size)
        if (set(old.functions) != set(p.functions) or old.target != p.target) \
                and not p.keep_on_delete:
            try:
                _detach_left_behind(old, p)
            except LayerError as exc:
                # The update fails, so the state keeps the old inputs: undo the attach too, so
                # the functions match it again.
                undone = attach.rollback(p.target, changes)
                failed = list(exc.outcomes) if isinstance(exc, attach.AttachError) else \
                    [attach.FunctionOutcome("the functions no longer listed", str(exc))]
                raise attach.AttachError("update (attach, then detach from the functions no "
                                         "longer listed)", p.layer_version_arn,
                                         [*undone, *failed]) from exc
        return UpdateResult({**news, "attached": {fn: p.layer_version_arn for fn in p.functions},
                             "layer_arn": attach.layer_base_arn(p.layer_version_arn)})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        from . import attach

        p = AttachProps.of(props)
        actual = attach.attached_versions(p.target, p.functions, p.layer_version_arn)
        for fn, arn in actual.items():
            if arn != p.layer_version_arn:
                _log(f"drift: {fn} uses {arn or 'no version of the layer'}, not "
                     f"{p.layer_version_arn}")
        return ReadResult(id_, {**props, "attached": actual})

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        from . import attach

        p = AttachProps.of(props)
        if p.keep_on_delete:
            _log("keep_on_delete: functions keep the layer")
            return
        existing = list(attach.attached_versions(p.target, p.functions, p.layer_version_arn))
        if existing:
            attach.detach(p.target, p.layer_version_arn, existing)


def _detach_left_behind(old: AttachProps, new: AttachProps) -> None:
    """Remove the old layer from the functions `old` listed and `new` does not. By ARN: "billing"
    and its ARN, or one account through two profiles, are the same function, which must keep the
    layer just attached."""
    from . import attach

    kept = set(attach.function_arns(new.target, new.functions).values())
    left = [fn for fn, arn in attach.function_arns(old.target, old.functions).items()
            if arn not in kept]
    if left:
        attach.detach(old.target, old.layer_version_arn, left)
        _log(f"detach: {', '.join(left)} no longer listed; layer removed")


class LayerAttachment(pulumi.dynamic.Resource, module="lambda-layers", name="LayerAttachment"):
    """Keeps functions this stack does not own on a layer's current version.

    For each function, any version of the same layer is replaced by the new version ARN (or the
    layer is added at `position`), other layers keep their order. Because it reads the layer's
    version ARN, Pulumi moves the functions before a replaced layer version is deleted.
    """

    attached: pulumi.Output[dict[str, Any]]
    layer_arn: pulumi.Output[str]

    def __init__(self, resource_name: str, *, layer: Any, functions: Sequence[str],
                 position: int | None = None, keep_on_delete: bool = False,
                 region: str | None = None, profile: str | None = None,
                 assume_role_arn: str | None = None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        """layer: a LambdaLayerBuild or a layer version ARN (string or Output); a LambdaLayerBuild
        also gives its unzipped size to the 250 MB check (of an ARN only the zipped size is known).
        functions: names or ARNs. position: where to add the layer (changing it moves the layer).
        keep_on_delete: leave the layer on the functions when this resource is deleted or a
        function is dropped from the list (default: remove it). region/profile/assume_role_arn:
        where the functions are (another account through a role)."""
        # Not getattr(): on an Output (a StackReference value) it would lift the attribute lookup
        # onto the string inside and fail only at apply time.
        version_arn = layer.layer_version_arn if isinstance(layer, pulumi.Resource) else layer
        unzipped = layer.unzipped_size if isinstance(layer, LambdaLayerBuild) else None
        props = {"layer_version_arn": version_arn, "layer_unzipped_size": unzipped,
                 "functions": list(functions), "position": position,
                 "keep_on_delete": keep_on_delete, "region": region, "profile": profile,
                 "assume_role_arn": assume_role_arn,
                 "attached": None, "layer_arn": None}
        super().__init__(LayerAttachmentProvider(), resource_name, props, opts)
