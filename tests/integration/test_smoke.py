"""Smoke tests in real containers (the local stand-in images, arm64 under qemu), the `test` command,
and the LambdaLayerBuild provider refusing to publish a layer that fails its smoke test."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from pulumi_lambda_layers import SpecError, make_spec
from pulumi_lambda_layers.build.pipeline import build_layer
from pulumi_lambda_layers.cli import main as cli
from pulumi_lambda_layers.errors import SmokeError
from pulumi_lambda_layers.resources import LayerBuildProvider, program_time_fingerprint
from pulumi_lambda_layers.smoke.run import smoke_test
from tests.conftest import write
from tests.testbed_images import require_image

SITE = "/opt/python/lib/python3.11/site-packages/"
APP = '''import numpy as np


def handler(event, context):
    return {"sum": int(np.arange(event["n"]).sum()), "numpy": np.__file__,
            "request_id": context.aws_request_id}


def broken(event, context):
    raise ValueError("no luck with %r" % (event,))
'''


def _quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="module")
def layers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """numpy layers built once by the project's pipeline. The local builder (uv, wheels for the
    target) gives the same files as the Docker one (test_build proves it) in seconds, where a
    Docker build for arm64 would spend minutes under qemu."""
    src, out = tmp_path_factory.mktemp("smoke-src"), tmp_path_factory.mktemp("smoke-out")
    targets = {"py311-x86_64": ("python3.11", "x86_64", "numpy==1.26.4\n"),
               "py311-arm64": ("python3.11", "arm64", "numpy==1.26.4\n"),
               "py313-x86_64": ("python3.13", "x86_64", "numpy==2.2.6\n")}
    zips = {}
    for key, (runtime, arch, lock) in targets.items():
        spec = make_spec(runtime=runtime, architecture=arch, lock=str(write(src / key, lock)),
                         builder="local")
        zips[key] = build_layer(spec, out / f"{key}.zip", log=_quiet).zip.path
    return zips


@pytest.fixture(scope="module")
def function_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("function")
    write(root / "app.py", APP).chmod(0o644)  # Lambda's sandbox user must be able to read it
    return root


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_numpy_layer_imports_from_opt(layers: dict[str, Path], arch: str) -> None:
    result = smoke_test(layers[f"py311-{arch}"], "python3.11", arch,
                        image=require_image("python3.11", arch), log=_quiet)
    assert result.ok and result.imported == ["numpy"] and result.failed == {}
    assert result.origins["numpy"] == SITE + "numpy/__init__.py"
    assert (result.runtime, result.architecture) == ("python3.11", arch)


def test_layer_for_another_python_minor_fails_clearly(layers: dict[str, Path]) -> None:
    with pytest.raises(SmokeError) as err:
        smoke_test(layers["py313-x86_64"], "python3.11", "x86_64",
                   image=require_image("python3.11", "x86_64"), log=_quiet)
    assert list(err.value.result.failed) == ["numpy"]
    text = str(err.value)
    assert "1 of 1 import failed" in text
    assert "ModuleNotFoundError: No module named 'numpy'" in text
    # ...and why: the validator's findings name the Python folder and the CPython 3.13 modules.
    assert "packages are in the Python 3.13 folder, but python3.11 runs Python 3.11" in text
    assert "extension module built for CPython 3.13" in text


def test_x86_64_layer_fails_on_arm64(layers: dict[str, Path]) -> None:
    with pytest.raises(SmokeError) as err:
        smoke_test(layers["py311-x86_64"], "python3.11", "arm64",
                   image=require_image("python3.11", "arm64"), log=_quiet)
    result = err.value.result
    assert result.imported == [] and list(result.failed) == ["numpy"]
    assert "No module named 'numpy.core._multiarray_umath'" in result.failed["numpy"]
    text = str(err.value)
    assert "for python3.11 on arm64" in text and "Traceback" in text
    assert "[elf-machine]" in text and "built for x86-64" in text


def test_image_that_cannot_stand_in_for_the_runtime_is_bad_input(layers: dict[str, Path]) -> None:
    image = require_image("python3.11", "x86_64")
    with pytest.raises(SpecError, match="(?s)image: .*the image has Python 3.11 but the runtime is "
                                        "Python 3.13.*public.ecr.aws/lambda/python:3.13"):
        smoke_test(layers["py313-x86_64"], "python3.13", "x86_64", image=image, log=_quiet)
    with pytest.raises(SpecError, match="the image runs aarch64 code but the layer is for x86_64"):
        smoke_test(layers["py311-x86_64"], "python3.11", "x86_64",
                   image=require_image("python3.11", "arm64"), log=_quiet)


def test_handler_using_the_layer_returns_its_result(layers: dict[str, Path],
                                                    function_dir: Path) -> None:
    image = require_image("python3.11", "x86_64")
    result = smoke_test(layers["py311-x86_64"], "python3.11", "x86_64", handler="app.handler",
                        event={"n": 5}, function_dir=function_dir, image=image, log=_quiet)
    assert result.handler_result == {"sum": 10, "numpy": SITE + "numpy/__init__.py",
                                     "request_id": "00000000-0000-4000-8000-000000000000"}
    with pytest.raises(SmokeError) as err:
        smoke_test(layers["py311-x86_64"], "python3.11", "x86_64", imports=[],
                   handler="app.broken", event=[1], function_dir=function_dir, image=image,
                   log=_quiet)
    assert list(err.value.result.failed) == ["handler app.broken"]
    text = str(err.value)
    assert "the handler app.broken failed" in text
    assert 'File "/var/task/app.py", line 10, in broken' in text
    assert "ValueError: no luck with [1]" in text


def test_cli_test_exit_codes_and_json(layers: dict[str, Path], function_dir: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    zip_path, image = str(layers["py311-x86_64"]), require_image("python3.11", "x86_64")
    target = ["test", zip_path, "--runtime", "python3.11", "--arch", "x86_64", "--image", image]
    event = write(tmp_path / "event.json", '{"n": 4}')

    assert cli([*target, "--handler", "app.handler", "--event", str(event), "--function-dir",
                str(function_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["imported"] == ["numpy"]
    assert data["handler_result"]["sum"] == 6

    assert cli([*target, "--import", "numpy", "--import", "pll_missing_module"]) == 1
    captured = capsys.readouterr()
    assert "error: smoke test of py311-x86_64.zip" in captured.err
    assert "1 of 2 imports failed" in captured.err
    assert "ModuleNotFoundError: No module named 'pll_missing_module'" in captured.err

    assert cli([*target, "--import", "pll_missing_module", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["error"] == "smoke" and data["report"]["ok"] is False
    assert "No module named 'pll_missing_module'" in data["report"]["failed"]["pll_missing_module"]

    assert cli([*target, "--event", str(event)]) == 2  # an event without a handler: bad input
    assert "--event: is only used with --handler" in capsys.readouterr().err


def test_hanging_import_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    layer = tmp_path / "hang.zip"
    entry = zipfile.ZipInfo("python/hang.py")
    entry.external_attr = 0o644 << 16  # writestr's default 0600 is unreadable to Lambda's user
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr(entry, "import time\ntime.sleep(600)\n")
    with pytest.raises(SmokeError) as err:
        smoke_test(layer, "python3.11", "x86_64", image=require_image("python3.11", "x86_64"),
                   timeout_s=3, log=_quiet)
    assert err.value.result.failed == {"hang": "did not finish within 3 s; see the output "
                                               "(last lines)"}
    assert err.value.result.duration_s < 30


def test_layer_is_read_only_at_opt_as_on_lambda(tmp_path: Path) -> None:
    # Lambda mounts layers read-only: a package that writes next to itself at import crashes
    # there, so it must fail here too, with the error it gets on Lambda.
    layer = tmp_path / "writer.zip"
    entry = zipfile.ZipInfo("python/writer.py")
    entry.external_attr = 0o644 << 16
    with zipfile.ZipFile(layer, "w") as zf:
        zf.writestr(entry, "import os\nopen(os.path.join(os.path.dirname(__file__), 'state'), 'w')\n")
    with pytest.raises(SmokeError) as err:
        smoke_test(layer, "python3.11", "x86_64", image=require_image("python3.11", "x86_64"),
                   log=_quiet)
    assert list(err.value.result.failed) == ["writer"]
    assert "Read-only file system: '/opt/python/state'" in str(err.value)


def test_default_images_are_the_aws_lambda_base_images() -> None:
    from pulumi_lambda_layers.runtimes import get_runtime

    assert get_runtime("python3.12").smoke_image() == "public.ecr.aws/lambda/python:3.12"
    assert get_runtime("nodejs22.x").smoke_image() == "public.ecr.aws/lambda/nodejs:22"


def test_node_layer_imports_and_handler(tmp_path: Path) -> None:
    manifest = write(tmp_path / "src/package.json", json.dumps(
        {"name": "l", "version": "1.0.0", "dependencies": {"is-odd": "3.0.1"}}))
    layer = build_layer(make_spec(runtime="nodejs20.x", package_json=str(manifest),
                                  builder="local"), tmp_path / "node.zip", log=_quiet)
    fn = write(tmp_path / "fn/index.js", "const isOdd = require('is-odd');\n"
               "exports.handler = async (event) => ({ odd: isOdd(event.n) });\n")
    fn.chmod(0o644)
    result = smoke_test(layer.zip.path, "nodejs20.x", "x86_64", handler="index.handler",
                        event={"n": 3}, function_dir=fn.parent,
                        image=require_image("nodejs20.x", "x86_64"), log=_quiet)
    assert result.imported == ["is-number", "is-odd"]
    assert result.origins["is-odd"] == "/opt/nodejs/node_modules/is-odd/index.js"
    assert result.handler_result == {"odd": True}


# --- LambdaLayerBuild: the smoke test gates publish -------------------------------------------

GOOD = {"python/lib/python3.11/site-packages/greet/__init__.py": "",
        "python/lib/python3.11/site-packages/greet/extra.py": "def hello():\n    return 'hi'\n"}
# A module that imports something neither the layer nor the runtime has: builds and validates fine.
BAD = {"python/lib/python3.11/site-packages/report.py": "import pll_absent_dependency\n"}


def _props(tmp_path: Path, files: dict[str, str], **extra: Any) -> dict[str, Any]:
    """What LambdaLayerBuild hands its provider for a source_dir layer."""
    src = tmp_path / "layer"
    for name, text in files.items():
        write(src / name, text)
    args = {"runtime": "python3.11", "architecture": "x86_64", "source_dir": str(src),
            "builder": "auto"}
    content_hash, packages, build, errors = program_time_fingerprint(args)
    assert errors == []
    return {"content_hash": content_hash, "packages": packages, "runtime": "python3.11",
            "architecture": "x86_64", "layer_name": f"pll-smoke-{uuid.uuid4().hex[:12]}",
            "description": "smoke", "share_with": [], "retain_versions": 0,
            "retain_on_delete": False, "build": build, "smoke_test": True,
            "smoke_image": require_image("python3.11", "x86_64"), **extra}


def _versions(layer_name: str) -> list[int]:
    found = boto3.client("lambda").list_layer_versions(LayerName=layer_name)["LayerVersions"]
    return [v["Version"] for v in found]


@pytest.fixture()
def build_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_provider_publishes_nothing_when_the_smoke_test_fails(
        aws_env: str, build_cache: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    props = _props(tmp_path, {**GOOD, **BAD})
    with pytest.raises(SmokeError) as err:
        LayerBuildProvider().create(props)
    assert "No module named 'pll_absent_dependency'" in str(err.value)
    assert f'File "{SITE}report.py", line 1' in str(err.value)
    assert _versions(props["layer_name"]) == []
    # The zip is cached by then; the retry takes it from the cache and is still refused.
    capsys.readouterr()
    with pytest.raises(SmokeError):
        LayerBuildProvider().create(props)
    assert "cache hit" in capsys.readouterr().err
    assert _versions(props["layer_name"]) == []


def test_provider_publishes_when_the_smoke_test_passes(aws_env: str, build_cache: Path,
                                                        tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    props = _props(tmp_path, GOOD, smoke_test=["greet.extra"])  # a list: just these names
    created = LayerBuildProvider().create(props)
    assert created.outs["version"] == 1 and _versions(props["layer_name"]) == [1]
    assert "smoke: import greet.extra ok" in capsys.readouterr().err
