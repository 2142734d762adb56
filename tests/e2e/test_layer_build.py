"""LambdaLayerBuild through the real Pulumi engine against a moto server: publish, diff, replace, retain."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import re
import time
import zipfile
from pathlib import Path

import boto3
import pytest

from pulumi_lambda_layers.aws import layers as publish
from tests.conftest import HOST_CA_BUNDLE
from tests.e2e.conftest import moto_env
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
    compatible_runtimes=cfg.get_object("compatible_runtimes"),
)
for key in ("layer_arn", "layer_version_arn", "version", "content_hash", "code_sha256",
            "code_size", "unzipped_size", "packages", "builder_used", "runtimes", "architectures"):
    pulumi.export(key, getattr(layer, key))
'''


@pytest.fixture
def pulumi_extra_env(aws_env: str, tmp_path: Path) -> dict[str, str]:
    return moto_env(aws_env, tmp_path)


def _lambda(endpoint: str) -> object:
    return boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _versions(endpoint: str, layer: str) -> list[int]:
    found = _lambda(endpoint).list_layer_versions(LayerName=layer)["LayerVersions"]  # type: ignore[attr-defined]
    return sorted(v["Version"] for v in found)


def _policy_principals(endpoint: str, layer: str, version: int) -> str:
    """The version's policy statements as text (moto keeps OrganizationId as sent; AWS turns it
    into an aws:PrincipalOrgID condition), to look principals up in."""
    policy = _lambda(endpoint).get_layer_version_policy(  # type: ignore[attr-defined]
        LayerName=layer, VersionNumber=version)["Policy"]
    return json.dumps(json.loads(policy)["Statement"])


def _built(cache_dir: Path) -> list[Path]:
    """What a build leaves in PLL_CACHE_DIR: layer zips and per-package packs."""
    return sorted([*cache_dir.rglob("*.zip"), *cache_dir.rglob("*.pack")])


def _project(p: PulumiProject, lock: str, **config: str) -> PulumiCLI:
    p.write("layer-e2e", PROGRAM)
    (p.dir / "requirements.lock").write_text(lock)
    p.cli.stack_init("dev")
    for key, value in config.items():
        p.cli.config_set(key, value)
    return p.cli


def test_publish_preview_replace_share_refresh_destroy(pulumi_project: PulumiProject,
                                                       aws_env: str, tmp_path: Path) -> None:
    # MarkupSafe publishes platform wheels: the build container's pip installs it (a pure wheel
    # would be unpacked here, without a container).
    cli = _project(pulumi_project, "markupsafe==2.1.5\n", builder="docker",
                   image=require_image("python3.11", "x86_64"), network_mode="host",
                   ca_bundle=HOST_CA_BUNDLE,
                   share_with=json.dumps(["111122223333", "o-abcdefghij"]))
    build_cache = Path(cli.env["PLL_CACHE_DIR"])

    # 0. Program time never builds: a fresh preview plans the create and leaves no zip or pack.
    assert cli.preview_changes().get("create") == 2  # the stack and the layer
    assert _built(build_cache) == [], "preview built the layer"

    # 1. up publishes version 1, and the outputs are what Lambda reports for it and the zip holds.
    up = cli.up()
    out = cli.outputs()
    assert out["version"] == 1 and out["builder_used"] == "docker"
    assert out["packages"] == {"markupsafe": "2.1.5"}
    assert out["runtimes"] == ["python3.11"] and out["architectures"] == ["x86_64"]
    live = _lambda(aws_env).get_layer_version(LayerName="e2e-deps", VersionNumber=1)  # type: ignore[attr-defined]
    assert live["LayerArn"] == out["layer_arn"]
    assert live["LayerVersionArn"] == out["layer_version_arn"]
    assert live["Content"]["CodeSha256"] == out["code_sha256"]
    assert live["Content"]["CodeSize"] == out["code_size"]
    assert out["content_hash"] in live["Description"]
    # The cached zip is the published one (same CodeSha256), so its entries give the real size.
    zip_path = build_cache / "zips" / f"{out['content_hash']}.zip"
    assert publish.zip_sha256(zip_path) == out["code_sha256"]
    with zipfile.ZipFile(zip_path) as zf:
        assert out["unzipped_size"] == sum(i.file_size for i in zf.infolist()) > 0
    log = up.stdout + up.stderr  # build progress reaches the Pulumi log: each step, builder, sizes
    for step in ("[lambda-layers] fingerprint: ", "[lambda-layers] docker: building in ",
                 "[lambda-layers] validate: ok (", "[lambda-layers] build: docker (",
                 "[lambda-layers] published arn:aws:lambda:"):
        assert step in log, f"{step!r} not in the up output:\n{log}"
    principals = _policy_principals(aws_env, "e2e-deps", 1)
    assert "111122223333" in principals and "o-abcdefghij" in principals

    # 2. Nothing changed: no diff, here and from a copy of the program in another directory.
    assert set(cli.preview_changes()) == {"same"}
    elsewhere = tmp_path / "another-checkout" / "program"
    shutil.copytree(pulumi_project.dir, elsewhere)
    other = PulumiCLI(elsewhere, home=tmp_path / "pulumi", extra_env=cli.env)
    other.run("stack", "select", "dev")
    assert set(other.preview_changes()) == {"same"}

    # 3. One pinned package changes: preview names it with both versions and shows a replace.
    (pulumi_project.dir / "requirements.lock").write_text("markupsafe==3.0.2\n")
    diff = cli.preview(diff=True).stdout
    assert "+-" in diff and "replace" in diff.lower(), diff
    assert '"2.1.5" => "3.0.2"' in diff and "markupsafe" in diff, diff
    cli.up()
    out2 = cli.outputs()
    assert out2["version"] == 2 and out2["packages"] == {"markupsafe": "3.0.2"}
    assert _versions(aws_env, "e2e-deps") == [2], "the replaced version 1 is deleted"
    # The version a replace publishes is shared like the first one was.
    principals = _policy_principals(aws_env, "e2e-deps", 2)
    assert "111122223333" in principals and "o-abcdefghij" in principals

    # 4. Sharing is an in-place update on the same version: one principal added, one revoked.
    cli.config_set("share_with", json.dumps(["111122223333", "444455556666"]))
    assert cli.preview_changes().get("update") == 1
    cli.up()
    assert cli.outputs()["version"] == 2 and _versions(aws_env, "e2e-deps") == [2]
    principals = _policy_principals(aws_env, "e2e-deps", 2)
    assert "444455556666" in principals and "111122223333" in principals
    assert "o-abcdefghij" not in principals, "the removed principal is revoked"

    # 5. Someone deletes the version out of band: refresh drops it (no crash), up publishes again.
    _lambda(aws_env).delete_layer_version(LayerName="e2e-deps", VersionNumber=2)  # type: ignore[attr-defined]
    refresh = cli.run("refresh", "--yes")
    assert "Traceback" not in refresh.stdout + refresh.stderr, refresh.stdout
    assert not [r for r in cli.resources() if r["type"].endswith("LambdaLayerBuild")], \
        "refresh kept a layer version that is gone"
    cli.up()
    out3 = cli.outputs()
    assert _versions(aws_env, "e2e-deps") == [out3["version"]] and out3["version"] > 2
    live = _lambda(aws_env).get_layer_version(  # type: ignore[attr-defined]
        LayerName="e2e-deps", VersionNumber=out3["version"])
    assert (live["LayerVersionArn"], live["Content"]["CodeSha256"]) == \
        (out3["layer_version_arn"], out2["code_sha256"])
    assert "444455556666" in _policy_principals(aws_env, "e2e-deps", out3["version"])

    # 6. destroy removes the version it owns.
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
    cli.config_set("compatible_runtimes", json.dumps(["pyhton3.12"]))
    proc = cli.run("preview", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    # The engine's check-failure line ("<type> resource '<name>': property <p> value {<v>} has a
    # problem: <reason>") is only printed for a CheckFailure against that property; the reason
    # text alone could come from a stack trace.
    for prop, value, hint in (("runtime", "python3.1l", "did you mean 'python3.11'"),
                              ("compatible_runtimes", "pyhton3.12", "did you mean 'python3.12'")):
        line = re.search(rf"LambdaLayerBuild resource 'deps': property {prop} value (.*) has a "
                         rf"problem: (.*)", text)
        assert line and value in line.group(1) and hint in line.group(2), (prop, text)
    assert "Traceback" not in text, text


def _kill_up_after_publish(cli: PulumiCLI, project_dir: Path, endpoint: str, layer: str,
                           published: int) -> None:
    """Run `up`, kill the engine and provider right after the provider has published version
    `published`, and do what a user does then: cancel, and clear the pending create."""
    cmd = [str(cli.bin_dir / "pulumi"), "--non-interactive", "up", "--yes", "--skip-preview"]
    # The provider hangs right after publishing, so the kill lands between publish and state write.
    env = {**cli.env, "PLL_FAULT_INJECT": "after-publish"}
    proc = subprocess.Popen(cmd, cwd=project_dir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    while published not in _versions(endpoint, layer):
        assert proc.poll() is None or published in _versions(endpoint, layer), \
            "up ended before publishing"
        assert time.monotonic() < deadline, f"version {published} not published within 300 s"
        time.sleep(0.05)
    time.sleep(1)
    assert proc.poll() is None, "up finished although the provider should hang after publishing"
    os.killpg(proc.pid, signal.SIGKILL)  # the engine and the provider die right after the publish
    proc.wait()
    cli.run("cancel", "--yes")
    cli.run("refresh", "--yes", "--clear-pending-creates", check=False)


def test_killed_up_then_up_again_publishes_one_version(pulumi_project: PulumiProject,
                                                        aws_env: str) -> None:
    cli = _project(pulumi_project, "six==1.16.0\n", layer_name="e2e-killed")
    _kill_up_after_publish(cli, pulumi_project.dir, aws_env, "e2e-killed", published=1)
    in_state = [r for r in cli.resources() if r["type"].endswith("LambdaLayerBuild")]
    assert in_state == [], "the kill came after the state was written: the test proves nothing"
    # The next up must find the version already published and reuse it.
    cli.up()
    assert _versions(aws_env, "e2e-killed") == [1]
    assert cli.outputs()["version"] == 1

    # The same during a replace: version 1 is live, version 2 gets published, the deploy dies.
    (pulumi_project.dir / "requirements.lock").write_text("six==1.17.0\n")
    _kill_up_after_publish(cli, pulumi_project.dir, aws_env, "e2e-killed", published=2)
    assert _versions(aws_env, "e2e-killed") == [1, 2]
    cli.up()
    assert cli.outputs()["version"] == 2, "the published version 2 is reused, not a version 3"
    assert _versions(aws_env, "e2e-killed") == [2], "and version 1 goes once 2 has taken over"
