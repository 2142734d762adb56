"""Ownership and reference-aware deletion against a moto server: the provider's delete and `prune`."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from pulumi_lambda_layers import cli
from pulumi_lambda_layers.aws import layers as publish
from pulumi_lambda_layers.errors import LayerError
from pulumi_lambda_layers.resources import LayerBuildProvider
from tests.conftest import client_in, dead_url, role_arn
from tests.lambda_fakes import make_function
from tests.moto_cross_account import UNTRUSTED_ROLE_PREFIX

DEV, PROD = "shop/dev/deps", "shop/prod/deps"
CONSUMER = "444455556666"


def _zip(path: Path, text: str) -> tuple[Path, str]:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("python/mod.py", (1980, 1, 1, 0, 0, 0)), text)
    return path, base64.b64encode(hashlib.sha256(path.read_bytes()).digest()).decode()


def _publish(tmp_path: Path, layer: str, text: str, owner: str | None) -> publish.LayerVersion:
    z, sha = _zip(tmp_path / f"{uuid.uuid4().hex}.zip", text)
    return publish.publish_version(publish.AwsTarget(), layer, z, owner=owner, code_sha256=sha,
                                   content_hash=hashlib.sha256(text.encode()).hexdigest(),
                                   compatible_runtimes=["python3.12"])[0]


def _props(v: publish.LayerVersion, owner: str | None, **extra: Any) -> dict[str, Any]:
    """The state a LambdaLayerBuild holds for version v (what the engine hands to delete)."""
    return {"content_hash": v.content_hash, "runtime": "python3.12", "architecture": "x86_64",
            "layer_name": v.layer_arn.rsplit(":", 1)[1], "owner": owner, "version": v.version,
            "layer_arn": v.layer_arn, "layer_version_arn": v.layer_version_arn,
            "retain_versions": 0, **extra}


def _live(layer: str) -> list[int]:
    found = boto3.client("lambda").list_layer_versions(LayerName=layer)["LayerVersions"]
    return sorted(v["Version"] for v in found)


@pytest.fixture()
def layer(aws_env: str) -> str:
    return f"pll-own-{uuid.uuid4().hex[:10]}"


def test_two_stacks_on_one_name_neither_reuses_nor_deletes_the_others(
        layer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev1 = _publish(tmp_path, layer, "same", DEV)
    prod = _publish(tmp_path, layer, "same", PROD)
    assert (dev1.version, prod.version) == (1, 2), "prod published its own version of the content"
    assert _publish(tmp_path, layer, "same", DEV) == dev1, "dev reuses its own version"
    assert _publish(tmp_path, layer, "same", PROD) == prod
    publish.set_permissions(publish.AwsTarget(), layer, prod.version, ["111122223333"])
    dev3 = _publish(tmp_path, layer, "dev moved on", DEV)
    prod4 = _publish(tmp_path, layer, "prod moved on", PROD)
    dev5 = _publish(tmp_path, layer, "dev again", DEV)

    # dev replaces 3 by 5, retaining one: its window is [3]; 1 (dev's) goes; prod's 2 and 4 stay.
    LayerBuildProvider().delete(dev3.layer_version_arn, _props(dev3, DEV, retain_versions=1))
    assert _live(layer) == [2, 3, 4, 5]
    # dev is destroyed: its 5 and the retained 3 go; prod's versions and permissions stay.
    LayerBuildProvider().delete(dev5.layer_version_arn, _props(dev5, DEV, retain_versions=1))
    assert _live(layer) == [2, 4]
    assert publish.get_permissions(publish.AwsTarget(), layer, 2) == ["111122223333"]
    err = capsys.readouterr().err
    assert f"leaving {layer} versions 2, 4 alone: other stacks or resources published them" in err
    LayerBuildProvider().delete(prod4.layer_version_arn, _props(prod4, PROD, retain_versions=1))
    assert _live(layer) == []


def test_a_version_a_function_uses_is_kept_unless_forced(
        layer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    v1 = _publish(tmp_path, layer, "one", DEV)
    fn = make_function(boto3.client("lambda"), layers=[v1.layer_version_arn])
    v2 = _publish(tmp_path, layer, "two", DEV)

    LayerBuildProvider().delete(v1.layer_version_arn, _props(v1, DEV))  # old side of a replace
    assert _live(layer) == [1, 2]
    warning = capsys.readouterr().err
    assert f"warning: kept {layer}:1: still used by arn:aws:lambda:us-east-1:123456789012:" \
           f"function:{fn}" in warning, warning
    LayerBuildProvider().delete(v2.layer_version_arn, _props(v2, DEV, retain_versions=1))
    assert _live(layer) == [1], "destroy: the unused 2 goes, the retained 1 is still in use"
    LayerBuildProvider().delete(v1.layer_version_arn, _props(v1, DEV, force_delete=True))
    assert _live(layer) == []
    assert f"force_delete: deleting {layer}:1 without looking" in capsys.readouterr().err


def test_functions_in_consumer_accounts_count_and_an_unusable_role_deletes_nothing(
        cross_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layer = f"pll-own-{uuid.uuid4().hex[:10]}"
    v1 = _publish(tmp_path, layer, "one", DEV)
    publish.set_permissions(publish.AwsTarget(), layer, 1, [CONSUMER])
    fn = make_function(client_in(CONSUMER), layers=[v1.layer_version_arn],
                       iam=client_in(CONSUMER, "iam"))
    untrusted = f"arn:aws:iam::{CONSUMER}:role/{UNTRUSTED_ROLE_PREFIX}-ci"

    with pytest.raises(LayerError) as refused:
        LayerBuildProvider().delete(v1.layer_version_arn, _props(
            v1, DEV, consumer_roles=[role_arn(CONSUMER), untrusted]))
    assert untrusted in str(refused.value) and "no version was deleted" in str(refused.value)
    assert _live(layer) == [1]

    LayerBuildProvider().delete(v1.layer_version_arn, _props(v1, DEV,
                                                             consumer_roles=[role_arn(CONSUMER)]))
    assert _live(layer) == [1]
    assert f"arn:aws:lambda:us-east-1:{CONSUMER}:function:{fn}" in capsys.readouterr().err
    # Without the role the consumer's function is out of sight: the version goes.
    LayerBuildProvider().delete(v1.layer_version_arn, _props(v1, DEV))
    assert _live(layer) == []


def test_prune_lists_then_deletes_only_unused_versions_beyond_n(
        layer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    versions = [_publish(tmp_path, layer, f"v{i}", None) for i in range(1, 6)]
    stack_owned = _publish(tmp_path, layer, "by a stack", PROD)  # 6
    _publish(tmp_path, layer, "v7", None)
    fn = make_function(boto3.client("lambda"), layers=[versions[1].layer_version_arn])  # uses 2

    assert cli.main(["prune", layer, "--keep", "2", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert _live(layer) == [1, 2, 3, 4, 5, 6, 7], "dry run deletes nothing"
    lines = {int(line.split()[0]): line for line in out.splitlines()[:-1]}
    assert all("keep" in lines[v] and "one of the newest 2" in lines[v] for v in (6, 7)), out
    assert "keep" in lines[2] and fn in lines[2], out
    assert all("would delete" in lines[v] for v in (1, 3, 4, 5)), out
    assert out.splitlines()[-1] == f"7 version(s) of {layer}; would delete 4"

    assert cli.main(["prune", layer, "--keep", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    actions = {v["version"]: v["action"] for v in report["versions"]}
    assert actions == {7: "keep", 6: "keep", 5: "delete", 4: "delete", 3: "delete", 2: "keep",
                       1: "delete"}
    assert _live(layer) == [2, stack_owned.version, 7]
    assert "published by Pulumi stack resource shop/prod/deps" in next(
        v["reason"] for v in report["versions"] if v["version"] == 6)


def test_prune_bad_input_is_exit_2_and_aws_errors_exit_1(
        layer: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["prune", layer, "--keep", "-1"]) == 2
    assert "--keep: -1 is not a number of versions" in capsys.readouterr().err
    assert cli.main(["prune", "bad name", "--keep", "1"]) == 2
    assert cli.main(["prune", layer, "--keep", "1", "--assume-role-arn", "arn:aws:iam::1:user/x"]) \
        == 2
    assert "--assume-role-arn" in capsys.readouterr().err
    monkeypatch.setenv("AWS_ENDPOINT_URL", dead_url())
    assert cli.main(["prune", layer, "--keep", "1"]) == 1
    assert "list_layer_versions" in capsys.readouterr().err
