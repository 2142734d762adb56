"""The Pulumi glue: provider pickling, diff and check rules, and wiring into aws.lambda_.Function."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from pulumi_lambda_layers.resources import LayerBuildProvider, check_props, diff_props
from tests.pulumi_mocks import use_mocks

OLDS: dict[str, Any] = {
    "content_hash": "a" * 64, "packages": {"six": "1.16.0"}, "runtime": "python3.11",
    "architecture": "x86_64", "layer_name": "deps", "description": "d", "share_with": [],
    "retain_versions": 0, "retain_on_delete": False,
    "build": {"source_path": "/home/alice/proj/requirements.lock"},
}


def test_provider_round_trips_through_dill_in_a_fresh_process() -> None:
    blob = serialize_provider(LayerBuildProvider())
    assert blob == serialize_provider(LayerBuildProvider()), "pickle must be stable (no diff churn)"
    assert len(base64.b64decode(blob)) < 2000, "pickled by reference, not by value"
    code = ("import base64, sys, dill\n"
            "p = dill.loads(base64.b64decode(sys.stdin.read()))\n"
            "r = p.check({}, {'layer_name': 'bad name!', 'share_with': ['123']})\n"
            "print(type(p).__name__, sorted(f.property for f in r.failures))\n")
    proc = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, text=True,
                          check=True)
    assert proc.stdout.strip() == "LayerBuildProvider ['layer_name', 'share_with']"


def test_no_change_when_only_machine_specific_inputs_differ() -> None:
    news = {**OLDS, "build": {"source_path": "/ci/build/42/requirements.lock"}}
    result = diff_props(OLDS, news)
    assert result.changes is False and result.replaces == []


def test_content_change_is_a_create_before_delete_replace() -> None:
    result = diff_props(OLDS, {**OLDS, "content_hash": "b" * 64, "packages": {"six": "1.17.0"}})
    assert result.changes is True
    assert result.replaces == ["content_hash"]
    assert result.delete_before_replace is False


def test_sharing_and_description_are_updates() -> None:
    for key, value in (("share_with", ["111122223333"]), ("description", "new"),
                       ("retain_versions", 2)):
        result = diff_props(OLDS, {**OLDS, key: value})
        assert result.changes is True and result.replaces == [], key
    same_order = diff_props({**OLDS, "share_with": ["1" * 12, "2" * 12]},
                            {**OLDS, "share_with": ["2" * 12, "1" * 12]})
    assert same_order.changes is False


def test_check_reports_each_bad_property() -> None:
    failures = check_props({**OLDS, "layer_name": "x" * 141, "share_with": ["o-UPPER"],
                            "retain_versions": -1,
                            "input_errors": [{"property": "runtime", "reason": "unknown"}]})
    assert [f.property for f in failures] == ["runtime", "layer_name", "share_with",
                                              "retain_versions"]
    assert check_props(OLDS) == []


@pytest.fixture
def mocked_pulumi() -> None:
    use_mocks(layer_version=7)


@pulumi.runtime.test
def test_function_layers_follow_the_layer_version_arn(mocked_pulumi: None, tmp_path: Path) -> Any:
    import pulumi_aws as aws

    from pulumi_lambda_layers import LambdaLayerBuild

    lock = tmp_path / "requirements.lock"
    lock.write_text("six==1.16.0\n")
    layer = LambdaLayerBuild("deps", runtime="python3.12", architecture="arm64", lock=str(lock),
                             layer_name="shared-deps")
    fn = aws.lambda_.Function("api", runtime="python3.12", architectures=["arm64"],
                              role="arn:aws:iam::123456789012:role/r", handler="app.handler",
                              code=pulumi.AssetArchive({}), layers=[layer.layer_version_arn])

    def check(values: list[Any]) -> None:
        layers, packages, content_hash = values
        assert layers == ["arn:aws:lambda:us-east-1:123456789012:layer:shared-deps:7"]
        assert packages == {"six": "1.16.0"}
        assert len(content_hash) == 64

    return pulumi.Output.all(fn.layers, layer.packages, layer.content_hash).apply(check)
