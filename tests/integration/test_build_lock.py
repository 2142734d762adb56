"""Two processes building one content hash at once on one machine: one build, the same zip.

Not timing-lucky: process A is held inside the hash's file lock (the test hook
PLL_TEST_HOLD_BUILD_LOCK in build/slots.py) until the test releases it, so B always arrives while
A holds the lock; B must say it waits and must still be waiting until A is let go.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pulumi_lambda_layers.build.slots import HOLD_ENV
from tests.conftest import write

CLI = str(Path(sys.executable).parent / "lambda-layers")
WAIT = "build: waiting for another process building"


def _start(tmp_path: Path, name: str, lock: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`lambda-layers build` of the lock into <name>.zip, its log in <name>.log (a fresh
    interpreter: another process, as a second `pulumi up` or the CLI would be)."""
    log = (tmp_path / f"{name}.log").open("wb")
    return subprocess.Popen(
        [CLI, "build", str(lock), "--locked", "--runtime", "python3.11", "--arch", "x86_64",
         "--builder", "local", "-o", str(tmp_path / f"{name}.zip")],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)


def _log(tmp_path: Path, name: str) -> str:
    return (tmp_path / f"{name}.log").read_text(errors="replace")


def _until(what: str, check: Callable[[], bool], procs: list[subprocess.Popen[bytes]],
           tmp_path: Path, timeout: float = 120) -> None:
    """Wait until check() is true; fail with both logs when a process ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not check():
        for p, name in zip(procs, "ab", strict=False):
            assert p.poll() is None, f"{name} ended before {what}:\n{_log(tmp_path, name)}"
        assert time.monotonic() < deadline, (f"no {what} in {timeout}s:\n"
                                             f"a: {_log(tmp_path, 'a')}\nb: {_log(tmp_path, 'b')}")
        time.sleep(0.05)


@contextmanager
def _b_waiting_on_a(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes],
                                                     subprocess.Popen[bytes]]]:
    """a holds the hash's lock (test hook), b has said it waits for it; both killed at the end."""
    lock = write(tmp_path / "layer" / "requirements.lock", "six==1.16.0\n")
    base = {**os.environ, "PLL_CACHE_DIR": str(tmp_path / "cache")}  # shared, empty
    base.pop(HOLD_ENV, None)
    a = _start(tmp_path, "a", lock, {**base, HOLD_ENV: str(tmp_path / "release")})
    procs = [a]
    try:
        _until("hold of the lock by a", lambda: "test hook: holding" in _log(tmp_path, "a"),
               procs, tmp_path)
        b = _start(tmp_path, "b", lock, base)
        procs.append(b)
        _until("wait of b", lambda: WAIT in _log(tmp_path, "b"), procs, tmp_path)
        yield a, b
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_two_processes_build_one_hash_once_and_get_the_same_zip(tmp_path: Path) -> None:
    with _b_waiting_on_a(tmp_path) as (a, b):
        time.sleep(1)  # b must stay blocked while a holds the lock
        assert b.poll() is None, _log(tmp_path, "b")
        assert not (tmp_path / "b.zip").exists()
        (tmp_path / "release").touch()
        assert a.wait(300) == 0, _log(tmp_path, "a")
        assert b.wait(300) == 0, _log(tmp_path, "b")
    log_a, log_b = _log(tmp_path, "a"), _log(tmp_path, "b")
    # Exactly one build: a installed and packaged; b took a's zip from the cache.
    assert "cache hit" not in log_a and WAIT not in log_a, log_a
    assert "package:" in log_a, log_a
    assert "build: cache hit for" in log_b, log_b
    assert "package:" not in log_b and "install" not in log_b.lower(), log_b
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()


def test_a_killed_lock_holder_frees_the_lock(tmp_path: Path) -> None:
    """No timeout is needed: the OS drops a dead holder's flock, so the waiter goes on and builds."""
    with _b_waiting_on_a(tmp_path) as (a, b):
        a.send_signal(signal.SIGKILL)  # never released: only its death frees the lock
        a.wait(30)
        assert b.wait(300) == 0, _log(tmp_path, "b")
    log_b = _log(tmp_path, "b")
    assert "package:" in log_b and "cache hit" not in log_b, log_b
    assert not (tmp_path / "a.zip").exists()
