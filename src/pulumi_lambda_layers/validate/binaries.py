"""Native binaries: ELF machine and newest GLIBC symbol version, Mach-O and PE files."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, BinaryIO, cast

# pyelftools loads only where a zip is checked: a cache hit reads a stored Report and never needs
# it (with packaging.tags, its import is a third of the CLI's start-up).
if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

from pulumi_lambda_layers.runtimes import ELF_MACHINE, Architecture, Runtime
from pulumi_lambda_layers.validate.report import Finding, error, warning
from pulumi_lambda_layers.validate.stream import UNREADABLE, MemberStream

_OS_NAME = {"al2": "Amazon Linux 2", "al2023": "Amazon Linux 2023"}
_MACHINE_NAME = {"EM_X86_64": "x86-64", "EM_AARCH64": "AArch64", "EM_386": "i386 (32-bit x86)",
                 "EM_ARM": "32-bit ARM"}

_ELF_MAGIC = b"\x7fELF"
_MACHO_MAGICS = {b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe"}
_MACHO_FAT_MAGICS = {b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"}
_PE_SUFFIXES = (".dll", ".pyd", ".exe", ".node")

_GLIBC_VERSION = re.compile(r"GLIBC_(\d+)\.(\d+)(?:\.(\d+))?")


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
            with MemberStream(zf, info) as stream:
                findings += check_binary(info.filename, cast(BinaryIO, stream), runtime, arch)
        except UNREADABLE as exc:
            findings.append(error("zip-invalid", info.filename, f"cannot read this entry: {exc}"))
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
        return [error("foreign-binary", path, f"a macOS binary (Mach-O); {fix}")]
    if head[:2] == b"MZ" and path.lower().endswith(_PE_SUFFIXES):
        return [error("foreign-binary", path, f"a Windows binary (PE); {fix}")]
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
            findings.append(error(
                "elf-machine", path,
                f"built for {_MACHINE_NAME.get(machine, machine)}, but the layer targets {arch} "
                f"({_MACHINE_NAME[expected]}); it will fail to load: build or download it for "
                f"{arch}"))
        findings += _check_glibc(path, elf, runtime, arch)
        return findings
    except ELFError as exc:
        return [warning("elf-invalid", path, f"starts like an ELF file but cannot be parsed "
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
    return [error(
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
