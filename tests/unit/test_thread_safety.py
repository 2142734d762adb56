"""What the provider's build threads share: tool paths in a fresh interpreter, cache files written at once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pulumi_lambda_layers.build import cache

THREADS = 16

# A fresh interpreter each time: sysconfig is filled on first use, so only a cold one can race.
UV_FROM_THREADS = f"""
import json, threading
from concurrent.futures import ThreadPoolExecutor

start = threading.Barrier({THREADS})

def find(_):
    start.wait()
    # Imported in the thread too: a provider may load the module only when a create needs it.
    from pulumi_lambda_layers.tools import uv_command
    return uv_command()

with ThreadPoolExecutor({THREADS}) as pool:
    print(json.dumps(sorted({{tuple(found) for found in pool.map(find, range({THREADS}))}})))
"""


def test_uv_command_from_many_threads_of_a_fresh_interpreter() -> None:
    for attempt in range(20):
        proc = subprocess.run([sys.executable, "-c", UV_FROM_THREADS], capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 0, f"attempt {attempt}:\n{proc.stderr[-4000:]}"
        found = json.loads(proc.stdout)
        assert len(found) == 1 and Path(found[0][0]).name == "uv", proc.stdout


def test_cache_files_written_by_many_threads_at_once(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Two creates of one content hash (say, both fetched from the shared S3 cache) record it at
    # the same moment: each write must land whole, none may fail on the other's temporary file.
    monkeypatch.setenv("PLL_CACHE_DIR", str(tmp_path))
    content_hash = "ab" * 32
    digests = [f"{i:064x}" for i in range(THREADS)]
    for _ in range(20):
        start = threading.Barrier(THREADS)

        def record(digest: str) -> None:
            start.wait()
            cache.record(content_hash, digest)

        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(record, digests))
        written = cache.zip_path(content_hash).with_suffix(".sha256").read_text()
        assert written.strip() in digests
        assert sorted(p.name for p in cache.zip_path(content_hash).parent.iterdir()) == \
            [f"{content_hash}.sha256"], "a temporary file was left behind"
