"""Fixtures for e2e tests that drive the real Pulumi CLI against a fresh project and local backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.pulumi_harness import PulumiCLI, PulumiProject


@pytest.fixture
def pulumi_extra_env() -> dict[str, str]:
    """Extra env for the CLI and everything it spawns; override in a test module (e.g. AWS_ENDPOINT_URL)."""
    return {}


@pytest.fixture
def pulumi_project(tmp_path: Path, pulumi_extra_env: dict[str, str]) -> PulumiProject:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    # Raises (so the test errors, never skips) with how to build the CLI when it is missing.
    cli = PulumiCLI(project_dir, home=tmp_path / "pulumi", extra_env=pulumi_extra_env)
    return PulumiProject(dir=project_dir, cli=cli)
