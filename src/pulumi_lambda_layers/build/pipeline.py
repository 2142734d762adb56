"""The pipeline, as named steps: resolve -> cache lookup -> install -> package -> validate -> store."""

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
from pulumi_lambda_layers.build.slots import build_slot
from pulumi_lambda_layers.errors import LayerError, ValidationError, step
from pulumi_lambda_layers.log import Sink, emit, to
from pulumi_lambda_layers.sources.fingerprint import Fingerprint, fingerprint
from pulumi_lambda_layers.spec import LayerSpec
from pulumi_lambda_layers.validate import Finding, Report, inspect_zip

if TYPE_CHECKING:
    from pulumi_lambda_layers.aws.layers import AwsTarget
    from pulumi_lambda_layers.build.incremental import PackStats
    from pulumi_lambda_layers.build.select import Installed, Outcome
    from pulumi_lambda_layers.sbom import LayerContents


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
    contents: LayerContents | None = None  # step sbom: the packages and licenses in the zip

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


def build_layer(spec: LayerSpec, output: str | Path, log: Sink | None = None,
                fp: Fingerprint | None = None, *, use_cache: bool = False,
                cache_bucket: str | None = None, cache_prefix: str = "",
                cache_target: AwsTarget | None = None,
                cache_signing_key: str | None = None) -> BuildResult:
    """Build the spec into `output`. On any failure nothing is written to `output`.

    The steps, in order: resolve (fingerprint, unless fp is given) -> cache lookup -> install ->
    package -> validate -> store -> sbom (what the zip holds; for a cached zip too). With
    use_cache, a zip already built for the content hash (on this machine, or in cache_bucket
    under cache_prefix) is returned without building; a new build is cached there. With a
    signing key (cache_signing_key, else $PLL_CACHE_SIGNING_KEY) objects put in the bucket are
    signed, and unsigned or wrongly signed ones are ignored. This is the one place cache hits
    are handled. Progress goes to the log channel (log=: a sink for this call). A failed step
    raises a LayerError named for it.
    """
    with to(log):
        output = Path(output).resolve()
        given = fp is not None
        fp = fp or resolve(spec)
        emit(f"fingerprint: {fp.content_hash[:16]} ({len(fp.packages)} packages)")
        store = _Store(fp.content_hash, cache_bucket, cache_prefix, cache_target,
                       _shared_vet(spec, fp), cache.signing_key(cache_signing_key)
                       ) if use_cache else None
        hit = store.lookup() if store else None
        if hit is not None:
            return describe(spec, fp, _from_cache(spec, fp, hit, output))
        with build_slot(fp.content_hash, emit):
            # A build of the same content that we waited for has put its zip in the cache.
            hit = store.lookup(local_only=True) if store else None
            if hit is not None:
                return describe(spec, fp, _from_cache(spec, fp, hit, output))
            if given and spec.source.kind == "source_dir":
                check_source_unchanged(spec, fp.content_hash)
            return describe(spec, fp, _build(spec, fp, output, store))


def resolve(spec: LayerSpec) -> Fingerprint:
    """Step resolve: the content hash and package set of the spec (SpecError/ResolveError name
    the argument)."""
    return fingerprint(spec)


def describe(spec: LayerSpec, fp: Fingerprint, result: BuildResult) -> BuildResult:
    """Step sbom: the packages in the zip with their licenses and artifact hashes (read from the
    zip, which is the truth; the hashes from what was installed from), for the SBOM and the
    license policy. Not content: nothing here changes the zip or its hash."""
    from pulumi_lambda_layers.sbom import read_contents

    with step("sbom"):
        z = result.zip
        contents = read_contents(
            z.path, spec.runtime.id, spec.runtime.language, spec.architecture,
            zip_sha256=z.sha256, code_sha256=z.code_sha256, unzipped_size=z.unzipped_size,
            content_hash=fp.content_hash, install_files=fp.install_files,
            largest=tuple(result.report.largest))
    known = sum(p.license.known for p in contents.packages)
    emit(f"sbom: {len(contents.packages)} packages, {known} with an SPDX license")
    return dataclasses.replace(result, contents=contents)


def _build(spec: LayerSpec, fp: Fingerprint, output: Path, store: _Store | None) -> BuildResult:
    """The steps after a cache miss: install, package, validate, then put the zip in place."""
    from pulumi_lambda_layers.build.select import install, step_name

    work = Path(tempfile.mkdtemp(prefix="pll-build-"))
    try:
        staged_path = work / "layer.zip"
        installed = install(spec, fp, work, staged_path)
        builder = installed.outcome.builder
        with step(step_name("package", spec, builder)):
            staged, checked, packed = package(spec, installed, staged_path)
        with step(step_name("validate", spec, builder)):
            report = validate(spec, staged, checked)
        with step(step_name("store", spec, builder)):
            final = _place(staged, output, move=True)
    finally:
        discard(work)
    if store is not None:
        with step(step_name("store", spec, builder)):
            store.put(final, installed.outcome, report)
    warnings = [f.message for f in report.findings if f.severity == "warning"]
    return BuildResult(fp.content_hash, fp.packages, builder, installed.outcome.reason, final,
                       report, warnings, packed)


