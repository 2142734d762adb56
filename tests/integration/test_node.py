"""Node.js layers: sharp's native binary per architecture, and ES modules that can see the layer."""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from pulumi_lambda_layers import SpecError, make_spec
from pulumi_lambda_layers.build.pipeline import BuildResult, build_layer
from pulumi_lambda_layers.cli import main as cli
from pulumi_lambda_layers.function_zip import package_function
from pulumi_lambda_layers.runtimes import RUNTIMES
from pulumi_lambda_layers.smoke.run import smoke_test
from pulumi_lambda_layers.validate import inspect_zip
from tests.conftest import docker_build_options, write
from tests.testbed_images import require_docker, require_image

SHARP = {"name": "thumbs", "version": "1.0.0", "dependencies": {"sharp": "0.34.5"}}
HANDLER = """import sharp from 'sharp';
export const handler = async () => {
  const png = await sharp({create: {width: 64, height: 48, channels: 3,
                                    background: {r: 200, g: 0, b: 0}}}).png().toBuffer();
  const small = await sharp(png).resize(16).toBuffer({resolveWithObject: true});
  return {sharp: sharp.versions.sharp, width: small.info.width, height: small.info.height};
};
"""


def _sharp_manifest(root: Path) -> Path:
    return write(root / "package.json", json.dumps(SHARP))


@pytest.fixture(scope="module")
def sharp_layers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuildResult]:
    src = tmp_path_factory.mktemp("sharp-src")
    manifest = _sharp_manifest(src)
    out = tmp_path_factory.mktemp("sharp-out")
    return {arch: build_layer(make_spec(runtime="nodejs20.x", architecture=arch,
                                        package_json=str(manifest), builder="local"),
                              out / f"sharp-{arch}.zip", log=lambda _m: None)
            for arch in ("x86_64", "arm64")}


def _node_binaries(zip_path: Path) -> dict[str, int]:
    with zipfile.ZipFile(zip_path) as zf:
        found = {}
        for name in zf.namelist():
            if name.endswith(".node"):
                found[name] = struct.unpack("<H", zf.read(name)[18:20])[0]
        return found


@pytest.mark.parametrize("arch,pkg,machine", [("x86_64", "sharp-linux-x64", 62),
                                              ("arm64", "sharp-linux-arm64", 183)])
def test_sharp_platform_package_matches_architecture(sharp_layers: dict[str, BuildResult],
                                                     arch: str, pkg: str, machine: int) -> None:
    result = sharp_layers[arch]
    assert result.report.ok, str(result.report)
    assert result.packages["sharp"] == "0.34.5" and f"@img/{pkg}" in result.packages
    assert not any("darwin" in p or "win32" in p or "musl" in p for p in result.packages)
    binaries = _node_binaries(result.zip.path)
    assert binaries and set(binaries.values()) == {machine}, binaries
    assert all(name.startswith("nodejs/node_modules/") for name in binaries)


def test_sharp_for_the_wrong_arch_fails_validation(sharp_layers: dict[str, BuildResult]) -> None:
    report = inspect_zip(sharp_layers["arm64"].zip.path, RUNTIMES["nodejs20.x"], "x86_64")
    assert not report.ok
    assert any(f.code == "elf-machine" and f.path.endswith(".node") for f in report.findings)


