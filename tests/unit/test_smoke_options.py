"""Smoke-test plumbing without Docker: the resource options, import discovery, Lambda's paths."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import pulumi
import pytest

from pulumi_lambda_layers.resources import check_props, diff_props
from pulumi_lambda_layers.runtimes import RUNTIMES
from pulumi_lambda_layers.smoke import lambda_environment, layer_imports
from pulumi_lambda_layers.smoke.result import smoke_result
from pulumi_lambda_layers.smoke.runner import SmokeRun
from tests.pulumi_mocks import RecordingMocks, use_mocks

PROPS: dict[str, Any] = {
    "content_hash": "a" * 64, "runtime": "python3.11", "architecture": "x86_64",
    "layer_name": "deps", "share_with": [], "retain_versions": 0, "retain_on_delete": False,
}


@pytest.mark.parametrize("value", [True, False, None, ["numpy"], ["numpy", "pandas"]])
def test_check_accepts_smoke_test_shapes(value: Any) -> None:
    assert check_props({**PROPS, "smoke_test": value}) == []


@pytest.mark.parametrize("value", ["numpy", [], ["numpy", 3], [""], 1, {"numpy": True}])
def test_check_names_smoke_test_when_misshapen(value: Any) -> None:
    failures = check_props({**PROPS, "smoke_test": value})
    assert [f.property for f in failures] == ["smoke_test"]
    assert "True, False or a non-empty list" in failures[0].reason


def test_check_smoke_image_needs_a_name_and_smoke_test() -> None:
    assert check_props({**PROPS, "smoke_test": True, "smoke_image": "img:1"}) == []
    for props in ({"smoke_test": True, "smoke_image": 7}, {"smoke_image": "img:1"},
                  {"smoke_test": False, "smoke_image": "img:1"}):
        assert [f.property for f in check_props({**PROPS, **props})] == ["smoke_image"], props


def test_smoke_options_never_change_the_layer() -> None:
    news = {**PROPS, "smoke_test": ["numpy"], "smoke_image": "img:1"}
    assert diff_props(PROPS, news).changes is False
    assert diff_props(news, {**news, "smoke_test": False, "smoke_image": None}).changes is False


@pytest.fixture
def mocked_pulumi() -> RecordingMocks:
    return use_mocks()


@pulumi.runtime.test
def test_smoke_options_reach_the_provider_but_not_the_content_hash(mocked_pulumi: RecordingMocks, tmp_path: Path) -> Any:
    from pulumi_lambda_layers import LambdaLayerBuild

    lock = tmp_path / "requirements.lock"
    lock.write_text("six==1.16.0\n")
    plain = LambdaLayerBuild("plain", runtime="python3.11", lock=str(lock))
    smoked = LambdaLayerBuild("smoked", runtime="python3.11", lock=str(lock),
                              smoke_test=["six"], smoke_image="img:1")

    def check(hashes: list[str]) -> None:
        assert len(hashes[0]) == 64 and hashes[0] == hashes[1]
        assert (mocked_pulumi.made["plain"][1]["smoke_test"], mocked_pulumi.made["plain"][1].get("smoke_image")) \
            == (False, None)
        assert (mocked_pulumi.made["smoked"][1]["smoke_test"], mocked_pulumi.made["smoked"][1]["smoke_image"]) \
            == (["six"], "img:1")

    return pulumi.Output.all(plain.content_hash, smoked.content_hash).apply(check)


def _zip(path: Path, files: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def test_python_imports_are_the_top_level_packages_and_modules(tmp_path: Path) -> None:
    sp = "python/lib/python3.11/site-packages/"
    layer = _zip(tmp_path / "layer.zip", {
        sp + "numpy/__init__.py": "", sp + "numpy/core/__init__.py": "",
        sp + "six.py": "", sp + "_cffi_backend.cpython-311-x86_64-linux-gnu.so": "",
        sp + "ujson.cpython-311-x86_64-linux-gnu.so": "",
        # A namespace package is known only from top_level.txt.
        sp + "google/protobuf/__init__.py": "", sp + "protobuf-5.0.dist-info/top_level.txt": "google\n",
        sp + "numpy-1.26.4.dist-info/METADATA": "", sp + "tests/__init__.py": "",
        sp + "bin/tool": "", sp + "data/readme.txt": "",
        # Another Python's packages are tried too, so that they fail instead of being skipped.
        "python/lib/python3.13/site-packages/yaml/__init__.py": "",
        "python/mylib/__init__.py": "", "python/helpers.py": "",
    })
    assert layer_imports(layer, RUNTIMES["python3.11"]) == [
        "google", "helpers", "mylib", "numpy", "six", "ujson", "yaml"]


def test_node_imports_are_packages_that_require_can_load(tmp_path: Path) -> None:
    nm = "nodejs/node_modules/"

    def pkg(**fields: Any) -> str:
        return json.dumps({"name": "x", "version": "1.0.0", **fields})

    layer = _zip(tmp_path / "layer.zip", {
        nm + "is-odd/package.json": pkg(main="index.js"), nm + "is-odd/index.js": "",
        nm + "@aws-sdk/client-s3/package.json": pkg(main="dist/index.js"),
        nm + "plain/package.json": pkg(), nm + "plain/index.js": "",
        nm + "cli-only/package.json": pkg(bin={"x": "cli.js"}), nm + "cli-only/cli.js": "",
        nm + "subpaths/package.json": pkg(exports={"./feature": "./feature.js"}),
        nm + "@types/node/package.json": pkg(),
        nm + "is-odd/node_modules/nested/package.json": pkg(main="i.js"),
        "nodejs/node20/node_modules/sharp/package.json": pkg(exports={".": "./lib/index.js"}),
    })
    assert layer_imports(layer, RUNTIMES["nodejs20.x"]) == [
        "@aws-sdk/client-s3", "is-odd", "plain", "sharp"]


def test_python_path_puts_function_then_layer_before_the_runtime() -> None:
    env = lambda_environment(RUNTIMES["python3.12"], "app.handler")
    assert env["PYTHONPATH"].split(":") == [
        "/var/task", "/opt/python/lib/python3.12/site-packages", "/opt/python", "/var/runtime"]
    assert env["LAMBDA_TASK_ROOT"] == "/var/task" and env["_HANDLER"] == "app.handler"
    node = lambda_environment(RUNTIMES["nodejs20.x"])
    assert node["NODE_PATH"].split(":")[:2] == ["/opt/nodejs/node20/node_modules",
                                                "/opt/nodejs/node_modules"]
    assert "PYTHONPATH" not in node


def _run(records: list[dict[str, Any]], code: int = 0) -> SmokeRun:
    return SmokeRun(code, records, [], 1.0, False)


def test_only_the_layers_own_copy_counts_as_imported() -> None:
    ok = {"kind": "import", "ok": True}
    records = [
        {**ok, "name": "numpy", "origin": "/opt/python/lib/python3.11/site-packages/numpy/__init__.py"},
        # In the layer, but another copy was loaded: the layer's is not on the path.
        {**ok, "name": "yaml", "origin": "/usr/lib/python3/dist-packages/yaml/__init__.py"},
        # In the layer, but the runtime had loaded its own first (as on Lambda): a warning.
        {**ok, "name": "enum", "origin": "/usr/lib/python3.11/enum.py", "preloaded": True},
        # Named by the user, not in the layer: wherever it comes from is fine.
        {**ok, "name": "json", "origin": "/usr/lib/python3.11/json/__init__.py"},
        {"kind": "import", "name": "broken", "ok": False, "error": "ImportError: nope\n"},
        {"kind": "done"},
    ]
    result = smoke_result(_run(records), RUNTIMES["python3.11"], "x86_64", "img",
                          {"numpy", "yaml", "enum", "broken"}, 300)
    assert result.imported == ["numpy", "enum", "json"]
    assert set(result.failed) == {"yaml", "broken"}
    assert "not from the layer" in result.failed["yaml"]
    assert result.failed["broken"] == "ImportError: nope\n"  # the traceback, as the runner sent it
    assert result.warnings and result.warnings[0].startswith("enum: the runtime's own module")


def test_a_crash_is_pinned_on_the_import_that_was_running() -> None:
    records = [{"kind": "begin", "name": "numpy"},
               {"kind": "import", "name": "numpy", "ok": True, "origin": "/opt/python/numpy"},
               {"kind": "begin", "name": "torch"}]
    result = smoke_result(_run(records, code=139), RUNTIMES["python3.11"], "x86_64", "img",
                          {"numpy", "torch"}, 300)
    assert result.imported == ["numpy"]
    assert result.failed == {"torch": "the process died here (exit code 139, SIGSEGV); see the "
                                      "output (last lines)"}
