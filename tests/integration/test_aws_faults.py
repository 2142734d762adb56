"""Re-point and publish against moto behind tests/faulty_aws.py: throttling (429), a function or
layer busy (409) and lost answers (503 after the request landed) are ridden out; a wait that fails
still rolls its function back; a failed share is adopted by the next create; a resent publish
leaves one version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from pulumi_lambda_layers.aws.functions import attach
from pulumi_lambda_layers.aws.layers import AwsTarget, PublishError, list_versions, publish_version
from pulumi_lambda_layers.errors import AttachError
from pulumi_lambda_layers.resources import LayerBuildProvider, program_time_fingerprint
from tests.conftest import write
from tests.faulty_aws import (
    BUSY,
    DENIED,
    LOST,
    PASS,
    THROTTLED,
    FaultyAws,
    faulty_aws,
    function_configuration,
    layer_policy,
    layer_versions,
)
from tests.integration.test_publish import _hash, _zip
from tests.lambda_fakes import handler_zip, layers_of, make_function, uid

TARGET = AwsTarget()
ACCOUNT = "111122223333"


@pytest.fixture()
def lam(aws_env: str) -> Any:
    """A client straight to moto, to set up and to look (the code under test goes via the proxy)."""
    return boto3.client("lambda", endpoint_url=aws_env)


@pytest.fixture()
def proxy(aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyAws]:
    with faulty_aws(aws_env) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
        yield server
    assert server.left() == {}, "a scripted fault was never hit: the test proves nothing"


def _old_and_new(lam: Any) -> tuple[str, str]:
    name = uid("pll-faults")
    return tuple(lam.publish_layer_version(LayerName=name, Content={"ZipFile": handler_zip()})
                 ["LayerVersionArn"] for _ in range(2))  # type: ignore[return-value]


def _version_numbers(lam: Any, layer: str) -> list[int]:
    return sorted(v["Version"] for v in
                  lam.list_layer_versions(LayerName=layer).get("LayerVersions", []))


def test_attach_and_publish_ride_out_throttling_conflicts_and_lost_answers(
        lam: Any, proxy: FaultyAws, tmp_path: Path) -> None:
    old, new = _old_and_new(lam)
    fns = [make_function(lam, [old]), make_function(lam, [old])]
    for fn in fns:  # botocore retries the 429 and the 503; ours the 409 (busy function)
        proxy.script("PUT", function_configuration(fn), THROTTLED, BUSY, LOST)
    slept: list[float] = []

    changes = attach(TARGET, new, fns, sleep=slept.append)

    assert [c.function for c in changes] == fns
    assert all(layers_of(lam, fn) == [new] for fn in fns)
    assert slept == [1.0, 1.0], "one back-off per function, for its 409, with the injected sleep"

    layer = uid("pll-faults-publish")
    path, sha = _zip(tmp_path / "layer.zip", {"python/mod.py": b"x = 1\n"})
    proxy.script("POST", layer_versions(layer), THROTTLED, BUSY, LOST)
    version, published = publish_version(TARGET, layer, path, content_hash=_hash("one"),
                                         code_sha256=sha, owner="s/dev/deps",
                                         sleep=slept.append)

    assert published and proxy.count("POST", layer_versions(layer)) == 4
    # The lost answer's request landed (version 1) and botocore's resend landed too (2).
    assert _version_numbers(lam, layer) == [version.version] == [2]


@pytest.mark.parametrize("wait_fault", [pytest.param([DENIED], id="error"),
                                        pytest.param([BUSY] * 3, id="timeout")])
def test_a_function_whose_update_landed_but_whose_wait_failed_is_rolled_back(
        lam: Any, proxy: FaultyAws, wait_fault: list[Any]) -> None:
    old, new = _old_and_new(lam)
    first, second = make_function(lam, [old]), make_function(lam, [old])
    # The second function's first read plans the change; the next, waiting for it, fails.
    proxy.script("GET", function_configuration(second), PASS, *wait_fault)

    with pytest.raises(AttachError) as caught:
        attach(TARGET, new, [first, second], sleep=lambda _s: None, timeout=3)

    outcomes = {o.function: o for o in caught.value.outcomes}
    assert outcomes[second].error and outcomes[second].rolled_back is True, str(caught.value)
    assert f"{second}: FAILED: " in str(caught.value)
    assert "left as it was" not in str(caught.value), str(caught.value)
    assert outcomes[first].rolled_back is True
    assert layers_of(lam, first) == layers_of(lam, second) == [old]
    if len(wait_fault) > 1:  # the deadline's message: the function, what was tried, the fix
        reason = outcomes[second].error or ""
        assert f"function {second}: get_function_configuration while reading its " \
               "configuration was refused 3 times over 3 s (ResourceConflictException" in reason
        assert "fix: another update of the function is still in progress" in reason


def _layer_props(tmp_path: Path, layer: str) -> dict[str, Any]:
    source = tmp_path / "layer"
    write(source / "python" / "pll_marker.py", "VALUE = 1\n")
    args = {"runtime": "python3.12", "architecture": "x86_64", "source_dir": str(source)}
    content_hash, packages, build, errors = program_time_fingerprint(args)
    assert errors == []
    return {"content_hash": content_hash, "packages": packages, "runtime": "python3.12",
            "architecture": "x86_64", "layer_name": layer, "description": "faults",
            "share_with": [ACCOUNT], "retain_versions": 0, "retain_on_delete": False,
            "build": build}


def test_a_create_whose_share_failed_is_adopted_by_the_next_create(
        lam: Any, proxy: FaultyAws, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    layer = uid("pll-faults-share")
    props = _layer_props(tmp_path, layer)
    proxy.script("POST", layer_policy(layer, 1), DENIED)  # published, then the share fails

    with pytest.raises(PublishError, match="AccessDeniedException"):
        LayerBuildProvider().create(props)
    assert _version_numbers(lam, layer) == [1], "the published version stays, for adoption"

    created = LayerBuildProvider().create(props)

    assert created.outs["version"] == 1, "the version already published is reused"
    assert _version_numbers(lam, layer) == [1]
    policy = json.loads(lam.get_layer_version_policy(LayerName=layer, VersionNumber=1)["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == [f"pll-{ACCOUNT}"]


def test_a_resent_publish_leaves_one_version_the_one_returned(
        lam: Any, proxy: FaultyAws, tmp_path: Path) -> None:
    layer = uid("pll-faults-dup")
    path, sha = _zip(tmp_path / "one.zip", {"python/mod.py": b"x = 1\n"})
    other, _ = _zip(tmp_path / "other.zip", {"python/mod.py": b"x = 2\n"})
    first, _ = publish_version(TARGET, layer, other, content_hash=_hash("other"),
                               owner="s/dev/deps")
    proxy.script("POST", layer_versions(layer), LOST)  # lands as 2, botocore resends: 3

    version, published = publish_version(TARGET, layer, path, content_hash=_hash("one"),
                                         code_sha256=sha, owner="s/dev/deps")

    assert published and version.version == 3
    assert _version_numbers(lam, layer) == [first.version, 3], "the duplicate 2 is gone"
    assert [v.version for v in list_versions(TARGET, layer)] == [3, 1]
    again, republished = publish_version(TARGET, layer, path, content_hash=_hash("one"),
                                         code_sha256=sha, owner="s/dev/deps")
    assert (again.version, republished) == (3, False)


def test_a_resent_update_whose_first_attempt_landed_counts_as_done(cross_env: str) -> None:
    # The patched moto checks RevisionId: the resend names the revision the lost attempt renewed.
    lam = boto3.client("lambda", endpoint_url=cross_env)
    old, new = _old_and_new(lam)
    fn = make_function(lam, [old])
    with faulty_aws(cross_env) as proxy:
        proxy.script("PUT", function_configuration(fn), LOST)
        (change,) = attach(AwsTarget(), new, [fn], sleep=lambda _s: None,
                           clients=lambda _t, service: boto3.client(service,
                                                                    endpoint_url=proxy.url))
        assert proxy.left() == {}
        assert [s for m, _, s in proxy.seen if m == "PUT"] == [503, 412]
    assert layers_of(lam, fn) == [new]
    assert change.new_revision == lam.get_function_configuration(FunctionName=fn)["RevisionId"]
