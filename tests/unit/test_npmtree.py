"""npm's rules as npmtree models them: ranges, optional-set pruning, bins, the hidden lockfile."""

from __future__ import annotations

import json

import pytest

from pulumi_lambda_layers.build import npmtree


@pytest.mark.parametrize("version,spec,ok", [
    ("20.20.2", ">=18", True), ("20.20.2", "^18.17.0 || ^20.3.0 || >=21.0.0", True),
    ("20.2.0", "^18.17.0 || ^20.3.0", False), ("16.0.0", ">= 18.0.0", False),
    ("20.1.0", "20.x", True), ("21.0.0", "~20.1", False), ("0.2.5", "^0.2.3", True),
    ("0.3.0", "^0.2.3", False), ("1.5.0", "1.2 - 1.6", True), ("11.0.0", "*", True),
])
def test_ranges(version: str, spec: str, ok: bool) -> None:
    assert npmtree.satisfies(version, spec) is ok


def test_a_range_it_cannot_read_is_unsupported() -> None:
    with pytest.raises(npmtree.Unsupported):
        npmtree.satisfies("20.0.0", ">=20 <banana")


def _lock(packages: dict[str, dict[str, object]]) -> dict[str, object]:
    return {"name": "x", "version": "1.0.0", "lockfileVersion": 3, "requires": True,
            "packages": {"": {"name": "x", "version": "1.0.0",
                              "dependencies": {"a": "1.0.0"}}, **packages}}


def _pkg(version: str = "1.0.0", **meta: object) -> dict[str, object]:
    return {"version": version, "integrity": "sha512-AAAA", **meta}


def test_a_failed_optional_package_takes_its_own_dependencies_along() -> None:
    # a -> wasm (optional, wrong cpu) -> runtime -> tslib: npm installs a alone; shared stays.
    lock = _lock({
        "node_modules/a": _pkg(optionalDependencies={"wasm": "1.0.0"},
                               dependencies={"shared": "1.0.0"}),
        "node_modules/wasm": _pkg(optional=True, cpu=["wasm32"],
                                  dependencies={"runtime": "1.0.0", "shared": "1.0.0"}),
        "node_modules/runtime": _pkg(optional=True, dependencies={"tslib": "1.0.0"}),
        "node_modules/tslib": _pkg(optional=True),
        "node_modules/shared": _pkg(),
        "node_modules/devtool": _pkg(dev=True),
    })
    units = npmtree.installed(lock, "x64")  # type: ignore[arg-type]
    assert [u.path for u in units] == ["node_modules/a", "node_modules/shared"]


def test_a_non_optional_platform_package_is_left_to_npm() -> None:
    lock = _lock({"node_modules/a": _pkg(os=["darwin"])})
    with pytest.raises(npmtree.Unsupported):
        npmtree.installed(lock, "x64")  # type: ignore[arg-type]


def test_bins_are_normalized_and_linked_from_the_nearest_node_modules() -> None:
    units = [npmtree.Unit("node_modules/@s/tool", {"bin": "./bin//t.js"}),
             npmtree.Unit("node_modules/a/node_modules/b", {"bin": {"x/y": "cli.js"}})]
    assert units[0].bins == {"tool": "bin/t.js"}
    assert npmtree.bin_links(units) == {
        "node_modules/.bin/tool": ("../@s/tool/bin/t.js", "node_modules/@s/tool/bin/t.js"),
        "node_modules/a/node_modules/.bin/y": ("../b/cli.js", "node_modules/a/node_modules/b/cli.js"),
    }


def test_hidden_lockfile_needs_npms_default_formatting() -> None:
    lock = _lock({"node_modules/a": _pkg()})
    text = json.dumps(lock, indent=2) + "\n"
    units = npmtree.installed(lock, "x64")  # type: ignore[arg-type]
    hidden = json.loads(npmtree.hidden_lockfile(text, units))
    assert list(hidden["packages"]) == ["node_modules/a"] and hidden["name"] == "x"
    with pytest.raises(npmtree.Unsupported):
        npmtree.hidden_lockfile(json.dumps(lock, indent=4) + "\n", units)
