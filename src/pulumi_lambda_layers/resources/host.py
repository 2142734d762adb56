"""In Pulumi's dynamic provider host: a LayerError reaches `pulumi up` as its message alone.

The host (pulumi/dynamic/__main__.py) wraps every provider call in `_abort_with_traceback`,
which sends `traceback.format_exc()` to the engine as the error: 30 lines of our frames before
the message that says what to fix. The wrapper looks `traceback` up in its module's globals at
each call, so giving that module (only that one) a stand-in whose format_exc() returns the
message of a LayerError changes nothing else: any other exception keeps its full traceback, and a
host that no longer looks like this one is left as it is.
"""

from __future__ import annotations

import sys
import traceback
from typing import Any

from pulumi_lambda_layers.errors import LayerError

_HOST_MODULE = "pulumi.dynamic.__main__"


class _Traceback:
    """The traceback module, but format_exc() of a LayerError is its message."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    @staticmethod
    def format_exc(limit: int | None = None, chain: bool = True) -> str:
        exc = sys.exc_info()[1]
        if isinstance(exc, LayerError):
            return str(exc)
        return traceback.format_exc(limit, chain)


def clean_errors() -> bool:
    """Install the stand-in in the dynamic provider host; True when it is (or was) in place."""
    host = sys.modules.get("__main__")
    spec = getattr(host, "__spec__", None)
    if getattr(spec, "name", None) != _HOST_MODULE or not hasattr(host, "_abort_with_traceback"):
        return False  # not the host (a test, the CLI, a program): nothing to change
    current = getattr(host, "traceback", None)
    if isinstance(current, _Traceback):
        return True
    if current is not traceback:
        return False  # a host version that formats errors some other way
    host.traceback = _Traceback()  # type: ignore[union-attr]
    return True
