"""Bad input is refused at spec time with the argument named and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulumi_lambda_layers import SpecError, make_spec
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from tests.conftest import write


def test_valid_spec_defaults(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "six==1.16.0\n")
    spec = make_spec(runtime="python3.12", requirements=str(req))
    assert spec.architecture == "x86_64"
    assert spec.builder == "auto"
    assert spec.build_image == "public.ecr.aws/sam/build-python3.12:latest-x86_64"
    assert spec.runtime.layer_prefix == "python/lib/python3.12/site-packages"


@pytest.mark.parametrize("runtime,hint", [("python3.1l", "python3.11"), ("nodejs20", "nodejs20.x")])
def test_unknown_runtime_hints(tmp_path: Path, runtime: str, hint: str) -> None:
    req = write(tmp_path / "requirements.txt", "six\n")
    with pytest.raises(SpecError) as err:
        make_spec(runtime=runtime, requirements=str(req))
    assert err.value.argument == "runtime"
    assert f"did you mean {hint!r}" in str(err.value)


@pytest.mark.parametrize("arch,hint", [("aarch64", "'arm64'"), ("amd64", "'x86_64'"),
                                       ("arm46", "'arm64'")])
def test_unknown_architecture_hints(tmp_path: Path, arch: str, hint: str) -> None:
    req = write(tmp_path / "requirements.txt", "six\n")
    with pytest.raises(SpecError) as err:
        make_spec(runtime="python3.11", architecture=arch, requirements=str(req))
    assert err.value.argument == "architecture"
    assert hint in str(err.value)


def test_misspelt_key_gets_did_you_mean(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "six\n")
    with pytest.raises(SpecError, match="did you mean 'requirements'"):
        make_spec(runtime="python3.11", requirments=str(req))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        make_spec(runtime="python3.11", requirements=str(tmp_path / "nope.txt"))
    assert err.value.argument == "requirements" and "does not exist" in str(err.value)


def test_empty_file(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "\n  \n")
    with pytest.raises(SpecError, match="is empty"):
        make_spec(runtime="python3.11", requirements=str(req))


def test_two_sources(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "six\n")
    with pytest.raises(SpecError, match="two dependency sources"):
        make_spec(runtime="python3.11", requirements=str(req), source_dir=str(tmp_path))


def test_no_source() -> None:
    with pytest.raises(SpecError, match="exactly one of"):
        make_spec(runtime="python3.11")


def test_language_mismatch(tmp_path: Path) -> None:
    pkg = write(tmp_path / "package.json", '{"dependencies": {}}')
    with pytest.raises(SpecError, match="cannot build a python3.11 layer"):
        make_spec(runtime="python3.11", package_json=str(pkg))


def test_malformed_requirement_line_names_line(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "six==1.16.0\n# ok\nnumpy=>1.0\n")
    spec = make_spec(runtime="python3.11", requirements=str(req))
    with pytest.raises(SpecError) as err:
        fingerprint(spec)
    assert "line 3" in str(err.value) and "numpy=>1.0" in str(err.value)


def test_lock_must_be_pinned(tmp_path: Path) -> None:
    lock = write(tmp_path / "requirements.lock", "six==1.16.0\nrequests>=2\n")
    spec = make_spec(runtime="python3.11", lock=str(lock))
    with pytest.raises(SpecError, match="line 2: 'requests>=2' is not pinned"):
        fingerprint(spec)


def test_unknown_builder_and_slim(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "six\n")
    with pytest.raises(SpecError, match="did you mean 'docker'"):
        make_spec(runtime="python3.11", requirements=str(req), builder="dokcer")
    with pytest.raises(SpecError, match="did you mean 'strip_tests'"):
        make_spec(runtime="python3.11", requirements=str(req), slim=["strip_test"])


def test_proxy_and_ca_bundle_checked(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "six\n")
    with pytest.raises(SpecError, match="did you mean 'HTTPS_PROXY'"):
        make_spec(runtime="python3.11", requirements=str(req), proxy={"HTTPS_PROXI": "x"})
    bad_ca = write(tmp_path / "ca.pem", "not a cert")
    with pytest.raises(SpecError, match="no PEM certificate"):
        make_spec(runtime="python3.11", requirements=str(req), ca_bundle=str(bad_ca))


def test_lock_markers_follow_the_target(tmp_path: Path) -> None:
    lock = write(tmp_path / "requirements.lock",
                 "six==1.16.0\n"
                 "numpy==1.26.4 ; platform_machine == 'x86_64'\n"
                 "tomli==2.0.1 ; python_version < '3.11'\n")
    x86 = fingerprint(make_spec(runtime="python3.11", lock=str(lock)))
    arm = fingerprint(make_spec(runtime="python3.11", architecture="arm64", lock=str(lock)))
    py310 = fingerprint(make_spec(runtime="python3.10", architecture="arm64", lock=str(lock)))
    assert x86.packages == {"numpy": "1.26.4", "six": "1.16.0"}
    assert arm.packages == {"six": "1.16.0"}
    assert py310.packages == {"six": "1.16.0", "tomli": "2.0.1"}


@pytest.mark.parametrize("runtime, words", [("python3.8", "retired python3.8"),
                                            ("nodejs16.x", "use nodejs22.x"),
                                            ("nodejs12.x", "cannot load ES module handlers")])
def test_retired_runtimes_are_named_with_the_replacement(tmp_path: Path, runtime: str,
                                                          words: str) -> None:
    req = write(tmp_path / "requirements.txt", "six\n")
    with pytest.raises(SpecError, match=words):
        make_spec(runtime=runtime, requirements=str(req))
