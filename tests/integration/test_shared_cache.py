"""The S3 build cache: a layer built on one machine is used on another without building, only
after its sha256 is checked, it is validated again and it holds exactly the fingerprinted packages;
a damaged or poisoned object is refused and replaced by a fresh build; S3 failures only warn."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from pathlib import Path

import boto3
import pytest

from pulumi_lambda_layers import make_spec
from pulumi_lambda_layers.build.pipeline import BuildResult, build_layer
from pulumi_lambda_layers.cli import main as cli
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from tests.conftest import dead_url, write

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


def _build(lock: Path, out: Path, bucket: str, logs: list[str] | None = None,
           arch: str = "x86_64", key: str | None = None) -> BuildResult:
    spec = make_spec(runtime="python3.11", architecture=arch, lock=str(lock), builder="local")
    return build_layer(spec, out, log=(logs.append if logs is not None else lambda _m: None),
                       use_cache=True, cache_bucket=bucket, cache_prefix="layers/",
                       cache_signing_key=key)


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


# --- the trust model: the bucket is a convenience, not a trust anchor ---------------------------

def _plant(bucket: str, key_hash: str, zip_bytes: bytes, prefix: str = "layers/") -> None:
    """What someone who can write the bucket can do: a zip with a .json whose sha256 matches."""
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{prefix}{key_hash}.zip", Body=zip_bytes)
    about = {"builder": "local", "report": {"ok": True, "findings": []},
             "sha256": hashlib.sha256(zip_bytes).hexdigest()}
    s3.put_object(Bucket=bucket, Key=f"{prefix}{key_hash}.json", Body=json.dumps(about).encode())


def _new_bucket(name: str) -> str:
    boto3.client("s3").create_bucket(Bucket=name)
    return name


def _deny(bucket: str, action: str) -> None:
    boto3.client("s3").put_bucket_policy(Bucket=bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": action,
            "Resource": f"arn:aws:s3:::{bucket}/*"}]}))


def test_other_package_versions_are_refused_and_rebuilt(aws_env: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _new_bucket("layer-cache-versions")
    old = write(tmp_path / "old/requirements.lock", "six==1.16.0\n")
    new = write(tmp_path / "new/requirements.lock", "six==1.17.0\n")
    a = _on_machine("a", tmp_path, monkeypatch)
    stale = build_layer(make_spec(runtime="python3.11", lock=str(old), builder="local"),
                        a / "old.zip")
    new_hash = fingerprint(make_spec(runtime="python3.11", lock=str(new), builder="local")
                           ).content_hash
    _plant(bucket, new_hash, stale.zip.path.read_bytes())

    b = _on_machine("b", tmp_path, monkeypatch)
    logs: list[str] = []
    rebuilt = _build(new, b / "layer.zip", bucket, logs)
    assert rebuilt.builder == "local", "a zip of other package versions must not be used"
    line = f"shared cache: s3://{bucket}/layers/{new_hash}.zip ignored: holds six 1.16.0, " \
           "the lock says 1.17.0"
    assert any(entry.startswith(line) for entry in logs), logs
    with zipfile.ZipFile(b / "layer.zip") as zf:
        assert any("six-1.17.0.dist-info/" in n for n in zf.namelist())
    body = boto3.client("s3").get_object(Bucket=bucket, Key=f"layers/{new_hash}.zip")["Body"]
    assert body.read() == rebuilt.zip.path.read_bytes(), "the good build replaced the poisoned one"


def _tiny_elf(machine: int) -> bytes:
    """A 64-byte ELF64 little-endian shared-object header: the machine check reads e_machine."""
    return (b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
            + struct.pack("<HHIQQQIHHHHHH", 3, machine, 1, 0, 0, 0, 0, 64, 56, 0, 64, 0, 0))


def test_an_x86_binary_in_an_arm64_layer_is_refused(aws_env: str, lock: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _new_bucket("layer-cache-elf")
    a = _on_machine("a", tmp_path, monkeypatch)
    good = build_layer(make_spec(runtime="python3.11", architecture="arm64", lock=str(lock),
                                 builder="local"), a / "good.zip")
    poisoned = tmp_path / "poisoned.zip"
    with zipfile.ZipFile(good.zip.path) as src, zipfile.ZipFile(poisoned, "w") as dst:
        for info in src.infolist():  # the same packages, so only validation can refuse it
            dst.writestr(info, src.read(info))
        dst.writestr("python/lib/python3.11/site-packages/x/_x.so", _tiny_elf(62))  # EM_X86_64
    _plant(bucket, good.content_hash, poisoned.read_bytes())

    b = _on_machine("b", tmp_path, monkeypatch)
    logs: list[str] = []
    rebuilt = _build(lock, b / "layer.zip", bucket, logs, arch="arm64")
    assert rebuilt.builder == "local", "a zip that fails validation must not be used"
    refused = [entry for entry in logs if entry.startswith(
        f"shared cache: s3://{bucket}/layers/{good.content_hash}.zip ignored: it fails validation")]
    assert refused and "x/_x.so" in refused[0] and "x86-64" in refused[0], logs
    assert rebuilt.report.ok and (b / "layer.zip").read_bytes() == good.zip.path.read_bytes()


def test_a_bucket_denying_reads_is_a_warning_and_a_local_build(
        aws_env: str, lock: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _new_bucket("layer-cache-no-read")
    a = _on_machine("a", tmp_path, monkeypatch)
    built = _build(lock, a / "layer.zip", bucket)
    _deny(bucket, "s3:GetObject")

    b = _on_machine("b", tmp_path, monkeypatch)
    logs: list[str] = []
    again = _build(lock, b / "layer.zip", bucket, logs)
    assert again.builder == "local" and again.zip.sha256 == built.zip.sha256
    assert any(entry.startswith("warning: shared cache: could not read") and "403" in entry
               for entry in logs), logs


def test_a_failed_push_is_a_warning_and_the_build_stands(
        aws_env: str, lock: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _new_bucket("layer-cache-no-write")
    _deny(bucket, "s3:PutObject")
    a = _on_machine("a", tmp_path, monkeypatch)
    logs: list[str] = []
    built = _build(lock, a / "layer.zip", bucket, logs)
    assert built.builder == "local" and (a / "layer.zip").is_file() and built.report.ok
    assert any(entry.startswith("warning: shared cache: could not put") for entry in logs), logs
    assert not any(entry.startswith("cache: put") for entry in logs), logs
    assert "Contents" not in boto3.client("s3").list_objects_v2(Bucket=bucket)
    # A bucket that does not exist: a miss on fetch, a warning on push.
    c = _on_machine("c", tmp_path, monkeypatch)
    logs.clear()
    built = _build(lock, c / "layer.zip", "no-such-layer-cache", logs)
    assert built.builder == "local" and (c / "layer.zip").is_file()
    assert any(entry.startswith("warning: shared cache: could not put") for entry in logs), logs


def test_an_unreachable_endpoint_is_a_warning_and_a_local_build(
        aws_env: str, lock: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_url())
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    a = _on_machine("a", tmp_path, monkeypatch)
    logs: list[str] = []
    built = _build(lock, a / "layer.zip", "layer-cache", logs)
    assert built.builder == "local" and (a / "layer.zip").is_file()
    assert any(entry.startswith("warning: shared cache: could not read") for entry in logs), logs
    assert any(entry.startswith("warning: shared cache: could not put") for entry in logs), logs


def test_a_node_layer_from_the_bucket_is_checked_and_used(aws_env: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import npm_locked_project

    bucket = _new_bucket("layer-cache-node")
    # is-odd 3.0.1 needs is-number ^6 while the project wants 7: a nested node_modules too.
    manifest = npm_locked_project(tmp_path / "node", {"is-odd": "3.0.1", "is-number": "7.0.0"})
    spec = make_spec(runtime="nodejs20.x", package_json=str(manifest), builder="local")
    assert set(fingerprint(spec).packages) == {"is-odd", "is-number", "is-odd>is-number"}
    a = _on_machine("a", tmp_path, monkeypatch)
    built = build_layer(spec, a / "layer.zip", use_cache=True, cache_bucket=bucket,
                        log=lambda _m: None)
    b = _on_machine("b", tmp_path, monkeypatch)
    logs: list[str] = []
    again = build_layer(spec, b / "layer.zip", use_cache=True, cache_bucket=bucket,
                        log=logs.append)
    assert again.builder == "cache", logs
    assert again.zip.sha256 == built.zip.sha256 and again.report.ok


def test_a_signed_cache_uses_only_objects_signed_with_its_key(
        aws_env: str, lock: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bucket = _new_bucket("layer-cache-signed")
    s3 = boto3.client("s3")
    a = _on_machine("a", tmp_path, monkeypatch)
    built = _build(lock, a / "layer.zip", bucket, key="team-key-1")
    facts_key = f"layers/{built.content_hash}.json"
    stored = json.loads(s3.get_object(Bucket=bucket, Key=facts_key)["Body"].read())
    assert stored["signature"].startswith("hmac-sha256:"), stored

    # The same key, from the environment this time: used without building.
    b = _on_machine("b", tmp_path, monkeypatch)
    monkeypatch.setenv("PLL_CACHE_SIGNING_KEY", "team-key-1")
    assert _build(lock, b / "layer.zip", bucket).builder == "cache"
    monkeypatch.delenv("PLL_CACHE_SIGNING_KEY")

    # Another key: ignored and built here (and the bucket now holds this machine's signature).
    c = _on_machine("c", tmp_path, monkeypatch)
    logs: list[str] = []
    again = _build(lock, c / "layer.zip", bucket, logs, key="team-key-2")
    assert again.builder == "local" and again.zip.sha256 == built.zip.sha256
    assert any("its signature is wrong for this signing key" in line for line in logs), logs

    # Someone who can write the bucket but has no key: a zip of other bytes, its sha256 in
    # the .json, the old signature kept. Refused before the zip is even fetched.
    forged = bytearray(built.zip.path.read_bytes())
    forged[len(forged) // 2] ^= 0xFF
    s3.put_object(Bucket=bucket, Key=f"layers/{built.content_hash}.zip", Body=bytes(forged))
    stored = json.loads(s3.get_object(Bucket=bucket, Key=facts_key)["Body"].read())
    stored["sha256"] = hashlib.sha256(bytes(forged)).hexdigest()
    s3.put_object(Bucket=bucket, Key=facts_key, Body=json.dumps(stored).encode())
    d = _on_machine("d", tmp_path, monkeypatch)
    logs.clear()
    assert _build(lock, d / "layer.zip", bucket, logs, key="team-key-2").builder == "local"
    assert any("its signature is wrong" in line for line in logs), logs

    # An unsigned object pair (put by a machine without a key) is ignored by one with a key.
    plain = _new_bucket("layer-cache-unsigned")
    e = _on_machine("e", tmp_path, monkeypatch)
    _build(lock, e / "layer.zip", plain)
    assert "signature" not in json.loads(
        s3.get_object(Bucket=plain, Key=facts_key)["Body"].read())
    f = _on_machine("f", tmp_path, monkeypatch)
    logs.clear()
    assert _build(lock, f / "layer.zip", plain, logs, key="team-key-1").builder == "local"
    assert any("it is not signed and a cache signing key is set" in line for line in logs), logs
    # ... while a machine without a key still uses it (signing is opt-in per reader).
    g = _on_machine("g", tmp_path, monkeypatch)
    assert _build(lock, g / "layer.zip", plain).builder == "cache"
