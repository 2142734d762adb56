"""Programs with several layers, and smoke tests, on the real engine: what `pulumi up` does and shows."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from tests.conftest import write
from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiProject
from tests.testbed_images import require_image


@pytest.fixture
def pulumi_extra_env(aws_env: str, tmp_path: Path) -> dict[str, str]:
    # One build at a time, so a second layer that reaches the provider while the first builds
    # has to say it waits: proof that the engine hands the provider both creates at once.
    return {**moto_env(aws_env, tmp_path), "PLL_PARALLEL_BUILDS": "1"}


TWO_LAYERS = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

for arch in ("x86_64", "arm64"):
    layer = LambdaLayerBuild(f"deps-{arch}", runtime="python3.11", architecture=arch,
                             lock="requirements.lock", builder="local",
                             layer_name=f"e2e-two-{arch}")
    pulumi.export(f"version_{arch}", layer.version)
'''

SMOKED = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

layer = LambdaLayerBuild("smoked", runtime="python3.11", source_dir="layer", builder="local",
                         layer_name="e2e-smoked", smoke_test=True,
                         smoke_image=pulumi.Config().require("smoke_image"))
pulumi.export("version", layer.version)
'''


def _versions(endpoint: str, layer: str) -> list[int]:
    lam = boto3.client("lambda", endpoint_url=endpoint, region_name="us-east-1")
    return sorted(v["Version"] for v in lam.list_layer_versions(LayerName=layer)["LayerVersions"])


def test_layers_of_one_program_reach_the_build_slots_together(pulumi_project: PulumiProject,
                                                              aws_env: str) -> None:
    pulumi_project.write("two-layers-e2e", TWO_LAYERS)
    write(pulumi_project.dir / "requirements.lock", "numpy==1.26.4\n")
    cli = pulumi_project.cli
    cli.stack_init("dev")
    up = cli.up()
    log = up.stdout + up.stderr
    assert "waiting for a build slot (1 at once here" in log, log
    assert cli.outputs() == {"version_x86_64": 1, "version_arm64": 1}
    assert _versions(aws_env, "e2e-two-x86_64") == [1] == _versions(aws_env, "e2e-two-arm64")


def test_failing_smoke_test_stops_up_and_publishes_nothing(pulumi_project: PulumiProject,
                                                           aws_env: str) -> None:
    pulumi_project.write("smoked-e2e", SMOKED)
    site = pulumi_project.dir / "layer/python/lib/python3.11/site-packages"
    write(site / "report.py", "import pll_absent_dependency\n").chmod(0o644)
    cli = pulumi_project.cli
    cli.stack_init("dev")
    cli.config_set("smoke_image", require_image("python3.11", "x86_64"))
    proc = cli.run("up", "--yes", "--skip-preview", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    assert "No module named 'pll_absent_dependency'" in text, text
    assert 'File "/opt/python/lib/python3.11/site-packages/report.py", line 1' in text, text
    assert _versions(aws_env, "e2e-smoked") == []

    # Fixed: the same up passes the smoke test and publishes.
    write(site / "report.py", "import json\n").chmod(0o644)
    cli.up()
    assert cli.outputs()["version"] == 1


BROKEN = '''
import pulumi
from pulumi_lambda_layers import LambdaLayerBuild

layer = LambdaLayerBuild("broken", runtime="python3.11", lock="requirements.lock",
                         builder="local", layer_name="e2e-broken")
pulumi.export("version", layer.version)
'''


def test_failing_build_shows_the_message_without_a_traceback(pulumi_project: PulumiProject,
                                                             aws_env: str) -> None:
    pulumi_project.write("broken-e2e", BROKEN)
    write(pulumi_project.dir / "requirements.lock", "pll-no-such-package-0d1f==1.0.0\n")
    cli = pulumi_project.cli
    cli.stack_init("dev")
    proc = cli.run("up", "--yes", "--skip-preview", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0, text
    # The step that failed, the builder and the target, then what uv said.
    assert "install (local, python3.11 x86_64): uv pip install: exited with" in text, text
    assert "pll-no-such-package-0d1f" in text, text
    # The dynamic provider host would print the Python traceback before it: not for a LayerError.
    assert "Traceback" not in text and "pulumi_lambda_layers/" not in text, text
    assert _versions(aws_env, "e2e-broken") == []
