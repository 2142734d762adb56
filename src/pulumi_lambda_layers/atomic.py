"""The one atomic write: a temp file beside the target, renamed over it once complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def atomic_file(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A file to write path's new bytes into; on a clean exit it replaces path at once (a reader
    sees the old bytes or the new, never a part), on an error it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name unique per call, not per process: the provider writes from several threads at once.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # mkstemp's 0600 would differ from the files beside it
            yield f
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes) -> None:
    """Replace path with data at once."""
    with atomic_file(path) as f:
        f.write(data)
