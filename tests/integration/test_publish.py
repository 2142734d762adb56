"""Layer versions against a real moto server: idempotent publish, S3 path, sharing, delete, prune."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
import zipfile
from pathlib import Path

import boto3
import pytest

from pulumi_lambda_layers.errors import SpecError
from pulumi_lambda_layers.limits import DIRECT_UPLOAD_LIMIT
from pulumi_lambda_layers.aws.layers import (
    AwsTarget, PublishError, delete_version, describe_with_hash,
    find_version, get_permissions, get_version, hash_from_description, list_versions,
    publish_version, set_permissions, user_description,
)

ACCOUNT = "111122223333"
ORG = "o-abcdef1234"
TARGET = AwsTarget()


def _zip(path: Path, files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> tuple[Path, str]:
    """Write a zip; returns its path and the CodeSha256 Lambda should report for it."""
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), data)
    return path, base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _policy(layer: str, version: int) -> dict[str, dict]:
    raw = boto3.client("lambda").get_layer_version_policy(LayerName=layer, VersionNumber=version)
    return {s["Sid"]: s for s in json.loads(raw["Policy"])["Statement"]}


@pytest.fixture()
def layer(aws_env: str) -> str:
    # One moto server serves the whole session: every test gets its own layer.
    return f"pll-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def big_zip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    # Random bytes do not compress, and STORED keeps them as they are: just over 50 MiB.
    path = tmp_path_factory.mktemp("big") / "layer.zip"
    return _zip(path, {"python/blob.bin": os.urandom(51 * 1024 * 1024)}, zipfile.ZIP_STORED)


def test_publish_then_reuse_then_new_content(layer: str, tmp_path: Path) -> None:
    zip1, sha1 = _zip(tmp_path / "one.zip", {"python/mod.py": b"x = 1\n"})
    v1, new = publish_version(TARGET, layer, zip1, content_hash=_hash("one"), code_sha256=sha1,
                              description="shared deps", license_info="MIT",
                              compatible_runtimes=["python3.12"],
                              compatible_architectures=["arm64"])
    assert new and v1.version == 1
    assert v1.code_sha256 == sha1 and v1.code_size == zip1.stat().st_size
    raw = boto3.client("lambda").get_layer_version(LayerName=layer, VersionNumber=1)
    assert raw["Content"]["CodeSha256"] == sha1
    assert raw["Description"] == f"shared deps [pll:{_hash('one')}]"
    assert (v1.content_hash, v1.user_description, v1.license_info) == (_hash("one"), "shared deps", "MIT")
    assert (v1.compatible_runtimes, v1.compatible_architectures) == (("python3.12",), ("arm64",))
    assert v1.layer_version_arn == f"{v1.layer_arn}:1" and v1.layer_arn.endswith(f":layer:{layer}")

    meta = {"description": "shared deps", "license_info": "MIT",
            "compatible_runtimes": ["python3.12"], "compatible_architectures": ["arm64"]}
    again, new = publish_version(TARGET, layer, zip1, content_hash=_hash("one"), code_sha256=sha1,
                                 **meta)
    assert not new and again == v1
    assert [v.version for v in list_versions(TARGET, layer)] == [1]

    zip2, sha2 = _zip(tmp_path / "two.zip", {"python/mod.py": b"x = 2\n"})
    v2, new = publish_version(TARGET, layer, zip2, content_hash=_hash("two"))  # sha computed
    assert new and v2.version == 2 and v2.code_sha256 == sha2
    # Only the newest version is reused: versions never go backwards.
    assert find_version(TARGET, layer, _hash("one"), sha1) is None
    assert find_version(TARGET, layer, _hash("two"), sha2) == v2
    assert find_version(TARGET, layer, _hash("one"), sha2) is None  # hash alone is not enough
    listed = list_versions(TARGET, layer)
    assert [v.version for v in listed] == [2, 1] and listed[0].code_sha256 is None


def test_content_back_to_an_earlier_state_is_a_new_version(layer: str, tmp_path: Path) -> None:
    zip_a, sha_a = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    zip_b, sha_b = _zip(tmp_path / "b.zip", {"python/a.py": b"b"})
    publish_version(TARGET, layer, zip_a, content_hash=_hash("a"), code_sha256=sha_a)
    publish_version(TARGET, layer, zip_b, content_hash=_hash("b"), code_sha256=sha_b)
    v3, new = publish_version(TARGET, layer, zip_a, content_hash=_hash("a"), code_sha256=sha_a)
    assert new and v3.version == 3


def test_metadata_change_is_a_new_version(layer: str, tmp_path: Path) -> None:
    zip1, sha1 = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    publish_version(TARGET, layer, zip1, content_hash=_hash("a"), code_sha256=sha1)
    v2, new = publish_version(TARGET, layer, zip1, content_hash=_hash("a"), code_sha256=sha1,
                              license_info="MIT")
    assert new and v2.version == 2


def test_same_hash_other_bytes_is_not_reused(layer: str, tmp_path: Path) -> None:
    zip1, sha1 = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    zip2, sha2 = _zip(tmp_path / "b.zip", {"python/a.py": b"b"})
    publish_version(TARGET, layer, zip1, content_hash=_hash("same"), code_sha256=sha1)
    v2, new = publish_version(TARGET, layer, zip2, content_hash=_hash("same"), code_sha256=sha2)
    assert new and v2.version == 2


def test_wrong_code_sha256_leaves_no_version(layer: str, tmp_path: Path) -> None:
    zip1, _ = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(PublishError, match="CodeSha256") as err:
        publish_version(TARGET, layer, zip1, content_hash=_hash("a"), code_sha256=wrong)
    assert err.value.operation == "publish_layer_version" and "deleted again" in str(err.value)
    assert list_versions(TARGET, layer) == []


def test_description_marker_round_trip_and_truncation(layer: str, tmp_path: Path) -> None:
    h = _hash("desc")
    assert describe_with_hash("", h) == f"[pll:{h}]"
    assert hash_from_description(describe_with_hash("my layer", h)) == h
    assert user_description(describe_with_hash("my layer", h)) == "my layer"
    assert hash_from_description("my layer") is None and hash_from_description(None) is None
    assert hash_from_description(f"[pll:{h}] then more") is None  # the marker must end it
    with pytest.raises(ValueError, match="64 lowercase hex"):
        describe_with_hash("x", "abc")

    long = "d" * 300
    desc = describe_with_hash(long, h)
    assert len(desc) == 256 and desc.endswith(f"… [pll:{h}]")
    assert hash_from_description(desc) == h and user_description(desc) == "d" * 184 + "…"
    assert describe_with_hash("e" * 185, h) == "e" * 185 + f" [pll:{h}]"  # exactly fits, no cut

    zip1, sha1 = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    v, _ = publish_version(TARGET, layer, zip1, content_hash=h, code_sha256=sha1, description=long)
    raw = boto3.client("lambda").get_layer_version(LayerName=layer, VersionNumber=v.version)
    assert raw["Description"] == desc and v.content_hash == h


def test_get_after_delete_and_delete_twice(layer: str, tmp_path: Path) -> None:
    zip1, sha1 = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    v, _ = publish_version(TARGET, layer, zip1, content_hash=_hash("a"), code_sha256=sha1)
    assert get_version(TARGET, layer, v.version) == v
    delete_version(TARGET, layer, v.version)
    assert get_version(TARGET, layer, v.version) is None
    delete_version(TARGET, layer, v.version)
    delete_version(TARGET, f"{layer}-never-existed", 7)
    assert get_version(TARGET, f"{layer}-never-existed", 1) is None
    assert list_versions(TARGET, f"{layer}-never-existed") == []
    # Deleted out of band: the next publish makes a fresh version rather than pointing at nothing.
    v2, new = publish_version(TARGET, layer, zip1, content_hash=_hash("a"), code_sha256=sha1)
    assert new and v2.version == 2


def test_permissions_add_revoke_and_leave_foreign_alone(layer: str, tmp_path: Path) -> None:
    zip1, sha1 = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    v, _ = publish_version(TARGET, layer, zip1, content_hash=_hash("a"), code_sha256=sha1)
    assert get_permissions(TARGET, layer, v.version) == []  # no policy at all yet

    set_permissions(TARGET, layer, v.version, [ACCOUNT, ORG, "*", ACCOUNT])
    policy = _policy(layer, v.version)
    assert set(policy) == {f"pll-{ACCOUNT}", f"pll-{ORG}", "pll-everyone"}
    assert all(s["Action"] == "lambda:GetLayerVersion" for s in policy.values())
    assert policy[f"pll-{ACCOUNT}"]["Principal"] in (ACCOUNT, {"AWS": f"arn:aws:iam::{ACCOUNT}:root"})
    assert policy[f"pll-{ORG}"]["Principal"] == "*" and ORG in json.dumps(policy[f"pll-{ORG}"])
    assert policy["pll-everyone"]["Principal"] == "*"
    assert get_permissions(TARGET, layer, v.version) == sorted(["*", ACCOUNT, ORG])

    boto3.client("lambda").add_layer_version_permission(
        LayerName=layer, VersionNumber=v.version, StatementId="someone-elses",
        Action="lambda:GetLayerVersion", Principal="444455556666")
    set_permissions(TARGET, layer, v.version, [ACCOUNT])  # idempotent for ACCOUNT, revokes the rest
    assert set(_policy(layer, v.version)) == {f"pll-{ACCOUNT}", "someone-elses"}
    assert get_permissions(TARGET, layer, v.version) == [ACCOUNT]

    set_permissions(TARGET, layer, v.version, [])
    assert set(_policy(layer, v.version)) == {"someone-elses"}


@pytest.mark.parametrize("bad", ["12345", "o-abc", "arn:aws:iam::111122223333:root", "", "O-ABCDEF1234"])
def test_invalid_principal_is_rejected_before_any_change(layer: str, tmp_path: Path, bad: str) -> None:
    zip1, sha1 = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    v, _ = publish_version(TARGET, layer, zip1, content_hash=_hash("a"), code_sha256=sha1)
    set_permissions(TARGET, layer, v.version, [ACCOUNT])
    with pytest.raises(SpecError) as err:
        set_permissions(TARGET, layer, v.version, ["*", bad])
    assert repr(bad) in str(err.value) and "12-digit" in str(err.value) and "o-" in str(err.value)
    assert get_permissions(TARGET, layer, v.version) == [ACCOUNT]


def test_permissions_on_missing_version(layer: str) -> None:
    with pytest.raises(PublishError, match="does not exist"):
        set_permissions(TARGET, layer, 3, [ACCOUNT])


def test_big_zip_needs_a_bucket(layer: str, big_zip: tuple[Path, str]) -> None:
    path, sha = big_zip
    size = path.stat().st_size
    assert size > DIRECT_UPLOAD_LIMIT
    with pytest.raises(PublishError) as err:
        publish_version(TARGET, layer, path, content_hash=_hash("big"), code_sha256=sha)
    text = str(err.value)
    assert err.value.size == size and layer in text
    assert f"layer.zip is {size / 1_048_576:.1f} MB ({size:,} bytes)" in text
    assert "over the 50 MB" in text and "set s3_bucket (a bucket in us-east-1)" in text
    assert list_versions(TARGET, layer) == []


def test_big_zip_missing_bucket_names_the_bucket(layer: str, big_zip: tuple[Path, str]) -> None:
    path, sha = big_zip
    with pytest.raises(PublishError) as err:
        publish_version(TARGET, layer, path, content_hash=_hash("big"), code_sha256=sha,
                        s3_bucket="no-such-bucket-pll")
    assert err.value.operation == "put_object" and err.value.code == "NoSuchBucket"
    assert "no-such-bucket-pll" in str(err.value) and "us-east-1" in str(err.value)


def test_big_zip_publishes_through_s3(layer: str, big_zip: tuple[Path, str]) -> None:
    path, sha = big_zip
    bucket = f"pll-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    v, new = publish_version(TARGET, layer, path, content_hash=_hash("big"), code_sha256=sha,
                             s3_bucket=bucket, s3_key_prefix="staging/")
    assert new and v.version == 1 and v.code_sha256 == sha and v.code_size == path.stat().st_size
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0  # staged zip removed again
    # Already published: reused without needing the bucket at all.
    again, new = publish_version(TARGET, layer, path, content_hash=_hash("big"), code_sha256=sha)
    assert not new and again == v


def test_find_version_sees_only_the_owners_versions(layer: str, tmp_path: Path) -> None:
    z, sha = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    mine, _ = publish_version(TARGET, layer, z, content_hash=_hash("a"), code_sha256=sha,
                              owner="p/dev/deps")
    theirs, new = publish_version(TARGET, layer, z, content_hash=_hash("a"), code_sha256=sha,
                                  owner="p/prod/deps")
    assert new and theirs.version == 2 and theirs.owner == "p/prod/deps"
    assert find_version(TARGET, layer, _hash("a"), sha, owner="p/dev/deps") == mine
    assert find_version(TARGET, layer, _hash("a"), sha, owner="p/prod/deps") == theirs
    assert find_version(TARGET, layer, _hash("a"), sha) is None, "unowned: neither"
    assert "[pll:" in mine.description and mine.description.endswith(" owner=p/dev/deps]")


def test_assumed_role_publishes_in_that_account(layer: str, tmp_path: Path) -> None:
    target = AwsTarget(region="us-east-1", assume_role_arn="arn:aws:iam::222233334444:role/deployer")
    z, sha = _zip(tmp_path / "a.zip", {"python/a.py": b"a"})
    v, new = publish_version(target, layer, z, content_hash=_hash("a"), code_sha256=sha)
    assert new and ":222233334444:layer:" in v.layer_version_arn
    assert get_version(TARGET, layer, 1) is None  # not in the default account
    assert get_version(target, layer, 1) == v


def test_session_problems_become_publish_errors(layer: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(PublishError) as err:
        list_versions(AwsTarget(assume_role_arn="arn:bad"), layer)
    assert err.value.operation == "assume_role" and "arn:bad" in str(err.value)

    with pytest.raises(PublishError, match="profile 'nope': no such profile"):
        get_version(AwsTarget(profile="nope"), layer, 1)

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION", raising=False)
    with pytest.raises(PublishError, match="set region"):
        get_version(AwsTarget(), layer, 1)
    assert get_version(AwsTarget(region="us-east-1"), layer, 1) is None
