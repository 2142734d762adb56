"""The local builder and sdists: a pure-Python one is built into a py3-none-any wheel here (kept
by the sdist's sha256), a native one is refused naming the package (auto then goes to Docker)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_lambda_layers import BuildError, make_spec
from pulumi_lambda_layers.build.local import LocalBuilder
from pulumi_lambda_layers.build.pipeline import BuildResult, build_layer
from pulumi_lambda_layers.errors import NoCompatibleWheel
from pulumi_lambda_layers.runtimes import RUNTIMES
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from pulumi_lambda_layers.validate import inspect_zip
from tests.conftest import write
from tests.local_index import (
    LocalIndex,
    backend_wheels,
    make_sdist,
    make_wheel,
    serve_index,
    sha256_hex,
)

SITE = "python/lib/python3.11/site-packages"
# A setuptools wheel (and `wheel`, which setuptools < 70.1 builds wheels with) for the isolated
# build environments, served by the test index: the sdists' builds then need no registry. Debian's
# own setuptools wheel is patched for Debian's layout and cannot build wheels, so it is not used.
@pytest.fixture()
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIndex]:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    files = tmp_path / "files"
    files.mkdir()
    backend_wheels(files)
    make_sdist(files, "purepkg", "1.0")
    make_sdist(files, "nativepkg", "1.0", native=True)
    make_sdist(files, "platpkg", "1.0", platform_wheel=True)
    make_wheel(files, "wheelpkg", "2.0")
    with serve_index(files) as served:
        yield served


def _lock(path: Path, index_url: str, *pins: str) -> Path:
    return write(path, "\n".join([f"--index-url {index_url}", *pins]) + "\n")


def _build(lock: Path, out: Path, logs: list[str] | None = None) -> BuildResult:
    spec = make_spec(runtime="python3.11", lock=str(lock), builder="local")
    return build_layer(spec, out, log=(logs if logs is not None else []).append)


def _imports(zip_path: Path, where: Path, code: str) -> str:
    """stdout of `python -c code` with only the layer's unzipped site-packages added to its path."""
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(where)
    proc = subprocess.run([sys.executable, "-I", "-c", "import sys; sys.path.insert(0, "
                           f"{str(where / SITE)!r}); {code}"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(where / SITE)})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_local_builds_a_pure_python_sdist_and_it_imports_from_the_layer(
        index: LocalIndex, tmp_path: Path) -> None:
    lock = _lock(tmp_path / "requirements.lock", index.url, "purepkg==1.0", "wheelpkg==2.0")
    logs: list[str] = []
    result = _build(lock, tmp_path / "layer.zip", logs)
    assert result.builder == "local"
    assert result.packages == {"purepkg": "1.0", "wheelpkg": "2.0"}
    assert result.report.ok, str(result.report)
    assert inspect_zip(result.zip.path, RUNTIMES["python3.11"], "x86_64").ok
    assert any("building purepkg 1.0 from its sdist" in line for line in logs), logs
    assert index.log.downloads("purepkg-1.0.tar.gz") == 1
    assert "/simple/setuptools/" in index.log.paths, "the build backend comes from the same index"
    with zipfile.ZipFile(result.zip.path) as zf:
        names = set(zf.namelist())
    assert f"{SITE}/purepkg.py" in names
    assert not any(n.endswith("uv_cache.json") for n in names), "an install mark holds the time"
    out = _imports(result.zip.path, tmp_path / "unzipped",
                   "import purepkg, wheelpkg; print(purepkg.__file__, purepkg.VERSION)")
    assert out == f"{tmp_path / 'unzipped' / SITE / 'purepkg.py'} 1.0"
    wheels = list((tmp_path / "cache/sdist-wheels").glob("*/purepkg-1.0-py3-none-any.whl"))
    assert [w.parent.name for w in wheels] == [sha256_hex(index.wheels / "purepkg-1.0.tar.gz")]


def test_the_next_build_reuses_the_built_wheel_and_gives_the_same_bytes(
        index: LocalIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = _lock(tmp_path / "requirements.lock", index.url, "purepkg==1.0")
    first_logs: list[str] = []
    first = _build(lock, tmp_path / "a.zip", first_logs)
    # With only the built wheels left (no finished zip, no packs) the next build installs
    # purepkg again.
    for entry in (tmp_path / "cache").iterdir():
        if entry.name != "sdist-wheels":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    second_logs: list[str] = []
    second = _build(lock, tmp_path / "b.zip", second_logs)
    assert not any("from its sdist purepkg" in line for line in second_logs), second_logs
    assert any("purepkg 1.0: reusing the wheel built from its sdist" in line
               for line in second_logs), second_logs
    assert index.log.downloads("purepkg-1.0.tar.gz") == 1, "downloaded once, built once"
    assert first.zip.sha256 == second.zip.sha256
    # Built again from nothing (a new machine, a cleared cache): the same layer bytes.
    shutil.rmtree(tmp_path / "cache")
    third = _build(lock, tmp_path / "c.zip")
    assert third.zip.sha256 == first.zip.sha256
    # Another machine: the project checked out elsewhere, its own cache and temp folder.
    other = tmp_path / "machine-b" / "checkout" / "deep" / "project"
    moved = _lock(other / "requirements.lock", index.url, "purepkg==1.0")
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "machine-b" / "cache"))
    monkeypatch.setenv("TMPDIR", str((tmp_path / "machine-b" / "tmp").resolve()))
    (tmp_path / "machine-b" / "tmp").mkdir()
    elsewhere = _build(moved, other / "layer.zip")
    assert elsewhere.content_hash == first.content_hash
    assert elsewhere.zip.sha256 == first.zip.sha256