def package(spec: LayerSpec, installed: Installed, staged: Path
            ) -> tuple[ZipResult, dict[str, list[Finding]], PackStats | None]:
    """Step package: the deterministic zip of what was installed (a local build package by
    package comes assembled already). Returns the zip, the entries already binary-checked and,
    package by package, what was reused."""
    done = installed.assembled
    if done is not None:
        s = done.stats
        emit(f"package: {len(s.reused)} packages from the pack cache, {len(s.packed)} packed "
             f"now ({s.files_compressed} files compressed)")
        return done.zip, done.checked, s
    assert installed.root is not None
    emit(f"package: zipping {installed.root.name}")
    return make_zip(installed.root, staged, spec.exclude, spec.slim), {}, None


def validate(spec: LayerSpec, staged: ZipResult, checked: dict[str, list[Finding]]) -> Report:
    """Step validate: every rule of the target; ValidationError (with the report) when broken."""
    report = inspect_zip(staged.path, spec.runtime, spec.architecture, checked)
    emit(f"validate: {'ok' if report.ok else 'FAILED'} ({staged.file_count} files, "
         f"{staged.zipped_size:,} bytes zipped, {staged.unzipped_size:,} unzipped)")
    if not report.ok:
        raise ValidationError(report)
    return report


@dataclass(frozen=True)
class _Store:
    """Steps cache lookup and store: this machine's cache, then the shared one in S3."""

    content_hash: str
    bucket: str | None
    prefix: str
    target: AwsTarget | None
    vet: Callable[[Path], dict[str, Any]]  # checks a zip from the bucket (cache.Untrusted: no)
    key: bytes | None = field(default=None, repr=False)  # signs what goes in; unsigned: ignored

    def lookup(self, local_only: bool = False) -> Path | None:
        hit = cache.lookup(self.content_hash)
        if hit is None and self.bucket and not local_only:
            hit = cache.fetch(self._target(), self.bucket, self.prefix, self.content_hash, emit,
                              self.vet, self.key)
            if hit is not None:
                emit(f"cache: got {self.content_hash[:16]} from s3://{self.bucket}/{self.prefix}")
        return hit

    def put(self, final: ZipResult, outcome: Outcome, report: Report) -> None:
        cache.store(self.content_hash, final.path, final.sha256,
                    {"builder": outcome.builder, "builder_reason": outcome.reason,
                     "report": report.to_dict()})
        if self.bucket:
            if cache.push(self._target(), self.bucket, self.prefix, self.content_hash, emit,
                          self.key):
                emit(f"cache: put {self.content_hash[:16]} in s3://{self.bucket}/{self.prefix}")

    def _target(self) -> AwsTarget:
        return self.target or _default_target()


def _shared_vet(spec: LayerSpec, fp: Fingerprint) -> Callable[[Path], dict[str, Any]]:
    """The check of a zip from the shared cache: what its bucket's .json says is never trusted,
    so it is validated here with the current rules and must hold exactly fp's packages."""
    def vet(path: Path) -> dict[str, Any]:
        report = inspect_zip(path, spec.runtime, spec.architecture)
        if not report.ok:
            raise cache.Untrusted("it fails validation: " + "; ".join(
                f"{f.path + ': ' if f.path else ''}{f.message}" for f in report.errors[:3]))
        held = cache.held_packages(path, spec.source.kind)
        mismatch = cache.package_mismatch(held, fp.packages) if held is not None else ""
        if mismatch:
            raise cache.Untrusted(mismatch)
        return {"builder": "the shared cache", "builder_reason": "validated here",
                "report": report.to_dict()}
    return vet


def check_source_unchanged(spec: LayerSpec, content_hash: str) -> None:
    """A folder fingerprinted earlier (at program time) must still hold what was hashed."""
    now = fingerprint(spec).content_hash
    if now != content_hash:
        raise LayerError("source_dir", f"{spec.source.path} changed after the program read it "
                         f"(hash {content_hash[:12]} then, {now[:12]} now)",
                         "run `pulumi up` again")


def _from_cache(spec: LayerSpec, fp: Fingerprint, hit: Path, output: Path) -> BuildResult:
    """The BuildResult of a cached zip, copied to output (no install, no compression)."""
    emit(f"build: cache hit for {fp.content_hash[:16]}, not rebuilding")
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
    final = cached if output == hit.resolve() else _place(cached, output)
    warnings = [f.message for f in report.findings if f.severity == "warning"]
    return BuildResult(fp.content_hash, fp.packages, "cache",
                       f"built before by {about.get('builder', 'an earlier build')}", final,
                       report, warnings)


def _default_target() -> AwsTarget:
    from pulumi_lambda_layers.aws.layers import AwsTarget

    return AwsTarget()


def _place(staged: ZipResult, output: Path, move: bool = False) -> ZipResult:
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
