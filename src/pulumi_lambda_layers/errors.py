"""Error types: every failure a user can act on says where, what went wrong and what to do."""

from __future__ import annotations


class LayerError(Exception):
    """Base class for errors this library raises on purpose (user-facing, no traceback needed)."""


class SpecError(LayerError, ValueError):
    """Bad user input; names the argument and the fix."""

    def __init__(self, argument: str, problem: str, fix: str = "") -> None:
        self.argument = argument
        self.problem = problem
        self.fix = fix
        text = f"{argument}: {problem}"
        if fix:
            text += f" ({fix})"
        super().__init__(text)


class ResolveError(LayerError):
    """The dependency set could not be resolved or read for the target platform."""


class BuildError(LayerError):
    """A builder failed; carries the step, the command and the tail of its output."""

    def __init__(self, step: str, problem: str, log_tail: str = "", fix: str = "") -> None:
        self.step = step
        self.problem = problem
        self.log_tail = log_tail
        self.fix = fix
        text = f"{step}: {problem}"
        if fix:
            text += f"\n  fix: {fix}"
        if log_tail:
            indented = "\n".join("    " + line for line in log_tail.rstrip().splitlines())
            text += f"\n  output (last lines):\n{indented}"
        super().__init__(text)


class ValidationError(LayerError):
    """A layer zip breaks a rule of the target runtime; `report` holds every finding."""

    def __init__(self, report: object) -> None:
        self.report = report
        super().__init__(str(report))


class SmokeError(LayerError):
    """A layer failed to import (or its handler failed) in a Lambda-like container; `result`
    (a smoke.SmokeResult) holds every outcome and traceback."""

    def __init__(self, message: str, result: object) -> None:
        self.result = result
        super().__init__(message)
