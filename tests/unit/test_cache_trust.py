"""What a zip from the shared cache holds, read from its own metadata, against the fingerprint."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from pulumi_lambda_layers.build.cache import held_packages, package_mismatch

SP = "python/lib/python3.11/site-packages"


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def test_python_packages_are_the_top_level_dist_info_folders(tmp_path: Path) -> None:
    layer = _zip(tmp_path / "l.zip", {
        f"{SP}/PyYAML-6.0.1.dist-info/METADATA": b"", f"{SP}/yaml/__init__.py": b"",
        f"{SP}/typing_extensions-4.12.2.dist-info/WHEEL": b"",
        f"{SP}/setuptools/_vendor/packaging-24.0.dist-info/METADATA": b"",  # vendored: not its own
        "python/six-1.16.0.dist-info/METADATA": b""})
    assert held_packages(layer, "lock") == {"pyyaml": "6.0.1", "typing-extensions": "4.12.2",
                                            "six": "1.16.0"}
    assert held_packages(layer, "source_dir") is None


def test_node_packages_are_the_package_json_of_each_node_modules_folder(tmp_path: Path) -> None:
    layer = _zip(tmp_path / "l.zip", {
        "nodejs/node_modules/a/package.json": json.dumps({"name": "a", "version": "1.0.0"}).encode(),
        "nodejs/node_modules/a/dist/esm/package.json": b'{"type": "module"}',
        "nodejs/node_modules/@s/b/package.json": json.dumps({"version": "2.0.0"}).encode(),
        "nodejs/node_modules/a/node_modules/c/package.json": b'{"version": "3.1.0"}',
        "nodejs/node_modules/d/package.json": b"not json"})
    assert held_packages(layer, "package_json") == {
        "a": "1.0.0", "@s/b": "2.0.0", "a>c": "3.1.0", "d": "(unreadable package.json)"}


def test_a_mismatch_names_each_difference() -> None:
    assert package_mismatch({"numpy": "1.26.4"}, {"numpy": "1.26.4"}) == ""
    assert package_mismatch({"six": "1.16"}, {"six": "1.16.0"}) == "", "the same version"
    assert package_mismatch({"numpy": "1.26.3"}, {"numpy": "1.26.4"}) == \
        "holds numpy 1.26.3, the lock says 1.26.4"
    assert package_mismatch({"x": "1"}, {"y": "2"}) == \
        "holds x 1, which the lock does not list; lacks y 2, which the lock lists"
    assert package_mismatch({"pkg": "0.1"}, {"pkg": "@https://host/pkg.whl"}) == "", "URL pin"
    assert package_mismatch({}, {"pkg": "@https://host/pkg.whl"}).startswith("lacks pkg")
    many = package_mismatch({}, {n: "1" for n in "abcde"})
    assert many.endswith("(and 2 more)") and many.count("lacks") == 3
