"""Real builds: Docker (x86_64 and arm64 under qemu) and local, with a native package (numpy)."""

from __future__ import annotations

import json
import struct
import sys
import zipfile
from pathlib import Path

import pytest

from pulumi_lambda_layers import BuildError, make_spec
from pulumi_lambda_layers.build.pipeline import BuildResult, build_layer
from pulumi_lambda_layers.cli import main as cli
from pulumi_lambda_layers.runtimes import RUNTIMES
from pulumi_lambda_layers.validate import inspect_zip
from tests.conftest import dead_url, docker_build_options, write
from tests.testbed_images import require_image

NUMPY = "numpy==1.26.4\n"
EM_X86_64, EM_AARCH64 = 62, 183


def _docker_spec(req: Path, arch: str = "x86_64", runtime: str = "python3.11", **kw: object):
    return make_spec(runtime=runtime, architecture=arch, lock=str(req), builder="docker",
                     image=require_image(kw.pop("image_runtime", runtime), arch),  # type: ignore[arg-type]
                     **docker_build_options(), **kw)


def _elf_machines(zip_path: Path) -> dict[str, int]:
    """e_machine of every ELF in the zip, read straight from the header (not via the validator)."""
    out: dict[str, int] = {}
    with zipfile.ZipFile(zip_path) as zf:
        for info in zf.infolist():
            with zf.open(info) as f:
                head = f.read(20)
            if head[:4] == b"\x7fELF":
                out[info.filename] = struct.unpack("<H", head[18:20])[0]
    return out


def _dist_infos(zip_path: Path) -> set[str]:
    with zipfile.ZipFile(zip_path) as zf:
        return {n.split("/")[4] for n in zf.namelist() if ".dist-info/" in n}


@pytest.fixture(scope="module")
def numpy_lock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("spec") / "requirements.lock", NUMPY)


@pytest.fixture(scope="module")
def docker_builds(numpy_lock: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, BuildResult]:
    out = tmp_path_factory.mktemp("out")
    return {arch: build_layer(_docker_spec(numpy_lock, arch), out / f"numpy-{arch}.zip")
            for arch in ("x86_64", "arm64")}


@pytest.mark.parametrize("arch,machine", [("x86_64", EM_X86_64), ("arm64", EM_AARCH64)])
def test_docker_numpy_build_has_right_elf_machine(docker_builds: dict[str, BuildResult],
                                                  arch: str, machine: int) -> None:
    result = docker_builds[arch]
    assert result.builder == "docker"
    assert result.packages == {"numpy": "1.26.4"}
    assert result.report.ok, str(result.report)
    machines = _elf_machines(result.zip.path)
    assert len(machines) > 5, "numpy ships many shared objects"
    assert set(machines.values()) == {machine}, machines
    with zipfile.ZipFile(result.zip.path) as zf:
        names = zf.namelist()
    assert "python/lib/python3.11/site-packages/numpy/__init__.py" in names
    assert not any(n.endswith(".pyc") for n in names)


def test_arm64_layer_fails_inspection_as_x86_64(docker_builds: dict[str, BuildResult],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    arm_zip = docker_builds["arm64"].zip.path
    report = inspect_zip(arm_zip, RUNTIMES["python3.11"], "x86_64")
    assert not report.ok
    assert any(f.code == "elf-machine" for f in report.findings)
    assert cli(["inspect", str(arm_zip), "--runtime", "python3.11", "--arch", "x86_64"]) == 1
    assert "aarch64" in capsys.readouterr().out.lower()
    assert cli(["inspect", str(arm_zip), "--runtime", "python3.11", "--arch", "arm64"]) == 0


def test_docker_build_is_byte_reproducible(docker_builds: dict[str, BuildResult],
                                           numpy_lock: Path, tmp_path: Path) -> None:
    again = build_layer(_docker_spec(numpy_lock), tmp_path / "again.zip")
    assert again.zip.sha256 == docker_builds["x86_64"].zip.sha256
    assert again.content_hash == docker_builds["x86_64"].content_hash


def test_local_builder_gives_equivalent_layer(docker_builds: dict[str, BuildResult],
                                              numpy_lock: Path, tmp_path: Path) -> None:
    for arch in ("x86_64", "arm64"):
        spec = make_spec(runtime="python3.11", architecture=arch, lock=str(numpy_lock),
                         builder="local")
        local = build_layer(spec, tmp_path / f"local-{arch}.zip")
        assert local.builder == "local"
        docker = docker_builds[arch]
        assert _dist_infos(local.zip.path) == _dist_infos(docker.zip.path)
        with zipfile.ZipFile(local.zip.path) as a, zipfile.ZipFile(docker.zip.path) as b:
            assert set(a.namelist()) == set(b.namelist())
        assert set(_elf_machines(local.zip.path).values()) == \
            set(_elf_machines(docker.zip.path).values())


def test_local_layer_carries_nothing_of_the_build_machine(numpy_lock: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """uv --target writes console scripts whose #! names this machine's Python: never packed."""
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))  # packs made by this build only
    spec = make_spec(runtime="python3.11", lock=str(numpy_lock), builder="local")
    result = build_layer(spec, tmp_path / "local.zip")
    machine_paths = {sys.prefix.encode(), sys.executable.encode(), str(Path.home()).encode()}
    with zipfile.ZipFile(result.zip.path) as zf:
        assert not [n for n in zf.namelist() if "/site-packages/bin/" in n]
        leaks = [n for n in zf.namelist() if any(p in zf.read(n) for p in machine_paths)]
    assert leaks == []


