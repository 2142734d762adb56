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

from pulumi_lambda_layers import publish
from pulumi_lambda_layers.resources import (LayerBuildProvider, LayerProps, check_props,
                                            diff_props, versions_to_delete)
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


def _owned(*numbers: int, foreign: tuple[int, ...] = ()) -> list[publish.LayerVersion]:
    """Versions as list_versions returns them (newest first); foreign ones carry no hash marker."""
    def version(n: int) -> publish.LayerVersion:
        desc = "by hand" if n in foreign else publish.describe_with_hash("d", "a" * 64)
        return publish.LayerVersion("arn:aws:lambda:us-east-1:123456789012:layer:deps",
                                    f"arn:aws:lambda:us-east-1:123456789012:layer:deps:{n}", n,
                                    None, None, desc, None, (), (),
                                    publish.hash_from_description(desc))
    return [version(n) for n in sorted({*numbers, *foreign}, reverse=True)]


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
def test_versions_to_delete_honours_retain_versions(monkeypatch: pytest.MonkeyPatch,
                                                    live: list[int], retain: int, deleting: int,
                                                    expected: list[int]) -> None:
    monkeypatch.setattr(publish, "list_versions", lambda _t, _n: _owned(*live))
    p = LayerProps.of({**OLDS, "retain_versions": retain})
    assert versions_to_delete(p, deleting) == expected


def test_versions_to_delete_never_touches_versions_published_by_hand(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publish, "list_versions", lambda _t, _n: _owned(2, 4, foreign=(1, 3)))
    p = LayerProps.of({**OLDS, "retain_versions": 1})
    assert versions_to_delete(p, 4) == [4, 2]  # destroy: 3 is newer than 2 but not ours
    assert versions_to_delete(LayerProps.of(OLDS), 4) == [4]


def test_destroy_deletes_the_version_and_its_retained_ones_unless_retain_on_delete(
        monkeypatch: pytest.MonkeyPatch) -> None:
    deleted: list[int] = []
    monkeypatch.setattr(publish, "list_versions", lambda _t, _n: _owned(1, 2, 3))
    monkeypatch.setattr(publish, "delete_version", lambda _t, _n, v: deleted.append(v))
    props = {**OLDS, "retain_versions": 1, "version": 3}
    LayerBuildProvider().delete("arn", props)
    assert deleted == [3, 2], "1 fell out of the retention window at an earlier replace"
    deleted.clear()
    LayerBuildProvider().delete("arn", {**props, "retain_on_delete": True})
    assert deleted == []


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
