"""The pipeline: spec -> fingerprint -> build -> package -> validate -> the layer zip at its path."""

from __future__ import annotations

import base64
import dataclasses
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pulumi_lambda_layers.build import cache
from pulumi_lambda_layers.build.archive import ZipResult, file_sha256, make_zip
from pulumi_lambda_layers.errors import ValidationError
from pulumi_lambda_layers.sources.fingerprint import Fingerprint, fingerprint
from pulumi_lambda_layers.build.slots import build_slot
from pulumi_lambda_layers.spec import LayerSpec
from pulumi_lambda_layers.validate.checks import Finding, Report, inspect_zip

if TYPE_CHECKING:
    from pulumi_lambda_layers.build.select import Outcome
    from pulumi_lambda_layers.build.incremental import PackStats
    from pulumi_lambda_layers.aws.layers import AwsTarget


@dataclass(frozen=True)
class BuildResult:
    """Everything a caller reports or publishes about one built layer."""

    content_hash: str
    packages: dict[str, str]
    builder: str
    builder_reason: str
    zip: ZipResult
    report: Report
    warnings: list[str] = field(default_factory=list)
    packs: PackStats | None = None  # set when a layer was assembled package by package

    def to_dict(self) -> dict[str, Any]:
        return {
            "content_hash": self.content_hash, "builder": self.builder,
            "builder_reason": self.builder_reason, "packages": self.packages,
            "package_count": len(self.packages), "path": str(self.zip.path),
            "sha256": self.zip.sha256, "code_sha256": self.zip.code_sha256,
            "zipped_size": self.zip.zipped_size, "unzipped_size": self.zip.unzipped_size,
            "file_count": self.zip.file_count, "validation": self.report.to_dict(),
            **({"packs": {"reused": list(self.packs.reused), "packed": list(self.packs.packed),
                          "files_compressed": self.packs.files_compressed}} if self.packs else {}),
        }


def build_layer(spec: LayerSpec, output: str | Path, log: Callable[[str], None] = print,
                fp: Fingerprint | None = None, *, use_cache: bool = False,
                cache_bucket: str | None = None, cache_prefix: str = "",
                cache_target: AwsTarget | None = None) -> BuildResult:
    """Build the spec into `output`. On any failure nothing is written to `output`.

    With use_cache, a zip already built for the content hash (on this machine, or in
    cache_bucket under cache_prefix) is returned without building; a new build is cached there.
    """
    output = Path(output).resolve()
    fp = fp or fingerprint(spec)
    log(f"fingerprint: {fp.content_hash[:16]} ({len(fp.packages)} packages)")
    if use_cache:
        hit = cache.lookup(fp.content_hash)
        if hit is None and cache_bucket:
            hit = cache.fetch(cache_target or _default_target(), cache_bucket, cache_prefix, fp.content_hash, log)
            if hit is not None:
                log(f"cache: got {fp.content_hash[:16]} from s3://{cache_bucket}/{cache_prefix}")
        if hit is not None:
            return _from_cache(spec, fp, hit, output, log)
    with build_slot(fp.content_hash, log):
        # A build of the same content that we waited for has put its zip in the cache.
        hit = cache.lookup(fp.content_hash) if use_cache else None
        if hit is not None:
            return _from_cache(spec, fp, hit, output, log)
        return _build(spec, fp, output, log, use_cache, cache_bucket, cache_prefix, cache_target)


def _build(spec: LayerSpec, fp: Fingerprint, output: Path, log: Callable[[str], None],
           use_cache: bool, cache_bucket: str | None, cache_prefix: str,
           cache_target: AwsTarget | None) -> BuildResult:
    """build_layer without a cache hit: install, package, validate, then cache the zip."""
    work = Path(tempfile.mkdtemp(prefix="pll-build-"))
    try:
        staged, outcome, checked, packed = _package(spec, fp, work, log)
        report = inspect_zip(staged.path, spec.runtime, spec.architecture, checked)
        log(f"validate: {'ok' if report.ok else 'FAILED'} ({staged.file_count} files, "
            f"{staged.zipped_size:,} bytes zipped, {staged.unzipped_size:,} unzipped)")
        if not report.ok:
            raise ValidationError(report)
        final = _install(staged, output, move=True)
    finally:
        discard(work)
    if use_cache:
        cache.store(fp.content_hash, final.path, final.sha256,
                    {"builder": outcome.builder, "builder_reason": outcome.reason,
                     "report": report.to_dict()})
        if cache_bucket:
            cache.push(cache_target or _default_target(), cache_bucket, cache_prefix,
                       fp.content_hash)
            log(f"cache: put {fp.content_hash[:16]} in s3://{cache_bucket}/{cache_prefix}")
    warnings = [f.message for f in report.findings if f.severity == "warning"]
    return BuildResult(fp.content_hash, fp.packages, outcome.builder, outcome.reason, final,
                       report, warnings, packed)


