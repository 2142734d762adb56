"""LayerAttachment through the real Pulumi engine against the patched moto server: functions this
stack does not own follow new layer versions, in order, with rollback, drift repair, and across
accounts (producer/consumer through a StackReference) with `lambda-layers drift` exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import client_in, role_arn, write
from tests.lambda_fakes import handler_zip as _zip
from tests.lambda_fakes import layers_of as _layers_of
from tests.lambda_fakes import make_function
from tests.lambda_fakes import uid as _uid
from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiCLI, PulumiProject, write_python_project

ACCOUNT_A = "123456789012"  # moto's default account: the producer, and the single-account tests
ACCOUNT_B = "222233334444"  # the consumer, in the producer's share_with
ACCOUNT_C = "555566667777"  # not in share_with

PROGRAM = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild, LayerAttachment

layer = LambdaLayerBuild("deps", runtime="python3.12", source_dir="layer", layer_name={layer_name!r})
legacy = LayerAttachment("legacy", layer=layer, functions={functions!r}, position={position!r})
pulumi.export("layer_version_arn", layer.layer_version_arn)
pulumi.export("attached", legacy.attached)
'''

PRODUCER = '''
from pulumi_lambda_layers import LambdaLayerBuild, export_layer

layer = LambdaLayerBuild("shared", runtime="python3.12", source_dir="layer", layer_name={layer_name!r},
                         share_with={share_with!r}, retain_versions=1)
export_layer("shared_layer", layer)
'''

CONSUMER = '''
import pulumi
from pulumi_lambda_layers import LayerAttachment, layer_from_stack

cfg = pulumi.Config()
arn = layer_from_stack(pulumi.StackReference({producer!r}), "shared_layer", runtime="python3.12",
                       architecture="x86_64")
LayerAttachment("billing", layer=arn, functions=[cfg.require("function")],
                assume_role_arn=cfg.require("role"))
pulumi.export("layer_version_arn", arn)
'''


@pytest.fixture
def pulumi_extra_env(cross_env: str, tmp_path: Path) -> dict[str, str]:
    return moto_env(cross_env, tmp_path)


# --- AWS side, made with boto3 (pulumi_aws cannot be deployed here) -----------------------------


def _other_layer(lam: Any) -> str:
    """A version ARN of some layer that is not ours."""
    return str(lam.publish_layer_version(LayerName=_uid("other"),
                                         Content={"ZipFile": _zip()})["LayerVersionArn"])


def _versions(lam: Any, layer_name: str) -> list[int]:
    try:
        found = lam.list_layer_versions(LayerName=layer_name)["LayerVersions"]
    except lam.exceptions.ResourceNotFoundException:
        return []
    return sorted(v["Version"] for v in found)


def _arn(layer_name: str, version: int, account: str = ACCOUNT_A) -> str:
    return f"arn:aws:lambda:us-east-1:{account}:layer:{layer_name}:{version}"


def _set_layer_content(project: Path, text: str) -> None:
    write(project / "layer" / "python" / "pll_marker.py", f"VALUE = {text!r}\n")


# --- the ordering proof -------------------------------------------------------------------------

class LayerWatch(threading.Thread):
    """While a deploy runs: lists the layer's versions, then reads each function's layers, again
    and again. A function read after a listing that showed its version deleted (gone from the list,
    or missing below the newest one) is pointing at a deleted version: that is a violation.
    Reading the list first and the functions after means a violation is never a false alarm."""

    def __init__(self, layer_name: str, functions: Sequence[str], lam: Any) -> None:
        super().__init__(daemon=True)
        self.layer_name, self.functions, self.lam = layer_name, list(functions), lam
        self.stop = threading.Event()
        self.violations: list[str] = []
        self.states: list[tuple[tuple[int, ...], dict[str, list[int]]]] = []  # distinct, in order
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            seen: set[int] = set()
            deleted: set[int] = set()
            while not self.stop.is_set():
                listed = set(_versions(self.lam, self.layer_name))
                seen |= listed
                deleted |= (seen - listed) | (set(range(1, max(listed, default=1))) - listed)
                uses = {fn: self._our_versions(fn) for fn in self.functions}
                for fn, versions in uses.items():
                    for v in set(versions) & deleted:
                        self.violations.append(f"{fn} uses {self.layer_name}:{v}, deleted (versions "
                                               f"now {sorted(listed)})")
                state = (tuple(sorted(listed)), uses)
                if not self.states or self.states[-1] != state:
                    self.states.append(state)
                time.sleep(0.02)
        except BaseException as exc:  # surfaced by watching() in the test's thread
            self.error = exc

    def _our_versions(self, fn: str) -> list[int]:
        prefix = f":layer:{self.layer_name}:"
        return [int(a.rsplit(":", 1)[1]) for a in _layers_of(self.lam, fn) if prefix in a]


@contextmanager
def watching(layer_name: str, functions: Sequence[str]) -> Iterator[LayerWatch]:
    watch = LayerWatch(layer_name, functions, boto3.client("lambda"))
    watch.start()
    try:
        yield watch
    finally:
        watch.stop.set()
        watch.join(timeout=30)
    if watch.error is not None:
        raise AssertionError(f"the watcher failed: {watch.error!r}") from watch.error
    assert len(watch.states) >= 1, "the watcher sampled nothing"
    assert not watch.violations, "\n".join(watch.violations + ["states seen:"] +
                                           [str(s) for s in watch.states])


def _project(p: PulumiProject, layer_name: str, functions: Sequence[str],
             position: int | None = None) -> PulumiCLI:
    _write_program(p, layer_name, functions, position)
    _set_layer_content(p.dir, "one")
    p.cli.stack_init("dev")
    return p.cli


def _write_program(p: PulumiProject, layer_name: str, functions: Sequence[str],
                   position: int | None = None) -> None:
    p.write("attach-e2e", PROGRAM.format(layer_name=layer_name, functions=list(functions),
                                         position=position))


# --- tests --------------------------------------------------------------------------------------

def test_new_version_repoints_external_functions_in_place_before_the_old_one_goes(
        pulumi_project: PulumiProject, cross_env: str) -> None:
    lam, iam = boto3.client("lambda"), boto3.client("iam")
    x, y = _other_layer(lam), _other_layer(lam)
    fn1, fn2 = make_function(lam, [x, y], iam), make_function(lam, [y], iam)
    name = _uid("pll-e2e-repoint")
    cli = _project(pulumi_project, name, [fn1, fn2], position=1)
    history: list[tuple[str, dict[str, list[str]]]] = []

    def step(label: str) -> None:
        history.append((label, {fn: _layers_of(lam, fn) for fn in (fn1, fn2)}))

    step("before")
    # The layer's ARN is unknown at preview: the attachment must still pass its checks.
    assert cli.preview_changes() == {"create": 3}
    with watching(name, [fn1, fn2]):
        cli.up()
    step("up 1")
    assert cli.outputs()["attached"] == {fn1: _arn(name, 1), fn2: _arn(name, 1)}

    _set_layer_content(pulumi_project.dir, "two")
    diff = cli.preview(diff=True).stdout
    assert "+-" in diff and "deps" in diff and "legacy" in diff, diff
    with watching(name, [fn1, fn2]) as watch:
        cli.up()
    step("up 2: new content")
    assert _versions(lam, name) == [2], "the replaced version 1 is deleted"
    # The watcher saw the hand-over itself, not just the end state: both versions listed at once.
    assert any(set(listed) == {1, 2} for listed, _ in watch.states), watch.states
    assert cli.preview_changes() == {"same": 3}

    with watching(name, [fn1, fn2]):
        cli.destroy()
    step("destroy")
    assert _versions(lam, name) == []

    v1, v2 = _arn(name, 1), _arn(name, 2)
    assert history == [
        ("before", {fn1: [x, y], fn2: [y]}),
        ("up 1", {fn1: [x, v1, y], fn2: [y, v1]}),  # added at position 1
        ("up 2: new content", {fn1: [x, v2, y], fn2: [y, v2]}),  # replaced in place
        ("destroy", {fn1: [x, y], fn2: [y]}),  # detached, the others kept in order
    ]


def test_failure_on_one_function_leaves_the_others_on_the_old_version(
        pulumi_project: PulumiProject, cross_env: str) -> None:
    lam, iam = boto3.client("lambda"), boto3.client("iam")
    x = _other_layer(lam)
    fn_ok = make_function(lam, [x], iam)
    full = [_other_layer(lam) for _ in range(5)]
    fn_full = make_function(lam, full, iam)
    # A function still listing a version someone deleted: Lambda refuses any new layer list for
    # it, and only on the update itself, after fn_ok has been changed.
    gone = _other_layer(lam)
    fn_stale = make_function(lam, [gone], iam)
    lam.delete_layer_version(LayerName=gone.split(":")[6], VersionNumber=1)
    name = _uid("pll-e2e-fail")
    cli = _project(pulumi_project, name, [fn_ok])
    cli.up()
    v1, v2 = _arn(name, 1), _arn(name, 2)
    assert _layers_of(lam, fn_ok) == [x, v1]

    # New content and a function over the 5-layer limit: checked before anything changes.
    _set_layer_content(pulumi_project.dir, "two")
    _write_program(pulumi_project, name, [fn_ok, fn_full])
    with watching(name, [fn_ok]):
        failed = cli.run("up", "--yes", "--skip-preview", check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"{fn_full}: FAILED: would have 6 layers, Lambda allows 5 per function" in text, text
    assert f"{fn_ok}: ok; left as it was" in text, text
    assert _layers_of(lam, fn_ok) == [x, v1] and _layers_of(lam, fn_full) == full
    assert _versions(lam, name) == [1, 2], "the old version stays while a function still uses it"

    # A function that fails on the update itself: fn_ok, changed already, is rolled back.
    _write_program(pulumi_project, name, [fn_ok, fn_stale])
    revision = lam.get_function_configuration(FunctionName=fn_ok)["RevisionId"]
    with watching(name, [fn_ok]):
        failed = cli.run("up", "--yes", "--skip-preview", check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"{fn_stale}: FAILED:" in text and "ResourceNotFoundException" in text, text
    assert f"{fn_ok}: ok; its previous layers were restored" in text, text
    assert lam.get_function_configuration(FunctionName=fn_ok)["RevisionId"] != revision, \
        "fn_ok was updated (and then rolled back), not left alone"
    assert _layers_of(lam, fn_ok) == [x, v1] and _layers_of(lam, fn_stale) == [gone]
    assert _versions(lam, name) == [1, 2]

    # Without the bad functions the same up goes through and only then drops version 1.
    _write_program(pulumi_project, name, [fn_ok])
    with watching(name, [fn_ok]):
        cli.up()
    assert _layers_of(lam, fn_ok) == [x, v2]
    assert _versions(lam, name) == [2]


def test_manual_drift_shows_on_refresh_and_the_next_up_repairs_it(
        pulumi_project: PulumiProject, cross_env: str) -> None:
    lam, iam = boto3.client("lambda"), boto3.client("iam")
    x, y = _other_layer(lam), _other_layer(lam)
    fn, fn_kept = make_function(lam, [x, y], iam), make_function(lam, iam=iam)
    name = _uid("pll-e2e-drift")
    cli = _project(pulumi_project, name, [fn, fn_kept], position=1)
    cli.up()
    v1 = _arn(name, 1)
    assert _layers_of(lam, fn) == [x, v1, y]
    assert json.loads(cli.run("preview", "--refresh", "--json").stdout)["changeSummary"] == {
        "same": 3}

    lam.update_function_configuration(FunctionName=fn, Layers=[x, y])  # by hand
    preview = cli.run("preview", "--refresh", "--diff")
    text = preview.stdout + preview.stderr
    assert f"drift: {fn} uses no version of the layer, not {v1}" in text, text
    summary = json.loads(cli.run("preview", "--refresh", "--json").stdout)["changeSummary"]
    assert summary.get("update") == 1, summary
    assert _layers_of(lam, fn) == [x, y], "preview changes nothing"

    cli.run("refresh", "--yes", "--skip-preview")
    assert _attached_in_state(cli) == {fn: None, fn_kept: v1}, "refresh records the drift"
    cli.up()
    assert _layers_of(lam, fn) == [x, v1, y] and _layers_of(lam, fn_kept) == [v1]
    assert cli.outputs()["attached"] == {fn: v1, fn_kept: v1}
    assert json.loads(cli.run("preview", "--refresh", "--json").stdout)["changeSummary"] == {
        "same": 3}

    # Another version put in by hand: `up --refresh` reads and repairs in one go.
    other = lam.publish_layer_version(LayerName=name, Content={"ZipFile": _zip()})["LayerVersionArn"]
    lam.update_function_configuration(FunctionName=fn_kept, Layers=[other])
    cli.up("--refresh")
    assert _layers_of(lam, fn_kept) == [v1] and _layers_of(lam, fn) == [x, v1, y]


def test_layer_too_big_beside_a_functions_other_layers_is_refused_by_its_unzipped_size(
        pulumi_project: PulumiProject, cross_env: str) -> None:
    lam, iam = boto3.client("lambda"), boto3.client("iam")
    noise = io.BytesIO()
    with zipfile.ZipFile(noise, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("python/noise.bin", os.urandom(300_000))  # incompressible: 0.3 MB zipped
    other = lam.publish_layer_version(LayerName=_uid("noise"),
                                      Content={"ZipFile": noise.getvalue()})["LayerVersionArn"]
    fn_ok, fn_over = make_function(lam, iam=iam), make_function(lam, [other], iam)
    name = _uid("pll-e2e-big")
    cli = _project(pulumi_project, name, [fn_ok, fn_over])
    # 249.9 MB unzipped, 0.25 MB zipped: within the limit alone, not beside `other`.
    with open(pulumi_project.dir / "layer" / "python" / "zeros.bin", "wb") as out:
        for _ in range(131):
            out.write(bytes(2_000_000))  # 262,000,000 bytes

    failed = cli.run("up", "--yes", "--skip-preview", check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert f"{fn_over}: FAILED: function {fn_over} would need at least 250.1 MB" in text, text
    assert f":layer:{name}:1 249.9 MB unzipped" in text and f"{other} 0.3 MB zipped" in text, text
    assert f"{fn_ok}: ok; left as it was" in text, text
    assert _layers_of(lam, fn_ok) == [] and _layers_of(lam, fn_over) == [other]

    _write_program(pulumi_project, name, [fn_ok])
    cli.up()
    assert _layers_of(lam, fn_ok) == [_arn(name, 1)]


def test_changing_position_moves_the_layer(pulumi_project: PulumiProject, cross_env: str) -> None:
    lam, iam = boto3.client("lambda"), boto3.client("iam")
    x, y = _other_layer(lam), _other_layer(lam)
    fn = make_function(lam, [x, y], iam)
    name = _uid("pll-e2e-move")
    cli = _project(pulumi_project, name, [fn], position=0)
    cli.up()
    v1 = _arn(name, 1)
    assert _layers_of(lam, fn) == [v1, x, y]

    _write_program(pulumi_project, name, [fn], position=2)
    assert cli.preview_changes() == {"same": 2, "update": 1}
    cli.up()
    assert _layers_of(lam, fn) == [x, y, v1]
    assert cli.preview_changes() == {"same": 3}


def _attached_in_state(cli: PulumiCLI) -> dict[str, str | None]:
    (attachment,) = [r for r in cli.resources() if r["type"].endswith("LayerAttachment")]
    found: dict[str, str | None] = attachment["outputs"]["attached"]
    return found


def _cross_project(tmp_path: Path, part: str, main_py: str, env: dict[str, str]) -> PulumiCLI:
    project = tmp_path / part
    write_python_project(project, f"xacct-{part}", main_py)
    return PulumiCLI(project, home=tmp_path / "pulumi", extra_env=env)  # one backend for both


def _drift(layer_version_arn: str, account: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pulumi_lambda_layers.cli", "drift", "--layer",
                           layer_version_arn, "--assume-role-arn", role_arn(account)],
                          capture_output=True, text=True, env=dict(os.environ), timeout=120)


def test_cross_account_consumer_follows_the_producer_and_drift_reports_stale(
        tmp_path: Path, cross_env: str, pulumi_extra_env: dict[str, str]) -> None:
    name = _uid("pll-e2e-shared")
    lam_b, iam_b = client_in(ACCOUNT_B), client_in(ACCOUNT_B, "iam")
    lam_c, iam_c = client_in(ACCOUNT_C), client_in(ACCOUNT_C, "iam")
    other_b = _other_layer(lam_b)
    fn_b, fn_c = make_function(lam_b, [other_b], iam_b), make_function(lam_c, iam=iam_c)

    producer = _cross_project(tmp_path, "producer", PRODUCER.format(
        layer_name=name, share_with=[ACCOUNT_B]), pulumi_extra_env)
    _set_layer_content(producer.project_dir, "one")
    producer.stack_init("prod")
    producer.up()
    v1, v2 = _arn(name, 1), _arn(name, 2)
    assert producer.outputs()["shared_layer"]["layer_version_arn"] == v1

    consumer = _cross_project(tmp_path, "consumer", CONSUMER.format(
        producer="organization/xacct-producer/prod"), pulumi_extra_env)
    consumer.stack_init("billing")
    consumer.run("config", "set-all", "--plaintext", f"function={fn_b}",
                 "--plaintext", f"role={role_arn(ACCOUNT_B)}")
    consumer.up()
    assert _layers_of(lam_b, fn_b) == [other_b, v1]
    done = _drift(v1, ACCOUNT_B)
    assert done.returncode == 0 and f"current  us-east-1  {fn_b}" in done.stdout, done

    # A new producer version: the consumer's function is stale until the consumer's next up.
    _set_layer_content(producer.project_dir, "two")
    producer.up()
    assert producer.outputs()["shared_layer"]["layer_version_arn"] == v2
    stale = _drift(v2, ACCOUNT_B)
    assert stale.returncode == 1, stale
    assert f"stale    us-east-1  {fn_b}  uses version 1" in stale.stdout, stale.stdout
    assert _layers_of(lam_b, fn_b) == [other_b, v1]

    consumer.up()
    assert _layers_of(lam_b, fn_b) == [other_b, v2]
    current = _drift(v2, ACCOUNT_B)
    assert current.returncode == 0 and f"current  us-east-1  {fn_b}" in current.stdout, current

    # An account the producer does not share with gets an error that says what to change.
    consumer.stack_init("outsider")
    consumer.run("config", "set-all", "--plaintext", f"function={fn_c}",
                 "--plaintext", f"role={role_arn(ACCOUNT_C)}")
    refused = consumer.run("up", "--yes", "--skip-preview", check=False)
    text = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert f"account {ACCOUNT_C}" in text and "share_with" in text and v2 in text, text
    assert _layers_of(lam_c, fn_c) == []
