"""The SBOM's facts, document and license policy on small zips written here (no build, no network)."""

from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest

from pulumi_lambda_layers.errors import LayerError, SpecError
from pulumi_lambda_layers.resources.arguments import config_defaults
from pulumi_lambda_layers.resources.checks import check_props, diff_props
from pulumi_lambda_layers.sbom import (
    License,
    check_licenses,
    cyclonedx_json,
    deny_policy,
    read_contents,
    summary,
    validation_errors,
)
from pulumi_lambda_layers.sbom.licenses import node_license, python_license
from pulumi_lambda_layers.sbom.state import recheck
from pulumi_lambda_layers.validate.sizes import size_line, size_table

SITE = "python/lib/python3.12/site-packages"
HASH_A = "a" * 64


def _python_zip(path: Path, metadata: dict[str, list[str]]) -> Path:
    """A layer zip holding one dist-info per package: name-version -> extra METADATA lines."""
    with zipfile.ZipFile(path, "w") as zf:
        for dist, lines in sorted(metadata.items()):
            name, version = dist.split("-")
            zf.writestr(f"{SITE}/{name}-{version}.dist-info/METADATA",
                        "\n".join(["Metadata-Version: 2.4", f"Name: {name}",
                                   f"Version: {version}", *lines]) + "\n\nlong description\n")
            zf.writestr(f"{SITE}/{name}/__init__.py", "x = 1\n" * 100)
    return path


def _contents(zip_path: Path, lock: str = "", runtime: str = "python3.12",
              language: str = "python") -> Any:
    return read_contents(zip_path, runtime, language, "arm64", zip_sha256="b" * 64,
                         code_sha256="q80=", unzipped_size=1234, content_hash="c" * 64,
                         install_files={"requirements.txt": lock} if lock else {})


@pytest.fixture
def layer(tmp_path: Path) -> Path:
    return _python_zip(tmp_path / "layer.zip", {
        "Alpha_Pkg-1.0": ["License-Expression: mit OR Apache-2.0"],
        "beta-2.0": ["License: Copyright (c) 2020 Beta people.",
                     "Classifier: License :: OSI Approved :: BSD License"],
        "gamma-3.0": ["License: GPL-3.0-or-later"],
        "delta-4.0": [],
    })


def test_each_package_has_its_license_purl_and_lock_hash(layer: Path) -> None:
    lock = (f"alpha-pkg==1.0 \\\n    --hash=sha256:{HASH_A}\n"
            f"beta==2.0 --hash=sha256:{'1' * 64} --hash=sha256:{'2' * 64}\n")
    contents = _contents(layer, lock)
    got = {p.key: (p.license.text, p.purl, p.hashes, p.candidate_hashes)
           for p in contents.packages}
    assert got == {
        "alpha-pkg": ("MIT OR Apache-2.0", "pkg:pypi/alpha-pkg@1.0", (("SHA-256", HASH_A),), ()),
        # Two artifacts in the lock: which one was installed is not known, so neither is "the" hash.
        "beta": ("BSD License", "pkg:pypi/beta@2.0", (), ("1" * 64, "2" * 64)),
        "delta": ("unknown", "pkg:pypi/delta@4.0", (), ()),
        "gamma": ("GPL-3.0-or-later", "pkg:pypi/gamma@3.0", (), ()),
    }
    assert [p.key for p in contents.unknown_licenses()] == ["beta", "delta"]


