"""Docker builds package by package: a bump installs only the changed package, in one container,
and gives the bytes of a cold build; auto builds only the native sdists in Docker; the container's
pip installs the wheels fetched here, with pip's own bytes."""

from __future__ import annotations

import io
import os
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pulumi_lambda_layers import make_spec
from pulumi_lambda_layers.build import prefetch
from pulumi_lambda_layers.build.archive import make_zip
from pulumi_lambda_layers.build.docker import (
    CACHE_LABEL,
    CACHE_LABEL_VALUE,
    CACHE_OWNER_ENV,
    OWNER_LABEL,
    DockerBuilder,
    build_user,
    cache_volume_name,
)
from pulumi_lambda_layers.build.pipeline import BuildResult, build_layer
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from tests.conftest import docker_build_options, write
from tests.local_index import backend_wheels, make_sdist, make_wheel, serve_index, sha256_hex
from tests.testbed_images import require_compiler_image, require_docker, require_image

SITE = "python/lib/python3.11/site-packages"
@pytest.fixture()
def owner(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A cache owner of this test alone (its own pip cache volumes), removed after it."""
    name = f"pll-test-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(CACHE_OWNER_ENV, name)
    yield name
    client = require_docker()
    for volume in client.volumes.list(filters={"label": f"{OWNER_LABEL}={name}"}):
        volume.remove(force=True)


def _cli_wheel(folder: Path, name: str, version: str) -> Path:
    """A pure-Python wheel with a console script (pip --target puts it in site-packages/bin and
    its RECORD row reads ../../bin/<name>)."""
    return make_wheel(folder, name, version, code="\ndef main():\n    print(VERSION)\n",
                      extra={f"{name}-{version}.dist-info/entry_points.txt":
                             f"[console_scripts]\n{name} = {name}:main\n"})


def _lock(path: Path, index_url: str, *pins: str) -> Path:
    return write(path, "\n".join([f"--index-url {index_url}", *pins]) + "\n")


def _spec(lock: Path, arch: str, builder: str = "docker", image: str | None = None) -> Any:
    return make_spec(runtime="python3.11", architecture=arch, lock=str(lock), builder=builder,
                     image=image or require_image("python3.11", arch), **docker_build_options())


def _build(spec: Any, out: Path) -> tuple[BuildResult, list[str]]:
    log: list[str] = []
    return build_layer(spec, out, log=log.append), log


def _installed(log: list[str]) -> list[str]:
    """What pip in the build container said it installed, in every container of the build."""
    return sorted(item for line in log if line.strip().startswith("Successfully installed")
                  for item in line.split()[2:])


def _imports(image: str, zip_path: Path, where: Path, code: str) -> str:
    """stdout of `python3 -c code` in image, with the unzipped layer's site-packages on the path."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(where)
    out = require_docker().containers.run(
        image, ["python3", "-c", code], remove=True, network_mode="none",
        environment={"PYTHONPATH": f"/opt/{SITE}"},
        volumes={str(where): {"bind": "/opt", "mode": "ro"}})
    return str(out.decode().strip())


def _platform_wheel(folder: Path, name: str, version: str, arch: str) -> Path:
    """A wheel tagged for CPython 3.11 on the arch's manylinux: one the image's pip installs."""
    machine = {"x86_64": "x86_64", "arm64": "aarch64"}[arch]
    return make_wheel(folder, name, version, tag=f"cp311-cp311-manylinux_2_17_{machine}")


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_a_bump_installs_only_the_changed_package_and_gives_a_cold_builds_bytes(
        arch: str, tmp_path: Path, owner: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = tmp_path / "wheels"
    for version in ("1.0", "2.0"):
        _platform_wheel(wheels, "alpha", version, arch)  # the container's pip installs it
        make_wheel(wheels, "beta", version)  # pure Python: unpacked here
    _cli_wheel(wheels, "tool", "1.0")
    with serve_index(wheels) as index:
        def spec(alpha: str, beta: str) -> Any:
            return _spec(_lock(tmp_path / f"{alpha}-{beta}.lock", index.url, f"alpha=={alpha}",
                               f"beta=={beta}", "tool==1.0"), arch)

        old, new, pure_bump = spec("1.0", "1.0"), spec("2.0", "1.0"), spec("2.0", "2.0")
        monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "warm"))
        first, first_log = _build(old, tmp_path / "old.zip")
        bump, bump_log = _build(new, tmp_path / "bump.zip")
        pure, pure_log = _build(pure_bump, tmp_path / "pure.zip")
        monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cold"))
        cold, cold_log = _build(new, tmp_path / "cold.zip")
        # What a Docker build was before packs: the whole tree installed by the container's pip
        # and zipped at once.
        whole, whole_log = _online(new, owner, tmp_path / "whole", tmp_path / "whole.zip",
                                   fetch_here=True)

    logs = "\n".join(first_log + ["---"] + bump_log + ["---"] + cold_log)
    assert first.builder == bump.builder == cold.builder == pure.builder == "docker"
    assert first.packs and bump.packs and cold.packs and pure.packs
    assert _installed(first_log) == ["alpha-1.0"], logs
    assert "docker: beta, tool: the one wheel for the target is pure Python (*-none-any): " \
           "unpacked here, the files the image's pip would write" in first_log, logs
    assert first.packs.docker == first.packs.packed == ("alpha", "beta", "tool")
    # The bump: one container, one package installed in it; the rest from the pack cache.
    assert _installed(bump_log) == ["alpha-2.0"], logs
    assert sum("docker: building in" in line for line in bump_log) == 1, logs
    assert "docker: installing 1 of 3 packages in one container: alpha" in bump_log, logs
    assert (bump.packs.packed, bump.packs.reused) == (("alpha",), ("beta", "tool"))
    # A pure-Python bump: no container at all.
    assert not any("docker: building in" in line for line in pure_log), pure_log
    assert (pure.packs.packed, pure.packs.reused) == (("beta",), ("alpha", "tool"))
    assert cold.packs.reused == () and _installed(cold_log) == ["alpha-2.0"], logs
    assert _installed(whole_log) == ["alpha-2.0", "beta-1.0", "tool-1.0"], whole_log
    # The console script's ../../bin row does not make the layer unsplittable.
    assert "cannot pack package by package" not in logs
    assert bump.zip.sha256 == cold.zip.sha256 == whole, logs
    assert bump.report.ok and first.zip.sha256 != bump.zip.sha256 != pure.zip.sha256
    with zipfile.ZipFile(bump.zip.path) as zf:
        names = zf.namelist()
    assert f"{SITE}/tool/__init__.py" in names and not any("/bin/" in n for n in names), names
    assert _imports(require_image("python3.11", arch), pure.zip.path, tmp_path / "unzipped",
                    "import alpha, beta, tool; print(alpha.VERSION, beta.VERSION)") == "2.0 2.0"


