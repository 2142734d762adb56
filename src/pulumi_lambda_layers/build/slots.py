"""How many layer builds run at once in one process (cores and memory decide), one per content hash
on the machine (a file lock in the cache folder keeps two processes off the same hash)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from pulumi_lambda_layers.build import cache
from pulumi_lambda_layers.errors import SpecError

# What one build may hold at its peak: an install tree being read, up to 64 MB of files being
# compressed (archive._IN_FLIGHT), and a big shared object twice (read + compressed).
MEMORY_PER_BUILD = 768 << 20
_ENV = "PLL_PARALLEL_BUILDS"
# For tests only: a build that takes its content hash's file lock stays inside it until the file
# this names exists (tests/integration/test_build_lock.py holds one process there).
HOLD_ENV = "PLL_TEST_HOLD_BUILD_LOCK"

_lock = threading.Lock()
_slots: threading.BoundedSemaphore | None = None
_slot_count = 0
_per_hash: dict[str, threading.Lock] = {}


def count_from_env(variable: str, what: str) -> int | None:
    """The whole number >= 1 in $variable, None when unset; SpecError naming it otherwise."""
    configured = os.environ.get(variable, "").strip()
    if not configured:
        return None
    try:
        value = int(configured)
    except ValueError:
        value = 0
    if value < 1:
        raise SpecError(variable, f"{configured!r} is not a number of {what}",
                        "give a whole number, 1 or more, or unset it")
    return value


def slot_count() -> int:
    """$PLL_PARALLEL_BUILDS, else one build per core, fewer when memory is short (at least one)."""
    configured = count_from_env(_ENV, "builds")
    if configured is not None:
        return configured
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    available = _available_memory()
    by_memory = available // MEMORY_PER_BUILD if available else cores
    return max(1, min(cores, by_memory))


def _available_memory() -> int:
    """MemAvailable in bytes on Linux; 0 where it cannot be read (then cores alone decide)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@contextmanager
def build_slot(content_hash: str, log: Callable[[str], None]) -> Iterator[None]:
    """Hold one of the process's build slots, and the content hash's own locks, while building.

    Builds of one content hash never run twice at once on this machine: a second thread of this
    process waits on the hash's thread lock, a second process (another `pulumi up`, the CLI) on
    its file lock in the cache folder; either then finds the first one's zip in the cache.
    Waiting is logged, so a slow `pulumi up` says why.
    """
    global _slots, _slot_count
    with _lock:
        if _slots is None:
            _slot_count = slot_count()
            _slots = threading.BoundedSemaphore(_slot_count)
        slots, count = _slots, _slot_count
        same = _per_hash.setdefault(content_hash, threading.Lock())
    if not same.acquire(blocking=False):
        log(f"build: waiting for the other build of {content_hash[:16]}")
        same.acquire()
    try:
        with _machine_lock(content_hash, log):
            if not slots.acquire(blocking=False):
                log(f"build: waiting for a build slot ({count} at once here; set {_ENV} to change)")
                slots.acquire()
            try:
                yield
            finally:
                slots.release()
    finally:
        same.release()


def lock_path(content_hash: str) -> Path:
    """The file lock of a content hash, shared by every process using this cache folder."""
    return cache.cache_dir() / "locks" / f"{content_hash}.lock"


@contextmanager
def _machine_lock(content_hash: str, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the content hash's file lock; a process already holding it is waited for.

    No timeout: on Linux filelock's FileLock is an flock(2) on a descriptor of the lock file, and
    the kernel drops an flock when the last descriptor of its open file is closed, which happens
    when the holder exits or is killed (even SIGKILL). The descriptor is not inherited by the
    uv, npm or docker children (Python opens files non-inheritable). So a holder we wait for is a
    live process still building, and a timeout could only cut a slow build short. (Where flock is
    missing, e.g. some network file systems, filelock falls back to a marker file instead.)
    Held by one thread at a time (the caller holds the hash's thread lock), hence not
    thread-local.
    """
    path = lock_path(content_hash)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(path, thread_local=False)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log(f"build: waiting for another process building {content_hash[:16]}")
        lock.acquire()
    try:
        _test_hold(content_hash, log)
        yield
    finally:
        lock.release()


def _test_hold(content_hash: str, log: Callable[[str], None]) -> None:
    """For tests only: stay inside the file lock until the file $PLL_TEST_HOLD_BUILD_LOCK exists."""
    release = os.environ.get(HOLD_ENV)
    if not release:
        return
    log(f"test hook: holding the build lock of {content_hash[:16]} until {release} exists")
    while not os.path.exists(release):
        time.sleep(0.05)


def reset() -> None:
    """Forget the slot count (tests, or after changing PLL_PARALLEL_BUILDS in-process)."""
    global _slots, _slot_count
    with _lock:
        _slots, _slot_count = None, 0