def test_x64_node_modules_shipped_to_an_arm64_layer_is_never_published(
        sharp_layers: dict[str, BuildResult], tmp_path: Path, aws_env: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The classic trap: node_modules installed on an x64 laptop, shipped as a folder to an arm64
    # layer. It builds (a folder is zipped as it is) but must stop before publish.
    import boto3

    from pulumi_lambda_layers.errors import ValidationError
    from pulumi_lambda_layers.resources import LayerBuildProvider, program_time_fingerprint

    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "from-laptop"
    with zipfile.ZipFile(sharp_layers["x86_64"].zip.path) as zf:
        zf.extractall(folder)
    args = {"runtime": "nodejs20.x", "architecture": "arm64", "source_dir": str(folder)}
    content_hash, packages, build, errors = program_time_fingerprint(args)
    assert errors == []
    name = f"pll-wrong-arch-{os.getpid()}"
    props = {"content_hash": content_hash, "packages": packages, "runtime": "nodejs20.x",
             "architecture": "arm64", "layer_name": name, "description": "", "share_with": [],
             "retain_versions": 0, "retain_on_delete": False, "build": build}
    with pytest.raises(ValidationError) as err:
        LayerBuildProvider().create(props)
    text = str(err.value)
    assert "@img/sharp-linux-x64" in text and ".node" in text and "arm64" in text, text
    assert boto3.client("lambda").list_layer_versions(LayerName=name)["LayerVersions"] == []


def test_auto_builds_sharp_in_docker_because_of_its_install_script(tmp_path: Path) -> None:
    manifest = _sharp_manifest(tmp_path / "src")
    spec = make_spec(runtime="nodejs20.x", package_json=str(manifest),
                     image=require_image("nodejs20.x", "x86_64"), **docker_build_options())
    result = build_layer(spec, tmp_path / "layer.zip", log=lambda _m: None)
    assert result.builder == "docker" and "sharp" in result.builder_reason
    assert set(_node_binaries(result.zip.path).values()) == {62}


@pytest.fixture(scope="module")
def sharp_arm64_docker(tmp_path_factory: pytest.TempPathFactory) -> BuildResult:
    """sharp built once by npm in the arm64 Node.js image (under qemu on an x86_64 host)."""
    manifest = _sharp_manifest(tmp_path_factory.mktemp("sharp-arm64-src"))
    spec = make_spec(runtime="nodejs20.x", architecture="arm64", package_json=str(manifest),
                     builder="docker", image=require_image("nodejs20.x", "arm64"),
                     **docker_build_options())
    out = tmp_path_factory.mktemp("sharp-arm64-out") / "sharp-arm64-docker.zip"
    return build_layer(spec, out, log=lambda _m: None)


def test_docker_build_for_arm64_ships_only_arm64_sharp(sharp_arm64_docker: BuildResult) -> None:
    result = sharp_arm64_docker
    assert result.builder == "docker" and result.report.ok, str(result.report)
    assert result.packages["sharp"] == "0.34.5"
    assert "@img/sharp-linux-arm64" in result.packages, result.packages
    assert not [p for p in result.packages if "x64" in p], result.packages
    binaries = _node_binaries(result.zip.path)
    assert any("/@img/sharp-linux-arm64/" in name for name in binaries), binaries
    assert binaries and set(binaries.values()) == {183}, binaries
    with zipfile.ZipFile(result.zip.path) as zf:
        assert not [n for n in zf.namelist() if "linux-x64" in n]


def test_docker_built_arm64_sharp_runs_in_the_arm64_image(sharp_arm64_docker: BuildResult,
                                                          tmp_path: Path) -> None:
    # The same thumbnail as the ESM test, from a CommonJS handler the smoke test calls.
    fn = write(tmp_path / "fn/index.js", HANDLER.replace(
        "import sharp from 'sharp';", "const sharp = require('sharp');").replace(
        "export const handler =", "exports.handler ="))
    fn.chmod(0o644)
    result = smoke_test(sharp_arm64_docker.zip.path, "nodejs20.x", "arm64",
                        handler="index.handler", function_dir=fn.parent,
                        image=require_image("nodejs20.x", "arm64"), log=lambda _m: None)
    # The platform packages have no JS entry point to import: the handler's resize, in the image
    # the smoke test checked runs aarch64, is what proves @img/sharp-linux-arm64's binding loads.
    assert "sharp" in result.imported and not result.failed, result
    assert result.origins["sharp"].startswith("/opt/nodejs/node_modules/sharp/"), result.origins
    assert result.handler_result == {"sharp": "0.34.5", "width": 16, "height": 12}


def test_frozen_needs_a_lock(tmp_path: Path) -> None:
    manifest = _sharp_manifest(tmp_path / "src")
    with pytest.raises(SpecError, match="no package-lock.json beside it"):
        make_spec(runtime="nodejs20.x", package_json=str(manifest), frozen=True)
    req = write(tmp_path / "requirements.txt", "six\n")
    with pytest.raises(SpecError, match="frozen forbids"):
        make_spec(runtime="python3.12", requirements=str(req), frozen=True)


def test_cli_frozen_refuses_package_json_without_lock(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    manifest = write(tmp_path / "src/package.json", json.dumps(
        {"name": "l", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"}}))
    out = tmp_path / "layer.zip"
    base = ["--runtime", "nodejs20.x", "--frozen"]
    assert cli(["build", str(manifest), *base, "--builder", "local", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "error: --frozen:" in err and "no package-lock.json beside it" in err, err
    assert "npm install --package-lock-only" in err and "drop --frozen" in err, err
    assert not out.exists()
    assert cli(["hash", str(manifest), *base]) == 2
    assert "--frozen" in capsys.readouterr().err
    req = write(tmp_path / "py/requirements.txt", "six\n")
    assert cli(["hash", str(req), "--runtime", "python3.12", "--frozen"]) == 2
    err = capsys.readouterr().err
    assert "error: --frozen: requirements.txt is resolved on every run" in err, err
    assert "--locked" in err, err
    # With the lock beside it, --frozen reads it as it is.
    _npm_lock(manifest.parent)
    assert cli(["hash", str(manifest), *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["packages"] == {"is-number": "7.0.0"}


def _npm_lock(project: Path) -> Path:
    """Write package-lock.json for project/package.json with npm, as a developer commits it."""
    npm = shutil.which("npm")
    assert npm, "npm is missing: install Node.js and npm"
    subprocess.run([npm, "install", "--package-lock-only", "--ignore-scripts", "--no-audit",
                    "--no-fund"], cwd=project, check=True, capture_output=True)
    return project / "package-lock.json"


def test_committed_lock_with_dev_dependency_builds_production_only(tmp_path: Path) -> None:
    # is-odd (a devDependency) brings its own is-number 6 nested under it; neither may ship.
    manifest = write(tmp_path / "src/package.json", json.dumps({
        "name": "l", "version": "1.0.0", "dependencies": {"is-number": "7.0.0"},
        "devDependencies": {"is-odd": "3.0.1"}}))
    lock = json.loads(_npm_lock(manifest.parent).read_text())["packages"]
    assert lock["node_modules/is-odd"]["dev"] is True  # the lock really holds the dev package
    spec = make_spec(runtime="nodejs20.x", package_json=str(manifest), builder="local",
                     frozen=True)
    result = build_layer(spec, tmp_path / "layer.zip", log=lambda _m: None)
    assert result.builder == "local" and result.report.ok, str(result.report)
    assert result.packages == {"is-number": "7.0.0"}
    with zipfile.ZipFile(result.zip.path) as zf:
        names = zf.namelist()
        shipped = json.loads(zf.read("nodejs/node_modules/is-number/package.json"))
        assert shipped["version"] == "7.0.0"
    assert not [n for n in names if "is-odd" in n], names
    assert all(n.startswith("nodejs/node_modules/is-number/") or n.endswith("/")
               or n == "nodejs/node_modules/.package-lock.json" for n in names), names


def _extract(zip_path: Path, dest: Path) -> None:
    """Unzip keeping symlinks and modes, as Lambda does."""
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            target = dest / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                os.symlink(zf.read(info).decode(), target)
            else:
                target.write_bytes(zf.read(info))
                os.chmod(target, stat.S_IMODE(mode) or 0o644)


def _invoke_esm(layer_zip: Path, function_zip: Path, work: Path) -> tuple[int, str]:
    """Run the .mjs handler with node in the Node.js image: layer at /opt, code at /var/task."""
    opt, task = work / "opt", work / "task"
    _extract(layer_zip, opt)
    _extract(function_zip, task)
    client = require_docker()
    script = ("const m = await import('/var/task/index.mjs');"
              "console.log(JSON.stringify(await m.handler({})));")
    container = client.containers.run(
        require_image("nodejs20.x", "x86_64"), ["node", "--input-type=module", "-e", script],
        detach=True, network_mode="none", working_dir="/var/task",
        environment={"NODE_PATH": "/opt/nodejs/node20/node_modules:/opt/nodejs/node_modules"},
        volumes={str(opt): {"bind": "/opt", "mode": "ro"}, str(task): {"bind": "/var/task", "mode": "ro"}})
    try:
        code = container.wait()["StatusCode"]
        return code, container.logs().decode()
    finally:
        container.remove(force=True)


def test_esm_handler_sees_layer_only_through_the_node_modules_link(
        sharp_layers: dict[str, BuildResult], tmp_path: Path) -> None:
    fn = write(tmp_path / "fn/index.mjs", HANDLER).parent
    linked = package_function(fn, tmp_path / "fn-linked.zip", "nodejs20.x")
    plain = package_function(fn, tmp_path / "fn-plain.zip", "nodejs20.x", link_layer_modules=False)
    with zipfile.ZipFile(linked.path) as zf:
        info = zf.getinfo("node_modules")
        assert stat.S_ISLNK(info.external_attr >> 16)
        assert zf.read(info) == b"/opt/nodejs/node_modules"
    assert linked.zipped_size < 4096, "the function zip stays a few KB: sharp lives in the layer"

    layer = sharp_layers["x86_64"].zip.path
    code, out = _invoke_esm(layer, linked.path, tmp_path / "run-linked")
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1]) == {"sharp": "0.34.5", "width": 16, "height": 12}

    code, out = _invoke_esm(layer, plain.path, tmp_path / "run-plain")
    assert code != 0 and "ERR_MODULE_NOT_FOUND" in out and "sharp" in out, out


def test_link_refused_for_python_and_when_node_modules_exists(tmp_path: Path) -> None:
    fn = write(tmp_path / "fn/index.mjs", HANDLER).parent
    with pytest.raises(SpecError, match="not a Node.js runtime"):
        package_function(fn, tmp_path / "x.zip", "python3.12", link_layer_modules=True)
    with pytest.raises(SpecError, match="nodejs12.x and cannot load ES module handlers"):
        package_function(fn, tmp_path / "x.zip", "nodejs12.x")
    assert not (tmp_path / "x.zip").exists()
    (fn / "node_modules").mkdir()
    with pytest.raises(SpecError, match="already exists"):
        package_function(fn, tmp_path / "x.zip", "nodejs20.x", link_layer_modules=True)
