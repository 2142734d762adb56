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

from pulumi_lambda_layers.aws import layers as publish
from pulumi_lambda_layers.aws import retention, usage
from pulumi_lambda_layers.limits import LAYER_NAME
from pulumi_lambda_layers.naming import default_layer_name, owner_label
from pulumi_lambda_layers.resources import (LayerBuildProvider, check_props, diff_props,
                                            keep_auto_name)
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


@pytest.mark.parametrize(("value", "says"), [
    (["python3.1l"], "did you mean 'python3.11'?"),
    (["python3.8"], "Lambda has retired python3.8"),
    (["nodejs20.x"], "list python runtimes only"),
    ("python3.12", "write ['python3.12']"),
    ([12], "expected runtime ids"),
])
def test_check_names_compatible_runtimes_with_a_hint(value: Any, says: str) -> None:
    failures = check_props({**OLDS, "compatible_runtimes": value})
    assert [f.property for f in failures] == ["compatible_runtimes"], failures
    assert says in failures[0].reason, failures[0].reason


def test_check_accepts_listed_or_absent_compatible_runtimes() -> None:
    for value in (None, [], ["python3.11", "python3.12"]):
        assert check_props({**OLDS, "compatible_runtimes": value}) == [], value


def _listed(*numbers: int, foreign: tuple[int, ...] = (), others: tuple[int, ...] = (),
            owner: str = "proj/dev/deps") -> list[publish.LayerVersion]:
    """Versions as list_versions returns them (newest first): `owner`'s, hand-made ones (no
    marker) and ones another stack published (marker, other owner)."""
    def version(n: int) -> publish.LayerVersion:
        desc = ("by hand" if n in foreign else
                publish.describe_with_hash("d", "a" * 64, "proj/prod/deps" if n in others else owner))
        return publish.LayerVersion("arn:aws:lambda:us-east-1:123456789012:layer:deps",
                                    f"arn:aws:lambda:us-east-1:123456789012:layer:deps:{n}", n,
                                    None, None, desc, None, (), (),
                                    publish.hash_from_description(desc),
                                    publish.owner_from_description(desc))
    return [version(n) for n in sorted({*numbers, *foreign, *others}, reverse=True)]


@pytest.mark.parametrize(("live", "retain", "deleting", "expected"), [
    # The old side of a replace (a newer version exists): keep `retain` versions below the new one.
    ([1, 2], 0, 1, [1]),
    ([1, 2], 1, 1, []),
    ([1, 2, 3], 1, 2, [1]),
    ([1, 2, 3, 4], 2, 3, [1]),
    # Destroy (this is the newest): this version and the ones it retained, never older ones.
    ([3], 0, 3, [3]),
    ([2, 3], 1, 3, [3, 2]),
    ([1, 2, 3], 1, 3, [3, 2]),
    ([1, 2, 3], 2, 3, [3, 1, 2]),
])
def test_versions_to_delete_honours_retain_versions(live: list[int], retain: int, deleting: int,
                                                    expected: list[int]) -> None:
    owned = retention.owned_versions(_listed(*live), "proj/dev/deps", deleting)
    assert retention.versions_to_delete(owned, deleting, retain) == expected


def test_only_this_resources_versions_are_owned() -> None:
    listed = _listed(2, 4, foreign=(1,), others=(3, 5))
    assert retention.owned_versions(listed, "proj/dev/deps", 4) == [2, 4]
    # 5 (another stack's, newer) does not make this a replace, 3 is not retained: destroy of 4.
    owned = retention.owned_versions(listed, "proj/dev/deps", 4)
    assert retention.versions_to_delete(owned, 4, 1) == [4, 2]
    assert retention.versions_to_delete(owned, 4, 0) == [4]
    # A state from before owners (or an imported version): only the version it holds.
    assert retention.owned_versions(listed, None, 1) == [1]


def test_prune_plan_keeps_newest_used_and_stack_owned_versions() -> None:
    listed = _listed(5, foreign=(1, 2, 3, 4), others=(6,))
    use = usage.FunctionUse("fn", "arn:aws:lambda:us-east-1:123456789012:function:fn",
                            "us-east-1", "arn:aws:lambda:us-east-1:123456789012:layer:deps:2",
                            "current")
    plan = {v.version: (v.action, v.users) for v in retention.plan_prune(listed, 2, [use])}
    assert plan == {6: ("keep", ()), 5: ("keep", ()), 4: ("delete", ()), 3: ("delete", ()),
                    2: ("keep", (use.function_arn,)), 1: ("delete", ())}
    owned_kept = retention.plan_prune(_listed(1, 2, 3), 1, [])
    assert [v.action for v in owned_kept] == ["keep", "keep", "keep"]
    assert "published by Pulumi stack resource proj/dev/deps" in owned_kept[1].reason
    assert [v.action for v in retention.plan_prune(_listed(1, 2, 3), 1, [], include_owned=True)] \
        == ["keep", "delete", "delete"]


