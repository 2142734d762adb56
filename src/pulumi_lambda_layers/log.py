"""The one log channel: progress lines go to the current sink (the CLI's stderr, the provider's log).

Code that reports progress calls `emit(line)`. Who shows it is decided once, by the caller: the
CLI wraps a command in `to(sink)`; the Pulumi provider host keeps the default, which writes
"[lambda-layers] <line>" to stderr, the stream the engine shows under the resource; a Python
caller of build_layer passes `log=` (or uses `to`). The sink is a context variable, so builds
that run at once on several threads of one process each keep their own; a new thread, which
starts without one, uses the default. Warnings the library logs with `logging` (the AWS code)
reach the same channel.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Sink = Callable[[str], None]
PREFIX = "[lambda-layers] "


def stderr(message: str) -> None:
    """The default sink: one prefixed line on stderr (the engine shows a provider's stderr)."""
    print(PREFIX + message, file=sys.stderr, flush=True)


def quiet(_message: str) -> None:
    """A sink that drops every line."""


_sink: ContextVar[Sink | None] = ContextVar("pulumi_lambda_layers_log", default=None)


def emit(message: str) -> None:
    """Send one progress line to the current sink, the credentials of any URL in it masked."""
    from pulumi_lambda_layers.sources.credentials import redact

    (_sink.get() or stderr)(redact(message))


@contextmanager
def to(sink: Sink | None) -> Iterator[None]:
    """Send what is emitted inside the block to sink (None: leave the current sink)."""
    if sink is None:
        yield
        return
    token = _sink.set(sink)
    try:
        yield
    finally:
        _sink.reset(token)


class _Channel(logging.Handler):
    """Routes the library's `logging` records (warnings of the AWS code) into emit()."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        emit(f"warning: {text}" if record.levelno >= logging.WARNING else text)


_library = logging.getLogger("pulumi_lambda_layers")
if not any(isinstance(h, _Channel) for h in _library.handlers):
    _library.addHandler(_Channel(logging.INFO))
    _library.propagate = False  # shown once, through the channel
