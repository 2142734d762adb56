"""The result of validating a layer zip: findings, sizes, and how they print."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Finding:
    """One broken rule: how bad, a stable code, the zip entry ('' for the whole layer) and why."""

    severity: Severity
    code: str
    path: str
    message: str


@dataclass
class Report:
    """Everything inspect_zip found about one layer zip for one runtime and architecture."""

    runtime: str
    architecture: str
    findings: list[Finding]
    zipped_size: int
    unzipped_size: int
    file_count: int
    largest: list[tuple[str, int]]  # top packages by unzipped size: (package name, bytes)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "architecture": self.architecture,
            "ok": self.ok,
            "zipped_size": self.zipped_size,
            "unzipped_size": self.unzipped_size,
            "file_count": self.file_count,
            "largest": [{"package": name, "bytes": size} for name, size in self.largest],
            "findings": [asdict(f) for f in self.findings],
        }

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Report:
        """The Report that to_dict() described (a cached layer's report, read back)."""
        return Report(d["runtime"], d["architecture"], [Finding(**f) for f in d["findings"]],
                      d["zipped_size"], d["unzipped_size"], d["file_count"],
                      [(x["package"], x["bytes"]) for x in d["largest"]])

    def __str__(self) -> str:
        errors, warnings = self.errors, self.warnings
        counts = f"{plural(len(errors), 'error')}, {plural(len(warnings), 'warning')}"
        verdict = "OK" if self.ok else "FAILED"
        lines = [f"{verdict}: layer for {self.runtime} on {self.architecture} ({counts})",
                 (f"size: {human(self.zipped_size)} zipped, {human(self.unzipped_size)} "
                  f"unzipped, {plural(self.file_count, 'file')}")]
        for title, group in (("errors", errors), ("warnings", warnings)):
            if group:
                lines.append(f"{title}:")
                lines.extend(_format_group(group))
        if self.largest:
            lines.append("largest packages:")
            width = max(len(name) for name, _ in self.largest)
            lines.extend(f"  {name:<{width}}  {human(size):>10}" for name, size in self.largest)
        return "\n".join(lines)


def _format_group(findings: list[Finding], per_code: int = 10) -> list[str]:
    # A layer built for the wrong platform trips the same rule on hundreds of files; show a few.
    lines: list[str] = []
    by_code: dict[str, list[Finding]] = {}
    for finding in findings:
        by_code.setdefault(finding.code, []).append(finding)
    for code, group in by_code.items():
        for finding in group[:per_code]:
            where = f"{finding.path}: " if finding.path else ""
            lines.append(f"  [{code}] {where}{finding.message}")
        if len(group) > per_code:
            lines.append(f"  [{code}] ... and {len(group) - per_code} more like these")
    return lines


def plural(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def human(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, units = size / 1024, ("KiB", "MiB", "GiB")
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f} {units[unit]}"


def error(code: str, path: str, message: str) -> Finding:
    return Finding("error", code, path, message)


def warning(code: str, path: str, message: str) -> Finding:
    return Finding("warning", code, path, message)
