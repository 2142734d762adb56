"""How many layer builds run at once in one process (cores and memory decide), one per content hash."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from pulumi_lambda_layers.errors import SpecError

# What one build may hold at its peak: an install tree being read, up to 64 MB of files being
# compressed (archive._IN_FLIGHT), and a big shared object twice (read + compressed).
MEMORY_PER_BUILD = 768 << 20
_ENV = "PLL_PARALLEL_BUILDS"

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
    """Hold one of the process's build slots, and the content hash's own lock, while building.

    Builds of one content hash never run twice at once: the second waits and then finds the
    first one's zip in the cache. Waiting is logged, so a slow `pulumi up` says why.
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
        if not slots.acquire(blocking=False):
            log(f"build: waiting for a build slot ({count} at once here; set {_ENV} to change)")
            slots.acquire()
        try:
            yield
        finally:
            slots.release()
    finally:
        same.release()


def reset() -> None:
    """Forget the slot count (tests, or after changing PLL_PARALLEL_BUILDS in-process)."""
    global _slots, _slot_count
    with _lock:
        _slots, _slot_count = None, 0
