"""Node.js layers package by package: the same bytes as npm ci + zip of the whole lock; a bump packs one package."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pulumi_lambda_layers import make_spec
from pulumi_lambda_layers.build.archive import make_zip
from pulumi_lambda_layers.build.pipeline import BuildResult, build_layer
from pulumi_lambda_layers.build.local import LocalBuilder
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from pulumi_lambda_layers.build.incremental import PackStats
from pulumi_lambda_layers.spec import LayerSpec
from tests.conftest import npm_locked_project

# sharp picks its native code from platform-specific optional packages (@img/sharp-linux-x64 or
# -arm64, libvips beside it) and drops the rest (darwin, musl, wasm32 with its own dependencies);
# semver and uuid have bin links. uuid is the small package the bump changes.
DEPS = {"sharp": "0.34.5", "uuid": "9.0.0"}
BUMPED = {**DEPS, "uuid": "9.0.1"}


@pytest.fixture(scope="module")
def locks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("node-packs")
    return {"base": npm_locked_project(root / "base", DEPS),
            "bumped": npm_locked_project(root / "bumped", BUMPED)}


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _spec(manifest: Path, arch: str) -> LayerSpec:
    return make_spec(runtime="nodejs20.x", architecture=arch, package_json=str(manifest),
                     builder="local")


def _build(manifest: Path, arch: str, out: Path) -> tuple[BuildResult, PackStats]:
    result = build_layer(_spec(manifest, arch), out, log=lambda _m: None)
    # Without packs the layer came from npm ci as a whole and every comparison would be moot.
    assert result.packs is not None, "the layer was not assembled from packs"
    return result, result.packs


def _cold(manifest: Path, arch: str, work: Path) -> bytes:
    """npm ci of the whole lock and a zip of the tree: the non-incremental path's bytes."""
    spec = _spec(manifest, arch)
    root = work / "root"
    root.mkdir(parents=True)
    LocalBuilder().build(spec, fingerprint(spec), root, lambda _m: None)
    return make_zip(root, work / "cold.zip", spec.exclude, spec.slim).path.read_bytes()


def _packs(cache: Path) -> set[Path]:
    return set((cache / "packs").rglob("*.pack"))


@pytest.mark.parametrize("arch,native", [("x86_64", "@img/sharp-linux-x64"),
                                         ("arm64", "@img/sharp-linux-arm64")])
def test_assembled_layer_is_byte_identical_to_npm_ci(locks: dict[str, Path], tmp_path: Path,
                                                     cache: Path, arch: str, native: str) -> None:
    first, stats = _build(locks["base"], arch, tmp_path / "first.zip")
    assert f"node_modules/{native}" in stats.packed
    assert not any("musl" in p or "darwin" in p or "tslib" in p for p in stats.packed)
    cold = _cold(locks["base"], arch, tmp_path / "cold")
    assert first.zip.path.read_bytes() == cold
    with zipfile.ZipFile(first.zip.path) as zf:
        names = set(zf.namelist())
    # The tree-wide files npm writes are there too, so the comparison covers them.
    assert {"nodejs/node_modules/.package-lock.json", "nodejs/node_modules/.bin/uuid",
            "nodejs/node_modules/.bin/semver"} <= names


def test_one_package_bump_packs_only_that_package(locks: dict[str, Path], tmp_path: Path,
                                                  cache: Path) -> None:
    _, base = _build(locks["base"], "x86_64", tmp_path / "base.zip")
    before = _packs(cache)
    assert len(before) == len(base.packed)
    bumped, stats = _build(locks["bumped"], "x86_64", tmp_path / "bumped.zip")
    assert stats.packed == ("node_modules/uuid",)
    assert len(stats.reused) == len(base.packed) - 1
    created = _packs(cache) - before
    assert len(created) == 1, created
    with zipfile.ZipFile(bumped.zip.path) as zf:
        uuid_files = [n for n in zf.namelist() if n.startswith("nodejs/node_modules/uuid/")]
    # uuid's files, plus the hidden lockfile and the two .bin links made for this tree.
    assert stats.files_compressed == len(uuid_files) + 3


def test_bumped_layer_is_byte_identical_to_npm_ci_of_the_bumped_lock(
        locks: dict[str, Path], tmp_path: Path, cache: Path) -> None:
    _build(locks["base"], "x86_64", tmp_path / "base.zip")
    bumped, stats = _build(locks["bumped"], "x86_64", tmp_path / "bumped.zip")
    assert stats.reused
    assert bumped.zip.path.read_bytes() == _cold(locks["bumped"], "x86_64", tmp_path / "cold")
