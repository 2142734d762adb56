"""LambdaLayerBuild through the real Pulumi engine against a moto server: publish, diff, replace, retain."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from tests.conftest import HOST_CA_BUNDLE
from tests.e2e.pulumi_harness import PulumiCLI, PulumiProject
from tests.testbed_images import require_image

PROGRAM = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

cfg = pulumi.Config()
layer = LambdaLayerBuild(
    "deps",
    runtime="python3.11",
    lock="requirements.lock",
    builder=cfg.get("builder") or "local",
    image=cfg.get("image"),
    network_mode=cfg.get("network_mode"),
    ca_bundle=cfg.get("ca_bundle"),
    layer_name=cfg.get("layer_name") or "e2e-deps",
    description="e2e layer",
    share_with=cfg.get_object("share_with") or [],
    retain_versions=cfg.get_int("retain_versions") or 0,
    retain_on_delete=cfg.get_bool("retain_on_delete") or False,
)
for key in ("layer_arn", "layer_version_arn", "version", "content_hash", "code_sha256",
            "code_size", "packages", "builder_used", "runtimes", "architectures"):
    pulumi.export(key, getattr(layer, key))
'''


@pytest.fixture
def pulumi_extra_env(aws_env: str, tmp_path: Path) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": aws_env, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "PLL_CACHE_DIR": str(tmp_path / "build-cache")}


def _lambda(endpoint: str) -> object:
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _versions(endpoint: str, layer: str) -> list[int]:
    found = _lambda(endpoint).list_layer_versions(LayerName=layer)["LayerVersions"]  # type: ignore[attr-defined]
    return sorted(v["Version"] for v in found)


def _project(p: PulumiProject, lock: str, **config: str) -> PulumiCLI:
    p.write("layer-e2e", PROGRAM)
    (p.dir / "requirements.lock").write_text(lock)
    p.cli.stack_init("dev")
    for key, value in config.items():
        p.cli.config_set(key, value)
    return p.cli


def test_publish_preview_replace_share_destroy(pulumi_project: PulumiProject, aws_env: str,
                                               tmp_path: Path) -> None:
    cli = _project(pulumi_project, "six==1.16.0\n", builder="docker",
                   image=require_image("python3.11", "x86_64"), network_mode="host",
                   ca_bundle=HOST_CA_BUNDLE)

    # 1. up publishes version 1, and the outputs are what Lambda reports for it.
    up = cli.up()
    out = cli.outputs()
    assert out["version"] == 1 and out["builder_used"] == "docker"
    assert out["packages"] == {"six": "1.16.0"}
    assert out["runtimes"] == ["python3.11"] and out["architectures"] == ["x86_64"]
    live = _lambda(aws_env).get_layer_version(LayerName="e2e-deps", VersionNumber=1)  # type: ignore[attr-defined]
    assert live["LayerVersionArn"] == out["layer_version_arn"]
    assert live["Content"]["CodeSha256"] == out["code_sha256"]
    assert live["Content"]["CodeSize"] == out["code_size"]
    assert out["content_hash"] in live["Description"]
    assert "[lambda-layers]" in up.stdout + up.stderr, "build progress reaches the Pulumi log"

    # 2. Nothing changed: no diff, here and from a copy of the program in another directory.
    assert set(cli.preview_changes()) == {"same"}
    elsewhere = tmp_path / "another-checkout" / "program"
    shutil.copytree(pulumi_project.dir, elsewhere)
    other = PulumiCLI(elsewhere, home=tmp_path / "pulumi", extra_env=cli.env)
    other.run("stack", "select", "dev")
    assert set(other.preview_changes()) == {"same"}

    # 3. One pinned package changes: preview names it with both versions and shows a replace.
    (pulumi_project.dir / "requirements.lock").write_text("six==1.17.0\n")
    diff = cli.preview(diff=True).stdout
    assert "+-" in diff and "replace" in diff.lower(), diff
    assert '"1.16.0" => "1.17.0"' in diff and "six" in diff, diff
    cli.up()
    out2 = cli.outputs()
    assert out2["version"] == 2 and out2["packages"] == {"six": "1.17.0"}
    assert _versions(aws_env, "e2e-deps") == [2], "the replaced version 1 is deleted"

    # 4. Sharing is an in-place update: a policy on the same version, no new version.
    cli.config_set("share_with", json.dumps(["111122223333", "o-abcdefghij"]))
    assert cli.preview_changes().get("update") == 1
    cli.up()
    assert cli.outputs()["version"] == 2
    policy = json.loads(_lambda(aws_env).get_layer_version_policy(  # type: ignore[attr-defined]
        LayerName="e2e-deps", VersionNumber=2)["Policy"])
    # moto keeps OrganizationId as sent; AWS turns it into an aws:PrincipalOrgID condition.
    principals = {json.dumps(s) for s in policy["Statement"]}
    assert any("111122223333" in p for p in principals)
    assert any("o-abcdefghij" in p for p in principals)

    # 5. destroy removes the version it owns.
    cli.destroy()
    assert _versions(aws_env, "e2e-deps") == []


def test_retention_keeps_previous_versions(pulumi_project: PulumiProject, aws_env: str) -> None:
    cli = _project(pulumi_project, "six==1.15.0\n", layer_name="e2e-retain", retain_versions="1")
    cli.up()
    for pin in ("six==1.16.0\n", "six==1.17.0\n"):
        (pulumi_project.dir / "requirements.lock").write_text(pin)
        cli.up()
    assert cli.outputs()["version"] == 3
    assert _versions(aws_env, "e2e-retain") == [2, 3], "keeps one previous version, drops older"
    cli.config_set("retain_on_delete", "true")
    cli.up()
    cli.destroy()
    assert _versions(aws_env, "e2e-retain") == [2, 3], "retain_on_delete keeps them in AWS"


def test_bad_input_fails_preview_against_the_argument(pulumi_project: PulumiProject) -> None:
    pulumi_project.write("layer-e2e", PROGRAM.replace('runtime="python3.11"', 'runtime="python3.1l"'))
    (pulumi_project.dir / "requirements.lock").write_text("six==1.16.0\n")
    cli = pulumi_project.cli
    cli.stack_init("dev")
    proc = cli.run("preview", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "runtime" in text and "did you mean 'python3.11'" in text, text
    assert "Traceback" not in text, text


def test_killed_up_then_up_again_publishes_one_version(pulumi_project: PulumiProject,
                                                        aws_env: str) -> None:
    cli = _project(pulumi_project, "six==1.16.0\n", layer_name="e2e-killed")
    cmd = [str(cli.bin_dir / "pulumi"), "--non-interactive", "up", "--yes", "--skip-preview"]
    # The provider hangs right after publishing, so the kill lands between publish and state write.
    env = {**cli.env, "PLL_FAULT_INJECT": "after-publish"}
    proc = subprocess.Popen(cmd, cwd=pulumi_project.dir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while not _versions(aws_env, "e2e-killed"):
        assert proc.poll() is None or _versions(aws_env, "e2e-killed"), "up ended before publishing"
        assert time.monotonic() < deadline, "no version published within 300 s"
        time.sleep(0.05)
    time.sleep(1)
    assert proc.poll() is None, "up finished although the provider should hang after publishing"
    os.killpg(proc.pid, signal.SIGKILL)  # the engine and the provider die right after the publish
    proc.wait()

    # What a user does after a killed up: release the lock, clear the pending create; the next
    # up must then find the version already published and reuse it.
    cli.run("cancel", "--yes")
    cli.run("refresh", "--yes", "--clear-pending-creates", check=False)
    in_state = [r for r in cli.resources() if r["type"].endswith("LambdaLayerBuild")]
    assert in_state == [], "the kill came after the state was written: the test proves nothing"
    cli.up()
    assert _versions(aws_env, "e2e-killed") == [1]
    assert cli.outputs()["version"] == 1
