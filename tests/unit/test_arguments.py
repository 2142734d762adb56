"""LambdaLayerBuild's arguments under Pulumi's mocks: Inputs where apply time reads them, plain
values where preview needs them, the Args form, and the stack's lambda-layers: config defaults."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.runtime import config as pulumi_config
from pulumi.runtime.rpc import UNKNOWN

from pulumi_lambda_layers import LambdaLayerBuild, LambdaLayerBuildArgs
from pulumi_lambda_layers.resources import check_props
from pulumi_lambda_layers.resources.arguments import config_defaults
from tests.pulumi_mocks import RecordingMocks, use_mocks


@pytest.fixture
def mocks() -> Iterator[RecordingMocks]:
    yield use_mocks()
    pulumi_config.CONFIG.set({})


@pytest.fixture
def lock(tmp_path: Path) -> str:
    path = tmp_path / "requirements.lock"
    path.write_text("six==1.16.0\n")
    return str(path)


def _inputs(mocks: RecordingMocks, name: str) -> dict[str, Any]:
    return mocks.made[name][1]


@pulumi.runtime.test
def test_the_args_form_declares_the_same_layer(mocks: RecordingMocks, lock: str) -> Any:
    kw = LambdaLayerBuild("kw", runtime="python3.12", lock=lock, layer_name="same",
                     share_with=["111122223333"], retain_versions=2)
    args = LambdaLayerBuild("args", LambdaLayerBuildArgs(runtime="python3.12", lock=lock,
                                                  layer_name="same",
                                                  share_with=["111122223333"], retain_versions=2))

    def check(_: Any) -> None:
        kw, args = _inputs(mocks, "kw"), _inputs(mocks, "args")
        assert kw.pop("owner") != args.pop("owner")  # the resource name is part of the owner
        assert kw == args and kw["share_with"] == ["111122223333"]
    return pulumi.Output.all(kw.urn, args.urn).apply(check)


def test_a_misspelt_keyword_names_the_closest_argument() -> None:
    with pytest.raises(TypeError, match="'share_wiht'; did you mean 'share_with'"):
        LambdaLayerBuildArgs.of({"runtime": "python3.12", "share_wiht": ["1"]})
    with pytest.raises(TypeError, match="needs runtime="):
        LambdaLayerBuildArgs.of({"lock": "x"})


@pulumi.runtime.test
def test_apply_time_arguments_take_outputs(mocks: RecordingMocks, lock: str) -> Any:
    accounts = pulumi.Output.from_input(["111122223333", "o-abcdefghij"])  # a StackReference's
    layer = LambdaLayerBuild("deps", runtime="python3.12", lock=lock, share_with=accounts,
                     layer_name=pulumi.Output.from_input("from-output"),
                     description=pulumi.Output.secret("text"),
                     compatible_runtimes=[pulumi.Output.from_input("python3.12")],
                     retain_versions=pulumi.Output.from_input(3),
                     cache_bucket=pulumi.Output.from_input("bucket"),
                     smoke_test=pulumi.Output.from_input(False))

    def check(_: Any) -> None:
        got = _inputs(mocks, "deps")
        assert got["share_with"] == ["111122223333", "o-abcdefghij"]
        assert got["layer_name"] == "from-output" and got["auto_named"] is False
        assert got["compatible_runtimes"] == ["python3.12"] and got["retain_versions"] == 3
        assert got["cache_bucket"] == "bucket" and got.get("input_errors") is None
        assert len(got["content_hash"]) == 64, "the hash does not wait for apply-time values"
    return layer.urn.apply(check)


@pulumi.runtime.test
def test_an_output_where_preview_needs_the_value_is_refused(mocks: RecordingMocks,
                                                             lock: str) -> Any:
    layer = LambdaLayerBuild("deps", runtime=pulumi.Output.from_input("python3.12"),
                     lock=lock, exclude=["tests/**", pulumi.Output.from_input("docs/**")])

    def check(_: Any) -> None:
        errors = _inputs(mocks, "deps")["input_errors"]
        assert [e["property"] for e in errors] == ["runtime", "exclude"]
        assert errors[0]["reason"].startswith(
            "runtime is an Output, but the content hash is computed at preview, so runtime must "
            "be known then: pass a plain value")
    return layer.urn.apply(check)


@pulumi.runtime.test
def test_config_defaults_and_an_explicit_argument_wins(mocks: RecordingMocks, lock: str) -> Any:
    for key, value in {"cacheBucket": "team-cache", "cachePrefix": "layers/",
                       "retainVersions": "2", "smokeTest": "false", "builder": "local",
                       "region": "eu-west-1", "consumerRoles": '["arn:aws:iam::111122223333:'
                                                               'role/reader"]'}.items():
        pulumi_config.set_config(f"lambda-layers:{key}", value)
    defaults = LambdaLayerBuild("defaults", runtime="python3.12", lock=lock)
    explicit = LambdaLayerBuild("explicit", runtime="python3.12", lock=lock, cache_bucket="mine",
                     retain_versions=0, region="us-east-1")

    def check(_: Any) -> None:
        d, e = _inputs(mocks, "defaults"), _inputs(mocks, "explicit")
        assert (d["cache_bucket"], d["cache_prefix"], d["retain_versions"], d["region"]) == \
            ("team-cache", "layers/", 2, "eu-west-1")
        assert d["consumer_roles"] == ["arn:aws:iam::111122223333:role/reader"]
        assert d["build"]["builder"] == "local" and d.get("input_errors") is None
        assert (e["cache_bucket"], e["retain_versions"], e["region"]) == ("mine", 0, "us-east-1")
        assert e["cache_prefix"] == "layers/"
    return pulumi.Output.all(defaults.urn, explicit.urn).apply(check)


@pulumi.runtime.test
def test_a_misspelt_config_key_is_reported_with_a_hint(mocks: RecordingMocks, lock: str) -> Any:
    pulumi_config.set_config("lambda-layers:cacheBuket", "team-cache")
    layer = LambdaLayerBuild("deps", runtime="python3.12", lock=lock)

    def check(_: Any) -> None:
        errors = _inputs(mocks, "deps")["input_errors"]
        assert [e["property"] for e in errors] == ["lambda-layers:cacheBuket"]
        assert "did you mean lambda-layers:cacheBucket?" in errors[0]["reason"]
    return layer.urn.apply(check)


def test_config_values_that_do_not_parse_name_the_key() -> None:
    defaults, problems = config_defaults({"retainVersions": "two", "smokeTest": "maybe",
                                          "resolutionMaxAge": "1h", "network": "host"})
    assert defaults == {"network_mode": "host"}
    assert [p["property"] for p in problems] == ["lambda-layers:retainVersions",
                                                 "lambda-layers:smokeTest"]
    assert "expected a whole number >= 0, got 'two'" in problems[0]["reason"]


def test_values_unknown_at_preview_pass_the_check() -> None:
    news = {"content_hash": "a" * 64, "runtime": "python3.12", "layer_name": UNKNOWN,
            "share_with": UNKNOWN, "retain_versions": UNKNOWN, "consumer_roles": UNKNOWN,
            "force_delete": UNKNOWN, "smoke_test": UNKNOWN}
    assert check_props(news) == []
    assert check_props({**news, "share_with": ["111122223333", UNKNOWN]}) == []
    # Once known (the check `up` runs), a string where a list belongs is refused.
    failures = check_props({**news, "share_with": "111122223333"})
    assert [(f.property, f.reason) for f in failures] == [
        ("share_with", "expected a list of principals, got the string '111122223333' "
                       "(write ['111122223333'])")]


@pulumi.runtime.test
def test_an_attachment_takes_its_functions_and_position_as_outputs(mocks: RecordingMocks,
                                                                    lock: str) -> Any:
    from pulumi_lambda_layers import LayerAttachment

    layer = LambdaLayerBuild("deps", runtime="python3.12", lock=lock, layer_name="att")
    attached = LayerAttachment("att", layer=layer,
                               functions=pulumi.Output.from_input(["billing", "reports"]),
                               position=pulumi.Output.from_input(0))

    def check(_: Any) -> None:
        got = _inputs(mocks, "att")
        assert got["functions"] == ["billing", "reports"] and got["position"] == 0
        assert got["layer_version_arn"] == "arn:aws:lambda:us-east-1:123456789012:layer:att:1"
    return attached.urn.apply(check)


def test_an_attachment_check_lets_unknown_values_pass() -> None:
    from pulumi_lambda_layers.resources import check_attachment

    assert check_attachment({"functions": UNKNOWN, "layer_version_arn": UNKNOWN,
                             "position": UNKNOWN}) == []
