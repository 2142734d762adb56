"""SBOMs of real layers (local builder, real registries): numpy + requests from a hashed lock, and
sharp's Node.js layer; the deny policy and the size table of the CLI."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from pulumi_lambda_layers import make_spec
from pulumi_lambda_layers.build.pipeline import build_layer
from pulumi_lambda_layers.cli import main as cli
from pulumi_lambda_layers.sbom import validation_errors
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from tests.conftest import write

# Fully pinned, one artifact per package (the wheel uv installs for python3.11 manylinux x86_64),
# so each component's hash is the sha256 of the very wheel it came from; uv checks them.
LOCK = """\
certifi==2026.10.19.post1 --hash=sha256:1324c476b4811eff41a8bc2122cd0bbd4d9c7234c725446d99ab1612b3a7fdd2
charset-normalizer==3.5.3 --hash=sha256:2a6f937e0b70133d1f826d0a253331b6fe1a4c874808cc12e16f2fb8177042f4
idna==3.20 --hash=sha256:ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c
numpy==2.1.3 --hash=sha256:bc6f24b3d1ecc1eebfbf5d6051faa49af40b03be1aaa781ebdadcbc090b4539b
requests==2.32.3 --hash=sha256:70761cfe03c773ceb22aa2f671b4757976145175cdfca038c02654d061d6dcc6
urllib3==2.8.0 --hash=sha256:0cf3cae568d36aa9576b28dfb35f11328f1cb974ca7647d9475ebb86c75ac6e3
"""
# What each package's own metadata says (numpy 2.1.3: a BSD classifier, its License field is the
# first line of its license text).
LICENSES = {"certifi": {"id": "MPL-2.0"}, "charset-normalizer": {"id": "MIT"},
            "idna": {"id": "BSD-3-Clause"}, "numpy": {"name": "BSD License"},
            "requests": {"id": "Apache-2.0"}, "urllib3": {"id": "MIT"}}
TARGET = ["--runtime", "python3.11", "--arch", "x86_64", "--builder", "local", "--locked"]


@pytest.fixture(scope="module")
def lock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("np-src") / "requirements.lock", LOCK)


def _build(tmp: Path, lock: Path, name: str, monkeypatch: pytest.MonkeyPatch,
           *extra: str) -> tuple[int, Path, Path]:
    # A cache folder of its own per build: the second build shares nothing with the first.
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp / f"cache-{name}"))
    out, sbom = tmp / name / "np.zip", tmp / name / "np.cdx.json"
    code = cli(["build", *TARGET, str(lock), "-o", str(out), "--sbom", str(sbom), "--no-cache",
                "--quiet", *extra])
    return code, out, sbom


def test_numpy_requests_sbom_validates_lists_every_package_and_is_reproducible(
        tmp_path: Path, lock: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, sbom = _build(tmp_path, lock, "one", monkeypatch)
    assert code == 0
    document = sbom.read_bytes()
    assert validation_errors(document) is None
    doc = json.loads(document)
    fp = fingerprint(make_spec(runtime="python3.11", lock=str(lock), builder="local"))
    assert set(fp.packages) == set(LICENSES)
    components = {c["purl"]: c for c in doc["components"]}
    assert set(components) == {f"pkg:pypi/{n}@{v}" for n, v in fp.packages.items()}
    lock_hashes = {line.split("==")[0]: line.split("sha256:")[1] for line in LOCK.splitlines()}
    for name, version in fp.packages.items():
        c = components[f"pkg:pypi/{name}@{version}"]
        assert c["licenses"] == [{"license": LICENSES[name]}], name
        assert c["hashes"] == [{"alg": "SHA-256", "content": lock_hashes[name]}], name
    layer = doc["metadata"]["component"]
    props = {p["name"].split(":")[1]: p["value"] for p in layer["properties"]}
    zip_sha = hashlib.sha256(out.read_bytes()).hexdigest()
    assert layer["hashes"] == [{"alg": "SHA-256", "content": zip_sha}]
    assert (props["runtime"], props["architecture"], props["content-hash"]) == \
        ("python3.11", "x86_64", fp.content_hash)

    # Another build from nothing: the same zip, the same SBOM bytes.
    code, out2, sbom2 = _build(tmp_path, lock, "two", monkeypatch)
    assert code == 0 and out2.read_bytes() == out.read_bytes()
    assert sbom2.read_bytes() == document
    # And `sbom SOURCE`, which takes the zip from the cache, prints those bytes too.
    capsys.readouterr()
    assert cli(["sbom", *TARGET, str(lock), "--name", "np"]) == 0
    assert capsys.readouterr().out.encode() == document


def test_a_denied_license_fails_the_build_naming_the_package_and_leaves_no_zip(
        tmp_path: Path, lock: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, sbom = _build(tmp_path, lock, "denied", monkeypatch, "--deny-license", "MPL-2.0")
    err = capsys.readouterr().err
    assert code == 1
    assert "--deny-license: the layer holds 1 package(s) under a denied license: certifi " \
        "2026.10.19.post1 (MPL-2.0)" in err, err
    assert not out.exists() and not sbom.exists()
    # Allowed: the unknown (not SPDX) license of numpy is a warning.
    code, out, _ = _build(tmp_path, lock, "allowed", monkeypatch, "--deny-license", "GPL-3.0")
    assert code == 0 and out.exists()
    assert "warning: licenses: 1 package(s) without an SPDX license, which deny_licenses cannot " \
        "check: numpy 2.1.3 (BSD License)" in capsys.readouterr().out


def test_inspect_prints_the_size_table(tmp_path: Path, lock: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = _build(tmp_path, lock, "sizes", monkeypatch)
    capsys.readouterr()
    assert cli(["inspect", "--runtime", "python3.11", str(out)]) == 0
    text = capsys.readouterr().out
    table = text[text.index("unzipped size by package"):].splitlines()
    assert "budget: 250.0 MiB" in table[0] and "this layer uses 2" in table[0]
    assert table[1].split() == ["package", "unzipped", "budget"]
    rows = [line.split() for line in table[2:]]
    assert rows[0][0] == "numpy" and rows[0][-1].endswith("%") and int(rows[0][-1][:-1]) >= 15
    assert {r[0] for r in rows} >= {"numpy", "requests", "urllib3", "certifi", "idna"}
    assert "largest packages:" not in text  # the table replaces the report's list
    assert cli(["inspect", "--runtime", "python3.11", "--json", str(out)]) == 0
    budget = json.loads(capsys.readouterr().out)["budget"]
    assert budget["packages"][0]["package"] == "numpy" and 0.15 < budget["packages"][0]["share"]


def test_the_sharp_layer_sbom_uses_npm_purls(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    manifest = write(tmp_path / "src" / "package.json", json.dumps(
        {"name": "thumbs", "version": "1.0.0", "dependencies": {"sharp": "0.34.5"}}))
    result = build_layer(make_spec(runtime="nodejs20.x", architecture="x86_64",
                                   package_json=str(manifest), builder="local"),
                         tmp_path / "sharp.zip", log=lambda _m: None)
    assert cli(["sbom", "--runtime", "nodejs20.x", str(result.zip.path), "-o",
                str(tmp_path / "sharp.cdx.json")]) == 0
    document = (tmp_path / "sharp.cdx.json").read_bytes()
    assert validation_errors(document) is None
    components: list[dict[str, Any]] = json.loads(document)["components"]
    purls = {c["purl"] for c in components}
    assert {"pkg:npm/sharp@0.34.5", "pkg:npm/%40img/sharp-linux-x64@0.34.5"} <= purls
    assert all(p.startswith("pkg:npm/") for p in purls)
    by_purl = {c["purl"]: c for c in components}
    assert by_purl["pkg:npm/sharp@0.34.5"]["licenses"] == [{"license": {"id": "Apache-2.0"}}]
    libvips = next(c for c in components if c["name"] == "sharp-libvips-linux-x64")
    assert libvips["group"] == "@img"
    assert libvips["licenses"] == [{"license": {"id": "LGPL-3.0-or-later"}}]
    # npm's integrity (from the layer's own node_modules/.package-lock.json) for every package.
    assert all(c["hashes"][0]["alg"] == "SHA-512" for c in components)
    assert result.contents is not None
    assert {p.purl for p in result.contents.packages} == purls
