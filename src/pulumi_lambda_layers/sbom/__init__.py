"""What is in a layer: its packages and their licenses (read from the zip), the CycloneDX SBOM,
and the deny_licenses policy. Plain functions; the pipeline, the CLI and the provider call them."""

from __future__ import annotations

from pulumi_lambda_layers.errors import LayerError
from pulumi_lambda_layers.sbom.contents import LayerContents, Package, read_contents
from pulumi_lambda_layers.sbom.document import (
    SPEC_VERSION,
    cyclonedx_json,
    summary,
    validation_errors,
)
from pulumi_lambda_layers.sbom.licenses import License, Policy, deny_policy, spdx


def check_licenses(contents: LayerContents, policy: Policy,
                   argument: str = "deny_licenses") -> list[str]:
    """Refuse (LayerError naming `argument`) a layer holding a package under a denied license,
    naming each such package and its license; else the warnings: packages whose license is
    unknown or not in SPDX form, which the policy cannot check."""
    if not policy.given:
        return []
    denied = [p for p in contents.packages if policy.denies(p.license)]
    if denied:
        named = ", ".join(f"{p.key} {p.version} ({p.license.text})" for p in denied)
        raise LayerError(argument, f"the layer holds {len(denied)} package(s) under a denied "
                         f"license: {named}; denied: {', '.join(policy.given)}",
                         "drop or replace the package(s), or take the license off deny_licenses")
    return unknown_warnings(contents)


def unknown_warnings(contents: LayerContents) -> list[str]:
    """One warning naming the packages whose license is unknown or free text (not SPDX)."""
    unknown = contents.unknown_licenses()
    if not unknown:
        return []
    named = ", ".join(f"{p.key} {p.version} ({p.license.name or 'no license in its metadata'})"
                      for p in unknown)
    return [f"licenses: {len(unknown)} package(s) without an SPDX license, which deny_licenses "
            f"cannot check: {named}"]


__all__ = ["SPEC_VERSION", "LayerContents", "License", "Package", "Policy", "check_licenses",
           "cyclonedx_json", "deny_policy", "read_contents", "spdx", "summary",
           "unknown_warnings", "validation_errors"]
