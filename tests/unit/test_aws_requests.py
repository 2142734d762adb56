"""The exact requests publish and re-point send (botocore Stubber), and the client configuration."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.stub import Stubber

from pulumi_lambda_layers.aws.client import RETRIES, USER_AGENT, AwsTarget, make_client
from pulumi_lambda_layers.aws.functions import attach
from pulumi_lambda_layers.aws.layers import publish_version, zip_sha256
from pulumi_lambda_layers.errors import AttachError

TARGET = AwsTarget(region="us-east-1")
HASH = "ab" * 32
LAYER = "arn:aws:lambda:us-east-1:123456789012:layer:deps"
OTHER = "arn:aws:lambda:us-east-1:123456789012:layer:other:4"
FN_ARN = "arn:aws:lambda:us-east-1:123456789012:function:"


@pytest.fixture()
def lam() -> Iterator[tuple[Any, Stubber]]:
    """A Lambda client whose answers the test queues; every queued answer must be used."""
    client = botocore.session.get_session().create_client(
        "lambda", region_name="us-east-1", aws_access_key_id="testing",
        aws_secret_access_key="testing")
    with Stubber(client) as stub:
        yield client, stub
        stub.assert_no_pending_responses()


def _clients(client: Any) -> Any:
    """A ClientFactory that hands out `client` for Lambda and refuses any other service."""
    def factory(target: AwsTarget, service: str) -> Any:
        assert (target, service) == (TARGET, "lambda")
        return client
    return factory


def _zip(tmp_path: Path) -> Path:
    path = tmp_path / "layer.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("python/mod.py", (1980, 1, 1, 0, 0, 0)), "x = 1\n")
    return path


def _config(name: str, layers: list[str], revision: str,
            status: str = "Successful") -> dict[str, Any]:
    return {"FunctionName": name, "FunctionArn": FN_ARN + name, "CodeSize": 1000,
            "Layers": [{"Arn": arn, "CodeSize": 100} for arn in layers], "RevisionId": revision,
            "State": "Active", "LastUpdateStatus": status}


def test_clients_retry_in_standard_mode_and_name_this_library() -> None:
    client = make_client(TARGET, "lambda")
    assert client.meta.config.retries == RETRIES == {"mode": "standard", "total_max_attempts": 6}
    assert client.meta.config.user_agent_extra == USER_AGENT


def test_publish_sends_the_marker_runtimes_architectures_and_the_zip(
        lam: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = lam
    path = _zip(tmp_path)
    sha = zip_sha256(path)
    description = f"numpy 2.1 [pll:{HASH} owner=shop/dev/deps]"
    stub.add_response("list_layer_versions", {"LayerVersions": []}, {"LayerName": "deps"})
    stub.add_response("publish_layer_version", {
        "LayerArn": LAYER, "LayerVersionArn": f"{LAYER}:1", "Version": 1,
        "Description": description,
        "Content": {"CodeSha256": sha, "CodeSize": path.stat().st_size},
        "CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["arm64"],
    }, {
        "LayerName": "deps", "Description": description, "LicenseInfo": "MIT",
        "CompatibleRuntimes": ["python3.12"], "CompatibleArchitectures": ["arm64"],
        "Content": {"ZipFile": path.read_bytes()},
    })

    version, published = publish_version(
        TARGET, "deps", path, content_hash=HASH, description="numpy 2.1", license_info="MIT",
        compatible_runtimes=["python3.12"], compatible_architectures=["arm64"],
        owner="shop/dev/deps", clients=_clients(client))

    assert published and version.version == 1
    assert (version.content_hash, version.owner) == (HASH, "shop/dev/deps")


def test_publish_of_content_already_published_sends_no_publish(
        lam: tuple[Any, Stubber], tmp_path: Path) -> None:
    client, stub = lam
    path = _zip(tmp_path)
    marked = {"LayerVersionArn": f"{LAYER}:3", "Version": 3, "Description": f"[pll:{HASH}]"}
    stub.add_response("list_layer_versions", {"LayerVersions": [marked]}, {"LayerName": "deps"})
    stub.add_response("get_layer_version",
                      {**marked, "LayerArn": LAYER, "Content": {"CodeSha256": zip_sha256(path)}},
                      {"LayerName": "deps", "VersionNumber": 3})

    version, published = publish_version(TARGET, "deps", path, content_hash=HASH,
                                         clients=_clients(client))

    assert not published and version.version == 3


def test_repoint_sends_the_new_layer_list_guarded_by_the_revision_read(
        lam: tuple[Any, Stubber]) -> None:
    client, stub = lam
    stub.add_response("get_layer_version",
                      {"LayerVersionArn": f"{LAYER}:2", "Version": 2, "Content": {"CodeSize": 100}},
                      {"LayerName": LAYER, "VersionNumber": 2})
    stub.add_response("get_function_configuration", _config("api", [OTHER, f"{LAYER}:1"], "rev-1"),
                      {"FunctionName": "api"})
    stub.add_response("update_function_configuration",
                      _config("api", [OTHER, f"{LAYER}:2"], "rev-2", "InProgress"),
                      {"FunctionName": "api", "Layers": [OTHER, f"{LAYER}:2"],
                       "RevisionId": "rev-1"})
    stub.add_response("get_function_configuration",
                      _config("api", [OTHER, f"{LAYER}:2"], "rev-2", "InProgress"),
                      {"FunctionName": "api"})
    stub.add_response("get_function_configuration", _config("api", [OTHER, f"{LAYER}:2"], "rev-3"),
                      {"FunctionName": "api"})
    slept: list[float] = []

    (change,) = attach(TARGET, f"{LAYER}:2", ["api"], sleep=slept.append,
                       clients=_clients(client))

    assert (change.old_revision, change.new_revision) == ("rev-1", "rev-3")
    assert slept == [1.0]


def test_rollback_is_guarded_by_the_revision_our_update_produced(
        lam: tuple[Any, Stubber]) -> None:
    client, stub = lam
    new = f"{LAYER}:2"
    stub.add_response("get_layer_version",
                      {"LayerVersionArn": new, "Version": 2, "Content": {"CodeSize": 100}},
                      {"LayerName": LAYER, "VersionNumber": 2})
    for name in ("a", "b"):
        stub.add_response("get_function_configuration",
                          _config(name, [f"{LAYER}:1"], f"{name}-rev-1"), {"FunctionName": name})
    stub.add_response("update_function_configuration", _config("a", [new], "a-rev-2"),
                      {"FunctionName": "a", "Layers": [new], "RevisionId": "a-rev-1"})
    stub.add_response("get_function_configuration", _config("a", [new], "a-rev-2"),
                      {"FunctionName": "a"})
    stub.add_client_error("update_function_configuration", "PreconditionFailedException",
                          "The Revision Id provided does not match the latest Revision Id.", 412,
                          expected_params={"FunctionName": "b", "Layers": [new],
                                           "RevisionId": "b-rev-1"})
    stub.add_response("update_function_configuration", _config("a", [f"{LAYER}:1"], "a-rev-3"),
                      {"FunctionName": "a", "Layers": [f"{LAYER}:1"], "RevisionId": "a-rev-2"})
    stub.add_response("get_function_configuration", _config("a", [f"{LAYER}:1"], "a-rev-3"),
                      {"FunctionName": "a"})

    with pytest.raises(AttachError) as caught:
        attach(TARGET, new, ["a", "b"], sleep=lambda s: None, clients=_clients(client))

    assert "function b changed while attaching" in caught.value.failed["b"]
    assert [o.rolled_back for o in caught.value.outcomes] == [True, None]
