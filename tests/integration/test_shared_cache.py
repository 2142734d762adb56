"""The S3 build cache: a layer built on one machine is used on another without building, only
after its sha256 is checked; a damaged object is refused and replaced by a fresh build."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from pulumi_lambda_layers import make_spec
from pulumi_lambda_layers.build.pipeline import BuildResult, build_layer
from pulumi_lambda_layers.cli import main as cli
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from tests.conftest import write

LOCK = "six==1.16.0\nidna==3.10\n"


@pytest.fixture()
def bucket(aws_env: str) -> str:
    boto3.client("s3").create_bucket(Bucket="layer-cache")
    return "layer-cache"


@pytest.fixture()
def lock(tmp_path: Path) -> Path:
    return write(tmp_path / "spec/requirements.lock", LOCK)


def _on_machine(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A machine with its own, empty local cache."""
    home = tmp_path / name
    monkeypatch.setenv("PLL_CACHE_DIR", str(home / "cache"))
    return home


def _build(lock: Path, out: Path, bucket: str, logs: list[str] | None = None) -> BuildResult:
    spec = make_spec(runtime="python3.11", lock=str(lock), builder="local")
    return build_layer(spec, out, log=(logs.append if logs is not None else lambda _m: None),
                       use_cache=True, cache_bucket=bucket, cache_prefix="layers/")


def test_built_on_one_machine_used_on_another(bucket: str, lock: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec = make_spec(runtime="python3.11", lock=str(lock), builder="local")
    plain_hash = fingerprint(spec).content_hash

    a = _on_machine("a", tmp_path, monkeypatch)
    built = _build(lock, a / "layer.zip", bucket)
    assert built.builder == "local"
    assert built.content_hash == plain_hash, "the cache bucket is no part of the content"
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {f"layers/{plain_hash}.zip", f"layers/{plain_hash}.json"}

    # Machine B, through the CLI: nothing built, nothing packed, the same bytes.
    b = _on_machine("b", tmp_path, monkeypatch)
    code = cli(["build", "--runtime", "python3.11", "--builder", "local", str(lock), "-o",
                str(b / "layer.zip"), "--cache-bucket", bucket, "--cache-prefix", "layers/",
                "--locked", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["builder"] == "cache" and out["content_hash"] == plain_hash
    assert out["sha256"] == built.zip.sha256 and out["validation"]["ok"]
    assert (b / "layer.zip").read_bytes() == built.zip.path.read_bytes()
    assert not (b / "cache" / "packs").exists(), "machine B compressed nothing"


def test_a_damaged_object_is_refused_and_rebuilt(bucket: str, lock: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    a = _on_machine("a", tmp_path, monkeypatch)
    built = _build(lock, a / "layer.zip", bucket)
    good = built.zip.path.read_bytes()
    key = f"layers/{built.content_hash}.zip"
    s3 = boto3.client("s3")
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=key, Body=bytes(damaged))

    c = _on_machine("c", tmp_path, monkeypatch)
    logs: list[str] = []
    rebuilt = _build(lock, c / "layer.zip", bucket, logs)
    assert rebuilt.builder == "local", "the damaged zip must not be used"
    assert any("rejected" in line for line in logs), logs
    assert (c / "layer.zip").read_bytes() == good
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == good, "repaired in the bucket"


def test_the_resource_provider_uses_the_shared_cache(bucket: str, lock: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from pulumi_lambda_layers.resources import LayerProps, diff_props, program_time_fingerprint
    from pulumi_lambda_layers.resources.layer_build import _build_or_reuse

    args = {"runtime": "python3.11", "lock": str(lock), "builder": "local"}
    content_hash, packages, build, errors = program_time_fingerprint(args)
    assert not errors
    props = {"content_hash": content_hash, "packages": packages, "runtime": "python3.11",
             "architecture": "x86_64", "layer_name": "deps", "build": build,
             "cache_bucket": bucket, "cache_prefix": "ci/"}
    _on_machine("a", tmp_path, monkeypatch)
    path_a, built_a = _build_or_reuse(LayerProps.of(props))
    assert built_a["builder_used"] == "local"
    _on_machine("b", tmp_path, monkeypatch)
    path_b, built_b = _build_or_reuse(LayerProps.of(props))
    assert built_b["builder_used"] == "cache"
    assert path_b.read_bytes() == path_a.read_bytes()
    assert built_b["code_sha256"] == built_a["code_sha256"]
    # Pointing at another cache bucket is no change to the layer: nothing to replace or update.
    assert not diff_props(props, {**props, "cache_bucket": "other"}).changes
