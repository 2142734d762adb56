"""A Node.js layer through the same LambdaLayerBuild on the real engine: npm packages in the diff."""

from __future__ import annotations

import zipfile
from pathlib import Path

import boto3
import pytest

from tests.conftest import npm_locked_project
from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiCLI, PulumiProject

PROGRAM = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

layer = LambdaLayerBuild("node-deps", runtime="nodejs20.x", architecture="arm64",
                         package_json="layer/package.json", builder="local",
                         layer_name=pulumi.Config().require("layer_name"), frozen=True)
for key in ("layer_version_arn", "version", "packages", "runtimes", "architectures", "code_sha256"):
    pulumi.export(key, getattr(layer, key))
'''


@pytest.fixture
def pulumi_extra_env(aws_env: str, tmp_path: Path) -> dict[str, str]:
    return moto_env(aws_env, tmp_path)


def test_node_layer_publishes_and_preview_lists_npm_versions(pulumi_project: PulumiProject,
                                                             aws_env: str) -> None:
    name = "e2e-node-deps"
    pulumi_project.write("node-layer-e2e", PROGRAM)
    npm_locked_project(pulumi_project.dir / "layer", {"is-odd": "2.0.0"})
    cli: PulumiCLI = pulumi_project.cli
    cli.stack_init("dev")
    cli.config_set("layer_name", name)
    cli.up()
    out = cli.outputs()
    assert out["version"] == 1
    assert out["packages"] == {"is-number": "4.0.0", "is-odd": "2.0.0"}
    assert out["runtimes"] == ["nodejs20.x"] and out["architectures"] == ["arm64"]
    lam = boto3.client("lambda", endpoint_url=aws_env, region_name="us-east-1")
    live = lam.get_layer_version(LayerName=name, VersionNumber=1)
    assert live["Content"]["CodeSha256"] == out["code_sha256"]
    assert live["CompatibleRuntimes"] == ["nodejs20.x"]
    assert live["CompatibleArchitectures"] == ["arm64"]

    # A bump of the direct dependency moves its transitive one too; the diff shows both.
    npm_locked_project(pulumi_project.dir / "layer", {"is-odd": "3.0.1"})
    diff = cli.preview(diff=True).stdout
    assert "+-" in diff, diff
    assert '"2.0.0" => "3.0.1"' in diff and '"4.0.0" => "6.0.0"' in diff, diff
    cli.up()
    out2 = cli.outputs()
    assert out2["version"] == 2 and out2["packages"] == {"is-number": "6.0.0", "is-odd": "3.0.1"}
    assert [v["Version"] for v in lam.list_layer_versions(LayerName=name)["LayerVersions"]] == [2]
    cli.destroy()


def test_zip_layout_of_a_node_layer_is_nodejs_node_modules(tmp_path: Path) -> None:
    # The layout of the layer above, on the bytes the resource publishes: what Node.js searches
    # under /opt (require() through NODE_PATH=/opt/nodejs/node_modules).
    from pulumi_lambda_layers import make_spec
    from pulumi_lambda_layers.build.pipeline import build_layer

    npm_locked_project(tmp_path / "layer", {"is-odd": "3.0.1"})
    result = build_layer(make_spec(runtime="nodejs20.x", architecture="arm64", builder="local",
                                   package_json=str(tmp_path / "layer/package.json"), frozen=True),
                         tmp_path / "layer.zip", log=lambda _m: None)
    with zipfile.ZipFile(result.zip.path) as zf:
        names = zf.namelist()
    assert "nodejs/node_modules/is-odd/package.json" in names
    assert all(n.startswith("nodejs/node_modules/") for n in names), names[:5]