def test_cli_build_prints_hash_builder_counts(numpy_lock: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "layer.zip"
    args = ["build", str(numpy_lock), "--locked", "--runtime", "python3.11", "--arch", "arm64",
            "--builder", "local", "-o", str(out), "--json"]
    assert cli(args) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["builder"] == "local" and data["package_count"] == 1
    assert data["zipped_size"] == out.stat().st_size and len(data["content_hash"]) == 64
    # The same spec again: the cached zip, with the report it was validated with; no build.
    out.unlink()
    assert cli(args) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["builder"] == "cache" and again["sha256"] == data["sha256"]
    assert again["validation"] == data["validation"] and out.read_bytes()
    assert cli([*args, "--no-cache"]) == 0
    assert json.loads(capsys.readouterr().out)["builder"] == "local"
    # Without --json: the same facts for a person.
    assert cli(args[:-1]) == 0
    text = capsys.readouterr().out
    for line in (f"built {out}", f"content hash  {data['content_hash']}",
                 "builder       cache (built before by local)", "packages      1",
                 f"zipped        {data['zipped_size']:,} bytes ({data['file_count']} files)",
                 f"unzipped      {data['unzipped_size']:,} bytes", f"sha256        {data['sha256']}"):
        assert line in text, (line, text)


def test_image_with_other_python_is_refused(numpy_lock: Path, tmp_path: Path) -> None:
    spec = _docker_spec(numpy_lock, image_runtime="python3.13")
    out = tmp_path / "layer.zip"
    with pytest.raises(BuildError) as err:
        build_layer(spec, out)
    assert "the image has Python 3.13 but the runtime is Python 3.11" in str(err.value)
    assert "image=" in str(err.value)
    assert not out.exists()


def test_failing_build_shows_container_tail(tmp_path: Path) -> None:
    lock = write(tmp_path / "requirements.lock", "pll-no-such-package-0d1f==1.0.0\n")
    out = tmp_path / "layer.zip"
    with pytest.raises(BuildError) as err:
        build_layer(_docker_spec(lock), out)
    text = str(err.value)
    assert "the build exited with 1" in text
    assert "pll-no-such-package-0d1f" in text and "output (last lines)" in text
    assert not out.exists()


def test_docker_not_reachable_says_how_to_start(numpy_lock: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _docker_spec(numpy_lock)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-docker.sock")
    with pytest.raises(BuildError, match="(?s)no Docker engine answers.*start Docker"):
        build_layer(spec, tmp_path / "layer.zip")
    assert not (tmp_path / "layer.zip").exists()


def test_a_pure_python_sdist_builds_locally_for_local_and_auto(tmp_path: Path) -> None:
    # docopt is published as an sdist only; its wheel is py3-none-any, so no Docker is needed
    # (a native sdist still is: tests/integration/test_sdist_local.py).
    lock = write(tmp_path / "requirements.lock", "docopt==0.6.2\n")
    local = build_layer(make_spec(runtime="python3.11", lock=str(lock), builder="local"),
                        tmp_path / "local.zip", log=lambda _m: None)
    auto = build_layer(make_spec(runtime="python3.11", lock=str(lock), builder="auto"),
                       tmp_path / "auto.zip", log=lambda _m: None)
    assert local.builder == auto.builder == "local"
    assert "pure-Python sdist built here" in auto.builder_reason
    with zipfile.ZipFile(auto.zip.path) as zf:
        assert "python/lib/python3.11/site-packages/docopt.py" in zf.namelist()


def test_node_layer_docker_and_local(tmp_path: Path) -> None:
    manifest = write(tmp_path / "src/package.json",
                     json.dumps({"name": "l", "version": "1.0.0", "dependencies": {"is-odd": "3.0.1"}}))
    common = {"runtime": "nodejs20.x", "package_json": str(manifest)}
    docker = build_layer(make_spec(**common, builder="docker", image=require_image("nodejs20.x", "x86_64"),
                                   **docker_build_options()), tmp_path / "docker.zip", log=lambda _m: None)
    local = build_layer(make_spec(**common, builder="local"), tmp_path / "local.zip",
                        log=lambda _m: None)
    for result in (docker, local):
        with zipfile.ZipFile(result.zip.path) as zf:
            names = set(zf.namelist())
        assert "nodejs/node_modules/is-odd/index.js" in names
        assert "nodejs/node_modules/is-number/index.js" in names
        assert not any(n.startswith("nodejs/package") for n in names)
    assert docker.packages == local.packages == {"is-odd": "3.0.1", "is-number": "6.0.0"}


def test_docker_builds_reuse_a_package_cache_volume(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # What the volume saves most is a compile: pip keeps a wheel it built from an sdist (docopt is
    # published as an sdist only) and the next build in that image installs it without building.
    # (Its HTTP cache of downloads is in the volume too, but the test machines' registry proxy
    # sends no caching headers, so pip stores no download here.)
    import dataclasses

    from pulumi_lambda_layers.build.docker import cache_volume_name
    from tests.testbed_images import require_docker

    client = require_docker()
    spec = dataclasses.replace(
        _docker_spec(write(tmp_path / "requirements.lock", "docopt==0.6.2\n")),
        cache_owner="test-project-cache-reuse")
    volume = cache_volume_name(client.images.get(spec.build_image), spec.cache_owner)
    for old in client.volumes.list(filters={"name": volume}):
        old.remove(force=True)  # start cold, whatever earlier runs left
    logs: list[list[str]] = [[], []]
    # Each build with a cache folder of its own: no finished zip or pack to reuse, so the second
    # build runs pip again, and what it skips is the volume's doing.
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache-1"))
    first = build_layer(spec, tmp_path / "a.zip", log=logs[0].append)
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache-2"))
    second = build_layer(spec, tmp_path / "b.zip", log=logs[1].append)
    assert any("Successfully installed docopt" in line for line in logs[1]), "\n".join(logs[1])
    assert any(f"made package cache volume {volume}" in line for line in logs[0])
    assert any("Building wheel for docopt" in line for line in logs[0]), "\n".join(logs[0])
    assert not any("Building wheel for docopt" in line for line in logs[1]), "\n".join(logs[1])
    assert any("docopt" in line for line in logs[1])  # installed all the same
    assert client.volumes.get(volume).attrs["Labels"] == {
        "pulumi-lambda-layers": "package-cache",
        "pulumi-lambda-layers.cache-owner": "test-project-cache-reuse"}
    assert first.zip.sha256 == second.zip.sha256  # the cache changes how fast, never the bytes


def test_a_layer_that_fails_validation_is_neither_written_nor_cached(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    write(tmp_path / "src/mod.py", "x = 1\n")  # at the zip root: Python never looks there
    out = tmp_path / "out/layer.zip"
    code = cli(["build", str(tmp_path / "src"), "--runtime", "python3.11", "--arch", "x86_64",
                "-o", str(out), "--quiet"])
    assert code == 1
    assert "[layout] mod.py: Python package 'mod.py' is at the zip root" in capsys.readouterr().err
    assert not out.exists()
    assert not list((tmp_path / "cache").rglob("*.zip")), "a refused layer is never cached"
    assert not (tmp_path / "out").exists(), "not even its folder is made"


def test_inspect_exits_1_on_unsafe_paths_and_links(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.zip"
    link = zipfile.ZipInfo("python/escape")
    link.external_attr = (0o120777) << 16  # a symlink entry
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("python/../../etc/cron.d/x", "* * * * * root sh\n")
        zf.writestr(link, "/etc/passwd")
    code = cli(["inspect", str(bad), "--runtime", "python3.11", "--arch", "x86_64"])
    err = capsys.readouterr()
    text = err.out + err.err
    assert code == 1
    assert "python/../../etc/cron.d/x" in text and "'..'" in text
    assert "python/escape" in text and "/etc/passwd" in text


SIX_WHEEL_SHA256 = "8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254"


def test_lock_with_hashes_installs_only_the_artifact_it_names(tmp_path: Path) -> None:
    good = write(tmp_path / "good/requirements.lock", f"six==1.16.0 --hash=sha256:{SIX_WHEEL_SHA256}\n")
    result = build_layer(make_spec(runtime="python3.11", lock=str(good), builder="local"),
                         tmp_path / "good.zip", log=lambda _m: None)
    assert result.packages == {"six": "1.16.0"}
    bad = write(tmp_path / "bad/requirements.lock", f"six==1.16.0 --hash=sha256:{'0' * 64}\n")
    with pytest.raises(BuildError) as err:
        build_layer(make_spec(runtime="python3.11", lock=str(bad), builder="local"),
                    tmp_path / "bad.zip", log=lambda _m: None)
    assert "hash" in str(err.value).lower() and "six" in str(err.value)
    assert not (tmp_path / "bad.zip").exists()


def test_proxy_option_reaches_the_local_installer(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A proxy nobody listens on: the install can only fail, and only through the proxy (a tunnel
    # error), which shows the option reached uv. The same spec without it installs.
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))  # nothing to install from
    monkeypatch.setenv("UV_HTTP_RETRIES", "0")
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    lock = write(tmp_path / "requirements.lock", "six==1.16.0\n")
    dead = dead_url()
    spec = make_spec(runtime="python3.11", lock=str(lock), builder="local",
                     proxy={"HTTPS_PROXY": dead})
    with pytest.raises(BuildError, match="tunnel error"):
        build_layer(spec, tmp_path / "proxied.zip", log=lambda _m: None)
    assert not (tmp_path / "proxied.zip").exists()
    plain = make_spec(runtime="python3.11", lock=str(lock), builder="local")
    assert build_layer(plain, tmp_path / "plain.zip", log=lambda _m: None).packages == {"six": "1.16.0"}