def test_the_document_validates_and_is_the_same_bytes_every_time(layer: Path) -> None:
    first = cyclonedx_json(_contents(layer, f"alpha-pkg==1.0 --hash=sha256:{HASH_A}\n"), "deps")
    assert validation_errors(first) is None
    assert first == cyclonedx_json(_contents(layer, f"alpha-pkg==1.0 --hash=sha256:{HASH_A}\n"),
                                   "deps")
    doc = json.loads(first)
    assert doc["specVersion"] == "1.6" and "timestamp" not in doc["metadata"]
    assert doc["serialNumber"].startswith("urn:uuid:")
    layer_component = doc["metadata"]["component"]
    props = {p["name"]: p["value"] for p in layer_component["properties"]}
    assert props == {"pulumi-lambda-layers:runtime": "python3.12",
                     "pulumi-lambda-layers:architecture": "arm64",
                     "pulumi-lambda-layers:code-sha256": "q80=",
                     "pulumi-lambda-layers:content-hash": "c" * 64,
                     "pulumi-lambda-layers:unzipped-size": "1234"}
    assert layer_component["hashes"] == [{"alg": "SHA-256", "content": "b" * 64}]
    assert [c["purl"] for c in doc["components"]] == sorted(c["purl"] for c in doc["components"])
    by_name = {c["name"]: c for c in doc["components"]}  # the name as published
    assert by_name["Alpha_Pkg"]["purl"] == "pkg:pypi/alpha-pkg@1.0"
    assert by_name["Alpha_Pkg"]["hashes"] == [{"alg": "SHA-256", "content": HASH_A}]
    assert by_name["Alpha_Pkg"]["licenses"] == [{"expression": "MIT OR Apache-2.0"}]
    assert by_name["gamma"]["licenses"] == [{"license": {"id": "GPL-3.0-or-later"}}]
    assert by_name["beta"]["licenses"] == [{"license": {"name": "BSD License"}}]
    assert "licenses" not in by_name["delta"]
    # Another zip: another serial number.
    other = read_contents(layer, "python3.12", "python", "arm64", zip_sha256="d" * 64,
                          code_sha256="", unzipped_size=0)
    assert json.loads(cyclonedx_json(other, "deps"))["serialNumber"] != doc["serialNumber"]


def test_node_packages_use_npm_purls_and_the_integrity_npm_recorded(tmp_path: Path) -> None:
    path = tmp_path / "node.zip"
    sri = base64.b64encode(bytes(range(64))).decode()
    lock = {"packages": {"node_modules/@img/sharp-linux-x64": {"integrity": f"sha512-{sri}"},
                         "node_modules/a/node_modules/b": {"integrity": f"sha1-AAEC sha512-{sri}"},
                         "node_modules/a": {"integrity": "sha512-AAEC"}}}  # malformed: none
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("nodejs/node_modules/.package-lock.json", json.dumps(lock))
        for folder, manifest in {
                "@img/sharp-linux-x64": {"name": "@img/sharp-linux-x64", "version": "0.34.5",
                                         "license": "Apache-2.0"},
                "a": {"name": "a", "version": "1.0.0", "license": {"type": "MIT"}},
                "a/node_modules/b": {"name": "b", "version": "2.0.0", "license": "SEE LICENSE IN x"},
        }.items():
            zf.writestr(f"nodejs/node_modules/{folder}/package.json", json.dumps(manifest))
    contents = _contents(path, runtime="nodejs20.x", language="nodejs")
    got = {p.key: (p.purl, p.license.text, p.hashes) for p in contents.packages}
    assert got == {
        "@img/sharp-linux-x64": ("pkg:npm/%40img/sharp-linux-x64@0.34.5", "Apache-2.0",
                                 (("SHA-512", bytes(range(64)).hex()),)),
        "a": ("pkg:npm/a@1.0.0", "MIT", ()),
        "a>b": ("pkg:npm/b@2.0.0", "SEE LICENSE IN x", (("SHA-512", bytes(range(64)).hex()),)),
    }
    document = cyclonedx_json(contents, "sharp")
    assert validation_errors(document) is None
    assert {c["purl"] for c in json.loads(document)["components"]} == {p[0] for p in got.values()}


@pytest.mark.parametrize("given,expected", [
    ((None, "Apache 2.0", []), License("Apache-2.0", None, "License")),
    (("BSD-3-Clause", "MIT", []), License("BSD-3-Clause", None, "License-Expression")),
    ((None, "", ["License :: OSI Approved :: MIT License"]), License("MIT", None, "classifier")),
    ((None, "long\ntext", ["License :: OSI Approved :: Apache Software License"]),
     License(None, "Apache Software License", "classifier")),
    ((None, "Proprietary", []), License(None, "Proprietary", "License")),
    ((None, None, []), License()),
])
def test_python_license_sources_in_order(given: tuple[Any, Any, list[str]],
                                         expected: License) -> None:
    assert python_license(*given) == expected


def test_node_license_forms() -> None:
    assert node_license({"license": "(MIT OR ISC)"}).expression == "MIT OR ISC"
    assert node_license({"licenses": [{"type": "MIT"}, {"type": "BSD-2-Clause"}]}).expression == \
        "MIT OR BSD-2-Clause"
    assert node_license({"license": "UNLICENSED"}) == License(None, "UNLICENSED", "package.json")
    assert not node_license({}).known


