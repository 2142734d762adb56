"""What both providers share: input normalising, unknown values at preview, the log line."""

from __future__ import annotations

from typing import Any

from pulumi_lambda_layers.log import emit as log  # the one log channel (re-exported)


def norm(value: Any) -> Any:
    """An input as diff compares it: lists order-free, empty values as None."""
    if isinstance(value, (list, tuple)):
        return sorted(norm(v) for v in value)
    if value in ("", None, [], {}):
        return None
    return value


def unknown(value: Any) -> bool:
    """A value the engine will only know at apply time (preview of a not yet created input)."""
    from pulumi.output import Unknown
    from pulumi.runtime.rpc import UNKNOWN

    return isinstance(value, Unknown) or (isinstance(value, str) and value == UNKNOWN)


__all__ = ["log", "norm", "unknown"]
