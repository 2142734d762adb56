"""The example programs run under Pulumi's mocks: their pulumi_aws wiring follows the layer ARN."""

from __future__ import annotations

import json
import os
import runpy
import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest

from tests.pulumi_mocks import RecordingMocks, use_mocks

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def mocks() -> RecordingMocks:
    return use_mocks()


def _run_example(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pulumi.Output[Any]:
    """Run the program; the returned output resolves once its top-level resources exist."""
    copy = tmp_path / name
    shutil.copytree(EXAMPLES / name, copy)
    monkeypatch.chdir(copy)
    names = runpy.run_path(str(copy / "__main__.py"), run_name="__main__")
    # Resources the program keeps at top level, alone or in a dict or list (one made in a loop
    # and bound to a reused name would be missed, and checked before the mocks had seen it).
    values = [v for x in names.values()
              for v in (x.values() if isinstance(x, dict) else x if isinstance(x, list) else [x])]
    made = [v for v in values if isinstance(v, pulumi.Resource)]
    return pulumi.Output.all(*[r.urn for r in made])


@pulumi.runtime.test
def test_node_sharp_example_two_small_functions_share_one_layer(
        mocks: RecordingMocks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = _run_example("node-sharp-layer", tmp_path, monkeypatch)

    def check(_: Any) -> None:
        layer_type, layer_inputs = mocks.made["sharp"]
        assert layer_type.endswith("LambdaLayerBuild")
        assert layer_inputs["architecture"] == "arm64"
        assert "@img/sharp-linux-arm64" in layer_inputs["packages"]
        assert "@img/sharp-linux-x64" not in layer_inputs["packages"]
        for fn in ("thumbnail", "medium"):
            typ, inputs = mocks.made[fn]
            assert typ == "aws:lambda/function:Function"
            assert inputs["layers"] == ["arn:aws:lambda:us-east-1:123456789012:layer:sharp-arm64:1"]
            assert os.path.getsize(tmp_path / "node-sharp-layer" / "build" / f"{fn}.zip") < 4096

    return done.apply(check)


@pulumi.runtime.test
def test_python_example_function_uses_the_numpy_layer(
        mocks: RecordingMocks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = _run_example("python-layer", tmp_path, monkeypatch)

    def check(_: Any) -> None:
        _, layer_inputs = mocks.made["deps"]
        assert layer_inputs["packages"]["numpy"] == "1.26.4"
        _, fn_inputs = mocks.made["api"]
        assert fn_inputs["layers"] == ["arn:aws:lambda:us-east-1:123456789012:layer:python-layer-deps:1"]
        assert fn_inputs["architectures"] == ["arm64"]

    return done.apply(check)


@pulumi.runtime.test
def test_shared_layer_consumer_attaches_the_producers_version_to_external_functions(
        mocks: RecordingMocks, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    version_arn = "arn:aws:lambda:us-east-1:111122223333:layer:shared-deps:7"
    mocks.stack_outputs = {"shared_layer": {
        "layer_arn": version_arn.rsplit(":", 1)[0], "layer_version_arn": version_arn,
        "version": 7, "runtimes": ["python3.12"], "architectures": ["x86_64"]}}
    role = "arn:aws:iam::222233334444:role/deployer"
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({
        "project:producer_stack": "organization/shared-layer-producer/prod",
        "project:functions": '["billing-worker"]', "project:assume_role_arn": role}))
    done = _run_example("shared-layer/consumer", tmp_path, monkeypatch)

    def check(_: Any) -> None:
        typ, inputs = mocks.made["external"]
        assert typ.endswith("LayerAttachment")
        assert inputs["layer_version_arn"] == version_arn
        assert inputs["functions"] == ["billing-worker"] and inputs["assume_role_arn"] == role

    return done.apply(check)
