"""The `lambda-layers` command: build, inspect, hash and smoke-test layers without Pulumi."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.errors import (
    LayerError,
    SmokeError,
    SpecError,
    ValidationError,
)
from pulumi_lambda_layers.log import quiet as _quiet
from pulumi_lambda_layers.log import to
from pulumi_lambda_layers.runtimes import (
    ARCHITECTURES,
    RUNTIMES,
    check_architecture,
    get_runtime,
)
from pulumi_lambda_layers.spec import (
    BUILDERS,
    LOCK_NAMES,
    SLIM_SWITCHES,
    LayerSpec,
    spec_from_dict,
)

FROZEN_HELP = ("never resolve: fail unless a lock gives every version (package.json needs "
               "package-lock.json beside it; requirements need --locked)")
# --frozen refusals, worded for the command line (the library's fixes name frozen=, lock=).
_FROZEN_FIXES = {
    "package_json": "commit package-lock.json beside it (`npm install --package-lock-only`), "
                    "or drop --frozen",
    "requirements": "pass --locked with a fully pinned file, or give uv.lock / poetry.lock, "
                    "or drop --frozen",
}


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 build or validation failed, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        with to(_progress):
            return int(args.func(args))
    except ValidationError as exc:
        _emit_error(args, "validation", str(exc), getattr(exc.report, "to_dict", dict)())
        return 1
    except SmokeError as exc:
        _emit_error(args, "smoke", str(exc), getattr(exc.result, "to_dict", dict)())
        return 1
    except SpecError as exc:
        _emit_error(args, "input", str(exc))
        return 2
    except LayerError as exc:
        _emit_error(args, "build", str(exc))
        return 1


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lambda-layers", description=__doc__)
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="build a layer zip from a dependency source")
    _target_args(b)
    b.add_argument("source", help="requirements.txt, uv.lock, poetry.lock, package.json, "
                                  "or a folder to ship as it is")
    b.add_argument("-o", "--output", required=True, type=Path, help="where to write the zip")
    _content_args(b)
    b.add_argument("--network", dest="network_mode", help="docker network mode, e.g. host")
    b.add_argument("--ca-bundle", help="extra CA certificates (PEM) for registries behind a proxy")
    b.add_argument("--proxy", action="append", default=[], metavar="KEY=VALUE",
                   help="HTTP_PROXY/HTTPS_PROXY/NO_PROXY for the build (repeatable)")
    b.add_argument("--no-cache", action="store_true",
                   help="build even when this content hash was built before")
    b.add_argument("--cache-bucket", metavar="BUCKET",
                   help="S3 bucket shared by machines and CI: a zip built anywhere for this "
                        "content hash is used instead of building, and new builds are put there")
    b.add_argument("--cache-prefix", default="", metavar="PREFIX",
                   help="key prefix in --cache-bucket, e.g. 'layers/' (default: none)")
    b.add_argument("--quiet", action="store_true", help="no progress lines")
    b.add_argument("--sbom", type=Path, metavar="FILE",
                   help="also write the layer's CycloneDX SBOM (JSON) there")
    _deny_arg(b)
    b.set_defaults(func=_build)

    s = sub.add_parser("sbom", help="print the CycloneDX SBOM (JSON) of a layer zip, or of the "
                                    "layer a source builds (taken from the cache when built "
                                    "before)")
    _target_args(s)
    s.add_argument("source", help="a layer zip, or what `build` takes")
    _content_args(s)
    s.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write it there instead of stdout")
    s.add_argument("--name", help="the layer's name in the SBOM (default: the file's name)")
    _deny_arg(s)
    s.set_defaults(func=_sbom)

    h = sub.add_parser("hash", help="print the content hash and package manifest; builds nothing")
    _target_args(h)
    h.add_argument("source")
    _content_args(h)
    h.add_argument("--refresh", action="store_true",
                   help="resolve unpinned requirements now, not from the resolution memo "
                        "(the new result replaces the memo entry)")
    h.add_argument("--max-age", metavar="DURATION",
                   help="reuse a memoized resolution younger than this: seconds or 30m, 1h, 2d; "
                        "0 resolves every time (default: 1h)")
    h.set_defaults(func=_hash)

    c = sub.add_parser("diff", help="what changes in the layer between two dependency sources "
                                    "(packages added, removed, old -> new); exit 1 when the "
                                    "layer changes; builds nothing")
    _target_args(c)
    c.add_argument("old", help="the source the layer is built from now (e.g. main's lock)")
    c.add_argument("new", help="the source it would be built from")
    _content_args(c)
    c.set_defaults(func=_diff)

    i = sub.add_parser("inspect", help="validate a layer zip for a runtime and architecture")
    _target_args(i)
    i.add_argument("zip", type=Path)
    i.set_defaults(func=_inspect)

    t = sub.add_parser("test", help="smoke-test a layer zip: import its packages (and call a "
                                    "handler) in a Lambda-like container; exit 1 on failure")
    _target_args(t)
    t.add_argument("zip", type=Path)
    t.add_argument("--import", dest="imports", action="append", metavar="NAME",
                   help="import only this (repeatable; default: every top-level package)")
    t.add_argument("--handler", metavar="FILE.FUNCTION", help="call it once, e.g. app.handler")
    t.add_argument("--event", type=Path, metavar="EVENT.JSON", help="the event for --handler")
    t.add_argument("--function-dir", type=Path, metavar="DIR",
                   help="the function's code, mounted at /var/task")
    t.add_argument("--image", help="image for the runtime (default: the AWS Lambda base image)")
    t.set_defaults(func=_test)

    d = sub.add_parser("drift", help="list functions using any version of a layer, current or "
                                     "stale; exit 1 when any is stale")
    d.add_argument("--layer", required=True, metavar="LAYER_VERSION_ARN",
                   help="the version functions should use")
    d.add_argument("--region", action="append", default=[],
                   help="region to scan (repeatable; default: the layer's region)")
    d.add_argument("--all-regions", action="store_true", help="scan every Lambda region")
    d.add_argument("--profile")
    d.add_argument("--assume-role-arn", action="append", default=[], metavar="ROLE_ARN",
                   help="scan the account of this role (repeatable: one role per account; "
                        "default: the caller's account)")
    d.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    d.set_defaults(func=_drift)

    r = sub.add_parser("prune", help="delete versions of a layer older than the newest N that "
                                     "no function uses; exit 1 on AWS errors")
    r.add_argument("layer", metavar="LAYER", help="layer name or ARN (in the caller's account)")
    r.add_argument("--keep", required=True, type=int, metavar="N",
                   help="the newest N versions stay whatever uses them")
    r.add_argument("--dry-run", action="store_true", help="list what would go; delete nothing")
    r.add_argument("--region", help="the layer's region (default: from the ARN, or AWS_REGION)")
    r.add_argument("--profile")
    r.add_argument("--assume-role-arn", action="append", default=[], metavar="ROLE_ARN",
                   help="also look for functions in this role's account (repeatable: one role "
                        "per consumer account; the layer's own account is always scanned)")
    r.add_argument("--include-owned", action="store_true",
                   help="also prune versions a Pulumi stack resource published (kept by default: "
                        "that resource's retention manages them)")
    r.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    r.set_defaults(func=_prune)
    return p


def _content_args(p: argparse.ArgumentParser) -> None:
    """Every option that decides the content hash: build, hash and diff take the same ones, so
    `hash` reproduces the hash of any `build`."""
    p.add_argument("--locked", action="store_true",
                   help="treat a requirements file as a lock (every line pinned with ==)")
    p.add_argument("--frozen", action="store_true", help=FROZEN_HELP)
    p.add_argument("--builder", choices=BUILDERS, default="auto")
    p.add_argument("--image", help="build image (default: the AWS SAM build image)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out files matching this layer-relative glob (repeatable)")
    p.add_argument("--slim", action="append", default=[], choices=SLIM_SWITCHES)


def _deny_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--deny-license", dest="deny_licenses", action="append", default=[],
                   metavar="SPDX", help="fail (exit 1) when a package is under this license "
                   "(an SPDX id, matched with its -only/-or-later forms, or an expression; "
                   "repeatable)")


def _target_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runtime", required=True, metavar="RUNTIME",
                   help="Lambda runtime id: " + ", ".join(RUNTIMES))
    p.add_argument("--arch", default="x86_64", metavar="ARCH", help=" | ".join(ARCHITECTURES))
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")


def _spec(args: argparse.Namespace) -> LayerSpec:
    source = Path(args.source)
    if source.is_dir():
        kind = "source_dir"
    elif source.name == "package.json":
        kind = "package_json"
    elif source.name in LOCK_NAMES or args.locked:
        kind = "lock"
    else:
        kind = "requirements"
    values: dict[str, Any] = {"runtime": args.runtime, "architecture": args.arch,
                              kind: str(source), "builder": args.builder, "image": args.image}
    for key in ("network_mode", "ca_bundle"):
        if getattr(args, key, None):
            values[key] = getattr(args, key)
    proxy = {}
    for item in getattr(args, "proxy", []):
        key, sep, value = item.partition("=")
        if not sep:
            raise SpecError("--proxy", f"{item!r} is not KEY=VALUE",
                            "e.g. --proxy HTTPS_PROXY=http://proxy:3128")
        proxy[key] = value
    if proxy:
        values["proxy"] = proxy
    if getattr(args, "exclude", None):
        values["exclude"] = args.exclude
    if getattr(args, "slim", None):
        values["slim"] = args.slim
    if getattr(args, "frozen", False):
        values["frozen"] = True
    try:
        return spec_from_dict(values)
    except SpecError as exc:
        if exc.argument != "frozen":
            raise
        problem = (f"{source.name} is resolved on every run (not a lock), which --frozen forbids"
                   if kind == "requirements" else exc.problem)
        raise SpecError("--frozen", problem, _FROZEN_FIXES.get(kind, exc.fix)) from None


def _build(args: argparse.Namespace) -> int:
    from pulumi_lambda_layers.build.pipeline import build_layer
    from pulumi_lambda_layers.sbom import deny_policy

    spec = _spec(args)
    policy = deny_policy(args.deny_licenses, "--deny-license")
    quiet = args.quiet or args.json
    if args.cache_bucket and args.no_cache:
        raise SpecError("--cache-bucket", "cannot be combined with --no-cache", "give one of them")
    result = build_layer(spec, args.output, log=_quiet if quiet else _progress,
                         use_cache=not args.no_cache, cache_bucket=args.cache_bucket,
                         cache_prefix=args.cache_prefix)
    license_warnings = _license_policy(result, policy, args.output)
    if args.sbom is not None:
        _write_sbom(result, args.output.stem, args.sbom)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True))
        return 0
    z = result.zip
    print(f"built {z.path}")
    print(f"  content hash  {result.content_hash}")
    print(f"  builder       {result.builder} ({result.builder_reason})")
    print(f"  packages      {len(result.packages)}")
    print(f"  zipped        {z.zipped_size:,} bytes ({z.file_count} files)")
    print(f"  unzipped      {z.unzipped_size:,} bytes")
    print(f"  sha256        {z.sha256}")
    if args.sbom is not None:
        print(f"  sbom          {args.sbom}")
    for warning in [*result.warnings, *license_warnings]:
        print(f"  warning: {warning}")
    return 0


def _license_policy(result: Any, policy: Any, written: Path | None) -> list[str]:
    """The deny policy on a built layer: a denied license removes the zip just written (as a
    failed build leaves nothing) and fails; else the warnings for unknown licenses."""
    from pulumi_lambda_layers.sbom import check_licenses

    assert result.contents is not None
    try:
        return check_licenses(result.contents, policy, "--deny-license")
    except LayerError:
        if written is not None:
            written.unlink(missing_ok=True)
        raise


def _write_sbom(result: Any, name: str, path: Path) -> bytes:
    from pulumi_lambda_layers.atomic import write_atomic
    from pulumi_lambda_layers.sbom import cyclonedx_json

    assert result.contents is not None
    document = cyclonedx_json(result.contents, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, document)
    return document


def _sbom(args: argparse.Namespace) -> int:
    import base64
    import tempfile

    from pulumi_lambda_layers.build.archive import file_sha256
    from pulumi_lambda_layers.build.pipeline import build_layer
    from pulumi_lambda_layers.sbom import cyclonedx_json, deny_policy, read_contents

    policy = deny_policy(args.deny_licenses, "--deny-license")
    source = Path(args.source)
    if source.suffix == ".zip":
        runtime = get_runtime(args.runtime, "--runtime")
        arch = check_architecture(args.arch, "--arch")
        if not source.is_file():
            raise SpecError("source", f"{source} does not exist", "give a layer zip or a source")
        from pulumi_lambda_layers.validate import inspect_zip

        digest = file_sha256(source)
        report = inspect_zip(source, runtime, arch)
        contents = read_contents(source, runtime.id, runtime.language, arch,
                                 zip_sha256=digest.hex(), code_sha256=base64.b64encode(
                                     digest).decode(), unzipped_size=report.unzipped_size,
                                 largest=tuple(report.largest))
        result: Any = argparse.Namespace(contents=contents)
        name = args.name or source.stem
    else:
        with tempfile.TemporaryDirectory(prefix="pll-sbom-") as scratch:
            result = build_layer(_spec(args), Path(scratch) / "layer.zip", log=_progress,
                                 use_cache=True)
        name = args.name or (source.parent.name if source.is_file() else source.name) or "layer"
    warnings = _license_policy(result, policy, None)
    for warning in warnings:
        _progress(f"warning: {warning}")
    if args.output is not None:
        _write_sbom(result, name, args.output)
        _progress(f"sbom: wrote {args.output} ({len(result.contents.packages)} components)")
    else:
        sys.stdout.write(cyclonedx_json(result.contents, name).decode())
    return 0


def _hash(args: argparse.Namespace) -> int:
    from pulumi_lambda_layers.sources.fingerprint import fingerprint
    from pulumi_lambda_layers.sources.resolution_memo import Freshness, parse_max_age

    freshness = Freshness(refresh=args.refresh)
    if args.max_age is not None:
        freshness = Freshness(parse_max_age(args.max_age, "--max-age"), args.refresh)
    fp = fingerprint(_spec(args), freshness)
    if args.json:
        print(json.dumps({"content_hash": fp.content_hash, "packages": fp.packages}, indent=2))
    else:
        print(fp.content_hash)
        for name, version in fp.packages.items():
            print(f"  {name} {version}")
    return 0


def _diff(args: argparse.Namespace) -> int:
    from pulumi_lambda_layers.sources.fingerprint import fingerprint, package_changes

    old = fingerprint(_spec(argparse.Namespace(**{**vars(args), "source": args.old})))
    new = fingerprint(_spec(argparse.Namespace(**{**vars(args), "source": args.new})))
    changes = package_changes(old.packages, new.packages)
    changed = old.content_hash != new.content_hash
    if args.json:
        print(json.dumps({"changed": changed, "old_content_hash": old.content_hash,
                          "new_content_hash": new.content_hash,
                          "packages": [{"name": n, "old": a, "new": b} for n, a, b in changes]},
                         indent=2))
    elif not changed:
        print(f"no change: content hash {new.content_hash}")
    else:
        print(f"content hash {old.content_hash[:16]} -> {new.content_hash[:16]} "
              "(a new layer version)")
        for name, before, after in changes:
            print(f"  + {name} {after}" if before is None else
                  f"  - {name} {before}" if after is None else
                  f"  ~ {name} {before} -> {after}")
        if not changes:
            print("  same packages; something else that decides the bytes changed (options, "
                  "files of a folder source)")
    return 1 if changed else 0


def _inspect(args: argparse.Namespace) -> int:
    from pulumi_lambda_layers.validate import inspect_zip

    runtime = get_runtime(args.runtime, "--runtime")
    arch = check_architecture(args.arch, "--arch")
    if not args.zip.is_file():
        raise SpecError("zip", f"{args.zip} does not exist", "give the path of a layer zip")
    from pulumi_lambda_layers.limits import UNZIPPED_LIMIT
    from pulumi_lambda_layers.validate.sizes import size_table

    report = inspect_zip(args.zip, runtime, arch)
    if args.json:
        print(json.dumps({**report.to_dict(), "budget": {
            "unzipped_limit": UNZIPPED_LIMIT, "unzipped_share": report.unzipped_size / UNZIPPED_LIMIT,
            "packages": [{"package": n, "bytes": b, "share": b / UNZIPPED_LIMIT}
                         for n, b in report.largest]}}, indent=2))
    else:
        # The size table below replaces the report's own list of the largest packages.
        print(dataclasses.replace(report, largest=[]))
        print("\n".join(size_table(report.largest, report.unzipped_size)))
    return 0 if report.ok else 1


def _test(args: argparse.Namespace) -> int:
    from pulumi_lambda_layers.smoke.run import smoke_test

    runtime = get_runtime(args.runtime, "--runtime")
    arch = check_architecture(args.arch, "--arch")
    if args.event is not None and not args.handler:
        raise SpecError("--event", "is only used with --handler", "add --handler FILE.FUNCTION")
    event = None
    if args.event is not None:
        try:
            event = json.loads(args.event.read_text())
        except (OSError, ValueError) as exc:
            raise SpecError("--event", f"cannot read {args.event} as JSON ({exc})",
                            "give a file holding the event as JSON") from None
    result = smoke_test(args.zip, runtime, arch, imports=args.imports, handler=args.handler,
                        event=event, function_dir=args.function_dir, image=args.image,
                        log=_quiet if args.json else _progress)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"ok: {args.zip.name} imports on {runtime.id} {arch} ({len(result.imported)} "
          f"imported: {', '.join(result.imported) or 'nothing'})")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    if args.handler:
        print(f"  {args.handler} returned {json.dumps(result.handler_result)}")
    return 0


def _drift(args: argparse.Namespace) -> int:
    from pulumi_lambda_layers.aws.functions import layer_base_arn
    from pulumi_lambda_layers.aws.layers import AwsTarget
    from pulumi_lambda_layers.aws.usage import drift, lambda_regions

    try:
        layer = layer_base_arn(args.layer)
    except SpecError as exc:
        raise SpecError("--layer", exc.problem, exc.fix) from exc
    _, partition, _, layer_region = layer.split(":")[:4]
    if args.all_regions and args.region:
        raise SpecError("--all-regions", "cannot be combined with --region", "give one of them")
    regions = (lambda_regions(AwsTarget(profile=args.profile), partition) if args.all_regions
               else args.region or [layer_region])
    roles = args.assume_role_arn or [None]
    uses = drift([AwsTarget(r, args.profile, role) for role in roles for r in regions], args.layer,
                 skip_disabled_regions=args.all_regions)
    stale = sum(u.status == "stale" for u in uses)
    if args.json:
        print(json.dumps({"layer_version_arn": args.layer, "regions": regions, "stale": stale,
                          "functions": [u.to_dict() for u in uses]}, indent=2))
    else:
        for u in uses:
            note = f"  uses version {u.version}" if u.status == "stale" else ""
            # With several accounts, the account (5th field of the function's ARN) tells them apart.
            where = f"{u.function_arn.split(':')[4]}  " if len(roles) > 1 else ""
            print(f"{u.status:<8} {u.region}  {where}{u.function}{note}")
        print(f"{len(uses)} function(s) use {layer}; {stale} stale" if uses
              else f"no function uses {layer} in {', '.join(regions)}")
    return 1 if stale else 0


def _prune(args: argparse.Namespace) -> int:
    from pulumi_lambda_layers.aws.layers import AwsTarget
    from pulumi_lambda_layers.aws.retention import prune
    from pulumi_lambda_layers.limits import LAYER_NAME, ROLE_ARN

    if args.keep < 0:
        raise SpecError("--keep", f"{args.keep} is not a number of versions",
                        "give 0 or more (0: every unused version goes)")
    layer = args.layer.strip()
    arn = layer if layer.startswith("arn:") else None
    if arn is not None:
        from pulumi_lambda_layers.aws.functions import layer_arn

        try:
            arn = layer_arn(arn)
        except SpecError as exc:
            raise SpecError("LAYER", exc.problem, exc.fix) from None
    elif not LAYER_NAME.fullmatch(layer):
        raise SpecError("LAYER", f"{layer!r} is not a layer name or ARN",
                        "1-140 letters, digits, '-' or '_', or arn:aws:lambda:REGION:ACCOUNT:"
                        "layer:NAME")
    for role in args.assume_role_arn:
        if not ROLE_ARN.fullmatch(role):
            raise SpecError("--assume-role-arn", f"{role!r} is not an IAM role ARN",
                            "arn:aws:iam::<12-digit account>:role/<name>")
    region = args.region or (arn.split(":")[3] if arn else None)
    target = AwsTarget(region, args.profile)
    consumers = [AwsTarget(region, args.profile, role) for role in args.assume_role_arn]
    plan = prune(target, arn or layer, args.keep, consumers=consumers, dry_run=args.dry_run,
                 include_owned=args.include_owned)
    deleting = [v for v in plan if v.action == "delete"]
    if args.json:
        print(json.dumps({"layer": arn or layer, "keep": args.keep, "dry_run": args.dry_run,
                          "versions": [v.to_dict() for v in plan]}, indent=2))
        return 0
    verb = "would delete" if args.dry_run else "deleted"
    for v in plan:
        action = verb if v.action == "delete" else "keep"
        users = f": {', '.join(v.users)}" if v.users else ""
        print(f"{v.version:>6}  {action:<12}  {v.reason}{users}")
    print(f"{len(plan)} version(s) of {arn or layer}; {verb} {len(deleting)}" if plan
          else f"{arn or layer} has no versions")
    return 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _emit_error(args: argparse.Namespace, kind: str, message: str,
                details: dict[str, Any] | None = None) -> None:
    if getattr(args, "json", False):
        print(json.dumps({"error": kind, "message": message, **({"report": details}
                                                                 if details else {})}, indent=2))
    print(f"error: {message}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
