"""Python ABI: extension module names and wheel tags against the runtime's CPython and platform."""

from __future__ import annotations

import posixpath
import re
import zipfile
from collections.abc import Iterable
from typing import TYPE_CHECKING

# packaging.tags loads only where a zip is checked: a cache hit reads a stored Report and never
# needs it (with pyelftools, its import is a third of the CLI's start-up).
if TYPE_CHECKING:
    from packaging.tags import Tag

from pulumi_lambda_layers.runtimes import UNAME_MACHINE, Architecture, Runtime
from pulumi_lambda_layers.validate.report import Finding, error
from pulumi_lambda_layers.validate.stream import UNREADABLE

EXT_MODULE = re.compile(r"[^/]+\.cpython-3(\d+)([a-z]*)-([^/]+)\.so")
_LINUX_PLATFORM = re.compile(r"(?:many|musl)?linux(?:1|2010|2014|_\d+_\d+)?_(.+)")


def check_extension_names(names: Iterable[str], runtime: Runtime) -> list[Finding]:
    """Extension modules named for another CPython, a debug/free-threaded build, or not Linux."""
    findings: list[Finding] = []
    minor = runtime.version.split(".")[1]
    for name in names:
        match = EXT_MODULE.fullmatch(posixpath.basename(name))
        if not match:
            continue
        built_minor, flags, platform = match.groups()
        if built_minor != minor:
            findings.append(error(
                "python-abi", name,
                f"extension module built for CPython 3.{built_minor}, but {runtime.id} runs "
                f"CPython {runtime.version}, which will not import it: install wheels for "
                f"Python {runtime.version} ({runtime.python_tag})"))
        elif flags:
            findings.append(error(
                "python-abi", name,
                f"extension module for a '{flags}' build of CPython (debug or free-threaded); "
                f"Lambda runs the standard build: install the plain {runtime.python_tag} wheel"))
        if not platform.endswith("-linux-gnu"):
            where = "macOS" if platform == "darwin" else f"'{platform}'"
            findings.append(error(
                "python-abi", name,
                f"extension module built for {where}; Lambda runs glibc Linux: install "
                "manylinux wheels for the target"))
    return findings


def check_wheel_tags(zf: zipfile.ZipFile, files: Iterable[zipfile.ZipInfo], runtime: Runtime,
                     arch: Architecture) -> list[Finding]:
    """A wheel's WHEEL file says what it was built for; one matching tag is enough."""
    from packaging.tags import parse_tag

    findings: list[Finding] = []
    for info in files:
        parts = info.filename.split("/")
        if len(parts) < 2 or parts[-1] != "WHEEL" or not parts[-2].endswith(".dist-info"):
            continue
        try:
            with zf.open(info) as member:
                text = member.read(64 * 1024).decode("utf-8", errors="replace")
        except UNREADABLE:
            continue  # check_binaries reports the unreadable entry
        tags: list[Tag] = []
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "tag" and value.strip():
                try:
                    tags.extend(sorted(parse_tag(value.strip()), key=str))
                except ValueError:
                    continue
        if not tags:
            continue
        problems = [(tag, _tag_problem(tag, runtime, arch)) for tag in tags]
        if all(problem for _, problem in problems):
            shown = "; ".join(f"{tag}: {problem}" for tag, problem in problems[:3])
            findings.append(error(
                "python-abi", info.filename,
                f"the wheel does not fit {runtime.id} on {arch} ({shown}): install the wheel for "
                f"{runtime.python_tag} and {runtime.manylinux_platform(arch)}"))
    return findings


def _tag_problem(tag: Tag, runtime: Runtime, arch: Architecture) -> str | None:
    """Why a wheel tag cannot run on the target, or None when it can.

    The manylinux glibc level is left to the ELF check, which reads what the binaries really need.
    """
    minor = int(runtime.version.split(".")[1])
    interpreter = re.fullmatch(r"(py|cp)(\d)(\d*)", tag.interpreter)
    if interpreter is None:
        return f"built for the {tag.interpreter} interpreter, not CPython"
    kind, major, tag_minor = interpreter.groups()
    if major != "3":
        return f"built for Python {major}"
    if tag_minor:
        built = int(tag_minor)
        if tag.abi == "abi3" or tag.abi == "none" or kind == "py":
            if built > minor:
                return f"needs Python 3.{built} or newer"
        elif built != minor:
            return f"built for CPython 3.{built}"
    if tag.abi not in ("none", "abi3") and tag.abi != runtime.python_tag:
        return f"built for the {tag.abi} ABI"
    if tag.platform == "any":
        return None
    if tag.platform.startswith("macosx"):
        return "built for macOS"
    if tag.platform.startswith("win"):
        return "built for Windows"
    if tag.platform.startswith("musllinux"):
        return "built for musl Linux (Alpine), Lambda uses glibc"
    linux = _LINUX_PLATFORM.fullmatch(tag.platform)
    if linux is None:
        return f"built for the {tag.platform} platform"
    if linux.group(1) != UNAME_MACHINE[arch]:
        return f"built for {linux.group(1)}, not {UNAME_MACHINE[arch]}"
    return None
