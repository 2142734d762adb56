"""The resolution memo against real uv and a real index: a memo hit never reaches the index, a
refresh or an expired entry does, and the layers of a program resolve at the same time."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_lambda_layers import make_spec
from pulumi_lambda_layers.cli import main
from pulumi_lambda_layers.errors import ResolveError
from pulumi_lambda_layers.sources.fingerprint import fingerprint
from pulumi_lambda_layers.resources.program_time import start
from pulumi_lambda_layers.sources.resolution_memo import Freshness
from tests.conftest import write
from tests.local_index import LocalIndex, make_wheel, serve_index


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalIndex]:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "uv-cache"))  # nothing cached before
    for n in range(4):
        make_wheel(tmp_path / "wheels", f"pll_memo_{n}", "1.0")
    with serve_index(tmp_path / "wheels", delay=1.0) as served:
        yield served


def _requirements(path: Path, index: LocalIndex, package: str = "pll-memo-0") -> Path:
    return write(path, f"--index-url {index.url}\n{package}\n")


def test_a_memo_hit_makes_no_index_request_even_offline(
        index: LocalIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = make_spec(runtime="python3.12", requirements=str(_requirements(tmp_path / "r.txt",
                                                                          index)))
    first = fingerprint(spec)
    assert first.packages == {"pll-memo-0": "1.0"}
    asked = index.log.count()
    assert asked > 0, "the first resolution reads the index"

    # uv offline with an empty cache could not resolve anything: only the memo can answer.
    monkeypatch.setenv("UV_OFFLINE", "1")
    monkeypatch.setenv("UV_CACHE_DIR", str(tmp_path / "empty-uv-cache"))
    again = fingerprint(spec)
    assert (again.content_hash, again.packages) == (first.content_hash, first.packages)
    assert index.log.count() == asked, "a memo hit must not reach the index"
    # A forced or an expired-by-rule resolution does go to uv, which cannot resolve offline.
    for freshness in (Freshness(refresh=True), Freshness(max_age=0)):
        with pytest.raises(ResolveError, match="network was disabled"):
            fingerprint(spec, freshness)

    monkeypatch.delenv("UV_OFFLINE")
    fingerprint(spec, Freshness(refresh=True))
    assert index.log.count() > asked, "refresh resolves against the index"


def test_an_entry_older_than_max_age_resolves_again(index: LocalIndex, tmp_path: Path) -> None:
    spec = make_spec(runtime="python3.12", requirements=str(_requirements(tmp_path / "r.txt",
                                                                          index)))
    fingerprint(spec)
    asked = index.log.count()
    [entry] = (tmp_path / "cache" / "resolutions").glob("*.json")
    data = json.loads(entry.read_text())
    entry.write_text(json.dumps({**data, "resolved_at": time.time() - 120}))
    fingerprint(spec, Freshness(max_age=300))
    assert index.log.count() == asked, "two minutes old, five allowed: reused"
    fingerprint(spec, Freshness(max_age=60))
    assert index.log.count() > asked, "two minutes old, one allowed: resolved again"


def test_locks_never_use_the_memo_or_the_network(index: LocalIndex, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UV_OFFLINE", "1")
    lock = write(tmp_path / "requirements.lock", "pll-memo-0==1.0\n")
    spec = make_spec(runtime="python3.12", lock=str(lock))
    assert fingerprint(spec, Freshness(refresh=True)).packages == {"pll-memo-0": "1.0"}
    write(tmp_path / "requirements.lock", "pll-memo-0==1.1\n")
    assert fingerprint(spec).packages == {"pll-memo-0": "1.1"}, "a lock is read exactly each time"
    assert not (tmp_path / "cache" / "resolutions").exists()
    assert index.log.count() == 0


def test_hash_refresh_on_the_command_line(index: LocalIndex, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    req = str(_requirements(tmp_path / "r.txt", index))
    assert main(["hash", req, "--runtime", "python3.12"]) == 0
    asked = index.log.count()
    assert main(["hash", req, "--runtime", "python3.12", "--json"]) == 0
    assert index.log.count() == asked
    assert main(["hash", req, "--runtime", "python3.12", "--refresh"]) == 0
    assert index.log.count() > asked
    out = capsys.readouterr().out
    assert out.count("pll-memo-0 1.0") == 2 and '"pll-memo-0": "1.0"' in out
    assert main(["hash", req, "--runtime", "python3.12", "--max-age", "soon"]) == 2
    assert "--max-age: 'soon' is not a duration" in capsys.readouterr().err


def test_the_layers_of_a_program_resolve_at_the_same_time(index: LocalIndex,
                                                          tmp_path: Path) -> None:
    layers = [{"runtime": "python3.12", "requirements": str(_requirements(
        tmp_path / f"layer{n}/requirements.txt", index, f"pll-memo-{n}"))} for n in range(4)]
    began = time.monotonic()
    futures = [start(args, config={}) for args in layers]
    declared = time.monotonic() - began
    results = [f.result(timeout=300) for f in futures]
    assert declared < 0.5, f"declaring 4 layers waited {declared:.1f} s for their resolutions"
    assert [r.errors for r in results] == [[]] * 4
    assert [r.packages for r in results] == [{f"pll-memo-{n}": "1.0"} for n in range(4)]
    # Every index page takes 1 s: one resolution after another would never overlap two.
    assert index.log.max_in_flight >= 2, index.log.paths
