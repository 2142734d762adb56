"""`lambda-layers hash` and `diff` take every option that decides the content hash, and `hash`
prints the content hash `build` reports for the same options (real uv for the lock cases)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pulumi_lambda_layers.cli import main as cli
from tests.conftest import write

TARGET = ["--runtime", "python3.11", "--arch", "x86_64"]
# Each case: the source (a folder, or the pinned lock) and the options that decide the hash.
CASES = {
    "folder": ("folder", []),
    "exclude": ("folder", ["--exclude", "python/lib/python3.11/site-packages/notes.txt"]),
    "slim": ("folder", ["--slim", "strip_tests"]),
    "requirements": ("lock", ["--builder", "local"]),
    "locked": ("lock", ["--locked", "--builder", "local"]),
    "frozen": ("lock", ["--locked", "--frozen", "--builder", "local"]),
    "builder-auto": ("lock", ["--locked", "--builder", "auto"]),
    # auto builds locally here (six has a wheel), yet the image it might have used is content.
    "image": ("lock", ["--locked", "--builder", "auto", "--image", "pll-test/never-pulled:1"]),
}


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    site = tmp_path / "src/python/lib/python3.11/site-packages"
    write(site / "mod.py", "x = 1\n")
    write(site / "notes.txt", "not code\n")
    write(site / "mod/tests/test_mod.py", "def test(): pass\n")
    return {"folder": tmp_path / "src",
            "lock": write(tmp_path / "requirements.lock", "six==1.16.0\n")}


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict[str, object]:
    code = cli(argv)
    out = capsys.readouterr().out
    assert code == 0, out
    return dict(json.loads(out))


@pytest.mark.parametrize("case", list(CASES))
def test_hash_prints_the_content_hash_build_reports(case: str, sources: dict[str, Path],
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    kind, options = CASES[case]
    source = str(sources[kind])
    built = _json(capsys, ["build", source, *TARGET, *options, "-o", str(tmp_path / "l.zip"),
                           "--json"])
    hashed = _json(capsys, ["hash", source, *TARGET, *options, "--json"])
    assert hashed["content_hash"] == built["content_hash"], (case, hashed, built)
    assert hashed["packages"] == built["packages"]
    # diff of a source against itself with the same options: no change, and the same hash.
    assert cli(["diff", source, source, *TARGET, *options, "--json"]) == 0
    same = json.loads(capsys.readouterr().out)
    assert same["new_content_hash"] == built["content_hash"] and not same["changed"]


def test_each_option_changes_the_hash(sources: dict[str, Path],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Guards the test above: the options reach the hash (else equal hashes prove nothing)."""
    hashes = {}
    for case, (kind, options) in CASES.items():
        if case == "frozen":
            continue  # --frozen only refuses to resolve; it is not content
        hashes[case] = _json(capsys, ["hash", str(sources[kind]), *TARGET, *options,
                                      "--json"])["content_hash"]
    assert len(set(hashes.values())) == len(hashes), hashes
