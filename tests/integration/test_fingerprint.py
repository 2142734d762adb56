"""content_hash: same content -> same hash anywhere; a real change (pin, transitive, arch, image) -> new."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pulumi_lambda_layers import SpecError, make_spec
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from pulumi_lambda_layers.tools import uv_command
from tests.local_index import make_wheel
from tests.conftest import npm_locked_project, write

REQS = "requests==2.32.3\nsix==1.16.0\n"


def _hash(**kwargs: object) -> str:
    return fingerprint(make_spec(**kwargs)).content_hash


def test_same_spec_from_two_checkouts_same_hash(tmp_path: Path) -> None:
    a = write(tmp_path / "checkout-a/layers/deps/requirements.txt", REQS)
    b = write(tmp_path / "elsewhere/b/requirements.txt", REQS)
    assert _hash(runtime="python3.11", requirements=str(a)) == \
        _hash(runtime="python3.11", requirements=str(b))


def test_unpinned_requirements_resolve_transitively(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "requests==2.32.3\n")
    fp = fingerprint(make_spec(runtime="python3.11", requirements=str(req)))
    # The transitive set is pinned, so an upstream release of urllib3 shows up as a new hash.
    assert {"requests", "urllib3", "idna", "certifi", "charset-normalizer"} <= set(fp.packages)
    assert fp.packages["requests"] == "2.32.3"
    assert all(fp.packages.values())


def test_transitive_upgrade_changes_hash(tmp_path: Path) -> None:
    # A local index: pll-a (unpinned below) needs pll-b>=1. Only a new release of pll-b changes;
    # the requirements file stays byte for byte the same, so only the transitive pin can move it.
    index = tmp_path / "index"
    make_wheel(index, "pll_a", "1.0", ("pll-b>=1",))
    make_wheel(index, "pll_b", "1.0")
    req = write(tmp_path / "requirements.txt", f"--no-index\n--find-links {index}\npll-a\n")
    spec = make_spec(runtime="python3.11", requirements=str(req))
    before = fingerprint(spec)
    assert before.packages == {"pll-a": "1.0", "pll-b": "1.0"}
    assert fingerprint(spec).content_hash == before.content_hash  # same index, same hash
    make_wheel(index, "pll_b", "1.1")
    after = fingerprint(spec)
    assert after.packages == {"pll-a": "1.0", "pll-b": "1.1"}
    assert after.content_hash != before.content_hash
    assert "pll-b==1.1" in after.install_files["requirements.txt"]


def test_find_links_relative_to_the_requirements_file_builds_from_anywhere(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pip reads a relative --find-links folder from the requirements file's folder; the builder
    # installs from a copy of the file elsewhere, so the folder must travel as an absolute path.
    from pulumi_lambda_layers.build.pipeline import build_layer

    make_wheel(tmp_path / "proj/wheels", "pll_a", "1.0")
    req = write(tmp_path / "proj/requirements.txt", "--no-index\n--find-links ./wheels\npll-a\n")
    monkeypatch.chdir(tmp_path)  # not the file's folder
    spec = make_spec(runtime="python3.11", requirements=str(req), builder="local")
    fp = fingerprint(spec)
    assert f"--find-links {tmp_path / 'proj/wheels'}" in fp.install_files["requirements.txt"]
    result = build_layer(spec, tmp_path / "layer.zip", fp=fp, log=lambda _m: None)
    assert result.packages == {"pll-a": "1.0"}
    moved = tmp_path / "elsewhere"
    (tmp_path / "proj").rename(moved)  # another checkout folder: same content, same hash
    assert fingerprint(make_spec(runtime="python3.11", requirements=str(moved / "requirements.txt"),
                                 builder="local")).content_hash == fp.content_hash


def test_pin_arch_image_and_builder_change_hash(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", REQS)
    bumped = write(tmp_path / "bumped/requirements.txt", REQS.replace("six==1.16.0", "six==1.17.0"))
    base = _hash(runtime="python3.11", requirements=str(req))
    assert base != _hash(runtime="python3.11", requirements=str(bumped))
    assert base != _hash(runtime="python3.11", architecture="arm64", requirements=str(req))
    assert base != _hash(runtime="python3.11", requirements=str(req), image="example/other:1")
    assert base != _hash(runtime="python3.12", requirements=str(req))
    # Options that never change the bytes do not change the hash.
    assert base == _hash(runtime="python3.11", requirements=str(req), network_mode="host",
                         proxy={"HTTPS_PROXY": "http://proxy:3128"})


def test_comments_and_order_do_not_change_hash(tmp_path: Path) -> None:
    a = write(tmp_path / "a/requirements.txt", REQS)
    b = write(tmp_path / "b/requirements.txt", "# our deps\nsix==1.16.0   \n\nrequests==2.32.3\n")
    assert _hash(runtime="python3.11", requirements=str(a)) == \
        _hash(runtime="python3.11", requirements=str(b))


def test_uv_lock_in_sync_and_out_of_sync(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    write(project / "pyproject.toml", '[project]\nname = "demo"\nversion = "0.1.0"\n'
          'requires-python = ">=3.11"\ndependencies = ["six==1.16.0"]\n')
    subprocess.run([*uv_command(), "lock", "--project", str(project), "-q"], check=True)
    fp = fingerprint(make_spec(runtime="python3.11", lock=str(project / "uv.lock")))
    assert fp.packages == {"six": "1.16.0"}
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"six==1.16.0"', '"six==1.16.0", "idna"'))
    with pytest.raises(SpecError, match="(?s)does not match .*run `uv lock`"):
        fingerprint(make_spec(runtime="python3.11", lock=str(project / "uv.lock")))


def test_unchanged_uv_lock_is_not_exported_again(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # `uv export --locked` takes half a second; a no-change preview reuses its last answer for
    # the same uv.lock + pyproject.toml, and asks uv again as soon as either changes.
    from pulumi_lambda_layers.sources import python as fingerprint_module

    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    project = tmp_path / "proj"
    write(project / "pyproject.toml", '[project]\nname = "demo"\nversion = "0.1.0"\n'
          'requires-python = ">=3.11"\ndependencies = ["six==1.16.0"]\n')
    subprocess.run([*uv_command(), "lock", "--project", str(project), "-q"], check=True)
    spec = make_spec(runtime="python3.11", lock=str(project / "uv.lock"))
    first = fingerprint(spec).content_hash
    calls: list[list[str]] = []
    real_run = subprocess.run

    def counting_run(cmd: list[str], *args: object, **kwargs: object) -> object:
        calls.append(cmd)
        return real_run(cmd, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(fingerprint_module.subprocess, "run", counting_run)
    assert fingerprint(spec).content_hash == first
    assert calls == []
    (project / "pyproject.toml").write_text((project / "pyproject.toml").read_text()
                                            .replace("six==1.16.0", "six==1.17.0"))
    with pytest.raises(SpecError, match="does not match"):
        fingerprint(spec)
    assert len(calls) == 1


def test_poetry_lock(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", '[tool.poetry.dependencies]\npython = "^3.11"\n'
          'six = "1.16.0"\nidna = "*"\n')
    lock = write(tmp_path / "poetry.lock", '''
[[package]]
name = "six"
version = "1.16.0"
groups = ["main"]
files = [{file = "six-1.16.0-py2.py3-none-any.whl", hash = "sha256:abc"}]

[[package]]
name = "pytest"
version = "8.0.0"
groups = ["dev"]

[metadata]
lock-version = "2.1"
''')
    with pytest.raises(SpecError, match="idna not locked"):
        fingerprint(make_spec(runtime="python3.11", lock=str(lock)))
    (tmp_path / "pyproject.toml").write_text('[tool.poetry.dependencies]\nsix = "1.16.0"\n')
    assert fingerprint(make_spec(runtime="python3.11", lock=str(lock))).packages == {"six": "1.16.0"}


def test_package_lock_manifest_and_mismatch(tmp_path: Path) -> None:
    manifest = npm_locked_project(tmp_path / "n", {"is-number": "7.0.0"})
    fp = fingerprint(make_spec(runtime="nodejs20.x", package_json=str(manifest)))
    assert fp.packages == {"is-number": "7.0.0"}
    manifest.write_text(json.dumps({"name": "l", "version": "1.0.0",
                                    "dependencies": {"is-number": "7.0.0", "is-odd": "3.0.1"}}))
    with pytest.raises(SpecError, match="out of sync with package.json: is-odd"):
        fingerprint(make_spec(runtime="nodejs20.x", package_json=str(manifest)))


def test_package_json_without_lock_is_resolved(tmp_path: Path) -> None:
    manifest = write(tmp_path / "package.json", json.dumps({"dependencies": {"is-odd": "3.0.1"}}))
    fp = fingerprint(make_spec(runtime="nodejs20.x", package_json=str(manifest)))
    assert fp.packages["is-odd"] == "3.0.1" and "is-number" in fp.packages
    assert "package-lock.json" in fp.install_files


def test_source_dir_hash_ignores_location_and_bytecode(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write(tmp_path / name / "python/mylib/__init__.py", "VALUE = 1\n")
    write(tmp_path / "b/python/mylib/__pycache__/__init__.cpython-311.pyc", "junk")
    ha = _hash(runtime="python3.11", source_dir=str(tmp_path / "a"))
    assert ha == _hash(runtime="python3.11", source_dir=str(tmp_path / "b"))
    (tmp_path / "b/python/mylib/__init__.py").write_text("VALUE = 2\n")
    assert ha != _hash(runtime="python3.11", source_dir=str(tmp_path / "b"))


def test_cli_diff_names_added_removed_and_changed_packages(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pulumi_lambda_layers.cli import main as cli

    old = write(tmp_path / "old/requirements.lock", "six==1.16.0\nidna==3.10\n")
    new = write(tmp_path / "new/requirements.lock", "six==1.17.0\ncertifi==2024.8.30\n")
    target = ["--runtime", "python3.11", "--arch", "arm64"]
    assert cli(["diff", str(old), str(new), *target]) == 1
    text = capsys.readouterr().out
    for line in ("  + certifi 2024.8.30", "  - idna 3.10", "  ~ six 1.16.0 -> 1.17.0"):
        assert line in text, text
    assert cli(["diff", str(old), str(new), *target, "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["changed"] is True and data["packages"] == [
        {"name": "certifi", "old": None, "new": "2024.8.30"},
        {"name": "idna", "old": "3.10", "new": None},
        {"name": "six", "old": "1.16.0", "new": "1.17.0"}]
    same = write(tmp_path / "same/requirements.lock", "idna==3.10\nsix==1.16.0\n")
    assert cli(["diff", str(old), str(same), *target]) == 0
    assert "no change: content hash" in capsys.readouterr().out
    assert cli(["diff", str(old), str(tmp_path / "missing.lock"), *target]) == 2
