"""examples/shared-layer: the producer shares a layer; the consumer reads it via a StackReference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest

from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiCLI, write_python_project

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shared-layer"


@pytest.fixture
def env(aws_env: str, tmp_path: Path) -> dict[str, str]:
    return moto_env(aws_env, tmp_path)


def _example(part: str, tmp_path: Path, env: dict[str, str]) -> PulumiCLI:
    src = EXAMPLE / part
    project = tmp_path / part
    shutil.copytree(src, project)
    name = next(line.split(":", 1)[1].strip() for line in (src / "Pulumi.yaml").read_text().splitlines()
                if line.startswith("name:"))
    write_python_project(project, name, (src / "__main__.py").read_text())
    # One backend for both stacks, as in one organisation.
    return PulumiCLI(project, home=tmp_path / "pulumi", extra_env=env)


def test_consumer_reads_producer_layer_and_checks_architecture(tmp_path: Path, env: dict[str, str],
                                                              aws_env: str) -> None:
    producer = _example("producer", tmp_path, env)
    producer.stack_init("prod")
    producer.config_set("builder", "local")
    producer.config_set("layer_name", "e2e-shared")
    producer.up()
    shared = producer.outputs()["shared_layer"]
    assert shared["architectures"] == ["x86_64"] and shared["version"] == 1

    policy = boto3.client("lambda").get_layer_version_policy(LayerName="e2e-shared", VersionNumber=1)
    assert "222233334444" in policy["Policy"], "the consumer account may use the version"

    consumer = _example("consumer", tmp_path, env)
    consumer.stack_init("dev")
    consumer.config_set("producer_stack", "organization/shared-layer-producer/prod")
    consumer.up()
    assert consumer.outputs()["layer_version_arn"] == shared["layer_version_arn"]

    consumer.config_set("architecture", "arm64")
    failed = consumer.run("up", "--yes", "--skip-preview", check=False)
    assert failed.returncode != 0
    assert "built for x86_64, not arm64" in failed.stdout + failed.stderr

    # A new producer version reaches the consumer on its next up.
    consumer.config_set("architecture", "x86_64")
    lock = producer.project_dir / "requirements.lock"
    lock.write_text(lock.read_text().replace("idna==3.10", "idna==3.9"))
    producer.up()
    # Version 2 came from a replace: it is shared too, and version 1 stays (retain_versions=1).
    policy = boto3.client("lambda").get_layer_version_policy(LayerName="e2e-shared", VersionNumber=2)
    assert "222233334444" in policy["Policy"], "the replace published an unshared version"
    versions = boto3.client("lambda").list_layer_versions(LayerName="e2e-shared")["LayerVersions"]
    assert sorted(v["Version"] for v in versions) == [1, 2]
    consumer.up()
    assert consumer.outputs()["layer_version_arn"].endswith(":e2e-shared:2")
    assert json.loads(json.dumps(producer.outputs()["shared_layer"]))["version"] == 2
