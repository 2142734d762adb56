"""Fixtures for e2e tests that drive the real Pulumi CLI against a fresh project and local backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.pulumi_harness import PulumiCLI, PulumiProject


@pytest.fixture
def pulumi_extra_env() -> dict[str, str]:
    """Extra env for the CLI and everything it spawns; override in a test module (e.g. AWS_ENDPOINT_URL)."""
    return {}


def moto_env(endpoint: str, tmp_path: Path) -> dict[str, str]:
    """What a Pulumi program (and its provider) needs to reach moto, with a build cache of its own."""
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
            "PLL_CACHE_DIR": str(tmp_path / "build-cache")}


@pytest.fixture
def pulumi_project(tmp_path: Path, pulumi_extra_env: dict[str, str]) -> PulumiProject:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    # Raises (so the test errors, never skips) with how to build the CLI when it is missing.
    cli = PulumiCLI(project_dir, home=tmp_path / "pulumi", extra_env=pulumi_extra_env)
    return PulumiProject(dir=project_dir, cli=cli)
