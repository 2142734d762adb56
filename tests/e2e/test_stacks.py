"""Many stacks in one account, through the real Pulumi engine and a moto server: names, ownership,
versions in use, import."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiCLI, PulumiProject
from tests.lambda_fakes import make_function

PROGRAM = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

cfg = pulumi.Config()
layer = LambdaLayerBuild(
    "deps", runtime="python3.11", lock=cfg.get("lock") or "requirements.lock", builder="local",
    layer_name=cfg.get("layer_name"), share_with=cfg.get_object("share_with") or [],
    retain_versions=cfg.get_int("retain_versions") or 0,
    force_delete=cfg.get_bool("force_delete") or False,
    opts=pulumi.ResourceOptions(import_=cfg.get("import_arn")))
for key in ("layer_name", "layer_version_arn", "version", "content_hash"):
    pulumi.export(key, getattr(layer, key))
'''


@pytest.fixture
def pulumi_extra_env(aws_env: str, tmp_path: Path) -> dict[str, str]:
    return moto_env(aws_env, tmp_path)


def _lambda() -> Any:
    return boto3.client("lambda")


def _versions(layer: str) -> list[int]:
    return sorted(v["Version"] for v in _lambda().list_layer_versions(LayerName=layer)["LayerVersions"])


def _stacks(p: PulumiProject, *names: str, lock: str = "six==1.16.0\n", **config: str) -> PulumiCLI:
    p.write("team", PROGRAM)
    (p.dir / "requirements.lock").write_text(lock)
    for name in names:
        p.cli.stack_init(name)
        for key, value in config.items():
            p.cli.run("config", "set", "--stack", name, key, "--", value)
    return p.cli


def _outputs(cli: PulumiCLI, stack: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(cli.run("stack", "output", "--json", "--stack", stack).stdout)
    return out


def _log(proc: Any) -> str:
    return str(proc.stdout) + str(proc.stderr)


def test_dev_and_prod_get_their_own_layers_and_destroying_dev_leaves_prod(
        pulumi_project: PulumiProject) -> None:
    cli = _stacks(pulumi_project, "dev", "prod", share_with=json.dumps(["111122223333"]))
    for stack in ("dev", "prod"):
        cli.up("--stack", stack)
    dev, prod = _outputs(cli, "dev"), _outputs(cli, "prod")
    assert dev["content_hash"] == prod["content_hash"]
    assert dev["layer_name"].startswith("team-dev-deps-") and \
        prod["layer_name"].startswith("team-prod-deps-"), (dev, prod)
    assert dev["layer_name"] != prod["layer_name"]
    # The default name is part of the program's inputs: the same at the next run, no diff.
    cli.run("preview", "--stack", "dev", "--expect-no-changes")

    cli.destroy("--stack", "dev")
    assert _versions(dev["layer_name"]) == []
    assert _versions(prod["layer_name"]) == [1]
    policy = _lambda().get_layer_version_policy(LayerName=prod["layer_name"], VersionNumber=1)
    assert "111122223333" in policy["Policy"]
    # prod's state still matches AWS: a preview that refreshes first finds nothing to do.
    cli.run("preview", "--stack", "prod", "--refresh", "--expect-no-changes")


def test_a_shared_layer_name_gives_each_stack_its_own_versions(
        pulumi_project: PulumiProject) -> None:
    cli = _stacks(pulumi_project, "dev", "prod", layer_name="team-shared-deps")
    cli.up("--stack", "dev")
    cli.up("--stack", "prod")
    assert (_outputs(cli, "dev")["version"], _outputs(cli, "prod")["version"]) == (1, 2), \
        "prod published its own version of the same content instead of reusing dev's"
    destroy = cli.destroy("--stack", "dev")
    assert _versions("team-shared-deps") == [2]
    assert "leaving team-shared-deps versions 2 alone" in _log(destroy), _log(destroy)
    cli.run("preview", "--stack", "prod", "--refresh", "--expect-no-changes")
    cli.destroy("--stack", "prod")
    assert _versions("team-shared-deps") == []


def test_retention_counts_and_prunes_only_this_stacks_versions(
        pulumi_project: PulumiProject) -> None:
    cli = _stacks(pulumi_project, "dev", "prod", layer_name="team-retained", retain_versions="1")
    locks = {stack: pulumi_project.dir / f"{stack}.lock" for stack in ("dev", "prod")}
    for stack, lock in locks.items():
        cli.run("config", "set", "--stack", stack, "lock", lock.name)

    def up(stack: str, pin: str) -> int:
        locks[stack].write_text(pin)
        cli.up("--stack", stack)
        return int(_outputs(cli, stack)["version"])

    assert [up("dev", "six==1.15.0\n"), up("prod", "six==1.15.0\n")] == [1, 2]
    assert [up("dev", "six==1.16.0\n"), up("prod", "six==1.16.0\n")] == [3, 4]
    assert _versions("team-retained") == [1, 2, 3, 4], "each keeps its one previous version"
    # dev's third version: its window is its own 3; its own 1 goes, prod's 2 (newer) stays.
    assert up("dev", "six==1.17.0\n") == 5
    assert _versions("team-retained") == [2, 3, 4, 5]
    cli.destroy("--stack", "dev")
    assert _versions("team-retained") == [2, 4], "destroy: dev's 5 and its retained 3"
    cli.run("preview", "--stack", "prod", "--refresh", "--expect-no-changes")


def test_a_version_an_outside_function_uses_survives_replace_and_destroy_unless_forced(
        pulumi_project: PulumiProject) -> None:
    cli = _stacks(pulumi_project, "dev", layer_name="team-used-deps")
    cli.up("--stack", "dev")
    v1 = _outputs(cli, "dev")["layer_version_arn"]
    fn = make_function(_lambda(), layers=[v1])  # made by hand, outside any stack

    (pulumi_project.dir / "requirements.lock").write_text("six==1.17.0\n")
    replace = cli.up("--stack", "dev")
    assert _versions("team-used-deps") == [1, 2], "the replaced version 1 is still in use"
    assert "warning: kept team-used-deps:1: still used by " in _log(replace)
    assert f"function:{fn}" in _log(replace), _log(replace)

    v2 = _outputs(cli, "dev")["layer_version_arn"]
    _lambda().update_function_configuration(FunctionName=fn, Layers=[v2])
    destroy = cli.destroy("--stack", "dev")
    assert _versions("team-used-deps") == [1, 2], "destroy keeps the version in use too"
    assert "warning: kept team-used-deps:2: still used by " in _log(destroy)

    # force_delete, applied by an up (which takes version 2 back: same content, same owner) ...
    cli.run("config", "set", "--stack", "dev", "force_delete", "true")
    again = cli.up("--stack", "dev")
    assert _outputs(cli, "dev")["version"] == 2 and "reused existing" in _log(again)
    # ... deletes it although the function still uses it; version 1 was nobody's to delete.
    cli.destroy("--stack", "dev")
    assert _versions("team-used-deps") == [1]


def test_import_of_a_version_published_by_hand_then_a_clean_preview(
        pulumi_project: PulumiProject, tmp_path: Path) -> None:
    cli = _stacks(pulumi_project, "dev", layer_name="team-imported")
    zip_path = tmp_path / "by-hand.zip"
    with zipfile.ZipFile(zip_path, "w") as zf:
        zf.writestr("python/six.py", "# uploaded by hand\n")
    made = _lambda().publish_layer_version(
        LayerName="team-imported", Content={"ZipFile": zip_path.read_bytes()},
        CompatibleRuntimes=["python3.11"], CompatibleArchitectures=["x86_64"],
        Description="uploaded by hand")
    assert made["Content"]["CodeSha256"] == base64.b64encode(
        hashlib.sha256(zip_path.read_bytes()).digest()).decode()
    cli.run("config", "set", "--stack", "dev", "import_arn", made["LayerVersionArn"])

    preview = cli.run("preview", "--stack", "dev")
    assert f"import: {made['LayerVersionArn']} is adopted at create" in _log(preview), \
        _log(preview)
    imported = cli.up("--stack", "dev")
    assert "carries no content-hash marker (published by hand)" in _log(imported), _log(imported)
    assert f"imported {made['LayerVersionArn']}: adopted as it is" in _log(imported)
    out = _outputs(cli, "dev")
    assert out["layer_version_arn"] == made["LayerVersionArn"] and out["version"] == 1
    assert _versions("team-imported") == [1], "import publishes nothing"
    cli.run("config", "rm", "--stack", "dev", "import_arn")
    cli.run("preview", "--stack", "dev", "--expect-no-changes")
    cli.run("preview", "--stack", "dev", "--refresh", "--expect-no-changes")
