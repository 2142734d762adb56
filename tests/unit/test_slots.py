"""Build slots: a bounded number of builds at once per process, never two of one content hash."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from pulumi_lambda_layers import make_spec
from pulumi_lambda_layers.build import slots
from pulumi_lambda_layers.build.pipeline import build_layer
from tests.conftest import write


@pytest.fixture(autouse=True)
def fresh_slots(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))  # the hashes' file locks
    slots.reset()
    yield
    slots.reset()


def test_slot_count_from_the_environment_or_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_PARALLEL_BUILDS", "3")
    assert slots.slot_count() == 3
    monkeypatch.setenv("PLL_PARALLEL_BUILDS", "zero")
    with pytest.raises(ValueError, match="PLL_PARALLEL_BUILDS: 'zero' is not a number of builds"):
        slots.slot_count()
    monkeypatch.delenv("PLL_PARALLEL_BUILDS")
    monkeypatch.setattr(slots, "_available_memory", lambda: slots.MEMORY_PER_BUILD * 1)
    assert slots.slot_count() == 1  # memory for one build only, whatever the cores
    monkeypatch.setattr(slots, "_available_memory", lambda: 0)  # unknown: cores decide
    assert slots.slot_count() >= 1


def _run(hashes: list[str], waiters: int) -> tuple[int, list[str]]:
    """Run one build_slot per hash in threads, each staying inside until `waiters` others have
    logged that they wait; returns the most that were inside at once, and the log."""
    active, most, lines = 0, 0, []
    changed = threading.Condition()
    errors: list[BaseException] = []

    def log(line: str) -> None:
        with changed:
            lines.append(line)
            changed.notify_all()

    def one(h: str) -> None:
        nonlocal active, most
        try:
            with slots.build_slot(h, log):
                with changed:
                    active += 1
                    most = max(most, active)
                    changed.wait_for(lambda: sum("waiting" in x for x in lines) >= waiters, 10)
                    active -= 1
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(h,)) for h in hashes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    if errors:
        raise errors[0]
    return most, lines


def test_two_slots_let_two_builds_run_together_and_no_third(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_PARALLEL_BUILDS", "2")
    most, lines = _run(["a", "b", "c", "d"], waiters=2)
    assert most == 2
    assert lines == ["build: waiting for a build slot (2 at once here; set PLL_PARALLEL_BUILDS "
                     "to change)"] * 2


def test_one_content_hash_is_never_built_twice_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_PARALLEL_BUILDS", "4")
    most, lines = _run(["same"] * 3, waiters=2)
    assert most == 1
    assert lines == ["build: waiting for the other build of same"] * 2


def test_the_second_of_two_same_builds_takes_the_first_ones_zip(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path / "cache"))
    write(tmp_path / "src/python/mod.py", "x = 1\n")
    spec = make_spec(runtime="python3.11", source_dir=str(tmp_path / "src"))
    results = []
    go = threading.Barrier(2, timeout=10)

    def one(i: int) -> None:
        go.wait()
        results.append(build_layer(spec, tmp_path / f"out{i}.zip", log=lambda _: None,
                                   use_cache=True))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r.builder for r in results) == ["cache", "none"]
    assert results[0].zip.sha256 == results[1].zip.sha256
