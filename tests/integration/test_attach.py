"""Re-pointing functions to a layer version against a real moto server: order, limits, rollback,
RevisionId conflicts, drift (and its CLI), detach, and layers shared from another account."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from pulumi_lambda_layers.aws import functions as attach_mod
from pulumi_lambda_layers.aws.functions import (
    AttachError, attach, attached_versions, detach, layer_base_arn, swap_layers,
)
from pulumi_lambda_layers.cli import main
from pulumi_lambda_layers.errors import SpecError
from pulumi_lambda_layers.aws.layers import AwsTarget, PublishError
from pulumi_lambda_layers.aws.usage import drift
from pulumi_lambda_layers.resources import LayerAttachmentProvider, check_attachment
from tests.conftest import client_in as _client_in
from tests.conftest import role_arn as _role
from tests.lambda_fakes import handler_zip as _zip
from tests.lambda_fakes import layers_of as _layers_of
from tests.lambda_fakes import make_function as _function
from tests.lambda_fakes import uid as _uid

TARGET = AwsTarget()
ACCOUNT_B = "222233334444"
ACCOUNT_C = "555566667777"


def _layer(lam: Any, versions: int = 2) -> list[str]:
    """A new layer with `versions` versions; returns their version ARNs, oldest first."""
    name = _uid("pll-attach")
    return [lam.publish_layer_version(LayerName=name, Content={"ZipFile": _zip()})["LayerVersionArn"]
            for _ in range(versions)]


@pytest.fixture()
def lam(aws_env: str) -> Any:
    return boto3.client("lambda")


# --- pure list handling -------------------------------------------------------------------------

def test_swap_layers_replaces_in_place_adds_at_position_never_duplicates() -> None:
    base = "arn:aws:lambda:us-east-1:123456789012:layer:deps"
    a, b = "arn:aws:lambda:us-east-1:123456789012:layer:a:3", "arn:aws:lambda:us-east-1:123456789012:layer:b:1"
    assert layer_base_arn(f"{base}:12") == base
    assert swap_layers([a, f"{base}:1", b], f"{base}:2") == [a, f"{base}:2", b]
    assert swap_layers([f"{base}:1", a, f"{base}:4"], f"{base}:2") == [f"{base}:2", a]
    assert swap_layers([a, b], f"{base}:2") == [a, b, f"{base}:2"]
    assert swap_layers([a, b], f"{base}:2", position=0) == [f"{base}:2", a, b]
    assert swap_layers([a, b], f"{base}:2", position=9) == [a, b, f"{base}:2"]
    assert swap_layers([a, f"{base}:2"], f"{base}:2", position=0) == [a, f"{base}:2"]
    moved = swap_layers([a, f"{base}:1", b], f"{base}:2", position=0, move=True)
    assert moved == [f"{base}:2", a, b]
    assert swap_layers([f"{base}:2", a, b], f"{base}:2", move=True) == [a, b, f"{base}:2"]
    with pytest.raises(SpecError, match="layer_version_arn"):
        swap_layers([a], base)
    with pytest.raises(SpecError, match="position"):
        swap_layers([a], f"{base}:2", position=-1)


def _zip_of(path: Path, files: dict[str, bytes | int]) -> tuple[bytes, int]:
    """A real layer zip (an int is that many zero bytes, written in chunks); returns its bytes and
    its unzipped size, counted as LambdaLayerBuild counts it."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            with zf.open(name, "w") as out:
                if isinstance(content, bytes):
                    out.write(content)
                    continue
                for start in range(0, content, 1 << 22):
                    out.write(bytes(min(1 << 22, content - start)))
    with zipfile.ZipFile(path) as zf:
        unzipped = sum(i.file_size for i in zf.infolist())
    return path.read_bytes(), unzipped