def _package(spec: LayerSpec, fp: Fingerprint, work: Path,
             log: Callable[[str], None]
             ) -> tuple[ZipResult, Outcome, dict[str, list[Finding]], PackStats | None]:
    """Install and zip: a local build package by package (reusing cached packs), anything else
    whole. Returns the zip, who built it, the entries already binary-checked and,
    package by package, what was reused."""
    # Imported here, not at the top: a cache hit never builds and starts faster without them.
    from pulumi_lambda_layers.build import incremental
    from pulumi_lambda_layers.build.select import NoCompatibleWheel, Outcome, run_builder

    staged = work / "layer.zip"
    if spec.source.kind == "source_dir":
        log(f"package: zipping {spec.source.path.name}")
        zipped = make_zip(spec.source.path, staged, spec.exclude, spec.slim)
        return zipped, Outcome("none", "source_dir is shipped as it is"), {}, None
    if spec.builder in ("local", "auto"):  # Python requirements/locks and package.json
        try:
            done = incremental.build(spec, fp, work, staged, log)
        except NoCompatibleWheel:
            pass  # run_builder below says why and, for auto, builds in Docker instead
        except incremental.NotSplittable as exc:
            log(f"package: cannot pack package by package ({exc}); packing the whole layer")
        else:
            s = done.stats
            log(f"package: {len(s.reused)} packages from the pack cache, {len(s.packed)} packed "
                f"now ({s.files_compressed} files compressed)")
            reason = ("builder='local' was asked for" if spec.builder == "local" else
                      "auto: every package has a prebuilt artifact for "
                      f"{spec.runtime.id} {spec.architecture}")
            return done.zip, Outcome("local", reason), done.checked, s
    root = work / "full"
    root.mkdir()
    outcome = run_builder(spec, fp, root, log)
    log(f"package: zipping {root.name}")
    return make_zip(root, staged, spec.exclude, spec.slim), outcome, {}, None


def _from_cache(spec: LayerSpec, fp: Fingerprint, hit: Path, output: Path,
                log: Callable[[str], None]) -> BuildResult:
    """The BuildResult of a cached zip, copied to output (no install, no compression)."""
    log(f"cache: hit for {fp.content_hash[:16]}, not building")
    about = cache.facts(fp.content_hash) or {}
    sha256 = (about.get("sha256") or file_sha256(hit).hex())
    if "report" in about:
        report = Report.from_dict(about["report"])
    else:  # cached by an older version: check it now
        report = inspect_zip(hit, spec.runtime, spec.architecture)
        if not report.ok:
            raise ValidationError(report)
    code_sha256 = base64.b64encode(bytes.fromhex(sha256)).decode()
    cached = ZipResult(hit, sha256, code_sha256, hit.stat().st_size, report.unzipped_size,
                       report.file_count)
    final = cached if output == hit.resolve() else _install(cached, output)
    warnings = [f.message for f in report.findings if f.severity == "warning"]
    return BuildResult(fp.content_hash, fp.packages, "cache",
                       f"built before by {about.get('builder', 'an earlier build')}", final,
                       report, warnings)


def _default_target() -> AwsTarget:
    from pulumi_lambda_layers.aws.layers import AwsTarget

    return AwsTarget()


def _install(staged: ZipResult, output: Path, move: bool = False) -> ZipResult:
    """Put the validated zip at output atomically: renamed there (move) or hard-linked when on the
    same file system, copied otherwise. A link to a cached zip is safe: the cache checks every
    zip's sha256 before use, so a zip changed through output is never served again."""
    output.parent.mkdir(parents=True, exist_ok=True)
    # Staged files are made private (mkstemp); the layer zip is an ordinary readable artifact.
    os.chmod(staged.path, 0o644)
    if move:
        try:
            os.replace(staged.path, output)
            return dataclasses.replace(staged, path=output)
        except OSError:
            pass  # another file system: copied below
    cache.place(staged.path, output)
    return dataclasses.replace(staged, path=output)


def discard(folder: Path) -> None:
    """Remove a scratch folder without waiting for it: unlinking thousands of installed files
    takes a noticeable part of a build, and nothing needs them gone before the build returns."""
    try:
        subprocess.Popen(["rm", "-rf", "--", str(folder)], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError:  # no rm (not a POSIX system): remove it here
        shutil.rmtree(folder, ignore_errors=True)
