"""The pipeline: spec -> fingerprint -> build -> package -> validate -> the layer zip at its path."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .archive import ZipResult, make_zip
from .builders import Outcome, run_builder
from .errors import ValidationError
from .fingerprint import Fingerprint, fingerprint
from .spec import LayerSpec
from .validate import Report, inspect_zip


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "content_hash": self.content_hash, "builder": self.builder,
            "builder_reason": self.builder_reason, "packages": self.packages,
            "package_count": len(self.packages), "path": str(self.zip.path),
            "sha256": self.zip.sha256, "code_sha256": self.zip.code_sha256,
            "zipped_size": self.zip.zipped_size, "unzipped_size": self.zip.unzipped_size,
            "file_count": self.zip.file_count, "validation": self.report.to_dict(),
        }


def build_layer(spec: LayerSpec, output: str | Path, log: Callable[[str], None] = print,
                fp: Fingerprint | None = None) -> BuildResult:
    """Build the spec into `output`. On any failure nothing is written to `output`."""
    output = Path(output).resolve()
    fp = fp or fingerprint(spec)
    log(f"fingerprint: {fp.content_hash[:16]} ({len(fp.packages)} packages)")
    with tempfile.TemporaryDirectory(prefix="pll-build-") as work:
        if spec.source.kind == "source_dir":
            root, outcome = spec.source.path, Outcome("none", "source_dir is shipped as it is")
        else:
            root = Path(work) / "layer"
            root.mkdir()
            outcome = run_builder(spec, fp, root, log)
        log(f"package: zipping {root.name}")
        staged = make_zip(root, Path(work) / "layer.zip", spec.exclude, spec.slim)
        report = inspect_zip(staged.path, spec.runtime, spec.architecture)
        log(f"validate: {'ok' if report.ok else 'FAILED'} ({staged.file_count} files, "
            f"{staged.zipped_size:,} bytes zipped, {staged.unzipped_size:,} unzipped)")
        if not report.ok:
            raise ValidationError(report)
        final = _install(staged, output)
    warnings = [f.message for f in report.findings if f.severity == "warning"]
    return BuildResult(fp.content_hash, fp.packages, outcome.builder, outcome.reason, final,
                       report, warnings)


def _install(staged: ZipResult, output: Path) -> ZipResult:
    """Move the validated zip to its place atomically (copy + rename across file systems)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".pll-", suffix=".zip", dir=output.parent)
    os.close(fd)
    try:
        shutil.copyfile(staged.path, tmp)
        os.replace(tmp, output)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return ZipResult(output, staged.sha256, staged.code_sha256, staged.zipped_size,
                     staged.unzipped_size, staged.file_count)
