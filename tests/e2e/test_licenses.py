"""deny_licenses and the SBOM output on the real engine and moto: a denied license stops `pulumi
up` after the build and before publish (no layer version exists); an allowed layer's SBOM goes
to S3 and its summary to the state; a new policy the published layer breaks fails the update."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pulumi_lambda_layers.sbom import validation_errors
from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiCLI, write_python_project
from tests.local_index import LocalIndex, make_wheel, serve_index

PROGRAM = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

cfg = pulumi.Config()
layer = LambdaLayerBuild("deps", runtime="python3.11", lock="requirements.lock", builder="local",
                         layer_name="e2e-licenses", cache_bucket=cfg.get("bucket"),
                         deny_licenses=cfg.get_object("deny"))
pulumi.export("version", layer.version)
pulumi.export("sbom", layer.sbom)
'''
LAYER = "e2e-licenses"
BUCKET = "e2e-sbom-bucket"


def licensed_wheel(folder: Path, name: str, version: str, metadata: tuple[str, ...]) -> Path:
    """tests.local_index.make_wheel's minimal wheel, with license lines in its METADATA."""
    return make_wheel(folder, name, version, metadata=metadata, code="# padding\n" * 50)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[LocalIndex]:
    wheels = tmp_path / "wheels"
    licensed_wheel(wheels, "pllfree", "1.0.0", ("License-Expression: MIT",))
    licensed_wheel(wheels, "pllcopyleft", "1.0.0", (
        "License: GPL-3.0-or-later",
        "Classifier: License :: OSI Approved :: GNU General Public License v3 (GPLv3)"))
    licensed_wheel(wheels, "pllmystery", "1.0.0", ())
    with serve_index(wheels) as served:
        yield served


@pytest.fixture
def cli(tmp_path: Path, aws_env: str, index: LocalIndex) -> PulumiCLI:
    folder = tmp_path / "licenses"
    write_python_project(folder, "licenses", PROGRAM)
    (folder / "requirements.lock").write_text(
        f"--index-url {index.url}\npllcopyleft==1.0.0\npllfree==1.0.0\npllmystery==1.0.0\n")
    cli = PulumiCLI(folder, home=tmp_path / "pulumi", extra_env=moto_env(aws_env, tmp_path))
    cli.stack_init("dev")
    return cli


def _versions() -> list[int]:
    lam = boto3.client("lambda")
    try:
        listed = lam.list_layer_versions(LayerName=LAYER)["LayerVersions"]
    except lam.exceptions.ResourceNotFoundException:
        return []
    return sorted(int(v["Version"]) for v in listed)


def _state_sbom(cli: PulumiCLI) -> Any:
    return next(r["outputs"]["sbom"] for r in cli.resources() if r["urn"].endswith("::deps"))


def test_a_denied_license_stops_up_before_publish_and_the_sbom_goes_to_s3(
        cli: PulumiCLI) -> None:
    cli.config_set("lambda-layers:denyLicenses", '["GPL-3.0-only"]')
    failed = cli.run("up", "--yes", "--skip-preview", check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "deny_licenses: the layer holds 1 package(s) under a denied license: pllcopyleft " \
        "1.0.0 (GPL-3.0-or-later); denied: GPL-3.0-only" in text, text[-3000:]
    # It was built (the build log's sizes line) and then nothing was published.
    assert "sizes: " in text and "of 250.0 MiB" in text, text[-3000:]
    assert "published" not in text
    assert _versions() == []
    assert not any(r["urn"].endswith("::deps") for r in cli.resources())

    # Allowed now: published, with the SBOM in the cache bucket and its summary in the state.
    cli.run("config", "rm", "lambda-layers:denyLicenses")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    cli.config_set("bucket", BUCKET)
    done = cli.up()
    assert "pllmystery 1.0.0 (no license in its metadata)" in done.stdout + done.stderr
    assert _versions() == [1]
    sbom = cli.outputs()["sbom"]
    assert (sbom["components"], sbom["format"], sbom["unknown_licenses"]) == \
        (3, "CycloneDX 1.6", ["pllmystery"])
    assert sbom["licenses"] == {"GPL-3.0-or-later": ["pllcopyleft"], "MIT": ["pllfree"],
                                "unknown": ["pllmystery"]}
    assert len(json.dumps(_state_sbom(cli))) < 600  # the state keeps a summary, not the SBOM
    bucket, _, key = sbom["location"].removeprefix("s3://").partition("/")
    assert bucket == BUCKET and key.startswith(f"sbom/{LAYER}/") and key.endswith(".cdx.json")
    document = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    assert hashlib.sha256(document).hexdigest() == sbom["sha256"]
    assert validation_errors(document) is None
    purls = sorted(c["purl"] for c in json.loads(document)["components"])
    assert purls == ["pkg:pypi/pllcopyleft@1.0.0", "pkg:pypi/pllfree@1.0.0",
                     "pkg:pypi/pllmystery@1.0.0"]

    # A policy the published layer breaks, given as the argument: the update fails naming the
    # package, and the version stays the only one.
    cli.config_set("deny", '["GPL-3.0"]')
    failed = cli.run("up", "--yes", "--skip-preview", check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "pllcopyleft 1.0.0 (GPL-3.0-or-later)" in text, text[-3000:]
    assert _versions() == [1]
