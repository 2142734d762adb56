"""Static checks of a built layer zip against a Lambda runtime and architecture, before deploying."""

from __future__ import annotations

import io
import posixpath
import re
import stat
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

# pyelftools and packaging.tags load only where a zip is checked: a cache hit reads a stored
# Report and never needs them (their import is a third of the CLI's start-up).
if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile
    from packaging.tags import Tag

from pulumi_lambda_layers.errors import ValidationError
from pulumi_lambda_layers.runtimes import ELF_MACHINE, UNAME_MACHINE, Architecture, Runtime

Severity = Literal["error", "warning"]

# Lambda's documented quotas: a zip uploaded directly in the API call, and the unzipped size of a
# function together with all its layers.
MAX_ZIPPED_BYTES = 52_428_800  # 50 MiB
MAX_UNZIPPED_BYTES = 262_144_000  # 250 MiB
LARGEST_KEPT = 10  # packages kept in Report.largest
LARGEST_NAMED = 5  # packages named in the unzipped-size error

_OS_NAME = {"al2": "Amazon Linux 2", "al2023": "Amazon Linux 2023"}
_MACHINE_NAME = {"EM_X86_64": "x86-64", "EM_AARCH64": "AArch64", "EM_386": "i386 (32-bit x86)",
                 "EM_ARM": "32-bit ARM"}
# Top-level folders Lambda puts on PATH / LD_LIBRARY_PATH or runs as extensions, for any runtime.
_SHARED_DIRS = {"bin", "lib", "extensions"}

