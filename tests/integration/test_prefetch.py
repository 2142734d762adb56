"""The lock's wheels fetched here for the build container's pip, against real local indexes:
which files, from which indexes, and when the container's pip must ask the index itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pulumi_lambda_layers.build.index import links
from pulumi_lambda_layers.build.prefetch import _python_may_fit, fetch_wheels, wheel_fits
from tests.local_index import make_sdist, make_wheel, serve_index, sha256_hex


@pytest.mark.parametrize(("filename", "python", "machine", "fits"), [
    ("numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "3.11",
     "aarch64", True),
    ("numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl", "3.11",
     "x86_64", False),
    ("numpy-1.26.4-cp311-cp311-manylinux_2_28_x86_64.whl", "3.11", "x86_64", True),
    ("numpy-1.26.4-cp311-cp311-manylinux1_x86_64.whl", "3.11", "x86_64", True),
    ("numpy-1.26.4-cp311-cp311-linux_x86_64.whl", "3.11", "x86_64", True),
    ("numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.whl", "3.11", "x86_64", False),
    ("numpy-1.26.4-cp311-cp311-musllinux_1_1_x86_64.whl", "3.11", "x86_64", False),
    ("numpy-1.26.4-cp311-cp311-macosx_11_0_arm64.whl", "3.11", "aarch64", False),
    ("numpy-1.26.4-cp311-cp311-win_amd64.whl", "3.11", "x86_64", False),
    ("numpy-1.26.3-cp311-cp311-manylinux_2_28_x86_64.whl", "3.11", "x86_64", False),  # version
    ("cryptography-43.0.1-cp39-abi3-manylinux_2_28_aarch64.whl", "3.11", "aarch64", True),
    ("cryptography-43.0.1-cp312-abi3-manylinux_2_28_aarch64.whl", "3.11", "aarch64", False),
    ("urllib3-2.2.3-py3-none-any.whl", "3.11", "aarch64", True),
    ("six-1.16.0-py2.py3-none-any.whl", "3.13", "x86_64", True),
    ("tomli-2.0.1-py311-none-any.whl", "3.11", "x86_64", True),
    ("tomli-2.0.1-py312-none-any.whl", "3.11", "x86_64", False),
    ("oldie-1.0-py2-none-any.whl", "3.11", "x86_64", False),
    ("numpy-1.26.4-cp311-none-any.whl", "3.11", "x86_64", True),
    ("numpy-1.26.4-pp310-pypy310_pp73-manylinux_2_17_x86_64.whl", "3.10", "x86_64", False),
    ("numpy-1.26.4.tar.gz", "3.11", "x86_64", False),
])
def test_a_wheel_fits_when_one_of_its_tags_could_be_the_images(
        filename: str, python: str, machine: str, fits: bool) -> None:
    name, version = filename.split("-")[:2]
    assert wheel_fits(filename, name, "1.26.4" if name == "numpy" else version, python,
                      machine) is fits


@pytest.mark.parametrize(("requires", "fits"), [
    ("", True), (">=3.8", True), (">=3.12", False), ("<3", False), (">=3.11.1", True),
    ("<3.11.5", True), ("not a specifier", True)])
def test_only_a_requires_python_no_micro_version_meets_leaves_a_wheel_out(
        requires: str, fits: bool) -> None:
    assert _python_may_fit(requires, "3.11") is fits


def test_the_page_parser_reads_data_requires_python_and_the_sha256_and_no_paths() -> None:
    page = ('<a href="../../files/a-1.0-py3-none-any.whl#sha256=ab12" '
            'data-requires-python="&gt;=3.12">a-1.0-py3-none-any.whl</a><a href="b.tar.gz">b</a>'
            '<a href="/files/..%2F..%2Fa-1.0-py3-none-any.whl">up</a><a href="/f/.hidden">h</a>')
    found = links(page, "https://idx.example/simple/a/")
    assert [(link.filename, link.url, link.fragment, link.requires_python) for link in found] == [
        ("a-1.0-py3-none-any.whl", "https://idx.example/files/a-1.0-py3-none-any.whl",
         {"sha256": "ab12"}, ">=3.12"),
        ("b.tar.gz", "https://idx.example/simple/a/b.tar.gz", {}, "")]


def test_wheels_from_both_indexes_only_the_targets_and_only_the_locks(tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    alpha = make_wheel(first, "alpha", "1.0")
    make_wheel(first, "alpha", "2.0")  # another version: not fetched
    beta = make_wheel(second, "beta", "1.0")
    # A platform wheel of beta for another architecture and one for this target.
    arm = shutil.copy(beta, second / "beta-1.0-cp311-cp311-manylinux_2_17_aarch64.whl")
    shutil.copy(beta, second / "beta-1.0-cp311-cp311-manylinux_2_17_x86_64.whl")
    log: list[str] = []
    with serve_index(first) as a, serve_index(second) as b:
        text = (f"--index-url {a.url}\n--extra-index-url {b.url}\n"
                f"alpha==1.0 --hash=sha256:{sha256_hex(alpha)}\nbeta==1.0\n")
        got = fetch_wheels(text, "3.11", "aarch64", tmp_path / "out", {}, None, log.append)
        # beta's pure wheel and its aarch64 one: pip in the image picks between them.
        assert got is not None and (got.packages, got.files) == (2, 3), log
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
            alpha.name, arm.name, beta.name], log
        # Both indexes asked for both pages (pip merges them), and only these two files fetched.
        assert sorted(a.log.paths) == ["/files/alpha-1.0-py3-none-any.whl", "/simple/alpha/",
                                       "/simple/beta/"]
        assert sorted(b.log.paths) == [f"/files/{arm.name}", f"/files/{beta.name}",
                                       "/simple/alpha/", "/simple/beta/"]
        assert log == ["docker: fetched 3 wheels (0.0 MB) of 2 packages here (no index asked in "
                       "the container)"]


def test_the_container_asks_the_index_when_the_host_cannot_choose_as_pip_would(
        tmp_path: Path) -> None:
    files, other = tmp_path / "files", tmp_path / "other"
    make_wheel(files, "alpha", "1.0")
    make_sdist(files, "gamma", "1.0")
    make_wheel(other, "alpha", "1.0", code="# other bytes\n")
    log: list[str] = []
    with serve_index(files) as a, serve_index(other) as b:
        cases = {
            "gamma==1.0\n": "gamma 1.0 has no wheel for CPython 3.11 on Linux x86_64 (its "
                            "sdist is built in the container)",
            f"--extra-index-url {b.url}\nalpha==1.0\n":
                "alpha-1.0-py3-none-any.whl is on two indexes, not known to be the same bytes "
                "(which one pip takes is its choice)",
            "--find-links /wheels\nalpha==1.0\n": "the requirements give --find-links",
            "--no-binary :all:\nalpha==1.0\n": "the requirements give --no-binary",
            "alpha>=1.0\n": "'alpha>=1.0' is not pinned to one version of an index",
            'alpha==1.0 ; sys_platform == "linux"\n':
                "'alpha==1.0 ; sys_platform == \"linux\"' is not pinned to one version of an "
                "index",
            "alpha==1.0 --hash=sha256:00ff\n": "none of the 1 wheels of alpha 1.0 for CPython "
                                               "3.11 on Linux x86_64 has one of the lock's "
                                               "sha256 hashes",
        }
        for i, (text, why) in enumerate(cases.items()):
            log.clear()
            out = tmp_path / f"out-{i}"
            assert fetch_wheels(f"--index-url {a.url}\n{text}", "3.11", "x86_64", out, {}, None,
                                log.append) is None, text
            assert log == [f"docker: {why}: the container's pip asks the index"], text
            assert not any(out.glob("*.whl")), text
        # Nothing was downloaded for any of them: the pages decide first.
        assert not [p for p in a.log.paths + b.log.paths if p.startswith("/files/")]


def test_a_private_index_gets_the_urls_token_never_netrcs_and_no_log_shows_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = tmp_path / "files"
    make_wheel(files, "alpha", "1.0")
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login ci-bot password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    log: list[str] = []
    with serve_index(files, auth=[("ci-bot", "s3cret")]) as index:
        with_token = index.url.replace("http://", "http://ci-bot:s3cret@")
        got = fetch_wheels(f"--index-url {with_token}\nalpha==1.0\n", "3.11", "x86_64",
                           tmp_path / "a", {"NETRC": str(netrc)}, None, log.append)
        assert got is not None and got.files == 1, log
        # The container's pip has no netrc (HOME is /tmp): nor has its fetch here.
        assert fetch_wheels(f"--index-url {index.url}\nalpha==1.0\n", "3.11", "x86_64",
                            tmp_path / "b", {"NETRC": str(netrc)}, None, log.append) is None
    assert "answered HTTP 401: the container's pip asks the index" in log[-1], log
    assert not any("s3cret" in line for line in log), log
