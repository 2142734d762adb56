"""What a smoke run found: the SmokeResult, and the message of a SmokeError."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi_lambda_layers.containers import signal_name
from pulumi_lambda_layers.runtimes import Architecture, Runtime
from pulumi_lambda_layers.smoke.runner import SmokeRun
from pulumi_lambda_layers.smoke.stage import OPT
from pulumi_lambda_layers.validate import inspect_zip

_HINTS = 6


@dataclass(frozen=True)
class SmokeResult:
    """What one smoke run found: imports that worked or failed, and the handler's answer."""

    imported: list[str]
    failed: dict[str, str]  # import name (or "handler file.fn") -> traceback / reason
    handler_result: Any
    duration_s: float
    runtime: str = ""
    architecture: str = ""
    image: str = ""
    origins: dict[str, str] = field(default_factory=dict)  # import name -> file it loaded from
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "runtime": self.runtime, "architecture": self.architecture,
                "image": self.image, "imported": self.imported, "failed": self.failed,
                "origins": self.origins, "handler_result": self.handler_result,
                "warnings": self.warnings, "duration_s": round(self.duration_s, 3)}


def smoke_result(run: SmokeRun, runtime: Runtime, arch: Architecture, image: str,
                 found: set[str], timeout_s: float) -> SmokeResult:
    """The outcome of each import and of the handler, from the records of a run; `found` are the
    names the layer itself provides (their copy must be the one loaded)."""
    imported: list[str] = []
    failed: dict[str, str] = {}
    origins: dict[str, str] = {}
    warnings: list[str] = []
    handler_result: Any = None
    for record in run.records:
        kind, name = record.get("kind"), str(record.get("name", ""))
        if kind in ("import", "handler") and not record.get("ok"):
            failed[name] = str(record.get("error", "failed"))
        elif kind == "handler":
            handler_result = record.get("result")
        elif kind == "import":
            origin = str(record.get("origin") or "")
            if origin:
                origins[name] = origin
            if name not in found or origin.startswith(OPT + "/"):
                imported.append(name)
            elif record.get("preloaded"):
                # The runtime itself loaded (or builds in) this name first; Lambda does the same,
                # so the layer's copy is dead weight rather than broken.
                warnings.append(f"{name}: the runtime's own module is used "
                                f"({origin or 'built in'}), never the layer's copy")
                imported.append(name)
            else:
                # Passing on another copy would hide a layer Lambda cannot load (wrong folder).
                failed[name] = (f"imported from {origin or 'a built-in module'}, not from the "
                                f"layer: the layer's copy is not on {runtime.id}'s path or is "
                                "shadowed by the image's or the function's own copy")
    pending = run.pending
    if pending is not None:
        why = (f"did not finish within {timeout_s:g} s" if run.timed_out
               else f"the process died here (exit code {run.code}{signal_name(run.code)})")
        failed[pending] = why + "; see the output (last lines)"
    elif not run.done:
        failed["runner"] = (f"the smoke runner stopped early (exit code {run.code}"
                            f"{', timed out' if run.timed_out else ''}); see the output")
    return SmokeResult(imported, failed, handler_result, run.duration_s, runtime.id, arch, image,
                       origins, warnings)


def static_hints(zip_path: Path, runtime: Runtime, arch: Architecture) -> list[str]:
    """The validator's errors often say why an import failed (wrong CPU, Python, folder)."""
    try:
        report = inspect_zip(zip_path, runtime, arch)
    except Exception:  # a hint must never hide the smoke test's own result
        return []
    hints: list[str] = []
    per_code: collections.Counter[str] = collections.Counter()
    for finding in report.errors:
        per_code[finding.code] += 1
        if per_code[finding.code] <= 2 and len(hints) < _HINTS:
            where = f"{finding.path}: " if finding.path else ""
            hints.append(f"[{finding.code}] {where}{finding.message}")
    return hints


def failure_message(zip_path: Path, result: SmokeResult, hints: list[str], log_tail: str) -> str:
    """Which imports failed, each with its whole traceback (the cause is often at the top)."""
    handlers = [name for name in result.failed if name.startswith("handler ") or name == "runner"]
    failed = len(result.failed) - len(handlers)
    tried = len(result.imported) + failed
    what = [f"{failed} of {plural(tried, 'import')} failed"] if failed else []
    what += [f"the {name} failed" for name in handlers]
    lines = [f"smoke test of {zip_path.name} for {result.runtime} on {result.architecture} in "
             f"{result.image}: {', '.join(what) or 'failed'}"]
    for name, text in result.failed.items():
        lines.append(f"  {name}:")
        lines.extend("    " + line for line in text.rstrip().splitlines())
    if hints:
        lines.append("  the static check of the zip finds:")
        lines.extend("    " + hint for hint in hints)
    if log_tail:
        lines.append("  output (last lines):")
        lines.extend("    " + line for line in log_tail.rstrip().splitlines())
    return "\n".join(lines)


def plural(n: int, word: str) -> str:
    """'1 import', '2 imports'."""
    return f"{n} {word}{'' if n == 1 else 's'}"
