"""The CycloneDX JSON document of a layer: same contents -> the same bytes."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from pulumi_lambda_layers.sbom.contents import LayerContents, Package

SPEC_VERSION = "1.6"
PROPERTY = "pulumi-lambda-layers"  # prefix of this library's CycloneDX property names
# The namespace of the serial numbers: a layer's serial is uuid5 of its zip's sha256, so the
# same zip always gets the same serial and another zip never does.
_SERIALS = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/pulumi-lambda-layers/sbom")


def cyclonedx_json(contents: LayerContents, name: str) -> bytes:
    """The SBOM: metadata.component is the layer (name, its zip's hashes, runtime, architecture,
    content hash, CodeSha256), one component per package. No timestamp, sorted keys and
    components, and a serial number derived from the zip: a rebuild gives the same bytes."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6

    layer_props = {"runtime": contents.runtime, "architecture": contents.architecture,
                   "code-sha256": contents.code_sha256,
                   "unzipped-size": str(contents.unzipped_size)}
    if contents.content_hash:
        layer_props["content-hash"] = contents.content_hash
    layer = Component(
        name=name, type=ComponentType.LIBRARY, bom_ref="layer",
        version=(contents.content_hash or contents.zip_sha256)[:16],
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=contents.zip_sha256)],
        properties=[Property(name=f"{PROPERTY}:{k}", value=v) for k, v in layer_props.items()])
    components = [_component(p) for p in contents.packages]
    bom = Bom(serial_number=uuid.uuid5(_SERIALS, contents.zip_sha256),
              metadata=BomMetaData(component=layer), components=components)
    bom.register_dependency(layer, components)
    document: dict[str, Any] = json.loads(JsonV1Dot6(bom).output_as_string())
    document["metadata"].pop("timestamp", None)
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def _component(p: Package) -> Any:
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.component import Component
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from packageurl import PackageURL

    licenses: list[Any] = []
    if p.license.expression is not None:
        if " " in p.license.expression:
            licenses.append(LicenseExpression(p.license.expression))
        else:
            licenses.append(DisjunctiveLicense(id=p.license.expression))
    elif p.license.name:
        licenses.append(DisjunctiveLicense(name=p.license.name))
    props = {"path": p.path}
    if p.license.source:
        props["license-source"] = p.license.source
    if p.candidate_hashes:
        props["lock-sha256"] = " ".join(p.candidate_hashes)
    group, _, bare = p.name.rpartition("/") if p.ecosystem == "npm" else ("", "", p.name)
    return Component(
        name=bare, group=group or None, version=p.version, purl=PackageURL.from_string(p.purl),
        bom_ref=p.purl if ">" not in p.key else f"{p.purl}#{p.path}", licenses=licenses,
        hashes=[HashType(alg=HashAlgorithm(alg), content=value) for alg, value in p.hashes],
        properties=[Property(name=f"{PROPERTY}:{k}", value=v) for k, v in props.items()])


def validation_errors(document: bytes) -> str | None:
    """Why the document breaks the CycloneDX JSON schema of its spec version, else None."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.from_version(SPEC_VERSION)).validate_str(
        document.decode())
    return None if error is None else str(error)


def summary(contents: LayerContents, document: bytes, location: str | None) -> dict[str, Any]:
    """What the Pulumi state keeps about the SBOM: small whatever the layer holds (counts, the
    packages per license, the document's sha256 and where it is stored)."""
    return {"format": f"CycloneDX {SPEC_VERSION}", "components": len(contents.packages),
            "sha256": hashlib.sha256(document).hexdigest(), "licenses": contents.by_license(),
            "unknown_licenses": sorted(p.key for p in contents.unknown_licenses()),
            "location": location}
