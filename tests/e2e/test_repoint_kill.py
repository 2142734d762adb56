"""A deploy killed half-way through a re-point (one function on the new layer version, one still
on the old) recovers on the next `up`: every function ends on the new version, the old one goes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.conftest import write
from tests.e2e.conftest import moto_env
from tests.e2e.pulumi_harness import PulumiCLI, PulumiProject
from tests.lambda_fakes import layers_of, make_function, uid

PROGRAM = '''
from pulumi_lambda_layers import LambdaLayerBuild, LayerAttachment

layer = LambdaLayerBuild("deps", runtime="python3.12", source_dir="layer", layer_name={layer!r})
LayerAttachment("legacy", layer=layer, functions={functions!r})
'''


@pytest.fixture
def pulumi_extra_env(cross_env: str, tmp_path: Path) -> dict[str, str]:
    return moto_env(cross_env, tmp_path)


def _arn(layer: str, version: int) -> str:
    return f"arn:aws:lambda:us-east-1:123456789012:layer:{layer}:{version}"


def _versions(lam: Any, layer: str) -> list[int]:
    return sorted(v["Version"] for v in lam.list_layer_versions(LayerName=layer)["LayerVersions"])


def _set_dependency(project: Path, value: str) -> None:
    # A folder layer: no resolution, so the test spends its time on the engine, not on PyPI.
    write(project / "layer" / "python" / "pll_marker.py", f"VALUE = {value!r}\n")


def _kill_between_functions(cli: PulumiCLI, lam: Any, first: str, second: str,
                            new: str) -> None:
    """Run `up` and kill the engine and provider while the re-point hangs between the two
    functions: `first` already on `new`, `second` not yet."""
    cmd = [str(cli.bin_dir / "pulumi"), "--non-interactive", "up", "--yes", "--skip-preview"]
    env = {**cli.env, "PLL_FAULT_INJECT": "between-functions"}
    proc = subprocess.Popen(cmd, cwd=cli.project_dir, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while new not in layers_of(lam, first):
            assert proc.poll() is None, "up ended before re-pointing the first function"
            assert time.monotonic() < deadline, f"{first} not on {new} within 300 s"
            time.sleep(0.05)
        time.sleep(1)
        assert proc.poll() is None, "up finished although the re-point should hang"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the engine and the provider, hanging
        except ProcessLookupError:
            pass  # already ended: the assertion above says why
        proc.wait()


def test_killed_between_two_function_updates_then_up_finishes_the_repoint(
        pulumi_project: PulumiProject, cross_env: str) -> None:
    lam = boto3.client("lambda")
    first, second = make_function(lam), make_function(lam)
    layer = uid("pll-e2e-kill")
    pulumi_project.write("repoint-kill", PROGRAM.format(layer=layer, functions=[first, second]))
    _set_dependency(pulumi_project.dir, "one")
    cli = pulumi_project.cli
    cli.stack_init("dev")
    cli.up()
    v1, v2 = _arn(layer, 1), _arn(layer, 2)
    assert layers_of(lam, first) == layers_of(lam, second) == [v1]

    _set_dependency(pulumi_project.dir, "two")
    _kill_between_functions(cli, lam, first, second, v2)

    assert (layers_of(lam, first), layers_of(lam, second)) == ([v2], [v1]), "killed half-way"
    assert _versions(lam, layer) == [1, 2]
    state = json.loads(cli.run("stack", "export").stdout)["deployment"]
    assert state.get("pending_operations"), "the kill came after the update ended: proves nothing"
    # What a user does after a killed deploy: `cancel` (on a file backend it removes the lock the
    # killed engine left), refresh, clearing what it left pending, and deploy again.
    cli.run("cancel", "--yes")
    cli.run("refresh", "--yes", "--clear-pending-creates")
    cli.up()

    assert layers_of(lam, first) == layers_of(lam, second) == [v2]
    assert _versions(lam, layer) == [2], "the old version goes once no function uses it"
    assert cli.preview_changes() == {"same": 3}