@pytest.mark.parametrize("license,denied", [
    (License("GPL-3.0-or-later"), True),      # a family: -only, -or-later and + forms
    (License("MIT OR GPL-3.0-only"), False),  # a choice that avoids it
    (License("MIT AND GPL-3.0+"), True),
    (License("AGPL-3.0-only"), True),         # "LGPL-3.0 OR AGPL-3.0-only" denies both
    (License("LGPL-2.1-only"), False),
    (License("Apache-2.0 WITH LLVM-exception"), True),  # an expression denied as written
    (License("Apache-2.0"), False),
    (License(None, "GNU General Public License v3 (GPLv3)"), True),  # a classifier's family
    (License(None, "BSD License"), False),
    (License(), False),
])
def test_the_deny_policy(license: License, denied: bool) -> None:
    policy = deny_policy(["GPL-3.0", "LGPL-3.0-only OR AGPL-3.0-only",
                          "Apache-2.0 WITH LLVM-exception"])
    assert policy.denies(license) is denied


def test_a_denied_license_is_refused_naming_package_and_license(layer: Path) -> None:
    contents = _contents(layer)
    with pytest.raises(LayerError) as raised:
        check_licenses(contents, deny_policy(["GPL-3.0-only"]))
    assert "gamma 3.0 (GPL-3.0-or-later)" in str(raised.value)
    assert str(raised.value).startswith("deny_licenses: the layer holds 1 package(s)")
    warnings = check_licenses(contents, deny_policy(["AGPL-3.0-only"]))
    assert warnings == ["licenses: 2 package(s) without an SPDX license, which deny_licenses "
                        "cannot check: beta 2.0 (BSD License), delta 4.0 (no license in its "
                        "metadata)"]
    with pytest.raises(SpecError, match="'GPL3' is not an SPDX license id or expression"):
        deny_policy(["GPL3"])


def test_the_state_summary_is_small_and_a_new_policy_is_checked_against_it(layer: Path) -> None:
    contents = _contents(layer)
    kept = summary(contents, cyclonedx_json(contents, "deps"), None)
    assert kept["licenses"] == {"BSD License": ["beta"], "GPL-3.0-or-later": ["gamma"],
                                "MIT OR Apache-2.0": ["alpha-pkg"], "unknown": ["delta"]}
    assert (kept["components"], kept["unknown_licenses"], kept["location"]) == \
        (4, ["beta", "delta"], None)
    assert len(json.dumps(kept)) < 400
    recheck(kept, {"gamma": "3.0"}, ["MIT"])  # MIT OR Apache-2.0: a choice, not denied
    with pytest.raises(LayerError, match=r"gamma 3.0 \(GPL-3.0-or-later\)"):
        recheck(kept, {"gamma": "3.0"}, ["GPL-3.0-only"])
    recheck(None, {}, ["GPL-3.0-only"])  # published before SBOMs: nothing to check


def test_deny_licenses_from_config_check_and_diff() -> None:
    defaults, problems = config_defaults({"denyLicenses": '["GPL-3.0-only"]'})
    assert (defaults, problems) == ({"deny_licenses": ["GPL-3.0-only"]}, [])
    _, problems = config_defaults({"denyLicenses": "GPL-3.0-only"})
    assert problems and "expected a JSON list of SPDX ids" in problems[0]["reason"]
    base = {"layer_name": "ok", "share_with": []}
    failures = check_props({**base, "deny_licenses": ["GPL-3.0-only", "Nonsense-1"]})
    assert [(f.property, f.reason.split(" (")[0]) for f in failures] == \
        [("deny_licenses", "'Nonsense-1' is not an SPDX license id or expression")]
    assert "write ['MIT']" in check_props({**base, "deny_licenses": "MIT"})[0].reason
    assert check_props({**base, "deny_licenses": ["GPL-3.0-only"]}) == []
    diff = diff_props({"deny_licenses": []}, {"deny_licenses": ["MIT"]})
    assert diff.changes and not diff.replaces  # policy is not content: an update


def test_size_table_shows_the_share_of_the_budget() -> None:
    lines = size_table([("numpy", 55_000_000), ("six", 26_214)], 60_000_000)
    assert lines[0].startswith("unzipped size by package (budget: 250.0 MiB")
    assert "this layer uses 23%" in lines[0]
    assert lines[2].split() == ["numpy", "52.5", "MiB", "21%"]
    assert lines[3].split() == ["six", "25.6", "KiB", "0.0%"]
    assert size_line([("numpy", 55_000_000)], 60_000_000) == \
        "sizes: 57.2 MiB unzipped (23% of 250.0 MiB); largest: numpy 52.5 MiB (21%)"