def test_size_check_uses_the_layers_unzipped_size_and_names_the_function(
        lam: Any, tmp_path: Path) -> None:
    # 250 MB of zeros is 0.25 MB zipped: only the unzipped size shows it cannot fit beside
    # another layer. The other layer is random bytes, so its zipped size is its real size.
    big_zip, big_unzipped = _zip_of(tmp_path / "big.zip", {"python/zeros.bin": 262_000_000})
    other_zip, _ = _zip_of(tmp_path / "other.zip", {"python/noise.bin": os.urandom(300_000)})
    big = lam.publish_layer_version(LayerName=_uid("pll-big"),
                                    Content={"ZipFile": big_zip})["LayerVersionArn"]
    other = lam.publish_layer_version(LayerName=_uid("pll-other"),
                                      Content={"ZipFile": other_zip})["LayerVersionArn"]
    fn_ok, fn_over = _function(lam), _function(lam, [other])
    provider = LayerAttachmentProvider()

    with pytest.raises(AttachError) as caught:  # what a LayerAttachment of a LambdaLayerBuild sends
        provider.create(_attachment(big, [fn_ok, fn_over], layer_unzipped_size=big_unzipped))

    err = caught.value
    assert set(err.failed) == {fn_over} and "nothing was changed" in str(err)
    reason = err.failed[fn_over]
    assert reason.startswith(f"function {fn_over} would need at least 250.1 MB (262,3"), reason
    assert f"{big} 249.9 MB unzipped" in reason and f"{other} 0.3 MB zipped" in reason, reason
    assert "262,144,000 bytes" in reason and "lower bound" in reason, reason
    assert _layers_of(lam, fn_ok) == [] and _layers_of(lam, fn_over) == [other]

    # Of a bare ARN only the zipped size is known: a lower bound under the limit, so it is let
    # through (Lambda itself checks the real figure), as it is for a function it fits in.
    provider.create(_attachment(big, [fn_ok], layer_unzipped_size=big_unzipped))
    attach(TARGET, big, [fn_over])
    assert _layers_of(lam, fn_ok) == [big] and _layers_of(lam, fn_over) == [other, big]


# --- attach -------------------------------------------------------------------------------------

def test_repoints_v1_to_v2_keeping_other_layers_in_order(lam: Any) -> None:
    v1, v2 = _layer(lam)
    first, last = _layer(lam, 1)[0], _layer(lam, 1)[0]
    fn = _function(lam, [first, v1, last])

    changes = attach(TARGET, v2, [fn])

    assert _layers_of(lam, fn) == [first, v2, last]
    assert len(changes) == 1
    change = changes[0]
    assert change.function == fn and change.function_arn.endswith(f":function:{fn}")
    assert change.old_layers == (first, v1, last) and change.new_layers == (first, v2, last)
    assert attach(TARGET, v2, [fn]) == []  # already there: nothing to do


def test_adds_layer_when_absent_at_the_position_asked(lam: Any) -> None:
    (v1,) = _layer(lam, 1)
    a, b = _layer(lam, 1)[0], _layer(lam, 1)[0]
    fn_mid, fn_end = _function(lam, [a, b]), _function(lam, [a, b])

    attach(TARGET, v1, [fn_mid], position=1)
    attach(TARGET, v1, [fn_end])

    assert _layers_of(lam, fn_mid) == [a, v1, b]
    assert _layers_of(lam, fn_end) == [a, b, v1]


def test_sixth_layer_is_refused_naming_the_function_and_its_layers(lam: Any) -> None:
    (new,) = _layer(lam, 1)
    others = [_layer(lam, 1)[0] for _ in range(5)]
    ok_fn, bad_fn = _function(lam), _function(lam, others)

    with pytest.raises(AttachError) as caught:
        attach(TARGET, new, [ok_fn, bad_fn])

    err = caught.value
    assert set(err.failed) == {bad_fn}
    assert "5 per function" in err.failed[bad_fn] and all(o in err.failed[bad_fn] for o in others)
    assert "nothing was changed" in str(err) and f"{ok_fn}: ok; left as it was" in str(err)
    # Every function is checked before any is changed.
    assert _layers_of(lam, ok_fn) == [] and _layers_of(lam, bad_fn) == others


