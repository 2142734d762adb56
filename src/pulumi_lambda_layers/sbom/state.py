"""What the Pulumi provider does with a layer's SBOM: policy, S3 copy, the summary in state."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.errors import LayerError
from pulumi_lambda_layers.log import Sink
from pulumi_lambda_layers.sbom import (
    LayerContents,
    License,
    Package,
    check_licenses,
    cyclonedx_json,
    deny_policy,
    spdx,
    summary,
    unknown_warnings,
)


def checked_summary(contents: LayerContents, deny: Sequence[str], name: str,
                    store: Any, log: Sink) -> dict[str, Any]:
    """deny_licenses on a built layer (LayerError naming the packages), unknown licenses as a
    warning, then the SBOM: store(document) -> its s3:// location or None, and the summary the
    state keeps (docs/sbom.md says why not the whole document)."""
    policy = deny_policy(deny)
    for warning in check_licenses(contents, policy) if policy.given else \
            unknown_warnings(contents):
        log(f"warning: {warning}")
    document = cyclonedx_json(contents, name)
    return summary(contents, document, store(document))


def put_in_s3(target: Any, bucket: str, key: str, document: bytes, log: Sink) -> str | None:
    """s3://bucket/key after putting the document there; None (and a warning) when that fails:
    the SBOM is a record, not a reason to stop a deploy."""
    from pulumi_lambda_layers.aws import s3

    with tempfile.TemporaryDirectory(prefix="pll-sbom-") as scratch:
        path = Path(scratch) / "sbom.cdx.json"
        path.write_bytes(document)
        try:
            s3.upload_object(target, bucket, key, path)
        except LayerError as exc:
            log(f"warning: sbom: not stored in s3://{bucket}/{key}: {exc}")
            return None
    log(f"sbom: s3://{bucket}/{key}")
    return f"s3://{bucket}/{key}"


def recheck(sbom: Any, versions: Mapping[str, str], deny: Sequence[str]) -> None:
    """A new deny_licenses on a published version, checked against the licenses its state's
    summary lists: a policy the layer breaks fails naming the packages. Nothing to check for a
    version published before SBOMs (the next build is checked)."""
    if not isinstance(sbom, Mapping) or not isinstance(sbom.get("licenses"), Mapping):
        return
    packages = []
    for text, names in sbom["licenses"].items():
        expression = spdx(text) if text != "unknown" else None
        found = License(expression, None if expression or text == "unknown" else text)
        packages += [Package(n, n, versions.get(n, "?"), "", found, "") for n in names]
    check_licenses(LayerContents("", "", "", "", 0, None, tuple(packages)), deny_policy(deny))
