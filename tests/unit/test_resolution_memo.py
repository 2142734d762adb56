"""The resolution memo: what its key covers (and leaves out), freshness, atomic entries, inputs."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pulumi
import pytest

from pulumi_lambda_layers import SpecError
from pulumi_lambda_layers.sources import resolution_memo as memo
from pulumi_lambda_layers.resources.program_time import freshness_of, start
from tests.conftest import write
from tests.pulumi_mocks import RecordingMocks, use_mocks

OPTIONS = ["pip", "compile", "--python-platform", "x86_64-manylinux2014", "--python-version",
           "3.12"]
UV = "/venv/bin/uv:41000000:1700000000"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # pulumi.runtime.rpc._special_sig_key


def _key(req: Path, options: list[str] | None = None, uv: str = UV,
         env: dict[str, str] | None = None) -> str | None:
    return memo.memo_key(req, OPTIONS if options is None else options, uv,
                         {"HOME": str(req.parent), **(env or {})})


def test_credentials_never_decide_the_key(tmp_path: Path) -> None:
    alice = write(tmp_path / "a/requirements.txt",
                  "--index-url https://alice:s3cret@pypi.corp.example/simple\nrequests\n")
    bob = write(tmp_path / "b/requirements.txt",
                "--index-url https://bob:other-token@pypi.corp.example/simple\nrequests\n")
    other_index = write(tmp_path / "c/requirements.txt",
                        "--index-url https://alice:s3cret@mirror.example/simple\nrequests\n")
    assert _key(alice) == _key(bob)
    assert _key(alice) != _key(other_index), "the index itself decides the result"
    # Through the environment too: uv's index variables count, their credentials do not.
    plain = write(tmp_path / "d/requirements.txt", "requests\n")
    env_a = {"UV_INDEX_URL": "https://u:p1@idx.example/simple", "UV_INDEX_CORP_PASSWORD": "p1"}
    env_b = {"UV_INDEX_URL": "https://u:p2@idx.example/simple", "UV_INDEX_CORP_PASSWORD": "p2"}
    assert _key(plain, env=env_a) == _key(plain, env=env_b) != _key(plain)
    assert memo.strip_credentials("https://alice:s3cret@h/simple x") == "https://h/simple x"


def test_content_includes_platform_python_and_uv_change_the_key(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "-r base.txt\n--constraint=constraints.txt\n"
                "requests\n")
    write(tmp_path / "base.txt", "six\n")
    write(tmp_path / "constraints.txt", "urllib3<3\n")
    first = _key(req)
    assert first is not None and first == _key(req)
    arm = [o.replace("x86_64", "aarch64") for o in OPTIONS]
    py311 = [o.replace("3.12", "3.11") for o in OPTIONS]
    assert len({first, _key(req, arm), _key(req, py311), _key(req, uv="/venv/bin/uv:1:2")}) == 4
    for name, text in (("requirements.txt", "-r=base.txt\n-c constraints.txt\nrequests>=2\n"),
                       ("base.txt", "six>=1.16\n"), ("constraints.txt", "urllib3<2\n")):
        before = _key(req)
        write(tmp_path / name, text)
        assert _key(req) != before, f"a change to {name} must miss the memo"


def test_a_new_wheel_in_a_find_links_folder_changes_the_key(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "--no-index\n--find-links ./wheels\npll-a\n")
    write(tmp_path / "wheels/pll_a-1.0-py3-none-any.whl", "x")
    before = _key(req)
    write(tmp_path / "wheels/pll_a-1.1-py3-none-any.whl", "y")
    assert _key(req) != before


def test_uv_settings_that_only_decide_reachability_keep_the_key(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "requests\n")
    assert _key(req, env={"UV_OFFLINE": "1", "UV_CACHE_DIR": "/elsewhere"}) == _key(req)
    assert _key(req, env={"UV_PRERELEASE": "allow"}) != _key(req)


def test_project_uv_config_decides_the_key(tmp_path: Path) -> None:
    req = write(tmp_path / "proj/layer/requirements.txt", "requests\n")
    before = _key(req)
    write(tmp_path / "proj/uv.toml", '[pip]\nindex-url = "https://t:secret@idx.example/simple"\n')
    with_config = _key(req)
    assert with_config != before
    write(tmp_path / "proj/uv.toml", '[pip]\nindex-url = "https://t:other@idx.example/simple"\n')
    assert _key(req) == with_config, "only the credentials changed"


@pytest.mark.parametrize("line", ["./libs/mine", "mine @ file:///src/mine", "/abs/pkg.whl"])
def test_local_path_requirements_are_not_memoized(tmp_path: Path, line: str) -> None:
    assert _key(write(tmp_path / "requirements.txt", f"six\n{line}\n")) is None


@pytest.mark.parametrize(("value", "seconds"), [(0, 0.0), (90, 90.0), ("90", 90.0),
                                                ("90s", 90.0), ("30m", 1800.0), ("1h", 3600.0),
                                                ("2D", 172800.0), (" 1.5h ", 5400.0)])
def test_max_age_accepts_seconds_and_durations(value: object, seconds: float) -> None:
    assert memo.parse_max_age(value) == seconds


@pytest.mark.parametrize("value", [-1, "soon", "1 hour", "", True, None, float("nan")])
def test_bad_max_age_names_the_argument_and_the_fix(value: object) -> None:
    with pytest.raises(SpecError) as err:
        memo.parse_max_age(value)
    assert err.value.argument == "resolution_max_age"
    assert "'1h'" in err.value.fix and "0 = always resolve" in err.value.fix


def test_freshness_rule() -> None:
    hour = memo.Freshness()
    assert hour.max_age == 3600 and hour.reuses(10) and not hour.reuses(3600)
    assert not hour.reuses(-5), "an entry from the future is not trusted"
    assert not memo.Freshness(0).reuses(0)
    assert not memo.Freshness(refresh=True).reuses(0)


def test_entries_are_found_while_fresh_and_torn_ones_ignored(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path))
    memo.store("k" * 64, "six==1.17.0\n", now=1000.0)
    assert memo.lookup("k" * 64, memo.Freshness(60), now=1059.0) == "six==1.17.0\n"
    assert memo.lookup("k" * 64, memo.Freshness(60), now=1060.0) is None
    memo.entry_path("t" * 64).write_text('{"resolved_at": 1000, "outp')
    assert memo.lookup("t" * 64, memo.Freshness(), now=1001.0) is None


def test_threads_storing_one_key_at_once_leave_one_whole_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path))
    failures: list[BaseException] = []
    barrier = threading.Barrier(16)

    def write_many(i: int) -> None:
        try:
            barrier.wait()
            for n in range(50):
                memo.store("s" * 64, f"six=={i}.{n}\n", now=float(n))
        except BaseException as exc:  # noqa: BLE001 (collected for the assertion)
            failures.append(exc)

    threads = [threading.Thread(target=write_many, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert json.loads(memo.entry_path("s" * 64).read_text())["output"].startswith("six==")
    assert [p.name for p in memo.entry_path("s" * 64).parent.iterdir()] == [f"{'s' * 64}.json"]


def test_resolve_runs_once_then_reuses_and_refresh_runs_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    req = write(tmp_path / "requirements.txt", "six\n")
    runs: list[int] = []

    def run() -> str:
        runs.append(1)
        return f"six==1.{len(runs)}\n"

    env = {"HOME": str(tmp_path)}
    assert memo.resolve(req, OPTIONS, UV, run, env=env) == "six==1.1\n"
    assert memo.resolve(req, OPTIONS, UV, run, env=env) == "six==1.1\n"
    assert memo.resolve(req, OPTIONS, UV, run, memo.Freshness(refresh=True), env=env) == \
        "six==1.2\n"
    assert memo.resolve(req, OPTIONS, UV, run, env=env) == "six==1.2\n", "refresh rewrote it"
    assert memo.resolve(req, OPTIONS, UV, run, memo.Freshness(0), env=env) == "six==1.3\n"
    assert len(runs) == 3


def test_argument_beats_config_and_bad_config_names_its_key() -> None:
    assert freshness_of(None, {}).max_age == 3600
    assert freshness_of("5m", {memo.CONFIG_MAX_AGE: "2h"}).max_age == 300
    assert freshness_of(None, {memo.CONFIG_MAX_AGE: "2h"}).max_age == 7200
    assert freshness_of(None, {memo.CONFIG_REFRESH: "true"}).refresh is True
    with pytest.raises(SpecError, match="lambda-layers:resolutionMaxAge: 'soon' is not a dura"):
        freshness_of(None, {memo.CONFIG_MAX_AGE: "soon"})
    with pytest.raises(SpecError, match="lambda-layers:refreshResolution: 'maybe' is not true"):
        freshness_of(None, {memo.CONFIG_REFRESH: "maybe"})


def test_bad_freshness_comes_back_as_an_input_error_without_resolving(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.txt", "six\n")
    args = {"runtime": "python3.12", "requirements": str(req)}
    result = start(args, max_age="an hour", config={}).result(timeout=5)
    assert result.content_hash == "" and result.errors == [{
        "property": "resolution_max_age", "reason": "resolution_max_age: 'an hour' is not a "
        f"duration ({memo.MAX_AGE_FIX})"}]  # one line: the engine cuts a reason at a break


@pytest.fixture
def mocks() -> RecordingMocks:
    return use_mocks()


@pulumi.runtime.test
def test_program_props_come_from_the_background_fingerprint(mocks: RecordingMocks,
                                                            tmp_path: Path) -> Any:
    # Pulumi's mocks register the resource with its awaited inputs, as the engine does.
    from pulumi_lambda_layers import LambdaLayerBuild

    lock = write(tmp_path / "requirements.lock", "six==1.16.0\n")
    good = LambdaLayerBuild("good", runtime="python3.11", lock=str(lock), layer_name="good",
                            proxy={"HTTPS_PROXY": "http://u:p@proxy:3128"})
    bad = LambdaLayerBuild("bad", runtime="python3.11", lock=str(lock), layer_name="bad",
                           resolution_max_age=-3)

    def check(_: Any) -> None:
        inputs = mocks.made["good"][1]
        assert inputs["packages"] == {"six": "1.16.0"} and len(inputs["content_hash"]) == 64
        # With a proxy the build inputs stay a secret (Pulumi's secret envelope), as before.
        assert inputs["build"][SECRET_SIG] == "1b47061264138c4ac30d75fd1eb44270"
        assert inputs["build"]["value"]["install_files"]["requirements.txt"] == "six==1.16.0\n"
        assert SECRET_SIG not in (mocks.made["bad"][1].get("build") or {})
        assert "input_errors" not in inputs, "no errors: the input stays unset"
        errors = mocks.made["bad"][1]["input_errors"]
        assert [e["property"] for e in errors] == ["resolution_max_age"]
        assert "expected a duration >= 0, got -3" in errors[0]["reason"]

    return pulumi.Output.all(good.urn, bad.urn).apply(check)
