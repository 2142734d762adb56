"""A layer folder holding a registry token is refused before anything is written or published."""

from __future__ import annotations

import uuid
from pathlib import Path

import boto3
import pytest

from pulumi_lambda_layers.cli import main as cli
from pulumi_lambda_layers.errors import ValidationError
from pulumi_lambda_layers.resources import LayerBuildProvider, program_time_fingerprint
from tests.conftest import write

NPMRC = "python/.npmrc"


def _layer_folder(tmp_path: Path) -> Path:
    root = tmp_path / "layer"
    write(root / "python/app_util.py", "VALUE = 1\n")
    write(root / NPMRC, "//registry.npmjs.org/:_authToken=abc\n")
    return root


def test_cli_build_refuses_a_layer_with_an_npm_token(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out/layer.zip"
    code = cli(["build", str(_layer_folder(tmp_path)), "--runtime", "python3.11",
                "--arch", "x86_64", "-o", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"[credentials] {NPMRC}: an .npmrc with a registry auth token" in err
    assert f"--exclude '{NPMRC}'" in err
    assert "_authToken=abc" not in err
    assert not out.exists() and not (tmp_path / "out").exists()
    assert not list((tmp_path / "cache").rglob("*.zip")), "a refused layer is never cached"

    # The fix the message names works.
    code = cli(["build", str(tmp_path / "layer"), "--runtime", "python3.11", "--arch", "x86_64",
                "-o", str(out), "--quiet", "--exclude", NPMRC])
    assert code == 0 and out.exists()


def test_provider_create_refuses_it_before_publishing(
        aws_env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    args = {"runtime": "python3.11", "architecture": "x86_64",
            "source_dir": str(_layer_folder(tmp_path))}
    content_hash, packages, build, errors = program_time_fingerprint(args)
    assert errors == []
    layer_name = f"pll-creds-{uuid.uuid4().hex[:12]}"
    props = {"content_hash": content_hash, "packages": packages, "runtime": "python3.11",
             "architecture": "x86_64", "layer_name": layer_name, "description": "creds",
             "share_with": [], "retain_versions": 0, "retain_on_delete": False, "build": build}
    with pytest.raises(ValidationError, match=f"\\[credentials\\] {NPMRC}: "):
        LayerBuildProvider().create(props)
    live = boto3.client("lambda").list_layer_versions(LayerName=layer_name)
    assert live["LayerVersions"] == []
    assert not list((tmp_path / "cache").rglob("*.zip")), "a refused layer is never cached"
