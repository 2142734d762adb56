"""A Node.js layer through the Pulumi resource: its inputs and the provider's diff list npm
packages old -> new, so `pulumi preview --diff` shows what changed (real npm locks)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pulumi
import pytest

from pulumi_lambda_layers.resources import diff_props
from tests.conftest import npm_locked_project
from tests.pulumi_mocks import RecordingMocks, use_mocks


@pytest.fixture
def mocks() -> RecordingMocks:
    return use_mocks()


@pytest.fixture(scope="module")
def projects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    # is-odd 2.0.0 needs is-number ^4, 3.0.1 needs ^6: one direct bump moves a transitive one too.
    root = tmp_path_factory.mktemp("node-projects")
    old = npm_locked_project(root / "old", {"is-odd": "2.0.0"})
    moved = root / "elsewhere/old"
    moved.mkdir(parents=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(old.parent / name, moved / name)
    return {"old": old, "moved": moved / "package.json",
            "new": npm_locked_project(root / "new", {"is-odd": "3.0.1"})}


def _package_changes(olds: dict[str, Any], news: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """What the engine shows for the `packages` input: name -> (old, new) where they differ."""
    old, new = olds["packages"], news["packages"]
    return {n: (old.get(n), new.get(n)) for n in sorted({*old, *new}) if old.get(n) != new.get(n)}


@pulumi.runtime.test
def test_node_layer_diff_lists_npm_packages_old_to_new(mocks: RecordingMocks,
                                                       projects: dict[str, Path]) -> Any:
    from pulumi_lambda_layers import LambdaLayerBuild

    layers = {name: LambdaLayerBuild(name, runtime="nodejs20.x", architecture="arm64",
                                     package_json=str(path), layer_name="fn-deps", frozen=True)
              for name, path in projects.items()}

    def check(_: Any) -> None:
        props = {name: mocks.made[name][1] for name in layers}
        assert not any("input_errors" in p for p in props.values()), props
        assert props["old"]["packages"] == {"is-odd": "2.0.0", "is-number": "4.0.0"}
        assert props["new"]["packages"] == {"is-odd": "3.0.1", "is-number": "6.0.0"}

        bump = diff_props(props["old"], props["new"])
        assert bump.changes is True and bump.replaces == ["content_hash"]
        assert bump.delete_before_replace is False
        assert _package_changes(props["old"], props["new"]) == {
            "is-number": ("4.0.0", "6.0.0"), "is-odd": ("2.0.0", "3.0.1")}

        # The same lock in another checkout: same hash, same packages, nothing to do. (Two
        # resources stand in for one resource in two checkouts: the same owner, as it would be.)
        same = diff_props(props["old"], {**props["moved"], "owner": props["old"]["owner"]})
        assert same.changes is False and same.replaces == []
        assert _package_changes(props["old"], props["moved"]) == {}

    return pulumi.Output.all(*(layer.content_hash for layer in layers.values())).apply(check)
