"""The table of Lambda runtimes this library builds for: language, layer path, image, OS glibc."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Literal

from pulumi_lambda_layers.errors import SpecError

Language = Literal["python", "nodejs"]
Architecture = Literal["x86_64", "arm64"]
ARCHITECTURES: tuple[Architecture, ...] = ("x86_64", "arm64")

# glibc of the OS image each Lambda runtime runs on; binaries needing newer symbols fail to load.
OS_GLIBC = {"al2": (2, 26), "al2023": (2, 34)}

# ELF e_machine names (as pyelftools reports them) and uname -m per Lambda architecture.
ELF_MACHINE = {"x86_64": "EM_X86_64", "arm64": "EM_AARCH64"}
UNAME_MACHINE = {"x86_64": "x86_64", "arm64": "aarch64"}
DOCKER_PLATFORM = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}
NPM_CPU = {"x86_64": "x64", "arm64": "arm64"}


@dataclass(frozen=True)
class Runtime:
    """One Lambda runtime id and the facts about it a layer build depends on."""

    id: str
    language: Language
    version: str  # "3.11" for Python, "20" for Node.js
    os: str  # "al2" | "al2023"
    deprecated: bool = False

    @property
    def glibc(self) -> tuple[int, int]:
        return OS_GLIBC[self.os]

    @property
    def layer_prefix(self) -> str:
        """Folder inside the zip where packages go; Lambda adds it to the module search path."""
        if self.language == "python":
            return f"python/lib/python{self.version}/site-packages"
        return "nodejs/node_modules"

    @property
    def python_tag(self) -> str:
        """CPython ABI tag, e.g. cp311 (Python runtimes only)."""
        return "cp" + self.version.replace(".", "")

    def manylinux_platform(self, arch: Architecture) -> str:
        """Target for `uv --python-platform`: the newest manylinux tag the runtime's glibc accepts.

        uv knows no 2_26 target, so AL2 runtimes fall back to manylinux2014 (2_17), the newest
        policy below 2.26 that uv offers; wheels tagged 2_24/2_26 only are then built in Docker.
        """
        machine = UNAME_MACHINE[arch]
        if self.os == "al2":
            return f"{machine}-manylinux_2_17"
        major, minor = self.glibc
        return f"{machine}-manylinux_{major}_{minor}"

    def default_image(self, arch: Architecture) -> str:
        """The AWS SAM build image, the production default for Docker builds."""
        return f"public.ecr.aws/sam/build-{self.id}:latest-{arch}"

    def smoke_image(self) -> str:
        """The AWS Lambda base image of this runtime."""
        return f"public.ecr.aws/lambda/{self.language}:{self.version}"


_TABLE = (
    Runtime("python3.9", "python", "3.9", "al2", deprecated=True),
    Runtime("python3.10", "python", "3.10", "al2"),
    Runtime("python3.11", "python", "3.11", "al2"),
    Runtime("python3.12", "python", "3.12", "al2023"),
    Runtime("python3.13", "python", "3.13", "al2023"),
    Runtime("python3.14", "python", "3.14", "al2023"),
    Runtime("nodejs18.x", "nodejs", "18", "al2", deprecated=True),
    Runtime("nodejs20.x", "nodejs", "20", "al2023"),
    Runtime("nodejs22.x", "nodejs", "22", "al2023"),
    Runtime("nodejs24.x", "nodejs", "24", "al2023"),
)
RUNTIMES: dict[str, Runtime] = {r.id: r for r in _TABLE}

# Runtimes Lambda has retired: no new functions or updates. Node.js before 14 also cannot load an
# ES module (.mjs or "type": "module") handler, a trap worth naming.
_RETIRED = {
    **{f"python{v}": "python3.13" for v in ("2.7", "3.6", "3.7", "3.8")},
    **{f"nodejs{v}": "nodejs22.x" for v in ("", "4.3", "6.10", "8.10", "10.x", "12.x", "14.x",
                                            "16.x")},
}
_NO_ESM = {"nodejs", "nodejs4.3", "nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs12.x"}


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """A 'did you mean X?' hint for a misspelt choice, or ''."""
    # Look-alike typos (python3.1l, nodejs2O.x) are not "close" to difflib; catch them first.
    def plain(text: str) -> str:
        return text.lower().replace("l", "1").replace("o", "0").replace("-", "_")

    same = [c for c in choices if plain(c) == plain(word)]
    if same:
        return f"did you mean {same[0]!r}?"
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


def get_runtime(runtime_id: str, argument: str = "runtime") -> Runtime:
    """Look a runtime up by id; unknown ids raise a SpecError listing the valid ones."""
    try:
        return RUNTIMES[runtime_id]
    except KeyError:
        if runtime_id in _RETIRED:
            esm = (" and cannot load ES module handlers (.mjs or \"type\": \"module\"; Lambda "
                   "supports them from nodejs14.x)" if runtime_id in _NO_ESM else "")
            raise SpecError(argument, f"Lambda has retired {runtime_id}{esm}",
                            f"use {_RETIRED[runtime_id]} (or another of: "
                            f"{', '.join(r.id for r in _TABLE if not r.deprecated)})") from None
        hint = did_you_mean(str(runtime_id), list(RUNTIMES))
        valid = ", ".join(RUNTIMES)
        raise SpecError(argument, f"unknown Lambda runtime {runtime_id!r}",
                        (hint + " " if hint else "") + f"valid runtimes: {valid}") from None


def check_architecture(arch: str, argument: str = "architecture") -> Architecture:
    """Return arch if it is a Lambda architecture; otherwise a SpecError with a hint."""
    if arch in ARCHITECTURES:
        return arch
    aliases = {"amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64", "aarch64": "arm64"}
    if arch in aliases:
        raise SpecError(argument, f"unknown architecture {arch!r}",
                        f"Lambda calls it {aliases[arch]!r}")
    hint = did_you_mean(str(arch), ARCHITECTURES)
    raise SpecError(argument, f"unknown architecture {arch!r}",
                    (hint + " " if hint else "") + "use 'x86_64' or 'arm64'")