def test_failure_after_changes_rolls_the_changed_functions_back(lam: Any) -> None:
    v1, v2 = _layer(lam)
    other = _layer(lam, 1)[0]
    ok_fn, gone_fn = _function(lam, [v1, other]), _function(lam, [v1])

    def someone_deletes_gone_fn(plan: list[attach_mod.Change]) -> bool:
        assert [c.function for c in plan] == [ok_fn, gone_fn]
        lam.delete_function(FunctionName=gone_fn)
        return True

    with pytest.raises(AttachError) as caught:
        attach(TARGET, v2, [ok_fn, gone_fn], confirm=someone_deletes_gone_fn)

    err = caught.value
    assert set(err.failed) == {gone_fn}
    assert "update_function_configuration" in err.failed[gone_fn]
    assert "ResourceNotFoundException" in err.failed[gone_fn]
    assert [o.rolled_back for o in err.outcomes if o.function == ok_fn] == [True]
    assert f"{ok_fn}: ok; its previous layers were restored" in str(err)
    assert _layers_of(lam, ok_fn) == [v1, other]


def test_confirm_can_cancel(lam: Any) -> None:
    v1, v2 = _layer(lam)
    fn = _function(lam, [v1])
    assert attach(TARGET, v2, [fn], confirm=lambda plan: False) == []
    assert _layers_of(lam, fn) == [v1]


def test_unknown_function_and_bad_arn(lam: Any) -> None:
    (v1,) = _layer(lam, 1)
    with pytest.raises(AttachError) as caught:
        attach(TARGET, v1, ["no-such-function"])
    assert "no-such-function" in caught.value.failed
    with pytest.raises(SpecError, match="not a layer version ARN"):
        attach(TARGET, v1.rsplit(":", 1)[0], ["x"])
    with pytest.raises(PublishError, match="get_layer_version"):
        attach(TARGET, v1[:-1] + "9", ["x"])


class _LambdaAsAws:
    """The moto client, except each update reports InProgress twice before its outcome, as Lambda
    does (moto reports Successful at once); the first `fail` updates end Failed."""

    def __init__(self, real: Any, fail: int = 0) -> None:
        self.real, self.fail, self.pending, self.final = real, fail, 0, "Successful"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def update_function_configuration(self, **kwargs: Any) -> Any:
        self.pending, self.final = 2, "Failed" if self.fail else "Successful"
        self.fail = max(0, self.fail - 1)
        return self.real.update_function_configuration(**kwargs)

    def get_function_configuration(self, **kwargs: Any) -> Any:
        cfg = self.real.get_function_configuration(**kwargs)
        cfg["LastUpdateStatus"] = "InProgress" if self.pending else self.final
        if self.final == "Failed" and not self.pending:
            cfg["LastUpdateStatusReason"] = "layer could not be extracted"
            cfg["LastUpdateStatusReasonCode"] = "InvalidLayer"
        self.pending = max(0, self.pending - 1)
        return cfg


def test_waits_for_the_update_with_the_injected_sleep(lam: Any) -> None:
    v1, v2 = _layer(lam)
    fn = _function(lam, [v1])
    slow = _LambdaAsAws(lam)
    slept: list[float] = []

    attach(TARGET, v2, [fn], sleep=slept.append, clients=lambda target, service: slow)

    assert slept == [1.0, 2.0]
    assert _layers_of(lam, fn) == [v2]


def test_failed_update_is_reported_and_undone(lam: Any) -> None:
    v1, v2 = _layer(lam)
    fn = _function(lam, [v1])
    failing = _LambdaAsAws(lam, fail=1)

    with pytest.raises(AttachError) as caught:
        attach(TARGET, v2, [fn], sleep=lambda s: None, clients=lambda target, service: failing)

    assert "Failed: layer could not be extracted (InvalidLayer)" in caught.value.failed[fn]
    assert f"{fn}: FAILED" in str(caught.value) and "previous layers were restored" in str(caught.value)
    assert _layers_of(lam, fn) == [v1]