def test_default_layer_names_are_unique_valid_and_stable() -> None:
    dev, prod = (default_layer_name("shop", s, "deps") for s in ("dev", "prod"))
    assert dev != prod and dev.startswith("shop-dev-deps-") and len(dev) == len("shop-dev-deps-") + 8
    assert dev == default_layer_name("shop", "dev", "deps"), "the same on every run"
    # Triples that read alike once cleaned still get names of their own.
    assert default_layer_name("a-b", "c", "d") != default_layer_name("a", "b-c", "d")
    assert default_layer_name("p", "s", "my layer") != default_layer_name("p", "s", "my-layer")
    long = default_layer_name("p" * 100, "s" * 100, "r.x" * 50)
    assert len(long) == 140 and LAYER_NAME.fullmatch(long)
    assert owner_label("shop", "dev", "deps") == "shop/dev/deps"
    odd = owner_label("shop", "dev", "a/b " + "x" * 100)
    assert len(odd) <= 80 and "~" in odd and odd != owner_label("shop", "dev", "a-b " + "x" * 100)
    assert publish.owner_from_description(publish.describe_with_hash("d", "a" * 64, odd)) == odd


def test_an_auto_named_layer_keeps_the_name_it_was_created_with() -> None:
    news = {**OLDS, "layer_name": "proj-dev-deps-12345678", "auto_named": True}
    assert keep_auto_name({**OLDS, "auto_named": True}, news)["layer_name"] == "deps"
    assert keep_auto_name(OLDS, news)["layer_name"] == "deps", "a state from before auto_named"
    assert keep_auto_name({}, news)["layer_name"] == "proj-dev-deps-12345678", "create"
    explicit = {**OLDS, "layer_name": "renamed", "auto_named": False}
    assert keep_auto_name({**OLDS, "auto_named": True}, explicit)["layer_name"] == "renamed"
    given_before = {**OLDS, "auto_named": False}
    assert keep_auto_name(given_before, news)["layer_name"] == "proj-dev-deps-12345678"


@pytest.mark.parametrize(("key", "value", "says"), [
    ("consumer_roles", ["arn:aws:iam::123456789012:user/bob"], "is not an IAM role ARN"),
    ("consumer_roles", "arn:aws:iam::123456789012:role/r", "write ['arn:aws:iam::"),
    ("force_delete", "yes", "expected True or False, got 'yes'"),
    ("layer_name", "x" * 141, "leave layer_name out"),
])
def test_check_names_bad_deletion_and_naming_options(key: str, value: Any, says: str) -> None:
    failures = check_props({**OLDS, key: value})
    assert [f.property for f in failures] == [key] and says in failures[0].reason, failures
    assert check_props({**OLDS, "consumer_roles": ["arn:aws:iam::123456789012:role/a/b-c"],
                        "force_delete": True}) == []


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


def test_a_single_principal_given_as_a_string_is_told_to_be_a_list() -> None:
    failures = check_props({**OLDS, "share_with": "111122223333"})
    assert [(f.property, f.reason) for f in failures] == [
        ("share_with", "expected a list of principals, got the string '111122223333' "
                       "(write ['111122223333'])")]


@pytest.mark.parametrize(("news", "says"), [
    ({"import_version": "arn:aws:lambda:us-east-1:123456789012:layer:deps"},
     "is not a layer version ARN"),
    ({"import_version": "arn:aws:lambda:us-east-1:123456789012:layer:other:3"},
     "names layer 'other' but layer_name is 'deps'"),
    ({"import_version": "arn:aws:lambda:eu-west-1:123456789012:layer:deps:3",
      "region": "us-east-1"}, "is in eu-west-1 but region is 'us-east-1'"),
])
def test_check_names_a_bad_import_version(news: dict[str, Any], says: str) -> None:
    failures = check_props({**OLDS, **news})
    assert [f.property for f in failures] == ["import_version"] and says in failures[0].reason
    assert check_props({**OLDS, "import_version":
                        "arn:aws:lambda:us-east-1:123456789012:layer:deps:3"}) == []


def test_builds_of_a_resource_use_its_projects_package_cache() -> None:
    from pulumi_lambda_layers.resources import LayerProps

    props = {**OLDS, "owner": "shop/prod/deps",
             "build": {"source_kind": "lock", "source_path": "/p/requirements.lock",
                       "builder": "docker"}}
    assert LayerProps.of(props).spec().cache_owner == "shop"
    assert LayerProps.of({**props, "owner": None}).spec().cache_owner == ""  # $PLL_CACHE_OWNER
