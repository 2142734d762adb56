"""A program of many distinct layers on an empty build cache succeeds on its first `pulumi up`."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiProject

# Distinct tiny pure-Python wheels: eight layers of different content, each quick to build.
PINS = ("six==1.16.0", "idna==3.7", "toml==0.10.2", "iniconfig==2.0.0", "pluggy==1.5.0",
        "tomli==2.0.1", "zipp==3.19.2", "jmespath==1.0.1")

PROGRAM = f'''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

# The engine creates these at once, so the provider builds them in parallel threads.
for i in range({len(PINS)}):
    layer = LambdaLayerBuild(f"many{{i}}", runtime="python3.11", lock=f"layer{{i}}/requirements.lock",
                             builder="local", layer_name=f"many-{{i}}")
    pulumi.export(f"many{{i}}", {{"version": layer.version, "content_hash": layer.content_hash}})
'''


@pytest.fixture
def pulumi_extra_env(aws_env: str, tmp_path: Path) -> dict[str, str]:
    return moto_env(aws_env, tmp_path)


def test_eight_distinct_layers_on_an_empty_cache_first_up(pulumi_project: PulumiProject,
                                                          aws_env: str) -> None:
    pulumi_project.write("many-layers", PROGRAM)
    for i, pin in enumerate(PINS):
        lock = pulumi_project.dir / f"layer{i}" / "requirements.lock"
        lock.parent.mkdir()
        lock.write_text(pin + "\n")
    cli = pulumi_project.cli
    build_cache = Path(cli.env["PLL_CACHE_DIR"])
    assert not build_cache.exists(), "the build cache must start empty"
    cli.stack_init("dev")

    cli.up()  # raises with the engine's output when any create fails

    out = cli.outputs()
    hashes = {out[f"many{i}"]["content_hash"] for i in range(len(PINS))}
    assert len(hashes) == len(PINS), f"the layers are not distinct: {json.dumps(out)}"
    assert sorted(p.stem for p in (build_cache / "zips").glob("*.zip")) == sorted(hashes), \
        "every layer was built on this up (the cache started empty)"
    lam = boto3.client("lambda")
    for i in range(len(PINS)):
        assert out[f"many{i}"]["version"] == 1
        live = lam.list_layer_versions(LayerName=f"many-{i}")["LayerVersions"]
        assert [v["Version"] for v in live] == [1], f"many-{i}"
        assert out[f"many{i}"]["content_hash"] in live[0]["Description"]