def test_gives_up_waiting_for_a_function_busy_before_we_start(lam: Any) -> None:
    v1, v2 = _layer(lam)
    fn = _function(lam, [v1])
    slow = _LambdaAsAws(lam)
    slow.pending = 1_000  # someone else's update that never finishes
    slept: list[float] = []

    with pytest.raises(AttachError) as caught:
        attach(TARGET, v2, [fn], sleep=slept.append, timeout=5,
               clients=lambda target, service: slow)
    assert "still updating after 7 s" in caught.value.failed[fn]
    assert "nothing was changed" in str(caught.value)
    assert slept == [1.0, 2.0, 4.0]
    assert _layers_of(lam, fn) == [v1]


# --- detach, attached_versions, drift -----------------------------------------------------------

def test_detach_removes_any_version_of_the_layer(lam: Any) -> None:
    v1, v2 = _layer(lam)
    a = _layer(lam, 1)[0]
    fn1, fn2, fn3 = _function(lam, [a, v1]), _function(lam, [v2, a]), _function(lam, [a])

    changes = detach(TARGET, v2, [fn1, fn2, fn3])  # a version ARN stands for its layer

    assert {c.function for c in changes} == {fn1, fn2}
    assert _layers_of(lam, fn1) == [a] and _layers_of(lam, fn2) == [a] and _layers_of(lam, fn3) == [a]
    attach(TARGET, v1, [fn1])
    detach(TARGET, layer_base_arn(v1), [fn1])
    assert _layers_of(lam, fn1) == [a]


def test_attached_versions(lam: Any) -> None:
    v1, v2 = _layer(lam)
    fn1, fn2 = _function(lam, [v1]), _function(lam)
    got = attached_versions(TARGET, [fn1, fn2, "gone-function"], layer_base_arn(v2))
    assert got == {fn1: v1, fn2: None}


