"""Pulumi-native arguments on the real engine and moto: share_with from another stack's output,
the stack's lambda-layers: config as defaults, and the refusals preview shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiCLI, write_python_project
from tests.local_index import LocalIndex, make_wheel, serve_index

PRODUCER = '''
import pulumi
pulumi.export("consumer_accounts", ["222233334444", "333344445555"])
pulumi.export("one_account", "222233334444")
'''

CONSUMER = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild, LambdaLayerBuildArgs

cfg = pulumi.Config()
ref = pulumi.StackReference(cfg.require("producer"))
layer = LambdaLayerBuild("deps", LambdaLayerBuildArgs(
    runtime="python3.11", lock="requirements.lock", builder="local",
    layer_name=cfg.require("layer_name"),
    share_with=ref.get_output(cfg.get("accounts_output") or "consumer_accounts")))
pulumi.export("version", layer.version)
'''

DEFAULTS = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

cfg = pulumi.Config()
case = cfg.get("case") or "ok"
runtime = pulumi.Output.from_input("python3.11") if case == "output_runtime" else "python3.11"
plain = LambdaLayerBuild("plain", runtime=runtime, lock="requirements.lock",
                         layer_name="e2e-config-plain")
explicit = LambdaLayerBuild("explicit", runtime="python3.11", lock="requirements.lock",
                            layer_name="e2e-config-explicit", builder="local", retain_versions=0,
                            cache_prefix="mine/")
'''


@pytest.fixture
def env(aws_env: str, tmp_path: Path) -> dict[str, str]:
    return moto_env(aws_env, tmp_path)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[LocalIndex]:
    make_wheel(tmp_path / "wheels", "pllargs", "1.0.0")
    with serve_index(tmp_path / "wheels") as served:
        yield served


def _project(tmp_path: Path, name: str, program: str, env: dict[str, str],
             index: LocalIndex | None = None) -> PulumiCLI:
    folder = tmp_path / name
    write_python_project(folder, name, program)
    if index is not None:
        (folder / "requirements.lock").write_text(f"--index-url {index.url}\npllargs==1.0.0\n")
    # One backend for every project, as in one organisation.
    return PulumiCLI(folder, home=tmp_path / "pulumi", extra_env=env)


def _fails(cli: PulumiCLI, command: str, message: str, *args: str) -> str:
    """The output of a `pulumi command` that must fail saying message."""
    failed = cli.run(command, *args, check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0 and message in text, text[-3000:]
    return text


def _inputs(cli: PulumiCLI, name: str) -> dict[str, Any]:
    return next(r["inputs"] for r in cli.resources() if r["urn"].endswith(f"::{name}"))


def test_share_with_from_a_stack_reference(tmp_path: Path, env: dict[str, str],
                                           index: LocalIndex) -> None:
    producer = _project(tmp_path, "args-producer", PRODUCER, env)
    producer.stack_init("prod")
    producer.up()

    consumer = _project(tmp_path, "args-consumer", CONSUMER, env, index)
    consumer.stack_init("dev")
    consumer.config_set("producer", "organization/args-producer/prod")
    consumer.config_set("layer_name", "e2e-args-shared")
    consumer.up()
    policy = json.loads(boto3.client("lambda").get_layer_version_policy(
        LayerName="e2e-args-shared", VersionNumber=1)["Policy"])
    granted = {s["Principal"]["AWS"] if isinstance(s["Principal"], dict) else s["Principal"]
               for s in policy["Statement"]}
    assert any("222233334444" in g for g in granted) and any("333344445555" in g for g in granted)

    # An output that is a string, not a list: refused naming share_with and the fix.
    consumer.config_set("accounts_output", "one_account")
    text = _fails(consumer, "up", "expected a list of principals, got the string "
                  "'222233334444' (write ['222233334444'])", "--yes")
    assert "share_with" in text


def test_config_defaults_apply_an_explicit_argument_wins_and_bad_input_is_refused(
        tmp_path: Path, env: dict[str, str], index: LocalIndex) -> None:
    cli = _project(tmp_path, "args-config", DEFAULTS, env, index)
    cli.stack_init("dev")
    for key, value in (("builder", "local"), ("retainVersions", "2"),
                       ("cachePrefix", "team/"), ("smokeTest", "false")):
        cli.config_set(f"lambda-layers:{key}", value)
    cli.up()
    plain, explicit = _inputs(cli, "plain"), _inputs(cli, "explicit")
    assert (plain["retain_versions"], plain["cache_prefix"], plain["smoke_test"]) == \
        (2, "team/", False)
    assert (explicit["retain_versions"], explicit["cache_prefix"]) == (0, "mine/")
    layer_names = {v["LayerName"] for v in boto3.client("lambda").list_layers()["Layers"]}
    assert {"e2e-config-plain", "e2e-config-explicit"} <= layer_names
    cli.run("preview", "--expect-no-changes")

    # A misspelt key of the namespace: preview fails naming it, with the key meant.
    cli.config_set("lambda-layers:cacheBuket", "team-cache")
    _fails(cli, "preview", "lambda-layers:cacheBuket is not a setting of this library: did you "
           "mean lambda-layers:cacheBucket?")
    cli.run("config", "rm", "lambda-layers:cacheBuket")

    # An Output for runtime: the hash is computed at preview, so it is refused, saying why.
    cli.config_set("case", "output_runtime")
    _fails(cli, "preview", "runtime is an Output, but the content hash is computed at preview, "
           "so runtime must be known then")