def test_lock_hashes_are_the_sdists_and_are_checked(index: LocalIndex, tmp_path: Path) -> None:
    digest = sha256_hex(index.wheels / "purepkg-1.0.tar.gz")
    good = _lock(tmp_path / "good/requirements.lock", index.url,
                 f"purepkg==1.0 --hash=sha256:{digest}")
    assert _build(good, tmp_path / "good.zip").packages == {"purepkg": "1.0"}
    bad = _lock(tmp_path / "bad/requirements.lock", index.url,
                f"purepkg==1.0 --hash=sha256:{'0' * 64}")
    with pytest.raises(BuildError, match=f"(?s)purepkg.*sha256 {digest}.*none of the lock's hashes"):
        _build(bad, tmp_path / "bad.zip")
    assert not (tmp_path / "bad.zip").exists()
    # The content hash covers the pin with the sdist's hash: another sdist is another layer.
    spec = make_spec(runtime="python3.11", lock=str(good), builder="local")
    assert f"purepkg==1.0 --hash=sha256:{digest}" in fingerprint(spec).canonical["content"]


def test_local_refuses_a_native_sdist_naming_it(index: LocalIndex, tmp_path: Path) -> None:
    lock = _lock(tmp_path / "requirements.lock", index.url, "nativepkg==1.0", "purepkg==1.0")
    with pytest.raises(BuildError) as err:
        _build(lock, tmp_path / "layer.zip")
    text = str(err.value)
    assert "install (local, python3.11 x86_64)" in text
    assert "nativepkg 1.0" in text and "not py3-none-any" in text
    # It ships C source: native without a build here.
    assert "ships nativepkg-1.0/nativepkg.c" in text, text
    assert "builder='docker'" in text
    assert not (tmp_path / "layer.zip").exists()
    # No compiled source, but the wheel built here is a platform one: refused too, naming it.
    lock = _lock(tmp_path / "plat/requirements.lock", index.url, "platpkg==1.0")
    with pytest.raises(BuildError) as err:
        _build(lock, tmp_path / "plat.zip")
    assert re.search(r"platpkg 1\.0 .*builds into platpkg-1\.0-cp3\d+-cp3\d+-linux_\w+\.whl",
                     str(err.value)), str(err.value)


def test_auto_gets_no_compatible_wheel_for_a_native_sdist_without_building_it_again(
        index: LocalIndex, tmp_path: Path) -> None:
    for pkg, builds in (("platpkg", 1), ("nativepkg", 0)):  # a C source: never built here
        lock = _lock(tmp_path / pkg / "requirements.lock", index.url, f"{pkg}==1.0")
        spec = make_spec(runtime="python3.11", lock=str(lock), builder="auto")
        fp = fingerprint(spec)
        for attempt in ("first", "second"):
            root = tmp_path / pkg / attempt
            root.mkdir()
            logs: list[str] = []
            with pytest.raises(NoCompatibleWheel, match=f"{pkg} 1.0 is published as an sdist"):
                LocalBuilder().build(spec, fp, root, logs.append)
            built = [line for line in logs if f"building {pkg}" in line]
            assert len(built) == (builds if attempt == "first" else 0), logs  # verdict kept
            assert not list(root.rglob(f"{pkg}*")), "nothing native is installed"


def test_sdist_comes_from_the_index_with_the_locks_credentials(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    files = tmp_path / "files"
    files.mkdir()
    backend_wheels(files)
    make_sdist(files, "purepkg", "1.0")
    with serve_index(files, auth={("ci-bot", "s3cret-token")}) as private:
        url = private.url.replace("http://", "http://ci-bot:s3cret-token@")
        lock = _lock(tmp_path / "requirements.lock", url, "purepkg==1.0")
        logs: list[str] = []
        result = _build(lock, tmp_path / "layer.zip", logs)
    assert result.packages == {"purepkg": "1.0"}
    assert private.log.downloads("purepkg-1.0.tar.gz") == 1
    assert not any(p.startswith("/files/purepkg") for p in private.log.denied), private.log.denied
    assert not any("s3cret-token" in line for line in logs)


def test_docopt_sdist_from_pypi_builds_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # docopt 0.6.2 is published as an sdist only; its build backend (setuptools) comes from PyPI.
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    lock = write(tmp_path / "requirements.lock", "docopt==0.6.2\n")
    result = _build(lock, tmp_path / "layer.zip")
    assert result.builder == "local" and result.packages == {"docopt": "0.6.2"}
    assert result.report.ok, str(result.report)
    assert _imports(result.zip.path, tmp_path / "unzipped",
                    "import docopt; print(docopt.__version__)") == "0.6.2"
