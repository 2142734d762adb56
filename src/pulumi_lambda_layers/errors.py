"""Every exception of the library, and its one message format: "<where>: <problem>" + "  fix: ...".

`where` is the argument (spec, CLI option) or the pipeline step ("install (docker, python3.11
x86_64)") that failed. Every error a user can cause or act on is a LayerError; the CLI and the
Pulumi provider show those as the message alone, never with a Python traceback. The classes at
the end are internal signals between steps (never reach a user).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any


def message(where: str, problem: str, fix: str = "", details: str = "") -> str:
    """The one format: `<where>: <problem>`, then `  fix: <fix>`, then indented details; the
    credentials of any URL in it masked (`https://ci-bot:***@host`)."""
    from pulumi_lambda_layers.sources.credentials import redact

    text = f"{where}: {problem}" if where else problem
    if fix:
        text += f"\n  fix: {fix}"
    if details:
        text += "\n" + details
    return redact(text)


class LayerError(Exception):
    """Base class for errors this library raises on purpose (user-facing, no traceback needed).

    LayerError(where, problem, fix) formats the message; LayerError(text) keeps a finished one.
    """

    def __init__(self, where: str, problem: str | None = None, fix: str = "") -> None:
        self.where = where if problem is not None else ""
        self.problem = message("", problem if problem is not None else where)
        self.fix = message("", fix)
        super().__init__(message(where, problem, fix) if problem is not None else self.problem)

    def one_line(self) -> str:
        """The message on one line, `<where>: <problem> (<fix>)`: for a preview's check failure,
        which the engine prints after "has a problem: " and cuts at the first line break."""
        if not self.problem or self.problem == str(self):
            return str(self)
        head = f"{self.where}: {self.problem}" if self.where else self.problem
        return f"{head} ({self.fix})" if self.fix else head


class SpecError(LayerError, ValueError):
    """Bad user input; names the argument and the fix."""

    def __init__(self, argument: str, problem: str, fix: str = "") -> None:
        self.argument = argument
        super().__init__(argument, problem, fix)


class ResolveError(LayerError):
    """The dependency set could not be resolved or read for the target platform."""


class BuildError(LayerError):
    """A pipeline step failed; carries the step, the problem, the fix and the tail of the output."""

    def __init__(self, step: str, problem: str, log_tail: str = "", fix: str = "") -> None:
        self.step = step
        self.problem = message("", problem)
        self.log_tail = message("", log_tail)
        self.fix = message("", fix)
        self.where = step
        details = ""
        if log_tail:
            indented = "\n".join("    " + line for line in log_tail.rstrip().splitlines())
            details = f"  output (last lines):\n{indented}"
        Exception.__init__(self, message(step, problem, fix, details))

    def in_step(self, step: str) -> BuildError:
        """This failure as seen by the pipeline: named for its step (a builder names only itself)."""
        bare = step.split(" (")[0]
        if self.step == step or self.step.startswith(bare + " ("):
            return self  # named already
        problem = self.problem if self.step == bare else f"{self.step}: {self.problem}"
        return BuildError(step, problem, self.log_tail, self.fix)


@contextmanager
def step(name: str) -> Iterator[None]:
    """Name the pipeline step in a failure inside the block, like aws-lambda-builders'
    WorkflowFailedError(workflow, action, reason): BuildError("uv pip install", ...) becomes
    "install (local, python3.11 x86_64): uv pip install: ...". An OSError (disk full,
    permissions) is the user's to fix, so it becomes a BuildError of the step too."""
    try:
        yield
    except BuildError as exc:
        raise exc.in_step(name) from exc.__cause__
    except OSError as exc:
        raise BuildError(name, str(exc), fix="check the disk space and permissions of the "
                         "output and cache folders") from exc


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


class PublishError(LayerError):
    """An AWS call for a layer failed; names the operation, the layer and what to do."""

    def __init__(self, operation: str, resource: str, problem: str, fix: str = "",
                 code: str = "", size: int | None = None) -> None:
        self.operation = operation
        self.resource = resource
        self.code = code  # AWS error code, "" when the failure is not AWS's answer
        self.size = size  # zip size in bytes, when size is the problem
        super().__init__(f"{operation} {resource}", problem, fix)


class NotFound(PublishError):
    """AWS answered ResourceNotFoundException; callers that treat absence as fine catch this."""


class AttachError(LayerError):
    """Attaching or detaching failed for some function; `outcomes` (aws.functions.FunctionOutcome)
    says what became of each one."""

    def __init__(self, operation: str, layer: str, outcomes: Sequence[Any]) -> None:
        self.operation = operation
        self.layer = layer
        self.outcomes = tuple(outcomes)
        failed = [o for o in self.outcomes if o.error]
        stuck = [o for o in self.outcomes if o.rolled_back is False]
        summary = (f"{len(failed)} of {len(self.outcomes)} functions failed; "
                   + ("some changes could NOT be undone" if stuck else
                      "every change already made was undone" if any(o.rolled_back for o in
                                                                    self.outcomes)
                      else "nothing was changed"))
        lines = [f"{operation} {layer}: {summary}"]
        lines += ["  " + o.describe() for o in self.outcomes]
        super().__init__("\n".join(lines))

    @property
    def failed(self) -> dict[str, str]:
        """Function -> the reason it failed."""
        return {o.function: o.error for o in self.outcomes if o.error}


# --- internal signals between steps: caught inside the library, never shown as they are ---------

class NoCompatibleWheel(Exception):
    """The local builder found no binary wheel for some package on the target (auto falls back)."""


class NotSplittable(Exception):
    """The installed files cannot be told apart per package (then the whole layer is packed at once)."""


class PackConflict(Exception):
    """Two packs hold the same zip path: the layer cannot be assembled from them."""


class NpmUnsupported(Exception):
    """The lock holds something npmtree's rules do not model; npm installs the layer instead."""


class Refused(Exception):
    """A reason one function cannot take the change; becomes a line of AttachError."""