@pytest.mark.parametrize("cacheable", [False, True], ids=["no-store-index", "cacheable-index"])
def test_auto_builds_only_the_native_sdists_in_one_container_and_matches_a_docker_build(
        tmp_path: Path, owner: str, monkeypatch: pytest.MonkeyPatch, cacheable: bool) -> None:
    image = require_compiler_image()
    files = tmp_path / "files"
    files.mkdir()
    backend_wheels(files)  # setuptools for the container's isolated build
    make_sdist(files, "nativepkg", "1.0", native=True)
    make_sdist(files, "nativetwo", "1.0", native=True)
    make_wheel(files, "wheelpkg", "2.0")
    make_wheel(files, "otherpkg", "1.0")
    with serve_index(files, cacheable=cacheable) as index:
        lock = _lock(tmp_path / "requirements.lock", index.url, "nativepkg==1.0",
                     "nativetwo==1.0", "otherpkg==1.0", "wheelpkg==2.0")
        monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "auto-cache"))
        auto, auto_log = _build(_spec(lock, "x86_64", "auto", image), tmp_path / "auto.zip")
        monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "docker-cache"))
        full, full_log = _build(_spec(lock, "x86_64", "docker", image), tmp_path / "full.zip")

    logs = "\n".join(auto_log + ["---"] + full_log)
    assert auto.builder == "docker" and "nativepkg" in auto.builder_reason, auto.builder_reason
    assert "the other 2 packages here" in auto.builder_reason
    assert auto.packs is not None and full.packs is not None
    assert auto.packs.docker == ("nativepkg", "nativetwo")
    # uv names one package without a wheel per run: dry runs of the other three find the second,
    # then the one container builds both while the other two install here. Offline, from the
    # pages the failed install fetched, when the index lets them be cached; else online.
    line = next(i for i, x in enumerate(auto_log) if x.startswith("auto: ") and
                x.endswith("building nativepkg, nativetwo in Docker, the rest here"))
    dry_runs = (["--dry-run --offline 3", "--dry-run --offline 2"] if cacheable else
                ["--dry-run --offline 3", "--dry-run 3", "--dry-run 2"])
    assert [x.split(" packages for ")[0] for x in auto_log[:line] if x.startswith("local: ")] == [
        "local: uv pip install 4", *(f"local: uv pip install {d}" for d in dry_runs)], logs
    assert "docker: installing 2 of 4 packages in one container: nativepkg, nativetwo" in auto_log
    assert any(x.startswith("local: uv pip install 2 packages") for x in auto_log), logs
    # One container run for the build, installing the native packages only.
    assert sum("docker: building in" in x for x in auto_log) == 1, logs
    assert _installed(auto_log) == ["nativepkg-1.0", "nativetwo-1.0"], logs
    # Sdists to build: the container's pip asks the index. auto's container gets only those,
    # so nothing is fetched for it; the full build's fetch finds them and stops at once.
    # (The first release the pages show without a wheel: either.)
    assert {f"docker: {name} 1.0 has no wheel for CPython 3.11 on Linux x86_64 (its sdist is "
            "built in the container): the container's pip asks the index"
            for name in ("nativepkg", "nativetwo")} & set(full_log), logs
    assert not any(x.startswith("docker: fetched") or x.endswith("asks the index")
                   for x in auto_log), logs
    assert _installed(full_log) == ["nativepkg-1.0", "nativetwo-1.0", "otherpkg-1.0",
                                    "wheelpkg-2.0"], logs
    assert auto.zip.sha256 == full.zip.sha256, logs
    assert auto.report.ok, str(auto.report)
    with zipfile.ZipFile(auto.zip.path) as zf:
        for name in ("nativepkg", "nativetwo"):
            assert any(n.startswith(f"{SITE}/{name}.") and n.endswith(".so")
                       for n in zf.namelist()), zf.namelist()
    assert _imports(image, auto.zip.path, tmp_path / "unzipped",
                    "import nativepkg, nativetwo, wheelpkg, otherpkg; "
                    "print(nativepkg.__file__.rsplit('/', 1)[-1].split('.')[-1], "
                    "wheelpkg.VERSION)") == "so 2.0"


