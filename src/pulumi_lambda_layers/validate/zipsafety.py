"""Zip safety: entries and symlinks that would land outside the layer folder."""

from __future__ import annotations

import posixpath
import re
import stat
import zipfile
from collections.abc import Iterable

from pulumi_lambda_layers.validate.report import Finding, error, plural
from pulumi_lambda_layers.validate.stream import UNREADABLE


def is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_paths(infos: Iterable[zipfile.ZipInfo]) -> list[Finding]:
    """Entries that would land outside the extraction folder, or not where the name says."""
    findings: list[Finding] = []
    backslashed: list[str] = []
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
            findings.append(error("unsafe-path", name, "absolute path in the zip; entries must be "
                                  "relative to the layer root (Lambda extracts to /opt)"))
        elif ".." in parts:
            findings.append(error("unsafe-path", name, "'..' in the path would escape the layer "
                                  "folder when extracted; rebuild the zip from a clean folder"))
        elif "\\" in name:
            backslashed.append(name)
    if backslashed:
        # Zips made by old Windows tools keep '\' in names; Linux reads it as part of one file name.
        findings.append(error(
            "layout", backslashed[0],
            f"{plural(len(backslashed), 'entry', 'entries')} use '\\' as the folder separator; Lambda "
            "(Linux) takes it as part of a single file name, so nothing is found under python/ "
            "or nodejs/: rebuild the zip with '/' separators (e.g. this library's builder)"))
    return findings


def check_symlinks(zf: zipfile.ZipFile, links: Iterable[zipfile.ZipInfo]) -> list[Finding]:
    """Symlink entries must point inside the layer: /opt holds several layers plus the runtime."""
    findings: list[Finding] = []
    for info in links:
        try:
            with zf.open(info) as member:
                target = member.read(4097).decode("utf-8", errors="replace")
        except UNREADABLE as exc:
            findings.append(error("zip-invalid", info.filename, f"cannot read this entry: {exc}"))
            continue
        if target.startswith("/"):
            findings.append(error(
                "unsafe-symlink", info.filename,
                f"symlink to the absolute path {target!r}; it resolves against the Lambda "
                "machine, not the layer: make it relative to a file inside the layer"))
            continue
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(info.filename), target))
        if resolved == ".." or resolved.startswith("../"):
            findings.append(error(
                "unsafe-symlink", info.filename,
                f"symlink to {target!r} points outside the layer root; make it point to a file "
                "inside the layer or copy the file in"))
    return findings
