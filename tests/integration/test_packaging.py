"""The distribution: a wheel and an sdist build from the checkout, and the wheel, installed into a
fresh venv outside the checkout, hashes and builds a layer and runs a program under Pulumi mocks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from pulumi_lambda_layers.tools import uv_command
from tests.local_index import make_wheel, serve_index

ROOT = Path(__file__).resolve().parents[2]

MOCKED_PROGRAM = '''
import json, sys
import pulumi

class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        out = dict(args.inputs)
        arn = f"arn:aws:lambda:us-east-1:123456789012:layer:{args.inputs['layer_name']}"
        out.update(layer_arn=arn, layer_version_arn=arn + ":1", version=1)
        return f"{args.name}-id", out
    def call(self, args):
        return {}

pulumi.runtime.set_mocks(Mocks(), preview=False)
from pulumi_lambda_layers import LambdaLayerBuild, LambdaLayerBuildArgs

@pulumi.runtime.test
def program():
    layer = LambdaLayerBuild("deps", LambdaLayerBuildArgs(
        runtime="python3.11", lock=sys.argv[1], layer_name="packaged"))
    return pulumi.Output.all(layer.layer_version_arn, layer.packages).apply(
        lambda v: print(json.dumps({"arn": v[0], "packages": v[1]})))

program()
'''


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{cmd} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel and sdist, built from a copy of the tracked files (what a clean clone has), so
    nothing is written into this checkout."""
    tmp = tmp_path_factory.mktemp("dist")
    source = tmp / "source"
    for name in _run(["git", "ls-files"], cwd=ROOT).splitlines():
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    out = tmp / "dist"
    _run([*uv_command(), "build", "--sdist", "--wheel", "--out-dir", str(out), str(source)],
         cwd=tmp)
    return out


def test_the_distribution_holds_the_package_data(dist: Path) -> None:
    wheel = next(dist.glob("pulumi_lambda_layers-*.whl"))
    sdist = next(dist.glob("pulumi_lambda_layers-*.tar.gz"))
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    for data in ("pulumi_lambda_layers/py.typed", "pulumi_lambda_layers/build/scripts/python.sh",
                 "pulumi_lambda_layers/build/scripts/prelude.sh",
                 "pulumi_lambda_layers/smoke/scripts/prelude.sh"):
        assert data in names, f"{data} is not in the wheel"
    assert not any(n.startswith(("tests/", "examples/", "bench/")) for n in names)
    with tarfile.open(sdist) as tf:
        assert any(n.endswith("/src/pulumi_lambda_layers/build/scripts/node.sh")
                   for n in tf.getnames())


def _interpreter(version: str) -> str:
    """An interpreter of that version on this machine: this one, pyenv's, or one on PATH."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    candidates = sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))
    found = [str(c) for c in candidates] or [w for w in [shutil.which(f"python{version}")]
                                             if w and "/shims/" not in w]
    assert found, (f"no Python {version} on this machine, which pyproject's classifiers name: "
                   f"install it (pyenv install {version}, or apt install python{version})")
    return found[-1]


# Every Python the classifiers name; found on this machine (PATH, pyenv shims), never downloaded.
@pytest.mark.parametrize("python", ["3.11", "3.12", "3.13"])
def test_the_wheel_installs_and_works_outside_the_checkout(dist: Path, python: str,
                                                           tmp_path: Path) -> None:
    uv = uv_command()
    wheel = next(dist.glob("pulumi_lambda_layers-*.whl"))
    # A fresh venv elsewhere, its dependencies from the index, run from a folder of its own: what
    # it imports is the wheel's copy, never the checkout's.
    venv = tmp_path / "venv"
    _run([*uv, "venv", "--no-python-downloads", "--python", _interpreter(python), str(venv)],
         cwd=tmp_path)
    _run([*uv, "pip", "install", "--python", str(venv / "bin" / "python"), str(wheel)],
         cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PLL_CACHE_DIR"] = str(tmp_path / "cache")
    where = _run([str(venv / "bin" / "python"), "-c",
                  "import pulumi_lambda_layers as p; print(p.__file__)"], cwd=tmp_path, env=env)
    assert where.startswith(str(venv)), where

    make_wheel(tmp_path / "wheels", "pllpackaged", "1.0.0")
    with serve_index(tmp_path / "wheels") as index:
        lock = tmp_path / "app" / "requirements.lock"
        lock.parent.mkdir()
        lock.write_text(f"--index-url {index.url}\npllpackaged==1.0.0\n")
        cli = str(venv / "bin" / "lambda-layers")
        hashed = json.loads(_run([cli, "hash", "--runtime", "python3.11", "--builder", "local",
                                  "--json", str(lock)],
                                 cwd=tmp_path, env=env))
        assert hashed["packages"] == {"pllpackaged": "1.0.0"}
        built = json.loads(_run([cli, "build", "--runtime", "python3.11", "--builder", "local",
                                 str(lock), "-o", str(tmp_path / "layer.zip"), "--json"],
                                cwd=tmp_path, env=env))
        assert built["content_hash"] == hashed["content_hash"] and built["validation"]["ok"]
        with zipfile.ZipFile(tmp_path / "layer.zip") as zf:
            assert "python/lib/python3.11/site-packages/pllpackaged/__init__.py" in zf.namelist()

        program = tmp_path / "program.py"
        program.write_text(MOCKED_PROGRAM)
        out = _run([str(venv / "bin" / "python"), str(program), str(lock)], cwd=tmp_path,
                   env=env)
    assert json.loads(out.strip().splitlines()[-1]) == {
        "arn": "arn:aws:lambda:us-east-1:123456789012:layer:packaged:1",
        "packages": {"pllpackaged": "1.0.0"}}
