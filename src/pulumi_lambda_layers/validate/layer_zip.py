"""inspect_zip: every check of one layer zip, without extracting it; check_zip raises on errors."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from pulumi_lambda_layers.errors import ValidationError
from pulumi_lambda_layers.runtimes import Architecture, Runtime
from pulumi_lambda_layers.validate.binaries import check_binaries
from pulumi_lambda_layers.validate.layout import check_layout
from pulumi_lambda_layers.validate.python_abi import (
    check_extension_names,
    check_wheel_tags,
)
from pulumi_lambda_layers.validate.report import Finding, Report, error
from pulumi_lambda_layers.validate.secrets import check_credentials
from pulumi_lambda_layers.validate.sizes import (
    LARGEST_KEPT,
    check_bytecode,
    check_sizes,
    package_sizes,
)
from pulumi_lambda_layers.validate.zipsafety import (
    check_paths,
    check_symlinks,
    is_symlink,
)


def check_zip(path: str | Path, runtime: Runtime, arch: Architecture) -> Report:
    """inspect_zip, raising ValidationError(report) when the layer has any error finding."""
    report = inspect_zip(path, runtime, arch)
    if not report.ok:
        raise ValidationError(report)
    return report


def inspect_zip(path: str | Path, runtime: Runtime, arch: Architecture,
                checked: Mapping[str, Sequence[Finding]] | None = None) -> Report:
    """Check a layer zip without extracting it; every problem found becomes a Finding.

    checked: the binary-check findings of entries already checked (by zip path) when their bytes
    were packed for this runtime and architecture; those entries are not decompressed again.
    """
    path = Path(path)
    zipped_size = path.stat().st_size
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        return Report(runtime.id, arch, [error("zip-invalid", "", f"not a readable zip: {exc}")],
                      zipped_size, 0, 0, [])
    with zf:
        infos = zf.infolist()
        links = [i for i in infos if is_symlink(i)]
        files = [i for i in infos if not i.is_dir() and not is_symlink(i)]
        names = [i.filename for i in infos if not i.is_dir()]
        sizes = package_sizes(((i.filename, i.file_size) for i in infos if not i.is_dir()),
                               runtime)
        unzipped_size = sum(i.file_size for i in infos if not i.is_dir())
        findings = [
            *check_paths(infos),
            *check_symlinks(zf, links),
            *check_layout(names, runtime),
            *check_binaries(zf, files, runtime, arch, checked),
            *check_credentials(zf, files),
        ]
        if runtime.language == "python":
            findings += check_extension_names(names, runtime)
            findings += check_wheel_tags(zf, files, runtime, arch)
        findings += check_sizes(zipped_size, unzipped_size, sizes)
        findings += check_bytecode(infos)
    return Report(runtime.id, arch, findings, zipped_size, unzipped_size, len(names),
                  sizes[:LARGEST_KEPT])