_ELF_MAGIC = b"\x7fELF"
_MACHO_MAGICS = {b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"}
_MACHO_FAT_MAGICS = {b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"}
_PE_SUFFIXES = (".dll", ".pyd", ".exe", ".node")

_GLIBC_VERSION = re.compile(r"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")
_WRONG_PY_DIR = re.compile(r"python/lib/python(\d+\.\d+)/")
_EXT_MODULE = re.compile(r"[^/]+\.cpython-3(\d+)([a-z]*)-([^/]+)\.so")
_NODE_VERSIONED = re.compile(r"nodejs/node(\d+)/node_modules/")
_LINUX_PLATFORM = re.compile(r"(?:many|musl)?linux(?:1|2010|2014|_\d+_\d+)?_(.+)")

# Encrypted members, unsupported compression or a damaged entry: Lambda cannot read them either.
_UNREADABLE = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError)

_BLOCK = 64 * 1024
_CACHED_BLOCKS = 128  # 8 MiB per ELF member, however big the file is


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
        counts = f"{_plural(len(errors), 'error')}, {_plural(len(warnings), 'warning')}"
        verdict = "OK" if self.ok else "FAILED"
        lines = [f"{verdict}: layer for {self.runtime} on {self.architecture} ({counts})",
                 f"size: {_human(self.zipped_size)} zipped, {_human(self.unzipped_size)} "
                 f"unzipped, {_plural(self.file_count, 'file')}"]
        for title, group in (("errors", errors), ("warnings", warnings)):
            if group:
                lines.append(f"{title}:")
                lines.extend(_format_group(group))
        if self.largest:
            lines.append("largest packages:")
            width = max(len(name) for name, _ in self.largest)
            lines.extend(f"  {name:<{width}}  {_human(size):>10}" for name, size in self.largest)
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


def _plural(n: int, word: str, plural: str = "") -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _human(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    value, units = size / 1024, ("KiB", "MiB", "GiB")
    unit = 0
    while value >= 1024 and unit < len(units) - 1:
        value /= 1024
        unit += 1
    return f"{value:.1f} {units[unit]}"


def _error(code: str, path: str, message: str) -> Finding:
    return Finding("error", code, path, message)


def _warning(code: str, path: str, message: str) -> Finding:
    return Finding("warning", code, path, message)


def check_zip(path: str | Path, runtime: Runtime, arch: Architecture) -> Report:
    """inspect_zip, raising ValidationError(report) when the layer has any error finding."""
    report = inspect_zip(path, runtime, arch)
    if not report.ok:
        raise ValidationError(report)
    return report


def inspect_zip(path: str | Path, runtime: Runtime, arch: Architecture,
                checked: Mapping[str, Sequence[Finding]] | None = None) -> Report:
    """Check a layer zip without extracting it; every problem found becomes a Finding.

    checked: the binary-check findings of entries already checked (by zip path) when their bytes
    were packed for this runtime and architecture; those entries are not decompressed again.
    """
    path = Path(path)
    zipped_size = path.stat().st_size
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        return Report(runtime.id, arch, [_error("zip-invalid", "", f"not a readable zip: {exc}")],
                      zipped_size, 0, 0, [])
    with zf:
        infos = zf.infolist()
        links = [i for i in infos if _is_symlink(i)]
        files = [i for i in infos if not i.is_dir() and not _is_symlink(i)]
        names = [i.filename for i in infos if not i.is_dir()]
        sizes = _package_sizes(((i.filename, i.file_size) for i in infos if not i.is_dir()),
                               runtime)
        unzipped_size = sum(i.file_size for i in infos if not i.is_dir())
        findings = [
            *check_paths(infos),
            *check_symlinks(zf, links),
            *check_layout(names, runtime),
            *check_binaries(zf, files, runtime, arch, checked),
        ]
        if runtime.language == "python":
            findings += check_extension_names(names, runtime)
            findings += check_wheel_tags(zf, files, runtime, arch)
        findings += check_sizes(zipped_size, unzipped_size, sizes)
        findings += check_bytecode(infos)
    return Report(runtime.id, arch, findings, zipped_size, unzipped_size, len(names),
                  sizes[:LARGEST_KEPT])


# --- zip safety -------------------------------------------------------------------------------


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def check_paths(infos: Iterable[zipfile.ZipInfo]) -> list[Finding]:
    """Entries that would land outside the extraction folder, or not where the name says."""
    findings: list[Finding] = []
    backslashed: list[str] = []
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
            findings.append(_error("unsafe-path", name, "absolute path in the zip; entries must be "
                                   "relative to the layer root (Lambda extracts to /opt)"))
        elif ".." in parts:
            findings.append(_error("unsafe-path", name, "'..' in the path would escape the layer "
                                   "folder when extracted; rebuild the zip from a clean folder"))
        elif "\\" in name:
            backslashed.append(name)
    if backslashed:
        # Zips made by old Windows tools keep '\' in names; Linux reads it as part of one file name.
        findings.append(_error(
            "layout", backslashed[0],
            f"{_plural(len(backslashed), 'entry', 'entries')} use '\\' as the folder separator; Lambda "
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
        except _UNREADABLE as exc:
            findings.append(_error("zip-invalid", info.filename, f"cannot read this entry: {exc}"))
            continue
        if target.startswith("/"):
            findings.append(_error(
                "unsafe-symlink", info.filename,
                f"symlink to the absolute path {target!r}; it resolves against the Lambda "
                "machine, not the layer: make it relative to a file inside the layer"))
            continue
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(info.filename), target))
        if resolved == ".." or resolved.startswith("../"):
            findings.append(_error(
                "unsafe-symlink", info.filename,
                f"symlink to {target!r} points outside the layer root; make it point to a file "
                "inside the layer or copy the file in"))
    return findings


# --- layout -----------------------------------------------------------------------------------


def check_layout(names: list[str], runtime: Runtime) -> list[Finding]:
    """Content must sit where the runtime looks: python/... or nodejs/node_modules/..."""
    if not names:
        return [_error("layout", "", "the layer is empty: it has no files")]
    nested = _nested_layout(names)
    if nested:
        return nested
    if runtime.language == "python":
        return _python_layout(names, runtime)
    return _node_layout(names, runtime)


def _nested_layout(names: list[str]) -> list[Finding]:
    # Zipping the folder instead of its contents puts everything one level too deep.
    wrappers = sorted({n.split("/")[0] for n in names
                       if n.count("/") >= 2 and n.split("/")[1] in ("python", "nodejs")
                       and n.split("/")[0] not in ("python", "nodejs")})
    return [_error("layout", f"{top}/",
                   f"the layer content is nested under '{top}/'; Lambda only looks at python/ or "
                   f"nodejs/ at the zip root: zip the contents of '{top}/', not the folder itself")
            for top in wrappers]


def _python_layout(names: list[str], runtime: Runtime) -> list[Finding]:
    prefix = runtime.layer_prefix
    findings: list[Finding] = []
    wrong_versions: dict[str, str] = {}
    root_packages: dict[str, str] = {}
    under_python = False
    for name in names:
        parts = name.split("/")
        if parts[0] == "python" and len(parts) > 1:
            under_python = True
            match = _WRONG_PY_DIR.match(name)
            if match and match.group(1) != runtime.version:
                wrong_versions.setdefault(match.group(1), name)
        elif "site-packages" in parts:
            top = "/".join(parts[:parts.index("site-packages") + 1]) + "/"
            root_packages.setdefault(top, name)
        elif _looks_like_python_package(parts) and parts[0] not in _SHARED_DIRS:
            top = parts[0] + ("/" if len(parts) > 1 else "")
            root_packages.setdefault(top, name)
    for version in sorted(wrong_versions):
        findings.append(_error(
            "layout", f"python/lib/python{version}/site-packages/",
            f"packages are in the Python {version} folder, but {runtime.id} runs Python "
            f"{runtime.version} and only adds /opt/{prefix} (and /opt/python) to sys.path: "
            f"rebuild them for Python {runtime.version} into {prefix}/ (binary packages differ "
            "by version, so renaming the folder is not enough)"))
    for top in sorted(root_packages):
        findings.append(_error(
            "layout", top,
            f"Python package '{top}' is at the zip root, where Lambda does not look; put it "
            f"under {prefix}/ (the layer prefix for {runtime.id}) or python/"))
    if not under_python and not root_packages and not _has_shared_dirs(names):
        findings.append(_error(
            "layout", "",
            f"no files under python/; {runtime.id} only adds /opt/python and /opt/{prefix} to "
            f"sys.path: put the packages under {prefix}/"))
    return findings


def _looks_like_python_package(parts: list[str]) -> bool:
    top = parts[0]
    if len(parts) == 1:
        return top.endswith(".py") or bool(_EXT_MODULE.fullmatch(top)) or top.endswith(".abi3.so")
    return (top.endswith((".dist-info", ".egg-info", ".libs"))
            or (len(parts) == 2 and parts[1] in ("__init__.py", "__init__.pyc")))


def _has_shared_dirs(names: list[str]) -> bool:
    return any(n.split("/")[0] in _SHARED_DIRS and "/" in n for n in names)


def _node_layout(names: list[str], runtime: Runtime) -> list[Finding]:
    findings: list[Finding] = []
    root_modules = False
    loose: set[str] = set()
    other_major: dict[str, str] = {}
    importable = False
    for name in names:
        parts = name.split("/")
        if parts[0] == "node_modules":
            root_modules = True
        elif parts[0] == "nodejs" and len(parts) > 2:
            versioned = _NODE_VERSIONED.match(name)
            if parts[1] == "node_modules":
                importable = True
            elif versioned:
                if versioned.group(1) == runtime.version:
                    importable = True
                else:
                    other_major.setdefault(versioned.group(1), name)
            else:
                loose.add(parts[1])
    if root_modules:
        findings.append(_error(
            "layout", "node_modules/",
            "node_modules/ is at the zip root, where Lambda does not look; move it to "
            "nodejs/node_modules/ (Lambda adds /opt/nodejs/node_modules to NODE_PATH)"))
    for major in sorted(other_major):
        findings.append(_error(
            "layout", f"nodejs/node{major}/node_modules/",
            f"modules are in the Node.js {major} folder, but {runtime.id} runs Node.js "
            f"{runtime.version} and only looks in /opt/nodejs/node{runtime.version}/node_modules "
            "and /opt/nodejs/node_modules: move them to nodejs/node_modules/"))
    for top in sorted(loose):
        findings.append(_error(
            "layout", f"nodejs/{top}/",
            f"'nodejs/{top}/' is not on NODE_PATH; packages go in nodejs/node_modules/"))
    if not importable and not findings and not _has_shared_dirs(names):
        findings.append(_error(
            "layout", "",
            f"no files under nodejs/node_modules/; {runtime.id} only adds /opt/nodejs/"
            f"node_modules and /opt/nodejs/node{runtime.version}/node_modules to NODE_PATH"))
    return findings


# --- native binaries --------------------------------------------------------------------------


class _MemberStream(io.RawIOBase):
    """Seekable read-only view of a zip member: decompresses lazily and caches recent blocks.

    pyelftools seeks all over an ELF (header at the start, section table at the end, version
    tables near the start again); reading the whole member into memory would cost as much as the
    file, which for CUDA libraries is gigabytes.
    """

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        super().__init__()
        self._zf = zf
        self._info = info
        self._size = info.file_size
        self._pos = 0
        self._raw: zipfile.ZipExtFile | None = None
        self._raw_pos = 0
        self._blocks: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        out = memoryview(buffer).cast("B")
        wanted = min(len(out), self._size - self._pos)
        done = 0
        while done < wanted:
            index, start = divmod(self._pos, _BLOCK)
            chunk = self._block(index)[start:start + wanted - done]
            if not chunk:
                break
            out[done:done + len(chunk)] = chunk
            done += len(chunk)
            self._pos += len(chunk)
        return done

    def close(self) -> None:
        if self._raw is not None:
            self._raw.close()
            self._raw = None
        self._blocks.clear()
        super().close()

    def _block(self, index: int) -> bytes:
        if index in self._blocks:
            self._blocks.move_to_end(index)
            return self._blocks[index]
        target = index * _BLOCK
        if self._raw is None or self._raw_pos > target:
            # Deflate streams cannot seek backwards: start over, which is cheap near the start.
            if self._raw is not None:
                self._raw.close()
            self._raw = self._zf.open(self._info)
            self._raw_pos = 0
        while True:
            current = self._raw_pos // _BLOCK
            data = self._raw.read(_BLOCK)
            if not data:
                return b""
            self._raw_pos += len(data)
            # Blocks passed on the way are kept too: the string table sits just before the
            # section headers, so the tail of the file is read again right after.
            self._blocks[current] = data
            while len(self._blocks) > _CACHED_BLOCKS:
                self._blocks.popitem(last=False)
            if current == index:
                return data


def check_binaries(zf: zipfile.ZipFile, files: Iterable[zipfile.ZipInfo], runtime: Runtime,
                   arch: Architecture,
                   checked: Mapping[str, Sequence[Finding]] | None = None) -> list[Finding]:
    """Reads each file's first bytes; ELF files are checked further, foreign formats refused.

    Entries named in checked take the findings given there instead of being read.
    """
    findings: list[Finding] = []
    checked = checked or {}
    for info in files:
        if info.filename in checked:
            findings += checked[info.filename]
            continue
        if info.file_size == 0:
            continue
        try:
            with _MemberStream(zf, info) as stream:
                findings += check_binary(info.filename, cast(BinaryIO, stream), runtime, arch)
        except _UNREADABLE as exc:
            findings.append(_error("zip-invalid", info.filename, f"cannot read this entry: {exc}"))
    return findings


def check_binary(path: str, stream: BinaryIO, runtime: Runtime, arch: Architecture) -> list[Finding]:
    """The binary checks of one file (an ELF for the wrong target, a macOS or Windows binary)."""
    head = stream.read(8)
    if head[:4] == _ELF_MAGIC:
        return check_elf(path, stream, runtime, arch)
    return check_foreign(path, head)


def check_foreign(path: str, head: bytes) -> list[Finding]:
    """Mach-O (macOS) or PE (Windows) binaries, which Lambda's Linux cannot load."""
    fix = ("Lambda runs Linux, so it cannot load it: install Linux (manylinux) wheels / packages "
           "or build the layer in the SAM build image")
    if head[:4] in _MACHO_MAGICS or (head[:4] in _MACHO_FAT_MAGICS and len(head) == 8
                                     and int.from_bytes(head[4:8], "big") < 45):
        # 0xcafebabe also starts Java class files; their next word is a version >= 45, while a
        # universal Mach-O has a small count of architectures there.
        return [_error("foreign-binary", path, f"a macOS binary (Mach-O); {fix}")]
    if head[:2] == b"MZ" and path.lower().endswith(_PE_SUFFIXES):
        return [_error("foreign-binary", path, f"a Windows binary (PE); {fix}")]
    return []


def check_elf(path: str, stream: BinaryIO, runtime: Runtime, arch: Architecture) -> list[Finding]:
    """Machine type and newest glibc symbol version of one ELF file."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(stream)
        findings: list[Finding] = []
        machine = elf["e_machine"]
        expected = ELF_MACHINE[arch]
        if machine != expected:
            findings.append(_error(
                "elf-machine", path,
                f"built for {_MACHINE_NAME.get(machine, machine)}, but the layer targets {arch} "
                f"({_MACHINE_NAME[expected]}); it will fail to load: build or download it for "
                f"{arch}"))
        findings += _check_glibc(path, elf, runtime, arch)
        return findings
    except ELFError as exc:
        return [_warning("elf-invalid", path, f"starts like an ELF file but cannot be parsed "
                         f"({exc}); it was not checked")]


def _check_glibc(path: str, elf: ELFFile, runtime: Runtime, arch: Architecture) -> list[Finding]:
    from elftools.elf.gnuversions import GNUVerNeedSection

    newest: tuple[tuple[int, ...], str, int] | None = None
    for section in elf.iter_sections():
        if not isinstance(section, GNUVerNeedSection):
            continue
        for _verneed, auxiliaries in section.iter_versions():
            for aux in auxiliaries:
                match = _GLIBC_VERSION.fullmatch(aux.name)
                if match:
                    version = tuple(int(g) for g in match.groups() if g is not None)
                    if newest is None or version > newest[0]:
                        newest = (version, aux.name, aux["vna_other"])
    if newest is None or newest[0][:2] <= runtime.glibc:
        return []
    version, name, index = newest
    symbols = _symbols_with_version(elf, index)
    needed_by = f" ({', '.join(symbols)})" if symbols else ""
    have = ".".join(map(str, runtime.glibc))
    prebuilt = (f", or install manylinux wheels for {runtime.manylinux_platform(arch)}"
                if runtime.language == "python" else "")
    return [_error(
        "glibc", path,
        f"needs {name}{needed_by}, but {runtime.id} runs on {_OS_NAME.get(runtime.os, runtime.os)} "
        f"with glibc {have}, so loading fails with \"version `{name}' not found\": build it in an "
        f"image whose glibc is {have} or older, e.g. the SAM build image "
        f"{runtime.default_image(arch)}{prebuilt}")]


def _symbols_with_version(elf: ELFFile, index: int, limit: int = 3) -> list[str]:
    # Naming the symbol tells the user which call pulled the new glibc in.
    from elftools.elf.gnuversions import GNUVerSymSection

    versym = next((s for s in elf.iter_sections() if isinstance(s, GNUVerSymSection)), None)
    if versym is None:
        return []
    names: list[str] = []
    for symbol in versym.iter_symbols():
        if symbol["ndx"] == index:
            names.append(symbol.name)
            if len(names) == limit:
                break
    return names


# --- Python ABI -------------------------------------------------------------------------------


def check_extension_names(names: Iterable[str], runtime: Runtime) -> list[Finding]:
    """Extension modules named for another CPython, a debug/free-threaded build, or not Linux."""
    findings: list[Finding] = []
    minor = runtime.version.split(".")[1]
    for name in names:
        match = _EXT_MODULE.fullmatch(posixpath.basename(name))
        if not match:
            continue
        built_minor, flags, platform = match.groups()
        if built_minor != minor:
            findings.append(_error(
                "python-abi", name,
                f"extension module built for CPython 3.{built_minor}, but {runtime.id} runs "
                f"CPython {runtime.version}, which will not import it: install wheels for "
                f"Python {runtime.version} ({runtime.python_tag})"))
        elif flags:
            findings.append(_error(
                "python-abi", name,
                f"extension module for a '{flags}' build of CPython (debug or free-threaded); "
                f"Lambda runs the standard build: install the plain {runtime.python_tag} wheel"))
        if not platform.endswith("-linux-gnu"):
            where = "macOS" if platform == "darwin" else f"'{platform}'"
            findings.append(_error(
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
        except _UNREADABLE:
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
            findings.append(_error(
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


# --- sizes and bytecode -----------------------------------------------------------------------


def _package_sizes(entries: Iterable[tuple[str, int]], runtime: Runtime) -> list[tuple[str, int]]:
    """Unzipped bytes per package, largest first; metadata and .libs count with their package."""
    totals: dict[str, int] = {}
    names: dict[str, str] = {}
    meta_names: dict[str, str] = {}
    for name, size in entries:
        key, shown, is_meta = _package_of(name, runtime)
        totals[key] = totals.get(key, 0) + size
        # Prefer the folder's spelling: dist-info names differ in case and '-' vs '_'.
        (meta_names if is_meta else names).setdefault(key, shown)
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    return [(names.get(key) or meta_names[key], size) for key, size in ranked]


def _package_of(name: str, runtime: Runtime) -> tuple[str, str, bool]:
    """(normalised key, display name, is metadata) of the package a zip entry belongs to."""
    if runtime.language == "python":
        rest = re.sub(r"^python/(lib/python\d+\.\d+/site-packages/)?", "", name, count=1)
        if rest == name or rest.startswith("bin/"):
            return _outside(name)
        component = rest.split("/")[0]
        is_meta = component.endswith((".dist-info", ".egg-info"))
        if is_meta:
            shown = component.split("-")[0].removesuffix(".dist-info").removesuffix(".egg-info")
        else:
            shown = component.split(".")[0] if "/" not in rest else component.removesuffix(".libs")
            shown = shown or component  # dotfiles such as an installer's .lock
        return re.sub(r"[-_.]+", "_", shown).lower(), shown, is_meta
    rest = re.sub(r"^nodejs/(node\d+/)?node_modules/", "", name, count=1)
    if rest == name:
        return _outside(name)
    parts = rest.split("/")
    shown = "/".join(parts[:2]) if parts[0].startswith("@") and len(parts) > 2 else parts[0]
    return shown, shown, False


def _outside(name: str) -> tuple[str, str, bool]:
    parts = name.split("/")
    shown = "/".join(parts[:2]) + "/" if parts[0] in ("python", "nodejs") and len(parts) > 2 \
        else parts[0] + ("/" if len(parts) > 1 else "")
    return "/" + shown, shown, False


def check_sizes(zipped: int, unzipped: int, largest: list[tuple[str, int]]) -> list[Finding]:
    """Lambda's upload and unzipped-size quotas."""
    findings: list[Finding] = []
    if zipped > MAX_ZIPPED_BYTES:
        findings.append(_warning(
            "size-zipped", "",
            f"the zip is {_human(zipped)}, over the {_human(MAX_ZIPPED_BYTES)} limit for a "
            "direct upload: publishing it needs an S3 bucket (upload the zip to S3 and publish "
            "the layer version from there)"))
    if unzipped > MAX_UNZIPPED_BYTES:
        named = ", ".join(f"{name} ({_human(size)})" for name, size in largest[:LARGEST_NAMED])
        findings.append(_error(
            "size-unzipped", "",
            f"unzipped size is {_human(unzipped)}, over Lambda's {_human(MAX_UNZIPPED_BYTES)} "
            f"({MAX_UNZIPPED_BYTES:,} bytes) limit for a function and all its layers together; "
            f"largest packages: {named}. Slim it (drop boto3/botocore, which the runtime "
            "provides, tests and debug symbols) or deploy the function as a container image"))
    return findings


def check_bytecode(infos: Iterable[zipfile.ZipInfo]) -> list[Finding]:
    """Compiled bytecode: extra bytes that differ between builds, so every build is a new version."""
    found = [i for i in infos if not i.is_dir()
             and (i.filename.endswith(".pyc") or "__pycache__/" in i.filename)]
    if not found:
        return []
    total = sum(i.file_size for i in found)
    return [_warning(
        "bytecode", found[0].filename,
        f"{_plural(len(found), 'bytecode file')} (.pyc / __pycache__, {_human(total)}): they "
        "bloat the layer and change from build to build, so the layer hash is not reproducible; "
        "build with PYTHONDONTWRITEBYTECODE=1 or leave them out")]