def test_a_cache_volume_others_could_write_is_emptied_when_the_build_finds_it(
        tmp_path: Path, owner: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = require_docker()
    base = require_image("python3.11", "x86_64")
    name = cache_volume_name(client.images.get(base), owner)
    # An existing volume is checked by the build container, not by a container of its own.
    client.volumes.create(name, labels={CACHE_LABEL: CACHE_LABEL_VALUE, OWNER_LABEL: owner})
    client.containers.run(base, ["sh", "-c", "chmod 1777 /pll/cache; mkdir /pll/cache/pip; "
                                 "touch /pll/cache/pip/planted.whl"], user="0:0", remove=True,
                          network_mode="none", volumes={name: {"bind": "/pll/cache",
                                                               "mode": "rw"}})
    wheels = tmp_path / "wheels"
    _platform_wheel(wheels, "alpha", "1.0", "x86_64")
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    with serve_index(wheels) as index:
        spec = _spec(_lock(tmp_path / "a.lock", index.url, "alpha==1.0"), "x86_64")
        first, log = _build(spec, tmp_path / "a.zip")
        monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache-2"))
        again, again_log = _build(spec, tmp_path / "b.zip")
    uid, gid = build_user()
    assert any("pll: the package cache volume is 0:0 1777" in line for line in log), log
    assert any(f"was 0:0 1777 (owner uid:gid, mode): emptied it and gave it to {uid}:{gid}"
               in line for line in log), log
    assert _installed(log) == ["alpha-1.0"] and first.zip.sha256 == again.zip.sha256
    # Now it is the build uid's: the next build's container finds it so and goes on at once.
    assert not any("package cache volume" in line for line in again_log), again_log
    listing = client.containers.run(base, ["sh", "-c", "stat -c '%u %g %a' /pll/cache; "
                                           "find /pll/cache"], user="0:0", remove=True,
                                    network_mode="none",
                                    volumes={name: {"bind": "/pll/cache", "mode": "rw"}})
    status, *inside = listing.decode().split()
    assert status == str(uid) and not any("planted.whl" in path for path in inside), inside


def _online(spec: Any, owner: str, root: Path, out: Path, fetch_here: bool = False
            ) -> tuple[str, list[str]]:
    """The zip's sha256 and the log of a whole build: every package installed by the
    container's pip, which asks the index (or, fetch_here, installs the wheels fetched here)."""
    root.mkdir()
    log: list[str] = []
    DockerBuilder(cache_owner=owner, fetch_here=fetch_here).build(spec, fingerprint(spec), root,
                                                                  log.append)
    return make_zip(root, out).sha256, log


@pytest.mark.parametrize("arch", ["x86_64", "arm64"])
def test_the_containers_pip_installs_the_wheels_fetched_here_with_its_own_online_bytes(
        arch: str, tmp_path: Path, owner: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    alpha, tool = make_wheel(first, "alpha", "1.0"), _cli_wheel(first, "tool", "1.0")
    beta = _platform_wheel(second, "beta", "1.0", arch)
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    with serve_index(first) as a, serve_index(second) as b:
        lock = write(tmp_path / "requirements.lock", "\n".join([
            f"--index-url {a.url}", f"--extra-index-url {b.url}",
            *(f"{w.name.split('-')[0]}==1.0 --hash=sha256:{sha256_hex(w)}"
              for w in (alpha, beta, tool))]) + "\n")
        spec = _spec(lock, arch)
        fetched, log = _build(spec, tmp_path / "layer.zip")
        pip_asked = a.log.asked_by("pip/") + b.log.asked_by("pip/")
        online, online_log = _online(spec, owner, tmp_path / "online", tmp_path / "online.zip")
        pip_asked_online = a.log.asked_by("pip/") + b.log.asked_by("pip/")

    logs = "\n".join(log + ["---"] + online_log)
    assert "docker: fetched 3 wheels (0.0 MB) of 3 packages here (no index asked in the " \
           "container)" in log, logs
    assert "  pll: installing the wheels the host fetched, no index" in log, logs
    assert "docker: alpha, tool: the one wheel for the target is pure Python (*-none-any): " \
           "unpacked here, the files the image's pip would write" in log, logs
    assert _installed(log) == ["beta-1.0"], logs
    assert _installed(online_log) == ["alpha-1.0", "beta-1.0", "tool-1.0"], logs
    # The container's pip asked neither index; asking them itself for all three (the check
    # can fail), it makes the same bytes: the same files, its own choice among them, and uv's
    # unpacking of the pure wheels (a console script among them) the same as pip's.
    assert pip_asked == [], pip_asked
    assert {"/simple/alpha/", "/simple/beta/", f"/files/{beta.name}"} <= set(pip_asked_online)
    assert not any("docker: fetched" in line for line in online_log), logs
    assert fetched.zip.sha256 == online, logs
    assert _imports(require_image("python3.11", arch), fetched.zip.path, tmp_path / "unzipped",
                    "import alpha, beta, tool; print(beta.VERSION)") == "1.0"


def test_an_image_that_configures_pip_asks_its_index_not_the_hosts_files(
        tmp_path: Path, owner: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = require_docker()
    base = require_image("python3.11", "x86_64")
    tag = f"pulumi-lambda-layers-test/pip-conf:{uuid.uuid4().hex[:8]}"
    # Its pip.conf could name another index than the lock: pip's choice is then its own.
    dockerfile = f"FROM {base}\nRUN printf '[global]\\ntimeout = 30\\n' > /etc/pip.conf\n"
    client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, network_mode="none",
                        rm=True)
    wheels = tmp_path / "wheels"
    _platform_wheel(wheels, "alpha", "1.0", "x86_64")
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    try:
        with serve_index(wheels) as index:
            spec = _spec(_lock(tmp_path / "a.lock", index.url, "alpha==1.0"), "x86_64",
                         image=tag)
            result, log = _build(spec, tmp_path / "a.zip")
            pip_asked = index.log.asked_by("pip/")
    finally:
        client.images.remove(tag, force=True)
    assert "  pll: the image configures pip (/etc/pip.conf): asking the index, not using the " \
           "host's files" in log, log
    assert _installed(log) == ["alpha-1.0"] and "/simple/alpha/" in pip_asked, pip_asked
    assert result.report.ok


def test_wheels_pip_cannot_use_send_it_to_the_index_with_the_same_result(
        tmp_path: Path, owner: str, monkeypatch: pytest.MonkeyPatch) -> None:
    wheels = tmp_path / "wheels"
    _platform_wheel(wheels, "alpha", "1.0", "x86_64")

    def nothing_fitting(text: str, python: str, machine: str, folder: Path, *_: object
                        ) -> prefetch.Fetched:
        # What the container's pip makes of files it cannot install (another Python, a musl
        # image): here, no file at all for the pin.
        folder.mkdir()
        os.chmod(folder, 0o755)
        return prefetch.Fetched(1, 0, 0, {"alpha": ()})

    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    with serve_index(wheels) as index:
        spec = _spec(_lock(tmp_path / "a.lock", index.url, "alpha==1.0"), "x86_64")
        online, _ = _online(spec, owner, tmp_path / "online", tmp_path / "online.zip")
        monkeypatch.setattr(prefetch, "fetch_wheels", nothing_fitting)
        result, log = _build(spec, tmp_path / "a.zip")
        pip_asked = index.log.asked_by("pip/")
    assert "  pll: installing the wheels the host fetched, no index" in log, log
    assert "  pll: pip could not install from the host's files (exit 1): asking the index" \
           in log, log
    assert _installed(log) == ["alpha-1.0"] and result.zip.sha256 == online, log
    assert pip_asked.count("/simple/alpha/") == 2, pip_asked  # the online build's, then this one's


def test_pip_target_rows_outside_site_packages_are_the_targets_own_paths(tmp_path: Path) -> None:
    from pulumi_lambda_layers.build.incremental import split_by_package
    from pulumi_lambda_layers.errors import NotSplittable

    site = tmp_path / SITE
    for rel, text in {"tool/__init__.py": "", "bin/tool": "#!/usr/bin/python3\n",
                      "share/tool/data.txt": "x"}.items():
        write(site / rel, text)
    record = write(site / "tool-1.0.dist-info/RECORD",
                   "tool/__init__.py,,\n../../bin/tool,,\n../../share/tool/data.txt,,\n"
                   "tool-1.0.dist-info/RECORD,,\n")
    groups = split_by_package(tmp_path, SITE, (), (), pip_target=True)
    assert sorted(rel for rel, _ in groups["tool"]) == [f"{SITE}/share/tool/data.txt",
                                                        f"{SITE}/tool/__init__.py"]
    with pytest.raises(NotSplittable, match="outside site-packages"):
        split_by_package(tmp_path, SITE, (), ())  # uv's --target records no such rows
    record.write_text("tool/__init__.py,,\n../../../etc/passwd,,\n")
    with pytest.raises(NotSplittable, match="outside site-packages"):
        split_by_package(tmp_path, SITE, (), (), pip_target=True)
