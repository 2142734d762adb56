"""Pulumi glue: the LambdaLayerBuild dynamic resource and its provider, thin over the library."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import (
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from pulumi_lambda_layers.aws import layers, retention
from pulumi_lambda_layers.aws.functions import layer_base_arn
from pulumi_lambda_layers.build import cache
from pulumi_lambda_layers.errors import LayerError, SpecError
from pulumi_lambda_layers.naming import default_layer_name, owner_label
from pulumi_lambda_layers.resources.arguments import (
    LambdaLayerBuildArgs,
    as_list,
    config_defaults,
    preview_time_outputs,
    stack_config,
    with_defaults,
)
from pulumi_lambda_layers.resources.checks import check_props, diff_props
from pulumi_lambda_layers.resources.common import log, norm
from pulumi_lambda_layers.resources.faults import fault_point
from pulumi_lambda_layers.runtimes import get_runtime
from pulumi_lambda_layers.sbom import LayerContents
from pulumi_lambda_layers.sources.fingerprint import Fingerprint
from pulumi_lambda_layers.spec import LayerSpec, Source
from pulumi_lambda_layers.validate.sizes import size_line

OUTPUT_KEYS = ("layer_arn", "layer_version_arn", "version", "code_sha256", "code_size",
               "unzipped_size", "builder_used", "runtimes", "architectures", "sbom")


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
    target: layers.AwsTarget
    build: dict[str, Any]
    cache_bucket: str | None = None
    cache_prefix: str = ""
    cache_signing_key: str | None = field(default=None, repr=False)
    smoke_test: bool | tuple[str, ...] = False  # True: every top-level package; or these names
    smoke_image: str | None = None
    owner: str | None = None  # the marker's owner label; None in states from before owners
    consumer_roles: tuple[str, ...] = ()  # roles in accounts whose functions may use the layer
    force_delete: bool = False
    deny_licenses: tuple[str, ...] = ()  # SPDX ids or expressions no package may be under

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
            target=layers.AwsTarget(props.get("region") or None, props.get("profile") or None,
                                     props.get("assume_role_arn") or None),
            build=dict(props.get("build") or {}),
            cache_bucket=props.get("cache_bucket") or None,
            cache_prefix=props.get("cache_prefix") or "",
            cache_signing_key=props.get("cache_signing_key") or None,
            smoke_test=_smoke_option(props.get("smoke_test")),
            smoke_image=props.get("smoke_image") or None,
            owner=props.get("owner") or None,
            consumer_roles=tuple(props.get("consumer_roles") or ()),
            force_delete=props.get("force_delete") is True,
            deny_licenses=tuple(props.get("deny_licenses") or ()),
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
            exclude=tuple(b.get("exclude") or ()), slim=tuple(b.get("slim") or ()),
            # Builds of one project share a package cache; other projects' builds cannot reach it.
            cache_owner=(self.owner or "").split("/", 1)[0])

    def fingerprint(self) -> Fingerprint:
        """What to build from: install_files with the credentials the state keeps masked taken
        back from the source file (the provider runs where the program does)."""
        from pulumi_lambda_layers.sources.credentials import restore

        b = self.build
        source = Path(b["source_path"])
        sources = [source, source.with_name("package-lock.json")] \
            if b.get("source_kind") == "package_json" else [source]
        return Fingerprint(self.content_hash, self.packages,
                           restore(b.get("install_files") or {}, sources))


def _smoke_option(value: Any) -> bool | tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    return bool(value)


class LayerBuildProvider(ResourceProvider):
    """Builds, publishes, shares and retires layer versions. Holds no state (it is pickled)."""

    serialize_as_secret_always = False

    def configure(self, req: ConfigureRequest) -> None:
        # Called once in the provider host, right after the provider is unpickled.
        from pulumi_lambda_layers.resources.host import clean_errors

        clean_errors()

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult(keep_auto_name(olds, news), check_props(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        return diff_props(olds, news)

    def create(self, props: dict[str, Any]) -> CreateResult:
        if props.get("import_version"):
            return adopt_version(str(props["import_version"]), props)
        p = LayerProps.of(props)
        zip_path, built = _build_or_reuse(p)
        # After the build, before anything is published: a denied license publishes nothing.
        built["sbom"] = _sbom(p, built.pop("contents"))
        _smoke_test(p, zip_path)
        version, fresh = layers.publish_version(
            p.target, p.layer_name, zip_path, content_hash=p.content_hash,
            code_sha256=built.get("code_sha256"), description=p.description,
            license_info=p.license_info,
            compatible_runtimes=p.compatible_runtimes or (p.runtime,),
            compatible_architectures=(p.architecture,), s3_bucket=p.s3_bucket, owner=p.owner)
        log(f"{'published' if fresh else 'reused existing'} {version.layer_version_arn}")
        fault_point("after-publish")
        # A failure from here on (or a kill) leaves the version published, on purpose: the next
        # up's publish_version finds it by its marker (this owner, this content) and adopts it,
        # then shares it. Deleting it here could fail for the same reason set_permissions did,
        # and a kill cannot delete anything, so adoption is the one recovery (docs/aws.md).
        layers.set_permissions(p.target, p.layer_name, version.version, p.share_with)
        return CreateResult(version.layer_version_arn, _outs(props, version, built))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        p = LayerProps.of(news)
        version = int(olds["version"])
        if norm(olds.get("deny_licenses")) != norm(news.get("deny_licenses")):
            from pulumi_lambda_layers.sbom.state import recheck

            recheck(olds.get("sbom"), p.packages, p.deny_licenses)
        layers.set_permissions(p.target, p.layer_name, version, p.share_with)
        if norm(olds.get("description")) != norm(news.get("description")):
            log("description: layer versions are immutable; the new text is used from the next "
                 "published version on")
        computed = {k: olds.get(k) for k in OUTPUT_KEYS}
        return UpdateResult({**news, **computed})

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return read_version(id_, props)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        p = LayerProps.of(props)
        if p.retain_on_delete:
            log(f"retain_on_delete: keeping {props.get('layer_version_arn')}")
            return
        version = int(props["version"])
        listed = layers.list_versions(p.target, p.layer_name)
        owned = retention.owned_versions(listed, p.owner, version)
        others = sorted(v.version for v in listed if v.content_hash and v.version not in owned)
        if others:
            log(f"leaving {p.layer_name} versions {', '.join(map(str, others))} alone: other "
                 "stacks or resources published them")
        layer_arn = props.get("layer_arn") or layer_base_arn(str(props["layer_version_arn"]))
        retention.delete_unless_used(
            p.target, p.layer_name, layer_arn,
            retention.versions_to_delete(owned, version, p.retain_versions),
            consumers=retention.consumer_targets(layer_arn, p.consumer_roles, p.target.profile),
            force=p.force_delete, log=log)


def keep_auto_name(olds: Mapping[str, Any], news: dict[str, Any]) -> dict[str, Any]:
    """news, with the layer name the resource already has when the name is the default one.

    As Pulumi's auto-naming does: a default name is chosen once, at create, and kept, so a newer
    naming rule (or a stack rename) never replaces a layer by itself. States from before
    `auto_named` existed used the resource name by default, which this keeps too."""
    old_name = olds.get("layer_name")
    if news.get("auto_named") and isinstance(old_name, str) and old_name and \
            olds.get("auto_named", True) and old_name != news.get("layer_name"):
        return {**news, "layer_name": old_name}
    return news


def adopt_version(arn: str, props: Mapping[str, Any]) -> CreateResult:
    """Take an existing version into the state as this resource's (an import): nothing is built
    or published; a version made for another architecture or runtime is refused."""
    read = read_version(arn, props)
    if read.id is None:
        raise SpecError("import_version", f"{arn} does not exist",
                        "check the version ARN (and region/profile), or drop import_version to "
                        "publish a new version")
    outs = read.outs or {}
    if outs["architecture"] != props.get("architecture") or \
            (outs["runtimes"] and props.get("runtime") not in outs["runtimes"]):
        raise SpecError("import_version", f"{arn} is for {', '.join(outs['runtimes']) or '?'} "
                        f"{', '.join(outs['architectures']) or '?'}, but this layer is "
                        f"{props.get('runtime')} {props.get('architecture')}",
                        "import a version built for this target, or change runtime/architecture")
    if outs["content_hash"] != props.get("content_hash"):
        log(f"warning: {arn} was built from other dependencies (content hash "
             f"{str(outs['content_hash'])[:16]}..., the program's is "
             f"{str(props.get('content_hash'))[:16]}...): the next `pulumi up` replaces it")
    log(f"imported {arn}: adopted as it is, nothing built or published")
    return CreateResult(arn, {**outs, "builder_used": "import", "unzipped_size": None})


def read_version(id_: str, props: Mapping[str, Any]) -> ReadResult:
    """The version `id_` (its version ARN) as AWS has it now: for a refresh, and for an import,
    where props are only the program's inputs. What a version was published with cannot change,
    so where AWS differs from the inputs its answer wins (and a mismatch shows as a diff)."""
    layer_arn = layer_base_arn(id_)
    name, number = layer_arn.rsplit(":", 1)[1], int(id_.rsplit(":", 1)[1])
    target = layers.AwsTarget(props.get("region") or id_.split(":")[3],
                               props.get("profile") or None, props.get("assume_role_arn") or None)
    current = layers.get_version(target, name, number)
    if current is None:
        return ReadResult(None, {})  # deleted out of band: the engine drops it from state
    content_hash = current.content_hash or props.get("content_hash")
    if current.content_hash is None:
        log(f"{name}:{number} carries no content-hash marker (published by hand): its content "
             f"hash is taken from the program ({str(content_hash)[:16]}...), so it counts as "
             "built from the program's dependencies until they change")
    runtime = props.get("runtime")
    wanted_runtimes = props.get("compatible_runtimes") or ([runtime] if runtime else [])
    compatible = props.get("compatible_runtimes") \
        if sorted(wanted_runtimes) == sorted(current.compatible_runtimes) \
        else list(current.compatible_runtimes)
    architecture = props.get("architecture")
    if current.compatible_architectures and architecture not in current.compatible_architectures:
        architecture = current.compatible_architectures[0]
    try:
        shared = layers.get_permissions(target, name, number)
    except LayerError:
        shared = list(props.get("share_with") or [])
    return ReadResult(id_, {
        **props, "content_hash": content_hash, "layer_name": name, "architecture": architecture,
        "compatible_runtimes": compatible, "license_info": current.license_info,
        "layer_arn": current.layer_arn, "layer_version_arn": current.layer_version_arn,
        "version": current.version, "code_sha256": current.code_sha256,
        "code_size": current.code_size, "runtimes": list(current.compatible_runtimes),
        "architectures": list(current.compatible_architectures), "share_with": shared})


def _build_or_reuse(p: LayerProps) -> tuple[Path, dict[str, Any]]:
    """The zip for the content hash: the pipeline's cache lookup (this machine, then
    cache_bucket) or a build now, stored in the cache; the pipeline checks a source_dir still
    holds what the program hashed."""
    from pulumi_lambda_layers.build.pipeline import build_layer

    result = build_layer(p.spec(), cache.zip_path(p.content_hash), fp=p.fingerprint(),
                         use_cache=True, cache_bucket=p.cache_bucket,
                         cache_prefix=p.cache_prefix, cache_target=p.target,
                         cache_signing_key=p.cache_signing_key)
    if result.builder != "cache":
        log(f"build: {result.builder} ({result.builder_reason}); {result.zip.zipped_size:,} "
            f"bytes zipped, {result.zip.unzipped_size:,} unzipped")
    assert result.contents is not None  # the pipeline's step sbom
    log(size_line(result.report.largest, result.zip.unzipped_size))
    return result.zip.path, {"code_sha256": result.zip.code_sha256,
                             "unzipped_size": result.zip.unzipped_size,
                             "builder_used": result.builder, "contents": result.contents}


def _sbom(p: LayerProps, contents: LayerContents) -> dict[str, Any]:
    """The license policy, then the SBOM (in S3 beside the cached zips, under cache_prefix, or in
    the staging bucket, when one is set) as the summary the state keeps."""
    from pulumi_lambda_layers.sbom.state import checked_summary, put_in_s3

    bucket = p.cache_bucket or p.s3_bucket
    key = f"{p.cache_prefix if p.cache_bucket else ''}sbom/{p.layer_name}/{p.content_hash}.cdx.json"
    return checked_summary(contents, p.deny_licenses, p.layer_name, lambda document: put_in_s3(
        p.target, bucket, key, document, log) if bucket else None, log)


def _smoke_test(p: LayerProps, zip_path: Path) -> None:
    """When asked, prove the zip imports in a Lambda-like container; SmokeError publishes nothing."""
    if not p.smoke_test:
        return
    from pulumi_lambda_layers.smoke.run import smoke_test

    imports = list(p.smoke_test) if isinstance(p.smoke_test, tuple) else None
    smoke_test(zip_path, p.runtime, p.architecture, imports=imports, image=p.smoke_image, log=log)


def _outs(props: Mapping[str, Any], v: layers.LayerVersion, built: Mapping[str, Any]) -> dict[str, Any]:
    return {**props, "layer_arn": v.layer_arn, "layer_version_arn": v.layer_version_arn,
            "version": v.version, "code_sha256": v.code_sha256, "code_size": v.code_size,
            "unzipped_size": built.get("unzipped_size"), "builder_used": built.get("builder_used"),
            "sbom": built.get("sbom"),
            "runtimes": list(v.compatible_runtimes), "architectures": list(v.compatible_architectures)}


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
    # The SBOM's summary: format, components, sha256, {license: [packages]}, unknown_licenses,
    # location (s3://... when cache_bucket or s3_bucket is set); the document itself stays out.
    sbom: pulumi.Output[dict[str, Any]]

    def __init__(self, resource_name: str, args: LambdaLayerBuildArgs | None = None,
                 opts: pulumi.ResourceOptions | None = None, **kwargs: Any) -> None:
        """Declare a layer: `LambdaLayerBuild(name, runtime=..., lock=..., ...)`, or
        `LambdaLayerBuild(name, LambdaLayerBuildArgs(...), opts)`. Exactly one of requirements,
        lock, package_json, source_dir. The arguments that decide the content hash (runtime,
        architecture, the source, builder/image/network_mode/proxy/ca_bundle/exclude/slim,
        frozen) must be plain values, known at preview; every other one may be an Output
        (LambdaLayerBuildArgs' type hints say which). Arguments left out take the stack's
        `lambda-layers:` config (docs/pulumi.md), then the built-in default.

        runtime/architecture: the Lambda target (e.g. "python3.12", "arm64").
        layer_name: the Lambda layer name (default: `<project>-<stack>-<resource>-<8 hex>`,
            unique to this project, stack and resource, chosen at create and kept). Give one
            name to several stacks on purpose only: each still reuses and deletes only the
            versions it published itself (docs/stacks.md).
        share_with: account ids, organization ids (o-...) or "*" allowed to use each version.
        retain_versions: older versions (of this resource's own) to keep when a new one replaces
            this one.
        retain_on_delete: keep the version in AWS when the resource is deleted.
        consumer_roles: IAM role ARNs, one per other account whose functions may use the layer;
            before a version is deleted, functions using it are looked for in the layer's account
            and through each role (lambda:ListFunctions). A version in use is kept, with a
            warning naming the functions.
        force_delete: delete versions even when functions still use them (their next update
            then fails until they move); takes effect once applied by `pulumi up`.
        import_version: a version ARN to adopt at create instead of building and publishing
            (`opts=ResourceOptions(import_=ARN)` does the same: Pulumi's own import cannot reach
            a dynamic provider, pulumi/pulumi#16175). Its layer name becomes layer_name; a
            version without a content-hash marker takes the program's hash. Ignored once created.
        s3_bucket: staging bucket for zips over the 50 MB direct-upload limit.
        cache_bucket/cache_prefix: S3 build cache shared by machines and CI: a zip built anywhere
            for this content hash is used (after its sha256 is checked) instead of building, and
            new builds are put there. Not content: it never changes the content hash.
        cache_signing_key: a secret shared by everyone who may fill cache_bucket (give a
            Pulumi secret; default: $PLL_CACHE_SIGNING_KEY): objects put there are signed, and
            unsigned or wrongly signed ones are ignored (built here instead). Kept in the state
            only as a secret; changing it is no change to the layer.
        builder/image/network_mode/proxy/ca_bundle/exclude/slim: how the layer is built.
        frozen: refuse to resolve anything; a lock must give every version.
        resolution_max_age: how long a resolution of unpinned requirements is reused instead of
            asking the index again: seconds or "90s", "30m", "1h", "2d"; 0 resolves every time
            (default: config lambda-layers:resolutionMaxAge, else 1 h). Locks never resolve.
        region/profile/assume_role_arn: where the layer is published.
        deny_licenses: SPDX ids (e.g. "GPL-3.0-only"; matched with their -only/-or-later forms)
            or expressions no package may be under: after the build, before publishing, a layer
            holding one is refused naming the package and its license (default: config
            lambda-layers:denyLicenses, a JSON list). Packages whose license is unknown are
            listed as a warning. Not content: it never changes the content hash.
        smoke_test: before publishing, import every top-level package (True) or these names in a
            Lambda-like container; a failure publishes nothing. Needs Docker. Not content: it
            never changes the content hash. smoke_image: the image (default: the AWS Lambda
            base image of the runtime).
        """
        if args is not None and kwargs:
            raise TypeError("LambdaLayerBuild takes a LambdaLayerBuildArgs or keyword arguments, "
                            f"not both (got args and {', '.join(sorted(kwargs))})")
        given = args if args is not None else LambdaLayerBuildArgs.of(kwargs)
        defaults, config_problems = config_defaults(stack_config())
        a = with_defaults(given, defaults)
        source = {"runtime": a.runtime, "architecture": a.architecture,
                  "requirements": a.requirements, "lock": a.lock,
                  "package_json": a.package_json, "source_dir": a.source_dir,
                  "builder": a.builder or "auto", "image": a.image,
                  "network_mode": a.network_mode, "proxy": dict(a.proxy) if a.proxy else None,
                  "ca_bundle": a.ca_bundle, "exclude": list(a.exclude) if a.exclude else None,
                  "slim": a.slim, "frozen": a.frozen}
        from pulumi_lambda_layers.resources import program_time

        refused = preview_time_outputs(a)
        # Started here, awaited by the engine before registering: the layers of a program
        # resolve at once instead of one after another on this thread.
        content_hash, packages, build, errors = program_time.as_outputs(
            program_time.refused(refused) if refused else
            program_time.start(source, a.resolution_max_age), extra_errors=config_problems)
        project, stack = pulumi.get_project(), pulumi.get_stack()
        import_version, layer_name = a.import_version, a.layer_name
        if opts is not None and opts.import_:
            # The engine's import reads with no inputs, so a dynamic provider cannot find itself:
            # adopt the version in create instead.
            import_version, opts = opts.import_, copy.copy(opts)
            opts.import_ = None
        if import_version and not layer_name and isinstance(import_version, str):
            layer_name = import_version.split(":")[6] if import_version.count(":") == 7 else None
        if import_version:
            pulumi.log.info(f"import: {import_version} is adopted at create instead of a new "
                            "version; without a content-hash marker its hash is the program's")
        props: dict[str, Any] = {
            "import_version": import_version,
            "content_hash": content_hash, "packages": packages, "runtime": a.runtime,
            "architecture": a.architecture,
            "layer_name": layer_name or default_layer_name(project, stack, resource_name),
            "auto_named": not layer_name, "owner": owner_label(project, stack, resource_name),
            # Lists stay Inputs (an Output of a list, or a list of Outputs); a string stays a
            # string, so check_props says "write [...]" instead of one principal per character.
            "consumer_roles": as_list(a.consumer_roles) if a.consumer_roles is not None else [],
            "force_delete": a.force_delete,
            "description": a.description, "license_info": a.license_info,
            "compatible_runtimes": as_list(a.compatible_runtimes),
            "share_with": as_list(a.share_with) if a.share_with is not None else [],
            "retain_versions": a.retain_versions if a.retain_versions is not None else 0,
            "retain_on_delete": a.retain_on_delete,
            "s3_bucket": a.s3_bucket, "region": a.region, "profile": a.profile,
            "assume_role_arn": a.assume_role_arn,
            "cache_bucket": a.cache_bucket,
            "cache_prefix": a.cache_prefix if a.cache_prefix is not None else "",
            "cache_signing_key": pulumi.Output.secret(a.cache_signing_key)
            if a.cache_signing_key is not None else None,
            "build": pulumi.Output.secret(build) if a.proxy else build,
            "smoke_test": as_list(a.smoke_test) if isinstance(a.smoke_test, (list, tuple))
            else a.smoke_test if a.smoke_test is not None else False,
            "smoke_image": a.smoke_image,
            "deny_licenses": as_list(a.deny_licenses) if a.deny_licenses is not None else [],
            **{k: None for k in OUTPUT_KEYS},
        }
        props["input_errors"] = errors  # None (not sent) when the input is fine
        secret = pulumi.ResourceOptions(additional_secret_outputs=["cache_signing_key"])
        super().__init__(LayerBuildProvider(), resource_name, props,
                         pulumi.ResourceOptions.merge(opts, secret))

