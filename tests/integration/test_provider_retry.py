"""A publish that fails after the build: the retry takes the built zip from the cache, never rebuilds."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest

from pulumi_lambda_layers.aws.layers import PublishError
from pulumi_lambda_layers.resources import LayerBuildProvider, program_time_fingerprint
from tests.conftest import dead_url, write


def test_failed_publish_then_retry_reuses_the_built_zip(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    lock = write(tmp_path / "requirements.lock", "six==1.16.0\n")
    args = {"runtime": "python3.11", "architecture": "x86_64", "lock": str(lock),
            "builder": "local"}
    content_hash, packages, build, errors = program_time_fingerprint(args)
    assert errors == []
    props = {"content_hash": content_hash, "packages": packages, "runtime": "python3.11",
             "architecture": "x86_64", "layer_name": f"pll-retry-{uuid.uuid4().hex[:12]}",
             "description": "retry", "share_with": [], "retain_versions": 0,
             "retain_on_delete": False, "build": build}

    # AWS is unreachable at publish time (a port nobody listens on), after the build ran.
    dead = dead_url()
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(PublishError, match=f"Could not connect to the endpoint URL: \"{dead}/"):
        LayerBuildProvider().create(props)
    first = capsys.readouterr().err
    assert "local: uv pip install 1 packages" in first, "the first attempt built the layer"

    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_env)
    created = LayerBuildProvider().create(props)
    second = capsys.readouterr().err
    assert f"build: cache hit for {content_hash[:16]}, not rebuilding" in second
    assert "uv pip install" not in second
    assert created.outs["version"] == 1
    live = boto3.client("lambda").list_layer_versions(LayerName=props["layer_name"])
    assert [v["Version"] for v in live["LayerVersions"]] == [1]