def test_drift_lists_stale_and_current_and_the_cli_exit_codes(
        lam: Any, capsys: pytest.CaptureFixture[str]) -> None:
    v1, v2 = _layer(lam)
    stale_fn, current_fn, unrelated = _function(lam, [v1]), _function(lam, [v2]), _function(lam)

    uses = {u.function: u for u in drift([AwsTarget(region="us-east-1")], v2)}
    assert set(uses) == {stale_fn, current_fn}
    assert (uses[stale_fn].status, uses[stale_fn].version) == ("stale", 1)
    assert (uses[current_fn].status, uses[current_fn].layer_version_arn) == ("current", v2)
    assert unrelated not in uses

    assert main(["drift", "--layer", v2]) == 1
    out = capsys.readouterr().out
    assert f"stale    us-east-1  {stale_fn}" in out and f"current  us-east-1  {current_fn}" in out

    attach(TARGET, v2, [stale_fn])
    assert main(["drift", "--layer", v2, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {f["function"]: f["status"] for f in report["functions"]} == {
        stale_fn: "current", current_fn: "current"}
    assert report["stale"] == 0

    assert main(["drift", "--layer", v2, "--all-regions"]) == 0  # every Lambda region answers
    capsys.readouterr()
    assert main(["drift", "--layer", "not-an-arn"]) == 2
    assert main(["drift", "--layer", v2, "--all-regions", "--region", "us-east-1"]) == 2


# --- the Pulumi provider glue (LayerAttachmentProvider), called directly ---------------------------

def _attachment(layer_version_arn: str, functions: list[str], **extra: Any) -> dict[str, Any]:
    return {"layer_version_arn": layer_version_arn, "functions": functions, "position": None,
            "keep_on_delete": False, "region": None, "profile": None, "assume_role_arn": None,
            **extra}


def test_check_lets_values_unknown_at_preview_through() -> None:
    from pulumi.output import Unknown

    assert check_attachment(_attachment(Unknown(), [Unknown(), Unknown(), "billing"])) == []
    assert check_attachment({**_attachment("x", []), "layer_version_arn": Unknown(),
                             "functions": Unknown()}) == []
    failures = {f.property: f.reason for f in check_attachment(_attachment(
        "arn:aws:lambda:us-east-1:123456789012:layer:deps", ["a", "a"]))}
    assert set(failures) == {"layer", "functions"}
    assert "pass a LambdaLayerBuild" in failures["layer"] and "twice" in failures["functions"]


def test_provider_update_detaches_by_arn_only_the_functions_left_behind(lam: Any) -> None:
    v1, v2 = _layer(lam)
    x = _layer(lam, 1)[0]
    fn_a, fn_b = _function(lam, [x]), _function(lam)
    arn_a = lam.get_function_configuration(FunctionName=fn_a)["FunctionArn"]
    provider = LayerAttachmentProvider()
    olds = provider.create(_attachment(v1, [fn_a, fn_b])).outs
    assert _layers_of(lam, fn_a) == [x, v1] and _layers_of(lam, fn_b) == [v1]

    # fn_a named by its ARN and reached through a role in its own account: still the same
    # function, so it keeps the layer; fn_b is no longer listed, so it loses it.
    news = _attachment(v2, [arn_a], assume_role_arn=_role("123456789012"))
    outs = provider.update("id", olds, news).outs
    assert _layers_of(lam, fn_a) == [x, v2] and _layers_of(lam, fn_b) == []
    assert outs["attached"] == {arn_a: v2}
    provider.update("id", outs, {**news, "functions": [fn_a]})
    assert _layers_of(lam, fn_a) == [x, v2]


def test_provider_update_to_a_renamed_layer_takes_the_old_ones_place(lam: Any) -> None:
    (old,) = _layer(lam, 1)
    (renamed,) = _layer(lam, 1)
    x, y = _layer(lam, 1)[0], _layer(lam, 1)[0]
    fn = _function(lam, [x, old, y])
    provider = LayerAttachmentProvider()
    olds = provider.create(_attachment(old, [fn])).outs

    provider.update("id", olds, _attachment(renamed, [fn]))

    assert _layers_of(lam, fn) == [x, renamed, y]


def test_provider_update_moves_the_layer_when_the_position_changes(lam: Any) -> None:
    v1, v2 = _layer(lam)
    x, y = _layer(lam, 1)[0], _layer(lam, 1)[0]
    fn = _function(lam, [x, y])
    provider = LayerAttachmentProvider()
    olds = provider.create(_attachment(v1, [fn], position=0)).outs
    assert _layers_of(lam, fn) == [v1, x, y]

    news = _attachment(v1, [fn], position=2)
    assert provider.diff("id", olds, news).changes
    outs = provider.update("id", olds, news).outs
    assert _layers_of(lam, fn) == [x, y, v1]
    assert not provider.diff("id", outs, news).changes

    outs = provider.update("id", outs, _attachment(v2, [fn], position=1)).outs  # moved + replaced
    assert _layers_of(lam, fn) == [x, v2, y]
    provider.update("id", outs, _attachment(v2, [fn]))  # no position: last
    assert _layers_of(lam, fn) == [x, y, v2]


def test_keep_on_delete_leaves_the_layer_on_dropped_and_deleted_functions(lam: Any) -> None:
    v1, v2 = _layer(lam)
    x = _layer(lam, 1)[0]
    fn_a, fn_b = _function(lam, [x]), _function(lam)
    provider = LayerAttachmentProvider()
    olds = provider.create(_attachment(v1, [fn_a, fn_b], keep_on_delete=True)).outs

    outs = provider.update("id", olds, _attachment(v2, [fn_a], keep_on_delete=True)).outs
    assert _layers_of(lam, fn_a) == [x, v2]
    assert _layers_of(lam, fn_b) == [v1], "dropped from the list: keeps the version it had"
    provider.delete("id", outs)
    assert _layers_of(lam, fn_a) == [x, v2] and _layers_of(lam, fn_b) == [v1]

    # Without it (the default) both take the layer off.
    olds = provider.create(_attachment(v1, [fn_a, fn_b])).outs
    outs = provider.update("id", olds, _attachment(v2, [fn_a])).outs
    assert _layers_of(lam, fn_a) == [x, v2] and _layers_of(lam, fn_b) == []
    provider.delete("id", outs)
    assert _layers_of(lam, fn_a) == [x]


def test_provider_update_undoes_the_attach_when_the_detach_fails(cross_env: str) -> None:
    lam = boto3.client("lambda")
    v1, v2 = _layer(lam)
    x, gone = _layer(lam, 1)[0], _layer(lam, 1)[0]
    fn_a, fn_b = _function(lam, [x]), _function(lam, [gone])
    provider = LayerAttachmentProvider()
    olds = provider.create(_attachment(v1, [fn_a, fn_b])).outs
    assert _layers_of(lam, fn_a) == [x, v1] and _layers_of(lam, fn_b) == [gone, v1]
    # fn_b now lists a deleted version: Lambda refuses any new layer list for it, so detaching
    # it fails, after fn_a has been moved to v2.
    lam.delete_layer_version(LayerName=layer_base_arn(gone).rsplit(":", 1)[1], VersionNumber=1)

    with pytest.raises(AttachError) as caught:
        provider.update("id", olds, _attachment(v2, [fn_a]))

    err = caught.value
    assert set(err.failed) == {fn_b} and "ResourceNotFoundException" in err.failed[fn_b]
    assert f"{fn_a}: ok; its previous layers were restored" in str(err), str(err)
    assert "every change already made was undone" in str(err), str(err)
    assert _layers_of(lam, fn_a) == [x, v1] and _layers_of(lam, fn_b) == [gone, v1]


def test_attachment_provider_round_trips_through_dill_in_a_fresh_process(lam: Any) -> None:
    blob = serialize_provider(LayerAttachmentProvider())
    assert blob == serialize_provider(LayerAttachmentProvider()), "stable pickle (no diff churn)"
    assert len(base64.b64decode(blob)) < 2000, "pickled by reference, not by value"
    (v1,) = _layer(lam, 1)
    fn = _function(lam)
    code = ("import base64, json, sys, dill\n"
            "p = dill.loads(base64.b64decode(sys.stdin.readline()))\n"
            "props = json.loads(sys.stdin.readline())\n"
            "bad = p.check({}, {**props, 'functions': [], 'position': 7})\n"
            "print(type(p).__name__, sorted(f.property for f in bad.failures))\n"
            "print(json.dumps(p.create(props).outs['attached']))\n")
    stdin = f"{blob}\n{json.dumps(_attachment(v1, [fn]))}\n"
    proc = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True, text=True,
                          env=dict(os.environ), timeout=120)
    assert proc.returncode == 0, proc.stderr
    name, attached = proc.stdout.splitlines()
    assert name == "LayerAttachmentProvider ['functions', 'position']"
    assert json.loads(attached) == {fn: v1}
    assert _layers_of(lam, fn) == [v1]


# --- with the patched moto: RevisionId and layers shared across accounts ------------------------

def test_concurrent_change_is_detected_by_revision_id(cross_env: str) -> None:
    lam = boto3.client("lambda")
    v1, v2 = _layer(lam)
    ok_fn, busy_fn = _function(lam, [v1]), _function(lam, [v1])

    def someone_edits_busy_fn(plan: list[attach_mod.Change]) -> bool:
        assert all(c.old_revision for c in plan)
        lam.update_function_configuration(FunctionName=busy_fn, Description="edited meanwhile")
        return True

    with pytest.raises(AttachError) as caught:
        attach(TARGET, v2, [ok_fn, busy_fn], confirm=someone_edits_busy_fn)

    reason = caught.value.failed[busy_fn]
    assert f"function {busy_fn} changed while attaching; retry" in reason
    assert "PreconditionFailedException" in reason
    busy = lam.get_function_configuration(FunctionName=busy_fn)
    assert busy["Description"] == "edited meanwhile" and _layers_of(lam, busy_fn) == [v1]
    assert _layers_of(lam, ok_fn) == [v1]  # rolled back
    changes = attach(TARGET, v2, [ok_fn, busy_fn])  # the retry goes through
    assert len({c.new_revision for c in changes} | {c.old_revision for c in changes}) == 4


def _layer_shared_with_b(owner: Any) -> list[str]:
    """Two versions of a new layer in the default account, both readable by ACCOUNT_B."""
    versions = _layer(owner)
    name = layer_base_arn(versions[0]).rsplit(":", 1)[1]
    for version in (1, 2):
        owner.add_layer_version_permission(LayerName=name, VersionNumber=version, StatementId="b",
                                           Action="lambda:GetLayerVersion", Principal=ACCOUNT_B)
    return versions


def test_layer_shared_with_an_account_can_be_attached_there_only(cross_env: str) -> None:
    owner = boto3.client("lambda")
    v1, v2 = _layer_shared_with_b(owner)
    in_b = AwsTarget(assume_role_arn=_role(ACCOUNT_B))
    fn_b = _function(_client_in(ACCOUNT_B), [v1], _client_in(ACCOUNT_B, "iam"))  # plain moto 5.2.5 fails right here

    attach(in_b, v2, [fn_b])
    assert _layers_of(_client_in(ACCOUNT_B), fn_b) == [v2]
    assert [u.status for u in drift([in_b], v2)] == ["current"]

    lam_c = _client_in(ACCOUNT_C)
    fn_c = _function(lam_c, iam=_client_in(ACCOUNT_C, "iam"))
    with pytest.raises(PublishError) as caught:
        attach(AwsTarget(assume_role_arn=_role(ACCOUNT_C)), v2, [fn_c])
    assert caught.value.code == "AccessDeniedException" and v2 in str(caught.value)
    assert f"account {ACCOUNT_C} may not use this layer version" in str(caught.value)
    assert f"add '{ACCOUNT_C}' to share_with" in str(caught.value)
    with pytest.raises(lam_c.exceptions.ClientError, match="AccessDeniedException"):
        lam_c.update_function_configuration(FunctionName=fn_c, Layers=[v2])
    assert _layers_of(lam_c, fn_c) == []


def test_layer_shared_with_everyone_or_an_organization(cross_env: str) -> None:
    owner = boto3.client("lambda")
    orgs = boto3.client("organizations")
    try:
        org_id = orgs.create_organization(FeatureSet="ALL")["Organization"]["Id"]
    except orgs.exceptions.AlreadyInOrganizationException:
        org_id = orgs.describe_organization()["Organization"]["Id"]
    status = orgs.create_account(AccountName="member", Email="m@example.com")["CreateAccountStatus"]
    member = orgs.describe_create_account_status(
        CreateAccountRequestId=status["Id"])["CreateAccountStatus"]["AccountId"]
    (public,) = _layer(owner, 1)
    (org_only,) = _layer(owner, 1)
    owner.add_layer_version_permission(LayerName=layer_base_arn(public).rsplit(":", 1)[1],
                                       VersionNumber=1, StatementId="all",
                                       Action="lambda:GetLayerVersion", Principal="*")
    owner.add_layer_version_permission(LayerName=layer_base_arn(org_only).rsplit(":", 1)[1],
                                       VersionNumber=1, StatementId="org",
                                       Action="lambda:GetLayerVersion", Principal="*",
                                       OrganizationId=org_id)
    for account, allowed in ((member, {public, org_only}), (ACCOUNT_C, {public})):
        lam = _client_in(account)
        fn = _function(lam, iam=_client_in(account, "iam"))
        for layer in (public, org_only):
            try:
                attach(AwsTarget(assume_role_arn=_role(account)), layer, [fn])
            except PublishError as exc:
                assert exc.code == "AccessDeniedException" and layer not in allowed
            else:
                assert layer in allowed
        assert set(_layers_of(lam, fn)) == allowed


def test_drift_cli_scans_every_account_given(cross_env: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    owner = boto3.client("lambda")
    v1, v2 = _layer_shared_with_b(owner)
    fn_a = _function(owner, [v2])
    fn_b = _function(_client_in(ACCOUNT_B), [v1], _client_in(ACCOUNT_B, "iam"))
    own = "arn:aws:iam::123456789012:role/pll-drift-own"  # moto's default account, by a role too
    assert main(["drift", "--layer", v2, "--assume-role-arn", own,
                 "--assume-role-arn", _role(ACCOUNT_B)]) == 1
    out = capsys.readouterr().out
    assert f"current  us-east-1  123456789012  {fn_a}" in out
    assert f"stale    us-east-1  {ACCOUNT_B}  {fn_b}  uses version 1" in out
    assert main(["drift", "--layer", v2, "--assume-role-arn", own]) == 0  # B not scanned
